package service

import (
	"context"
	"errors"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/notify"
)

// completionTTL is how long a completion token lives.
const completionTTL = 15 * time.Minute

// continueRecovery mints the single-use completion token for a ready
// request, bound to the request and to the browser that drives it. The
// token goes into the completion form; only its HMAC is stored.
func (s *Service) continueRecovery(ctx context.Context, id, secret string, meta Meta) (string, error) {
	var token string
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		r, err := s.loadForBrowser(ctx, tx, id, secret)
		if err != nil {
			return err
		}
		if err := s.advance(ctx, tx, r, meta); err != nil {
			return err
		}
		if r.State != recourse.RecoveryReady {
			return recourse.Errorf(recourse.ECONFLICT, "This request cannot be completed yet.")
		}
		token = credential.NewToken(CompletionTokenPrefix)
		return tx.CreateToken(ctx, &recourse.Token{Hash: s.hasher.Sum("token", token), Purpose: recourse.TokenCompletion,
			RequestID: r.ID, AccountID: r.AccountID, BrowserHash: r.BrowserHash, ExpiresAt: s.now().Add(completionTTL), CreatedAt: s.now()})
	})
	if errors.Is(err, recourse.ErrNotFound) {
		return "", errRecoveryClosed
	}
	if err != nil && recourse.ErrorCode(err) == recourse.EINTERNAL {
		return "", internal("continue", err)
	}
	return token, err
}

// Completion is what the person supplies to finish.
type Completion struct {
	// NewPassword is required for password.reset; the person chooses it,
	// nobody else ever does.
	NewPassword string
	// AccessPass asks, after a lost device (authenticator.recover), for a
	// temporary access pass to sign in on the new device instead of a
	// session in this browser. Any other action refuses it before the
	// completion token is used, so the token stays good.
	AccessPass bool
}

// Completed is what a finished recovery gives the person: a session in the
// browser that completed it, or, when they asked for one, a temporary
// access pass for their new device. Exactly one of the two is set.
type Completed struct {
	// SignIn is the new session; nil when an access pass was issued.
	SignIn *SignIn
	// AccessPass (tap_…) is shown once and stored only as an HMAC: it signs
	// in once, before AccessPassExpires, into a session restricted to
	// enrolling an authenticator.
	AccessPass        string
	AccessPassExpires time.Time
}

// completeRecovery consumes the completion token (exactly once, whatever
// the races), applies the change, revokes every other session, token and
// open request of the account, notifies every channel, and signs the person
// in — or, when asked after a lost device, issues the account's one
// temporary access pass instead. After a device recovery the new session
// (or the pass's) is restricted to enrolling a new authenticator.
func (s *Service) completeRecovery(ctx context.Context, id, secret, token string, in Completion, meta Meta) (*Completed, error) {
	if !credential.ValidToken(CompletionTokenPrefix, token) {
		return nil, errRecoveryClosed
	}
	var hash string
	r0, a, err := s.loadForBrowserWithAccount(ctx, id, secret)
	if errors.Is(err, recourse.ErrNotFound) {
		return nil, errRecoveryClosed
	}
	if err != nil {
		return nil, internal("read recovery", err)
	}
	if in.AccessPass && r0.Action != "authenticator.recover" {
		return nil, recourse.FieldError("access_pass", "A temporary access pass can only finish the recovery of a lost device. Finish this recovery here instead.")
	}
	if r0.Action == "password.reset" {
		if err := s.cfg.PasswordRules.Check(in.NewPassword, passwordContext(a)...); err != nil {
			return nil, err
		}
		if hash, err = hashPassword(in.NewPassword, s.cfg.PasswordParams); err != nil {
			return nil, err
		}
	}
	now := s.now()
	var sessToken, pass string
	if in.AccessPass {
		pass = credential.NewToken(AccessPassPrefix)
	} else {
		sessToken = credential.NewToken(SessionTokenPrefix)
	}
	var ses *recourse.Session
	var passExpires time.Time
	err = s.store.InTx(ctx, func(tx recourse.Tx) error {
		t, err := tx.UseToken(ctx, s.hasher.Sum("token", token), recourse.TokenCompletion, now)
		if err != nil {
			return err
		}
		r, err := tx.Recovery(ctx, id)
		if err != nil {
			return err
		}
		if t.RequestID != r.ID || !credential.Equal(t.BrowserHash, r.BrowserHash) || !credential.Equal(r.BrowserHash, s.browserHash(secret)) {
			return recourse.ErrNotFound
		}
		if r.State != recourse.RecoveryReady {
			return recourse.ErrNotFound
		}
		a, err := tx.Account(ctx, r.AccountID)
		if err != nil {
			return err
		}
		if a.Status != recourse.StatusActive || a.FrozenAt != nil {
			return recourse.ErrNotFound
		}
		restricted := false
		switch r.Action {
		case "password.reset":
			if err := s.replacePassword(ctx, tx, a, hash, meta); err != nil {
				return err
			}
		case "authenticator.recover":
			if err := s.revokeKinds(ctx, tx, a, meta, recourse.AuthTOTP, recourse.AuthWebAuthn); err != nil {
				return err
			}
			restricted = true
		case "phone.change", "email.rebind", "recovery_channel.change": // not restricted: the person binds the new channel next
			kind := recourse.ChannelPhone
			if r.Action == "email.rebind" {
				kind = recourse.ChannelEmail
			}
			if r.Action != "recovery_channel.change" {
				// The lost channel stops counting at once; the person binds
				// and confirms the new one before it counts.
				for _, c := range append(append([]recourse.Channel{}, a.Emails...), a.Phones...) {
					if c.Kind == kind {
						if err := tx.DeleteChannel(ctx, c.ID); err != nil {
							return err
						}
					}
				}
			}
		}
		// Everything else the account had in flight ends here.
		if _, err := tx.RevokeSessions(ctx, a.ID, "", now); err != nil {
			return err
		}
		// Every token, earlier access passes included: they are the
		// account's tokens too.
		if _, err := tx.RevokeTokens(ctx, a.ID, t.ID, now); err != nil {
			return err
		}
		others, err := tx.Recoveries(ctx, a.ID, true)
		if err != nil {
			return err
		}
		for _, o := range others {
			if o.ID != r.ID {
				if err := s.transition(ctx, tx, o, recourse.RecoveryCancelled, "Another recovery of the account completed.", meta); err != nil {
					return err
				}
			}
		}
		// The count of wrong codes starts again; a read in this
		// transaction that found none needs no write (a wrong code
		// counted since then stays counted).
		if a.RecoveryFailures != 0 {
			if err := tx.ResetRecoveryFailures(ctx, a.ID); err != nil {
				return err
			}
		}
		if a.Locked() {
			if err := tx.UnlockAccount(ctx, a.ID); err != nil {
				return err
			}
		}
		r.CompletedAt = &now
		if err := s.transition(ctx, tx, r, recourse.RecoveryCompleted, "", meta); err != nil {
			return err
		}
		attrs := map[string]string{"request": r.ID, "action": r.Action}
		if in.AccessPass {
			// The pass, not a session: bound to the account alone (no
			// request, no browser), so it works on the new device.
			// RevokeTokens above leaves expired tokens alone, but an expired,
			// unused pass still holds the account's one pass slot (store
			// migration 0007), so passes are revoked by purpose too, as
			// IssueAccessPass does.
			req, err := s.requirementOf(r)
			if err != nil {
				return err
			}
			passExpires = now.Add(accessPassLifetime(req))
			if _, err := tx.RevokeAccessPasses(ctx, a.ID, now); err != nil {
				return err
			}
			if err := createAccessPass(ctx, tx, &recourse.Token{Hash: s.hasher.Sum("token", pass), Purpose: recourse.TokenAccessPass,
				AccountID: a.ID, ExpiresAt: passExpires, CreatedAt: now}); err != nil {
				return err
			}
			attrs["access_pass"], attrs["access_pass_expires_at"] = "issued", passExpires.UTC().Format(time.RFC3339)
		} else {
			attrs["restricted_session"] = boolString(restricted)
		}
		if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionRecoveryComplete, Outcome: recourse.OutcomeSuccess,
			SubjectID: a.ID, PolicyDigest: r.PolicyDigest, Attributes: attrs}, meta); err != nil {
			return err
		}
		if !in.AccessPass {
			ses = &recourse.Session{AccountID: a.ID, TokenHash: s.tokenHash(sessToken), Methods: []string{"recovery"}, AuthTime: now, ReauthAt: now,
				CreatedAt: now, IP: meta.IP, UserAgent: truncate(meta.UserAgent, 300), Restricted: restricted}
			s.setAAL(ses, recourse.AAL1, now)
			if err := tx.CreateSession(ctx, ses); err != nil {
				return err
			}
		}
		lines := []string{
			"The recovery of your account (" + describeAction(r.Action) + ") was completed.",
			"Every other session was signed out and every outstanding code and link stopped working.",
		}
		switch {
		case in.AccessPass:
			lines = append(lines, "Every authenticator app and passkey of the account was removed.",
				"A temporary access pass was issued instead of a session. It works once, until "+passExpires.UTC().Format("2006-01-02 15:04 UTC")+
					", to sign in on a new device and add an authenticator there.")
		case restricted:
			lines = append(lines, "Every authenticator app and passkey of the account was removed; add a new one now.")
		}
		// a was read before the change: its channels are the old ones, and
		// each hears of it, phones too.
		if err := s.notifyEveryChannel(ctx, tx, a, "Your account was recovered", lines, meta); err != nil {
			return err
		}
		var issued *time.Time
		if in.AccessPass {
			issued = &passExpires
		}
		return s.alertTrustAnchorChange(ctx, tx, a, r, issued, meta)
	})
	if errors.Is(err, recourse.ErrNotFound) {
		return nil, errRecoveryClosed
	}
	if errors.Is(err, errAccessPassRace) {
		return nil, err // rolled back: the completion token still works
	}
	if err != nil {
		return nil, internal("complete recovery", err)
	}
	if in.AccessPass {
		s.log.Info("recovery completed", "account", r0.AccountID, "request", id, "access_pass", "issued")
		return &Completed{AccessPass: pass, AccessPassExpires: passExpires}, nil
	}
	s.log.Info("recovery completed", "account", ses.AccountID, "request", id, "restricted", ses.Restricted)
	return &Completed{SignIn: &SignIn{Token: sessToken, Session: ses}}, nil
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// replacePassword retires the active password and binds a new hash.
func (s *Service) replacePassword(ctx context.Context, tx recourse.Tx, a *recourse.Account, hash string, meta Meta) error {
	now := s.now()
	auths, err := tx.Authenticators(ctx, a.ID)
	if err != nil {
		return err
	}
	for _, au := range auths {
		if au.Kind == recourse.AuthPassword && au.Status == recourse.AuthActive {
			au.Status, au.RevokedAt = recourse.AuthReplaced, &now
			if err := tx.UpdateAuthenticator(ctx, au); err != nil {
				return err
			}
			if err := s.event(ctx, tx, au, recourse.AuthEventReplaced, meta); err != nil {
				return err
			}
		}
	}
	pw := &recourse.Authenticator{AccountID: a.ID, Kind: recourse.AuthPassword, Status: recourse.AuthActive, Name: "Password", Secret: []byte(hash), CreatedAt: now}
	if err := tx.CreateAuthenticator(ctx, pw); err != nil {
		return err
	}
	return s.event(ctx, tx, pw, recourse.AuthEventBound, meta)
}

// revokeKinds revokes the account's active authenticators of the kinds (a
// lost device).
func (s *Service) revokeKinds(ctx context.Context, tx recourse.Tx, a *recourse.Account, meta Meta, kinds ...recourse.AuthenticatorKind) error {
	now := s.now()
	auths, err := tx.Authenticators(ctx, a.ID)
	if err != nil {
		return err
	}
	for _, au := range auths {
		for _, k := range kinds {
			if au.Kind == k && (au.Status == recourse.AuthActive || au.Status == recourse.AuthPending) {
				au.Status, au.RevokedAt = recourse.AuthRevoked, &now
				if err := tx.UpdateAuthenticator(ctx, au); err != nil {
					return err
				}
				if err := s.event(ctx, tx, au, recourse.AuthEventRevoked, meta); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// CancelByToken is "this wasn't me": the token from a notice cancels its
// request and, when freeze is set, freezes the account until the security
// team lifts it. Either way the security team is alerted.
func (s *Service) CancelByToken(ctx context.Context, token string, freeze bool, meta Meta) error {
	if !credential.ValidToken(CancelTokenPrefix, token) {
		return recourse.Errorf(recourse.ENOTFOUND, "This link is not valid any more.")
	}
	now := s.now()
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		t, err := tx.UseToken(ctx, s.hasher.Sum("token", token), recourse.TokenCancel, now)
		if err != nil {
			return err
		}
		r, err := tx.Recovery(ctx, t.RequestID)
		if err != nil {
			return err
		}
		meta.Actor = recourse.AuditActor{AccountID: r.AccountID, Role: recourse.ActorSubject}
		if r.State.Open() {
			if err := s.transition(ctx, tx, r, recourse.RecoveryCancelled, "The account holder said \"this wasn't me\".", meta); err != nil {
				return err
			}
			if err := s.noticeCancelled(ctx, tx, r, meta); err != nil {
				return err
			}
		}
		if freeze {
			if err := tx.SetAccountFrozen(ctx, r.AccountID, &now); err != nil {
				return err
			}
			if _, err := tx.RevokeSessions(ctx, r.AccountID, "", now); err != nil {
				return err
			}
		}
		if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionRecoveryCancel, Outcome: recourse.OutcomeSuccess,
			SubjectID: r.AccountID, Reason: "this wasn't me", Attributes: map[string]string{"request": r.ID, "state_was": string(r.State), "frozen": boolString(freeze)}}, meta); err != nil {
			return err
		}
		data := recoveryData(r)
		data["frozen"] = freeze
		return s.alertSecurity(ctx, tx, securityAlert{Event: notify.EventThisWasntMe, Subject: "\"This wasn't me\" reported for " + r.AccountID,
			Lines: []string{
				"The holder of account " + r.AccountID + " reported a recovery (" + r.ID + ", " + r.Action + ") they did not start.",
				"Frozen: " + boolString(freeze) + ". Investigate before lifting a freeze.",
			}, Data: data}, meta)
	})
	if errors.Is(err, recourse.ErrNotFound) {
		return recourse.Errorf(recourse.ENOTFOUND, "This link is not valid any more.")
	}
	if err != nil {
		return internal("cancel", err)
	}
	s.log.Warn("\"this wasn't me\" reported", "freeze", freeze, "ip", meta.IP)
	return nil
}

// CancelRecovery lets the signed-in account holder stop one of their own
// open requests.
func (s *Service) CancelRecovery(ctx context.Context, p *Principal, id string, meta Meta) error {
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		r, err := tx.Recovery(ctx, id)
		if err != nil {
			return err
		}
		if r.AccountID != p.Account.ID {
			return recourse.ErrNotFound
		}
		if !r.State.Open() {
			return errRecoveryClosed
		}
		if err := s.transition(ctx, tx, r, recourse.RecoveryCancelled, "Cancelled by the account holder.", meta); err != nil {
			return err
		}
		if err := s.noticeCancelled(ctx, tx, r, meta); err != nil {
			return err
		}
		return s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionRecoveryCancel, Outcome: recourse.OutcomeSuccess,
			SubjectID: r.AccountID, Attributes: map[string]string{"request": r.ID}}, meta)
	})
	if errors.Is(err, recourse.ErrNotFound) {
		return recourse.Errorf(recourse.ENOTFOUND, "No such request on your account.")
	}
	if err != nil && recourse.ErrorCode(err) == recourse.EINTERNAL {
		return internal("cancel", err)
	}
	return err
}

// OpenRecoveries lists the principal's own requests, so the portal can show
// a recovery in progress with a way to cancel it.
func (s *Service) AccountRecoveries(ctx context.Context, accountID string) ([]*recourse.Recovery, error) {
	list, err := s.store.Recoveries(ctx, accountID, false)
	return list, internal("list requests", err)
}

// requireUnrestricted refuses a session that came out of a recovery until
// the person has a working authenticator again.
func requireUnrestricted(p *Principal) error {
	if p.Session.Restricted {
		return recourse.Errorf(recourse.EFORBIDDEN, "Finish your recovery first: add a new authenticator app or passkey.")
	}
	return nil
}

// liftRestriction ends a session's restriction once the person has enrolled
// a new authenticator.
func (s *Service) liftRestriction(ctx context.Context, tx recourse.Tx, p *Principal) error {
	if !p.Session.Restricted {
		return nil
	}
	p.Session.Restricted = false
	return tx.UpdateSession(ctx, p.Session)
}
