package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/service"
	"github.com/recourse/recourse/store/sqlite"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	ts    *httptest.Server
	svc   *service.Service
	clock *clock
	store recourse.Store
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "w.db"), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &clock{t: time.Now().UTC()}
	sc := service.DefaultConfig()
	sc.PasswordParams = credential.PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32, SaltLen: 16}
	svc, err := service.New(service.Options{Store: st, Clock: c, Config: sc, Keys: service.Keys{Master: []byte(strings.Repeat("x", 32))}})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(svc, cfg, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &env{ts: ts, svc: svc, clock: c, store: st}
}

// browser is a minimal client that keeps the session cookie by hand: Go's
// cookie jar never sends Secure cookies over plain HTTP, while browsers do
// on loopback.
type browser struct {
	t      *testing.T
	base   string
	cookie string
	client *http.Client
}

func (e *env) browser(t *testing.T) *browser {
	return &browser{t: t, base: e.ts.URL, client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, form url.Values, headers ...string) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if b.cookie != "" {
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: b.cookie})
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" {
				b.t.Errorf("session cookie attributes: %+v", c)
			}
			if c.MaxAge < 0 {
				b.cookie = ""
			} else {
				b.cookie = c.Value
			}
		}
	}
	return resp, string(data)
}

func (e *env) person(t *testing.T, id string) {
	t.Helper()
	a := &recourse.Account{ID: id, Username: id, DisplayName: "Person " + id, Kind: recourse.KindHuman, Status: recourse.StatusActive,
		Employment: recourse.EmploymentEmployee, IAL: 2,
		Emails: []recourse.Channel{{Kind: recourse.ChannelEmail, Address: id + "@example.com", Verified: true}}}
	if err := e.svc.CreateAccount(t.Context(), a, service.Meta{}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SetPassword(t.Context(), id, "violet-lantern-carousel", service.Meta{}); err != nil {
		t.Fatal(err)
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, Config{})
	b := e.browser(t)
	resp, body := b.do("GET", "/signin", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /signin = %d", resp.StatusCode)
	}
	h := resp.Header
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") {
		t.Error("CSP allows inline code")
	}
	if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Request-Id") == "" || h.Get("Strict-Transport-Security") != "" {
		t.Errorf("headers = %v", h)
	}
	if regexp.MustCompile(`(?i)<script>|\sstyle=|\son[a-z]+=`).MatchString(body) {
		t.Error("page has inline script, style or event handlers, which the CSP would block")
	}
	e2 := newEnv(t, Config{SecureTransport: true})
	resp, _ = e2.browser(t).do("GET", "/signin", nil)
	if resp.Header.Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS under TLS")
	}
}

func TestCrossOriginPostRefused(t *testing.T) {
	e := newEnv(t, Config{})
	e.person(t, "alice")
	b := e.browser(t)
	form := url.Values{"identifier": {"alice"}, "password": {"violet-lantern-carousel"}}
	resp, _ := b.do("POST", "/signin", form, "Sec-Fetch-Site", "cross-site")
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site POST = %d, want 403", resp.StatusCode)
	}
	resp, _ = b.do("POST", "/signin", form, "Origin", "https://evil.example")
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign Origin POST = %d, want 403", resp.StatusCode)
	}
	resp, _ = b.do("POST", "/signin", form, "Sec-Fetch-Site", "same-origin")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("same-origin POST = %d", resp.StatusCode)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	e := newEnv(t, Config{Version: "test"})
	b := e.browser(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, body := b.do("GET", p, nil)
		if resp.StatusCode != 200 || !strings.Contains(body, `"status"`) {
			t.Errorf("%s = %d %s", p, resp.StatusCode, body)
		}
	}
	b.do("GET", "/signin", nil)
	_, body := b.do("GET", "/metrics", nil)
	for _, want := range []string{`recourse_http_requests_total{code="200",route="GET /signin"}`, `recourse_build_info{version="test"} 1`, "go_goroutines"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	e.store.Close()
	resp, _ := b.do("GET", "/readyz", nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz with a closed database = %d", resp.StatusCode)
	}
}

func TestSignInFlowTOTP(t *testing.T) {
	e := newEnv(t, Config{})
	e.person(t, "alice")
	b := e.browser(t)
	form := url.Values{"identifier": {"alice"}, "password": {"violet-lantern-carousel"}}

	// Anonymous visitors go to /signin.
	resp, _ := b.do("GET", "/account", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin" {
		t.Fatalf("anonymous /account = %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = b.do("POST", "/signin", form)
	if resp.Header.Get("Location") != "/account" {
		t.Fatalf("password-only sign-in went to %q", resp.Header.Get("Location"))
	}
	_, page := b.do("GET", "/account", nil)
	if !strings.Contains(page, "Your account security") || !strings.Contains(page, "alice@example.com") {
		t.Fatal("security page missing content")
	}
	// Enrol TOTP through the pages.
	_, page = b.do("POST", "/account/totp", url.Values{"name": {"Phone"}})
	m := regexp.MustCompile(`id="totp-secret">([A-Z2-7 ]+)<`).FindStringSubmatch(page)
	id := regexp.MustCompile(`name="authenticator_id" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil || id == nil || !strings.Contains(page, "data:image/png;base64,") {
		t.Fatalf("TOTP page lacks secret, id or QR code")
	}
	secret := strings.ReplaceAll(m[1], " ", "")
	code, _ := credential.TOTPCode(secret, e.clock.Now())
	resp, _ = b.do("POST", "/account/totp/confirm", url.Values{"authenticator_id": {id[1]}, "code": {code}})
	if resp.Header.Get("Location") != "/account?notice=totp-added" {
		t.Fatalf("confirm TOTP -> %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	b.do("POST", "/signout", url.Values{})
	if b.cookie != "" {
		t.Fatal("sign-out did not clear the cookie")
	}

	// Now sign-in needs the second factor.
	e.clock.Add(30 * time.Second)
	resp, _ = b.do("POST", "/signin", form)
	if resp.Header.Get("Location") != "/signin/second-factor" {
		t.Fatalf("sign-in with TOTP went to %q", resp.Header.Get("Location"))
	}
	pending := b.cookie
	resp, _ = b.do("GET", "/account", nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatal("a pending session reached /account")
	}
	b.cookie = pending
	resp, page = b.do("POST", "/signin/totp", url.Values{"code": {"12345"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "not correct") {
		t.Fatalf("wrong code = %d", resp.StatusCode)
	}
	code, _ = credential.TOTPCode(secret, e.clock.Now())
	resp, _ = b.do("POST", "/signin/totp", url.Values{"code": {code}})
	if resp.Header.Get("Location") != "/account" || b.cookie == pending {
		t.Fatalf("TOTP sign-in -> %s (token rotated: %v)", resp.Header.Get("Location"), b.cookie != pending)
	}
	_, page = b.do("GET", "/account", nil)
	if !strings.Contains(page, "AAL2") || !strings.Contains(page, "this session") {
		t.Error("security page does not show the AAL2 session")
	}
}

func TestSignInAnswersLookAlike(t *testing.T) {
	e := newEnv(t, Config{})
	e.person(t, "alice")
	var bodies []string
	for _, form := range []url.Values{
		{"identifier": {"alice"}, "password": {"wrong-password"}},
		{"identifier": {"nobody"}, "password": {"wrong-password"}},
	} {
		resp, body := e.browser(t).do("POST", "/signin", form)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d", resp.StatusCode)
		}
		body = regexp.MustCompile(`request req_[2-7a-z]+|value="[^"]*"`).ReplaceAllString(body, "")
		bodies = append(bodies, body)
	}
	if bodies[0] != bodies[1] {
		t.Error("the answer for a wrong password differs from the answer for an unknown account")
	}
}

func TestStepUpRedirect(t *testing.T) {
	e := newEnv(t, Config{})
	e.person(t, "alice")
	b := e.browser(t)
	b.do("POST", "/signin", url.Values{"identifier": {"alice"}, "password": {"violet-lantern-carousel"}})
	e.clock.Add(20 * time.Minute)
	resp, _ := b.do("POST", "/account/recovery-codes", url.Values{})
	if resp.Header.Get("Location") != "/account/confirm" {
		t.Fatalf("stale session -> %s, want the confirm page", resp.Header.Get("Location"))
	}
	resp, _ = b.do("POST", "/account/confirm", url.Values{"password": {"violet-lantern-carousel"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirm = %d", resp.StatusCode)
	}
	resp, page := b.do("POST", "/account/recovery-codes", url.Values{})
	if resp.StatusCode != 200 || strings.Count(page, `<li class="mono">`) != 10 {
		t.Fatalf("recovery codes page = %d", resp.StatusCode)
	}
}

func TestDevPagesOnlyInDevMode(t *testing.T) {
	prod := newEnv(t, Config{}).browser(t)
	if resp, _ := prod.do("GET", "/dev/outbox", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/dev/outbox in production = %d", resp.StatusCode)
	}
	dev := newEnv(t, Config{DevMode: true}).browser(t)
	if resp, _ := dev.do("GET", "/dev/outbox", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("/dev/outbox in dev = %d", resp.StatusCode)
	}
	if resp, _ := dev.do("GET", "/dev/demo", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/dev/demo outside demo = %d", resp.StatusCode)
	}
}

func TestClientIP(t *testing.T) {
	s := &Server{cfg: Config{TrustedProxies: mustPrefixes("10.0.0.0/8")}}
	tests := []struct {
		remote, xff, want string
	}{
		{"192.0.2.1:1234", "198.51.100.1", "192.0.2.1"},                // untrusted peer: header ignored
		{"10.0.0.5:1234", "198.51.100.1", "198.51.100.1"},              // trusted proxy
		{"10.0.0.5:1234", "203.0.113.9, 198.51.100.1", "198.51.100.1"}, // rightmost untrusted
		{"10.0.0.5:1234", "198.51.100.1, 10.0.0.7", "198.51.100.1"},    // skip trusted hops
		{"10.0.0.5:1234", "garbage", "10.0.0.5"},
		{"[::ffff:192.0.2.1]:1", "", "192.0.2.1"},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := s.clientIP(r); got != tc.want {
			t.Errorf("clientIP(%s, %q) = %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}

func mustPrefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}
