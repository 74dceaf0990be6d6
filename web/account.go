package web

import (
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/recourse/recourse"
)

type contactView struct {
	ID          string
	Username    string
	DisplayName string
}

type accountData struct {
	Account          *recourse.Account
	Authenticators   []*recourse.Authenticator
	Sessions         []*recourse.Session
	CurrentSession   string
	Contacts         []contactView
	ContactUsernames string
	Events           []*recourse.AuthenticatorEvent
	PasskeysEnabled  bool
	HasSecondFactor  bool
	RecoveryCodesSet bool
	// Workflow is the recovery workflow's part of the page (portal.go).
	Workflow portalData
}

func (s *Server) accountPage(w http.ResponseWriter, r *http.Request) {
	s.renderAccount(w, r, http.StatusOK, "", "")
}

func (s *Server) renderAccount(w http.ResponseWriter, r *http.Request, status int, msg, field string) {
	p := principalFrom(r)
	ctx := r.Context()
	auths, err := s.svc.Authenticators(ctx, p.Account.ID)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	d := accountData{Account: p.Account, CurrentSession: p.Session.ID, PasskeysEnabled: s.svc.PasskeysEnabled()}
	for _, au := range auths {
		if au.Status != recourse.AuthActive {
			continue
		}
		d.Authenticators = append(d.Authenticators, au)
		switch au.Kind {
		case recourse.AuthTOTP, recourse.AuthWebAuthn:
			d.HasSecondFactor = true
		case recourse.AuthRecoveryCodes:
			d.RecoveryCodesSet = true
		}
	}
	if d.Sessions, err = s.svc.Sessions(ctx, p); err != nil {
		s.renderError(w, r, err)
		return
	}
	var names []string
	for _, id := range p.Account.RecoveryContacts {
		c := contactView{ID: id, Username: id, DisplayName: id}
		if a, err := s.svc.Account(ctx, id); err == nil {
			c.Username, c.DisplayName = a.Username, a.DisplayName
		}
		d.Contacts = append(d.Contacts, c)
		names = append(names, c.Username)
	}
	d.ContactUsernames = strings.Join(names, ", ")
	if d.Events, err = s.svc.AuthenticatorEvents(ctx, p.Account.ID, 15); err != nil {
		s.renderError(w, r, err)
		return
	}
	if d.Workflow, err = s.portalData(r); err != nil {
		s.renderError(w, r, err)
		return
	}
	notice := ""
	if msg == "" {
		notice = noticeFrom(r)
	}
	s.render(w, r, status, "account", page{Title: "Your account security", Notice: notice, Error: msg, Field: field, Data: d})
}

// actionFailed re-renders the security page with the error, or sends the
// caller to confirm their identity first.
func (s *Server) actionFailed(w http.ResponseWriter, r *http.Request, err error) {
	if stepUp(w, r, err) {
		return
	}
	s.logIfInternal(r, err)
	field := ""
	if e, ok := err.(*recourse.Error); ok {
		field = e.Field
	}
	s.renderAccount(w, r, httpStatus(err), recourse.ErrorMessage(err), field)
}

type confirmData struct {
	HasTOTP bool
	Next    string
}

func (s *Server) confirmPage(w http.ResponseWriter, r *http.Request) {
	s.renderConfirm(w, r, http.StatusOK, "")
}

func (s *Server) renderConfirm(w http.ResponseWriter, r *http.Request, status int, msg string) {
	p := principalFrom(r)
	auths, err := s.svc.Authenticators(r.Context(), p.Account.ID)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	d := confirmData{Next: safeNext(r.FormValue("next"))}
	for _, au := range auths {
		if au.Kind == recourse.AuthTOTP && au.Status == recourse.AuthActive {
			d.HasTOTP = true
		}
	}
	s.render(w, r, status, "confirm", page{Title: "Confirm it's you", Error: msg, Field: "password", Data: d})
}

func (s *Server) confirmSubmit(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		s.renderError(w, r, err)
		return
	}
	err := s.svc.Reauthenticate(r.Context(), principalFrom(r), r.PostFormValue("password"), r.PostFormValue("code"), s.meta(r))
	if err != nil {
		s.logIfInternal(r, err)
		s.renderConfirm(w, r, httpStatus(err), recourse.ErrorMessage(err))
		return
	}
	if next := safeNext(r.PostFormValue("next")); next != "" {
		redirect(w, r, next)
		return
	}
	redirect(w, r, "/account?notice=confirmed")
}

// reNext is where "confirm it's you" may send someone back to: our own
// pages that ask for a recent sign-in, never another site.
var reNext = regexp.MustCompile(`^/(approvals/rr_[a-z2-7]{1,60}|helpdesk(/accounts/[A-Za-z0-9._-]{1,64})?)$`)

// safeNext returns next when it is one of our pages, else "".
func safeNext(next string) string {
	if reNext.MatchString(next) {
		return next
	}
	return ""
}

// confirmURL is the confirm page that returns to next afterwards.
func confirmURL(next string) string {
	if safeNext(next) == "" {
		return "/account/confirm"
	}
	return "/account/confirm?next=" + url.QueryEscape(next)
}

type totpData struct {
	AuthenticatorID string
	Secret          string
	QR              template.URL
}

func (s *Server) totpBegin(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		s.renderError(w, r, err)
		return
	}
	enr, err := s.svc.BeginTOTP(r.Context(), principalFrom(r), r.PostFormValue("name"), s.meta(r))
	if err != nil {
		s.actionFailed(w, r, err)
		return
	}
	d := totpData{AuthenticatorID: enr.AuthenticatorID, Secret: groupSecret(enr.Secret),
		// A data: URL of our own PNG; safe for img src under the CSP.
		QR: template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(enr.QRCodePNG))}
	s.render(w, r, http.StatusOK, "totp", page{Title: "Add an authenticator app", Data: d})
}

// groupSecret spaces a base32 secret in fours for typing.
func groupSecret(s string) string {
	var b strings.Builder
	for i, c := range s {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (s *Server) totpConfirm(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		s.renderError(w, r, err)
		return
	}
	id := r.PostFormValue("authenticator_id")
	err := s.svc.ConfirmTOTP(r.Context(), principalFrom(r), id, r.PostFormValue("code"), s.meta(r))
	if err != nil {
		if stepUp(w, r, err) {
			return
		}
		if recourse.ErrorCode(err) == recourse.EINVALID {
			s.render(w, r, http.StatusBadRequest, "totp", page{Title: "Add an authenticator app", Error: recourse.ErrorMessage(err), Field: "code",
				Data: totpData{AuthenticatorID: id}})
			return
		}
		s.actionFailed(w, r, err)
		return
	}
	redirect(w, r, "/account?notice=totp-added")
}

func (s *Server) passkeyBegin(w http.ResponseWriter, r *http.Request) {
	body, err := readJSONBody(w, r)
	if err != nil {
		s.writeJSONError(w, r, err)
		return
	}
	var in struct {
		Name string `json:"name"`
	}
	if len(body) > 0 {
		if err := decodeStrict(body, &in); err != nil {
			s.writeJSONError(w, r, err)
			return
		}
	}
	opts, err := s.svc.BeginPasskey(r.Context(), principalFrom(r), in.Name)
	if err != nil {
		s.writeJSONError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(opts)
}

func (s *Server) passkeyFinish(w http.ResponseWriter, r *http.Request) {
	body, err := readJSONBody(w, r)
	if err != nil {
		s.writeJSONError(w, r, err)
		return
	}
	if err := s.svc.FinishPasskey(r.Context(), principalFrom(r), body, s.meta(r)); err != nil {
		s.writeJSONError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"redirect": "/account?notice=passkey-added"})
}

func (s *Server) recoveryCodes(w http.ResponseWriter, r *http.Request) {
	codes, err := s.svc.RecoveryCodes(r.Context(), principalFrom(r), s.meta(r))
	if err != nil {
		s.actionFailed(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "recovery_codes", page{Title: "Your recovery codes", Data: codes})
}

func (s *Server) channelAdd(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		s.renderError(w, r, err)
		return
	}
	kind := recourse.ChannelKind(r.PostFormValue("kind"))
	if kind != recourse.ChannelEmail && kind != recourse.ChannelPhone {
		s.actionFailed(w, r, recourse.FieldError("kind", "Choose email or phone."))
		return
	}
	if _, err := s.svc.AddChannel(r.Context(), principalFrom(r), kind, r.PostFormValue("address"), s.meta(r)); err != nil {
		s.actionFailed(w, r, err)
		return
	}
	redirect(w, r, "/account?notice=channel-added#channels")
}

func (s *Server) channelConfirm(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		s.renderError(w, r, err)
		return
	}
	if err := s.svc.ConfirmChannel(r.Context(), principalFrom(r), r.PathValue("id"), r.PostFormValue("code"), s.meta(r)); err != nil {
		s.actionFailed(w, r, err)
		return
	}
	redirect(w, r, "/account?notice=channel-confirmed#channels")
}

func (s *Server) channelResend(w http.ResponseWriter, r *http.Request) {
	if err := s.svc.ResendChannelCode(r.Context(), principalFrom(r), r.PathValue("id"), s.meta(r)); err != nil {
		s.actionFailed(w, r, err)
		return
	}
	redirect(w, r, "/account?notice=code-sent#channels")
}

func (s *Server) recoveryContacts(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		s.renderError(w, r, err)
		return
	}
	names := strings.FieldsFunc(r.PostFormValue("usernames"), func(c rune) bool { return c == ',' || c == ' ' || c == '\n' || c == '\r' || c == '\t' })
	if len(names) > 10 {
		s.actionFailed(w, r, recourse.FieldError("recovery_contacts", "Name at most 10 people."))
		return
	}
	if err := s.svc.SetRecoveryContacts(r.Context(), principalFrom(r), names, s.meta(r)); err != nil {
		s.actionFailed(w, r, err)
		return
	}
	redirect(w, r, "/account?notice=contacts-saved#contacts")
}

func (s *Server) sessionRevoke(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r)
	id := r.PathValue("id")
	if err := s.svc.RevokeSession(r.Context(), p, id, s.meta(r)); err != nil {
		s.actionFailed(w, r, err)
		return
	}
	if id == p.Session.ID {
		clearSession(w)
		redirect(w, r, "/signin?notice=signed-out")
		return
	}
	redirect(w, r, "/account?notice=session-revoked#sessions")
}

func (s *Server) sessionRevokeAll(w http.ResponseWriter, r *http.Request) {
	if _, err := s.svc.SignOutEverywhere(r.Context(), principalFrom(r), s.meta(r)); err != nil {
		s.actionFailed(w, r, err)
		return
	}
	clearSession(w)
	redirect(w, r, "/signin?notice=signed-out-all")
}
