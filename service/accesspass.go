package service

import (
	"context"
	"errors"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/policy"
)

// AccessPassPrefix marks temporary access passes.
const AccessPassPrefix = "tap_"

// accessPassTTL bounds a pass when the policy sets no token lifetime.
const accessPassTTL = time.Hour

// maxAccessPassTTL caps a policy's token lifetime for a pass: a pass is a
// bearer credential for the whole account, never a standing one.
const maxAccessPassTTL = 24 * time.Hour

// accessPassLifetime is how long a pass issued under the requirement lives:
// the requirement's token lifetime, at most a day, else accessPassTTL.
func accessPassLifetime(req *policy.Requirement) time.Duration {
	if req != nil && req.Lifetimes.Token > 0 {
		return min(req.Lifetimes.Token, maxAccessPassTTL)
	}
	return accessPassTTL
}

// errAccessPassRace answers the loser of two passes issued for one
// account at the same moment: the database keeps one active pass per
// account (store migration 0007). Nothing was changed; trying again works.
var errAccessPassRace = recourse.Errorf(recourse.ECONFLICT, "Another temporary access pass was issued for your account at the same moment. Try again.")

// createAccessPass stores a pass, after the caller revoked the account's
// earlier ones.
func createAccessPass(ctx context.Context, tx recourse.Tx, t *recourse.Token) error {
	if err := tx.CreateToken(ctx, t); errors.Is(err, recourse.ErrConflict) {
		return errAccessPassRace
	} else if err != nil {
		return err
	}
	return nil
}

// IssueAccessPass issues a temporary access pass (access.temporary) to the
// signed-in holder, through the policy: for signing in once on a new device
// to enrol an authenticator there. It is shown once, stored as an HMAC,
// single use, short-lived, and replaces any earlier pass of the account.
func (s *Service) IssueAccessPass(ctx context.Context, p *Principal, meta Meta) (string, time.Time, error) {
	pass := credential.NewToken(AccessPassPrefix)
	var req *policy.Requirement
	if d, err := s.Decide(ctx, p.Account.ID, "access.temporary", policyRequest(p, meta, s.now())); err == nil {
		req = d.Requirement
	}
	expires := s.now().Add(accessPassLifetime(req))
	err := s.routine(ctx, p, "access.temporary", meta, func(tx recourse.Tx) error {
		if _, err := tx.RevokeAccessPasses(ctx, p.Account.ID, s.now()); err != nil {
			return err
		}
		return createAccessPass(ctx, tx, &recourse.Token{Hash: s.hasher.Sum("token", pass), Purpose: recourse.TokenAccessPass,
			AccountID: p.Account.ID, ExpiresAt: expires, CreatedAt: s.now()})
	}, []string{"A temporary access pass was issued", "A temporary access pass for your account was issued. It works once, until " +
		expires.UTC().Format("2006-01-02 15:04 UTC") + ", to sign in on a new device and add an authenticator there."})
	if err != nil {
		return "", time.Time{}, err
	}
	return pass, expires, nil
}

// SignInAccessPass signs in with a temporary access pass. The pass is used
// up atomically; the session is restricted to enrolling an authenticator.
// Every failure gives the one sign-in error.
func (s *Service) SignInAccessPass(ctx context.Context, identifier, pass string, meta Meta) (*SignIn, error) {
	now := s.now()
	if !s.ipLimit.allow(meta.IP, now) {
		return nil, errRateLimited
	}
	a, err := s.lookupIdentifier(ctx, identifier)
	if err != nil && !errors.Is(err, recourse.ErrNotFound) {
		return nil, internal("sign in", err)
	}
	if a == nil || !credential.ValidToken(AccessPassPrefix, pass) || a.Status != recourse.StatusActive || a.FrozenAt != nil || a.Locked() {
		if a != nil && credential.ValidToken(AccessPassPrefix, pass) {
			return nil, s.signInFailed(ctx, a, meta, recourse.ActionSignInPassword, "tap", "access pass refused: account inactive")
		}
		return nil, errSignIn
	}
	token := credential.NewToken(SessionTokenPrefix)
	ses := &recourse.Session{AccountID: a.ID, TokenHash: s.tokenHash(token), Methods: []string{"tap"}, AuthTime: now, ReauthAt: now,
		CreatedAt: now, IP: meta.IP, UserAgent: truncate(meta.UserAgent, 300), Restricted: true}
	s.setAAL(ses, recourse.AAL1, now)
	err = s.store.InTx(ctx, func(tx recourse.Tx) error {
		t, err := tx.UseToken(ctx, s.hasher.Sum("token", pass), recourse.TokenAccessPass, now)
		if err != nil {
			return err
		}
		if t.AccountID != a.ID {
			return recourse.ErrNotFound
		}
		if err := tx.CreateSession(ctx, ses); err != nil {
			return err
		}
		if err := tx.ResetSignInFailures(ctx, a.ID); err != nil {
			return err
		}
		if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionSignInPassword, Outcome: recourse.OutcomeSuccess,
			SubjectID: a.ID, Evidence: []string{"temporary access pass"}, Attributes: map[string]string{"method": "tap", "session": ses.ID, "restricted": "true"}}, meta); err != nil {
			return err
		}
		return s.notifyAccount(ctx, tx, a, "Your temporary access pass was used", []string{
			"Your temporary access pass was just used to sign in. The session can only add an authenticator.",
		}, meta)
	})
	if errors.Is(err, recourse.ErrNotFound) {
		return nil, s.signInFailed(ctx, a, meta, recourse.ActionSignInPassword, "tap", "wrong, used or expired access pass")
	}
	if err != nil {
		return nil, internal("sign in", err)
	}
	return &SignIn{Token: token, Session: ses}, nil
}
