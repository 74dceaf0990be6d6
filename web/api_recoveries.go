package web

import (
	"net/http"
	"net/url"

	"github.com/recourse/recourse"
	apiv1 "github.com/recourse/recourse/client"
	"github.com/recourse/recourse/service"
)

func (s *Server) apiRecoveryRoutes() []apiRoute {
	return []apiRoute{
		{method: "GET", path: "/api/v1/recoveries", auth: apiCaller, scope: "recovery:read", handle: s.apiListRecoveries},
		{method: "POST", path: "/api/v1/recoveries", auth: apiCaller, scope: "recovery:open", handle: s.apiOpenRecovery},
		{method: "GET", path: "/api/v1/recoveries/{id}", auth: apiCaller, scope: "recovery:read", handle: s.apiGetRecovery},
		{method: "POST", path: "/api/v1/recoveries/{id}/cancel", auth: apiCaller, scope: "recovery:cancel", handle: s.apiCancelRecovery},
	}
}

func recoveryJSON(rep *service.RecoveryReport) apiv1.Recovery {
	r := rep.Request
	return apiv1.Recovery{ID: r.ID, Account: r.AccountID, Action: r.Action, Tier: r.Tier, State: string(rep.State), Lost: r.Lost,
		Initiator: r.Initiator, InitiatorID: r.InitiatorID, Reason: r.Reason, Outcome: r.Outcome, Requirement: rep.Requirement,
		Missing: nonNil(rep.Missing), Evidence: nonNil(rep.Evidence), Approvals: rep.Approvals, Claimed: rep.Claimed,
		PolicyDigest: r.PolicyDigest, CoolingUntil: r.CoolingUntil, ExpiresAt: r.ExpiresAt, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		CompletedAt: r.CompletedAt, Version: r.Version}
}

func recoveryReply(status int, rep *service.RecoveryReport) (*apiReply, error) {
	return &apiReply{Status: status, Body: recoveryJSON(rep), ETag: versionETag(rep.Request.Version),
		Location: "/api/v1/recoveries/" + url.PathEscape(rep.Request.ID)}, nil
}

// apiListRecoveries lists requests, newest first: ?account= (default the
// caller's own) and ?state=open (default) or all. Staff without an account
// get every open request.
func (s *Server) apiListRecoveries(c *apiCall) (*apiReply, error) {
	q := c.r.URL.Query()
	limit, after, err := pageParams(q)
	if err != nil {
		return nil, err
	}
	openOnly := true
	switch q.Get("state") {
	case "", "open":
	case "all":
		openOnly = false
	default:
		return nil, recourse.FieldError("state", "must be open or all")
	}
	reps, err := s.svc.RecoveryReports(c.ctx, c.p, q.Get("account"), openOnly)
	if err != nil {
		return nil, err
	}
	page, next := paginate(reps, func(r *service.RecoveryReport) string { return newestFirst(r.Request.CreatedAt, r.Request.ID) }, after, limit)
	out := apiv1.RecoveryList{Recoveries: []apiv1.Recovery{}, NextCursor: next}
	for _, rep := range page {
		out.Recoveries = append(out.Recoveries, recoveryJSON(rep))
	}
	return okReply(out)
}

// apiOpenRecovery opens a request on a caller's behalf (the help desk): the
// same service call as the help-desk console.
func (s *Server) apiOpenRecovery(c *apiCall) (*apiReply, error) {
	var in apiv1.OpenRecoveryRequest
	if err := decodeAPIBody(c.body, &in, true); err != nil {
		return nil, err
	}
	r, err := s.svc.OpenOnBehalf(c.ctx, c.p.Principal, in.Account, in.Action, in.Reason, in.Note, in.Checks, c.p.Meta(c.meta))
	if err != nil {
		return nil, err
	}
	rep, err := s.svc.RecoveryReport(c.ctx, c.p, r.ID)
	if err != nil {
		return nil, err
	}
	return recoveryReply(http.StatusCreated, rep)
}

func (s *Server) apiGetRecovery(c *apiCall) (*apiReply, error) {
	rep, err := s.svc.RecoveryReport(c.ctx, c.p, c.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return recoveryReply(http.StatusOK, rep)
}

// apiCancelRecovery stops an open request; If-Match (optional) guards
// against cancelling a request that changed since it was read.
func (s *Server) apiCancelRecovery(c *apiCall) (*apiReply, error) {
	ver, err := ifMatchVersion(c.r)
	if err != nil {
		return nil, err
	}
	var in apiv1.CancelRecoveryRequest
	if err := decodeAPIBody(c.body, &in, false); err != nil {
		return nil, err
	}
	id := c.r.PathValue("id")
	if err := s.svc.CancelRecoveryAs(c.ctx, c.p, id, in.Reason, ver, c.meta); err != nil {
		return nil, err
	}
	rep, err := s.svc.RecoveryReport(c.ctx, c.p, id)
	if err != nil {
		return nil, err
	}
	return recoveryReply(http.StatusOK, rep)
}
