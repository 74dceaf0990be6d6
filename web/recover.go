package web

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/service"
)

// The recovery workflow's pages: "Can't sign in?", the request page that
// drives a request, completion, "this wasn't me", and claiming a request the
// help desk opened. docs/pages.md describes them.

// recoveryCookie binds the request a browser drives to that browser. Its
// value is "<request id>.<browser secret>": one request per browser at a
// time (starting or claiming another replaces it). The __Host- prefix makes
// the browser insist on Secure, Path=/ and no Domain; HttpOnly keeps it from
// scripts; SameSite=Lax keeps it off cross-site POSTs.
const recoveryCookie = "__Host-recourse_recovery"

// recoveryCookieAge outlives any request (the built-in policy gives a
// request 72 hours); the request's own expiry is what counts.
const recoveryCookieAge = 14 * 24 * time.Hour

// workflowRoutes registers the recovery workflow's pages: self-service
// recovery, approvals, the help-desk console and the portal's additions.
func (s *Server) workflowRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /recover", s.recoverPage)
	mux.HandleFunc("POST /recover", s.recoverStart)
	mux.HandleFunc("GET /recover/claim", s.claimPage)
	mux.HandleFunc("POST /recover/claim", s.claimSubmit)
	mux.HandleFunc("GET /recover/cancel", s.cancelPage)
	mux.HandleFunc("POST /recover/cancel", s.cancelSubmit)
	mux.HandleFunc("GET /recover/{id}", s.requestPage)
	mux.HandleFunc("POST /recover/{id}/code", s.requestCode)
	mux.HandleFunc("POST /recover/{id}/totp", s.requestTOTP)
	mux.HandleFunc("POST /recover/{id}/recovery-code", s.requestSavedCode)
	mux.HandleFunc("POST /recover/{id}/continue", s.requestContinue)
	mux.HandleFunc("POST /recover/{id}/complete", s.requestComplete)
	s.approvalRoutes(mux)
	s.helpdeskRoutes(mux)
	s.portalRoutes(mux)
}

func setRecoveryCookie(w http.ResponseWriter, rs *service.RecoveryStart) {
	http.SetCookie(w, &http.Cookie{Name: recoveryCookie, Value: rs.RequestID + "." + rs.BrowserSecret, Path: "/",
		MaxAge: int(recoveryCookieAge.Seconds()), Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

func clearRecoveryCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: recoveryCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// recoverySecret returns the browser secret for request id, or "" when this
// browser does not hold one for it (the service then shows nothing).
func recoverySecret(r *http.Request, id string) string {
	c, err := r.Cookie(recoveryCookie)
	if err != nil {
		return ""
	}
	cid, secret, ok := strings.Cut(c.Value, ".")
	if !ok || cid != id {
		return ""
	}
	return secret
}

// ---- labels: plain words for the workflow's identifiers ----

var actionLabels = map[string]string{
	"password.reset":            "Reset the password",
	"authenticator.recover":     "Replace a lost authenticator app, passkey or security key",
	"phone.change":              "Change the phone number",
	"email.rebind":              "Change the email address",
	"recovery_channel.change":   "Change a recovery email address or phone number",
	"credential.reissue":        "Reissue a service account's credential",
	"password.change":           "Change the password",
	"authenticator.add":         "Add an authenticator",
	"authenticator.remove":      "Remove an authenticator",
	"access.temporary":          "Temporary access pass",
	"recovery_codes.regenerate": "Replace the recovery codes",
}

func actionLabel(action string) string {
	if l, ok := actionLabels[action]; ok {
		return l
	}
	return action
}

var stateLabels = map[recourse.RecoveryState]string{
	recourse.RecoveryCollecting:       "Collecting evidence",
	recourse.RecoveryAwaitingApproval: "Waiting for approval",
	recourse.RecoveryCoolingOff:       "Cooling off",
	recourse.RecoveryReady:            "Ready to complete",
	recourse.RecoveryCompleted:        "Completed",
	recourse.RecoveryCancelled:        "Cancelled",
	recourse.RecoveryDenied:           "Denied",
	recourse.RecoveryExpired:          "Expired",
}

func stateLabel(st recourse.RecoveryState) string {
	if l, ok := stateLabels[st]; ok {
		return l
	}
	return string(st)
}

// lostOption is one answer to "what can't you use?".
type lostOption struct {
	Value, Label, Hint string
	Checked            bool
}

var lostOptions = []lostOption{
	{Value: "password", Label: "I forgot my password", Hint: "You still have your authenticator app, passkey or recovery codes."},
	{Value: "device", Label: "I lost my phone or security key", Hint: "The authenticator app or passkey you sign in with is gone."},
	{Value: "phone", Label: "My phone number changed", Hint: "Codes can no longer reach the number we have."},
	{Value: "email", Label: "I can't use my email address any more", Hint: "Codes can no longer reach the address we have."},
}

var lostLabels = map[string]string{
	"password": "their password",
	"device":   "their phone or security key",
	"phone":    "their phone number",
	"email":    "their email address",
}

// untilText says how far t is from now in rounded, plain words.
func untilText(now, t time.Time) string {
	d := t.Sub(now)
	switch {
	case d <= 0:
		return "now"
	case d < time.Hour:
		return fmt.Sprintf("in %d minutes", max(1, int(d.Round(time.Minute).Minutes())))
	case d < 48*time.Hour:
		return fmt.Sprintf("in about %d hours", int(d.Round(time.Hour).Hours()))
	}
	return fmt.Sprintf("in about %d days", int(d.Round(24*time.Hour).Hours()/24))
}

// errorField returns the field an error names, or fallback.
func errorField(err error, fallback string) string {
	if e, ok := err.(*recourse.Error); ok && e.Field != "" {
		return e.Field
	}
	return fallback
}

// ---- "Can't sign in?" ----

type recoverStartData struct {
	Identifier string
	Options    []lostOption
}

func newRecoverStartData(identifier, lost string) recoverStartData {
	d := recoverStartData{Identifier: identifier}
	for _, o := range lostOptions {
		o.Checked = o.Value == lost
		d.Options = append(d.Options, o)
	}
	return d
}

func (s *Server) recoverPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "recover", page{Title: "Can't sign in?", Data: newRecoverStartData("", "")})
}

// recoverStart answers "Can't sign in?". The answer is the same redirect
// for every identifier, known or not; only the new request id differs.
func (s *Server) recoverStart(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		s.renderError(w, r, err)
		return
	}
	ident, lost := r.PostFormValue("identifier"), r.PostFormValue("lost")
	rs, err := s.svc.StartRecovery(r.Context(), ident, lost, s.meta(r))
	if err != nil {
		s.logIfInternal(r, err)
		s.render(w, r, httpStatus(err), "recover", page{Title: "Can't sign in?", Error: recourse.ErrorMessage(err),
			Field: errorField(err, ""), Data: newRecoverStartData(ident, lost)})
		return
	}
	setRecoveryCookie(w, rs)
	redirect(w, r, "/recover/"+rs.RequestID)
}

// ---- the request page ----

type requestPageData struct {
	ID   string
	View *service.RecoveryView
	// Holder is true when this browser holds the request's cookie; a page
	// opened elsewhere explains why it shows nothing.
	Holder        bool
	ActionLabel   string
	StateLabel    string
	Open          bool
	EvidenceForms bool
	CoolingUntil  time.Time
	CoolingIn     string
	ExpiresAt     time.Time
}

func (s *Server) requestPage(w http.ResponseWriter, r *http.Request) {
	s.renderRequest(w, r, http.StatusOK, nil, "")
}

// errUnrevealed is the one answer to every failed step on a request that
// has not shown itself yet. The service's own answers can differ there (a
// known account's request expires, or refuses after too many wrong codes;
// a completion form checks the password rules before the token), and any
// difference would tell a stranger that the identifier they typed exists.
var errUnrevealed = recourse.Errorf(recourse.EINVALID, "That code is not right, or it has expired.")

// renderRequest shows the request page, with err (if any) against field.
func (s *Server) renderRequest(w http.ResponseWriter, r *http.Request, status int, err error, field string) {
	id := r.PathValue("id")
	secret := recoverySecret(r, id)
	v, verr := s.svc.RecoveryStatus(r.Context(), id, secret)
	if verr != nil {
		s.renderError(w, r, verr)
		return
	}
	if err != nil && !v.Revealed {
		s.logIfInternal(r, err)
		status, err, field = http.StatusBadRequest, errUnrevealed, "code"
	}
	d := requestPageData{ID: id, View: v, Holder: secret != "", ActionLabel: actionLabel(v.Action), StateLabel: stateLabel(v.State),
		Open: v.State.Open(), ExpiresAt: v.ExpiresAt}
	d.EvidenceForms = !v.Revealed || v.State == recourse.RecoveryCollecting || v.State == recourse.RecoveryAwaitingApproval
	if v.CoolingUntil != nil {
		d.CoolingUntil, d.CoolingIn = *v.CoolingUntil, untilText(s.now(), *v.CoolingUntil)
	}
	p := page{Title: "Your recovery request", Data: d}
	if err != nil {
		s.logIfInternal(r, err)
		p.Error, p.Field = recourse.ErrorMessage(err), field
	}
	s.render(w, r, status, "recover_request", p)
}

// evidenceStep runs one evidence submission and shows the request again.
func (s *Server) evidenceStep(w http.ResponseWriter, r *http.Request, field string,
	submit func(id, secret, code string, meta service.Meta) error) {
	if err := parseForm(w, r); err != nil {
		s.renderError(w, r, err)
		return
	}
	id := r.PathValue("id")
	if err := submit(id, recoverySecret(r, id), r.PostFormValue("code"), s.meta(r)); err != nil {
		if recourse.ErrorCode(err) == recourse.EINTERNAL {
			s.renderError(w, r, err)
			return
		}
		s.renderRequest(w, r, httpStatus(err), err, field) // answers alike while unrevealed
		return
	}
	redirect(w, r, "/recover/"+id)
}

func (s *Server) requestCode(w http.ResponseWriter, r *http.Request) {
	s.evidenceStep(w, r, "code", func(id, secret, code string, meta service.Meta) error {
		_, err := s.svc.SubmitChallengeCode(r.Context(), id, secret, code, meta)
		return err
	})
}

func (s *Server) requestTOTP(w http.ResponseWriter, r *http.Request) {
	s.evidenceStep(w, r, "totp", func(id, secret, code string, meta service.Meta) error {
		_, err := s.svc.SubmitTOTP(r.Context(), id, secret, code, meta)
		return err
	})
}

func (s *Server) requestSavedCode(w http.ResponseWriter, r *http.Request) {
	s.evidenceStep(w, r, "rcode", func(id, secret, code string, meta service.Meta) error {
		_, err := s.svc.SubmitSavedRecoveryCode(r.Context(), id, secret, code, meta)
		return err
	})
}

// ---- completion ----

type completeData struct {
	ID          string
	Token       string
	Action      string
	ActionLabel string
	Password    bool
	MinLength   int
	MaxLength   int
	// OfferAccessPass offers, after a lost device, a temporary access pass
	// for the new device instead of a session here; AccessPass keeps the
	// choice when the form comes back.
	OfferAccessPass bool
	AccessPass      bool
}

// finishWithAccessPass is the completion form's answer to "how do you want
// to continue?" that asks for a temporary access pass.
const finishWithAccessPass = "access_pass"

// requestContinue mints the completion token of a ready request and shows
// the completion form with it.
func (s *Server) requestContinue(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	secret := recoverySecret(r, id)
	v, err := s.svc.RecoveryStatus(r.Context(), id, secret)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	if !v.Revealed {
		s.renderRequest(w, r, http.StatusBadRequest, errUnrevealed, "code")
		return
	}
	tok, err := s.svc.ContinueRecovery(r.Context(), id, secret, s.meta(r))
	if err != nil {
		if recourse.ErrorCode(err) == recourse.EINTERNAL {
			s.renderError(w, r, err)
			return
		}
		s.renderRequest(w, r, httpStatus(err), err, "")
		return
	}
	s.renderComplete(w, r, http.StatusOK, id, tok, v.Action, false, nil)
}

func (s *Server) renderComplete(w http.ResponseWriter, r *http.Request, status int, id, token, action string, accessPass bool, err error) {
	rules := s.svc.Config().PasswordRules
	d := completeData{ID: id, Token: token, Action: action, ActionLabel: actionLabel(action), Password: action == "password.reset",
		MinLength: rules.MinLength, MaxLength: rules.MaxLength, OfferAccessPass: action == "authenticator.recover", AccessPass: accessPass}
	p := page{Title: "Finish your recovery", Data: d}
	if err != nil {
		p.Error, p.Field = recourse.ErrorMessage(err), errorField(err, "")
		if p.Field == "password" {
			p.Field = "new_password"
		}
	}
	s.render(w, r, status, "recover_complete", p)
}

// requestComplete applies the change, signs the person in and sends them to
// the security page (restricted after a device recovery, where the page asks
// for a new authenticator). A person who lost their device may instead ask
// for a temporary access pass: the answer shows it once and signs nobody
// in here.
func (s *Server) requestComplete(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		s.renderError(w, r, err)
		return
	}
	id := r.PathValue("id")
	secret := recoverySecret(r, id)
	token := r.PostFormValue("token")
	v, err := s.svc.RecoveryStatus(r.Context(), id, secret)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	if !v.Revealed {
		s.renderRequest(w, r, http.StatusBadRequest, errUnrevealed, "code")
		return
	}
	// The choice goes to the service as asked, offered or not: it refuses
	// a pass for any action but a lost device rather than silently signing
	// in someone who asked for one.
	in := service.Completion{AccessPass: r.PostFormValue("finish") == finishWithAccessPass}
	if v.Action == "password.reset" {
		in.NewPassword = r.PostFormValue("new_password")
		if in.NewPassword != r.PostFormValue("confirm_password") {
			s.renderComplete(w, r, http.StatusBadRequest, id, token, v.Action, in.AccessPass,
				recourse.FieldError("confirm_password", "The two passwords are not the same. Type the new password twice."))
			return
		}
	}
	done, err := s.svc.CompleteRecovery(r.Context(), id, secret, token, in, s.meta(r))
	if err != nil {
		switch recourse.ErrorCode(err) {
		case recourse.EINTERNAL:
			s.renderError(w, r, err)
		case recourse.EINVALID: // the password rules or a pass refused; the token is still good
			s.renderComplete(w, r, http.StatusBadRequest, id, token, v.Action, in.AccessPass, err)
		default:
			s.renderRequest(w, r, httpStatus(err), err, "")
		}
		return
	}
	clearRecoveryCookie(w)
	if done.SignIn == nil {
		// Shown in the answer to the POST, once (render sends no-store);
		// nobody is signed in here.
		s.render(w, r, http.StatusOK, "recover_access_pass", page{Title: "Your temporary access pass",
			Data: accessPassData{Pass: done.AccessPass, Expires: done.AccessPassExpires,
				SignInURL: strings.TrimSuffix(s.svc.Config().PublicURL, "/") + "/signin/pass"}})
		return
	}
	s.setSession(w, done.SignIn.Token)
	redirect(w, r, "/account?done=recovered")
}

// ---- "this wasn't me" ----

type cancelData struct {
	Token string
	Done  bool
	Froze bool
}

// cancelPage asks to confirm; nothing changes on GET, because mail scanners
// open links.
func (s *Server) cancelPage(w http.ResponseWriter, r *http.Request) {
	t := r.URL.Query().Get("t")
	p := page{Title: "This wasn't me", Data: cancelData{Token: t}}
	status := http.StatusOK
	if t == "" {
		status, p.Error = http.StatusBadRequest, "This link is incomplete. Open it again from the notice we sent you, or call your help desk."
	}
	s.render(w, r, status, "recover_cancel", p)
}

func (s *Server) cancelSubmit(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		s.renderError(w, r, err)
		return
	}
	t, freeze := r.PostFormValue("t"), r.PostFormValue("freeze") != ""
	if err := s.svc.CancelByToken(r.Context(), t, freeze, s.meta(r)); err != nil {
		s.logIfInternal(r, err)
		s.render(w, r, httpStatus(err), "recover_cancel", page{Title: "This wasn't me", Error: recourse.ErrorMessage(err), Data: cancelData{Token: t}})
		return
	}
	// The result is shown in the answer to the POST, not after a redirect:
	// a redirect target could be linked to by anyone and show a false
	// "your account is frozen".
	s.render(w, r, http.StatusOK, "recover_cancel", page{Title: "Recovery stopped", Data: cancelData{Done: true, Froze: freeze}})
}

// ---- claiming a help-desk request ----

type claimData struct {
	Reference string
}

func (s *Server) claimPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "recover_claim", page{Title: "Continue a request the help desk opened",
		Data: claimData{Reference: r.URL.Query().Get("reference")}})
}

func (s *Server) claimSubmit(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		s.renderError(w, r, err)
		return
	}
	ref := strings.TrimSpace(r.PostFormValue("reference"))
	rs, err := s.svc.ClaimRecovery(r.Context(), ref, r.PostFormValue("code"), s.meta(r))
	if err != nil {
		s.logIfInternal(r, err)
		s.render(w, r, httpStatus(err), "recover_claim", page{Title: "Continue a request the help desk opened",
			Error: recourse.ErrorMessage(err), Field: "code", Data: claimData{Reference: ref}})
		return
	}
	setRecoveryCookie(w, rs)
	redirect(w, r, "/recover/"+rs.RequestID)
}
