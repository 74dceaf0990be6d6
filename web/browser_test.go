package web

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/jobs"
	"github.com/recourse/recourse/service"
	"github.com/recourse/recourse/store/sqlite"
)

// chromiumPath finds Debian's chromium. Without it the browser tests skip,
// except under CI=true, where they must run.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("RECOURSE_TEST_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true but chromium is not installed: the browser tests must run in CI (apt-get install chromium)")
	}
	t.Skip("chromium not installed; set RECOURSE_TEST_CHROMIUM or install Debian's chromium to run the browser tests")
	return ""
}

// demoSite serves a seeded demo organisation at http://localhost:PORT, the
// origin passkeys need, and returns its base URL and service.
func demoSite(t *testing.T) (string, *service.Service) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://localhost:" + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "b.db"), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	wa, err := credential.NewWebAuthn("localhost", "Recourse", []string{base})
	if err != nil {
		t.Fatal(err)
	}
	sc := service.DefaultConfig()
	sc.PasswordParams = credential.PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32, SaltLen: 16}
	if err := jobs.Migrate(t.Context(), st.DB(), "sqlite", nil); err != nil {
		t.Fatal(err)
	}
	q, err := jobs.New(st.DB(), "sqlite", nil, jobs.Options{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(service.Options{Store: st, Config: sc, Keys: service.Keys{Master: []byte(strings.Repeat("b", 32))}, WebAuthn: wa, Scheduler: q})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SeedDemo(t.Context()); err != nil {
		t.Fatal(err)
	}
	qctx, stopQueue := context.WithCancel(context.Background())
	if err := q.Start(qctx, svc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = q.Stop(sctx)
		stopQueue()
	})
	srv, err := New(svc, Config{DevMode: true, Demo: true}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return base, svc
}

func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancel3)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// text reads the text of the first element matching a CSS selector.
func text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		t.Fatalf("read %s: %v", css, err)
	}
	return s
}

// signInSteps fills and submits the sign-in form.
func signInSteps(username string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.WaitVisible(chromedp.ID("identifier")),
		chromedp.SendKeys(chromedp.ID("identifier"), username),
		chromedp.SendKeys(chromedp.ID("password"), service.DemoPassword),
		chromedp.Submit(chromedp.ID("password")),
	)
}

func demoSecret(t *testing.T, svc *service.Service, username string) string {
	t.Helper()
	users, err := svc.DemoUsers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if u.Username == username {
			return u.TOTPSecret
		}
	}
	t.Fatalf("no demo user %s", username)
	return ""
}

// TestBrowserSignInAndPasskey walks a demo user through the real pages in
// Chromium: password and TOTP sign-in, the security page, registering a
// passkey on Chromium's virtual authenticator, and signing in with it.
func TestBrowserSignInAndPasskey(t *testing.T) {
	ctx := newBrowser(t)
	base, svc := demoSite(t)
	secret := demoSecret(t, svc, "d.chen")

	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		signInSteps("d.chen"),
		chromedp.WaitVisible(chromedp.ID("code")),
	)
	if err != nil {
		t.Fatalf("password step: %v", err)
	}
	code, err := credential.TOTPCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("code"), code),
		chromedp.Submit(chromedp.ID("code")),
		chromedp.WaitVisible(chromedp.ID("h-auth")),
	)
	if err != nil {
		t.Fatalf("TOTP step: %v", err)
	}
	body := text(t, ctx, "body")
	if h1 := text(t, ctx, "h1"); h1 != "Your account security" || !strings.Contains(body, "Daniel Chen") ||
		!strings.Contains(body, "Authenticator app") || !strings.Contains(body, "Ana Silva") || !strings.Contains(body, "AAL2") {
		t.Fatalf("security page (h1 %q):\n%s", h1, body)
	}

	// Register a passkey on a virtual authenticator that behaves like a
	// security key (not backup-eligible, so device-bound).
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
		t.Fatalf("add virtual authenticator: %v", err)
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("passkey-name"), "Test key"),
		chromedp.WaitVisible(chromedp.CSS("[data-webauthn-register]")),
		chromedp.Click(chromedp.CSS("[data-webauthn-register]")),
		chromedp.WaitVisible(chromedp.CSS(".notice-success")),
	)
	if err != nil {
		t.Fatalf("register a passkey: %v (status: %q)", err, text(t, ctx, "body"))
	}
	if notice, list := text(t, ctx, ".notice-success"), text(t, ctx, "#authenticators"); notice != "Your passkey was added." ||
		!strings.Contains(list, "Test key") || !strings.Contains(list, "security key") {
		t.Fatalf("after passkey registration: notice %q, list:\n%s", notice, list)
	}

	// Sign out, then sign in with the password and the key: AAL3.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("nav button")),
		signInSteps("d.chen"),
		chromedp.WaitVisible(chromedp.CSS("[data-webauthn-login]")),
		chromedp.Click(chromedp.CSS("[data-webauthn-login]")),
		chromedp.WaitVisible(chromedp.ID("h-sessions")),
	)
	if err != nil {
		t.Fatalf("sign in with a passkey: %v", err)
	}
	if sessions := text(t, ctx, "#sessions"); !strings.Contains(sessions, "AAL3") {
		t.Fatalf("a password plus a device-bound key should give AAL3; sessions:\n%s", sessions)
	}

	// Forgot the password but still hold the key: the key is the evidence.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("nav button")),
		chromedp.WaitVisible(chromedp.ID("cant-sign-in")),
		chromedp.Click(chromedp.ID("cant-sign-in")),
		chromedp.WaitVisible(chromedp.ID("identifier")),
		chromedp.SendKeys(chromedp.ID("identifier"), "d.chen"),
		chromedp.Click(chromedp.CSS(`input[value="password"]`)),
		chromedp.Submit(chromedp.ID("identifier")),
		chromedp.WaitVisible(chromedp.ID("code")),
	)
	if err != nil {
		t.Fatalf("start a recovery: %v", err)
	}
	code = waitForCode(t, svc, "d.chen@example.com")
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("code"), code),
		chromedp.Submit(chromedp.ID("code")),
		chromedp.WaitVisible(chromedp.CSS("[data-webauthn-login]")),
		chromedp.Click(chromedp.CSS("[data-webauthn-login]")),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/continue"] button`)),
	)
	if err != nil {
		t.Fatalf("recover with the security key: %v (page: %s)", err, text(t, ctx, "main"))
	}
}

// waitForCode polls the outbox for the newest recovery code sent to an
// address (the start runs on the job queue).
func waitForCode(t *testing.T, svc *service.Service, to string) string {
	t.Helper()
	re := regexp.MustCompile(`recovery code is (\d{6})\.`)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		msgs, _ := svc.Store().OutboxMessages(t.Context(), 50)
		for _, m := range msgs {
			if m.To == to {
				if c := re.FindStringSubmatch(m.Body); c != nil {
					return c[1]
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no recovery code for %s", to)
	return ""
}

// TestBrowserWrongCodeIsAccessible checks the error path in the browser: the
// message is announced, the field marked invalid and focused.
func TestBrowserWrongCodeIsAccessible(t *testing.T) {
	ctx := newBrowser(t)
	base, _ := demoSite(t)
	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/signin"),
		signInSteps("a.silva"),
		chromedp.WaitVisible(chromedp.ID("code")),
		chromedp.SendKeys(chromedp.ID("code"), "000000"),
		chromedp.Submit(chromedp.ID("code")),
		chromedp.WaitVisible(chromedp.ID("form-error")),
	)
	if err != nil {
		t.Fatal(err)
	}
	role, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("form-error"), "role"))
	if err != nil {
		t.Fatal(err)
	}
	invalid, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("code"), "aria-invalid"))
	if err != nil {
		t.Fatal(err)
	}
	focused, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement ? document.activeElement.id : ""`))
	if err != nil {
		t.Fatal(err)
	}
	if role.Value != "alert" || invalid.Value != "true" || focused != "code" {
		t.Errorf("error state: role=%q aria-invalid=%q focus=%q", role.Value, invalid.Value, focused)
	}
}
