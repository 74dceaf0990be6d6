package web

import (
	"net/http"

	"github.com/recourse/recourse"
	apiv1 "github.com/recourse/recourse/client"
)

func (s *Server) apiSessionRoutes() []apiRoute {
	return []apiRoute{
		{method: "GET", path: "/api/v1/sessions", auth: apiCaller, scope: "sessions:read", handle: s.apiListSessions},
		{method: "DELETE", path: "/api/v1/sessions/{id}", auth: apiCaller, scope: "sessions:write", handle: s.apiRevokeSession},
	}
}

// apiListSessions lists the caller's own sessions (a key's owner's),
// newest first.
func (s *Server) apiListSessions(c *apiCall) (*apiReply, error) {
	limit, after, err := pageParams(c.r.URL.Query())
	if err != nil {
		return nil, err
	}
	list, err := s.svc.Sessions(c.ctx, c.p.Principal)
	if err != nil {
		return nil, err
	}
	page, next := paginate(list, func(ses *recourse.Session) string { return newestFirst(ses.CreatedAt, ses.ID) }, after, limit)
	out := apiv1.SessionList{Sessions: []apiv1.Session{}, NextCursor: next}
	for _, ses := range page {
		out.Sessions = append(out.Sessions, apiv1.Session{ID: ses.ID, AAL: ses.AAL, Methods: nonNil(ses.Methods), AuthTime: ses.AuthTime,
			LastSeenAt: ses.LastSeenAt, ExpiresAt: ses.ExpiresAt, IP: ses.IP, UserAgent: ses.UserAgent, Restricted: ses.Restricted,
			Current: ses.ID == c.p.Session.ID})
	}
	return okReply(out)
}

// apiRevokeSession signs out one of the caller's own sessions.
func (s *Server) apiRevokeSession(c *apiCall) (*apiReply, error) {
	if err := s.svc.RevokeSession(c.ctx, c.p.Principal, c.r.PathValue("id"), c.p.Meta(c.meta)); err != nil {
		return nil, err
	}
	return &apiReply{Status: http.StatusNoContent}, nil
}
