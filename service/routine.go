package service

import (
	"context"
	"encoding/json"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/policy"
)

// routine runs a signed-in self-service action through the policy: the
// session is the evidence. When the requirement is met the change applies at
// once, in one transaction with its request record, audit event and notices;
// when it is not, the caller is asked to confirm it's them (step-up). The
// policy can deny, or ask for more than a session (then it is not routine
// for this subject and the caller must use recovery).
func (s *Service) routine(ctx context.Context, p *Principal, action string, meta Meta, apply func(tx recourse.Tx) error, notice []string) error {
	if err := requireUnrestricted(p); err != nil && action != "authenticator.add" && action != "recovery_codes.regenerate" {
		return err
	}
	now := s.now()
	d, err := s.Decide(ctx, p.Account.ID, action, policy.Request{Initiator: "self", IP: meta.IP, Time: now, SessionAAL: p.Session.AAL})
	if err != nil {
		return err
	}
	if d.Outcome == policy.Deny {
		_ = s.recordAuditTx(ctx, recourse.AuditEvent{Action: action, Outcome: recourse.OutcomeDenied, SubjectID: p.Account.ID,
			Reason: d.Reason, PolicyDigest: d.PolicyDigest, Attributes: map[string]string{"rule": d.Rule}}, meta)
		return recourse.Errorf(recourse.EFORBIDDEN, "%s", d.Reason)
	}
	last := p.Session.AuthTime
	if p.Session.ReauthAt.After(last) {
		last = p.Session.ReauthAt
	}
	ev := policy.Evidence{Sessions: []policy.SessionProof{{AAL: p.Session.AAL, Age: now.Sub(last)}}}
	res := policy.Satisfied(d.Requirement, ev)
	if !res.Satisfied {
		if policy.Satisfied(d.Requirement, policy.Evidence{Sessions: []policy.SessionProof{{AAL: recourse.AAL3}}}).Satisfied {
			return recourse.Errorf(recourse.ESTEPUP, "For your security, confirm it's you before making this change.")
		}
		return recourse.Errorf(recourse.EFORBIDDEN, "This change needs more than a sign-in for your account. Use \"Can't sign in?\" or ask your help desk.")
	}
	if res.Delay > 0 {
		return recourse.Errorf(recourse.EFORBIDDEN, "This change has a cooling-off period; start it as a recovery request.")
	}
	reqJSON, _ := json.Marshal(d.Requirement)
	change := map[string]string{"action": action, "account": p.Account.ID}
	r := &recourse.Recovery{ID: recourse.NewID("rr_"), AccountID: p.Account.ID, Action: action, Tier: string(d.Tier),
		State: recourse.RecoveryCompleted, Initiator: "self", InitiatorID: p.Account.ID, Change: change, ChangeDigest: changeDigest(change),
		PolicyDigest: d.PolicyDigest, Rule: d.Rule, Requirement: reqJSON, RequirementDigest: d.Requirement.Digest(),
		ExpiresAt: now, CreatedAt: now, UpdatedAt: now, CompletedAt: &now, IP: meta.IP, UserAgent: truncate(meta.UserAgent, 300)}
	err = s.store.InTx(ctx, func(tx recourse.Tx) error {
		if err := apply(tx); err != nil {
			return err
		}
		if err := tx.CreateRecovery(ctx, r); err != nil {
			return err
		}
		if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionRecoveryComplete, Outcome: recourse.OutcomeSuccess,
			SubjectID: p.Account.ID, PolicyDigest: d.PolicyDigest, Evidence: []string{"session AAL" + itoaAAL(p.Session.AAL)},
			Attributes: map[string]string{"request": r.ID, "action": action, "tier": string(d.Tier), "rule": d.Rule}}, meta); err != nil {
			return err
		}
		if len(notice) > 0 {
			return s.notifyAccount(ctx, tx, p.Account, notice[0], notice[1:], meta)
		}
		return nil
	})
	if err != nil && recourse.ErrorCode(err) == recourse.EINTERNAL {
		return internal(action, err)
	}
	return err
}

func itoaAAL(aal int) string { return string(rune('0' + aal)) }

// policyRequest is the policy's view of a signed-in self-service request.
func policyRequest(p *Principal, meta Meta, now time.Time) policy.Request {
	return policy.Request{Initiator: "self", InitiatorID: p.Account.ID, IP: meta.IP, Time: now, SessionAAL: p.Session.AAL}
}

// ChangePassword changes the signed-in holder's password (password.change):
// the current password is asked again, the new one checked against the
// rules, and every other session is signed out.
func (s *Service) ChangePassword(ctx context.Context, p *Principal, current, next string, meta Meta) error {
	if len(current) > maxSecretInput || len(next) > 4*s.cfg.PasswordRules.MaxLength {
		return recourse.FieldError("password", "is too long")
	}
	auths, err := s.store.Authenticators(ctx, p.Account.ID)
	if err != nil {
		return internal("list authenticators", err)
	}
	ok := false
	for _, au := range auths {
		if au.Kind == recourse.AuthPassword && au.Status == recourse.AuthActive {
			ok, _, _ = credential.VerifyPassword(string(au.Secret), current, s.cfg.PasswordParams)
		}
	}
	if !ok {
		_ = s.signInFailed(ctx, p.Account, meta, recourse.ActionReauthenticate, "pwd", "wrong current password at password change")
		return recourse.FieldError("current_password", "Your current password is not right.")
	}
	if err := s.cfg.PasswordRules.Check(next, passwordContext(p.Account)...); err != nil {
		return err
	}
	hash, err := hashPassword(next, s.cfg.PasswordParams)
	if err != nil {
		return err
	}
	return s.routine(ctx, p, "password.change", meta, func(tx recourse.Tx) error {
		if err := s.replacePassword(ctx, tx, p.Account, hash, meta); err != nil {
			return err
		}
		_, err := tx.RevokeSessions(ctx, p.Account.ID, p.Session.ID, s.now())
		return err
	}, []string{"Your password was changed", "The password of your account was changed. Your other sessions were signed out."})
}
