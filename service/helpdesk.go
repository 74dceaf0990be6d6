package service

import (
	"context"
	"errors"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/policy"
)

// HelpdeskReasons are the reason codes an agent picks when opening a request
// on a caller's behalf.
var HelpdeskReasons = []string{"lost_device", "forgot_password", "new_phone", "new_email", "locked_out", "other"}

// HelpdeskChecks are the checks an agent can attest to having done. They are
// recorded; they never replace evidence.
var HelpdeskChecks = []string{"caller_verified_totp", "called_back_on_record", "manager_confirmed_by_phone", "id_seen_on_video"}

// requireAgent allows help-desk agents signed in with a second factor.
func requireAgent(p *Principal) error {
	if !p.Account.HasRole(recourse.RoleHelpdesk) {
		return recourse.Errorf(recourse.EFORBIDDEN, "This needs the help-desk role.")
	}
	if err := requireUnrestricted(p); err != nil {
		return err
	}
	if p.Session.AAL < recourse.AAL2 {
		return recourse.Errorf(recourse.ESTEPUP, "Help-desk actions need a sign-in with a second factor.")
	}
	return nil
}

// VerifyCaller checks a code the caller reads from their own registered
// authenticator app. The agent learns only yes or no; the code is used up
// (it cannot be replayed), and the check is audited.
func (s *Service) VerifyCaller(ctx context.Context, agent *Principal, accountID, code string, meta Meta) (bool, error) {
	if err := requireAgent(agent); err != nil {
		return false, err
	}
	a, err := s.Account(ctx, accountID)
	if err != nil {
		return false, err
	}
	au, err := s.matchTOTP(ctx, a.ID, code)
	if err != nil {
		return false, err
	}
	ok := au != nil
	outcome := recourse.OutcomeSuccess
	if !ok {
		outcome = recourse.OutcomeFailure
		if _, err := s.countRecoveryFailure(ctx, a.ID, meta); err != nil {
			return false, internal("count failure", err)
		}
	}
	meta.Actor = recourse.AuditActor{AccountID: agent.Account.ID, Role: recourse.ActorHelpdesk}
	if err := s.recordAuditTx(ctx, recourse.AuditEvent{Action: recourse.ActionCallerVerify, Outcome: outcome, SubjectID: a.ID,
		Evidence: []string{"totp read back by the caller"}}, meta); err != nil {
		return false, internal("audit", err)
	}
	return ok, nil
}

// OpenOnBehalf opens a request for a caller. It follows the policy with the
// help desk as initiator (which can only add requirements), records the
// agent's attestation (never sufficient alone), and sends the caller codes
// on their own confirmed channels with a reference to claim the request from
// their browser. The agent never sees a code and can never complete it.
func (s *Service) OpenOnBehalf(ctx context.Context, agent *Principal, accountID, action, reason, note string, checks []string, meta Meta) (*recourse.Recovery, error) {
	if err := requireAgent(agent); err != nil {
		return nil, err
	}
	if _, ok := policy.Catalogue[action]; !ok || policy.Catalogue[action] == policy.TierRoutine {
		return nil, recourse.FieldError("action", "choose a recovery action (password reset, lost device, phone or email change)")
	}
	if !slices.Contains(HelpdeskReasons, reason) {
		return nil, recourse.FieldError("reason", "choose a reason code")
	}
	note = strings.TrimSpace(note)
	if utf8.RuneCountInString(note) > 500 {
		return nil, recourse.FieldError("note", "at most 500 characters")
	}
	for _, c := range checks {
		if !slices.Contains(HelpdeskChecks, c) {
			return nil, recourse.FieldError("checks", "%q is not a known check", c)
		}
	}
	a, err := s.Account(ctx, accountID)
	if err != nil {
		return nil, err
	}
	if a.ID == agent.Account.ID {
		return nil, recourse.Errorf(recourse.EFORBIDDEN, "Agents cannot open requests for their own account.")
	}
	meta.Actor = recourse.AuditActor{AccountID: agent.Account.ID, Role: recourse.ActorHelpdesk}
	meta.Channel = recourse.ViaHelpdesk
	id := recourse.NewID("rr_")
	lost := ""
	for l, act := range LostActions {
		if act == action {
			lost = l
		}
	}
	req := policy.Request{Initiator: "help_desk", InitiatorID: agent.Account.ID, IP: meta.IP, Time: s.now()}
	att := &policy.Attestation{AgentID: agent.Account.ID}
	fullReason := reason
	if len(checks) > 0 {
		fullReason += " [" + strings.Join(checks, ",") + "]"
	}
	if note != "" {
		fullReason += ": " + note
	}
	facts, err := s.policyFacts(ctx, a)
	if err != nil {
		return nil, err
	}
	if err := s.openRecovery(ctx, nil, a, facts, action, lost, req, id, nil, fullReason, att, meta); err != nil {
		return nil, err
	}
	r, err := s.store.Recovery(ctx, id)
	if errors.Is(err, recourse.ErrNotFound) {
		// Refused before a request existed (a frozen account).
		return nil, recourse.Errorf(recourse.EFORBIDDEN, "This account cannot be recovered now; the security team handles it.")
	}
	if err != nil {
		return nil, internal("read request", err)
	}
	// A request for a privileged account has alerted the security team in
	// the transaction that opened it (reportOpened).
	return r, nil
}

// ClaimRecovery binds a request the help desk opened to the caller's
// browser: the caller gives the reference and one of the codes sent to
// their own channels, which also counts as evidence. Only an unclaimed
// request can be claimed.
func (s *Service) ClaimRecovery(ctx context.Context, reference, code string, meta Meta) (*RecoveryStart, error) {
	reference = strings.TrimSpace(reference)
	if !strings.HasPrefix(reference, "rr_") || len(reference) > 64 {
		return nil, errWrongCode
	}
	r, a, err := s.store.RecoveryWithAccount(ctx, reference)
	if errors.Is(err, recourse.ErrNotFound) {
		return nil, errWrongCode
	}
	if err != nil {
		return nil, internal("read request", err)
	}
	if len(r.BrowserHash) > 0 || !r.State.Open() {
		return nil, errWrongCode
	}
	if err := s.checkChallenge(ctx, r, a, strings.ReplaceAll(strings.TrimSpace(code), " ", ""), meta, nil); err != nil {
		return nil, err
	}
	secret := credential.NewToken(BrowserSecretPrefix)
	hash := s.browserHash(secret)
	err = s.store.InTx(ctx, func(tx recourse.Tx) error {
		r, err := tx.Recovery(ctx, reference)
		if err != nil {
			return err
		}
		if len(r.BrowserHash) > 0 {
			return errWrongCode // claimed by a racing browser
		}
		r.BrowserHash, r.UpdatedAt = hash, s.now()
		return tx.UpdateRecovery(ctx, r)
	})
	if errors.Is(err, recourse.ErrConflict) {
		return nil, errWrongCode
	}
	if err != nil && recourse.ErrorCode(err) == recourse.EINTERNAL {
		return nil, internal("claim", err)
	}
	if err != nil {
		return nil, err
	}
	return &RecoveryStart{RequestID: reference, BrowserSecret: secret}, nil
}
