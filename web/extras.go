package web

import (
	"net/http"
	"time"

	"github.com/recourse/recourse"
)

// extraRoutes are the recovery page's passkey and resend steps, and the
// temporary access pass (issued on the security page, used at sign-in).
func (s *Server) extraRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /recover/{id}/resend", s.requestResend)
	mux.HandleFunc("POST /recover/{id}/webauthn/begin", s.requestWebAuthnBegin)
	mux.HandleFunc("POST /recover/{id}/webauthn/finish", s.requestWebAuthnFinish)
	mux.HandleFunc("POST /account/access-pass", s.requireSignIn(s.accessPassIssue))
	mux.HandleFunc("GET /signin/pass", s.accessPassPage)
	mux.HandleFunc("POST /signin/pass", s.accessPassSignIn)
}

// requestResend sends fresh codes; the answer is the same whatever the
// request (the service sends nothing for an unknown one).
func (s *Server) requestResend(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.svc.ResendRecoveryCodes(r.Context(), id, recoverySecret(r, id), s.meta(r)); err != nil {
		s.renderRequest(w, r, httpStatus(err), err, "code")
		return
	}
	redirect(w, r, "/recover/"+id+"?notice=code-sent")
}

func (s *Server) requestWebAuthnBegin(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	opts, err := s.svc.BeginRecoveryWebAuthn(r.Context(), id, recoverySecret(r, id))
	if err != nil {
		s.writeJSONError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(opts)
}

func (s *Server) requestWebAuthnFinish(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	body, err := readJSONBody(w, r)
	if err != nil {
		s.writeJSONError(w, r, err)
		return
	}
	if err := s.svc.FinishRecoveryWebAuthn(r.Context(), id, recoverySecret(r, id), body, s.meta(r)); err != nil {
		s.writeJSONError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"redirect": "/recover/" + id})
}

type accessPassData struct {
	Pass    string
	Expires time.Time
	// SignInURL is where the pass is used (the page after a recovery
	// spells it out for typing on another device).
	SignInURL string
}

// accessPassIssue shows a new pass once; it is never shown again.
func (s *Server) accessPassIssue(w http.ResponseWriter, r *http.Request) {
	pass, expires, err := s.svc.IssueAccessPass(r.Context(), principalFrom(r), s.meta(r))
	if err != nil {
		s.actionFailed(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "access_pass", page{Title: "Your temporary access pass", Data: accessPassData{Pass: pass, Expires: expires}})
}

func (s *Server) accessPassPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "signin_pass", page{Title: "Sign in with a temporary access pass", Data: signinData{}})
}

func (s *Server) accessPassSignIn(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		s.renderError(w, r, err)
		return
	}
	ident := r.PostFormValue("identifier")
	res, err := s.svc.SignInAccessPass(r.Context(), ident, r.PostFormValue("pass"), s.meta(r))
	s.countSignIn("access_pass", err)
	if err != nil {
		s.logIfInternal(r, err)
		s.render(w, r, httpStatus(err), "signin_pass", page{Title: "Sign in with a temporary access pass",
			Error: recourse.ErrorMessage(err), Field: "pass", Data: signinData{Identifier: ident}})
		return
	}
	s.setSession(w, res.Token)
	redirect(w, r, "/account")
}
