package service

import (
	"cmp"
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
)

var errNoSession = recourse.Errorf(recourse.EUNAUTHORIZED, "Please sign in.")

// touchEvery limits how often activity is written back; idle timeouts are
// therefore exact to within this interval.
const touchEvery = time.Minute

// Authenticate returns the principal for a session token: an unrevoked,
// unexpired, complete session of an active account. Activity is recorded for
// the idle timeout.
func (s *Service) Authenticate(ctx context.Context, token string) (*Principal, error) {
	if !credential.ValidToken(SessionTokenPrefix, token) {
		return nil, errNoSession
	}
	ses, a, err := s.store.SessionWithAccount(ctx, s.tokenHash(token))
	if errors.Is(err, recourse.ErrNotFound) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, internal("read session", err)
	}
	now := s.now()
	if ses.AAL == recourse.AALNone || !ses.Active(now) {
		return nil, errNoSession
	}
	if a.Status != recourse.StatusActive || a.FrozenAt != nil {
		// A suspended, terminated or frozen account loses its sessions at once.
		if err := s.revokeSession(ctx, ses, recourse.ActionSessionRevoke, "account "+string(a.Status), systemMeta); err != nil {
			return nil, err
		}
		return nil, errNoSession
	}
	if now.Sub(ses.LastSeenAt) >= touchEvery {
		if err := s.store.TouchSession(ctx, ses.ID, now); err != nil {
			return nil, internal("touch session", err)
		}
		ses.LastSeenAt = now
	}
	return &Principal{Account: a, Session: ses}, nil
}

// SignOut revokes the session behind the token, complete or pending. It is
// idempotent.
func (s *Service) SignOut(ctx context.Context, token string, meta Meta) error {
	if !credential.ValidToken(SessionTokenPrefix, token) {
		return nil
	}
	ses, err := s.store.SessionByTokenHash(ctx, s.tokenHash(token))
	if errors.Is(err, recourse.ErrNotFound) {
		return nil
	}
	if err != nil {
		return internal("read session", err)
	}
	return s.revokeSession(ctx, ses, recourse.ActionSignOut, "", meta)
}

// revokeSession ends a session and records it, in one transaction; a
// session already ended is left alone, unrecorded.
func (s *Service) revokeSession(ctx context.Context, ses *recourse.Session, action, reason string, meta Meta) error {
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		if err := tx.RevokeSession(ctx, ses.ID, s.now()); err != nil {
			return err
		}
		if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: action, Outcome: recourse.OutcomeSuccess, SubjectID: ses.AccountID,
			Reason: reason, Attributes: map[string]string{"session_id": ses.ID}}, meta); err != nil {
			return err
		}
		if action != recourse.ActionSessionRevoke || reason != "" {
			return nil // signing out, or an inactive account
		}
		a, err := tx.Account(ctx, ses.AccountID)
		if err != nil {
			return err
		}
		return s.notifyAccount(ctx, tx, a, "A session of your account was signed out", []string{
			"A session of your account (started " + ses.CreatedAt.UTC().Format("2006-01-02 15:04 UTC") + " from " + cmp.Or(ses.IP, "an unknown address") + ") was signed out at your request.",
		}, meta)
	})
	if errors.Is(err, recourse.ErrNotFound) {
		return nil
	}
	return internal("revoke session", err)
}

// Sessions lists the principal's own active sessions.
func (s *Service) Sessions(ctx context.Context, p *Principal) ([]*recourse.Session, error) {
	list, err := s.store.Sessions(ctx, p.Account.ID, s.now())
	if err != nil {
		return nil, internal("list sessions", err)
	}
	out := list[:0]
	for _, ses := range list {
		if ses.AAL != recourse.AALNone {
			out = append(out, ses)
		}
	}
	return out, nil
}

// RevokeSession ends one of the principal's own sessions.
func (s *Service) RevokeSession(ctx context.Context, p *Principal, id string, meta Meta) error {
	ses, err := s.store.Session(ctx, id)
	if errors.Is(err, recourse.ErrNotFound) || (err == nil && ses.AccountID != p.Account.ID) {
		return recourse.Errorf(recourse.ENOTFOUND, "No such session.")
	}
	if err != nil {
		return internal("read session", err)
	}
	return s.revokeSession(ctx, ses, recourse.ActionSessionRevoke, "", meta)
}

// SignOutEverywhere revokes every session of the principal, this one too,
// and returns how many.
func (s *Service) SignOutEverywhere(ctx context.Context, p *Principal, meta Meta) (int, error) {
	var n int
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		var err error
		if n, err = tx.RevokeSessions(ctx, p.Account.ID, "", s.now()); err != nil {
			return err
		}
		if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionSessionRevokeAll, Outcome: recourse.OutcomeSuccess,
			SubjectID: p.Account.ID, Attributes: map[string]string{"revoked": strconv.Itoa(n)}}, meta); err != nil {
			return err
		}
		return s.notifyAccount(ctx, tx, p.Account, "You were signed out everywhere", []string{
			"All sessions of your account were ended at your request.",
		}, meta)
	})
	return n, internal("sign out everywhere", err)
}

// RequireRecentAuth returns ESTEPUP unless the principal authenticated (or
// re-authenticated) within the re-authentication window.
func (s *Service) RequireRecentAuth(p *Principal) error {
	last := p.Session.AuthTime
	if p.Session.ReauthAt.After(last) {
		last = p.Session.ReauthAt
	}
	if s.now().Sub(last) > s.cfg.ReauthWindow {
		return recourse.Errorf(recourse.ESTEPUP, "For your security, confirm it's you before making this change.")
	}
	return nil
}

// Reauthenticate proves the principal again with their password or a TOTP
// code (step-up) and records the time. Failures count towards lock-out.
func (s *Service) Reauthenticate(ctx context.Context, p *Principal, password, code string, meta Meta) error {
	now := s.now()
	if !s.ipLimit.allow(meta.IP, now) {
		return errRateLimited
	}
	var proven *recourse.Authenticator
	method := "pwd"
	switch {
	case code != "":
		method = "otp"
		au, err := s.matchTOTP(ctx, p.Account.ID, code)
		if err != nil {
			return err
		}
		proven = au
	case password != "":
		if len(password) > maxSecretInput {
			password = password[:maxSecretInput]
		}
		auths, err := s.store.Authenticators(ctx, p.Account.ID)
		if err != nil {
			return internal("list authenticators", err)
		}
		for _, au := range auths {
			if au.Kind == recourse.AuthPassword && au.Status == recourse.AuthActive {
				if ok, _, _ := credential.VerifyPassword(string(au.Secret), password, s.cfg.PasswordParams); ok {
					proven = au
				}
			}
		}
	}
	if proven == nil {
		if err := s.signInFailed(ctx, p.Account, meta, recourse.ActionReauthenticate, method, "failed re-authentication"); err != errSignIn {
			return err
		}
		return recourse.Errorf(recourse.EUNAUTHORIZED, "That was not correct. Try again.")
	}
	p.Session.ReauthAt = now
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		if err := s.event(ctx, tx, proven, recourse.AuthEventUsed, meta); err != nil {
			return err
		}
		if err := tx.ResetSignInFailures(ctx, p.Account.ID); err != nil {
			return err
		}
		if err := tx.UpdateSession(ctx, p.Session); err != nil {
			return err
		}
		return s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionReauthenticate, Outcome: recourse.OutcomeSuccess,
			SubjectID: p.Account.ID, Evidence: []string{method}, Attributes: map[string]string{"session_id": p.Session.ID}}, meta)
	})
	return internal("re-authenticate", err)
}

// AuthenticatorEvents returns the principal's recent authenticator history.
func (s *Service) AuthenticatorEvents(ctx context.Context, accountID string, limit int) ([]*recourse.AuthenticatorEvent, error) {
	evs, err := s.store.AuthenticatorEvents(ctx, accountID, limit)
	return evs, internal("list events", err)
}

// Authenticators lists an account's authenticators in every status.
func (s *Service) Authenticators(ctx context.Context, accountID string) ([]*recourse.Authenticator, error) {
	list, err := s.store.Authenticators(ctx, accountID)
	return list, internal("list authenticators", err)
}
