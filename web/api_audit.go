package web

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/recourse/recourse"
)

// auditRoutes serves the audit log's API: the events, for administrators
// and the security team (signed in, or with an API key holding audit:read),
// and the latest signed checkpoint, for anyone who wants to witness the
// log. They are routes of the JSON API (api.go).
func (s *Server) auditRoutes(mux *http.ServeMux) { s.registerAPI(mux, s.auditAPIRoutes()) }

func (s *Server) auditAPIRoutes() []apiRoute {
	return []apiRoute{
		{method: "GET", path: "/api/v1/audit", auth: apiCaller, scope: "audit:read", handle: s.apiAuditEvents},
		{method: "GET", path: "/api/v1/audit/checkpoint", auth: apiPublic, handle: s.apiAuditCheckpoint},
	}
}

const (
	auditPageDefault = 100
	auditPageMax     = 500
)

// auditPage is the body of GET /api/v1/audit.
type auditPage struct {
	// Events are in their canonical encoding, with their positions.
	Events []json.RawMessage `json:"events"`
	// NextCursor continues the listing; absent on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

func encodeCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(seq, 10)))
}

func decodeCursor(c string) (int64, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	return n, err == nil && n >= 0
}

// auditFilter reads the query: account, actor, action, request, since,
// until (RFC 3339), order (desc, the default, or asc), limit, cursor.
func auditFilter(r *http.Request) (recourse.AuditFilter, error) {
	q := r.URL.Query()
	f := recourse.AuditFilter{
		AccountID: q.Get("account"), ActorID: q.Get("actor"), Action: q.Get("action"), RequestID: q.Get("request"),
		Limit: auditPageDefault, Descending: true,
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, recourse.FieldError(p.name, "must be an RFC 3339 time like 2026-11-26T09:00:00Z")
			}
			*p.dst = t
		}
	}
	switch q.Get("order") {
	case "", "desc":
	case "asc":
		f.Descending = false
	default:
		return f, recourse.FieldError("order", "must be asc or desc")
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > auditPageMax {
			return f, recourse.FieldError("limit", "must be between 1 and %d", auditPageMax)
		}
		f.Limit = n
	}
	if v := q.Get("cursor"); v != "" {
		seq, ok := decodeCursor(v)
		if !ok {
			return f, recourse.FieldError("cursor", "is not a cursor this API returned")
		}
		if f.Descending {
			f.BeforeSeq = seq
		} else {
			f.FromSeq = seq + 1
		}
	}
	return f, nil
}

// apiAuditEvents lists audit events, newest first unless order=asc. It
// needs an administrator or security-team member.
func (s *Server) apiAuditEvents(c *apiCall) (*apiReply, error) {
	f, err := auditFilter(c.r)
	if err != nil {
		return nil, err
	}
	evs, err := s.svc.AuditEvents(c.ctx, c.p.Principal, f)
	if err != nil {
		return nil, err
	}
	page := auditPage{Events: make([]json.RawMessage, 0, len(evs))}
	for _, e := range evs {
		b, err := e.MarshalCanonical()
		if err != nil {
			return nil, err
		}
		page.Events = append(page.Events, b)
	}
	if len(evs) == f.Limit {
		page.NextCursor = encodeCursor(*evs[len(evs)-1].Seq)
	}
	return okReply(page)
}

// apiAuditCheckpoint serves the latest signed checkpoint as a C2SP signed
// note. It is public: anyone may keep copies and later check that the log
// only grew (`recourse audit consistency`).
func (s *Server) apiAuditCheckpoint(c *apiCall) (*apiReply, error) {
	cp, err := s.svc.AuditCheckpoint(c.ctx)
	if err != nil {
		return nil, err
	}
	return &apiReply{Status: http.StatusOK, Raw: cp.Note, ContentType: "text/plain; charset=utf-8"}, nil
}
