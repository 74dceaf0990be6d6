package web

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/jobs"
	"github.com/recourse/recourse/service"
	"github.com/recourse/recourse/store/sqlite"
)

// world is a running Recourse for the workflow tests: a real SQLite store,
// the real River queue and its workers, the service with an injected clock,
// the demo organisation, and the web server in front of it (the pattern of
// jobs/workflow_test.go, plus HTTP).
type world struct {
	t       *testing.T
	store   recourse.Store
	svc     *service.Service
	clock   *clock
	base    string
	secrets map[string]string
	events  <-chan *river.Event
}

// newWorld starts a world. With localhost it listens on a real port at
// http://localhost:PORT (the origin browsers treat as secure, so __Host-
// cookies work); otherwise on an httptest server.
func newWorld(t *testing.T, localhost bool) *world {
	t.Helper()
	ctx := t.Context()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	if localhost {
		base = "http://localhost:" + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "w.db"), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := jobs.Migrate(ctx, st.DB(), "sqlite", nil); err != nil {
		t.Fatal(err)
	}
	q, err := jobs.New(st.DB(), "sqlite", nil, jobs.Options{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Now().UTC().Truncate(time.Second)}
	cfg := service.DefaultConfig()
	cfg.PasswordParams = credential.PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32, SaltLen: 16}
	cfg.PublicURL = base
	cfg.SignInRatePerMinute, cfg.SignInBurst = 6000, 1000
	opts := service.Options{Store: st, Clock: c, Config: cfg, Keys: service.Keys{Master: []byte(strings.Repeat("w", 32))}, Scheduler: q}
	if localhost {
		// Passkeys need a domain name: localhost, as in the browser.
		if opts.WebAuthn, err = credential.NewWebAuthn("localhost", "Recourse", []string{base}); err != nil {
			t.Fatal(err)
		}
	}
	svc, err := service.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	users, err := svc.SeedDemo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(svc, Config{DevMode: true, Demo: true}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	srv.now = c.Now
	w := &world{t: t, store: st, svc: svc, clock: c, base: base, secrets: map[string]string{}}
	for _, u := range users {
		w.secrets[u.Username] = u.TOTPSecret
	}
	events, unsubscribe := q.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	w.events = events
	runCtx, stop := context.WithCancel(context.Background())
	if err := q.Start(runCtx, svc); err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(ln)
	t.Cleanup(func() {
		hs.Close()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = q.Stop(sctx)
		stop()
		unsubscribe()
		st.Close()
	})
	return w
}

// waitJob waits for the next job of the kind to finish.
func (w *world) waitJob(kind string) {
	w.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev := <-w.events:
			if ev.Job.Kind != kind {
				continue
			}
			if ev.Kind == river.EventKindJobFailed {
				w.t.Fatalf("job %s failed: %v", kind, ev.Job.Errors)
			}
			return
		case <-deadline:
			w.t.Fatalf("job %s did not run within 20s", kind)
		}
	}
}

var reRecoveryCode = regexp.MustCompile(`recovery code is (\d{6})\.`)

// code returns the newest recovery code sent to an address.
func (w *world) code(to string) string {
	w.t.Helper()
	msgs, err := w.store.OutboxMessages(w.t.Context(), 500)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, m := range msgs {
		if m.To == to {
			if c := reRecoveryCode.FindStringSubmatch(m.Body); c != nil {
				return c[1]
			}
		}
	}
	w.t.Fatalf("no recovery code sent to %s", to)
	return ""
}

var reCancelLink = regexp.MustCompile(`(/recover/cancel\?t=rcx_[a-z2-7]+)`)

// cancelLink returns the path of the newest "this wasn't me" link sent to an
// address.
func (w *world) cancelLink(to string) string {
	w.t.Helper()
	msgs, err := w.store.OutboxMessages(w.t.Context(), 500)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, m := range msgs {
		if m.To == to {
			if l := reCancelLink.FindStringSubmatch(m.Body); l != nil {
				return l[1]
			}
		}
	}
	w.t.Fatalf("no cancel link sent to %s", to)
	return ""
}

// totp returns a fresh code of a demo person's authenticator app; the clock
// moves to the next step first, because each code works once.
func (w *world) totp(username string) string {
	w.t.Helper()
	w.clock.Add(30 * time.Second)
	c, err := credential.TOTPCode(w.secrets[username], w.clock.Now())
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

func (w *world) recovery(id string) *recourse.Recovery {
	w.t.Helper()
	r, err := w.store.Recovery(w.t.Context(), id)
	if err != nil {
		w.t.Fatalf("recovery %s: %v", id, err)
	}
	return r
}

// client is a browser stand-in that keeps every cookie by name. Go's cookie
// jar never sends Secure cookies over plain HTTP, while browsers do on
// loopback. It checks the attributes of the workflow's cookies as they are
// set.
type client struct {
	t       *testing.T
	base    string
	cookies map[string]string
	hc      *http.Client
}

func (w *world) client() *client {
	return &client{t: w.t, base: w.base, cookies: map[string]string{},
		hc: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *client) do(method, path string, form url.Values, headers ...string) (*http.Response, string) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	for name, v := range c.cookies {
		req.AddCookie(&http.Cookie{Name: name, Value: v})
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie || ck.Name == recoveryCookie {
			if !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Domain != "" {
				c.t.Errorf("%s %s: cookie attributes %+v", method, path, ck)
			}
		}
		if ck.MaxAge < 0 {
			delete(c.cookies, ck.Name)
		} else {
			c.cookies[ck.Name] = ck.Value
		}
	}
	return resp, string(data)
}

func (c *client) get(path string) (*http.Response, string) {
	c.t.Helper()
	return c.do("GET", path, nil)
}

func (c *client) post(path string, form url.Values) (*http.Response, string) {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	return c.do("POST", path, form)
}

// signIn signs a demo person in with the password and a TOTP code.
func (w *world) signIn(c *client, username string) {
	w.t.Helper()
	resp, _ := c.post("/signin", url.Values{"identifier": {username}, "password": {service.DemoPassword}})
	if resp.Header.Get("Location") != "/signin/second-factor" {
		w.t.Fatalf("sign-in of %s went to %q", username, resp.Header.Get("Location"))
	}
	resp, _ = c.post("/signin/totp", url.Values{"code": {w.totp(username)}})
	if resp.Header.Get("Location") != "/account" {
		w.t.Fatalf("second factor of %s went to %q", username, resp.Header.Get("Location"))
	}
}

// startRecovery answers "Can't sign in?" over HTTP, waits for the job and
// returns the request id.
func (w *world) startRecovery(c *client, identifier, lost string) string {
	w.t.Helper()
	resp, _ := c.post("/recover", url.Values{"identifier": {identifier}, "lost": {lost}})
	id, ok := strings.CutPrefix(resp.Header.Get("Location"), "/recover/")
	if resp.StatusCode != http.StatusSeeOther || !ok {
		w.t.Fatalf("POST /recover = %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	w.waitJob("recovery_start")
	return id
}

// reInlineCode finds what the strict CSP would block: inline script
// elements (a <script> without src), style elements and attributes, inline
// event handlers and javascript: URLs.
var reInlineCode = regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>|<style[\s>]|\sstyle\s*=|\son[a-z]+\s*=|javascript:`)

var reScriptWithSrc = regexp.MustCompile(`(?i)^<script\s[^>]*\bsrc\s*=`)

// checkNoInlineCode fails when a page has code the CSP would block.
func checkNoInlineCode(t *testing.T, name, body string) {
	t.Helper()
	for _, m := range reInlineCode.FindAllString(body, -1) {
		if reScriptWithSrc.MatchString(m) {
			continue
		}
		t.Errorf("%s has %q, which the CSP would block", name, m)
	}
}

// formValue extracts a hidden input's value.
func formValue(t *testing.T, body, name string) string {
	t.Helper()
	m := regexp.MustCompile(`name="` + regexp.QuoteMeta(name) + `" value="([^"]*)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no %s field in the page", name)
	}
	return m[1]
}

// totpFor returns the code an authenticator app with this secret shows at now.
func totpFor(t *testing.T, secret string, now time.Time) string {
	t.Helper()
	c, err := credential.TOTPCode(secret, now)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
