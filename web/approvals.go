package web

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/service"
)

// The approver's pages: an inbox of requests waiting for the signed-in
// person's vote, and a decision page that shows exactly what would change.

func (s *Server) approvalRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /approvals", s.requireSignIn(s.approvalsPage))
	mux.HandleFunc("GET /approvals/{id}", s.requireSignIn(s.approvalPage))
	mux.HandleFunc("POST /approvals/{id}", s.requireSignIn(s.approvalVote))
}

// workflowNotices are the notices the workflow's redirects may ask for, by
// key (the query carries a key, never text).
var workflowNotices = map[string]string{
	"approved":           "Thank you. Your approval was recorded.",
	"denied":             "Your denial was recorded. The request is stopped and the person was told.",
	"recovered":          "Your account was recovered and every other session was signed out.",
	"password-changed":   "Your password was changed. Your other sessions were signed out.",
	"recovery-cancelled": "The request was cancelled.",
}

func workflowNotice(r *http.Request) string { return workflowNotices[r.URL.Query().Get("done")] }

type approvalRow struct {
	ID          string
	Subject     string
	Username    string
	ActionLabel string
	Roles       string
	Initiator   string
	IP          string
	CreatedAt   time.Time
}

func (s *Server) approvalsPage(w http.ResponseWriter, r *http.Request) {
	items, err := s.svc.PendingApprovals(r.Context(), principalFrom(r))
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	var rows []approvalRow
	for _, it := range items {
		rows = append(rows, approvalRow{ID: it.Request.ID, Subject: it.Subject.DisplayName, Username: it.Subject.Username,
			ActionLabel: actionLabel(it.Request.Action), Roles: roleList(it.Roles), Initiator: s.initiatorLabel(r, it.Request, it.Subject),
			IP: it.Request.IP, CreatedAt: it.Request.CreatedAt})
	}
	s.render(w, r, http.StatusOK, "approvals", page{Title: "Approvals", Notice: workflowNotice(r), Data: rows})
}

// fact is one labelled line of a definition list.
type fact struct {
	Label, Value string
}

type voteRow struct {
	Approver  string
	Vote      string
	Roles     string
	Comment   string
	CreatedAt time.Time
}

type approvalData struct {
	Item        *service.ApprovalItem
	ActionLabel string
	StateLabel  string
	Initiator   string
	Roles       string
	Change      []fact
	Votes       []voteRow
	CanVote     bool
	Comment     string
}

func (s *Server) approvalPage(w http.ResponseWriter, r *http.Request) {
	s.renderApproval(w, r, http.StatusOK, nil, "")
}

func (s *Server) renderApproval(w http.ResponseWriter, r *http.Request, status int, verr error, comment string) {
	ctx := r.Context()
	item, err := s.svc.ApprovalDetail(ctx, principalFrom(r), r.PathValue("id"))
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	req := item.Request
	d := approvalData{Item: item, ActionLabel: actionLabel(req.Action), StateLabel: stateLabel(req.State),
		Initiator: s.initiatorLabel(r, req, item.Subject), Roles: roleList(item.Roles), Comment: comment,
		CanVote: item.Voted == "" && (req.State == recourse.RecoveryAwaitingApproval || req.State == recourse.RecoveryCollecting)}
	d.Change = changeFacts(req.Change, item.Subject)
	for _, v := range item.Votes {
		name := v.ApproverID
		if a, err := s.svc.Account(ctx, v.ApproverID); err == nil {
			name = a.DisplayName + " (" + a.Username + ")"
		}
		d.Votes = append(d.Votes, voteRow{Approver: name, Vote: v.Vote, Roles: roleList(v.Roles), Comment: v.Comment, CreatedAt: v.CreatedAt})
	}
	p := page{Title: "Approval request", Data: d}
	if verr != nil {
		s.logIfInternal(r, verr)
		p.Error, p.Field = recourse.ErrorMessage(verr), errorField(verr, "")
	}
	s.render(w, r, status, "approval", p)
}

// changeFacts lists exactly what the request would change, the well-known
// keys first in plain words, then any other key as it is.
func changeFacts(change map[string]string, subject *recourse.Account) []fact {
	var out []fact
	if a, ok := change["action"]; ok {
		out = append(out, fact{"Change", actionLabel(a)})
	}
	if id, ok := change["account"]; ok {
		v := id
		if subject != nil && subject.ID == id {
			v = subject.DisplayName + " (" + subject.Username + ")"
		}
		out = append(out, fact{"Account", v})
	}
	if l, ok := change["lost"]; ok {
		v := lostLabels[l]
		if v == "" {
			v = l
		}
		out = append(out, fact{"They say they lost", v})
	}
	for _, k := range slices.Sorted(maps.Keys(change)) {
		switch k {
		case "action", "account", "lost":
			continue
		}
		out = append(out, fact{k, change[k]})
	}
	return out
}

// initiatorLabel says who started a request and, for the help desk, why.
func (s *Server) initiatorLabel(r *http.Request, req *recourse.Recovery, subject *recourse.Account) string {
	out := s.initiatorName(r, req, subject)
	if req.Initiator == "help_desk" && req.Reason != "" {
		out += " — reason: " + req.Reason
	}
	return out
}

// initiatorName says who started a request, in plain words.
func (s *Server) initiatorName(r *http.Request, req *recourse.Recovery, subject *recourse.Account) string {
	switch req.Initiator {
	case "self":
		return subject.DisplayName + ", from the \"Can't sign in?\" page"
	case "help_desk":
		who := req.InitiatorID
		if a, err := s.svc.Account(r.Context(), req.InitiatorID); err == nil {
			who = a.DisplayName + " (" + a.Username + ")"
		}
		return "Help-desk agent " + who
	}
	out := req.Initiator
	if req.InitiatorID != "" {
		out += " " + req.InitiatorID
	}
	return out
}

// roleList names approval roles in plain words.
func roleList(roles []string) string {
	out := make([]string, len(roles))
	for i, r := range roles {
		switch {
		case strings.HasPrefix(r, "group:"):
			out[i] = "member of " + strings.TrimPrefix(r, "group:")
		case r == "recovery_contact":
			out[i] = "recovery contact"
		default:
			out[i] = r
		}
	}
	return strings.Join(out, ", ")
}

func (s *Server) approvalVote(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		s.renderError(w, r, err)
		return
	}
	p := principalFrom(r)
	vote, comment := r.PostFormValue("vote"), r.PostFormValue("comment")
	err := s.svc.Vote(r.Context(), p, r.PathValue("id"), vote, comment, s.meta(r))
	switch {
	case err == nil:
		if vote == "deny" {
			redirect(w, r, "/approvals?done=denied")
		} else {
			redirect(w, r, "/approvals?done=approved")
		}
	// Confirming again helps only a session that already has a second
	// factor; a password-only session is told what it needs instead.
	case recourse.ErrorCode(err) == recourse.ESTEPUP && p.Session.AAL >= recourse.AAL2:
		redirect(w, r, confirmURL("/approvals/"+r.PathValue("id")))
	case recourse.ErrorCode(err) == recourse.EINTERNAL || recourse.ErrorCode(err) == recourse.ENOTFOUND:
		s.renderError(w, r, err)
	default:
		s.renderApproval(w, r, httpStatus(err), err, comment)
	}
}
