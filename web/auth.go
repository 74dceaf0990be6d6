package web

import (
	"context"
	"io"
	"net/http"
	"slices"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/service"
)

// sessionCookie is the session cookie's name. The __Host- prefix makes the
// browser insist on Secure, Path=/ and no Domain, so no sibling host can set
// or read it. Browsers accept Secure cookies over plain HTTP only on
// loopback, which is where Recourse allows plain HTTP.
const sessionCookie = "__Host-recourse_session"

// maxFormBytes bounds form and JSON bodies.
const maxFormBytes = 64 << 10

func (s *Server) setSession(w http.ResponseWriter, token string) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: token, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

func clearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

func sessionToken(r *http.Request) string {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

func principalFrom(r *http.Request) *service.Principal {
	p, _ := r.Context().Value(keyPrincipal).(*service.Principal)
	return p
}

// parseForm reads a bounded form body.
func parseForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return recourse.Errorf(recourse.EINVALID, "The form could not be read.")
	}
	return nil
}

// readJSONBody reads a bounded JSON body.
func readJSONBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, recourse.Errorf(recourse.EINVALID, "The request body is too large or unreadable.")
	}
	return b, nil
}

// requireSignIn runs h for a signed-in caller; anyone else goes to /signin.
func (s *Server) requireSignIn(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := sessionToken(r)
		p, err := s.svc.Authenticate(r.Context(), tok)
		if err != nil {
			if recourse.ErrorCode(err) != recourse.EUNAUTHORIZED {
				s.renderError(w, r, err)
				return
			}
			if tok != "" {
				clearSession(w)
				redirect(w, r, "/signin?notice=session-expired")
				return
			}
			redirect(w, r, "/signin")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), keyPrincipal, p)))
	}
}

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	if _, err := s.svc.Authenticate(r.Context(), sessionToken(r)); err == nil {
		redirect(w, r, "/account")
		return
	}
	redirect(w, r, "/signin")
}

type signinData struct {
	Identifier string
}

func (s *Server) signinPage(w http.ResponseWriter, r *http.Request) {
	if _, err := s.svc.Authenticate(r.Context(), sessionToken(r)); err == nil {
		redirect(w, r, "/account")
		return
	}
	s.render(w, r, http.StatusOK, "signin", page{Title: "Sign in", Notice: noticeFrom(r), Data: signinData{}})
}

func (s *Server) signinSubmit(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		s.renderError(w, r, err)
		return
	}
	ident := r.PostFormValue("identifier")
	res, err := s.svc.SignIn(r.Context(), ident, r.PostFormValue("password"), s.meta(r))
	if err != nil {
		s.countSignIn("password", err)
		s.logIfInternal(r, err)
		s.render(w, r, httpStatus(err), "signin", page{Title: "Sign in", Error: recourse.ErrorMessage(err), Data: signinData{Identifier: ident}})
		return
	}
	s.setSession(w, res.Token)
	if !res.Complete() {
		s.metrics.signins.WithLabelValues("password", "pending").Inc()
		redirect(w, r, "/signin/second-factor")
		return
	}
	s.metrics.signins.WithLabelValues("password", "ok").Inc()
	redirect(w, r, "/account")
}

func (s *Server) countSignIn(step string, err error) {
	result := "failed"
	switch recourse.ErrorCode(err) {
	case "":
		result = "ok"
	case recourse.ERATELIMIT:
		result = "rate_limited"
	case recourse.EINTERNAL:
		result = "error"
	}
	s.metrics.signins.WithLabelValues(step, result).Inc()
}

type secondFactorData struct {
	DisplayName string
	TOTP        bool
	WebAuthn    bool
	Recovery    bool
}

func (s *Server) secondFactorPage(w http.ResponseWriter, r *http.Request) {
	s.renderSecondFactor(w, r, http.StatusOK, "")
}

func (s *Server) renderSecondFactor(w http.ResponseWriter, r *http.Request, status int, msg string) {
	a, kinds, err := s.svc.PendingSignIn(r.Context(), sessionToken(r))
	if err != nil {
		s.logIfInternal(r, err)
		clearSession(w)
		redirect(w, r, "/signin?notice=second-factor-ended")
		return
	}
	d := secondFactorData{
		DisplayName: a.DisplayName,
		TOTP:        slices.Contains(kinds, recourse.AuthTOTP),
		WebAuthn:    slices.Contains(kinds, recourse.AuthWebAuthn),
		Recovery:    slices.Contains(kinds, recourse.AuthRecoveryCodes),
	}
	s.render(w, r, status, "second_factor", page{Title: "Confirm it's you", Error: msg, Field: "code", Data: d})
}

func (s *Server) finishSignIn(w http.ResponseWriter, r *http.Request, step string, res *service.SignIn, err error) {
	s.countSignIn(step, err)
	if err != nil {
		s.logIfInternal(r, err)
		s.renderSecondFactor(w, r, httpStatus(err), recourse.ErrorMessage(err))
		return
	}
	s.setSession(w, res.Token)
	redirect(w, r, "/account")
}

func (s *Server) secondFactorTOTP(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		s.renderError(w, r, err)
		return
	}
	res, err := s.svc.SignInTOTP(r.Context(), sessionToken(r), r.PostFormValue("code"), s.meta(r))
	s.finishSignIn(w, r, "totp", res, err)
}

func (s *Server) secondFactorRecoveryCode(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		s.renderError(w, r, err)
		return
	}
	res, err := s.svc.SignInRecoveryCode(r.Context(), sessionToken(r), r.PostFormValue("code"), s.meta(r))
	s.finishSignIn(w, r, "recovery_code", res, err)
}

func (s *Server) secondFactorWebAuthnBegin(w http.ResponseWriter, r *http.Request) {
	opts, err := s.svc.BeginSignInWebAuthn(r.Context(), sessionToken(r))
	if err != nil {
		s.writeJSONError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(opts)
}

func (s *Server) secondFactorWebAuthnFinish(w http.ResponseWriter, r *http.Request) {
	body, err := readJSONBody(w, r)
	if err != nil {
		s.writeJSONError(w, r, err)
		return
	}
	res, err := s.svc.FinishSignInWebAuthn(r.Context(), sessionToken(r), body, s.meta(r))
	s.countSignIn("webauthn", err)
	if err != nil {
		s.writeJSONError(w, r, err)
		return
	}
	s.setSession(w, res.Token)
	writeJSON(w, http.StatusOK, map[string]string{"redirect": "/account"})
}

func (s *Server) signout(w http.ResponseWriter, r *http.Request) {
	if err := s.svc.SignOut(r.Context(), sessionToken(r), s.meta(r)); err != nil {
		s.renderError(w, r, err)
		return
	}
	clearSession(w)
	redirect(w, r, "/signin?notice=signed-out")
}

// stepUp sends the caller to confirm their identity when err asks for it and
// reports whether it did.
func stepUp(w http.ResponseWriter, r *http.Request, err error) bool {
	if recourse.ErrorCode(err) != recourse.ESTEPUP {
		return false
	}
	redirect(w, r, "/account/confirm")
	return true
}
