package web

import (
	apiv1 "github.com/recourse/recourse/client"
)

func (s *Server) apiPolicyRoutes() []apiRoute {
	return []apiRoute{
		{method: "GET", path: "/api/v1/policy", auth: apiCaller, scope: "policy:read", handle: s.apiPolicy},
		{method: "GET", path: "/api/v1/policy/decisions", auth: apiCaller, scope: "policy:read", handle: s.apiExplain},
	}
}

// apiPolicy shows the policy in force and its digest (the digest every
// decision and audit event records).
func (s *Server) apiPolicy(c *apiCall) (*apiReply, error) {
	info, err := s.svc.ActivePolicy(c.p)
	if err != nil {
		return nil, err
	}
	return okReply(apiv1.Policy{Name: info.Name, Description: info.Description, Source: info.Source, Digest: info.Digest, Actions: nonNil(info.Actions)})
}

// apiExplain answers what the policy in force decides for
// ?account=&action=[&initiator=self|help_desk|api|admin], as `recourse
// policy explain --json` does offline.
func (s *Server) apiExplain(c *apiCall) (*apiReply, error) {
	q := c.r.URL.Query()
	d, err := s.svc.ExplainDecision(c.ctx, c.p, q.Get("account"), q.Get("action"), q.Get("initiator"))
	if err != nil {
		return nil, err
	}
	j := d.JSON()
	return okReply(apiv1.Decision{Decision: j.Decision, Reason: j.Reason, Rule: j.Rule, Tier: string(j.Tier), Action: j.Action,
		Classes: nonNil(j.Classes), Requirement: j.Requirement, RequirementText: j.RequirementText, Delay: j.Delay, PolicyDigest: j.PolicyDigest})
}
