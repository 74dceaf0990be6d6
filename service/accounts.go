package service

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/recourse/recourse"
)

// ImportResult counts what an import did.
type ImportResult struct {
	Created int
	Updated int
}

// ImportAccounts creates or updates (by id) the given accounts, all or
// nothing, in one transaction. References to other accounts (manager, sponsor,
// owners, recovery contacts) must resolve to an account in the batch or in
// the directory. Channels already confirmed stay confirmed. Each creation
// and each update that changes something is audited with what changed.
func (s *Service) ImportAccounts(ctx context.Context, accounts []*recourse.Account, meta Meta) (ImportResult, error) {
	var res ImportResult
	batch := map[string]*recourse.Account{}
	for _, a := range accounts {
		if err := a.Validate(); err != nil {
			return res, err
		}
		batch[a.ID] = a
	}
	now := s.now()
	// An import is one transaction of many rows (recourse.LargeWrite).
	err := s.store.InTx(recourse.LargeWrite(ctx), func(tx recourse.Tx) error {
		var err error
		res, err = s.importAccountsTx(ctx, tx, accounts, batch, now, meta)
		return err
	})
	if err != nil {
		return ImportResult{}, internal("import accounts", err)
	}
	return res, nil
}

// importAccountsTx is ImportAccounts' work inside the caller's transaction;
// batch maps the accounts by id so references inside the batch resolve.
func (s *Service) importAccountsTx(ctx context.Context, tx recourse.Tx, accounts []*recourse.Account, batch map[string]*recourse.Account, now time.Time, meta Meta) (ImportResult, error) {
	var res ImportResult
	for _, a := range accounts {
		if err := checkReferences(ctx, tx, a, batch); err != nil {
			return res, err
		}
	}
	for _, in := range accounts {
		old, err := tx.Account(ctx, in.ID)
		switch {
		case errors.Is(err, recourse.ErrNotFound):
			a := *in
			a.CreatedAt, a.UpdatedAt = now, now
			if err := tx.CreateAccount(ctx, &a); err != nil {
				if errors.Is(err, recourse.ErrConflict) {
					return res, recourse.Errorf(recourse.ECONFLICT, "account %q: the username %q is taken by another account", in.ID, in.Username)
				}
				return res, err
			}
			if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionAccountCreate, Outcome: recourse.OutcomeSuccess,
				SubjectID: a.ID, After: accountAttrs(&a), Attributes: map[string]string{"source": "import"}}, meta); err != nil {
				return res, err
			}
			res.Created++
		case err != nil:
			return res, err
		default:
			a := *in
			a.CreatedAt, a.UpdatedAt, a.Version = old.CreatedAt, now, old.Version
			a.FailedSignIns, a.LockedAt = old.FailedSignIns, old.LockedAt
			if err := tx.UpdateAccount(ctx, &a); err != nil {
				if errors.Is(err, recourse.ErrConflict) {
					return res, recourse.Errorf(recourse.ECONFLICT, "account %q changed during the import or its username is taken; retry", in.ID)
				}
				return res, err
			}
			fresh, err := tx.Account(ctx, a.ID)
			if err != nil {
				return res, err
			}
			if before, after := diff(accountAttrs(old), accountAttrs(fresh)); len(after) > 0 {
				if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionAccountUpdate, Outcome: recourse.OutcomeSuccess,
					SubjectID: a.ID, Before: before, After: after, Attributes: map[string]string{"source": "import"}}, meta); err != nil {
					return res, err
				}
			}
			res.Updated++
		}
	}
	return res, nil
}

// CreateAccount creates one account; ECONFLICT if the id or username exists.
func (s *Service) CreateAccount(ctx context.Context, a *recourse.Account, meta Meta) error {
	if err := a.Validate(); err != nil {
		return err
	}
	now := s.now()
	a.CreatedAt, a.UpdatedAt = now, now
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		if err := checkReferences(ctx, tx, a, nil); err != nil {
			return err
		}
		if err := tx.CreateAccount(ctx, a); err != nil {
			return err
		}
		return s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionAccountCreate, Outcome: recourse.OutcomeSuccess,
			SubjectID: a.ID, After: accountAttrs(a)}, meta)
	})
	if errors.Is(err, recourse.ErrConflict) {
		return recourse.Errorf(recourse.ECONFLICT, "an account with id %q or username %q already exists", a.ID, a.Username)
	}
	return internal("create account", err)
}

func checkReferences(ctx context.Context, tx recourse.Tx, a *recourse.Account, batch map[string]*recourse.Account) error {
	exists := func(id string) (*recourse.Account, error) {
		if b, ok := batch[id]; ok {
			return b, nil
		}
		return tx.Account(ctx, id)
	}
	check := func(field, id string) error {
		ref, err := exists(id)
		if errors.Is(err, recourse.ErrNotFound) {
			return &recourse.Error{Code: recourse.EINVALID, Field: field, Message: "account " + a.ID + " refers to " + id + ", which does not exist"}
		}
		if err != nil {
			return err
		}
		if field != "owners" && ref.Kind == recourse.KindService {
			return &recourse.Error{Code: recourse.EINVALID, Field: field, Message: "account " + a.ID + " refers to " + id + ", a service account"}
		}
		if field == "owners" && ref.Kind != recourse.KindHuman {
			return &recourse.Error{Code: recourse.EINVALID, Field: field, Message: "account " + a.ID + ": an owner must be a person, not " + id}
		}
		return nil
	}
	if a.ManagerID != "" {
		if err := check("manager", a.ManagerID); err != nil {
			return err
		}
	}
	if a.SponsorID != "" {
		if err := check("sponsor", a.SponsorID); err != nil {
			return err
		}
	}
	for _, id := range a.Owners {
		if err := check("owners", id); err != nil {
			return err
		}
	}
	for _, id := range a.RecoveryContacts {
		if err := check("recovery_contacts", id); err != nil {
			return err
		}
	}
	return nil
}

// Account returns an account by id.
func (s *Service) Account(ctx context.Context, id string) (*recourse.Account, error) {
	a, err := s.store.Account(ctx, id)
	if errors.Is(err, recourse.ErrNotFound) {
		return nil, recourse.Errorf(recourse.ENOTFOUND, "No account %q.", id)
	}
	return a, internal("read account", err)
}

// ListAccounts pages through the directory.
func (s *Service) ListAccounts(ctx context.Context, f recourse.AccountFilter) ([]*recourse.Account, error) {
	list, err := s.store.ListAccounts(ctx, f)
	return list, internal("list accounts", err)
}

// SetPassword sets (or replaces) an account's password, for administrators
// and provisioning. The password rules apply.
func (s *Service) SetPassword(ctx context.Context, accountID, password string, meta Meta) error {
	a, err := s.Account(ctx, accountID)
	if err != nil {
		return err
	}
	if err := s.cfg.PasswordRules.Check(password, passwordContext(a)...); err != nil {
		return err
	}
	hash, err := hashPassword(password, s.cfg.PasswordParams)
	if err != nil {
		return err
	}
	now := s.now()
	return internal("set password", s.store.InTx(ctx, func(tx recourse.Tx) error {
		return s.setPasswordTx(ctx, tx, a, hash, now, meta)
	}))
}

// setPasswordTx replaces a's active passwords with hash inside the caller's
// transaction, audits it, and notifies the holder unless it is a first
// password.
func (s *Service) setPasswordTx(ctx context.Context, tx recourse.Tx, a *recourse.Account, hash string, now time.Time, meta Meta) error {
	auths, err := tx.Authenticators(ctx, a.ID)
	if err != nil {
		return err
	}
	// The audit log names the password authenticators, never the hash.
	before := map[string]string{"password_authenticator": ""}
	for _, au := range auths {
		if au.Kind == recourse.AuthPassword && au.Status == recourse.AuthActive {
			before["password_authenticator"] = au.ID
			au.Status, au.RevokedAt = recourse.AuthReplaced, &now
			if err := tx.UpdateAuthenticator(ctx, au); err != nil {
				return err
			}
			if err := s.event(ctx, tx, au, recourse.AuthEventReplaced, meta); err != nil {
				return err
			}
		}
	}
	pw := &recourse.Authenticator{AccountID: a.ID, Kind: recourse.AuthPassword, Status: recourse.AuthActive, Name: "Password",
		Secret: []byte(hash), CreatedAt: now}
	if err := tx.CreateAuthenticator(ctx, pw); err != nil {
		return err
	}
	if err := s.event(ctx, tx, pw, recourse.AuthEventBound, meta); err != nil {
		return err
	}
	if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionPasswordSet, Outcome: recourse.OutcomeSuccess,
		SubjectID: a.ID, Before: before, After: map[string]string{"password_authenticator": pw.ID}}, meta); err != nil {
		return err
	}
	if before["password_authenticator"] == "" {
		return nil // a first password: nothing the holder had changed
	}
	return s.notifyAccount(ctx, tx, a, "Your password was reset", []string{
		"An administrator set a new password for your account.",
	}, meta)
}

// UnlockAccount clears a sign-in lock-out (an administrator's action).
func (s *Service) UnlockAccount(ctx context.Context, accountID string, meta Meta) error {
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		a, err := tx.Account(ctx, accountID)
		if err != nil {
			return err
		}
		if err := tx.UnlockAccount(ctx, accountID); err != nil {
			return err
		}
		return s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionAccountUnlock, Outcome: recourse.OutcomeSuccess,
			SubjectID: accountID,
			Before:    map[string]string{"locked": strconv.FormatBool(a.Locked()), "failed_signins": strconv.Itoa(a.FailedSignIns)},
			After:     map[string]string{"locked": "false", "failed_signins": "0"}}, meta)
	})
	if errors.Is(err, recourse.ErrNotFound) {
		return recourse.Errorf(recourse.ENOTFOUND, "No account %q.", accountID)
	}
	return internal("unlock account", err)
}

func passwordContext(a *recourse.Account) []string {
	ctx := []string{a.Username, a.ID, a.DisplayName}
	for _, e := range a.Emails {
		local, _, _ := strings.Cut(e.Address, "@")
		ctx = append(ctx, local)
	}
	return ctx
}

func (s *Service) event(ctx context.Context, tx recourse.Tx, au *recourse.Authenticator, typ recourse.AuthenticatorEventType, meta Meta) error {
	return tx.AddAuthenticatorEvent(ctx, &recourse.AuthenticatorEvent{
		AuthenticatorID: au.ID, AccountID: au.AccountID, Kind: au.Kind, Type: typ, At: s.now(),
		IP: meta.IP, UserAgent: truncate(meta.UserAgent, 300),
	})
}
