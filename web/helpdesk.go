package web

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/policy"
	"github.com/recourse/recourse/service"
)

// The help-desk console: search the directory, an account card with its risk
// flags, "verify caller" and "open a recovery". An agent never sees a code,
// a token or a password, and cannot complete a request.

func (s *Server) helpdeskRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /helpdesk", s.requireHelpdesk(s.helpdeskSearch))
	mux.HandleFunc("GET /helpdesk/accounts/{id}", s.requireHelpdesk(s.helpdeskAccount))
	mux.HandleFunc("POST /helpdesk/accounts/{id}/verify", s.requireHelpdesk(s.helpdeskVerify))
	mux.HandleFunc("POST /helpdesk/accounts/{id}/recoveries", s.requireHelpdesk(s.helpdeskOpen))
	mux.HandleFunc("GET /helpdesk/requests/{id}", s.requireHelpdesk(s.helpdeskRequest))
}

// requireHelpdesk runs h for a signed-in help-desk agent: anonymous callers
// go to /signin, anyone else gets a 403 page.
func (s *Server) requireHelpdesk(h http.HandlerFunc) http.HandlerFunc {
	return s.requireSignIn(func(w http.ResponseWriter, r *http.Request) {
		if err := s.svc.HelpdeskConsole(principalFrom(r)); err != nil {
			s.render(w, r, httpStatus(err), "forbidden", page{Title: "Not available", Error: recourse.ErrorMessage(err)})
			return
		}
		h(w, r)
	})
}

type searchRow struct {
	ID, Username, DisplayName, Kind, Status string
}

type searchData struct {
	Query    string
	Results  []searchRow
	Searched bool
}

func (s *Server) helpdeskSearch(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	d := searchData{Query: q}
	if q != "" {
		if len(q) > 128 {
			q = q[:128]
		}
		list, err := s.svc.ListAccounts(r.Context(), recourse.AccountFilter{Query: q, Limit: 25})
		if err != nil {
			s.renderError(w, r, err)
			return
		}
		d.Searched = true
		for _, a := range list {
			d.Results = append(d.Results, searchRow{ID: a.ID, Username: a.Username, DisplayName: a.DisplayName, Kind: string(a.Kind), Status: string(a.Status)})
		}
	}
	s.render(w, r, http.StatusOK, "helpdesk", page{Title: "Help desk", Data: d})
}

// option is one choice in a select or a group of checkboxes.
type option struct {
	Value, Label string
	Selected     bool
}

var reasonLabels = map[string]string{
	"lost_device":     "Lost or replaced device",
	"forgot_password": "Forgot password",
	"new_phone":       "New phone number",
	"new_email":       "New email address",
	"locked_out":      "Locked out",
	"other":           "Other (explain in the note)",
}

var checkLabels = map[string]string{
	"caller_verified_totp":       "The caller read a code from their own authenticator app (verified above)",
	"called_back_on_record":      "I called the caller back on the number on record",
	"manager_confirmed_by_phone": "Their manager confirmed by phone",
	"id_seen_on_video":           "I saw their photo ID on a video call",
}

func labelled(values []string, labels map[string]string, selected func(string) bool) []option {
	out := make([]option, 0, len(values))
	for _, v := range values {
		l := labels[v]
		if l == "" {
			l = v
		}
		out = append(out, option{Value: v, Label: l, Selected: selected(v)})
	}
	return out
}

type channelRow struct {
	Kind     string
	Masked   string
	Verified bool
	Shared   bool
}

type authRow struct {
	Kind        recourse.AuthenticatorKind
	Name        string
	DeviceBound bool
	CreatedAt   time.Time
	LastUsedAt  *time.Time
}

type requestRow struct {
	ID          string
	ActionLabel string
	StateLabel  string
	Open        bool
	Initiator   string
	CreatedAt   time.Time
}

// riskFlag is one thing an agent should weigh before acting.
type riskFlag struct {
	Text string
	Warn bool
}

// openForm is the "open a recovery" form as last submitted.
type openForm struct {
	Action, Reason, Note string
	Checks               []string
}

type helpdeskCardData struct {
	Account        *recourse.Account
	Channels       []channelRow
	Authenticators []authRow
	Requests       []requestRow
	Flags          []riskFlag
	Classes        string
	// Checked and Verified are the outcome of "verify caller" in this very
	// answer; they are never read from the URL, so nobody can send an agent
	// a link that shows a false "verified".
	Checked  bool
	Verified bool
	Actions  []option
	Reasons  []option
	Checks   []option
	Note     string
}

func (s *Server) helpdeskAccount(w http.ResponseWriter, r *http.Request) {
	s.renderCard(w, r, http.StatusOK, nil, nil, openForm{})
}

func (s *Server) renderCard(w http.ResponseWriter, r *http.Request, status int, verified *bool, cerr error, form openForm) {
	ctx := r.Context()
	a, err := s.svc.Account(ctx, r.PathValue("id"))
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	d := helpdeskCardData{Account: a, Checked: verified != nil, Note: form.Note}
	if verified != nil {
		d.Verified = *verified
	}
	for _, c := range append(append([]recourse.Channel{}, a.Emails...), a.Phones...) {
		kind := "Email"
		if c.Kind == recourse.ChannelPhone {
			kind = "Phone"
		}
		d.Channels = append(d.Channels, channelRow{Kind: kind, Masked: service.MaskAddress(c.Kind, c.Address), Verified: c.Verified, Shared: c.Shared})
	}
	auths, err := s.svc.Authenticators(ctx, a.ID)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	hasFactor := false
	for _, au := range auths {
		if au.Status != recourse.AuthActive {
			continue
		}
		hasFactor = hasFactor || au.Kind == recourse.AuthTOTP || au.Kind == recourse.AuthWebAuthn
		d.Authenticators = append(d.Authenticators, authRow{Kind: au.Kind, Name: au.Name, DeviceBound: au.DeviceBound, CreatedAt: au.CreatedAt, LastUsedAt: au.LastUsedAt})
	}
	reqs, err := s.svc.AccountRecoveries(ctx, a.ID)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	for _, q := range reqs {
		if q.Tier == string(policy.TierRoutine) && !q.State.Open() {
			continue // finished self-service changes are history, not requests
		}
		if len(d.Requests) == 10 {
			break
		}
		d.Requests = append(d.Requests, requestRow{ID: q.ID, ActionLabel: actionLabel(q.Action), StateLabel: stateLabel(q.State),
			Open: q.State.Open(), Initiator: q.Initiator, CreatedAt: q.CreatedAt})
	}
	dec, err := s.svc.Decide(ctx, a.ID, "password.reset", policy.Request{Initiator: "help_desk", InitiatorID: principalFrom(r).Account.ID})
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	d.Classes = strings.Join(dec.Classes, ", ")
	d.Flags = s.riskFlags(a, dec, hasFactor)

	kindTier := policy.TierRecovery
	if a.Kind == recourse.KindService {
		kindTier = policy.TierCritical
	}
	var actions []string
	for _, act := range policy.Actions() {
		if policy.Catalogue[act] == kindTier {
			actions = append(actions, act)
		}
	}
	d.Actions = labelled(actions, actionLabels, func(v string) bool { return v == form.Action })
	d.Reasons = labelled(service.HelpdeskReasons, reasonLabels, func(v string) bool { return v == form.Reason })
	d.Checks = labelled(service.HelpdeskChecks, checkLabels, func(v string) bool { return slices.Contains(form.Checks, v) })

	p := page{Title: "Help-desk account", Data: d}
	if cerr != nil {
		s.logIfInternal(r, cerr)
		p.Error, p.Field = recourse.ErrorMessage(cerr), errorField(cerr, "")
	}
	s.render(w, r, status, "helpdesk_account", p)
}

// riskFlags lists what an agent should weigh before acting on the account.
func (s *Server) riskFlags(a *recourse.Account, dec *policy.Decision, hasFactor bool) []riskFlag {
	var out []riskFlag
	if a.Status != recourse.StatusActive {
		out = append(out, riskFlag{"The account is " + string(a.Status) + ".", true})
	}
	if a.FrozenAt != nil {
		out = append(out, riskFlag{"Frozen since " + a.FrozenAt.UTC().Format("2 Jan 2006 15:04 UTC") + " after a \"this wasn't me\" report. Only the security team can lift it.", true})
	}
	if a.Locked() {
		out = append(out, riskFlag{"Locked after too many failed sign-ins.", true})
	}
	if slices.Contains(dec.Classes, "privileged") {
		out = append(out, riskFlag{"Privileged account: the policy asks for more before recovering it, and the security team is alerted when you open a request.", true})
	}
	if a.ContractEnd != nil {
		days := int(math.Ceil(a.ContractEnd.Sub(s.now()).Hours() / 24))
		when := a.ContractEnd.UTC().Format("2 Jan 2006")
		switch {
		case days < 0:
			out = append(out, riskFlag{"Contract ended on " + when + ".", true})
		case days == 0:
			out = append(out, riskFlag{"Contract ends today (" + when + ").", true})
		default:
			out = append(out, riskFlag{fmt.Sprintf("Contract ends in %d days (%s).", days, when), days <= 14})
		}
	}
	usable := false
	for _, c := range append(append([]recourse.Channel{}, a.Emails...), a.Phones...) {
		if c.Shared {
			out = append(out, riskFlag{"Shared " + string(c.Kind) + " " + service.MaskAddress(c.Kind, c.Address) + ": another account uses it too, so it never counts as recovery evidence.", true})
		}
		usable = usable || c.UsableForRecovery()
	}
	if !usable && a.Kind == recourse.KindHuman {
		out = append(out, riskFlag{"No confirmed, unshared email address or phone number: the caller cannot receive codes.", true})
	}
	if !hasFactor && a.Kind == recourse.KindHuman {
		out = append(out, riskFlag{"No authenticator app or passkey: \"verify caller\" cannot work.", false})
	}
	if a.Kind == recourse.KindService {
		out = append(out, riskFlag{"Service account owned by " + strings.Join(a.Owners, ", ") + ".", false})
	}
	if dec.Outcome == policy.Deny {
		out = append(out, riskFlag{"The policy refuses recovery for this account: " + dec.Reason, true})
	}
	return out
}

// helpdeskVerify checks a code the caller reads from their own authenticator
// app. The agent learns verified or not verified, nothing else.
func (s *Server) helpdeskVerify(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		s.renderError(w, r, err)
		return
	}
	ok, err := s.svc.VerifyCaller(r.Context(), principalFrom(r), r.PathValue("id"), r.PostFormValue("code"), s.meta(r))
	if err != nil {
		if recourse.ErrorCode(err) == recourse.EINTERNAL {
			s.renderError(w, r, err)
			return
		}
		s.renderCard(w, r, httpStatus(err), nil, err, openForm{})
		return
	}
	s.renderCard(w, r, http.StatusOK, &ok, nil, openForm{})
}

// helpdeskOpen opens a recovery on the caller's behalf and shows its status.
func (s *Server) helpdeskOpen(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		s.renderError(w, r, err)
		return
	}
	form := openForm{Action: r.PostFormValue("action"), Reason: r.PostFormValue("reason"), Note: r.PostFormValue("note"), Checks: r.PostForm["checks"]}
	req, err := s.svc.OpenOnBehalf(r.Context(), principalFrom(r), r.PathValue("id"), form.Action, form.Reason, form.Note, form.Checks, s.meta(r))
	if err != nil {
		if recourse.ErrorCode(err) == recourse.EINTERNAL {
			s.renderError(w, r, err)
			return
		}
		s.renderCard(w, r, httpStatus(err), nil, err, form)
		return
	}
	redirect(w, r, "/helpdesk/requests/"+req.ID)
}

type agentRequestData struct {
	View        *service.AgentRecoveryView
	Account     *recourse.Account
	ActionLabel string
	StateLabel  string
	Initiator   string
	Open        bool
	ClaimURL    string
	Cooling     bool
	CoolingTime time.Time
	CoolingIn   string
}

func (s *Server) helpdeskRequest(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v, err := s.svc.AgentRecovery(ctx, principalFrom(r), r.PathValue("id"))
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	a, err := s.svc.Account(ctx, v.Request.AccountID)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	d := agentRequestData{View: v, Account: a, ActionLabel: actionLabel(v.Request.Action), StateLabel: stateLabel(v.State), Open: v.State.Open(),
		Initiator: s.initiatorName(r, v.Request, a),
		ClaimURL:  strings.TrimSuffix(s.svc.Config().PublicURL, "/") + "/recover/claim"}
	if v.Request.CoolingUntil != nil && d.Open {
		d.Cooling, d.CoolingTime, d.CoolingIn = true, *v.Request.CoolingUntil, untilText(s.now(), *v.Request.CoolingUntil)
	}
	s.render(w, r, http.StatusOK, "helpdesk_request", page{Title: "Help-desk request", Data: d})
}
