package web

import (
	"net/http"
	"time"

	"github.com/recourse/recourse"
)

// The security page's share of the recovery workflow: the account's open
// requests with a way to stop them, a password change, and the notice a
// restricted session sees.

func (s *Server) portalRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /account/password", s.requireSignIn(s.passwordChange))
	mux.HandleFunc("POST /account/recoveries/{id}/cancel", s.requireSignIn(s.recoveryCancel))
}

type portalRequest struct {
	ID           string
	ActionLabel  string
	StateLabel   string
	Initiator    string
	IP           string
	CreatedAt    time.Time
	CoolingUntil *time.Time
}

// portalData is what the security page shows of the recovery workflow.
type portalData struct {
	// Requests are the account's open requests: each one is either the
	// holder's own or someone trying to take the account over.
	Requests []portalRequest
	// Notice confirms a workflow action (from the "done" query key).
	Notice string
	// Restricted is a session that came out of a device recovery: it may
	// only enrol a new authenticator.
	Restricted bool
	MinLength  int
	MaxLength  int
}

// portalData gathers the workflow's part of the security page for p.
func (s *Server) portalData(r *http.Request) (portalData, error) {
	p := principalFrom(r)
	rules := s.svc.Config().PasswordRules
	d := portalData{Notice: workflowNotice(r), Restricted: p.Session.Restricted, MinLength: rules.MinLength, MaxLength: rules.MaxLength}
	list, err := s.svc.AccountRecoveries(r.Context(), p.Account.ID)
	if err != nil {
		return d, err
	}
	for _, q := range list {
		if !q.State.Open() {
			continue
		}
		d.Requests = append(d.Requests, portalRequest{ID: q.ID, ActionLabel: actionLabel(q.Action), StateLabel: stateLabel(q.State),
			Initiator: q.Initiator, IP: q.IP, CreatedAt: q.CreatedAt, CoolingUntil: q.CoolingUntil})
	}
	return d, nil
}

// passwordChange is the routine password change: the current password, the
// new one twice.
func (s *Server) passwordChange(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		s.renderError(w, r, err)
		return
	}
	next := r.PostFormValue("new_password")
	if next != r.PostFormValue("confirm_password") {
		s.actionFailed(w, r, recourse.FieldError("confirm_password", "The two new passwords are not the same. Type the new password twice."))
		return
	}
	if err := s.svc.ChangePassword(r.Context(), principalFrom(r), r.PostFormValue("current_password"), next, s.meta(r)); err != nil {
		if e, ok := err.(*recourse.Error); ok && e.Field == "password" {
			err = recourse.FieldError("new_password", "%s", e.Message)
		}
		s.actionFailed(w, r, err)
		return
	}
	redirect(w, r, "/account?done=password-changed#password")
}

// recoveryCancel stops one of the holder's own open requests ("this wasn't
// me", from a signed-in session).
func (s *Server) recoveryCancel(w http.ResponseWriter, r *http.Request) {
	if err := s.svc.CancelRecovery(r.Context(), principalFrom(r), r.PathValue("id"), s.meta(r)); err != nil {
		s.actionFailed(w, r, err)
		return
	}
	redirect(w, r, "/account?done=recovery-cancelled")
}
