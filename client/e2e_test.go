package client_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/audit"
	"github.com/recourse/recourse/client"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/jobs"
	"github.com/recourse/recourse/service"
	"github.com/recourse/recourse/store/postgres"
	"github.com/recourse/recourse/store/sqlite"
	"github.com/recourse/recourse/web"
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

// server is a running Recourse: a real store, the River job queue, the
// service with an injected clock, the demo organisation, and the web server
// on a loopback port.
type server struct {
	t       *testing.T
	store   recourse.Store
	svc     *service.Service
	clock   *clock
	url     string
	secrets map[string]string
}

func pgDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("RECOURSE_TEST_POSTGRES_DSN")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but RECOURSE_TEST_POSTGRES_DSN is not set")
		}
		t.Skip("set RECOURSE_TEST_POSTGRES_DSN to run the end-to-end test on PostgreSQL")
	}
	schema := "t_" + recourse.NewID("")
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), fmt.Sprintf(`CREATE SCHEMA %q`, schema)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if db, err := sql.Open("pgx", dsn); err == nil {
			_, _ = db.ExecContext(context.Background(), fmt.Sprintf(`DROP SCHEMA %q CASCADE`, schema))
			db.Close()
		}
	})
	u, _ := url.Parse(dsn)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func startServer(t *testing.T, backend string) *server {
	t.Helper()
	ctx := t.Context()
	var st recourse.Store
	var db *sql.DB
	switch backend {
	case "sqlite":
		s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "e2e.db"), sqlite.Options{Migrate: true})
		if err != nil {
			t.Fatal(err)
		}
		st, db = s, s.DB()
	case "postgres":
		s, err := postgres.Open(ctx, pgDSN(t), postgres.Options{Migrate: true})
		if err != nil {
			t.Fatal(err)
		}
		st, db = s, s.DB()
	}
	if err := jobs.Migrate(ctx, db, backend, nil); err != nil {
		t.Fatal(err)
	}
	q, err := jobs.New(db, backend, nil, jobs.Options{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Now().UTC().Truncate(time.Second)}
	ts := httptest.NewUnstartedServer(nil)
	cfg := service.DefaultConfig()
	cfg.PasswordParams = credential.PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32, SaltLen: 16}
	cfg.PublicURL = "http://" + ts.Listener.Addr().String()
	svc, err := service.New(service.Options{Store: st, Clock: c, Config: cfg, Keys: service.Keys{Master: []byte(strings.Repeat("e", 32))}, Scheduler: q})
	if err != nil {
		t.Fatal(err)
	}
	users, err := svc.SeedDemo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := web.New(svc, web.Config{}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = srv.Handler()
	ts.Start()
	runCtx, stop := context.WithCancel(context.Background())
	if err := q.Start(runCtx, svc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ts.Close()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = q.Stop(sctx)
		stop()
		st.Close()
	})
	s := &server{t: t, store: st, svc: svc, clock: c, url: ts.URL, secrets: map[string]string{}}
	for _, u := range users {
		s.secrets[u.Username] = u.TOTPSecret
	}
	return s
}

func (s *server) totp(username string) string {
	s.clock.Add(30 * time.Second) // a fresh step: codes are single use
	code, err := credential.TOTPCode(s.secrets[username], s.clock.Now())
	if err != nil {
		s.t.Fatal(err)
	}
	return code
}

var reCode = regexp.MustCompile(`recovery code is (\d{6})\.`)

// mailedCode reads the newest recovery code sent to an address: what the
// person sees in their mailbox.
func (s *server) mailedCode(to string) string {
	s.t.Helper()
	msgs, err := s.store.OutboxMessages(s.t.Context(), 500)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, m := range msgs {
		if m.To == to {
			if c := reCode.FindStringSubmatch(m.Body); c != nil {
				return c[1]
			}
		}
	}
	s.t.Fatalf("no recovery code sent to %s", to)
	return ""
}

// browser is the subject's own browser on the /recover pages: plain form
// posts, cookies kept by hand (Go's jar keeps Secure cookies off plain
// HTTP, which browsers allow on loopback).
type browser struct {
	t       *testing.T
	base    string
	cookies map[string]string
	hc      *http.Client
}

func (s *server) browser() *browser {
	return &browser{t: s.t, base: s.url, cookies: map[string]string{},
		hc: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range b.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		b.cookies[c.Name] = c.Value
	}
	return resp, string(body)
}

// signIn signs a demo person in at the pages (password, then the code of
// their authenticator app) and returns the session token.
func (s *server) signIn(username string) string {
	s.t.Helper()
	b := s.browser()
	if resp, body := b.post("/signin", url.Values{"identifier": {username}, "password": {service.DemoPassword}}); resp.StatusCode != http.StatusSeeOther {
		s.t.Fatalf("sign in %s = %d %s", username, resp.StatusCode, body)
	}
	if resp, body := b.post("/signin/totp", url.Values{"code": {s.totp(username)}}); resp.StatusCode != http.StatusSeeOther {
		s.t.Fatalf("second factor %s = %d %s", username, resp.StatusCode, body)
	}
	return b.cookies["__Host-recourse_session"]
}

// TestHelpdeskRecoveryThroughTheClient drives a help-desk-initiated
// recovery purely through the Go client: the agent verifies the caller and
// opens the request with a reason, reads what it needs, the manager votes
// with their own key, the cooling-off passes on the injected clock, the
// caller completes in their browser (the /recover pages), and the audit log
// names each key.
func TestHelpdeskRecoveryThroughTheClient(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) { testHelpdeskRecovery(t, startServer(t, backend)) })
	}
}

func testHelpdeskRecovery(t *testing.T, s *server) {
	ctx := t.Context()
	// The administrator signs in at the pages and uses the API with that
	// session to issue keys to the help desk's tool and to the manager's
	// approvals bot, and one of their own for reading the audit log.
	admin := newClient(t, s, "", client.WithSession(s.signIn("r.patel")))
	issue := func(name, owner string, scopes ...string) *client.IssuedAPIKey {
		t.Helper()
		k, err := admin.CreateAPIKey(ctx, client.CreateAPIKeyRequest{Name: name, Owner: owner, Scopes: scopes})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	agentKey := issue("service desk", "h.berg", "recovery:open", "recovery:read", "helpdesk:verify", "accounts:read")
	managerKey := issue("approvals bot", "m.okafor", "approvals:read", "approvals:vote")
	auditKey := issue("SIEM", "r.patel", "audit:read", "api_keys:read")
	agent, manager, auditor := newClient(t, s, agentKey.Secret), newClient(t, s, managerKey.Secret), newClient(t, s, auditKey.Secret)

	// The agent looks the caller up (addresses masked) and verifies them
	// with a code from their own authenticator app.
	chs, err := agent.Channels(ctx, "d.chen")
	if err != nil || len(chs) == 0 || strings.Contains(chs[0].Address, "d.chen@") {
		t.Fatalf("channels = %+v, %v", chs, err)
	}
	if ok, err := agent.VerifyCaller(ctx, "d.chen", s.totp("d.chen")); err != nil || !ok {
		t.Fatalf("VerifyCaller = %v, %v", ok, err)
	}

	// Open on behalf, with a reason; a network retry with the same
	// Idempotency-Key opens nothing more.
	in := client.OpenRecoveryRequest{Account: "d.chen", Action: "authenticator.recover", Reason: "lost_device",
		Note: "phone stolen; caller verified", Checks: []string{"caller_verified_totp"}}
	r, err := agent.OpenRecovery(ctx, in, client.IdempotencyKey("ticket-4711"))
	if err != nil {
		t.Fatal(err)
	}
	var replayed bool
	again, err := agent.OpenRecovery(ctx, in, client.IdempotencyKey("ticket-4711"), client.Replayed(&replayed))
	if err != nil || again.ID != r.ID || !replayed {
		t.Fatalf("retry = %+v, replayed %v, %v", again, replayed, err)
	}
	if open, _ := s.store.Recoveries(ctx, "d.chen", true); len(open) != 1 {
		t.Fatalf("%d open requests after a retry, want 1", len(open))
	}
	if r.State != "collecting" || r.Initiator != "help_desk" || r.InitiatorID != "h.berg" || len(r.Missing) == 0 || r.Claimed {
		t.Fatalf("opened = %+v", r)
	}

	// The caller claims it in their own browser with the reference and the
	// code mailed to them.
	b := s.browser()
	resp, body := b.post("/recover/claim", url.Values{"reference": {r.ID}, "code": {s.mailedCode("d.chen@example.com")}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/recover/"+r.ID {
		t.Fatalf("claim = %d %s", resp.StatusCode, body)
	}

	// The agent reads what is still needed: the manager's approval.
	r, err = agent.Recovery(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != "awaiting_approval" || !r.Claimed || !slices.ContainsFunc(r.Missing, func(m string) bool { return strings.Contains(m, "manager") }) {
		t.Fatalf("after the claim = %+v", r)
	}

	// The manager's integration sees the request and votes on exactly the
	// change it read.
	pending, err := manager.Approvals(ctx, client.Page{})
	if err != nil || len(pending.Approvals) != 1 || pending.Approvals[0].RequestID != r.ID {
		t.Fatalf("approvals = %+v, %v", pending, err)
	}
	ap := pending.Approvals[0]
	if ap.Subject.ID != "d.chen" || ap.Change["action"] != "authenticator.recover" || !slices.Contains(ap.Roles, "manager") {
		t.Fatalf("approval = %+v", ap)
	}
	if _, err := agent.Vote(ctx, r.ID, "approve", ""); !client.IsCode(err, "forbidden") {
		t.Fatalf("the agent's key voted: %v", err)
	}
	voted, err := manager.Vote(ctx, r.ID, "approve", "spoke to Daniel on a known number", client.IfChange(ap.ChangeDigest))
	if err != nil {
		t.Fatal(err)
	}
	// The vote's answer is the request as the vote left it: what reading
	// it afterwards gives.
	if voted.State != "cooling_off" || voted.Voted != "approve" || len(voted.Votes) != 1 || len(voted.Missing) != 0 {
		t.Fatalf("vote answered %+v", voted)
	}
	if read, err := manager.Approval(ctx, r.ID); err != nil || approvalJSON(t, read) != approvalJSON(t, voted) {
		t.Fatalf("read after the vote = %+v, %v\nthe vote answered %+v", read, err, voted)
	}
	r, _ = agent.Recovery(ctx, r.ID)
	if r.State != "cooling_off" || r.CoolingUntil == nil || r.CoolingUntil.Sub(s.clock.Now()) != 24*time.Hour {
		t.Fatalf("after the vote = %+v", r)
	}

	// Nothing can be completed during the cooling-off.
	if resp, _ := b.post("/recover/"+r.ID+"/continue", url.Values{}); resp.StatusCode < 400 {
		t.Fatalf("continue during the cooling-off = %d", resp.StatusCode)
	}
	s.clock.Add(24*time.Hour + time.Second)
	r, _ = agent.Recovery(ctx, r.ID)
	if r.State != "ready" {
		t.Fatalf("after the cooling-off = %s", r.State)
	}

	// The caller completes in the browser.
	resp, body = b.post("/recover/"+r.ID+"/continue", url.Values{})
	tok := regexp.MustCompile(`name="token" value="(rct_[a-z2-7]+)"`).FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || tok == nil {
		t.Fatalf("continue = %d\n%s", resp.StatusCode, body)
	}
	resp, body = b.post("/recover/"+r.ID+"/complete", url.Values{"token": {tok[1]}})
	if resp.StatusCode != http.StatusSeeOther || b.cookies["__Host-recourse_session"] == "" {
		t.Fatalf("complete = %d %s", resp.StatusCode, body)
	}
	r, _ = agent.Recovery(ctx, r.ID)
	if r.State != "completed" || r.CompletedAt == nil {
		t.Fatalf("final = %+v", r)
	}
	auths, err := agent.Authenticators(ctx, "d.chen")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range auths {
		if a.Kind == "totp" && a.Status == "active" {
			t.Fatal("the lost authenticator app is still active")
		}
	}

	// The audit log names each key as the actor of its calls, and the
	// manager as the approver, tied by request id.
	skey, _, _ := audit.GenerateKey("e2e.example/audit")
	signer, _ := audit.NewSigner(skey)
	seq, err := audit.NewSequencer(audit.SequencerOptions{Store: s.store, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seq.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	calls := events(t, auditor, client.AuditQuery{Actor: agentKey.APIKey.ID})
	if len(calls) == 0 || !slices.ContainsFunc(calls, func(e *recourse.AuditEvent) bool {
		return e.Action == recourse.ActionAPIRequest && e.Attributes["route"] == "/api/v1/recoveries" && e.Actor.Role == recourse.ActorAPIClient
	}) {
		t.Fatalf("no api.request by the agent's key among %d events", len(calls))
	}
	votes := events(t, auditor, client.AuditQuery{Action: recourse.ActionApprovalVote})
	if len(votes) != 1 || votes[0].Actor.AccountID != "m.okafor" || votes[0].Channel != recourse.ViaAPI {
		t.Fatalf("vote events = %+v", votes)
	}
	byKey := events(t, auditor, client.AuditQuery{Request: votes[0].RequestID, Actor: managerKey.APIKey.ID})
	if len(byKey) != 1 || byKey[0].Action != recourse.ActionAPIRequest {
		t.Fatalf("the vote's request has no api.request by the manager's key: %+v", byKey)
	}
	if k, err := auditor.APIKey(ctx, managerKey.APIKey.ID); err != nil || k.LastUsedAt == nil {
		t.Fatalf("last use of the manager's key = %+v, %v", k, err)
	}
}

func newClient(t *testing.T, s *server, key string, opts ...client.Option) *client.Client {
	t.Helper()
	if key != "" {
		opts = append(opts, client.WithAPIKey(key))
	}
	c, err := client.New(s.url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func events(t *testing.T, c *client.Client, q client.AuditQuery) []*recourse.AuditEvent {
	t.Helper()
	page, err := c.AuditEvents(t.Context(), q, client.Page{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	var out []*recourse.AuditEvent
	for _, raw := range page.Events {
		e, err := recourse.ParseAuditEvent(raw)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// approvalJSON is a as the API encodes it, to compare two answers.
func approvalJSON(t *testing.T, a *client.Approval) string {
	t.Helper()
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
