package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recourse/recourse"
	apiv1 "github.com/recourse/recourse/client"
	"github.com/recourse/recourse/notify"
	"github.com/recourse/recourse/service"
)

// TestAPIAccounts: administrators create, read, replace (guarded by
// If-Match) and import; staff read with channels masked; people read
// themselves only.
func TestAPIAccounts(t *testing.T) {
	e := newAPIEnv(t)
	admin := e.key("r.patel", "accounts:read", "accounts:write", "audit:read")
	agent := e.key("h.berg", "accounts:read")
	person := e.session("d.chen")

	status, h, body := e.call("POST", "/api/v1/accounts", recourse.AccountJSON{ID: "n.new", Username: "n.new", DisplayName: "Nia New",
		Manager: "m.okafor", Emails: []recourse.EmailJSON{{Address: "n.new@example.com", Verified: true}}}, bearer(admin)...)
	if status != http.StatusCreated || h.Get("ETag") != `"v1"` || h.Get("Location") != "/api/v1/accounts/n.new" {
		t.Fatalf("create = %d %s %s", status, h.Get("ETag"), body)
	}
	if a := decode[apiv1.Account](t, body); a.Emails[0].Address != "n.new@example.com" || a.ChannelsMasked || a.Version != 1 {
		t.Fatalf("created = %+v", a)
	}
	if status, _, _ := e.call("POST", "/api/v1/accounts", recourse.AccountJSON{ID: "n.new", Username: "other", DisplayName: "X"}, bearer(admin)...); status != http.StatusConflict {
		t.Errorf("duplicate id = %d", status)
	}
	if status, _, body := e.call("POST", "/api/v1/accounts", recourse.AccountJSON{ID: "bad id", Username: "x", DisplayName: "X"}, bearer(admin)...); status != http.StatusBadRequest || apiErr(t, body).Field != "id" {
		t.Errorf("invalid id = %d %s", status, body)
	}

	// Replace with If-Match; a stale or missing ETag is refused.
	_, h, body = e.call("GET", "/api/v1/accounts/n.new", nil, bearer(admin)...)
	a := decode[apiv1.Account](t, body)
	a.DisplayName, a.Groups = "Nia Newton", []string{"finance"}
	if status, _, body := e.call("PUT", "/api/v1/accounts/n.new", a.AccountJSON, bearer(admin)...); status != http.StatusBadRequest || apiErr(t, body).Field != "If-Match" {
		t.Errorf("update without If-Match = %d %s", status, body)
	}
	status, h2, body := e.call("PUT", "/api/v1/accounts/n.new", a.AccountJSON, append(bearer(admin), "If-Match", h.Get("ETag"))...)
	if status != http.StatusOK || h2.Get("ETag") != `"v2"` || decode[apiv1.Account](t, body).DisplayName != "Nia Newton" {
		t.Fatalf("update = %d %s %s", status, h2.Get("ETag"), body)
	}
	// The second administrator still holds v1: refused, nothing lost.
	a.DisplayName = "Someone Else"
	if status, _, body := e.call("PUT", "/api/v1/accounts/n.new", a.AccountJSON, append(bearer(admin), "If-Match", h.Get("ETag"))...); status != http.StatusConflict || apiErr(t, body).Code != recourse.ECONFLICT {
		t.Fatalf("stale update = %d %s", status, body)
	}
	if status, _, _ := e.call("PUT", "/api/v1/accounts/a.silva", a.AccountJSON, append(bearer(admin), "If-Match", `"v1"`)...); status != http.StatusBadRequest {
		t.Errorf("an update changing the id = %d", status)
	}
	stored, _ := e.store.Account(t.Context(), "n.new")
	if stored.DisplayName != "Nia Newton" || !stored.Emails[0].Verified {
		t.Fatalf("stored = %+v", stored)
	}

	// Import, all or nothing, JSON lines.
	lines := `{"id":"i.one","username":"i.one","display_name":"I One"}` + "\n" + `{"id":"i.two","username":"i.two","display_name":"I Two","manager":"i.one"}` + "\n"
	status, _, body = e.call("POST", "/api/v1/accounts/import", lines, append(bearer(admin), "Content-Type", "application/x-ndjson")...)
	if status != http.StatusOK || decode[apiv1.ImportResult](t, body) != (apiv1.ImportResult{Created: 2}) {
		t.Fatalf("import = %d %s", status, body)
	}
	status, _, body = e.call("POST", "/api/v1/accounts/import", `[{"id":"i.three","username":"i.three","display_name":"I Three","manager":"nobody"}]`, bearer(admin)...)
	if status != http.StatusBadRequest {
		t.Fatalf("import with a dangling manager = %d %s", status, body)
	}
	if _, err := e.store.Account(t.Context(), "i.three"); err == nil {
		t.Fatal("a refused import left an account behind")
	}

	// Staff read with channels masked; people read only themselves.
	_, _, body = e.call("GET", "/api/v1/accounts/d.chen", nil, bearer(agent)...)
	if d := decode[apiv1.Account](t, body); !d.ChannelsMasked || d.Emails[0].Address != "d•••@example.com" || d.Phones[0].Number != "+1••••••0001" {
		t.Fatalf("agent view = %+v", d)
	}
	if status, _, _ := e.call("GET", "/api/v1/accounts/d.chen", nil, cookieOf(person)...); status != http.StatusOK {
		t.Error("a person cannot read themself")
	}
	if status, _, _ := e.call("GET", "/api/v1/accounts/a.silva", nil, cookieOf(person)...); status != http.StatusNotFound {
		t.Error("a person read someone else")
	}
	if status, _, _ := e.call("GET", "/api/v1/accounts", nil, cookieOf(person)...); status != http.StatusForbidden {
		t.Error("a person listed the directory")
	}
	if status, _, _ := e.call("POST", "/api/v1/accounts", recourse.AccountJSON{ID: "z", Username: "z", DisplayName: "Z"}, cookieOf(person)...); status != http.StatusForbidden {
		t.Error("a person created an account")
	}
	_, _, body = e.call("GET", "/api/v1/accounts/d.chen/channels", nil, bearer(agent)...)
	chs := decode[apiv1.ChannelList](t, body).Channels
	if len(chs) != 2 || strings.Contains(string(body), "d.chen@example.com") || !chs[0].UsableForRecovery {
		t.Fatalf("channels = %s", body)
	}
	_, _, body = e.call("GET", "/api/v1/accounts/d.chen/authenticators", nil, bearer(agent)...)
	auths := decode[apiv1.AuthenticatorList](t, body).Authenticators
	if len(auths) < 2 || strings.Contains(string(body), "secret") {
		t.Fatalf("authenticators = %s", body)
	}

	// Cursor pagination visits each account once.
	var seen []string
	cursor := ""
	for range 20 {
		_, _, body := e.call("GET", "/api/v1/accounts?limit=3&cursor="+cursor, nil, bearer(admin)...)
		page := decode[apiv1.AccountList](t, body)
		for _, a := range page.Accounts {
			seen = append(seen, a.ID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	all, _ := e.store.ListAccounts(t.Context(), recourse.AccountFilter{})
	if len(seen) != len(all) || !slices.IsSorted(seen) {
		t.Fatalf("paged %v, want %d accounts", seen, len(all))
	}
	// The changes are audited with the key as actor.
	recs, _ := e.store.UnsequencedAuditEvents(t.Context(), 0, 2000)
	var update *recourse.AuditEvent
	for _, r := range recs {
		if ev, _ := recourse.ParseAuditEvent(r.Data); ev.Action == recourse.ActionAccountUpdate && ev.SubjectID == "n.new" {
			update = ev
		}
	}
	if update == nil || update.Actor.Role != recourse.ActorAPIClient || !strings.HasPrefix(update.Actor.AccountID, "ak_") ||
		update.After["display_name"] != "Nia Newton" || update.Channel != recourse.ViaAPI {
		t.Fatalf("update event = %+v", update)
	}
}

// TestAPIRecoveriesAndApprovals: the help desk opens a request and follows
// it; the manager sees it waiting and votes with If-Match; who may read and
// cancel it.
func TestAPIRecoveriesAndApprovals(t *testing.T) {
	e := newAPIEnv(t)
	ctx := t.Context()
	agent := e.key("h.berg", "recovery:open", "recovery:read", "recovery:cancel", "helpdesk:verify")
	manager := e.session("m.okafor")
	stranger := e.key("c.novak", "recovery:read", "recovery:cancel", "approvals:read", "approvals:vote")

	status, _, body := e.call("POST", "/api/v1/accounts/d.chen/verify-caller", apiv1.VerifyCallerRequest{Code: e.totp("d.chen")}, bearer(agent)...)
	if status != http.StatusOK || !decode[apiv1.VerifyCallerResult](t, body).Verified {
		t.Fatalf("verify caller = %d %s", status, body)
	}
	if _, _, body := e.call("POST", "/api/v1/accounts/d.chen/verify-caller", apiv1.VerifyCallerRequest{Code: "000000"}, bearer(agent)...); decode[apiv1.VerifyCallerResult](t, body).Verified {
		t.Fatal("a wrong code verified the caller")
	}

	status, h, body := e.call("POST", "/api/v1/recoveries", apiv1.OpenRecoveryRequest{Account: "d.chen", Action: "authenticator.recover",
		Reason: "lost_device", Note: "new phone", Checks: []string{"caller_verified_totp"}}, bearer(agent)...)
	if status != http.StatusCreated {
		t.Fatalf("open = %d %s", status, body)
	}
	r := decode[apiv1.Recovery](t, body)
	if r.State != "collecting" || r.Initiator != "help_desk" || r.InitiatorID != "h.berg" || len(r.Missing) == 0 || r.Claimed || h.Get("ETag") != `"v1"` {
		t.Fatalf("opened = %+v", r)
	}
	for _, bad := range []apiv1.OpenRecoveryRequest{
		{Account: "d.chen", Action: "password.change", Reason: "other"},
		{Account: "d.chen", Action: "password.reset", Reason: "because"},
		{Account: "h.berg", Action: "password.reset", Reason: "other"},
	} {
		if status, _, body := e.call("POST", "/api/v1/recoveries", bad, bearer(agent)...); status < 400 || status >= 500 {
			t.Errorf("open %+v = %d %s", bad, status, body)
		}
	}
	// The caller claims it in their own browser with the code they got.
	rs, err := e.svc.ClaimRecovery(ctx, r.ID, e.mailedCode("d.chen@example.com"), service.Meta{IP: "198.51.100.7"})
	if err != nil {
		t.Fatal(err)
	}
	_, _, body = e.call("GET", "/api/v1/recoveries/"+r.ID, nil, bearer(agent)...)
	if r = decode[apiv1.Recovery](t, body); r.State != "awaiting_approval" || !r.Claimed || len(r.Evidence) < 2 {
		t.Fatalf("after the claim = %+v", r)
	}
	// Strangers see nothing.
	if status, _, _ := e.call("GET", "/api/v1/recoveries/"+r.ID, nil, bearer(stranger)...); status != http.StatusNotFound {
		t.Errorf("a stranger read the request: %d", status)
	}
	if status, _, _ := e.call("POST", "/api/v1/recoveries/"+r.ID+"/cancel", nil, bearer(stranger)...); status != http.StatusNotFound {
		t.Errorf("a stranger cancelled the request: %d", status)
	}
	if status, _, body := e.call("GET", "/api/v1/approvals", nil, bearer(stranger)...); status != http.StatusOK || len(decode[apiv1.ApprovalList](t, body).Approvals) != 0 {
		t.Errorf("a stranger's approvals = %d %s", status, body)
	}

	// The manager sees it, reads the exact change, and votes on it.
	_, _, body = e.call("GET", "/api/v1/approvals", nil, cookieOf(manager)...)
	list := decode[apiv1.ApprovalList](t, body).Approvals
	if len(list) != 1 || list[0].RequestID != r.ID || !slices.Contains(list[0].Roles, "manager") || list[0].Subject.ID != "d.chen" {
		t.Fatalf("pending = %s", body)
	}
	_, h, body = e.call("GET", "/api/v1/approvals/"+r.ID, nil, cookieOf(manager)...)
	ap := decode[apiv1.Approval](t, body)
	if h.Get("ETag") != `"`+ap.ChangeDigest+`"` || ap.Change["action"] != "authenticator.recover" {
		t.Fatalf("approval = %+v ETag %s", ap, h.Get("ETag"))
	}
	if status, _, _ := e.call("POST", "/api/v1/approvals/"+r.ID+"/vote", apiv1.VoteRequest{Vote: "approve"}, append(cookieOf(manager), "If-Match", `"0000"`)...); status != http.StatusConflict {
		t.Errorf("vote on a stale change = %d", status)
	}
	if status, _, _ := e.call("POST", "/api/v1/approvals/"+r.ID+"/vote", apiv1.VoteRequest{Vote: "maybe"}, cookieOf(manager)...); status != http.StatusBadRequest {
		t.Errorf("vote maybe = %d", status)
	}
	status, _, body = e.call("POST", "/api/v1/approvals/"+r.ID+"/vote", apiv1.VoteRequest{Vote: "approve", Comment: "called him"}, append(cookieOf(manager), "If-Match", h.Get("ETag"))...)
	if status != http.StatusOK || decode[apiv1.Approval](t, body).Voted != "approve" {
		t.Fatalf("vote = %d %s", status, body)
	}
	if status, _, _ := e.call("POST", "/api/v1/approvals/"+r.ID+"/vote", apiv1.VoteRequest{Vote: "approve"}, cookieOf(manager)...); status != http.StatusConflict {
		t.Errorf("second vote = %d", status)
	}
	_, h, body = e.call("GET", "/api/v1/recoveries/"+r.ID, nil, bearer(agent)...)
	r = decode[apiv1.Recovery](t, body)
	if r.State != "cooling_off" || r.CoolingUntil == nil || !r.CoolingUntil.Equal(e.clock.Now().Add(24*time.Hour)) {
		t.Fatalf("after the vote = %+v", r)
	}
	// Staff list open requests; the subject lists their own.
	_, _, body = e.call("GET", "/api/v1/recoveries", nil, bearer(agent)...)
	if l := decode[apiv1.RecoveryList](t, body).Recoveries; len(l) != 1 || l[0].ID != r.ID {
		t.Fatalf("open requests = %s", body)
	}
	subject := e.key("d.chen", "recovery:read")
	_, _, body = e.call("GET", "/api/v1/recoveries?state=all", nil, bearer(subject)...)
	if l := decode[apiv1.RecoveryList](t, body).Recoveries; len(l) != 1 {
		t.Fatalf("own requests = %s", body)
	}
	if status, _, _ := e.call("GET", "/api/v1/recoveries?account=a.silva", nil, bearer(subject)...); status != http.StatusForbidden {
		t.Errorf("a person listed another's requests: %d", status)
	}

	// The agent who opened it cancels it, guarded by If-Match; the subject
	// is told.
	if status, _, _ := e.call("POST", "/api/v1/recoveries/"+r.ID+"/cancel", apiv1.CancelRecoveryRequest{Reason: "duplicate"}, append(bearer(agent), "If-Match", `"v1"`)...); status != http.StatusConflict {
		t.Errorf("cancel with a stale ETag = %d", status)
	}
	status, _, body = e.call("POST", "/api/v1/recoveries/"+r.ID+"/cancel", apiv1.CancelRecoveryRequest{Reason: "duplicate"}, append(bearer(agent), "If-Match", h.Get("ETag"))...)
	if status != http.StatusOK || decode[apiv1.Recovery](t, body).State != "cancelled" {
		t.Fatalf("cancel = %d %s", status, body)
	}
	if st, _ := e.svc.RecoveryStatus(ctx, rs.RequestID, rs.BrowserSecret); st.State != recourse.RecoveryCancelled {
		t.Fatalf("state after cancel = %s", st.State)
	}
	msgs, _ := e.store.OutboxMessages(ctx, 100)
	if !slices.ContainsFunc(msgs, func(m *recourse.OutboxMessage) bool {
		return strings.Contains(m.Subject, "was cancelled") && m.To == "d.chen@example.com"
	}) {
		t.Error("the subject was not told of the cancellation")
	}
}

// TestAPISelfService: the API twin of "Can't sign in?" answers known and
// unknown identifiers alike, and moves only with the request's secret.
func TestAPISelfService(t *testing.T) {
	e := newAPIEnv(t)
	start := func(ident string) apiv1.RecoveryHandle {
		status, _, body := e.call("POST", "/api/v1/self-service/recoveries", apiv1.StartRecoveryRequest{Identifier: ident, Lost: "password"})
		if status != http.StatusAccepted {
			t.Fatalf("start %s = %d %s", ident, status, body)
		}
		return decode[apiv1.RecoveryHandle](t, body)
	}
	known, unknown := start("d.chen"), start("nobody.here")
	e.runStarts()
	if len(known.RequestID) != len(unknown.RequestID) || len(known.Secret) != len(unknown.Secret) || !strings.HasPrefix(known.Secret, "rrb_") {
		t.Fatalf("handles differ in shape: %+v %+v", known, unknown)
	}
	status := func(h apiv1.RecoveryHandle, secret string) apiv1.RecoveryStatus {
		_, _, body := e.call("GET", "/api/v1/self-service/recoveries/"+h.RequestID, nil, recoverySecretHeader, secret)
		s := decode[apiv1.RecoveryStatus](t, body)
		s.ID = ""
		return s
	}
	if k, u := status(known, known.Secret), status(unknown, unknown.Secret); k.Revealed || !equalJSON(t, k, u) {
		t.Fatalf("status before any code differs:\n%+v\n%+v", k, u)
	}
	// A wrong code, then the right one with the wrong secret: nothing moves.
	code := e.mailedCode("d.chen@example.com")
	if s, _, b := e.call("POST", "/api/v1/self-service/recoveries/"+known.RequestID+"/codes", apiv1.CodeRequest{Code: code}, recoverySecretHeader, unknown.Secret); s != http.StatusBadRequest {
		t.Fatalf("code with another secret = %d %s", s, b)
	}
	s, _, body := e.call("POST", "/api/v1/self-service/recoveries/"+known.RequestID+"/codes", apiv1.CodeRequest{Code: code}, recoverySecretHeader, known.Secret)
	if st := decode[apiv1.RecoveryStatus](t, body); s != http.StatusOK || !st.Revealed || st.State != "collecting" || !st.CanTOTP {
		t.Fatalf("after the code = %d %s", s, body)
	}
	s, _, body = e.call("POST", "/api/v1/self-service/recoveries/"+known.RequestID+"/totp", apiv1.CodeRequest{Code: e.totp("d.chen")}, recoverySecretHeader, known.Secret)
	if st := decode[apiv1.RecoveryStatus](t, body); s != http.StatusOK || st.State != "ready" || !st.CanContinue {
		t.Fatalf("after the TOTP = %d %s", s, body)
	}
	_, _, body = e.call("POST", "/api/v1/self-service/recoveries/"+known.RequestID+"/continue", nil, recoverySecretHeader, known.Secret)
	tok := decode[apiv1.CompletionToken](t, body).CompletionToken
	s, _, body = e.call("POST", "/api/v1/self-service/recoveries/"+known.RequestID+"/complete",
		apiv1.CompleteRecoveryRequest{CompletionToken: tok, NewPassword: "saffron-kettle-meadow-9"}, recoverySecretHeader, known.Secret)
	done := decode[apiv1.CompletedRecovery](t, body)
	if s != http.StatusOK || !strings.HasPrefix(done.SessionToken, "rss_") || done.Restricted {
		t.Fatalf("complete = %d %s", s, body)
	}
	if st := status(known, known.Secret); st.State != "completed" {
		t.Fatalf("final state = %s", st.State)
	}
	if _, err := e.svc.SignIn(t.Context(), "d.chen", "saffron-kettle-meadow-9", service.Meta{}); err != nil {
		t.Fatalf("the new password does not work: %v", err)
	}
}

// TestAPISelfServiceAccessPass: through the Go client, a lost-device
// recovery ends with a temporary access pass instead of a session, and a
// password reset that asks for one is refused with its token kept.
func TestAPISelfServiceAccessPass(t *testing.T) {
	e := newAPIEnv(t)
	ctx := t.Context()
	c, err := apiv1.New(e.ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	// ready drives a request of the person to ready with their email code
	// and their authenticator app (for a lost device: they lost a security
	// key but hold the app, which the built-in policy accepts at once).
	ready := func(username, lost string) (*apiv1.RecoveryHandle, string) {
		t.Helper()
		h, err := c.StartRecovery(ctx, username, lost)
		if err != nil {
			t.Fatal(err)
		}
		e.runStarts()
		if _, err := c.SubmitCode(ctx, h, e.mailedCode(username+"@example.com")); err != nil {
			t.Fatal(err)
		}
		if st, err := c.SubmitTOTP(ctx, h, e.totp(username)); err != nil || st.State != "ready" {
			t.Fatalf("after the app code: %+v, %v", st, err)
		}
		tok, err := c.ContinueRecovery(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		return h, tok
	}

	old := e.session("d.chen")
	h, tok := ready("d.chen", "device")
	done, err := c.CompleteRecoveryWithAccessPass(ctx, h, tok)
	if err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	if done.SessionToken != "" || !done.Restricted || !strings.HasPrefix(done.AccessPass, service.AccessPassPrefix) ||
		done.AccessPassExpiresAt == nil || !done.AccessPassExpiresAt.After(now) || done.AccessPassExpiresAt.After(now.Add(24*time.Hour)) {
		t.Fatalf("complete with a pass = %+v", done)
	}
	if st, err := c.RecoveryStatus(ctx, h); err != nil || st.State != "completed" {
		t.Fatalf("state after completion = %+v, %v", st, err)
	}
	if list, _ := e.store.Sessions(ctx, "d.chen", now); len(list) != 0 {
		t.Fatalf("%d sessions of d.chen after completing with a pass, want none", len(list))
	}
	if s, _, _ := e.call("GET", "/api/v1/me", nil, cookieOf(old)...); s != http.StatusUnauthorized {
		t.Fatalf("an old session after the recovery: GET /api/v1/me = %d", s)
	}
	si, err := e.svc.SignInAccessPass(ctx, "d.chen", done.AccessPass, service.Meta{IP: "192.0.2.7"})
	if err != nil || !si.Session.Restricted {
		t.Fatalf("sign-in with the pass: %+v, %v (must be restricted)", si, err)
	}
	if _, err := e.svc.SignInAccessPass(ctx, "d.chen", done.AccessPass, service.Meta{IP: "192.0.2.7"}); err == nil {
		t.Fatal("the pass worked twice")
	}

	// A password reset asking for a pass: refused, and the token still
	// finishes the reset.
	h, tok = ready("a.silva", "password")
	_, err = c.CompleteRecoveryWithAccessPass(ctx, h, tok)
	var ae *apiv1.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Code != recourse.EINVALID || ae.Field != "access_pass" {
		t.Fatalf("a pass for a password reset: %v", err)
	}
	done, err = c.CompleteRecovery(ctx, h, tok, "saffron-kettle-meadow-9")
	if err != nil || !strings.HasPrefix(done.SessionToken, "rss_") || done.Restricted || done.AccessPass != "" || done.AccessPassExpiresAt != nil {
		t.Fatalf("the reset after the refusal = %+v, %v", done, err)
	}
}

// TestAPIPolicySessionsMe covers the small resources.
func TestAPIPolicySessionsMe(t *testing.T) {
	e := newAPIEnv(t)
	sec := e.key("s.ito", "policy:read", "sessions:read", "sessions:write")
	_, _, body := e.call("GET", "/api/v1/policy", nil, bearer(sec)...)
	if p := decode[apiv1.Policy](t, body); p.Digest != e.svc.Policy().Digest() || !slices.Contains(p.Actions, "password.reset") {
		t.Fatalf("policy = %s", body)
	}
	_, _, body = e.call("GET", "/api/v1/policy/decisions?account=r.patel&action=password.reset&initiator=help_desk", nil, bearer(sec)...)
	if d := decode[apiv1.Decision](t, body); d.Decision != "require" || !slices.Contains(d.Classes, "privileged") || d.PolicyDigest == "" {
		t.Fatalf("decision = %s", body)
	}
	if s, _, _ := e.call("GET", "/api/v1/policy/decisions?account=r.patel&action=nope", nil, bearer(sec)...); s != http.StatusBadRequest {
		t.Errorf("unknown action = %d", s)
	}
	if s, _, _ := e.call("GET", "/api/v1/policy", nil, cookieOf(e.session("d.chen"))...); s != http.StatusForbidden {
		t.Errorf("a person read the policy: %d", s)
	}
	// Sessions: the person's own, current marked; revoking one ends it.
	tok1, tok2 := e.session("a.silva"), e.session("a.silva")
	_, _, body = e.call("GET", "/api/v1/sessions", nil, cookieOf(tok1)...)
	list := decode[apiv1.SessionList](t, body).Sessions
	if len(list) != 2 || list[0].Current == list[1].Current {
		t.Fatalf("sessions = %s", body)
	}
	other := list[0].ID
	if list[0].Current {
		other = list[1].ID
	}
	if s, _, _ := e.call("DELETE", "/api/v1/sessions/"+other, nil, cookieOf(tok1)...); s != http.StatusNoContent {
		t.Fatalf("revoke = %d", s)
	}
	if s, _, _ := e.call("GET", "/api/v1/me", nil, cookieOf(tok2)...); s != http.StatusUnauthorized {
		t.Fatalf("a revoked session still works: %d", s)
	}
	if s, _, _ := e.call("DELETE", "/api/v1/sessions/"+other, nil, bearer(sec)...); s != http.StatusNotFound {
		t.Errorf("a key revoked another person's session: %d", s)
	}
	_, _, body = e.call("GET", "/api/v1/me", nil, cookieOf(tok1)...)
	if me := decode[apiv1.Me](t, body); me.Via != "session" || me.Account.ID != "a.silva" || len(me.Scopes) != len(service.Scopes) {
		t.Fatalf("me = %s", body)
	}
	_, _, body = e.call("GET", "/api/v1/scopes", nil)
	if l := decode[apiv1.ScopeList](t, body).Scopes; len(l) != len(service.Scopes) {
		t.Fatalf("scopes = %s", body)
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// fakeCourier delivers nothing; it accepts https URLs on example.com only.
type fakeCourier struct{}

func (fakeCourier) SendEmail(context.Context, notify.Email) error  { return nil }
func (fakeCourier) CallWebhook(context.Context, notify.Call) error { return nil }
func (fakeCourier) CheckWebhookURL(raw string) error {
	if !strings.HasPrefix(raw, "https://") || !strings.Contains(raw, ".example.com/") {
		return fmt.Errorf("%w: not an allowed target", notify.ErrRefusedTarget)
	}
	return nil
}

type noDeliveries struct{}

func (noDeliveries) ScheduleDelivery(context.Context, recourse.Tx, *recourse.Notification) error {
	return nil
}

// TestAPIWebhooks: administrators manage endpoints; a secret is shown once.
func TestAPIWebhooks(t *testing.T) {
	e := newAPIEnv(t)
	if err := e.svc.EnableNotifications(t.Context(), service.Notifications{Courier: fakeCourier{}, Scheduler: noDeliveries{}}); err != nil {
		t.Fatal(err)
	}
	admin := e.key("r.patel", "webhooks:read", "webhooks:write")
	status, h, body := e.call("POST", "/api/v1/webhooks", apiv1.CreateWebhookRequest{URL: "https://hooks.example.com/recourse", Events: []string{"*"}}, bearer(admin)...)
	if status != http.StatusCreated {
		t.Fatalf("create = %d %s", status, body)
	}
	created := decode[apiv1.CreatedWebhook](t, body)
	if created.Secret == "" || created.Webhook.Source != "api" || h.Get("Location") != "/api/v1/webhooks/"+created.Webhook.ID {
		t.Fatalf("created = %+v", created)
	}
	if status, _, body := e.call("POST", "/api/v1/webhooks", apiv1.CreateWebhookRequest{URL: "http://169.254.169.254/", Events: []string{"*"}}, bearer(admin)...); status != http.StatusBadRequest || apiErr(t, body).Field != "url" {
		t.Errorf("an SSRF target = %d %s", status, body)
	}
	_, _, body = e.call("GET", "/api/v1/webhooks", nil, bearer(admin)...)
	if l := decode[apiv1.WebhookList](t, body).Webhooks; len(l) != 1 || strings.Contains(string(body), created.Secret) {
		t.Fatalf("list = %s", body)
	}
	status, _, body = e.call("POST", "/api/v1/webhooks/"+created.Webhook.ID+"/rotate-secret", nil, bearer(admin)...)
	if s := decode[apiv1.WebhookSecret](t, body).Secret; status != http.StatusOK || s == "" || s == created.Secret {
		t.Fatalf("rotate = %d %s", status, body)
	}
	if status, _, _ := e.call("DELETE", "/api/v1/webhooks/"+created.Webhook.ID, nil, bearer(admin)...); status != http.StatusNoContent {
		t.Fatalf("delete = %d", status)
	}
	if status, _, _ := e.call("DELETE", "/api/v1/webhooks/"+created.Webhook.ID, nil, bearer(admin)...); status != http.StatusNotFound {
		t.Fatalf("delete again = %d", status)
	}
	if status, _, _ := e.call("GET", "/api/v1/webhooks", nil, cookieOf(e.session("d.chen"))...); status != http.StatusForbidden {
		t.Errorf("a person listed webhooks: %d", status)
	}
}
