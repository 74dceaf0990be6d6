package web

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recourse/recourse"
	apiv1 "github.com/recourse/recourse/client"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/service"
	"github.com/recourse/recourse/store/sqlite"
)

// startQueue is a Scheduler that keeps "Can't sign in?" jobs for the test
// to run (runStarts), so the API tests need no job queue.
type startQueue struct {
	mu   sync.Mutex
	jobs []service.StartJob
}

func (q *startQueue) ScheduleStart(_ context.Context, job service.StartJob) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.jobs = append(q.jobs, job)
	return nil
}

func (q *startQueue) ScheduleAdvance(context.Context, recourse.Tx, string, time.Time) error {
	return nil
}

// apiEnv is the demo organisation behind an HTTP server, with an injected
// clock, plus "root", who holds every Recourse role.
type apiEnv struct {
	t       *testing.T
	store   recourse.Store
	db      *sql.DB
	svc     *service.Service
	srv     *Server
	clock   *clock
	ts      *httptest.Server
	starts  *startQueue
	secrets map[string]string
}

func newAPIEnv(t *testing.T) *apiEnv {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "api.db"), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &clock{t: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}
	cfg := service.DefaultConfig()
	cfg.PasswordParams = credential.PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32, SaltLen: 16}
	cfg.SignInRatePerMinute, cfg.SignInBurst = 6000, 1000
	q := &startQueue{}
	svc, err := service.New(service.Options{Store: st, Clock: c, Config: cfg, Keys: service.Keys{Master: []byte(strings.Repeat("k", 32))}, Scheduler: q})
	if err != nil {
		t.Fatal(err)
	}
	users, err := svc.SeedDemo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e := &apiEnv{t: t, store: st, db: st.DB(), svc: svc, clock: c, starts: q, secrets: map[string]string{}}
	for _, u := range users {
		e.secrets[u.Username] = u.TOTPSecret
	}
	root := &recourse.Account{ID: "root", Username: "root", DisplayName: "Root", Kind: recourse.KindHuman, Status: recourse.StatusActive,
		Employment: recourse.EmploymentEmployee, IAL: 2, Roles: []string{recourse.RoleAdmin, recourse.RoleHelpdesk, recourse.RoleSecurity}}
	if err := svc.CreateAccount(ctx, root, service.Meta{}); err != nil {
		t.Fatal(err)
	}
	if e.srv, err = New(svc, Config{}, nil, prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	e.ts = httptest.NewServer(e.srv.Handler())
	t.Cleanup(e.ts.Close)
	return e
}

// key issues an API key as the CLI would and returns its secret.
func (e *apiEnv) key(owner string, scopes ...string) string {
	e.t.Helper()
	k, err := e.svc.CreateAPIKey(e.t.Context(), nil, service.NewAPIKey{Name: "test " + owner, OwnerID: owner, Scopes: scopes}, service.Meta{})
	if err != nil {
		e.t.Fatalf("CreateAPIKey(%s, %v): %v", owner, scopes, err)
	}
	return k.Secret
}

// session signs a demo person in with password and TOTP and returns the
// session token.
func (e *apiEnv) session(username string) string {
	e.t.Helper()
	ctx := e.t.Context()
	res, err := e.svc.SignIn(ctx, username, service.DemoPassword, service.Meta{IP: "192.0.2.1"})
	if err != nil {
		e.t.Fatal(err)
	}
	e.clock.Add(30 * time.Second)
	code, _ := credential.TOTPCode(e.secrets[username], e.clock.Now())
	done, err := e.svc.SignInTOTP(ctx, res.Token, code, service.Meta{IP: "192.0.2.1"})
	if err != nil {
		e.t.Fatal(err)
	}
	return done.Token
}

func (e *apiEnv) totp(username string) string {
	e.clock.Add(30 * time.Second)
	code, _ := credential.TOTPCode(e.secrets[username], e.clock.Now())
	return code
}

// runStarts processes the queued "Can't sign in?" jobs.
func (e *apiEnv) runStarts() {
	e.t.Helper()
	e.starts.mu.Lock()
	jobs := e.starts.jobs
	e.starts.jobs = nil
	e.starts.mu.Unlock()
	for _, j := range jobs {
		if err := e.svc.ProcessStart(e.t.Context(), j); err != nil {
			e.t.Fatal(err)
		}
	}
}

var reAPIRecoveryCode = regexp.MustCompile(`recovery code is (\d{6})\.`)

// mailedCode returns the newest recovery code sent to an address.
func (e *apiEnv) mailedCode(to string) string {
	e.t.Helper()
	msgs, err := e.store.OutboxMessages(e.t.Context(), 500)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, m := range msgs {
		if m.To == to {
			if c := reAPIRecoveryCode.FindStringSubmatch(m.Body); c != nil {
				return c[1]
			}
		}
	}
	e.t.Fatalf("no recovery code sent to %s", to)
	return ""
}

// bearer and cookie are header pairs for call.
func bearer(key string) []string     { return []string{"Authorization", "Bearer " + key} }
func cookieOf(token string) []string { return []string{"Cookie", sessionCookie + "=" + token} }

// call sends a request: body is a string or []byte sent as is, or a value
// encoded as JSON. hdr are header name/value pairs.
func (e *apiEnv) call(method, path string, body any, hdr ...string) (int, http.Header, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, data
}

// decode decodes an answer, failing the test on unknown fields: the wire
// types and the server must agree exactly.
func decode[T any](t *testing.T, data []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, data)
	}
	return v
}

func apiErr(t *testing.T, data []byte) apiv1.ErrorDetail {
	t.Helper()
	return decode[apiv1.ErrorBody](t, data).Error
}

// sampleBody is a valid body for each write route, so a refusal can only
// come from what the test varies.
var sampleBody = map[string]any{
	"POST /api/v1/accounts":                                    recourse.AccountJSON{ID: "new.person", Username: "new.person", DisplayName: "New Person"},
	"POST /api/v1/accounts/import":                             `[{"id":"imp.one","username":"imp.one","display_name":"Imp One"}]`,
	"PUT /api/v1/accounts/{id}":                                recourse.AccountJSON{ID: "a.silva", Username: "a.silva", DisplayName: "Ana Silva"},
	"POST /api/v1/accounts/{id}/verify-caller":                 apiv1.VerifyCallerRequest{Code: "123456"},
	"POST /api/v1/recoveries":                                  apiv1.OpenRecoveryRequest{Account: "d.chen", Action: "password.reset", Reason: "forgot_password"},
	"POST /api/v1/recoveries/{id}/cancel":                      apiv1.CancelRecoveryRequest{},
	"POST /api/v1/approvals/{id}/vote":                         apiv1.VoteRequest{Vote: "approve"},
	"POST /api/v1/api-keys":                                    apiv1.CreateAPIKeyRequest{Name: "n", Owner: "root", Scopes: []string{"audit:read"}},
	"POST /api/v1/api-keys/{id}/rotate":                        apiv1.RotateAPIKeyRequest{},
	"POST /api/v1/webhooks":                                    apiv1.CreateWebhookRequest{URL: "https://hooks.example.com/x", Events: []string{"*"}},
	"POST /api/v1/self-service/recoveries":                     apiv1.StartRecoveryRequest{Identifier: "d.chen", Lost: "password"},
	"POST /api/v1/self-service/recoveries/{id}/claim":          apiv1.CodeRequest{Code: "123456"},
	"POST /api/v1/self-service/recoveries/{id}/codes":          apiv1.CodeRequest{Code: "123456"},
	"POST /api/v1/self-service/recoveries/{id}/totp":           apiv1.CodeRequest{Code: "123456"},
	"POST /api/v1/self-service/recoveries/{id}/recovery-codes": apiv1.CodeRequest{Code: "123456"},
	"POST /api/v1/self-service/recoveries/{id}/complete":       apiv1.CompleteRecoveryRequest{CompletionToken: "x"},
}

func routePath(rt apiRoute) string { return strings.ReplaceAll(rt.path, "{id}", "nope") }

// TestAPIScopes: every endpoint with a scope refuses a key without it,
// before doing anything, and lets a key with it through to the service.
func TestAPIScopes(t *testing.T) {
	e := newAPIEnv(t)
	for _, rt := range allAPIRoutes(e.srv) {
		if rt.scope == "" {
			continue
		}
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			other := "sessions:read"
			if rt.scope == other {
				other = "sessions:write"
			}
			without := e.key("root", other)
			status, _, body := e.call(rt.method, routePath(rt), sampleBody[rt.method+" "+rt.path], bearer(without)...)
			if status != http.StatusForbidden || apiErr(t, body).Code != recourse.EFORBIDDEN || !strings.Contains(string(body), rt.scope) {
				t.Fatalf("without %s: %d %s", rt.scope, status, body)
			}
			// The refusal is audited as a denial by the key.
			recs, _ := e.store.UnsequencedAuditEvents(t.Context(), 0, 5000)
			last, _ := recourse.ParseAuditEvent(recs[len(recs)-1].Data)
			if last.Action != recourse.ActionAPIRequest || last.Outcome != recourse.OutcomeDenied || last.Attributes["route"] != rt.path {
				t.Fatalf("last event = %+v", last)
			}
			with := e.key("root", rt.scope)
			status, _, body = e.call(rt.method, routePath(rt), sampleBody[rt.method+" "+rt.path], bearer(with)...)
			if status == http.StatusForbidden && strings.Contains(string(body), "scope") {
				t.Fatalf("with %s: %d %s", rt.scope, status, body)
			}
		})
	}
}

// TestAPIKeyActsWithScopedRoles: a key acts with its owner's roles that its
// scopes name, so an administrator's key for reading recoveries cannot
// manage keys, and a scope the owner's roles cannot use is never issued.
func TestAPIKeyActsWithScopedRoles(t *testing.T) {
	e := newAPIEnv(t)
	ctx := t.Context()
	reader := e.key("r.patel", "recovery:read", "policy:read")
	victim := e.key("r.patel", "audit:read")
	me := decode[apiv1.Me](t, func() []byte { _, _, b := e.call("GET", "/api/v1/me", nil, bearer(reader)...); return b }())
	if me.Via != "api_key" || me.Account.ID != "r.patel" || len(me.Scopes) != 2 || me.Key == nil {
		t.Fatalf("me = %+v", me)
	}
	keys, _ := e.svc.APIKeys(ctx, nil, recourse.APIKeyFilter{OwnerID: "r.patel"})
	var victimID string
	for _, k := range keys {
		if slices.Contains(k.Scopes, "audit:read") {
			victimID = k.ID
		}
	}
	for _, req := range []struct{ method, path string }{{"DELETE", "/api/v1/api-keys/" + victimID}, {"POST", "/api/v1/api-keys/" + victimID + "/rotate"}} {
		status, _, body := e.call(req.method, req.path, nil, bearer(reader)...)
		if status != http.StatusForbidden || !strings.Contains(string(body), "api_keys:write") {
			t.Errorf("%s %s with another key = %d %s", req.method, req.path, status, body)
		}
	}
	if status, _, _ := e.call("GET", "/api/v1/me", nil, bearer(victim)...); status != http.StatusOK {
		t.Fatal("the other key stopped working")
	}
	// Scopes the owner's roles cannot use are refused at issue.
	for _, tc := range []struct {
		owner, scope string
		ok           bool
	}{
		{"d.chen", "audit:read", false}, {"d.chen", "approvals:vote", true}, {"h.berg", "recovery:open", true},
		{"r.patel", "recovery:open", false}, {"s.ito", "audit:read", true}, {"svc.payroll", "recovery:read", false},
		{"r.patel", "no:such", false},
	} {
		_, err := e.svc.CreateAPIKey(ctx, nil, service.NewAPIKey{Name: "x", OwnerID: tc.owner, Scopes: []string{tc.scope}}, service.Meta{})
		if (err == nil) != tc.ok {
			t.Errorf("issue %s to %s: %v", tc.scope, tc.owner, err)
		}
	}
	// A key issues only scopes it holds.
	issuer := e.key("r.patel", "api_keys:write", "audit:read")
	status, _, body := e.call("POST", "/api/v1/api-keys", apiv1.CreateAPIKeyRequest{Name: "child", Owner: "r.patel", Scopes: []string{"accounts:write"}}, bearer(issuer)...)
	if status != http.StatusBadRequest || apiErr(t, body).Field != "scopes" {
		t.Errorf("a key minted a scope it lacks: %d %s", status, body)
	}
	status, _, body = e.call("POST", "/api/v1/api-keys", apiv1.CreateAPIKeyRequest{Name: "child", Owner: "s.ito", Scopes: []string{"audit:read"}}, bearer(issuer)...)
	if status != http.StatusCreated {
		t.Errorf("a key could not issue a scope it holds: %d %s", status, body)
	}
}

// TestAPIKeyLifecycle: shown once, stored hashed, last use recorded,
// expiry, revocation, rotation with its overlap, and the maximum lifetime.
func TestAPIKeyLifecycle(t *testing.T) {
	e := newAPIEnv(t)
	ctx := t.Context()
	admin := e.session("r.patel")
	status, h, body := e.call("POST", "/api/v1/api-keys", apiv1.CreateAPIKeyRequest{Name: "ITSM", Owner: "h.berg", Scopes: []string{"recovery:read", "recovery:open"}}, cookieOf(admin)...)
	if status != http.StatusCreated {
		t.Fatalf("create = %d %s", status, body)
	}
	issued := decode[apiv1.IssuedAPIKey](t, body)
	k := issued.APIKey
	if !credential.ValidToken(service.APIKeyPrefix, issued.Secret) || !strings.HasPrefix(issued.Secret, k.Hint) || k.State != "active" ||
		!k.ExpiresAt.Equal(e.clock.Now().Add(90*24*time.Hour).Truncate(time.Second)) || h.Get("ETag") != `"v1"` || k.CreatedBy != "r.patel" {
		t.Fatalf("issued = %+v, ETag %s", issued, h.Get("ETag"))
	}
	stored, _ := e.store.APIKey(ctx, k.ID)
	if bytes.Contains(stored.Hash, []byte(issued.Secret)) || len(stored.Hash) != 32 {
		t.Fatal("the secret is stored in the clear")
	}
	// Reading it never shows the secret again.
	_, _, body = e.call("GET", "/api/v1/api-keys/"+k.ID, nil, cookieOf(admin)...)
	if strings.Contains(string(body), issued.Secret) {
		t.Fatal("the secret was shown twice")
	}
	// The owner is told.
	if msgs, _ := e.store.OutboxMessages(ctx, 50); !strings.Contains(msgs[0].Subject, "API key") || msgs[0].To != "h.berg@example.com" {
		t.Errorf("owner notice = %+v", msgs[0])
	}

	use := func(secret string) int {
		status, _, _ := e.call("GET", "/api/v1/recoveries", nil, bearer(secret)...)
		return status
	}
	if use(issued.Secret) != http.StatusOK {
		t.Fatal("a fresh key does not work")
	}
	got, _ := e.svc.APIKey(ctx, nil, k.ID)
	if got.LastUsedAt == nil || !got.LastUsedAt.Equal(e.clock.Now()) || got.LastUsedIP != "127.0.0.1" {
		t.Errorf("last use = %v from %q", got.LastUsedAt, got.LastUsedIP)
	}
	// Every call with a key is audited with the key as actor.
	recs, _ := e.store.UnsequencedAuditEvents(ctx, 0, 1000)
	found := false
	for _, r := range recs {
		ev, _ := recourse.ParseAuditEvent(r.Data)
		if ev.Action == recourse.ActionAPIRequest && ev.Actor.AccountID == k.ID && ev.Actor.Role == recourse.ActorAPIClient &&
			ev.Channel == recourse.ViaAPI && ev.Attributes["route"] == "/api/v1/recoveries" {
			found = true
		}
	}
	if !found {
		t.Error("no api.request event with the key as actor")
	}

	// Rotation: the old key works for the overlap, then stops; the new one
	// works; a rotated key is not rotated again.
	status, _, body = e.call("POST", "/api/v1/api-keys/"+k.ID+"/rotate", apiv1.RotateAPIKeyRequest{Overlap: "2h"}, bearer(issued.Secret)...)
	if status != http.StatusCreated {
		t.Fatalf("self-rotation = %d %s", status, body)
	}
	next := decode[apiv1.IssuedAPIKey](t, body)
	if next.APIKey.RotatedFrom != k.ID || next.APIKey.Name != "ITSM" || next.Secret == issued.Secret {
		t.Fatalf("rotated = %+v", next.APIKey)
	}
	if status, _, _ := e.call("POST", "/api/v1/api-keys/"+k.ID+"/rotate", nil, cookieOf(admin)...); status != http.StatusConflict {
		t.Errorf("second rotation of one key = %d", status)
	}
	e.clock.Add(time.Hour)
	if use(issued.Secret) != http.StatusOK || use(next.Secret) != http.StatusOK {
		t.Fatal("during the overlap both keys must work")
	}
	e.clock.Add(time.Hour)
	if use(issued.Secret) != http.StatusUnauthorized || use(next.Secret) != http.StatusOK {
		t.Fatal("after the overlap only the new key may work")
	}
	admin = e.session("r.patel") // the first session idled out meanwhile
	if status, _, body := e.call("POST", "/api/v1/api-keys/"+next.APIKey.ID+"/rotate", apiv1.RotateAPIKeyRequest{Overlap: "720h"}, cookieOf(admin)...); status != http.StatusBadRequest {
		t.Errorf("an overlap beyond the maximum = %d %s", status, body)
	}

	// Revocation, guarded by If-Match, stops the key at once.
	if status, _, _ := e.call("DELETE", "/api/v1/api-keys/"+next.APIKey.ID, nil, append(cookieOf(admin), "If-Match", `"v7"`)...); status != http.StatusConflict {
		t.Errorf("revoke with a stale ETag = %d", status)
	}
	status, _, body = e.call("DELETE", "/api/v1/api-keys/"+next.APIKey.ID, nil, append(cookieOf(admin), "If-Match", `"v1"`)...)
	if status != http.StatusOK || decode[apiv1.APIKey](t, body).State != "revoked" {
		t.Fatalf("revoke = %d %s", status, body)
	}
	if status, _, body := e.call("GET", "/api/v1/recoveries", nil, bearer(next.Secret)...); status != http.StatusUnauthorized ||
		apiErr(t, body).Code != recourse.EUNAUTHORIZED {
		t.Fatalf("a revoked key = %d %s", status, body)
	}

	// Expiry, and the maximum lifetime (configurable).
	short := e.clock.Now().Add(time.Hour)
	status, _, body = e.call("POST", "/api/v1/api-keys", apiv1.CreateAPIKeyRequest{Name: "short", Owner: "s.ito", Scopes: []string{"audit:read"}, ExpiresAt: &short}, cookieOf(admin)...)
	if status != http.StatusCreated {
		t.Fatalf("create = %d %s", status, body)
	}
	shortKey := decode[apiv1.IssuedAPIKey](t, body)
	if status, _, _ := e.call("GET", "/api/v1/me", nil, bearer(shortKey.Secret)...); status != http.StatusOK {
		t.Fatal("an unexpired key does not work")
	}
	e.clock.Add(time.Hour)
	if status, _, _ := e.call("GET", "/api/v1/me", nil, bearer(shortKey.Secret)...); status != http.StatusUnauthorized {
		t.Fatal("an expired key works")
	}
	admin = e.session("r.patel")
	far := e.clock.Now().Add(91 * 24 * time.Hour)
	status, _, body = e.call("POST", "/api/v1/api-keys", apiv1.CreateAPIKeyRequest{Name: "far", Owner: "s.ito", Scopes: []string{"audit:read"}, ExpiresAt: &far}, cookieOf(admin)...)
	if status != http.StatusBadRequest || apiErr(t, body).Field != "expires_at" {
		t.Fatalf("beyond 90 days = %d %s", status, body)
	}
	if err := e.svc.SetAPIConfig(service.APIConfig{MaxKeyLifetime: 7 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	week := e.clock.Now().Add(8 * 24 * time.Hour)
	if _, err := e.svc.CreateAPIKey(ctx, nil, service.NewAPIKey{Name: "x", OwnerID: "s.ito", Scopes: []string{"audit:read"}, ExpiresAt: week}, service.Meta{}); recourse.ErrorCode(err) != recourse.EINVALID {
		t.Fatalf("beyond a configured 7-day maximum: %v", err)
	}
	// An owner who leaves takes the key's power with them.
	hk := e.key("h.berg", "recovery:read")
	owner, _ := e.store.Account(ctx, "h.berg")
	owner.Status = recourse.StatusSuspended
	if _, err := e.svc.ImportAccounts(ctx, []*recourse.Account{owner}, service.Meta{}); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := e.call("GET", "/api/v1/me", nil, bearer(hk)...); status != http.StatusUnauthorized {
		t.Fatalf("a suspended owner's key = %d", status)
	}
}

// TestAPIIdempotency: a retried write answers what the first answered and
// changes nothing more; the same key with another request is refused.
func TestAPIIdempotency(t *testing.T) {
	e := newAPIEnv(t)
	ctx := t.Context()
	admin := e.key("r.patel", "api_keys:write", "api_keys:read", "audit:read")
	req := apiv1.CreateAPIKeyRequest{Name: "retry", Owner: "s.ito", Scopes: []string{"audit:read"}}
	idem := func(k string) []string { return append(bearer(admin), "Idempotency-Key", k) }
	s1, h1, b1 := e.call("POST", "/api/v1/api-keys", req, idem("k-1")...)
	s2, h2, b2 := e.call("POST", "/api/v1/api-keys", req, idem("k-1")...)
	if s1 != http.StatusCreated || s2 != s1 || !bytes.Equal(b1, b2) || h1.Get("Idempotent-Replayed") != "" || h2.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: %d %q / %d %q", s1, h1.Get("Idempotent-Replayed"), s2, h2.Get("Idempotent-Replayed"))
	}
	keys, _ := e.svc.APIKeys(ctx, nil, recourse.APIKeyFilter{OwnerID: "s.ito"})
	if len(keys) != 1 {
		t.Fatalf("the retry issued another key: %d keys", len(keys))
	}
	// The stored answer holds a secret: it is sealed at rest.
	var stored []byte
	if err := e.db.QueryRowContext(ctx, `SELECT body FROM api_idempotency WHERE idem_key = 'k-1'`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if len(stored) == 0 || bytes.Contains(stored, []byte("rcs_")) || bytes.Contains(stored, []byte("retry")) {
		t.Fatal("an idempotent answer is stored in the clear")
	}
	// Another request with the same key: 409. Another key: a new key.
	req2 := req
	req2.Name = "other"
	if s, _, b := e.call("POST", "/api/v1/api-keys", req2, idem("k-1")...); s != http.StatusConflict || apiErr(t, b).Code != recourse.ECONFLICT {
		t.Fatalf("reuse with another body = %d %s", s, b)
	}
	if s, _, _ := e.call("POST", "/api/v1/api-keys", req2, idem("k-2")...); s != http.StatusCreated {
		t.Fatalf("a new key = %d", s)
	}
	// Keys belong to their caller: another caller's k-1 is its own.
	other := e.key("r.patel", "api_keys:write", "audit:read")
	if s, h, _ := e.call("POST", "/api/v1/api-keys", req, append(bearer(other), "Idempotency-Key", "k-1")...); s != http.StatusCreated || h.Get("Idempotent-Replayed") != "" {
		t.Fatalf("another caller's key = %d replayed %q", s, h.Get("Idempotent-Replayed"))
	}
	// Refusals are answers too, and are replayed.
	bad := apiv1.CreateAPIKeyRequest{Name: "bad", Owner: "nobody", Scopes: []string{"audit:read"}}
	s1, _, b1 = e.call("POST", "/api/v1/api-keys", bad, idem("k-3")...)
	s2, h2, b2 = e.call("POST", "/api/v1/api-keys", bad, idem("k-3")...)
	if s1 != http.StatusBadRequest || s2 != s1 || !bytes.Equal(b1, b2) || h2.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("refusal replay: %d / %d %s", s1, s2, b2)
	}
	// After the window the key is forgotten.
	e.clock.Add(25 * time.Hour)
	if s, h, _ := e.call("POST", "/api/v1/api-keys", req, idem("k-1")...); s != http.StatusCreated || h.Get("Idempotent-Replayed") != "" {
		t.Fatalf("after the window = %d replayed %q", s, h.Get("Idempotent-Replayed"))
	}
	// A malformed key is refused.
	if s, _, b := e.call("POST", "/api/v1/api-keys", req, idem(strings.Repeat("x", 300))...); s != http.StatusBadRequest || apiErr(t, b).Field != "Idempotency-Key" {
		t.Fatalf("a 300-character key = %d %s", s, b)
	}
}

// TestAPIHardening: strict decoding, size limits, JSON 404/405, closed
// CORS, authentication answers, and no internal detail in errors.
func TestAPIHardening(t *testing.T) {
	e := newAPIEnv(t)
	admin := e.key("r.patel", "api_keys:write", "accounts:read")
	tests := []struct {
		name         string
		method, path string
		body         any
		hdr          []string
		status       int
		code, field  string
		contentType  string
	}{
		{"unknown field", "POST", "/api/v1/api-keys", `{"name":"x","owner":"r.patel","scopes":["audit:read"],"admin":true}`, bearer(admin), 400, "invalid", "admin", ""},
		{"wrong type", "POST", "/api/v1/api-keys", `{"name":1,"owner":"r.patel","scopes":["audit:read"]}`, bearer(admin), 400, "invalid", "name", ""},
		{"trailing data", "POST", "/api/v1/api-keys", `{"name":"x","owner":"r.patel","scopes":["audit:read"]} {}`, bearer(admin), 400, "invalid", "", ""},
		{"not JSON", "POST", "/api/v1/api-keys", `name=x`, bearer(admin), 400, "invalid", "", ""},
		{"array body", "POST", "/api/v1/api-keys", `[]`, bearer(admin), 400, "invalid", "", ""},
		{"missing body", "POST", "/api/v1/api-keys", nil, bearer(admin), 400, "invalid", "", ""},
		{"form content type", "POST", "/api/v1/api-keys", `{"name":"x"}`, append(bearer(admin), "Content-Type", "application/x-www-form-urlencoded"), 400, "invalid", "", ""},
		{"too large", "POST", "/api/v1/api-keys", `{"name":"` + strings.Repeat("x", 70<<10) + `"}`, bearer(admin), 400, "invalid", "", ""},
		{"bad time", "POST", "/api/v1/api-keys", `{"name":"x","owner":"r.patel","scopes":["audit:read"],"expires_at":"tomorrow"}`, bearer(admin), 400, "invalid", "", ""},
		{"no credentials", "GET", "/api/v1/me", nil, nil, 401, "unauthorized", "", ""},
		{"not a bearer", "GET", "/api/v1/me", nil, []string{"Authorization", "Basic cm9vdDpyb290"}, 401, "unauthorized", "", ""},
		{"malformed key", "GET", "/api/v1/me", nil, bearer("rcs_short"), 401, "unauthorized", "", ""},
		{"unknown key", "GET", "/api/v1/me", nil, bearer(credential.NewToken("rcs_")), 401, "unauthorized", "", ""},
		{"a session token is not a key", "GET", "/api/v1/me", nil, bearer(credential.NewToken("rss_")), 401, "unauthorized", "", ""},
		{"unknown path", "GET", "/api/v1/nothing", nil, bearer(admin), 404, "not_found", "", ""},
		{"wrong method", "PATCH", "/api/v1/accounts", nil, bearer(admin), 405, "method_not_allowed", "", ""},
		{"bad limit", "GET", "/api/v1/accounts?limit=0", nil, bearer(admin), 400, "invalid", "limit", ""},
		{"bad cursor", "GET", "/api/v1/accounts?cursor=!!", nil, bearer(admin), 400, "invalid", "cursor", ""},
		{"bad If-Match", "DELETE", "/api/v1/api-keys/ak_x", nil, append(bearer(admin), "If-Match", "W/\"v1\""), 400, "invalid", "If-Match", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := e.call(tc.method, tc.path, tc.body, tc.hdr...)
			if status != tc.status {
				t.Fatalf("status = %d, want %d: %s", status, tc.status, body)
			}
			d := apiErr(t, body)
			if d.Code != tc.code || d.Field != tc.field || d.RequestID == "" || d.RequestID != h.Get("X-Request-Id") {
				t.Errorf("error = %+v (X-Request-Id %s)", d, h.Get("X-Request-Id"))
			}
			if status == 401 && h.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if status == 405 && !strings.Contains(h.Get("Allow"), "GET") {
				t.Errorf("Allow = %q", h.Get("Allow"))
			}
		})
	}
	// CORS is closed: a preflight gets no Access-Control-* header.
	status, h, _ := e.call("OPTIONS", "/api/v1/accounts", nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "GET")
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			t.Errorf("preflight answered %s", k)
		}
	}
	if status < 400 {
		t.Errorf("preflight = %d", status)
	}
	// A cross-site browser write with the session cookie is refused.
	status, _, _ = e.call("POST", "/api/v1/api-keys", sampleBody["POST /api/v1/api-keys"], append(cookieOf(e.session("r.patel")), "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example")...)
	if status != http.StatusForbidden {
		t.Errorf("cross-site write = %d", status)
	}
	// An internal failure says nothing about itself.
	e.store.Close()
	status, _, body := e.call("GET", "/api/v1/accounts/r.patel", nil, bearer(admin)...)
	d := apiErr(t, body)
	if status != http.StatusInternalServerError || d.Code != "internal" || d.Message != "An internal error occurred." {
		t.Fatalf("internal error = %d %s", status, body)
	}
	if strings.Contains(strings.ToLower(string(body)), "sql") || strings.Contains(string(body), "closed") {
		t.Errorf("internal detail leaked: %s", body)
	}
}

// TestAPIRateLimitPerKey: each key has its own token bucket.
func TestAPIRateLimitPerKey(t *testing.T) {
	e := newAPIEnv(t)
	if err := e.svc.SetAPIConfig(service.APIConfig{RatePerMinute: 1, Burst: 3}); err != nil {
		t.Fatal(err)
	}
	a, b := e.key("r.patel", "audit:read"), e.key("s.ito", "audit:read")
	for i := range 3 {
		if status, _, _ := e.call("GET", "/api/v1/me", nil, bearer(a)...); status != http.StatusOK {
			t.Fatalf("call %d = %d", i, status)
		}
	}
	status, _, body := e.call("GET", "/api/v1/me", nil, bearer(a)...)
	if status != http.StatusTooManyRequests || apiErr(t, body).Code != recourse.ERATELIMIT {
		t.Fatalf("over the burst = %d %s", status, body)
	}
	if status, _, _ := e.call("GET", "/api/v1/me", nil, bearer(b)...); status != http.StatusOK {
		t.Fatal("one key's limit stopped another key")
	}
}
