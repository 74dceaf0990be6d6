package service

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/notify"
)

// SessionTokenPrefix marks Recourse session secrets, so secret scanners can
// recognise a leaked one.
const SessionTokenPrefix = "rss_"

// errSignIn is the one answer for every failed sign-in: wrong password,
// unknown account, locked, suspended or terminated account, wrong or replayed
// code. It never says which.
var errSignIn = recourse.Errorf(recourse.EUNAUTHORIZED, "The sign-in details are not correct, or this account cannot sign in right now.")

var errRateLimited = recourse.Errorf(recourse.ERATELIMIT, "Too many sign-in attempts from your network. Wait a minute, then try again.")

// maxSecretInput bounds what is hashed, so a huge password cannot tie up a CPU.
const maxSecretInput = 1024

// SignIn is the outcome of a sign-in step.
type SignIn struct {
	// Token is the session secret for the holder's cookie. It is shown once
	// and stored only as a hash.
	Token   string
	Session *recourse.Session
	// SecondFactors, when not empty, means the session still owes a second
	// factor of one of these kinds.
	SecondFactors []recourse.AuthenticatorKind
}

// Complete reports whether the sign-in is finished.
func (s *SignIn) Complete() bool { return len(s.SecondFactors) == 0 }

// Principal is a signed-in caller.
type Principal struct {
	Account *recourse.Account
	Session *recourse.Session
}

func hashPassword(password string, p credential.PasswordParams) (string, error) {
	h, err := credential.HashPassword(password, p)
	if err != nil {
		return "", internal("hash password", err)
	}
	return h, nil
}

func (s *Service) tokenHash(token string) []byte { return s.hasher.Sum("session", token) }

// lookupIdentifier finds an account by username or by a confirmed email
// address held by that account alone.
func (s *Service) lookupIdentifier(ctx context.Context, identifier string) (*recourse.Account, error) {
	id := recourse.NormalizeUsername(identifier)
	if id == "" || len(id) > 254 {
		return nil, recourse.ErrNotFound
	}
	a, err := s.store.AccountByUsername(ctx, id)
	if errors.Is(err, recourse.ErrNotFound) && strings.Contains(id, "@") {
		a, err = s.store.AccountByVerifiedEmail(ctx, id)
	}
	return a, err
}

// SignIn checks an identifier and password. On success it returns a complete
// session, or a pending one that owes a second factor. Every failure returns
// the same error after the same work, so the answer does not reveal whether
// the account exists, is locked, or the password was wrong.
func (s *Service) SignIn(ctx context.Context, identifier, password string, meta Meta) (*SignIn, error) {
	now := s.now()
	if !s.ipLimit.allow(meta.IP, now) {
		s.log.Warn("sign-in rate limited", "ip", meta.IP)
		return nil, errRateLimited
	}
	if len(password) > maxSecretInput {
		password = password[:maxSecretInput]
	}
	a, err := s.lookupIdentifier(ctx, identifier)
	if err != nil && !errors.Is(err, recourse.ErrNotFound) {
		return nil, internal("sign in", err)
	}
	var pw *recourse.Authenticator
	if a != nil {
		auths, err := s.store.Authenticators(ctx, a.ID)
		if err != nil {
			return nil, internal("sign in", err)
		}
		for _, au := range auths {
			if au.Kind == recourse.AuthPassword && au.Status == recourse.AuthActive {
				pw = au
			}
		}
	}
	if a == nil || pw == nil {
		credential.DummyPasswordVerify(password, s.cfg.PasswordParams)
		s.log.Info("sign-in failed", "reason", "unknown account or no password", "ip", meta.IP)
		e := recourse.AuditEvent{Action: recourse.ActionSignInPassword, Outcome: recourse.OutcomeFailure,
			Attributes: map[string]string{"method": "pwd"}}
		if a != nil {
			e.SubjectID, e.Reason = a.ID, "no password set"
		} else {
			e.Reason = "unknown account"
			e.Attributes["identifier_hmac"] = s.identifierHMAC(identifier)
		}
		if err := s.recordAuditTx(ctx, e, meta); err != nil {
			return nil, internal("sign in", err)
		}
		return nil, errSignIn
	}
	ok, rehash, err := credential.VerifyPassword(string(pw.Secret), password, s.cfg.PasswordParams)
	if err != nil {
		s.log.Error("stored password hash unreadable", "account", a.ID, "err", err)
		ok = false
	}
	if a.Locked() || a.Status != recourse.StatusActive || a.FrozenAt != nil {
		s.log.Info("sign-in refused", "account", a.ID, "reason", "locked or inactive", "status", a.Status, "ip", meta.IP)
		reason := "account " + string(a.Status)
		if a.Locked() {
			reason = "account locked"
		}
		e := recourse.AuditEvent{Action: recourse.ActionSignInPassword, Outcome: recourse.OutcomeDenied, SubjectID: a.ID,
			Reason: reason, Attributes: map[string]string{"method": "pwd", "password_correct": strconv.FormatBool(ok)}}
		if err := s.recordAuditTx(ctx, e, meta); err != nil {
			return nil, internal("sign in", err)
		}
		return nil, errSignIn
	}
	if !ok {
		return nil, s.signInFailed(ctx, a, meta, recourse.ActionSignInPassword, "pwd", "wrong password")
	}
	if rehash {
		if h, err := hashPassword(password, s.cfg.PasswordParams); err == nil {
			pw.Secret = []byte(h)
		}
	}
	pw.LastUsedAt = &now
	factors, err := s.secondFactors(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	token := credential.NewToken(SessionTokenPrefix)
	ses := &recourse.Session{
		AccountID: a.ID, TokenHash: s.tokenHash(token), Methods: []string{"pwd"},
		AuthTime: now, ReauthAt: now, CreatedAt: now, LastSeenAt: now,
		IP: meta.IP, UserAgent: truncate(meta.UserAgent, 300),
	}
	if len(factors) == 0 {
		s.setAAL(ses, recourse.AAL1, now)
	} else {
		ses.AAL = recourse.AALNone
		ses.ExpiresAt = now.Add(s.cfg.PendingSignIn)
		ses.IdleTimeout = s.cfg.PendingSignIn
	}
	err = s.store.InTx(ctx, func(tx recourse.Tx) error {
		if err := tx.UpdateAuthenticator(ctx, pw); err != nil {
			return err
		}
		if err := s.event(ctx, tx, pw, recourse.AuthEventUsed, meta); err != nil {
			return err
		}
		if len(factors) == 0 {
			if err := tx.ResetSignInFailures(ctx, a.ID); err != nil {
				return err
			}
		}
		if err := tx.CreateSession(ctx, ses); err != nil {
			return err
		}
		attrs := map[string]string{"session_id": ses.ID, "aal": strconv.Itoa(ses.AAL)}
		if len(factors) > 0 {
			attrs["second_factor"] = "pending"
		}
		return s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionSignInPassword, Outcome: recourse.OutcomeSuccess,
			SubjectID: a.ID, Attributes: attrs, Evidence: []string{"pwd"}}, meta)
	})
	if err != nil {
		return nil, internal("sign in", err)
	}
	s.log.Info("password accepted", "account", a.ID, "session", ses.ID, "pending_second_factor", len(factors) > 0, "ip", meta.IP)
	return &SignIn{Token: token, Session: ses, SecondFactors: factors}, nil
}

// signInFailed counts a failure atomically and records it in the audit log,
// in one transaction; when the count reaches the limit, the same
// transaction locks the account, records the lock-out (an alert) and tells
// the owner. action is the step that failed, method the evidence tried.
func (s *Service) signInFailed(ctx context.Context, a *recourse.Account, meta Meta, action, method, reason string) error {
	var n int
	var locked bool
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		var err error
		if n, locked, err = tx.RecordSignInFailure(ctx, a.ID, s.cfg.SignInFailureLimit, s.now()); err != nil {
			return err
		}
		if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: action, Outcome: recourse.OutcomeFailure, SubjectID: a.ID,
			Reason: reason, Attributes: map[string]string{"method": method, "failures": strconv.Itoa(n)}}, meta); err != nil {
			return err
		}
		if !locked || n != s.cfg.SignInFailureLimit {
			return nil
		}
		if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionAccountLock, Outcome: recourse.OutcomeSuccess,
			SubjectID: a.ID, Actor: recourse.AuditActor{Role: recourse.ActorSystem},
			Reason: strconv.Itoa(n) + " consecutive failed sign-ins",
			Before: map[string]string{"locked": "false"}, After: map[string]string{"locked": "true"}}, meta); err != nil {
			return err
		}
		if err := s.notifyAccount(ctx, tx, a, "Your account was locked", []string{
			"Your account was locked after too many failed sign-in attempts.",
			"To get back in, use \"Can't sign in?\" on the sign-in page or contact the help desk.",
		}, meta); err != nil {
			return err
		}
		return s.alertSecurity(ctx, tx, securityAlert{Event: notify.EventLockout, Subject: "Account " + a.ID + " locked",
			Lines: []string{a.DisplayName + " (" + a.ID + ") was locked after " + strconv.Itoa(n) + " consecutive failed sign-ins."},
			Data:  map[string]any{"account_id": a.ID, "reason": "sign_in_failures", "failures": n}, SkipGroup: true}, meta)
	})
	if err != nil {
		return internal("record sign-in failure", err)
	}
	s.log.Info("sign-in failed", "account", a.ID, "reason", reason, "failures", n, "locked", locked, "ip", meta.IP)
	if locked && n == s.cfg.SignInFailureLimit {
		s.log.Warn("account locked after repeated sign-in failures", "account", a.ID, "failures", n)
	}
	return errSignIn
}

// secondFactors lists the kinds of second factor the account can use now.
func (s *Service) secondFactors(ctx context.Context, accountID string) ([]recourse.AuthenticatorKind, error) {
	auths, err := s.store.Authenticators(ctx, accountID)
	if err != nil {
		return nil, internal("list authenticators", err)
	}
	var kinds []recourse.AuthenticatorKind
	for _, au := range auths {
		if au.Status != recourse.AuthActive || slices.Contains(kinds, au.Kind) {
			continue
		}
		switch au.Kind {
		case recourse.AuthTOTP:
			kinds = append(kinds, au.Kind)
		case recourse.AuthWebAuthn:
			if s.webauthn != nil {
				kinds = append(kinds, au.Kind)
			}
		case recourse.AuthRecoveryCodes:
			if n, err := s.store.UnusedRecoveryCodes(ctx, au.ID); err == nil && n > 0 {
				kinds = append(kinds, au.Kind)
			}
		}
	}
	slices.Sort(kinds)
	return kinds, nil
}

// setAAL sets the session's level and the lifetimes that go with it.
func (s *Service) setAAL(ses *recourse.Session, aal int, now time.Time) {
	l := s.cfg.Sessions[aal]
	ses.AAL = aal
	ses.ExpiresAt = ses.AuthTime.Add(l.Absolute)
	ses.IdleTimeout = l.Idle
	ses.LastSeenAt = now
}

// pending returns the pending sign-in for the token and its account.
func (s *Service) pending(ctx context.Context, token string) (*recourse.Session, *recourse.Account, error) {
	if !credential.ValidToken(SessionTokenPrefix, token) {
		return nil, nil, errSignIn
	}
	ses, a, err := s.store.SessionWithAccount(ctx, s.tokenHash(token))
	if errors.Is(err, recourse.ErrNotFound) {
		return nil, nil, errSignIn
	}
	if err != nil {
		return nil, nil, internal("read session", err)
	}
	if ses.AAL != recourse.AALNone || !ses.Active(s.now()) {
		return nil, nil, errSignIn
	}
	if a.Locked() || a.Status != recourse.StatusActive || a.FrozenAt != nil {
		return nil, nil, errSignIn
	}
	return ses, a, nil
}

// PendingSignIn returns what second factors a pending sign-in can use.
func (s *Service) PendingSignIn(ctx context.Context, token string) (*recourse.Account, []recourse.AuthenticatorKind, error) {
	_, a, err := s.pending(ctx, token)
	if err != nil {
		return nil, nil, err
	}
	kinds, err := s.secondFactors(ctx, a.ID)
	return a, kinds, err
}

// completeSignIn upgrades a pending session: a fresh token (the old one dies,
// so a token seen before the second factor is worthless), the proven AAL and
// its lifetimes; the success is audited in the same transaction.
func (s *Service) completeSignIn(ctx context.Context, tx recourse.Tx, ses *recourse.Session, aal int, method string, meta Meta) (*SignIn, error) {
	now := s.now()
	token := credential.NewToken(SessionTokenPrefix)
	ses.TokenHash = s.tokenHash(token)
	ses.Methods = append(ses.Methods, method)
	ses.AuthTime, ses.ReauthAt = now, now
	ses.Ceremony = nil
	s.setAAL(ses, aal, now)
	if err := tx.UpdateSession(ctx, ses); err != nil {
		return nil, err
	}
	if err := tx.ResetSignInFailures(ctx, ses.AccountID); err != nil {
		return nil, err
	}
	err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionSignInSecondFactor, Outcome: recourse.OutcomeSuccess,
		SubjectID: ses.AccountID, Evidence: slices.Clone(ses.Methods),
		Attributes: map[string]string{"session_id": ses.ID, "aal": strconv.Itoa(aal), "method": method}}, meta)
	if err != nil {
		return nil, err
	}
	return &SignIn{Token: token, Session: ses}, nil
}

// SignInTOTP completes a pending sign-in with a code from an authenticator
// app. A code is accepted once only: a replay within its window fails.
func (s *Service) SignInTOTP(ctx context.Context, token, code string, meta Meta) (*SignIn, error) {
	if !s.ipLimit.allow(meta.IP, s.now()) {
		return nil, errRateLimited
	}
	ses, a, err := s.pending(ctx, token)
	if err != nil {
		return nil, err
	}
	au, err := s.matchTOTP(ctx, a.ID, code)
	if err != nil {
		return nil, err
	}
	if au == nil {
		return nil, s.signInFailed(ctx, a, meta, recourse.ActionSignInSecondFactor, "otp", "wrong or replayed TOTP code")
	}
	var res *SignIn
	err = s.store.InTx(ctx, func(tx recourse.Tx) error {
		if err := s.event(ctx, tx, au, recourse.AuthEventUsed, meta); err != nil {
			return err
		}
		res, err = s.completeSignIn(ctx, tx, ses, recourse.AAL2, "otp", meta)
		return err
	})
	if err != nil {
		return nil, internal("sign in", err)
	}
	s.log.Info("signed in", "account", a.ID, "session", ses.ID, "aal", res.Session.AAL, "method", "otp", "ip", meta.IP)
	return res, nil
}

// matchTOTP finds the active TOTP authenticator the code belongs to and
// atomically records its time step; nil when no authenticator accepts it or
// the code was used before.
func (s *Service) matchTOTP(ctx context.Context, accountID, code string) (*recourse.Authenticator, error) {
	auths, err := s.store.Authenticators(ctx, accountID)
	if err != nil {
		return nil, internal("list authenticators", err)
	}
	now := s.now()
	for _, au := range auths {
		if au.Kind != recourse.AuthTOTP || au.Status != recourse.AuthActive {
			continue
		}
		secret, err := s.sealer.Open(au.Secret, []byte(au.ID))
		if err != nil {
			s.log.Error("TOTP secret cannot be opened", "authenticator", au.ID, "err", err)
			continue
		}
		step, ok := credential.MatchTOTP(string(secret), code, now, 1)
		if !ok {
			continue
		}
		fresh, err := s.store.AdvanceTOTPStep(ctx, au.ID, step, now)
		if err != nil {
			return nil, internal("record TOTP step", err)
		}
		if !fresh {
			return nil, nil // a replay
		}
		au.LastStep, au.LastUsedAt = step, &now
		return au, nil
	}
	return nil, nil
}

// SignInRecoveryCode completes a pending sign-in with a saved recovery code,
// which is used up.
func (s *Service) SignInRecoveryCode(ctx context.Context, token, code string, meta Meta) (*SignIn, error) {
	if !s.ipLimit.allow(meta.IP, s.now()) {
		return nil, errRateLimited
	}
	ses, a, err := s.pending(ctx, token)
	if err != nil {
		return nil, err
	}
	norm, ok := credential.NormalizeRecoveryCode(code)
	if !ok {
		return nil, s.signInFailed(ctx, a, meta, recourse.ActionSignInSecondFactor, "rcode", "malformed recovery code")
	}
	now := s.now()
	var res *SignIn
	var remaining int
	err = s.store.InTx(ctx, func(tx recourse.Tx) error {
		setID, err := tx.UseRecoveryCode(ctx, a.ID, s.hasher.Sum("recovery-code", norm), now)
		if err != nil {
			return err
		}
		set, err := tx.Authenticator(ctx, setID)
		if err != nil {
			return err
		}
		set.LastUsedAt = &now
		if err := tx.UpdateAuthenticator(ctx, set); err != nil {
			return err
		}
		if err := s.event(ctx, tx, set, recourse.AuthEventUsed, meta); err != nil {
			return err
		}
		if remaining, err = tx.UnusedRecoveryCodes(ctx, setID); err != nil {
			return err
		}
		if err := s.notifyAccount(ctx, tx, a, "A recovery code was used to sign in", []string{
			"One of your saved recovery codes was just used to sign in to your account.",
			"Codes left unused: " + strconv.Itoa(remaining) + ". Generate a new set on your security page if you are running low.",
		}, meta); err != nil {
			return err
		}
		res, err = s.completeSignIn(ctx, tx, ses, recourse.AAL2, "rcode", meta)
		return err
	})
	if errors.Is(err, recourse.ErrNotFound) {
		return nil, s.signInFailed(ctx, a, meta, recourse.ActionSignInSecondFactor, "rcode", "wrong or used recovery code")
	}
	if err != nil {
		return nil, internal("sign in", err)
	}
	s.log.Info("signed in", "account", a.ID, "session", ses.ID, "aal", res.Session.AAL, "method", "recovery_code", "codes_left", remaining, "ip", meta.IP)
	return res, nil
}
