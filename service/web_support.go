package service

import (
	"context"
	"errors"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/policy"
)

// This file holds the small read-only helpers the help-desk console pages
// need. The rules they apply live here, not in the web layer.

// HelpdeskConsole returns EFORBIDDEN unless p may open the help-desk
// console's pages (search, account cards, request status): help-desk agents
// only. Every action in the console (VerifyCaller, OpenOnBehalf) checks more
// when it runs: a second factor and an unrestricted session.
func (s *Service) HelpdeskConsole(p *Principal) error {
	if p == nil || p.Account == nil || !p.Account.HasRole(recourse.RoleHelpdesk) {
		return recourse.Errorf(recourse.EFORBIDDEN, "This page is for help-desk agents.")
	}
	return nil
}

// AgentRecoveryView is a request as the help-desk console shows it: where it
// is and what it still needs, in the policy's plain words. It never holds a
// code, a token or anything the caller proves with.
type AgentRecoveryView struct {
	Request *recourse.Recovery
	// State is the state as of now (a cooling-off that has run out reads as
	// ready, a request past its expiry as expired).
	State       recourse.RecoveryState
	Requirement string
	Missing     []string
	Evidence    []string
	// Approvals counts the approving votes on the current change.
	Approvals int
}

// AgentRecovery returns one request for a help-desk agent to follow, for
// example right after OpenOnBehalf or while a caller is on the line.
func (s *Service) AgentRecovery(ctx context.Context, agent *Principal, id string) (*AgentRecoveryView, error) {
	if err := s.HelpdeskConsole(agent); err != nil {
		return nil, err
	}
	r, err := s.store.Recovery(ctx, id)
	if errors.Is(err, recourse.ErrNotFound) {
		return nil, recourse.Errorf(recourse.ENOTFOUND, "There is no such request.")
	}
	if err != nil {
		return nil, internal("read request", err)
	}
	p, err := s.evidenceOf(ctx, s.store, r)
	if err != nil {
		return nil, internal("read evidence", err)
	}
	ev, labels := p.ev, p.labels
	v := &AgentRecoveryView{Request: r, State: s.effectiveState(r), Evidence: labels, Approvals: len(ev.Approvals)}
	if r.State.Open() {
		req, err := s.requirementOf(r)
		if err != nil {
			return nil, err
		}
		v.Requirement = policy.Describe(req.Evidence)
		v.Missing = policy.Satisfied(req, ev).Missing
	}
	return v, nil
}
