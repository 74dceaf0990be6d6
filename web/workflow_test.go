package web

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/service"
)

// normalize removes what legitimately differs between two answers: the
// request id in the footer and the recovery request's own id.
func normalize(body, id string) string {
	body = regexp.MustCompile(`request req_[2-7a-z]{26}`).ReplaceAllString(body, "request ID")
	return strings.ReplaceAll(body, id, "rr_ID")
}

// TestRecoverAnswersLookAlike checks that "Can't sign in?" answers a known
// and an unknown identifier the same way at every step a stranger can take,
// including the ones the page does not offer before a code (continue,
// complete with a well-formed token) and after many wrong codes.
func TestRecoverAnswersLookAlike(t *testing.T) {
	w := newWorld(t, false)
	fakeToken := credential.NewToken(service.CompletionTokenPrefix)
	type step struct {
		name string
		path string // after /recover/{id}; "" for the page itself
		form url.Values
	}
	steps := []step{
		{"page", "", nil},
		{"wrong code", "/code", url.Values{"code": {"000000"}}},
		{"wrong app code", "/totp", url.Values{"code": {"000000"}}},
		{"wrong saved code", "/recovery-code", url.Values{"code": {"abcd-efgh-jkmn-pqrs"}}},
		{"continue", "/continue", url.Values{}},
		{"complete", "/complete", url.Values{"token": {fakeToken}, "new_password": {"short"}, "confirm_password": {"short"}}},
	}
	for range 11 { // past the account's limit of wrong codes
		steps = append(steps, step{"another wrong code", "/code", url.Values{"code": {"000000"}}})
	}
	steps = append(steps, step{"page at the end", "", nil})
	type answer struct {
		status int
		body   string
	}
	run := func(identifier string) []answer {
		c := w.client()
		resp, body := c.post("/recover", url.Values{"identifier": {identifier}, "lost": {"password"}})
		id := strings.TrimPrefix(resp.Header.Get("Location"), "/recover/")
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(id, "rr_") {
			t.Fatalf("POST /recover for %s = %d %q", identifier, resp.StatusCode, resp.Header.Get("Location"))
		}
		out := []answer{{resp.StatusCode, normalize(body, id)}}
		w.waitJob("recovery_start")
		for _, st := range steps {
			var resp *http.Response
			if st.form == nil {
				resp, body = c.get("/recover/" + id + st.path)
			} else {
				resp, body = c.post("/recover/"+id+st.path, st.form)
			}
			checkNoInlineCode(t, st.name, body)
			out = append(out, answer{resp.StatusCode, normalize(body, id)})
		}
		return out
	}
	known, unknown := run("d.chen"), run("no.such.person")
	for i := range known {
		name := "POST /recover"
		if i > 0 {
			name = steps[i-1].name
		}
		if known[i] != unknown[i] {
			t.Errorf("%s: the answers differ: known %d, unknown %d\nknown:\n%s\nunknown:\n%s", name, known[i].status, unknown[i].status, known[i].body, unknown[i].body)
		}
	}
	if page := known[1]; page.status != http.StatusOK || !strings.Contains(page.body, "If an account matches, we sent a code to its confirmed email address and phone. Enter it below.") {
		t.Errorf("unrevealed page = %d", page.status)
	}
	if wrong := known[2]; wrong.status != http.StatusBadRequest || !strings.Contains(wrong.body, `aria-invalid="true"`) || !strings.Contains(wrong.body, `role="alert"`) {
		t.Error("a wrong code is not marked on the field and announced")
	}
}

// TestRecoverStartErrors checks the start form's errors point at their field.
func TestRecoverStartErrors(t *testing.T) {
	w := newWorld(t, false)
	tests := []struct {
		name, identifier, lost, invalid string
	}{
		{"no identifier", "", "password", `id="identifier"`},
		{"nothing chosen", "d.chen", "", `id="lost-password"`},
		{"unknown choice", "d.chen", "keys", `id="lost-device"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := w.client().post("/recover", url.Values{"identifier": {tc.identifier}, "lost": {tc.lost}})
			if resp.StatusCode != http.StatusBadRequest || !regexp.MustCompile(regexp.QuoteMeta(tc.invalid)+`[^>]*aria-invalid="true"`).MatchString(body) {
				t.Errorf("= %d; want 400 with %s marked invalid", resp.StatusCode, tc.invalid)
			}
			if _, ok := resp.Header["Set-Cookie"]; ok {
				t.Error("a refused start set a cookie")
			}
		})
	}
}

func TestRecoveryCookie(t *testing.T) {
	w := newWorld(t, false)
	c := w.client()
	resp, _ := c.post("/recover", url.Values{"identifier": {"d.chen"}, "lost": {"device"}})
	w.waitJob("recovery_start")
	id := strings.TrimPrefix(resp.Header.Get("Location"), "/recover/")
	var ck *http.Cookie
	for _, x := range resp.Cookies() {
		if x.Name == "__Host-recourse_recovery" {
			ck = x
		}
	}
	if ck == nil {
		t.Fatal("no recovery cookie")
	}
	cid, secret, _ := strings.Cut(ck.Value, ".")
	checks := []struct {
		name string
		ok   bool
	}{
		{"Secure", ck.Secure},
		{"HttpOnly", ck.HttpOnly},
		{"SameSite=Lax", ck.SameSite == http.SameSiteLaxMode},
		{"Path=/", ck.Path == "/"},
		{"no Domain", ck.Domain == ""},
		{"outlives the request", ck.MaxAge >= int((72 * time.Hour).Seconds())},
		{"value is <id>.<secret>", cid == id && credential.ValidToken(service.BrowserSecretPrefix, secret)},
	}
	for _, tc := range checks {
		if !tc.ok {
			t.Errorf("recovery cookie: want %s; got %+v", tc.name, ck)
		}
	}
	// Without the cookie, the page shows nothing about the request, even
	// after a code proved the browser.
	if resp, _ := c.post("/recover/"+id+"/code", url.Values{"code": {w.code("d.chen@example.com")}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("right code = %d", resp.StatusCode)
	}
	other := w.client()
	_, body := other.get("/recover/" + id)
	if strings.Contains(body, "Waiting for approval") || !strings.Contains(body, "If an account matches") ||
		!strings.Contains(body, "This browser did not start this request") {
		t.Error("another browser saw the request, or was not told why it sees nothing")
	}
	_, body = c.get("/recover/" + id)
	if !strings.Contains(body, "Waiting for approval") {
		t.Error("the browser that holds the cookie does not see its request")
	}
}

// TestLostDeviceFlow drives a lost-device recovery through the pages: the
// email code, the manager's approval from their own session, the 24-hour
// cooling-off, completion, and the restricted session enrolling a new app.
func TestLostDeviceFlow(t *testing.T) {
	w := newWorld(t, false)
	ctx := t.Context()
	user := w.client()

	_, body := user.get("/signin")
	if !strings.Contains(body, `href="/recover"`) {
		t.Fatal("the sign-in page does not link to \"Can't sign in?\"")
	}
	_, body = user.get("/recover")
	checkNoInlineCode(t, "/recover", body)
	id := w.startRecovery(user, "d.chen", "device")
	resp, body := user.post("/recover/"+id+"/code", url.Values{"code": {w.code("d.chen@example.com")}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("code = %d", resp.StatusCode)
	}
	_, body = user.get("/recover/" + id)
	checkNoInlineCode(t, "revealed request page", body)
	for _, want := range []string{"Waiting for approval", "code sent by email", "Still needed", "approval by a manager", "Approvals received"} {
		if !strings.Contains(body, want) {
			t.Errorf("request page lacks %q", want)
		}
	}

	// The manager decides in their own session.
	mgr := w.client()
	if resp, _ := mgr.get("/approvals"); resp.Header.Get("Location") != "/signin" {
		t.Fatalf("anonymous /approvals -> %q", resp.Header.Get("Location"))
	}
	w.signIn(mgr, "m.okafor")
	_, body = mgr.get("/approvals")
	checkNoInlineCode(t, "/approvals", body)
	if !strings.Contains(body, `href="/approvals/`+id+`"`) || !strings.Contains(body, "Daniel Chen") {
		t.Fatal("the inbox does not list the request")
	}
	_, body = mgr.get("/approvals/" + id)
	checkNoInlineCode(t, "/approvals/{id}", body)
	for _, want := range []string{"Replace a lost authenticator app", "They say they lost", "their phone or security key",
		"Daniel Chen (d.chen)", "Daniel Chen, from the &#34;Can&#39;t sign in?&#34; page", "127.0.0.1", "code sent by email", "No votes yet", "manager"} {
		if !strings.Contains(body, want) {
			t.Errorf("decision page lacks %q", want)
		}
	}
	// The subject cannot see or vote on their own request.
	self := w.client()
	w.signIn(self, "d.chen")
	if resp, _ := self.get("/approvals/" + id); resp.StatusCode != http.StatusNotFound {
		t.Errorf("the subject opened their own approval page: %d", resp.StatusCode)
	}
	resp, _ = mgr.post("/approvals/"+id, url.Values{"vote": {"approve"}, "comment": {"Called him on his desk phone"}})
	if resp.Header.Get("Location") != "/approvals?done=approved" {
		t.Fatalf("vote -> %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body = mgr.get("/approvals?done=approved")
	if !strings.Contains(body, "Your approval was recorded") || !strings.Contains(body, "Nothing waits for you") {
		t.Error("the inbox after the vote")
	}

	// Cooling-off: 24 hours, shown as an absolute time.
	_, body = user.get("/recover/" + id)
	until := w.clock.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	if !strings.Contains(body, "Cooling off") || !strings.Contains(body, `<time datetime="`+until+`">`) {
		t.Fatalf("cooling-off page lacks the state or <time datetime=%q>", until)
	}
	if resp, body := user.post("/recover/"+id+"/continue", nil); resp.StatusCode != http.StatusConflict || !strings.Contains(body, "cannot be completed yet") {
		t.Fatalf("continue during the cooling-off = %d", resp.StatusCode)
	}
	w.clock.Add(24*time.Hour + time.Second)
	if err := w.svc.AdvanceRecovery(ctx, id); err != nil {
		t.Fatal(err)
	}
	_, body = user.get("/recover/" + id)
	if !strings.Contains(body, "Ready to complete") || !strings.Contains(body, `action="/recover/`+id+`/continue"`) {
		t.Fatal("the ready page has no Continue")
	}
	resp, body = user.post("/recover/"+id+"/continue", nil)
	checkNoInlineCode(t, "completion form", body)
	if resp.StatusCode != http.StatusOK || strings.Contains(body, `name="new_password"`) {
		t.Fatalf("completion form = %d (a device recovery asks for no password)", resp.StatusCode)
	}
	token := formValue(t, body, "token")
	resp, _ = user.post("/recover/"+id+"/complete", url.Values{"token": {token}})
	if resp.Header.Get("Location") != "/account?done=recovered" || user.cookies[sessionCookie] == "" {
		t.Fatalf("complete -> %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, ok := user.cookies[recoveryCookie]; ok {
		t.Error("the recovery cookie outlived the completed request")
	}
	if r := w.recovery(id); r.State != recourse.RecoveryCompleted {
		t.Fatalf("state = %s", r.State)
	}

	// The restricted session may only enrol a new authenticator.
	_, body = user.get("/account?done=recovered")
	checkNoInlineCode(t, "/account (restricted)", body)
	if !strings.Contains(body, "Finish your recovery: add a new authenticator") || strings.Contains(body, `id="channels"`) ||
		strings.Contains(body, `action="/account/password"`) {
		t.Fatal("the restricted security page")
	}
	if resp, _ := user.post("/account/channels", url.Values{"kind": {"email"}, "address": {"new@example.com"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a restricted session added a channel: %d", resp.StatusCode)
	}
	_, body = user.post("/account/totp", url.Values{"name": {"New phone"}})
	secret := strings.ReplaceAll(regexp.MustCompile(`id="totp-secret">([A-Z2-7 ]+)<`).FindStringSubmatch(body)[1], " ", "")
	code, _ := credential.TOTPCode(secret, w.clock.Now())
	resp, _ = user.post("/account/totp/confirm", url.Values{"authenticator_id": {formValue(t, body, "authenticator_id")}, "code": {code}})
	if resp.Header.Get("Location") != "/account?notice=totp-added" {
		t.Fatalf("enrol -> %q", resp.Header.Get("Location"))
	}
	_, body = user.get("/account")
	if strings.Contains(body, "Finish your recovery") || !strings.Contains(body, `action="/account/password"`) {
		t.Error("enrolling a new authenticator did not lift the restriction")
	}
}

// TestLostDeviceAccessPassFlow finishes a lost-device recovery on the pages
// with a temporary access pass instead of a session: the form offers the
// choice, the answer shows the pass once and signs nobody in, and the pass
// signs in once at /signin/pass into a restricted session.
func TestLostDeviceAccessPassFlow(t *testing.T) {
	w := newWorld(t, false)
	user := w.client()
	old := w.client()
	w.signIn(old, "d.chen")
	// Daniel lost his security key but holds his authenticator app: his
	// email code and the app make the request ready at once.
	id := w.startRecovery(user, "d.chen", "device")
	user.post("/recover/"+id+"/code", url.Values{"code": {w.code("d.chen@example.com")}})
	user.post("/recover/"+id+"/totp", url.Values{"code": {w.totp("d.chen")}})
	resp, body := user.post("/recover/"+id+"/continue", nil)
	checkNoInlineCode(t, "completion form with the pass choice", body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("continue = %d", resp.StatusCode)
	}
	for _, re := range []string{
		`<legend>How do you want to continue\?</legend>`,
		`<label><input type="radio" name="finish" value="here" id="finish-here" [^>]*checked> Sign in here and add a new authenticator now</label>`,
		`<label><input type="radio" name="finish" value="access_pass" id="finish-access-pass" aria-describedby="hint-finish-access-pass" *> Give me a temporary access pass for my new device</label>`,
	} {
		if !regexp.MustCompile(re).MatchString(body) {
			t.Errorf("the completion form lacks %s", re)
		}
	}
	token := formValue(t, body, "token")
	resp, body = user.post("/recover/"+id+"/complete", url.Values{"token": {token}, "finish": {"access_pass"}})
	checkNoInlineCode(t, "access pass page", body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("complete with a pass = %d, Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	m := regexp.MustCompile(`id="access-pass">(tap_[a-z2-7]+)<`).FindStringSubmatch(body)
	if m == nil || !strings.Contains(body, `href="/signin/pass"`) || !strings.Contains(body, w.base+"/signin/pass") ||
		!regexp.MustCompile(`<time datetime="[0-9TZ:-]+">`).MatchString(body) {
		t.Fatal("the page does not show the pass, its expiry and where to use it")
	}
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie && c.Value != "" {
			t.Error("completing with a pass set a session cookie")
		}
	}
	if _, ok := user.cookies[recoveryCookie]; ok {
		t.Error("the recovery cookie outlived the completed request")
	}
	if resp, _ := user.get("/account"); resp.Header.Get("Location") != "/signin" {
		t.Errorf("the completing browser is signed in: /account -> %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := old.get("/account"); resp.StatusCode == http.StatusOK {
		t.Error("an old session survived the recovery")
	}
	if r := w.recovery(id); r.State != recourse.RecoveryCompleted {
		t.Fatalf("state = %s", r.State)
	}

	// On the new device.
	device := w.client()
	_, body = device.get("/signin/pass")
	checkNoInlineCode(t, "/signin/pass", body)
	resp, _ = device.post("/signin/pass", url.Values{"identifier": {"d.chen"}, "pass": {m[1]}})
	if resp.Header.Get("Location") != "/account" || device.cookies[sessionCookie] == "" {
		t.Fatalf("pass sign-in -> %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body = device.get("/account")
	if !strings.Contains(body, "Finish your recovery: add a new authenticator") || strings.Contains(body, `action="/account/password"`) {
		t.Error("the pass's session is not restricted to enrolment")
	}
	if resp, _ := w.client().post("/signin/pass", url.Values{"identifier": {"d.chen"}, "pass": {m[1]}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the pass worked twice: %d", resp.StatusCode)
	}
}

// TestPasswordResetCompletion checks the completion form of a password reset:
// the two passwords must match and follow the rules, and the token survives
// a refused attempt.
func TestPasswordResetCompletion(t *testing.T) {
	w := newWorld(t, false)
	user := w.client()
	id := w.startRecovery(user, "d.chen", "password")
	user.post("/recover/"+id+"/code", url.Values{"code": {w.code("d.chen@example.com")}})
	_, body := user.get("/recover/" + id)
	if !strings.Contains(body, `action="/recover/`+id+`/totp"`) {
		t.Fatal("the page does not offer the authenticator app")
	}
	if resp, body := user.post("/recover/"+id+"/totp", url.Values{"code": {"000000"}}); resp.StatusCode != http.StatusBadRequest ||
		!regexp.MustCompile(`id="totp"[^>]*aria-invalid="true"`).MatchString(body) {
		t.Fatalf("wrong app code = %d", resp.StatusCode)
	}
	user.post("/recover/"+id+"/totp", url.Values{"code": {w.totp("d.chen")}})
	_, body = user.post("/recover/"+id+"/continue", nil)
	if !strings.Contains(body, `name="new_password"`) || !strings.Contains(body, "At least 12 characters") {
		t.Fatal("the completion form does not ask for the password with its rules")
	}
	token := formValue(t, body, "token")
	tests := []struct {
		name, pw, confirm, field string
	}{
		{"mismatch", "saffron-kettle-meadow-9", "saffron-kettle-meadow-8", "confirm_password"},
		{"too short", "short", "short", "new_password"},
		{"common", "password1234", "password1234", "new_password"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := user.post("/recover/"+id+"/complete", url.Values{"token": {token}, "new_password": {tc.pw}, "confirm_password": {tc.confirm}})
			if resp.StatusCode != http.StatusBadRequest || !regexp.MustCompile(`id="`+tc.field+`"[^>]*aria-invalid="true"`).MatchString(body) ||
				formValue(t, body, "token") != token {
				t.Errorf("status %d; want 400 with %s marked and the token kept", resp.StatusCode, tc.field)
			}
		})
	}
	if strings.Contains(body, `name="finish"`) {
		t.Error("a password reset offers a temporary access pass")
	}
	// Asked for anyway (a crafted form), a pass is refused and the token kept.
	resp, body := user.post("/recover/"+id+"/complete", url.Values{"token": {token}, "finish": {"access_pass"},
		"new_password": {"saffron-kettle-meadow-9"}, "confirm_password": {"saffron-kettle-meadow-9"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "only finish the recovery of a lost device") || formValue(t, body, "token") != token {
		t.Fatalf("a pass for a password reset = %d; want 400 with the token kept", resp.StatusCode)
	}
	resp, _ = user.post("/recover/"+id+"/complete", url.Values{"token": {token}, "new_password": {"saffron-kettle-meadow-9"}, "confirm_password": {"saffron-kettle-meadow-9"}})
	if resp.Header.Get("Location") != "/account?done=recovered" {
		t.Fatalf("complete -> %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body = user.get("/account?done=recovered")
	if strings.Contains(body, "Finish your recovery") || !strings.Contains(body, "Your account was recovered") {
		t.Error("a password reset left a restricted session or no notice")
	}
	if resp, _ := user.post("/recover/"+id+"/complete", url.Values{"token": {token}, "new_password": {"x"}, "confirm_password": {"x"}}); resp.StatusCode == http.StatusSeeOther {
		t.Error("a completion token worked twice")
	}
}

// TestThisWasntMe checks that the cancel link's page changes nothing on GET
// (mail scanners open links) and that the POST cancels and freezes.
func TestThisWasntMe(t *testing.T) {
	w := newWorld(t, false)
	c := w.client()
	id := w.startRecovery(c, "d.chen", "password")
	link := w.cancelLink("d.chen@example.com")
	token := strings.TrimPrefix(link, "/recover/cancel?t=")
	stranger := w.client()
	for range 2 { // a scanner, then the person
		resp, body := stranger.get(link)
		checkNoInlineCode(t, "/recover/cancel", body)
		if resp.StatusCode != http.StatusOK || !regexp.MustCompile(`<input type="checkbox" name="freeze"[^>]* checked>`).MatchString(body) {
			t.Fatalf("confirmation page = %d", resp.StatusCode)
		}
	}
	if r := w.recovery(id); r.State != recourse.RecoveryCollecting {
		t.Fatalf("GET changed the request: %s", r.State)
	}
	if a, _ := w.store.Account(t.Context(), "d.chen"); a.FrozenAt != nil {
		t.Fatal("GET froze the account")
	}
	if resp, _ := stranger.get("/recover/cancel"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("GET without a token = %d", resp.StatusCode)
	}
	resp, body := stranger.post("/recover/cancel", url.Values{"t": {token}, "freeze": {"1"}})
	checkNoInlineCode(t, "recovery stopped", body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Recovery stopped") || !strings.Contains(body, "Your account is frozen") {
		t.Fatalf("POST = %d", resp.StatusCode)
	}
	if r := w.recovery(id); r.State != recourse.RecoveryCancelled {
		t.Fatalf("state = %s", r.State)
	}
	if a, _ := w.store.Account(t.Context(), "d.chen"); a.FrozenAt == nil {
		t.Fatal("the account was not frozen")
	}
	if resp, body := stranger.post("/recover/cancel", url.Values{"t": {token}, "freeze": {"1"}}); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "not valid any more") {
		t.Errorf("a used link = %d", resp.StatusCode)
	}
}

// TestHelpdeskConsole checks who may use the console, what an agent sees
// (masked channels, risk flags, never a code) and opening a request that the
// caller then claims in their own browser.
func TestHelpdeskConsole(t *testing.T) {
	w := newWorld(t, false)
	anon, other, agent := w.client(), w.client(), w.client()
	w.signIn(other, "a.silva")
	w.signIn(agent, "h.berg")
	open := url.Values{"action": {"password.reset"}, "reason": {"forgot_password"}, "checks": {"caller_verified_totp"}, "note": {"on the phone"}}
	access := []struct {
		name     string
		c        *client
		method   string
		path     string
		status   int
		location string
	}{
		{"anonymous search", anon, "GET", "/helpdesk", http.StatusSeeOther, "/signin"},
		{"anonymous card", anon, "GET", "/helpdesk/accounts/d.chen", http.StatusSeeOther, "/signin"},
		{"anonymous open", anon, "POST", "/helpdesk/accounts/d.chen/recoveries", http.StatusSeeOther, "/signin"},
		{"employee search", other, "GET", "/helpdesk", http.StatusForbidden, ""},
		{"employee card", other, "GET", "/helpdesk/accounts/d.chen", http.StatusForbidden, ""},
		{"employee verify", other, "POST", "/helpdesk/accounts/d.chen/verify", http.StatusForbidden, ""},
		{"employee open", other, "POST", "/helpdesk/accounts/d.chen/recoveries", http.StatusForbidden, ""},
		{"agent search", agent, "GET", "/helpdesk?q=d.", http.StatusOK, ""},
		{"agent card", agent, "GET", "/helpdesk/accounts/d.chen", http.StatusOK, ""},
	}
	for _, tc := range access {
		t.Run(tc.name, func(t *testing.T) {
			var form url.Values
			if tc.method == "POST" {
				form = open
			}
			resp, body := tc.c.do(tc.method, tc.path, form)
			if resp.StatusCode != tc.status || resp.Header.Get("Location") != tc.location {
				t.Fatalf("%s %s = %d %q, want %d %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Location"), tc.status, tc.location)
			}
			checkNoInlineCode(t, tc.path, body)
			if tc.status == http.StatusForbidden && !strings.Contains(body, "This page is for help-desk agents.") {
				t.Error("the 403 page does not say why")
			}
		})
	}
	if list, _ := w.store.Recoveries(t.Context(), "d.chen", false); len(list) != 0 {
		t.Fatalf("refused callers opened %d requests", len(list))
	}
	_, body := agent.get("/account")
	if !strings.Contains(body, `href="/helpdesk"`) || !strings.Contains(body, `href="/approvals"`) {
		t.Error("the agent's nav lacks Help desk or Approvals")
	}
	_, body = other.get("/account")
	if strings.Contains(body, `href="/helpdesk"`) || !strings.Contains(body, `href="/approvals"`) {
		t.Error("an employee's nav")
	}

	_, body = agent.get("/helpdesk?q=d.")
	if !strings.Contains(body, `href="/helpdesk/accounts/d.chen"`) {
		t.Fatal("search does not find d.chen")
	}
	_, body = agent.get("/helpdesk/accounts/d.chen")
	if strings.Contains(body, "d.chen@example.com") || strings.Contains(body, "+15550100001") || !strings.Contains(body, "d•••@example.com") {
		t.Error("the card shows unmasked channels")
	}
	flags := []struct{ account, want string }{
		{"r.patel", "Privileged account"},
		{"c.novak", "Contract ends in"},
	}
	for _, f := range flags {
		if _, body := agent.get("/helpdesk/accounts/" + f.account); !strings.Contains(body, f.want) {
			t.Errorf("card of %s lacks %q", f.account, f.want)
		}
	}

	// Verify caller: the agent learns yes or no.
	_, body = agent.post("/helpdesk/accounts/d.chen/verify", url.Values{"code": {w.totp("d.chen")}})
	if !strings.Contains(body, "<strong>Verified.</strong>") {
		t.Error("a right code did not verify")
	}
	_, body = agent.post("/helpdesk/accounts/d.chen/verify", url.Values{"code": {"000000"}})
	if !strings.Contains(body, "<strong>Not verified.</strong>") {
		t.Error("a wrong code verified")
	}
	if _, body := agent.get("/helpdesk/accounts/d.chen?verified=1"); strings.Contains(body, "Verified.") {
		t.Error("a link can show \"verified\"")
	}

	// Open a request; a form error keeps the agent's input.
	resp, body := agent.post("/helpdesk/accounts/d.chen/recoveries", url.Values{"action": {"password.reset"}, "reason": {"bogus"}, "note": {"kept"}})
	if resp.StatusCode != http.StatusBadRequest || !regexp.MustCompile(`id="reason"[^>]*aria-invalid="true"`).MatchString(body) || !strings.Contains(body, ">kept</textarea>") {
		t.Errorf("bad reason = %d", resp.StatusCode)
	}
	resp, _ = agent.post("/helpdesk/accounts/d.chen/recoveries", open)
	rid, ok := strings.CutPrefix(resp.Header.Get("Location"), "/helpdesk/requests/")
	if !ok {
		t.Fatalf("open -> %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body = agent.get("/helpdesk/requests/" + rid)
	checkNoInlineCode(t, "/helpdesk/requests/{id}", body)
	code := w.code("d.chen@example.com")
	for _, want := range []string{rid, "Collecting evidence", "help-desk attestation", "Tell the caller", "/recover/claim"} {
		if !strings.Contains(body, want) {
			t.Errorf("request status lacks %q", want)
		}
	}
	if strings.Contains(body, code) {
		t.Error("the agent's page shows the caller's code")
	}
	if r := w.recovery(rid); r.Initiator != "help_desk" || r.InitiatorID != "h.berg" || !strings.Contains(r.Reason, "caller_verified_totp") {
		t.Fatalf("request = %+v", r)
	}

	// The caller claims it in their own browser.
	caller := w.client()
	_, body = caller.get("/recover/claim")
	checkNoInlineCode(t, "/recover/claim", body)
	if resp, _ := caller.post("/recover/claim", url.Values{"reference": {rid}, "code": {"000000"}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("claim with a wrong code = %d", resp.StatusCode)
	}
	resp, _ = caller.post("/recover/claim", url.Values{"reference": {rid}, "code": {code}})
	if resp.Header.Get("Location") != "/recover/"+rid || !strings.HasPrefix(caller.cookies[recoveryCookie], rid+".") {
		t.Fatalf("claim -> %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body = caller.get("/recover/" + rid)
	if !strings.Contains(body, "code sent by email") || !strings.Contains(body, `action="/recover/`+rid+`/totp"`) {
		t.Error("the claimed request page")
	}
}

// TestPortalRecoveries checks the security page's part of the workflow: the
// banner of open requests with "this wasn't me", and the password change.
func TestPortalRecoveries(t *testing.T) {
	w := newWorld(t, false)
	stranger, holder := w.client(), w.client()
	id := w.startRecovery(stranger, "a.silva", "password")
	w.signIn(holder, "a.silva")
	_, body := holder.get("/account")
	checkNoInlineCode(t, "/account", body)
	if !strings.Contains(body, "Recovery of your account in progress") || !strings.Contains(body, `action="/account/recoveries/`+id+`/cancel"`) {
		t.Fatal("the security page does not show the open request")
	}
	resp, _ := holder.post("/account/recoveries/"+id+"/cancel", nil)
	if resp.Header.Get("Location") != "/account?done=recovery-cancelled" {
		t.Fatalf("cancel -> %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if r := w.recovery(id); r.State != recourse.RecoveryCancelled {
		t.Fatalf("state = %s", r.State)
	}
	if _, body := holder.get("/account?done=recovery-cancelled"); strings.Contains(body, "in progress") || !strings.Contains(body, "The request was cancelled.") {
		t.Error("the page after cancelling")
	}
	if resp, _ := holder.post("/account/recoveries/"+id+"/cancel", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("cancelling a closed request = %d", resp.StatusCode)
	}

	tests := []struct {
		name, current, next, confirm, field string
		status                              int
	}{
		{"mismatch", service.DemoPassword, "saffron-kettle-meadow-9", "other-kettle-meadow-9", "confirm_password", http.StatusBadRequest},
		{"wrong current", "not-my-password", "saffron-kettle-meadow-9", "saffron-kettle-meadow-9", "current_password", http.StatusBadRequest},
		{"too short", service.DemoPassword, "short", "short", "new_password", http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := holder.post("/account/password", url.Values{"current_password": {tc.current}, "new_password": {tc.next}, "confirm_password": {tc.confirm}})
			if resp.StatusCode != tc.status || !regexp.MustCompile(`id="`+tc.field+`"[^>]*aria-invalid="true"`).MatchString(body) {
				t.Errorf("= %d; want %d with %s marked", resp.StatusCode, tc.status, tc.field)
			}
		})
	}
	resp, _ = holder.post("/account/password", url.Values{"current_password": {service.DemoPassword}, "new_password": {"saffron-kettle-meadow-9"}, "confirm_password": {"saffron-kettle-meadow-9"}})
	if resp.Header.Get("Location") != "/account?done=password-changed#password" {
		t.Fatalf("change -> %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// A stale session is asked to confirm it's them first.
	w.clock.Add(20 * time.Minute)
	resp, _ = holder.post("/account/password", url.Values{"current_password": {"saffron-kettle-meadow-9"}, "new_password": {"orchid-lantern-basin-4"}, "confirm_password": {"orchid-lantern-basin-4"}})
	if resp.Header.Get("Location") != "/account/confirm" {
		t.Errorf("stale session -> %q", resp.Header.Get("Location"))
	}
}

// TestVoteNeedsRecentSignIn sends a stale approver to confirm it's them.
func TestVoteNeedsRecentSignIn(t *testing.T) {
	w := newWorld(t, false)
	user, mgr := w.client(), w.client()
	id := w.startRecovery(user, "d.chen", "device")
	user.post("/recover/"+id+"/code", url.Values{"code": {w.code("d.chen@example.com")}})
	w.signIn(mgr, "m.okafor")
	w.clock.Add(20 * time.Minute)
	resp, _ := mgr.post("/approvals/"+id, url.Values{"vote": {"approve"}})
	if resp.Header.Get("Location") != "/account/confirm?next="+url.QueryEscape("/approvals/"+id) {
		t.Fatalf("stale vote -> %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Confirming sends the approver back to the request, not to /account.
	resp, _ = mgr.post("/account/confirm", url.Values{"password": {service.DemoPassword}, "next": {"/approvals/" + id}})
	if resp.Header.Get("Location") != "/approvals/"+id {
		t.Fatalf("after confirming -> %q", resp.Header.Get("Location"))
	}
	for _, evil := range []string{"https://evil.example/", "//evil.example", "/approvals/../../x", "/\\evil"} {
		resp, _ = mgr.post("/account/confirm", url.Values{"password": {service.DemoPassword}, "next": {evil}})
		if loc := resp.Header.Get("Location"); loc != "/account?notice=confirmed" && resp.StatusCode == http.StatusSeeOther {
			t.Errorf("next=%q redirected to %q", evil, loc)
		}
	}
	resp, body := mgr.post("/approvals/"+id, url.Values{"vote": {"maybe"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `role="alert"`) {
		t.Errorf("a bad vote = %d", resp.StatusCode)
	}
	if r := w.recovery(id); r.State != recourse.RecoveryAwaitingApproval {
		t.Errorf("state = %s", r.State)
	}
}

// TestWorkflowCSRF checks that every new form refuses a cross-origin POST
// before anything happens.
func TestWorkflowCSRF(t *testing.T) {
	w := newWorld(t, false)
	c := w.client()
	w.signIn(c, "h.berg")
	paths := []string{
		"/recover", "/recover/claim", "/recover/cancel",
		"/recover/rr_x/code", "/recover/rr_x/totp", "/recover/rr_x/recovery-code", "/recover/rr_x/continue", "/recover/rr_x/complete",
		"/approvals/rr_x", "/helpdesk/accounts/d.chen/verify", "/helpdesk/accounts/d.chen/recoveries",
		"/account/password", "/account/recoveries/rr_x/cancel",
	}
	form := url.Values{"identifier": {"d.chen"}, "lost": {"password"}, "action": {"password.reset"}, "reason": {"forgot_password"}}
	for _, p := range paths {
		for _, h := range [][]string{{"Sec-Fetch-Site", "cross-site"}, {"Origin", "https://evil.example"}} {
			resp, _ := c.do("POST", p, form, h...)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST %s with %s: %s = %d, want 403", p, h[0], h[1], resp.StatusCode)
			}
		}
	}
	if list, _ := w.store.Recoveries(t.Context(), "d.chen", false); len(list) != 0 {
		t.Errorf("a cross-origin POST opened a request")
	}
}
