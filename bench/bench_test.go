package bench

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/audit"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/policy"
	"github.com/recourse/recourse/service"
	"github.com/recourse/recourse/store/sqlite"
)

// The end-to-end smoke test of every scenario is in cmd/recourse
// (TestBenchSmoke): it needs the server's wiring. These test the parts.

func TestBenchPolicy(t *testing.T) {
	data, err := BenchPolicy()
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Load(data, "bench-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	person := func(groups ...string) *recourse.Account {
		return &recourse.Account{ID: "p", Username: "p", DisplayName: "P", Kind: recourse.KindHuman, Status: recourse.StatusActive,
			Employment: recourse.EmploymentEmployee, IAL: 2, ManagerID: "m", Groups: groups, CreatedAt: now.Add(-time.Hour)}
	}
	in := func(a *recourse.Account) policy.Input {
		return policy.Input{Account: a, Authenticators: []policy.AuthenticatorFact{{Type: "password", BoundAt: now}, {Type: "totp", BoundAt: now}},
			Request: policy.Request{Initiator: "self", Time: now}}
	}
	ev := policy.Evidence{Codes: []policy.Code{{Channel: "email"}}, Approvals: []policy.Approval{{ApproverID: "m", Roles: []string{"manager"}}}}
	for _, action := range []string{"password.reset", "authenticator.recover"} {
		d, err := p.Decide(t.Context(), action, in(person(service.BenchGroup)))
		if err != nil {
			t.Fatal(err)
		}
		if d.Rule != "bench" || d.Outcome != policy.Require {
			t.Fatalf("%s for a bench account: rule %q, outcome %q; want the bench rule", action, d.Rule, d.Outcome)
		}
		if res := policy.Satisfied(d.Requirement, ev); !res.Satisfied || res.Delay != 0 {
			t.Errorf("%s: a code and the manager's approval: satisfied %v, delay %s; want satisfied at once", action, res.Satisfied, res.Delay)
		}
		if policy.Satisfied(d.Requirement, policy.Evidence{Codes: ev.Codes}).Satisfied {
			t.Errorf("%s: a code alone satisfies the bench rule", action)
		}
		// Anyone else gets the built-in rules.
		d, err = p.Decide(t.Context(), action, in(person("engineering")))
		if err != nil {
			t.Fatal(err)
		}
		if d.Rule == "bench" {
			t.Errorf("%s: the bench rule applies outside the bench group", action)
		}
	}
}

func TestLayoutRolesAreDisjoint(t *testing.T) {
	for _, l := range []layout{{n: minAccounts(2), clients: 2}, {n: 10_000, clients: 16}, {n: minAccounts(16), clients: 16}} {
		role := map[string]string{}
		claim := func(id, r string) {
			t.Helper()
			i, err := strconv.Atoi(strings.TrimPrefix(id, "bench"))
			if err != nil || i < 1 || i > l.n {
				t.Fatalf("%+v: %s (%s) is not a seeded account", l, id, r)
			}
			if old, ok := role[id]; ok && old != r {
				t.Fatalf("%+v: %s is both %s and %s", l, id, old, r)
			}
			role[id] = r
		}
		for k := range l.clients {
			for j := range perClient {
				team := l.team(k, j)
				claim(l.leader(team), "approver")
				for m := range teamSize - 1 {
					claim(l.member(team, m), "recovered")
				}
				claim(l.routineAccount(k, j), "routine")
				claim(l.routineContact(k, j), "contact")
			}
		}
		if l.signinCount() < 1 || l.recoveryCount() < 1 {
			t.Fatalf("%+v: empty pools", l)
		}
		for i := range l.signinCount() {
			claim(l.signinAccount(i), "signin")
		}
		for i := range l.recoveryCount() {
			claim(l.recoveryAccount(i), "asked about")
		}
		if len(role) != l.n {
			t.Errorf("%+v: %d accounts have a role, want all %d", l, len(role), l.n)
		}
		// A recovered member's manager is the approver of its team.
		if a := benchAccount(teamSize + 2); a.ManagerID != accountID(teamSize+1) {
			t.Errorf("manager of %s = %q, want %s", a.ID, a.ManagerID, accountID(teamSize+1))
		}
	}
}

// testParams are cheap Argon2id parameters for tests.
var testParams = credential.PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32, SaltLen: 16}

// testService is a service over st with testParams.
func testService(t *testing.T, st recourse.Store) *service.Service {
	t.Helper()
	cfg := service.DefaultConfig()
	cfg.PasswordParams = testParams
	svc, err := service.New(service.Options{Store: st, Config: cfg, Keys: service.Keys{Master: []byte(strings.Repeat("s", 32))}})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// TestSeed seeds a small directory, checks the credentials work and that a
// second seeding adds nothing.
func TestSeed(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc := testService(t, st)
	const n = seedBatch + 37 // two batches, the second partial
	if got, err := seed(ctx, svc, n, testParams, io.Discard, false); err != nil || got != n {
		t.Fatalf("seed = %d, %v; want %d", got, err, n)
	}
	if got, err := seed(ctx, svc, n, testParams, io.Discard, false); err != nil || got != 0 {
		t.Fatalf("second seed = %d, %v; want 0", got, err)
	}
	// The password and the app code of the last account sign it in.
	id := accountID(n)
	res, err := svc.SignIn(ctx, id, BenchPassword, service.Meta{IP: "192.0.2.1"})
	if err != nil || !slices.Contains(res.SecondFactors, recourse.AuthTOTP) {
		t.Fatalf("sign in %s: %v, %v", id, res, err)
	}
	code, _ := credential.TOTPCode(totpSecret(id), time.Now())
	if _, err := svc.SignInTOTP(ctx, res.Token, code, service.Meta{IP: "192.0.2.1"}); err != nil {
		t.Fatalf("second factor of %s: %v", id, err)
	}
	// The fast path refuses accounts outside the bench group.
	if err := svc.CreateAccount(ctx, &recourse.Account{ID: "real", Username: "real", DisplayName: "Real", Kind: recourse.KindHuman,
		Status: recourse.StatusActive, Employment: recourse.EmploymentEmployee, IAL: 2}, service.Meta{}); err != nil {
		t.Fatal(err)
	}
	hash, _ := credential.HashPassword(BenchPassword, testParams)
	if err := svc.SeedBenchCredentials(ctx, []string{"real"}, service.BenchCredentials{PasswordHash: hash, TOTPSecret: totpSecret}); err == nil {
		t.Error("SeedBenchCredentials set a password outside the bench group")
	}
}

// openTestDatabase prepares a fresh database on the backend dsn names
// (SQLite when empty) and opens its store; both go when the test ends.
func openTestDatabase(t *testing.T, dsn string) (*database, recourse.Store) {
	t.Helper()
	db, err := freshDatabase(t.Context(), t.TempDir(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.drop(context.Background()) })
	st, err := db.openStore(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return db, st
}

// testDatabases are the backends a test runs on: SQLite always,
// PostgreSQL when RECOURSE_TEST_POSTGRES_DSN is set (required in CI).
func testDatabases(t *testing.T) map[string]string {
	t.Helper()
	dbs := map[string]string{"sqlite": ""}
	if dsn := os.Getenv("RECOURSE_TEST_POSTGRES_DSN"); dsn != "" {
		dbs["postgres"] = dsn
	} else if os.Getenv("CI") == "true" {
		t.Fatal("CI=true but RECOURSE_TEST_POSTGRES_DSN is not set")
	}
	return dbs
}

// TestFillAuditLog fills the audit log on top of the account seeding's
// events, checks it verifies with the one key, and that filling again
// only tops up.
func TestFillAuditLog(t *testing.T) {
	for name, dsn := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			_, st := openTestDatabase(t, dsn)
			svc := testService(t, st)
			const accounts = 40
			if _, err := seed(ctx, svc, accounts, testParams, io.Discard, false); err != nil {
				t.Fatal(err)
			}
			seeding, err := st.AuditBacklog(ctx)
			if err != nil || seeding == 0 {
				t.Fatalf("the account seeding left %d unsequenced events, %v; want some", seeding, err)
			}
			skey, vkey, err := audit.GenerateKey("bench.localhost/audit")
			if err != nil {
				t.Fatal(err)
			}
			signer, _ := audit.NewSigner(skey)
			verifier, _ := audit.NewVerifier(vkey)
			verify := func(want int64) {
				t.Helper()
				rep, err := audit.Verify(ctx, st, audit.VerifyOptions{Verifier: verifier, TreeHashes: true})
				if err != nil {
					t.Fatalf("verify: %v", err)
				}
				if rep.Size != want || rep.Unsequenced != 0 {
					t.Fatalf("verify: %d events signed, %d unsequenced; want %d and 0", rep.Size, rep.Unsequenced, want)
				}
			}

			const want = 3000
			f, err := fillAuditLog(ctx, st, signer, want, accounts, 2, io.Discard, false)
			if err != nil {
				t.Fatal(err)
			}
			if f.Before != seeding || f.Appended != want-seeding || f.Sequenced != want || f.Size != want {
				t.Fatalf("fill = %+v; want %d before, %d appended, all %d signed", f, seeding, want-seeding, want)
			}
			verify(want)

			// The events look like the service's: bench subjects, typical sizes.
			evs, err := st.ListAuditEvents(ctx, recourse.AuditFilter{FromSeq: seeding, Limit: 100})
			if err != nil || len(evs) != 100 {
				t.Fatalf("list: %d events, %v", len(evs), err)
			}
			actions, total := map[string]int{}, 0
			for _, e := range evs {
				i, err := strconv.Atoi(strings.TrimPrefix(e.SubjectID, "bench"))
				if err != nil || i < 1 || i > accounts || e.Actor.AccountID != e.SubjectID {
					t.Errorf("event %s: subject %q, actor %q; want a bench account acting on itself", e.ID, e.SubjectID, e.Actor.AccountID)
				}
				e.Seq = nil
				data, _ := e.MarshalCanonical()
				total += len(data)
				actions[e.Action]++
			}
			if avg := total / len(evs); avg < 450 || avg > 700 {
				t.Errorf("events average %d bytes encoded, want about 570", avg)
			}
			if actions[recourse.ActionSignInPassword] == 0 || actions[recourse.ActionRecoveryStart] == 0 {
				t.Errorf("actions %v: want sign-ins and recoveries", actions)
			}

			// Filling again appends nothing; a larger target tops up.
			if f, err := fillAuditLog(ctx, st, signer, want, accounts, 2, io.Discard, false); err != nil || f.Appended != 0 || f.Sequenced != 0 {
				t.Fatalf("second fill = %+v, %v; want nothing done", f, err)
			}
			if f, err := fillAuditLog(ctx, st, signer, want+500, accounts, 2, io.Discard, false); err != nil || f.Appended != 500 || f.Size != want+500 {
				t.Fatalf("top-up = %+v, %v; want 500 appended", f, err)
			}
			verify(want + 500)
		})
	}
}

// TestMailboxCode checks the shared poller on both backends: each waiter
// gets the code of its own request, mail from before its start is not
// taken, a message committed after a newer one is still found, and the
// waiting clients share their looks.
func TestMailboxCode(t *testing.T) {
	for name, dsn := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			db, st := openTestDatabase(t, dsn)
			sqlDB, err := db.openSQL()
			if err != nil {
				t.Fatal(err)
			}
			defer sqlDB.Close()
			mb := &mailbox{db: sqlDB, kind: db.kind}
			now := time.Now().UTC().Truncate(time.Millisecond)
			mail := func(account, code, request string, at time.Time) {
				t.Helper()
				if err := st.AddOutboxMessage(ctx, &recourse.OutboxMessage{AccountID: account, To: account + "@x", Subject: "Your recovery code",
					Body: "Your Recourse recovery code is " + code + ".\nReference: " + request + "\n", CreatedAt: at}); err != nil {
					t.Fatal(err)
				}
			}
			mail("a", "111111", "rr_old", now.Add(-time.Minute))
			mail("a", "222222", "rr_new", now)
			mail("b", "333333", "rr_new", now)
			mail("c", "444444", "rr_c", now.Add(time.Second))

			type result struct {
				code string
				err  error
			}
			wait := func(ctx context.Context, account, request string, since time.Time, timeout time.Duration) <-chan result {
				ch := make(chan result, 1)
				go func() {
					c, err := mb.waitCode(ctx, account, request, since, timeout)
					ch <- result{c, err}
				}()
				return ch
			}
			// Several clients at once: each gets its own request's code.
			a, b, c := wait(ctx, "a", "rr_new", now, 5*time.Second), wait(ctx, "b", "rr_new", now, 5*time.Second), wait(ctx, "c", "rr_c", now, 5*time.Second)
			for _, w := range []struct {
				ch   <-chan result
				want string
			}{{a, "222222"}, {b, "333333"}, {c, "444444"}} {
				if r := <-w.ch; r.code != w.want || r.err != nil {
					t.Errorf("code = %q, %v; want %s", r.code, r.err, w.want)
				}
			}

			// Mail from before the request started is not searched.
			if _, err := mb.waitCode(ctx, "a", "rr_old", now.Add(-time.Second), 100*time.Millisecond); err == nil {
				t.Error("found a code mailed before the request started")
			}

			// A message created before one already seen, but committed
			// after it, is found: every look reads from the waiter's start.
			late := wait(ctx, "d", "rr_late", now, 5*time.Second)
			mail("d", "555555", "rr_newer", now.Add(2*time.Second))
			time.Sleep(5 * pollEvery)
			mail("d", "666666", "rr_late", now.Add(time.Second))
			if r := <-late; r.code != "666666" || r.err != nil {
				t.Errorf("late-committed code = %q, %v; want 666666", r.code, r.err)
			}

			// One look serves every waiter, each from its own start: e's
			// mail is older than f's start and is not f's.
			mail("e", "777777", "rr_e", now)
			mail("f", "888888", "rr_f", now.Add(-time.Minute))
			we := &mailWaiter{account: "e", request: "rr_e", since: now.Add(-time.Second), got: make(chan string, 1)}
			wf := &mailWaiter{account: "f", request: "rr_f", since: now.Add(-time.Second), got: make(chan string, 1)}
			waiting, err := mb.look(ctx, []*mailWaiter{we, wf})
			if err != nil || len(waiting) != 1 || waiting[0] != wf {
				t.Errorf("look = %d waiting, %v; want f still waiting", len(waiting), err)
			}
			if c := <-we.got; c != "777777" {
				t.Errorf("e's code = %q", c)
			}

			// A waiter gives up at its context's end.
			ctx2, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			if _, err := mb.waitCode(ctx2, "a", "rr_none", now, time.Minute); err == nil {
				t.Error("a code for a request never mailed")
			}
		})
	}
}

// TestMailboxReportsFailedLooks: a waiter that times out while the
// mailbox cannot be read is told why, not only that no code came.
func TestMailboxReportsFailedLooks(t *testing.T) {
	db, _ := openTestDatabase(t, "")
	sqlDB, err := db.openSQL()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.Close()
	mb := &mailbox{db: sqlDB, kind: db.kind}
	_, err = mb.waitCode(t.Context(), "a", "rr_x", time.Now(), 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "the last look at the mailbox failed") {
		t.Errorf("waitCode over a closed database = %v; want the look's failure", err)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {95, 95 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}} {
		if got := percentile(d, c.p); got != c.want {
			t.Errorf("p%g = %s, want %s", c.p, got, c.want)
		}
	}
	if percentile(nil, 50) != 0 {
		t.Error("percentile of nothing")
	}
	if got := thousands(1234567); got != "1,234,567" {
		t.Errorf("thousands = %q", got)
	}
}

func TestOptions(t *testing.T) {
	o := DefaultOptions()
	o.Launcher = noLauncher{}
	if err := o.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for name, edit := range map[string]func(*Options){
		"unknown scenario": func(o *Options) { o.Scenarios = []string{"signin,nope"} },
		"too few accounts": func(o *Options) { o.Accounts = 100 },
		"mysql":            func(o *Options) { o.Database = "mysql://x" },
		"no launcher":      func(o *Options) { o.Launcher = nil },
		"negative audit":   func(o *Options) { o.AuditEvents = -1 },
		"too large audit":  func(o *Options) { o.AuditEvents = MaxAuditEvents + 1 },
		"audit with url":   func(o *Options) { o.AuditEvents = 1000; o.URL = "http://127.0.0.1:8080" },
	} {
		o := DefaultOptions()
		o.Launcher = noLauncher{}
		edit(&o)
		if err := o.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	o.AuditEvents = 10_000_000
	if err := o.Validate(); err != nil {
		t.Errorf("10 million audit events: %v", err)
	}
	if s, err := expandScenarios([]string{"all"}); err != nil || len(s) != len(Scenarios) {
		t.Errorf("all = %v, %v", s, err)
	}
}

type noLauncher struct{}

func (noLauncher) Launch(context.Context, []string, []string, io.Writer) (*Server, error) {
	return nil, nil
}

func TestConnURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"},
		{"postgres://postgres@127.0.0.1:5432/test?sslmode=disable&pool_max_conns=8", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"},
		{"postgres://u:p%40ss@h/db?pool_min_conns=2&pool_max_conns=8&search_path=s", "postgres://u:p%40ss@h/db?search_path=s"},
		{"postgres://h/db?pool_max_conns=8", "postgres://h/db"},
	} {
		if got := connURL(tc.in); got != tc.want {
			t.Errorf("connURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestStartsRun(t *testing.T) {
	for _, c := range []struct {
		answered, waiting0, waiting1 int64
		secs, want                   float64
	}{
		{1000, 0, 0, 10, 100},     // every job ran
		{1000, 0, 400, 10, 60},    // 400 left waiting
		{1000, 300, 100, 10, 120}, // the window also ran 200 of the warm-up's
		{1000, 0, 5000, 10, 0},    // never below zero
		{1000, 0, 0, 0, 0},        // no window
	} {
		if got := startsRun(c.answered, c.waiting0, c.waiting1, c.secs); got != c.want {
			t.Errorf("startsRun(%d, %d, %d, %v) = %v, want %v", c.answered, c.waiting0, c.waiting1, c.secs, got, c.want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"serve", "serve"},
		{"/tmp/recourse-bench-1/server.yaml", "/tmp/recourse-bench-1/server.yaml"},
		{"127.0.0.1:0", "127.0.0.1:0"},
		{"postgres://u@h:5432/test?search_path=b&sslmode=disable", "'postgres://u@h:5432/test?search_path=b&sslmode=disable'"},
		{"it's", `'it'\''s'`},
		{"", "''"},
	}
	for _, tt := range tests {
		if got := shellQuote(tt.in); got != tt.want {
			t.Errorf("shellQuote(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestShownCommand(t *testing.T) {
	got := shownCommand([]string{"serve", "--database", "postgres://bench:s3cret@127.0.0.1:5432/test?search_path=b&sslmode=disable", "--listen", "127.0.0.1:0"})
	want := "serve --database 'postgres://bench:xxxxx@127.0.0.1:5432/test?search_path=b&sslmode=disable' --listen 127.0.0.1:0"
	if got != want || strings.Contains(got, "s3cret") {
		t.Fatalf("shownCommand = %s\nwant %s", got, want)
	}
	if got := shownCommand([]string{"--database", "postgres://postgres@127.0.0.1/test"}); got != "--database postgres://postgres@127.0.0.1/test" {
		t.Fatalf("a URL without a password = %s", got)
	}
}
