package service

import (
	"context"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/policy"
)

// RecoveryReport is a request as the people who follow it see it: its
// state as of now, what the policy asks, what is still missing, and the
// evidence so far (never a secret).
type RecoveryReport struct {
	Request *recourse.Recovery
	// State is the state as of now: a finished cooling-off reads as ready,
	// a request past its expiry as expired, before the job queue writes it.
	State       recourse.RecoveryState
	Requirement string
	Missing     []string
	Evidence    []string
	Approvals   int
	// Claimed is true once the subject's browser (or API client) holds the
	// request's secret.
	Claimed bool
}

var errNoRequest = recourse.Errorf(recourse.ENOTFOUND, "No such recovery request.")

// mayFollow reports whether p may read r: its subject, its initiator,
// administrators, the help desk and the security team, and the people the
// policy asks to approve it.
func (s *Service) mayFollow(ctx context.Context, p *Principal, r *recourse.Recovery) (bool, error) {
	if r.AccountID == p.Account.ID || r.InitiatorID == p.Account.ID || staff(p.Account) {
		return true, nil
	}
	if !r.State.Open() {
		return false, nil
	}
	subject, err := s.store.Account(ctx, r.AccountID)
	if err != nil {
		return false, internal("read subject", err)
	}
	req, err := s.requirementOf(r)
	if err != nil {
		return false, err
	}
	return len(s.eligibleRoles(ctx, subject, p.Account, req)) > 0, nil
}

func (s *Service) report(ctx context.Context, r *recourse.Recovery) (*RecoveryReport, error) {
	p, err := s.evidenceOf(ctx, s.store, r)
	if err != nil {
		return nil, internal("read evidence", err)
	}
	ev, labels := p.ev, p.labels
	rep := &RecoveryReport{Request: r, State: s.effectiveState(r), Evidence: labels, Approvals: len(ev.Approvals), Claimed: len(r.BrowserHash) > 0}
	if rep.State.Open() {
		req, err := s.requirementOf(r)
		if err != nil {
			return nil, err
		}
		rep.Requirement = policy.Describe(req.Evidence)
		rep.Missing = policy.Satisfied(req, ev).Missing
	}
	return rep, nil
}

// RecoveryReport returns one request to someone who may follow it; anyone
// else gets ENOTFOUND, the same as for a request that does not exist.
func (s *Service) RecoveryReport(ctx context.Context, p *APIPrincipal, id string) (*RecoveryReport, error) {
	r, err := s.store.Recovery(ctx, id)
	if errors.Is(err, recourse.ErrNotFound) {
		return nil, errNoRequest
	}
	if err != nil {
		return nil, internal("read request", err)
	}
	ok, err := s.mayFollow(ctx, p.Principal, r)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errNoRequest
	}
	return s.report(ctx, r)
}

// RecoveryReports lists requests, newest first: an account's (the caller's
// own, or anyone's for staff), or, for staff with accountID empty and
// openOnly set, every open request in the organisation.
func (s *Service) RecoveryReports(ctx context.Context, p *APIPrincipal, accountID string, openOnly bool) ([]*RecoveryReport, error) {
	var list []*recourse.Recovery
	var err error
	switch {
	case accountID == "" && openOnly && staff(p.Account):
		list, err = s.store.OpenRecoveries(ctx, nil, 1000)
		for i, j := 0, len(list)-1; i < j; i, j = i+1, j-1 {
			list[i], list[j] = list[j], list[i]
		}
	case accountID == "" || accountID == p.Account.ID:
		list, err = s.store.Recoveries(ctx, p.Account.ID, openOnly)
	case staff(p.Account):
		list, err = s.store.Recoveries(ctx, accountID, openOnly)
	default:
		return nil, recourse.Errorf(recourse.EFORBIDDEN, "You can list only your own requests.")
	}
	if err != nil {
		return nil, internal("list requests", err)
	}
	out := make([]*RecoveryReport, 0, len(list))
	for _, r := range list {
		rep, err := s.report(ctx, r)
		if err != nil {
			return nil, err
		}
		out = append(out, rep)
	}
	return out, nil
}

// CancelRecoveryAs stops an open request. The subject cancels their own
// (CancelRecovery); the agent who opened a request, administrators and
// the security team cancel any, with a reason the subject is told.
// ifVersion, when not 0, must be the request's current version (its ETag).
func (s *Service) CancelRecoveryAs(ctx context.Context, p *APIPrincipal, id, reason string, ifVersion int64, meta Meta) error {
	reason = strings.TrimSpace(reason)
	if utf8.RuneCountInString(reason) > 500 || !utf8.ValidString(reason) || strings.ContainsAny(reason, "\x00\r\n") {
		return recourse.FieldError("reason", "at most 500 characters on one line")
	}
	r, err := s.store.Recovery(ctx, id)
	if errors.Is(err, recourse.ErrNotFound) {
		return errNoRequest
	}
	if err != nil {
		return internal("read request", err)
	}
	if ifVersion != 0 && ifVersion != r.Version {
		return errStaleVersion
	}
	if r.AccountID == p.Account.ID {
		return s.CancelRecovery(ctx, p.Principal, id, p.Meta(meta))
	}
	role := recourse.ActorAdmin
	switch {
	case p.Account.HasRole(recourse.RoleAdmin) || p.Account.HasRole(recourse.RoleSecurity):
	case r.InitiatorID == p.Account.ID && p.Account.HasRole(recourse.RoleHelpdesk):
		role = recourse.ActorHelpdesk
	default:
		if ok, err := s.mayFollow(ctx, p.Principal, r); err != nil || !ok {
			return errNoRequest
		}
		return recourse.Errorf(recourse.EFORBIDDEN, "Only the subject, the agent who opened it, administrators and the security team cancel a request.")
	}
	if err := requireUnrestricted(p.Principal); err != nil {
		return err
	}
	meta = p.asRole(meta, role)
	who := p.Account.DisplayName
	err = s.store.InTx(ctx, func(tx recourse.Tx) error {
		r, err := tx.Recovery(ctx, id)
		if err != nil {
			return err
		}
		if ifVersion != 0 && ifVersion != r.Version {
			return errStaleVersion
		}
		if !r.State.Open() {
			return errRecoveryClosed
		}
		outcome := "Cancelled by " + who + "."
		if reason != "" {
			outcome = "Cancelled by " + who + ": " + reason
		}
		if err := s.transition(ctx, tx, r, recourse.RecoveryCancelled, outcome, meta); err != nil {
			return err
		}
		if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionRecoveryCancel, Outcome: recourse.OutcomeSuccess,
			SubjectID: r.AccountID, Reason: reason, Attributes: map[string]string{"request": r.ID, "by": p.Account.ID}}, meta); err != nil {
			return err
		}
		subject, err := tx.Account(ctx, r.AccountID)
		if err != nil {
			return err
		}
		return s.notifyAccount(ctx, tx, subject, "A recovery of your account was cancelled", []string{
			"The recovery of your account (" + describeAction(r.Action) + ", reference " + r.ID + ") was cancelled by " + who + ".",
			"If you still need help, contact your help desk.",
		}, meta)
	})
	if errors.Is(err, recourse.ErrConflict) {
		return errStaleVersion
	}
	if err != nil && recourse.ErrorCode(err) == recourse.EINTERNAL {
		return internal("cancel request", err)
	}
	return err
}

// PolicyInfo describes the policy in force.
type PolicyInfo struct {
	Name        string
	Description string
	Source      string
	Digest      string
	Actions     []string
}

func requirePolicyReader(p *APIPrincipal) error {
	if !p.Account.HasRole(recourse.RoleAdmin) && !p.Account.HasRole(recourse.RoleSecurity) && !p.Account.HasRole(recourse.RoleHelpdesk) {
		return recourse.Errorf(recourse.EFORBIDDEN, "Reading the policy needs the admin, security or helpdesk role.")
	}
	return nil
}

// ActivePolicy describes the policy in force to staff.
func (s *Service) ActivePolicy(p *APIPrincipal) (*PolicyInfo, error) {
	if err := requirePolicyReader(p); err != nil {
		return nil, err
	}
	pol := s.Policy()
	return &PolicyInfo{Name: pol.Name, Description: pol.Description, Source: pol.Source, Digest: pol.Digest(), Actions: policy.Actions()}, nil
}

// ExplainDecision asks the policy in force what an action would need for
// an account, for staff (the same decision a request would get now).
func (s *Service) ExplainDecision(ctx context.Context, p *APIPrincipal, accountID, action, initiator string) (*policy.Decision, error) {
	if err := requirePolicyReader(p); err != nil {
		return nil, err
	}
	if initiator == "" {
		initiator = "self"
	}
	ok := false
	for _, i := range policy.Initiators {
		ok = ok || i == initiator
	}
	if !ok {
		return nil, recourse.FieldError("initiator", "must be one of %s", strings.Join(policy.Initiators, ", "))
	}
	if !recourse.ValidID(accountID) {
		return nil, recourse.FieldError("account", "is not an account id")
	}
	return s.Decide(ctx, accountID, action, policy.Request{Initiator: initiator})
}
