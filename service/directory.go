package service

import (
	"context"
	"errors"
	"slices"

	"github.com/recourse/recourse"
)

// Who may see and change the directory through the API. The CLI, with
// database access, is an administrator by construction and uses
// CreateAccount, ImportAccounts and Account directly.

// staff reports whether the account holds a Recourse role that reads the
// directory: administrators, the help desk and the security team.
func staff(a *recourse.Account) bool {
	return a.HasRole(recourse.RoleAdmin) || a.HasRole(recourse.RoleHelpdesk) || a.HasRole(recourse.RoleSecurity)
}

func requireAdmin(p *APIPrincipal) error {
	if !p.Account.HasRole(recourse.RoleAdmin) {
		return recourse.Errorf(recourse.EFORBIDDEN, "This needs the admin role.")
	}
	return requireUnrestricted(p.Principal)
}

var errNoAccount = recourse.Errorf(recourse.ENOTFOUND, "No such account.")

// DirectoryAccount returns an account to a caller allowed to see it: staff
// see anyone, a person sees themself. full is true for administrators, who
// see channel addresses in the clear (they maintain them); everyone else
// gets them masked.
func (s *Service) DirectoryAccount(ctx context.Context, p *APIPrincipal, id string) (a *recourse.Account, full bool, err error) {
	if !staff(p.Account) && p.Account.ID != id {
		return nil, false, errNoAccount
	}
	a, err = s.store.Account(ctx, id)
	if errors.Is(err, recourse.ErrNotFound) {
		return nil, false, errNoAccount
	}
	if err != nil {
		return nil, false, internal("read account", err)
	}
	return a, p.Account.HasRole(recourse.RoleAdmin), nil
}

// DirectoryAccounts pages through the directory for staff.
func (s *Service) DirectoryAccounts(ctx context.Context, p *APIPrincipal, f recourse.AccountFilter) ([]*recourse.Account, bool, error) {
	if !staff(p.Account) {
		return nil, false, recourse.Errorf(recourse.EFORBIDDEN, "Listing the directory needs the admin, helpdesk or security role.")
	}
	list, err := s.ListAccounts(ctx, f)
	return list, p.Account.HasRole(recourse.RoleAdmin), err
}

// AccountAuthenticators lists an account's authenticators to staff and to
// the account holder, scrubbed of secrets, credential ids and TOTP steps,
// with the unused-code count of each active recovery-code set.
func (s *Service) AccountAuthenticators(ctx context.Context, p *APIPrincipal, id string) ([]*recourse.Authenticator, map[string]int, error) {
	a, _, err := s.DirectoryAccount(ctx, p, id)
	if err != nil {
		return nil, nil, err
	}
	list, err := s.store.Authenticators(ctx, a.ID)
	if err != nil {
		return nil, nil, internal("list authenticators", err)
	}
	unused := map[string]int{}
	out := make([]*recourse.Authenticator, 0, len(list))
	for _, au := range list {
		c := *au
		c.Secret, c.CredentialID, c.LastStep = nil, nil, 0
		if c.Kind == recourse.AuthRecoveryCodes && c.Status == recourse.AuthActive {
			n, err := s.store.UnusedRecoveryCodes(ctx, c.ID)
			if err != nil {
				return nil, nil, internal("count recovery codes", err)
			}
			unused[c.ID] = n
		}
		out = append(out, &c)
	}
	return out, unused, nil
}

// AccountChannels lists an account's email addresses and phone numbers
// with their addresses masked (MaskAddress), to staff and to the holder.
func (s *Service) AccountChannels(ctx context.Context, p *APIPrincipal, id string) ([]recourse.Channel, error) {
	a, _, err := s.DirectoryAccount(ctx, p, id)
	if err != nil {
		return nil, err
	}
	out := make([]recourse.Channel, 0, len(a.Emails)+len(a.Phones))
	for _, c := range slices.Concat(a.Emails, a.Phones) {
		c.Address = MaskAddress(c.Kind, c.Address)
		out = append(out, c)
	}
	return out, nil
}

// CreateAccountAs creates an account for an administrator calling the API.
func (s *Service) CreateAccountAs(ctx context.Context, p *APIPrincipal, a *recourse.Account, meta Meta) error {
	if err := requireAdmin(p); err != nil {
		return err
	}
	return s.CreateAccount(ctx, a, adminMeta(p, meta))
}

// ImportAccountsAs imports accounts (all or nothing) for an administrator
// calling the API.
func (s *Service) ImportAccountsAs(ctx context.Context, p *APIPrincipal, accounts []*recourse.Account, meta Meta) (ImportResult, error) {
	if err := requireAdmin(p); err != nil {
		return ImportResult{}, err
	}
	return s.ImportAccounts(ctx, accounts, adminMeta(p, meta))
}

// UpdateAccountAs replaces an account's directory facts for an
// administrator, provided the account is still at ifVersion (the version
// the administrator read; its ETag), so two administrators editing at once
// cannot overwrite each other. Like an import, it keeps confirmed channels
// confirmed and leaves lock-out and freeze state alone; it is audited with
// what changed.
func (s *Service) UpdateAccountAs(ctx context.Context, p *APIPrincipal, a *recourse.Account, ifVersion int64, meta Meta) (*recourse.Account, error) {
	if err := requireAdmin(p); err != nil {
		return nil, err
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	meta = adminMeta(p, meta)
	var fresh *recourse.Account
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		old, err := tx.Account(ctx, a.ID)
		if errors.Is(err, recourse.ErrNotFound) {
			return errNoAccount
		}
		if err != nil {
			return err
		}
		if old.Version != ifVersion {
			return errStaleVersion
		}
		if a.Username != old.Username {
			if other, err := tx.AccountByUsername(ctx, a.Username); err == nil && other.ID != a.ID {
				return recourse.FieldError("username", "%q is taken by another account", a.Username)
			} else if err != nil && !errors.Is(err, recourse.ErrNotFound) {
				return err
			}
		}
		if err := checkReferences(ctx, tx, a, nil); err != nil {
			return err
		}
		a.CreatedAt, a.UpdatedAt, a.Version = old.CreatedAt, s.now(), old.Version
		a.FailedSignIns, a.LockedAt, a.RecoveryFailures, a.FrozenAt = old.FailedSignIns, old.LockedAt, old.RecoveryFailures, old.FrozenAt
		if err := tx.UpdateAccount(ctx, a); err != nil {
			if errors.Is(err, recourse.ErrConflict) {
				return errStaleVersion
			}
			return err
		}
		if fresh, err = tx.Account(ctx, a.ID); err != nil {
			return err
		}
		before, after := diff(accountAttrs(old), accountAttrs(fresh))
		if len(after) == 0 {
			return nil
		}
		return s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionAccountUpdate, Outcome: recourse.OutcomeSuccess,
			SubjectID: a.ID, Before: before, After: after, Attributes: map[string]string{"source": "api"}}, meta)
	})
	if err != nil && recourse.ErrorCode(err) == recourse.EINTERNAL {
		return nil, internal("update account", err)
	}
	return fresh, err
}
