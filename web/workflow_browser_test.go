package web

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/service"
)

// artifactDir is where the browser tests keep their screenshots:
// RECOURSE_TEST_ARTIFACTS when set (CI uploads it), else a temporary
// directory.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("RECOURSE_TEST_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// shot saves a full-page PNG of what ctx shows, named after the test and
// the step.
func shot(t *testing.T, ctx context.Context, dir, step string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", step, err)
	}
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name()) + "-" + step + ".png"
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// browserSignIn signs a demo person in through the pages, password then
// authenticator app.
func browserSignIn(t *testing.T, ctx context.Context, w *world, username string) {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.Navigate(w.base+"/signin"),
		signInSteps(username),
		chromedp.WaitVisible(chromedp.ID("code")),
		chromedp.SendKeys(chromedp.ID("code"), w.totp(username)),
		chromedp.Submit(chromedp.ID("code")),
		chromedp.WaitVisible(chromedp.ID("h-auth")),
	)
	if err != nil {
		t.Fatalf("sign in %s: %v", username, err)
	}
}

// secondBrowser opens a separate browser context (its own cookies) in the
// same Chromium, for a second person.
func secondBrowser(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	c, cancel := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(c, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("second browser context: %v", err)
	}
	return c
}

func location(t *testing.T, ctx context.Context) string {
	t.Helper()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func present(t *testing.T, ctx context.Context, id string) bool {
	t.Helper()
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById(`+"`"+id+"`"+`) !== null`))
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestBrowserLostDeviceRecovery walks a lost-device recovery in Chromium:
// "Can't sign in?", the email code, the manager's approval in a second
// browser context, the cooling-off (the clock is moved, not waited for),
// completion, and enrolling a new authenticator app in the restricted
// session.
func TestBrowserLostDeviceRecovery(t *testing.T) {
	ctx := newBrowser(t)
	w := newWorld(t, true)
	dir := artifactDir(t)

	err := chromedp.Do(ctx,
		chromedp.Navigate(w.base+"/signin"),
		chromedp.WaitVisible(chromedp.ID("cant-sign-in")),
		chromedp.Click(chromedp.ID("cant-sign-in")),
		chromedp.WaitVisible(chromedp.ID("lost-device")),
		chromedp.SendKeys(chromedp.ID("identifier"), "d.chen"),
		chromedp.Click(chromedp.ID("lost-device")),
	)
	if err != nil {
		t.Fatalf("\"Can't sign in?\": %v", err)
	}
	shot(t, ctx, dir, "1-cant-sign-in")
	if err := chromedp.Do(ctx, chromedp.Submit(chromedp.ID("identifier")), chromedp.WaitVisible(chromedp.ID("code"))); err != nil {
		t.Fatalf("start: %v", err)
	}
	w.waitJob("recovery_start")
	id := strings.TrimPrefix(location(t, ctx), w.base+"/recover/")
	if !strings.HasPrefix(id, "rr_") {
		t.Fatalf("request page at %q", location(t, ctx))
	}
	shot(t, ctx, dir, "2-enter-code")
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("code"), w.code("d.chen@example.com")),
		chromedp.Submit(chromedp.ID("code")),
		chromedp.WaitVisible(chromedp.ID("h-next")),
	)
	if err != nil {
		t.Fatalf("email code: %v", err)
	}
	if body := text(t, ctx, "main"); !strings.Contains(body, "Waiting for approval") || !strings.Contains(body, "code sent by email") {
		t.Fatalf("after the code:\n%s", body)
	}
	shot(t, ctx, dir, "3-waiting-for-approval")

	// The manager approves in a browser context of their own.
	mgr := secondBrowser(t, ctx)
	browserSignIn(t, mgr, w, "m.okafor")
	err = chromedp.Do(mgr,
		chromedp.Click(chromedp.CSS(`nav a[href="/approvals"]`)),
		chromedp.WaitVisible(chromedp.CSS(`a.btn[href="/approvals/`+id+`"]`)),
		chromedp.Click(chromedp.CSS(`a.btn[href="/approvals/`+id+`"]`)),
		chromedp.WaitVisible(chromedp.ID("approve")),
	)
	if err != nil {
		t.Fatalf("open the approval: %v", err)
	}
	if body := text(t, mgr, "main"); !strings.Contains(body, "Daniel Chen asks to") || !strings.Contains(body, "Exactly what would change") {
		t.Fatalf("decision page:\n%s", body)
	}
	shot(t, mgr, dir, "4-approval-decision")
	err = chromedp.Do(mgr,
		chromedp.SendKeys(chromedp.ID("comment"), "Called Daniel on his desk phone"),
		chromedp.Click(chromedp.ID("approve")),
		chromedp.WaitVisible(chromedp.CSS(".notice-success")),
	)
	if err != nil {
		t.Fatalf("approve: %v", err)
	}
	if notice := text(t, mgr, ".notice-success"); !strings.Contains(notice, "Your approval was recorded") {
		t.Fatalf("after approving: %q", notice)
	}

	// Cooling-off: shown, then run out by moving the clock.
	err = chromedp.Do(ctx, chromedp.Navigate(w.base+"/recover/"+id), chromedp.WaitVisible(chromedp.CSS("time")))
	if err != nil {
		t.Fatal(err)
	}
	if body := text(t, ctx, "main"); !strings.Contains(body, "Cooling off") || !strings.Contains(body, "in about 24 hours") {
		t.Fatalf("cooling-off page:\n%s", body)
	}
	shot(t, ctx, dir, "5-cooling-off")
	w.clock.Add(24*time.Hour + time.Second)
	if err := w.svc.AdvanceRecovery(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx,
		chromedp.Navigate(w.base+"/recover/"+id),
		chromedp.WaitVisible(chromedp.ID("continue")),
		chromedp.Click(chromedp.ID("continue")),
		chromedp.WaitVisible(chromedp.ID("complete")),
	)
	if err != nil {
		t.Fatalf("continue: %v", err)
	}
	shot(t, ctx, dir, "6-finish")
	// The form offers a temporary access pass for a new device; signing in
	// here is the default, and each choice has its label.
	choice, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
		const here = document.getElementById("finish-here"), pass = document.getElementById("finish-access-pass");
		return here !== null && pass !== null && here.checked && !pass.checked && here.labels.length === 1 && pass.labels.length === 1 &&
			pass.labels[0].textContent.includes("temporary access pass");
	})()`))
	if err != nil || !choice {
		t.Fatalf("the completion form's choice (sign in here by default, or a pass): %v %v", choice, err)
	}
	err = chromedp.Do(ctx, chromedp.Click(chromedp.ID("complete")), chromedp.WaitVisible(chromedp.ID("finish-recovery")))
	if err != nil {
		t.Fatalf("complete: %v", err)
	}
	if present(t, ctx, "channels") {
		t.Error("the restricted session is offered more than enrolment")
	}
	shot(t, ctx, dir, "7-restricted-session")

	// Enrol a new authenticator app; the restriction ends.
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("totp-name"), "New phone"),
		chromedp.Submit(chromedp.ID("totp-name")),
		chromedp.WaitVisible(chromedp.ID("totp-secret")),
	)
	if err != nil {
		t.Fatalf("begin TOTP: %v", err)
	}
	code := totpFor(t, strings.ReplaceAll(text(t, ctx, "#totp-secret"), " ", ""), w.clock.Now())
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("code"), code),
		chromedp.Submit(chromedp.ID("code")),
		chromedp.WaitVisible(chromedp.CSS(".notice-success")),
	)
	if err != nil {
		t.Fatalf("confirm TOTP: %v", err)
	}
	if notice := text(t, ctx, ".notice-success"); notice != "Your authenticator app was added." || present(t, ctx, "finish-recovery") || !present(t, ctx, "channels") {
		t.Fatalf("after enrolling: notice %q, still restricted %v", notice, present(t, ctx, "finish-recovery"))
	}
	shot(t, ctx, dir, "8-new-authenticator")

	// And a new passkey, on Chromium's virtual authenticator.
	if _, err := chromedp.Call(ctx, cdpwebauthn.Enable, cdpwebauthn.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	_, err = chromedp.Call(ctx, cdpwebauthn.AddVirtualAuthenticator, cdpwebauthn.AddVirtualAuthenticatorParams{
		Options: &cdpwebauthn.VirtualAuthenticatorOptions{
			Protocol: cdpwebauthn.AuthenticatorProtocolCtap2, Transport: cdpwebauthn.AuthenticatorTransportUsb,
			HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("passkey-name"), "New key"),
		chromedp.WaitVisible(chromedp.CSS("[data-webauthn-register]")),
		chromedp.Click(chromedp.CSS("[data-webauthn-register]")),
	)
	if err != nil {
		t.Fatalf("add a passkey after the recovery: %v", err)
	}
	// The page reloads when the key is registered; wait for its notice.
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(location(t, ctx), "notice=passkey-added") {
		if time.Now().After(deadline) {
			t.Fatalf("the passkey was not added; page says %q", text(t, ctx, "main"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if list := text(t, ctx, "#authenticators"); !strings.Contains(list, "New key") {
		t.Fatalf("the new passkey is not listed:\n%s", list)
	}
	shot(t, ctx, dir, "9-new-passkey")
}

// TestBrowserHelpdeskOpensRequest has an agent find the caller, verify them
// with their own app, and open a password reset, which the caller then
// continues in their own browser.
func TestBrowserHelpdeskOpensRequest(t *testing.T) {
	ctx := newBrowser(t)
	w := newWorld(t, true)
	dir := artifactDir(t)
	browserSignIn(t, ctx, w, "h.berg")
	err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`nav a[href="/helpdesk"]`)),
		chromedp.WaitVisible(chromedp.ID("q")),
		chromedp.SendKeys(chromedp.ID("q"), "d.chen"),
		chromedp.Submit(chromedp.ID("q")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/helpdesk/accounts/d.chen"]`)),
		chromedp.Click(chromedp.CSS(`a[href="/helpdesk/accounts/d.chen"]`)),
		chromedp.WaitVisible(chromedp.ID("h-card")),
	)
	if err != nil {
		t.Fatalf("find the caller: %v", err)
	}
	if card := text(t, ctx, "main"); strings.Contains(card, "d.chen@example.com") || !strings.Contains(card, "d•••@example.com") {
		t.Fatalf("card:\n%s", card)
	}
	shot(t, ctx, dir, "1-account-card")
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("verify-code"), w.totp("d.chen")),
		chromedp.Submit(chromedp.ID("verify-code")),
		chromedp.WaitVisible(chromedp.ID("verify-result")),
	)
	if err != nil {
		t.Fatalf("verify caller: %v", err)
	}
	if res := text(t, ctx, "#verify-result"); !strings.HasPrefix(res, "Verified.") {
		t.Fatalf("verify result %q", res)
	}
	shot(t, ctx, dir, "2-caller-verified")
	err = chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("action"), "password.reset"),
		chromedp.SetValue(chromedp.ID("reason"), "forgot_password"),
		chromedp.Click(chromedp.ID("check-caller_verified_totp")),
		chromedp.SendKeys(chromedp.ID("note"), "Caller on the phone, verified with their app"),
		chromedp.Click(chromedp.ID("open-request")),
		chromedp.WaitVisible(chromedp.ID("reference")),
	)
	if err != nil {
		t.Fatalf("open a recovery: %v", err)
	}
	ref := text(t, ctx, "#reference")
	r := w.recovery(ref)
	if r.Action != "password.reset" || r.Initiator != "help_desk" || text(t, ctx, "#request-state") != "Collecting evidence" {
		t.Fatalf("request %+v, page state %q", r, text(t, ctx, "#request-state"))
	}
	shot(t, ctx, dir, "3-request-opened")

	caller := secondBrowser(t, ctx)
	err = chromedp.Do(caller,
		chromedp.Navigate(w.base+"/recover/claim"),
		chromedp.WaitVisible(chromedp.ID("reference")),
		chromedp.SendKeys(chromedp.ID("reference"), ref),
		chromedp.SendKeys(chromedp.ID("code"), w.code("d.chen@example.com")),
		chromedp.Submit(chromedp.ID("code")),
		chromedp.WaitVisible(chromedp.ID("h-next")),
	)
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	if body := text(t, caller, "main"); !strings.Contains(body, "Reset the password") || !strings.Contains(body, "code sent by email") {
		t.Fatalf("claimed request:\n%s", body)
	}
	shot(t, caller, dir, "4-caller-continues")
}

// TestBrowserThisWasntMe follows the link of a notice: the page changes
// nothing until the button is pressed; then the request stops and the
// account is frozen.
func TestBrowserThisWasntMe(t *testing.T) {
	ctx := newBrowser(t)
	w := newWorld(t, true)
	dir := artifactDir(t)
	id := w.startRecovery(w.client(), "d.chen", "device")
	link := w.cancelLink("d.chen@example.com")
	if err := chromedp.Do(ctx, chromedp.Navigate(w.base+link), chromedp.WaitVisible(chromedp.ID("stop"))); err != nil {
		t.Fatal(err)
	}
	checked, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("freeze").checked`))
	if err != nil || !checked {
		t.Fatalf("freeze checkbox checked = %v, %v", checked, err)
	}
	if r := w.recovery(id); r.State != recourse.RecoveryCollecting {
		t.Fatalf("opening the link changed the request: %s", r.State)
	}
	shot(t, ctx, dir, "1-confirm")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("stop")), chromedp.WaitVisible(chromedp.CSS(".notice-success"))); err != nil {
		t.Fatal(err)
	}
	if body := text(t, ctx, "main"); !strings.Contains(body, "Recovery stopped") || !strings.Contains(body, "Your account is frozen") {
		t.Fatalf("after stopping:\n%s", body)
	}
	shot(t, ctx, dir, "2-stopped")
	if r := w.recovery(id); r.State != recourse.RecoveryCancelled {
		t.Fatalf("state = %s", r.State)
	}
	if a, _ := w.store.Account(t.Context(), "d.chen"); a.FrozenAt == nil {
		t.Fatal("the account is not frozen")
	}
}

// TestBrowserPasswordChangeAndDenial changes a password from the portal,
// then has a manager deny a device recovery in a second browser context;
// the requester's page shows the denial.
func TestBrowserPasswordChangeAndDenial(t *testing.T) {
	ctx := newBrowser(t)
	w := newWorld(t, true)
	dir := artifactDir(t)

	// Routine: change the password from the security page.
	browserSignIn(t, ctx, w, "a.silva")
	err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("current_password"), service.DemoPassword),
		chromedp.SendKeys(chromedp.ID("new_password"), "saffron-kettle-meadow-9"),
		chromedp.SendKeys(chromedp.ID("confirm_password"), "saffron-kettle-meadow-9"),
		chromedp.Submit(chromedp.ID("confirm_password")),
		chromedp.WaitVisible(chromedp.CSS(".notice-success")),
	)
	if err != nil {
		t.Fatalf("change password: %v", err)
	}
	shot(t, ctx, dir, "1-password-changed")
	if _, err := w.svc.SignIn(t.Context(), "a.silva", "saffron-kettle-meadow-9", service.Meta{IP: "192.0.2.1"}); err != nil {
		t.Fatalf("the new password does not work: %v", err)
	}

	// Recovery denied by the manager.
	user := secondBrowser(t, ctx)
	err = chromedp.Do(user,
		chromedp.Navigate(w.base+"/recover"),
		chromedp.WaitVisible(chromedp.ID("lost-device")),
		chromedp.SendKeys(chromedp.ID("identifier"), "d.chen"),
		chromedp.Click(chromedp.ID("lost-device")),
		chromedp.Submit(chromedp.ID("identifier")),
		chromedp.WaitVisible(chromedp.ID("code")),
	)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	w.waitJob("recovery_start")
	id := strings.TrimPrefix(location(t, user), w.base+"/recover/")
	err = chromedp.Do(user,
		chromedp.SendKeys(chromedp.ID("code"), w.code("d.chen@example.com")),
		chromedp.Submit(chromedp.ID("code")),
		chromedp.WaitVisible(chromedp.ID("h-next")),
	)
	if err != nil {
		t.Fatalf("email code: %v", err)
	}
	mgr := secondBrowser(t, ctx)
	browserSignIn(t, mgr, w, "m.okafor")
	err = chromedp.Do(mgr,
		chromedp.Navigate(w.base+"/approvals/"+id),
		chromedp.WaitVisible(chromedp.ID("deny")),
		chromedp.SendKeys(chromedp.ID("comment"), "Daniel is on leave; this is not him"),
		chromedp.Click(chromedp.ID("deny")),
		chromedp.WaitVisible(chromedp.CSS(".notice-success")),
	)
	if err != nil {
		t.Fatalf("deny: %v", err)
	}
	shot(t, mgr, dir, "2-denied-by-manager")
	if err := chromedp.Do(user, chromedp.Navigate(w.base+"/recover/"+id), chromedp.WaitVisible(chromedp.CSS("main h1"))); err != nil {
		t.Fatal(err)
	}
	if body := text(t, user, "main"); !strings.Contains(strings.ToLower(body), "denied") {
		t.Fatalf("the requester's page does not show the denial:\n%s", body)
	}
	shot(t, user, dir, "3-requester-sees-denial")
}
