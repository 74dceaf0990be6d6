package service

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/recourse/recourse"
)

// BenchGroup is the directory group every account `recourse bench` seeds
// belongs to. SeedBenchCredentials refuses any other account, and the bench
// policy's relaxed recovery rule matches only this group.
const BenchGroup = "bench"

// BenchCredentials are the credentials SeedBenchCredentials binds.
type BenchCredentials struct {
	// PasswordHash is one Argon2id PHC string (credential.HashPassword),
	// computed once and stored for every account: hashing each bench
	// account's password at the default parameters would take minutes per
	// ten thousand accounts on two cores. It MUST use the server's
	// parameters, or every sign-in would rehash it.
	PasswordHash string
	// TOTPSecret returns the base32 secret of the account's authenticator
	// app; the load generator derives the same secret to compute codes.
	TOTPSecret func(accountID string) string
}

// SeedBenchCredentials binds a password and an active authenticator app to
// each account, in one transaction, with their lifecycle events and audit
// records — what SetPassword and a confirmed TOTP enrolment would leave,
// without an Argon2id hash per account. It exists for `recourse bench`
// only: it refuses an account outside BenchGroup or one that already has a
// password, so it can never replace a real person's credentials.
func (s *Service) SeedBenchCredentials(ctx context.Context, accountIDs []string, c BenchCredentials) error {
	if !strings.HasPrefix(c.PasswordHash, "$argon2id$") || c.TOTPSecret == nil {
		return recourse.Errorf(recourse.EINVALID, "bench credentials need an Argon2id hash and a TOTP secret source")
	}
	now := s.now()
	err := s.store.InTx(recourse.LargeWrite(ctx), func(tx recourse.Tx) error {
		for _, id := range accountIDs {
			a, err := tx.Account(ctx, id)
			if err != nil {
				return err
			}
			if !slices.Contains(a.Groups, BenchGroup) || a.Kind != recourse.KindHuman {
				return recourse.Errorf(recourse.EINVALID, "account %q is not a bench account (group %q)", id, BenchGroup)
			}
			auths, err := tx.Authenticators(ctx, id)
			if err != nil {
				return err
			}
			for _, au := range auths {
				if au.Kind == recourse.AuthPassword && au.Status == recourse.AuthActive {
					return recourse.Errorf(recourse.ECONFLICT, "account %q already has a password", id)
				}
			}
			pw := &recourse.Authenticator{ID: recourse.NewID("au_"), AccountID: id, Kind: recourse.AuthPassword, Status: recourse.AuthActive,
				Name: "Password", Secret: []byte(c.PasswordHash), CreatedAt: now}
			app := &recourse.Authenticator{ID: recourse.NewID("au_"), AccountID: id, Kind: recourse.AuthTOTP, Status: recourse.AuthActive,
				Name: "Bench authenticator app", CreatedAt: now}
			app.Secret = s.sealer.Seal([]byte(c.TOTPSecret(id)), []byte(app.ID))
			for _, au := range []*recourse.Authenticator{pw, app} {
				if err := tx.CreateAuthenticator(ctx, au); err != nil {
					return err
				}
				if err := s.event(ctx, tx, au, recourse.AuthEventBound, systemMeta); err != nil {
					return err
				}
			}
			if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionPasswordSet, Outcome: recourse.OutcomeSuccess,
				SubjectID: id, After: map[string]string{"password_authenticator": pw.ID}, Reason: "bench seed"}, systemMeta); err != nil {
				return err
			}
			if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionAuthenticatorBind, Outcome: recourse.OutcomeSuccess,
				SubjectID: id, After: authenticatorAttrs(app), Reason: "bench seed"}, systemMeta); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, recourse.ErrNotFound) {
		return recourse.Errorf(recourse.ENOTFOUND, "a bench account to seed does not exist")
	}
	if err != nil && recourse.ErrorCode(err) == recourse.EINTERNAL {
		return internal("seed bench credentials", err)
	}
	return err
}
