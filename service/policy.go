package service

import (
	"context"
	"errors"
	"sync"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/policy"
)

var builtinPolicy = sync.OnceValue(policy.Default)

// Policy returns the policy in force: the one last set, or the built-in.
func (s *Service) Policy() *policy.Policy {
	if p := s.policy.Load(); p != nil {
		return p
	}
	return builtinPolicy()
}

// SetPolicy puts a loaded policy in force for every decision from now on.
// The caller has loaded and linted it; a policy with lint errors must never
// get here.
func (s *Service) SetPolicy(p *policy.Policy) {
	old := s.Policy()
	s.policy.Store(p)
	if old.Digest() != p.Digest() {
		s.log.Info("policy in force", "name", p.Name, "source", p.Source, "digest", p.Digest(), "previous", old.Digest())
	}
}

// PolicyFacts returns the account and its bound authenticators as the policy
// sees them.
func (s *Service) PolicyFacts(ctx context.Context, accountID string) (*recourse.Account, []policy.AuthenticatorFact, error) {
	a, err := s.Account(ctx, accountID)
	if err != nil {
		return nil, nil, err
	}
	facts, err := s.policyFacts(ctx, a)
	return a, facts, err
}

func (s *Service) policyFacts(ctx context.Context, a *recourse.Account) ([]policy.AuthenticatorFact, error) {
	auths, err := s.store.Authenticators(ctx, a.ID)
	if err != nil {
		return nil, internal("list authenticators", err)
	}
	return authenticatorFacts(auths), nil
}

// authenticatorFacts are what the policy sees of an account's
// authenticators: the active ones.
func authenticatorFacts(auths []*recourse.Authenticator) []policy.AuthenticatorFact {
	var facts []policy.AuthenticatorFact
	for _, au := range auths {
		if au.Status != recourse.AuthActive {
			continue
		}
		facts = append(facts, policy.AuthenticatorFact{
			Type: string(au.Kind), PhishingResistant: au.Kind == recourse.AuthWebAuthn,
			DeviceBound: au.DeviceBound, BoundAt: au.CreatedAt,
		})
	}
	return facts
}

// Decide asks the policy in force what the action needs for the account.
// The decision carries the policy's digest; callers record it.
func (s *Service) Decide(ctx context.Context, accountID, action string, req policy.Request) (*policy.Decision, error) {
	a, facts, err := s.PolicyFacts(ctx, accountID)
	if err != nil {
		return nil, err
	}
	if req.Time.IsZero() {
		req.Time = s.now()
	}
	d, err := s.Policy().Decide(ctx, action, policy.Input{Account: a, Authenticators: facts, Request: req})
	if errors.Is(err, policy.ErrUnknownAction) {
		return nil, recourse.Errorf(recourse.EINVALID, "%q is not an action Recourse knows.", action)
	}
	if err != nil {
		return nil, internal("decide", err)
	}
	return d, nil
}
