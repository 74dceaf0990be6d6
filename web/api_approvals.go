package web

import (
	"strings"

	"github.com/recourse/recourse"
	apiv1 "github.com/recourse/recourse/client"
	"github.com/recourse/recourse/service"
)

func (s *Server) apiApprovalRoutes() []apiRoute {
	return []apiRoute{
		{method: "GET", path: "/api/v1/approvals", auth: apiCaller, scope: "approvals:read", handle: s.apiListApprovals},
		{method: "GET", path: "/api/v1/approvals/{id}", auth: apiCaller, scope: "approvals:read", handle: s.apiGetApproval},
		{method: "POST", path: "/api/v1/approvals/{id}/vote", auth: apiCaller, scope: "approvals:vote", handle: s.apiVote},
	}
}

func approvalJSON(it *service.ApprovalItem) apiv1.Approval {
	r := it.Request
	out := apiv1.Approval{RequestID: r.ID, Subject: summary(it.Subject), Action: r.Action, Tier: r.Tier, State: string(r.State),
		Change: r.Change, ChangeDigest: r.ChangeDigest, Initiator: r.Initiator, InitiatorID: r.InitiatorID, Reason: r.Reason, IP: r.IP,
		Roles: nonNil(it.Roles), Requirement: it.Requirement, Evidence: nonNil(it.Evidence), Missing: nonNil(it.Missing),
		Votes: []apiv1.Vote{}, Voted: it.Voted, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt}
	for _, v := range it.Votes {
		out.Votes = append(out.Votes, apiv1.Vote{Approver: v.ApproverID, Vote: v.Vote, Roles: nonNil(v.Roles), Comment: v.Comment, CreatedAt: v.CreatedAt})
	}
	return out
}

// changeETag is an approval's ETag: the digest of the exact change it is
// about. Voting with If-Match set to it refuses a change edited since.
func changeETag(digest string) string { return `"` + digest + `"` }

// digestFromETag reads a change digest back from an If-Match value (a
// strong ETag of 64 hex digits).
func digestFromETag(etag string) (string, bool) {
	d := strings.TrimSuffix(strings.TrimPrefix(etag, `"`), `"`)
	if len(d) != 64 || len(etag) != 66 || strings.Trim(d, "0123456789abcdef") != "" {
		return "", false
	}
	return d, true
}

func approvalReply(it *service.ApprovalItem) (*apiReply, error) {
	return &apiReply{Status: 200, Body: approvalJSON(it), ETag: changeETag(it.Request.ChangeDigest)}, nil
}

// apiListApprovals lists the requests waiting for the caller's vote,
// oldest first.
func (s *Server) apiListApprovals(c *apiCall) (*apiReply, error) {
	limit, after, err := pageParams(c.r.URL.Query())
	if err != nil {
		return nil, err
	}
	items, err := s.svc.PendingApprovals(c.ctx, c.p.Principal)
	if err != nil {
		return nil, err
	}
	page, next := paginate(items, func(it *service.ApprovalItem) string { return oldestFirst(it.Request.CreatedAt, it.Request.ID) }, after, limit)
	out := apiv1.ApprovalList{Approvals: []apiv1.Approval{}, NextCursor: next}
	for _, it := range page {
		out.Approvals = append(out.Approvals, approvalJSON(it))
	}
	return okReply(out)
}

func (s *Server) apiGetApproval(c *apiCall) (*apiReply, error) {
	it, err := s.svc.ApprovalDetail(c.ctx, c.p.Principal, c.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return approvalReply(it)
}

// apiVote records the caller's vote on the request's current change. With
// If-Match, the vote is refused if the change was edited since the caller
// read it (the service binds the vote to the change it holds when it
// counts the vote).
func (s *Server) apiVote(c *apiCall) (*apiReply, error) {
	var in apiv1.VoteRequest
	if err := decodeAPIBody(c.body, &in, true); err != nil {
		return nil, err
	}
	id := c.r.PathValue("id")
	expected := ""
	if m := strings.TrimSpace(c.r.Header.Get("If-Match")); m != "" && m != "*" {
		d, ok := digestFromETag(m)
		if !ok {
			return nil, recourse.Errorf(recourse.ECONFLICT, "The request's change was edited since you read it. Read it again before voting.")
		}
		expected = d
	}
	// The service checks the digest in the transaction that counts the vote.
	it, err := s.svc.VoteOnChange(c.ctx, c.p.Principal, id, in.Vote, in.Comment, expected, c.p.Meta(c.meta))
	if err != nil {
		return nil, err
	}
	return approvalReply(it)
}
