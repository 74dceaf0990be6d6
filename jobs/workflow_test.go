package jobs_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/jackc/pgx/v5/pgxpool"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/jobs"
	"github.com/recourse/recourse/policy"
	"github.com/recourse/recourse/service"
	"github.com/recourse/recourse/store/postgres"
	"github.com/recourse/recourse/store/sqlite"
	"github.com/recourse/recourse/store/storetest"
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

// world is a running Recourse core: a real store, River and the service.
type world struct {
	t       *testing.T
	store   recourse.Store
	svc     *service.Service
	queue   *jobs.Queue
	clock   *clock
	secrets map[string]string
	events  <-chan *river.Event
	// reopen opens a second store on the same database: another replica.
	reopen func() recourse.Store
}

// backends runs fn on SQLite, and on PostgreSQL when
// RECOURSE_TEST_POSTGRES_DSN is set (required under CI=true).
func backends(t *testing.T, fn func(t *testing.T, w *world)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, newWorld(t, "sqlite")) })
	t.Run("postgres", func(t *testing.T) { fn(t, newWorld(t, "postgres")) })
}

func pgDSN(t *testing.T) string { return storetest.PostgresDSN(t) }

func newWorld(t *testing.T, backend string) *world {
	t.Helper()
	ctx := t.Context()
	var st recourse.Store
	var db *sql.DB
	var reopen func() recourse.Store
	var listener *pgxpool.Pool // River's LISTEN connection, as serve sets it
	switch backend {
	case "sqlite":
		path := filepath.Join(t.TempDir(), "w.db")
		s, err := sqlite.Open(ctx, path, sqlite.Options{Migrate: true})
		if err != nil {
			t.Fatal(err)
		}
		st, db = s, s.DB()
		reopen = func() recourse.Store {
			s, err := sqlite.Open(ctx, path, sqlite.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
	case "postgres":
		dsn := pgDSN(t)
		s, err := postgres.Open(ctx, dsn, postgres.Options{Migrate: true})
		if err != nil {
			t.Fatal(err)
		}
		st, db, listener = s, s.DB(), s.Pool
		reopen = func() recourse.Store {
			s, err := postgres.Open(ctx, dsn, postgres.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
	}
	if err := jobs.Migrate(ctx, db, backend, nil); err != nil {
		t.Fatal(err)
	}
	q, err := jobs.New(db, backend, nil, jobs.Options{PollInterval: 20 * time.Millisecond, Listener: listener})
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Now().UTC().Truncate(time.Second)}
	cfg := service.DefaultConfig()
	cfg.PasswordParams = credential.PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32, SaltLen: 16}
	cfg.PublicURL = "https://recourse.example.com"
	cfg.SignInRatePerMinute, cfg.SignInBurst = 6000, 1000
	svc, err := service.New(service.Options{Store: st, Clock: c, Config: cfg, Keys: service.Keys{Master: []byte(strings.Repeat("w", 32))}, Scheduler: q})
	if err != nil {
		t.Fatal(err)
	}
	users, err := svc.SeedDemo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, store: st, svc: svc, queue: q, clock: c, secrets: map[string]string{}, reopen: reopen}
	for _, u := range users {
		w.secrets[u.Username] = u.TOTPSecret
	}
	events, cancel := q.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	w.events = events
	runCtx, stop := context.WithCancel(context.Background())
	if err := q.Start(runCtx, svc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, c2 := context.WithTimeout(context.Background(), 10*time.Second)
		defer c2()
		_ = q.Stop(sctx)
		stop()
		cancel()
		st.Close()
	})
	return w
}

func meta() service.Meta {
	return service.Meta{IP: "192.0.2.10", UserAgent: "test browser", Channel: recourse.ViaWeb}
}

// start answers "Can't sign in?" and waits for its job.
func (w *world) start(identifier, lost string) *service.RecoveryStart {
	w.t.Helper()
	rs, err := w.svc.StartRecovery(w.t.Context(), identifier, lost, meta())
	if err != nil {
		w.t.Fatalf("StartRecovery: %v", err)
	}
	w.waitJob("recovery_start")
	return rs
}

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

var reCode = regexp.MustCompile(`recovery code is (\d{6})\.`)

// code returns the newest recovery code sent to an address.
func (w *world) code(to string) string {
	w.t.Helper()
	msgs, err := w.store.OutboxMessages(w.t.Context(), 500)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, m := range msgs {
		if m.To == to {
			if c := reCode.FindStringSubmatch(m.Body); c != nil {
				return c[1]
			}
		}
	}
	w.t.Fatalf("no recovery code sent to %s", to)
	return ""
}

// mail returns the newest message to an address whose subject contains s.
func (w *world) mail(to, subject string) *recourse.OutboxMessage {
	w.t.Helper()
	msgs, _ := w.store.OutboxMessages(w.t.Context(), 1000)
	for _, m := range msgs {
		if m.To == to && strings.Contains(m.Subject, subject) {
			return m
		}
	}
	return nil
}

func (w *world) totp(username string) string {
	w.t.Helper()
	w.clock.Add(30 * time.Second) // a fresh step: codes are single use
	c, err := credential.TOTPCode(w.secrets[username], w.clock.Now())
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

// signIn signs a demo person in with password and TOTP.
func (w *world) signIn(username string) (*service.Principal, string) {
	w.t.Helper()
	ctx := w.t.Context()
	res, err := w.svc.SignIn(ctx, username, service.DemoPassword, meta())
	if err != nil {
		w.t.Fatalf("SignIn(%s): %v", username, err)
	}
	done, err := w.svc.SignInTOTP(ctx, res.Token, w.totp(username), meta())
	if err != nil {
		w.t.Fatalf("SignInTOTP(%s): %v", username, err)
	}
	p, err := w.svc.Authenticate(ctx, done.Token)
	if err != nil {
		w.t.Fatal(err)
	}
	return p, done.Token
}

func (w *world) status(rs *service.RecoveryStart) *service.RecoveryView {
	w.t.Helper()
	v, err := w.svc.RecoveryStatus(w.t.Context(), rs.RequestID, rs.BrowserSecret)
	if err != nil {
		w.t.Fatal(err)
	}
	return v
}

// sameStatus checks the status a submission answered against the one
// RecoveryStatus reads afresh: they must be the same.
func (w *world) sameStatus(rs *service.RecoveryStart, v *service.RecoveryView, err error) *service.RecoveryView {
	w.t.Helper()
	if err != nil {
		w.t.Fatal(err)
	}
	read := w.status(rs)
	same := func(a, b *time.Time) bool { return (a == nil) == (b == nil) && (a == nil || a.Equal(*b)) }
	if !v.ExpiresAt.Equal(read.ExpiresAt) || !same(v.CoolingUntil, read.CoolingUntil) {
		w.t.Fatalf("submission answered expiry %v, cooling-off %v; status reads %v, %v", v.ExpiresAt, v.CoolingUntil, read.ExpiresAt, read.CoolingUntil)
	}
	a, b := *v, *read
	a.ExpiresAt, a.CoolingUntil, b.ExpiresAt, b.CoolingUntil = time.Time{}, nil, time.Time{}, nil
	if !reflect.DeepEqual(a, b) {
		w.t.Fatalf("submission answered %+v; status reads %+v", a, b)
	}
	return v
}

func (w *world) wantState(rs *service.RecoveryStart, want recourse.RecoveryState) {
	w.t.Helper()
	if v := w.status(rs); v.State != want {
		w.t.Fatalf("state = %s, want %s (missing: %v)", v.State, want, v.Missing)
	}
}

func (w *world) complete(rs *service.RecoveryStart, newPassword string) *service.SignIn {
	w.t.Helper()
	ctx := w.t.Context()
	tok, err := w.svc.ContinueRecovery(ctx, rs.RequestID, rs.BrowserSecret, meta())
	if err != nil {
		w.t.Fatalf("ContinueRecovery: %v", err)
	}
	done, err := w.svc.CompleteRecovery(ctx, rs.RequestID, rs.BrowserSecret, tok, service.Completion{NewPassword: newPassword}, meta())
	if err != nil {
		w.t.Fatalf("CompleteRecovery: %v", err)
	}
	if done.SignIn == nil || done.AccessPass != "" {
		w.t.Fatalf("CompleteRecovery without a pass asked gave %+v, want a session", done)
	}
	return done.SignIn
}

// readyByCodeAndApp starts a recovery for username, proves it with the
// mailed code and the authenticator app (enough under the built-in policy
// for a password or a security key lost while the app is held), and
// returns the ready request with its completion token.
func (w *world) readyByCodeAndApp(username, lost string) (*service.RecoveryStart, string) {
	w.t.Helper()
	ctx := w.t.Context()
	rs := w.start(username, lost)
	v, err := w.svc.SubmitChallengeCode(ctx, rs.RequestID, rs.BrowserSecret, w.code(username+"@example.com"), meta())
	w.sameStatus(rs, v, err)
	v, err = w.svc.SubmitTOTP(ctx, rs.RequestID, rs.BrowserSecret, w.totp(username), meta())
	if w.sameStatus(rs, v, err); v.State != recourse.RecoveryReady || !v.CanContinue {
		w.t.Fatalf("after the code and the app: %+v, want ready", v)
	}
	tok, err := w.svc.ContinueRecovery(ctx, rs.RequestID, rs.BrowserSecret, meta())
	if err != nil {
		w.t.Fatalf("ContinueRecovery: %v", err)
	}
	return rs, tok
}

func TestForgotPasswordWithBoundTOTP(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		ctx := t.Context()
		_, oldToken := w.signIn("d.chen") // a session that must not survive the reset
		rs := w.start("d.chen", "password")
		if v := w.status(rs); v.Revealed {
			t.Fatal("the request revealed itself before any code was entered")
		}
		if _, err := w.svc.SubmitChallengeCode(ctx, rs.RequestID, rs.BrowserSecret, "000000", meta()); !errors.Is(err, errOf(recourse.EINVALID)) && recourse.ErrorCode(err) != recourse.EINVALID {
			t.Fatalf("wrong code: %v", err)
		}
		if _, err := w.svc.SubmitChallengeCode(ctx, rs.RequestID, rs.BrowserSecret, w.code("d.chen@example.com"), meta()); err != nil {
			t.Fatal(err)
		}
		v := w.status(rs)
		if !v.Revealed || v.State != recourse.RecoveryCollecting || !v.CanTOTP || len(v.Missing) == 0 {
			t.Fatalf("after the email code: %+v", v)
		}
		if _, err := w.svc.SubmitTOTP(ctx, rs.RequestID, rs.BrowserSecret, w.totp("d.chen"), meta()); err != nil {
			t.Fatal(err)
		}
		w.wantState(rs, recourse.RecoveryReady)
		if a, err := w.store.Account(ctx, "d.chen"); err != nil {
			t.Fatal(err)
		} else if a.RecoveryFailures != 1 {
			t.Fatalf("after one wrong code: %d recovery failures, want 1", a.RecoveryFailures)
		}
		// Nobody else can drive it: a wrong browser secret sees nothing.
		if _, err := w.svc.ContinueRecovery(ctx, rs.RequestID, credential.NewToken(service.BrowserSecretPrefix), meta()); err == nil {
			t.Fatal("another browser continued the request")
		}
		if _, err := w.svc.ContinueRecovery(ctx, rs.RequestID, rs.BrowserSecret, meta()); err != nil {
			t.Fatal(err)
		}
		tok, _ := w.svc.ContinueRecovery(ctx, rs.RequestID, rs.BrowserSecret, meta())
		if _, err := w.svc.CompleteRecovery(ctx, rs.RequestID, rs.BrowserSecret, tok, service.Completion{NewPassword: "password"}, meta()); recourse.ErrorCode(err) != recourse.EINVALID {
			t.Fatalf("a common password was accepted: %v", err)
		}
		done, err := w.svc.CompleteRecovery(ctx, rs.RequestID, rs.BrowserSecret, tok, service.Completion{NewPassword: "saffron-kettle-meadow-9"}, meta())
		if err != nil {
			t.Fatal(err)
		}
		if done.SignIn.Session.Restricted {
			t.Error("a password reset left a restricted session")
		}
		// The completed recovery clears the wrong code's count.
		if a, err := w.store.Account(ctx, "d.chen"); err != nil {
			t.Fatal(err)
		} else if a.RecoveryFailures != 0 {
			t.Errorf("after the completion: %d recovery failures, want 0", a.RecoveryFailures)
		}
		// The completion token works once.
		if _, err := w.svc.CompleteRecovery(ctx, rs.RequestID, rs.BrowserSecret, tok, service.Completion{NewPassword: "saffron-kettle-meadow-9"}, meta()); err == nil {
			t.Fatal("a completion token was used twice")
		}
		if _, err := w.svc.Authenticate(ctx, oldToken); err == nil {
			t.Fatal("an old session survived the recovery")
		}
		if _, err := w.svc.SignIn(ctx, "d.chen", service.DemoPassword, meta()); err == nil {
			t.Fatal("the old password still works")
		}
		if res, err := w.svc.SignIn(ctx, "d.chen", "saffron-kettle-meadow-9", meta()); err != nil || res.Complete() {
			t.Fatalf("new password: %v (TOTP must still be asked)", err)
		}
		w.wantState(rs, recourse.RecoveryCompleted)
		if w.mail("d.chen@example.com", "Your account was recovered") == nil {
			t.Error("no completion notice")
		}
	})
}

func errOf(code string) error { return recourse.Errorf(code, "") }

// toCoolingOff drives d.chen's lost-device request to cooling-off with an
// email code and the manager's approval.
func toCoolingOff(t *testing.T, w *world) *service.RecoveryStart {
	ctx := t.Context()
	rs := w.start("d.chen", "device")
	v, err := w.svc.SubmitChallengeCode(ctx, rs.RequestID, rs.BrowserSecret, w.code("d.chen@example.com"), meta())
	if w.sameStatus(rs, v, err); v.State != recourse.RecoveryAwaitingApproval {
		t.Fatalf("after the code: %s, want awaiting approval", v.State)
	}
	if w.mail("m.okafor@example.com", "Your approval is needed") == nil {
		t.Fatal("the manager was not asked")
	}
	self, _ := w.signIn("d.chen")
	if err := w.svc.Vote(ctx, self, rs.RequestID, "approve", "", meta()); recourse.ErrorCode(err) != recourse.ENOTFOUND {
		t.Fatalf("self-approval: %v, want refusal", err)
	}
	mgr, _ := w.signIn("m.okafor")
	pending, err := w.svc.PendingApprovals(ctx, mgr)
	if err != nil || len(pending) != 1 || pending[0].Request.ID != rs.RequestID || !slices.Contains(pending[0].Roles, "manager") {
		t.Fatalf("PendingApprovals = %v, %v", pending, err)
	}
	if err := w.svc.Vote(ctx, mgr, rs.RequestID, "approve", "called him", meta()); err != nil {
		t.Fatal(err)
	}
	if err := w.svc.Vote(ctx, mgr, rs.RequestID, "approve", "", meta()); err == nil {
		t.Fatal("a second vote by the same person was accepted")
	}
	v = w.status(rs)
	if v.State != recourse.RecoveryCoolingOff || v.CoolingUntil == nil || v.CoolingUntil.Sub(w.clock.Now()) != 24*time.Hour {
		t.Fatalf("after approval: %+v", v)
	}
	return rs
}

func TestLostDeviceWithManagerApprovalAndCoolingOff(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		ctx := t.Context()
		rs := toCoolingOff(t, w)
		if w.mail("d.chen@example.com", "waiting before it completes") == nil {
			t.Fatal("no cooling-off notice")
		}
		if _, err := w.svc.ContinueRecovery(ctx, rs.RequestID, rs.BrowserSecret, meta()); err == nil {
			t.Fatal("completed during the cooling-off")
		}
		w.clock.Add(24*time.Hour + time.Second)
		if err := w.svc.AdvanceRecovery(ctx, rs.RequestID); err != nil {
			t.Fatal(err)
		}
		w.wantState(rs, recourse.RecoveryReady)
		si := w.complete(rs, "")
		if !si.Session.Restricted {
			t.Fatal("a device recovery must leave a restricted session")
		}
		p, err := w.svc.Authenticate(ctx, si.Token)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.svc.AddChannel(ctx, p, recourse.ChannelEmail, "other@example.com", meta()); recourse.ErrorCode(err) != recourse.EFORBIDDEN {
			t.Fatalf("restricted session added a channel: %v", err)
		}
		if res, err := w.svc.SignIn(ctx, "d.chen", service.DemoPassword, meta()); err != nil || !res.Complete() {
			t.Fatalf("the lost authenticator app still counts: %+v %v", res, err)
		}
		enr, err := w.svc.BeginTOTP(ctx, p, "New phone", meta())
		if err != nil {
			t.Fatal(err)
		}
		code, _ := credential.TOTPCode(enr.Secret, w.clock.Now())
		if err := w.svc.ConfirmTOTP(ctx, p, enr.AuthenticatorID, code, meta()); err != nil {
			t.Fatal(err)
		}
		p, _ = w.svc.Authenticate(ctx, si.Token)
		if p.Session.Restricted {
			t.Fatal("enrolling a new authenticator did not lift the restriction")
		}
	})
}

func TestThisWasntMeDuringCoolingOff(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		ctx := t.Context()
		rs := toCoolingOff(t, w)
		m := w.mail("d.chen@example.com", "waiting before it completes")
		tok := regexp.MustCompile(`/recover/cancel\?t=(rcx_[a-z2-7]+)`).FindStringSubmatch(m.Body)
		if tok == nil {
			t.Fatalf("no cancel link in:\n%s", m.Body)
		}
		if err := w.svc.CancelByToken(ctx, tok[1], true, meta()); err != nil {
			t.Fatal(err)
		}
		w.wantState(rs, recourse.RecoveryCancelled)
		if err := w.svc.CancelByToken(ctx, tok[1], true, meta()); err == nil {
			t.Fatal("a cancel link worked twice")
		}
		if _, err := w.svc.SignIn(ctx, "d.chen", service.DemoPassword, meta()); err == nil {
			t.Fatal("a frozen account signed in")
		}
		if w.mail("s.ito@example.com", "This wasn't me") == nil {
			t.Fatal("security was not alerted")
		}
	})
}

func TestPrivilegedNeedsManagerAndSecurity(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		ctx := t.Context()
		rs := w.start("r.patel", "password")
		if _, err := w.svc.SubmitChallengeCode(ctx, rs.RequestID, rs.BrowserSecret, w.code("r.patel@example.com"), meta()); err != nil {
			t.Fatal(err)
		}
		w.wantState(rs, recourse.RecoveryAwaitingApproval)
		mgr, _ := w.signIn("e.lindqvist")
		sec, _ := w.signIn("s.ito")
		if err := w.svc.Vote(ctx, mgr, rs.RequestID, "approve", "", meta()); err != nil {
			t.Fatal(err)
		}
		w.wantState(rs, recourse.RecoveryAwaitingApproval)
		// A changed request voids the manager's vote.
		if err := w.svc.UpdateRecoveryChange(ctx, rs.RequestID, map[string]string{"note": "corrected"}, meta()); err != nil {
			t.Fatal(err)
		}
		if err := w.svc.Vote(ctx, sec, rs.RequestID, "approve", "", meta()); err != nil {
			t.Fatal(err)
		}
		if v := w.status(rs); v.State != recourse.RecoveryAwaitingApproval || v.Approvals != 1 {
			t.Fatalf("after the change: %+v (the manager's earlier vote must be void)", v)
		}
		if err := w.svc.Vote(ctx, mgr, rs.RequestID, "approve", "again", meta()); err != nil {
			t.Fatalf("re-vote on the new change: %v", err)
		}
		v := w.status(rs)
		if v.State != recourse.RecoveryCoolingOff || v.CoolingUntil.Sub(w.clock.Now()) != 72*time.Hour {
			t.Fatalf("privileged: %+v", v)
		}
	})
}

func TestApproverDenial(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		ctx := t.Context()
		rs := w.start("d.chen", "device")
		if _, err := w.svc.SubmitChallengeCode(ctx, rs.RequestID, rs.BrowserSecret, w.code("d.chen@example.com"), meta()); err != nil {
			t.Fatal(err)
		}
		mgr, _ := w.signIn("m.okafor")
		if err := w.svc.Vote(ctx, mgr, rs.RequestID, "deny", "I did not hear from him", meta()); err != nil {
			t.Fatal(err)
		}
		w.wantState(rs, recourse.RecoveryDenied)
	})
}

func TestContractors(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		ctx := t.Context()
		// Active contract: the sponsor must approve.
		rs := w.start("c.novak", "password")
		for _, to := range []string{"c.novak@example.com"} {
			if _, err := w.svc.SubmitChallengeCode(ctx, rs.RequestID, rs.BrowserSecret, w.code(to), meta()); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := w.svc.SubmitTOTP(ctx, rs.RequestID, rs.BrowserSecret, w.totp("c.novak"), meta()); err != nil {
			t.Fatal(err)
		}
		w.wantState(rs, recourse.RecoveryAwaitingApproval)
		sponsor, _ := w.signIn("m.okafor")
		if err := w.svc.Vote(ctx, sponsor, rs.RequestID, "approve", "", meta()); err != nil {
			t.Fatal(err)
		}
		w.wantState(rs, recourse.RecoveryReady)

		// Past the contract end: refused, and told only on their own channel.
		a, _ := w.store.Account(ctx, "c.novak")
		ended := w.clock.Now().Add(-time.Hour)
		a.ContractEnd = &ended
		if _, err := w.svc.ImportAccounts(ctx, []*recourse.Account{a}, meta()); err != nil {
			t.Fatal(err)
		}
		rs2 := w.start("c.novak", "password")
		if v := w.status(rs2); v.Revealed {
			t.Fatal("a denied request revealed itself to the browser")
		}
		list, _ := w.store.Recoveries(ctx, "c.novak", false)
		if list[0].State != recourse.RecoveryDenied || !strings.Contains(list[0].Outcome, "contract") {
			t.Fatalf("ended contract: %+v", list[0])
		}
		if w.mail("c.novak@example.com", "cannot be recovered") == nil {
			t.Fatal("the refusal was not sent to the holder")
		}
	})
}

func TestHelpdeskInitiatedRecovery(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		ctx := t.Context()
		agent, _ := w.signIn("h.berg")
		ok, err := w.svc.VerifyCaller(ctx, agent, "d.chen", w.totp("d.chen"), meta())
		if err != nil || !ok {
			t.Fatalf("VerifyCaller = %v, %v", ok, err)
		}
		if ok, _ := w.svc.VerifyCaller(ctx, agent, "d.chen", "123456", meta()); ok {
			t.Fatal("a wrong code verified the caller")
		}
		nobody, _ := w.signIn("a.silva")
		if _, err := w.svc.OpenOnBehalf(ctx, nobody, "d.chen", "password.reset", "forgot_password", "", nil, meta()); recourse.ErrorCode(err) != recourse.EFORBIDDEN {
			t.Fatalf("a non-agent opened a request: %v", err)
		}
		r, err := w.svc.OpenOnBehalf(ctx, agent, "d.chen", "password.reset", "forgot_password", "caller on the phone", []string{"caller_verified_totp"}, meta())
		if err != nil {
			t.Fatal(err)
		}
		if r.Initiator != "help_desk" || r.InitiatorID != "h.berg" || r.State != recourse.RecoveryCollecting {
			t.Fatalf("request = %+v (an attestation alone must not move it)", r)
		}
		// The caller claims it in their own browser with a code from their email.
		rs, err := w.svc.ClaimRecovery(ctx, r.ID, w.code("d.chen@example.com"), meta())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.svc.ClaimRecovery(ctx, r.ID, w.code("d.chen@example.com"), meta()); err == nil {
			t.Fatal("a request was claimed twice")
		}
		if _, err := w.svc.SubmitTOTP(ctx, rs.RequestID, rs.BrowserSecret, w.totp("d.chen"), meta()); err != nil {
			t.Fatal(err)
		}
		w.wantState(rs, recourse.RecoveryReady)
		if err := w.svc.Vote(ctx, agent, rs.RequestID, "approve", "", meta()); err == nil {
			t.Fatal("the initiating agent voted")
		}
		w.complete(rs, "saffron-kettle-meadow-9")
	})
}

func TestStartIsEnumerationSafe(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		ctx := t.Context()
		before, _ := w.store.OutboxMessages(ctx, 1000)
		unknown := w.start("no.such.person", "password")
		known := w.start("a.silva", "password")
		if len(unknown.RequestID) != len(known.RequestID) || len(unknown.BrowserSecret) != len(known.BrowserSecret) {
			t.Fatal("the answers differ in shape")
		}
		vu, vk := w.status(unknown), w.status(known)
		vu.ID, vk.ID = "", ""
		if fmt.Sprint(vu) != fmt.Sprint(vk) {
			t.Fatalf("status differs before any code:\nunknown %+v\nknown   %+v", vu, vk)
		}
		if _, err := w.svc.SubmitChallengeCode(ctx, unknown.RequestID, unknown.BrowserSecret, "123456", meta()); recourse.ErrorCode(err) != recourse.EINVALID {
			t.Fatalf("code for an unknown identifier: %v", err)
		}
		after, _ := w.store.OutboxMessages(ctx, 1000)
		for _, m := range after[:len(after)-len(before)] {
			if !strings.HasPrefix(m.To, "a.silva") && m.To != "+15550100001" {
				t.Errorf("an unknown identifier caused mail to %s", m.To)
			}
		}
		if _, err := w.store.Recovery(ctx, unknown.RequestID); !errors.Is(err, recourse.ErrNotFound) {
			t.Fatal("an unknown identifier created a request")
		}
	})
}

func TestRoutinePasswordChange(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		ctx := t.Context()
		p, _ := w.signIn("a.silva")
		_, other := w.signIn("a.silva")
		if err := w.svc.ChangePassword(ctx, p, "wrong", "saffron-kettle-meadow-9", meta()); recourse.ErrorCode(err) != recourse.EINVALID {
			t.Fatalf("wrong current password: %v", err)
		}
		if err := w.svc.ChangePassword(ctx, p, service.DemoPassword, "saffron-kettle-meadow-9", meta()); err != nil {
			t.Fatal(err)
		}
		if _, err := w.svc.Authenticate(ctx, other); err == nil {
			t.Fatal("the other session survived a password change")
		}
		list, _ := w.store.Recoveries(ctx, "a.silva", false)
		if len(list) != 1 || list[0].Action != "password.change" || list[0].State != recourse.RecoveryCompleted || list[0].Tier != "routine" {
			t.Fatalf("routine request record = %+v", list)
		}
		w.clock.Add(16 * time.Minute)
		p, _ = w.svc.Authenticate(ctx, mustToken(t, w, "a.silva", "saffron-kettle-meadow-9"))
		w.clock.Add(16 * time.Minute)
		if err := w.svc.ChangePassword(ctx, p, "saffron-kettle-meadow-9", "orchid-lantern-basin-4", meta()); recourse.ErrorCode(err) != recourse.ESTEPUP {
			t.Fatalf("stale session: %v, want step-up", err)
		}
	})
}

func mustToken(t *testing.T, w *world, username, password string) string {
	t.Helper()
	res, err := w.svc.SignIn(t.Context(), username, password, meta())
	if err != nil {
		t.Fatal(err)
	}
	done, err := w.svc.SignInTOTP(t.Context(), res.Token, w.totp(username), meta())
	if err != nil {
		t.Fatal(err)
	}
	return done.Token
}

// replica returns a second service over its own store on the same database,
// with the same keys and clock: another instance of Recourse.
func (w *world) replica() *service.Service {
	w.t.Helper()
	cfg := w.svc.Config()
	svc, err := service.New(service.Options{Store: w.reopen(), Clock: w.clock, Config: cfg, Keys: service.Keys{Master: []byte(strings.Repeat("w", 32))}, Scheduler: w.queue})
	if err != nil {
		w.t.Fatal(err)
	}
	return svc
}

// TestCompletionRaceAcrossInstances redeems one completion token 200 times
// at once through two instances: exactly one completes.
func TestCompletionRaceAcrossInstances(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		ctx := t.Context()
		rs := w.start("d.chen", "password")
		if _, err := w.svc.SubmitChallengeCode(ctx, rs.RequestID, rs.BrowserSecret, w.code("d.chen@example.com"), meta()); err != nil {
			t.Fatal(err)
		}
		if _, err := w.svc.SubmitTOTP(ctx, rs.RequestID, rs.BrowserSecret, w.totp("d.chen"), meta()); err != nil {
			t.Fatal(err)
		}
		tok, err := w.svc.ContinueRecovery(ctx, rs.RequestID, rs.BrowserSecret, meta())
		if err != nil {
			t.Fatal(err)
		}
		instances := []*service.Service{w.svc, w.replica()}
		const racers = 200
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for i := range racers {
			svc := instances[i%2]
			wg.Go(func() {
				_, err := svc.CompleteRecovery(ctx, rs.RequestID, rs.BrowserSecret, tok, service.Completion{NewPassword: "saffron-kettle-meadow-9"}, meta())
				if err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				} else if recourse.ErrorCode(err) == recourse.EINTERNAL {
					t.Errorf("internal error under the race: %v", err)
				}
			})
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d of %d racing completions succeeded, want exactly 1", wins, racers)
		}
		// Exactly one completion notice.
		msgs, _ := w.store.OutboxMessages(ctx, 1000)
		n := 0
		for _, m := range msgs {
			if m.To == "d.chen@example.com" && strings.Contains(m.Subject, "Your account was recovered") {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d completion notices, want 1", n)
		}
	})
}

func TestResendCodes(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		ctx := t.Context()
		rs := w.start("d.chen", "password")
		first := w.code("d.chen@example.com")
		w.clock.Add(time.Minute)
		if err := w.svc.ResendRecoveryCodes(ctx, rs.RequestID, rs.BrowserSecret, meta()); err != nil {
			t.Fatal(err)
		}
		second := w.code("d.chen@example.com")
		for _, c := range []string{first, second} {
			if c == "" {
				t.Fatal("no code")
			}
		}
		// Unknown requests get the same answer and nothing is sent.
		if err := w.svc.ResendRecoveryCodes(ctx, "rr_unknown", credential.NewToken(service.BrowserSecretPrefix), meta()); err != nil {
			t.Fatalf("resend for an unknown request: %v", err)
		}
		// Resends are bounded: after the limit nothing more is sent.
		for range 10 {
			_ = w.svc.ResendRecoveryCodes(ctx, rs.RequestID, rs.BrowserSecret, meta())
		}
		cs, _ := w.store.Challenges(ctx, rs.RequestID)
		if len(cs) > 8 {
			t.Fatalf("%d codes sent for one request, want at most 8", len(cs))
		}
		if _, err := w.svc.SubmitChallengeCode(ctx, rs.RequestID, rs.BrowserSecret, w.code("d.chen@example.com"), meta()); err != nil {
			t.Fatalf("the newest code: %v", err)
		}
	})
}

func TestTemporaryAccessPass(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		ctx := t.Context()
		p, _ := w.signIn("a.silva")
		pass, expires, err := w.svc.IssueAccessPass(ctx, p, meta())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(pass, service.AccessPassPrefix) || expires.Sub(w.clock.Now()) != time.Hour {
			t.Fatalf("pass %q expires %v", pass, expires)
		}
		// A second pass replaces the first.
		pass2, _, err := w.svc.IssueAccessPass(ctx, p, meta())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.svc.SignInAccessPass(ctx, "a.silva", pass, meta()); recourse.ErrorCode(err) != recourse.EUNAUTHORIZED {
			t.Fatalf("a replaced pass signed in: %v", err)
		}
		if _, err := w.svc.SignInAccessPass(ctx, "d.chen", pass2, meta()); recourse.ErrorCode(err) != recourse.EUNAUTHORIZED {
			t.Fatalf("another account's pass signed in: %v", err)
		}
		si, err := w.svc.SignInAccessPass(ctx, "a.silva", pass2, meta())
		if err != nil {
			t.Fatal(err)
		}
		if !si.Session.Restricted {
			t.Fatal("an access-pass session must be restricted to enrolment")
		}
		if _, err := w.svc.SignInAccessPass(ctx, "a.silva", pass2, meta()); err == nil {
			t.Fatal("an access pass worked twice")
		}
		// A privileged person (the agent holds a Recourse role) needs a
		// security approval for a pass, which a session alone cannot give.
		agent, _ := w.signIn("h.berg")
		if _, _, err := w.svc.IssueAccessPass(ctx, agent, meta()); recourse.ErrorCode(err) != recourse.EFORBIDDEN {
			t.Fatalf("privileged access pass without approval: %v", err)
		}
	})
}

// passLifetime is how long a pass issued at the completion of the request
// must live: the requirement's token lifetime, at most a day, else an hour.
func passLifetime(t *testing.T, w *world, requestID string) time.Duration {
	t.Helper()
	r, err := w.store.Recovery(t.Context(), requestID)
	if err != nil {
		t.Fatal(err)
	}
	var req policy.Requirement
	if err := json.Unmarshal(r.Requirement, &req); err != nil {
		t.Fatal(err)
	}
	if req.Lifetimes.Token <= 0 {
		return time.Hour
	}
	return min(req.Lifetimes.Token, 24*time.Hour)
}

// TestLostDeviceCompletedWithAccessPass completes a lost-device recovery
// with a temporary access pass instead of a session: nothing of the old
// account state survives (sessions, an earlier pass), no session is made,
// and the new pass signs in once, restricted, within its lifetime only.
func TestLostDeviceCompletedWithAccessPass(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		ctx := t.Context()
		rs := toCoolingOff(t, w)
		w.clock.Add(24*time.Hour + time.Second)
		if err := w.svc.AdvanceRecovery(ctx, rs.RequestID); err != nil {
			t.Fatal(err)
		}
		w.wantState(rs, recourse.RecoveryReady)
		// Live when the recovery completes: a session, and a pass issued
		// from it (the attacker's, say).
		p, oldToken := w.signIn("d.chen")
		early, _, err := w.svc.IssueAccessPass(ctx, p, meta())
		if err != nil {
			t.Fatal(err)
		}
		_, mgrToken := w.signIn("m.okafor")

		tok, err := w.svc.ContinueRecovery(ctx, rs.RequestID, rs.BrowserSecret, meta())
		if err != nil {
			t.Fatal(err)
		}
		done, err := w.svc.CompleteRecovery(ctx, rs.RequestID, rs.BrowserSecret, tok, service.Completion{AccessPass: true}, meta())
		if err != nil {
			t.Fatal(err)
		}
		lifetime := passLifetime(t, w, rs.RequestID)
		if done.SignIn != nil {
			t.Fatalf("a session came with the access pass: %+v", done.SignIn)
		}
		if !strings.HasPrefix(done.AccessPass, service.AccessPassPrefix) || !done.AccessPassExpires.Equal(w.clock.Now().Add(lifetime)) {
			t.Fatalf("pass %q expires %v, want %v after now", done.AccessPass, done.AccessPassExpires, lifetime)
		}
		pass, expires := done.AccessPass, done.AccessPassExpires
		w.wantState(rs, recourse.RecoveryCompleted)
		if _, err := w.svc.CompleteRecovery(ctx, rs.RequestID, rs.BrowserSecret, tok, service.Completion{AccessPass: true}, meta()); err == nil {
			t.Fatal("a completion token was used twice")
		}

		// No session of the account is left, none was made, and the
		// manager's own is untouched.
		if list, err := w.store.Sessions(ctx, "d.chen", w.clock.Now()); err != nil || len(list) != 0 {
			t.Fatalf("sessions of d.chen after the completion: %d, %v", len(list), err)
		}
		if _, err := w.svc.Authenticate(ctx, oldToken); err == nil {
			t.Fatal("an old session survived the recovery")
		}
		if _, err := w.svc.Authenticate(ctx, mgrToken); err != nil {
			t.Fatalf("another account's session ended: %v", err)
		}
		if _, err := w.svc.SignInAccessPass(ctx, "d.chen", early, meta()); recourse.ErrorCode(err) != recourse.EUNAUTHORIZED {
			t.Fatalf("a pass issued before the recovery signed in: %v", err)
		}
		// The lost authenticator app is gone: the password alone signs in.
		if res, err := w.svc.SignIn(ctx, "d.chen", service.DemoPassword, meta()); err != nil || !res.Complete() {
			t.Fatalf("the lost authenticator app still counts: %+v %v", res, err)
		}

		// Every channel hears of the pass and until when, never the pass.
		until := expires.UTC().Format("2006-01-02 15:04 UTC")
		for _, to := range []string{"d.chen@example.com", "+15550100001"} {
			m := w.mail(to, "Your account was recovered")
			if m == nil || !strings.Contains(m.Body, "temporary access pass was issued") || !strings.Contains(m.Body, until) {
				t.Errorf("notice to %s: %+v", to, m)
			}
		}
		msgs, _ := w.store.OutboxMessages(ctx, 5000)
		for _, m := range msgs {
			if strings.Contains(m.Body, pass) || strings.Contains(m.Body, early) {
				t.Errorf("a notice to %s holds an access pass", m.To)
			}
		}

		// The audit log records the completion with the pass's expiry, and
		// holds no pass.
		recs, err := w.store.UnsequencedAuditEvents(ctx, 0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, rec := range recs {
			for _, secret := range []string{pass, strings.TrimPrefix(pass, service.AccessPassPrefix), early} {
				if strings.Contains(string(rec.Data), secret) {
					t.Fatalf("the audit log holds an access pass: %s", rec.Data)
				}
			}
			var e struct {
				Action     string            `json:"action"`
				Attributes map[string]string `json:"attributes"`
			}
			if err := json.Unmarshal(rec.Data, &e); err != nil {
				t.Fatal(err)
			}
			if e.Action == recourse.ActionRecoveryComplete && e.Attributes["request"] == rs.RequestID {
				found = true
				if e.Attributes["access_pass"] != "issued" || e.Attributes["access_pass_expires_at"] != expires.UTC().Format(time.RFC3339) {
					t.Errorf("completion event attributes %v", e.Attributes)
				}
			}
		}
		if !found {
			t.Fatal("no audit event of the completion")
		}

		// The pass works once, until the last second of its lifetime, into
		// a session that can only enrol an authenticator.
		w.clock.Add(expires.Sub(w.clock.Now()) - time.Second)
		if _, err := w.svc.SignInAccessPass(ctx, "a.silva", pass, meta()); recourse.ErrorCode(err) != recourse.EUNAUTHORIZED {
			t.Fatalf("the pass signed in to another account: %v", err)
		}
		si, err := w.svc.SignInAccessPass(ctx, "d.chen", pass, meta())
		if err != nil {
			t.Fatalf("the pass, a second before it expires: %v", err)
		}
		np, err := w.svc.Authenticate(ctx, si.Token)
		if err != nil || !np.Session.Restricted {
			t.Fatalf("the pass's session: %+v, %v (must be restricted)", np, err)
		}
		if _, err := w.svc.AddChannel(ctx, np, recourse.ChannelEmail, "other@example.com", meta()); recourse.ErrorCode(err) != recourse.EFORBIDDEN {
			t.Fatalf("the pass's session added a channel: %v", err)
		}
		enr, err := w.svc.BeginTOTP(ctx, np, "New phone", meta())
		if err != nil {
			t.Fatalf("the pass's session cannot enrol: %v", err)
		}
		code, _ := credential.TOTPCode(enr.Secret, w.clock.Now())
		if err := w.svc.ConfirmTOTP(ctx, np, enr.AuthenticatorID, code, meta()); err != nil {
			t.Fatal(err)
		}
		if _, err := w.svc.SignInAccessPass(ctx, "d.chen", pass, meta()); recourse.ErrorCode(err) != recourse.EUNAUTHORIZED {
			t.Fatalf("an access pass worked twice: %v", err)
		}
	})
}

// TestAccessPassFromCompletionExpires: a pass from a completion that is
// not used within its lifetime stops working.
func TestAccessPassFromCompletionExpires(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		ctx := t.Context()
		// Ana lost a security key but holds her authenticator app: her
		// email code and the app make the request ready at once.
		rs, tok := w.readyByCodeAndApp("a.silva", "device")
		done, err := w.svc.CompleteRecovery(ctx, rs.RequestID, rs.BrowserSecret, tok, service.Completion{AccessPass: true}, meta())
		if err != nil {
			t.Fatal(err)
		}
		if lifetime := passLifetime(t, w, rs.RequestID); done.AccessPassExpires.Sub(w.clock.Now()) != lifetime {
			t.Fatalf("pass expires %v after now, want %v", done.AccessPassExpires.Sub(w.clock.Now()), lifetime)
		}
		w.clock.Add(done.AccessPassExpires.Sub(w.clock.Now()))
		if _, err := w.svc.SignInAccessPass(ctx, "a.silva", done.AccessPass, meta()); recourse.ErrorCode(err) != recourse.EUNAUTHORIZED {
			t.Fatalf("an expired pass signed in: %v", err)
		}
	})
}

// TestAccessPassOnlyForLostDevice: a completion of any other action that
// asks for a pass is refused before its token is used, and the same token
// then finishes it the ordinary way.
func TestAccessPassOnlyForLostDevice(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		ctx := t.Context()
		rs, tok := w.readyByCodeAndApp("d.chen", "password")
		_, err := w.svc.CompleteRecovery(ctx, rs.RequestID, rs.BrowserSecret, tok,
			service.Completion{NewPassword: "saffron-kettle-meadow-9", AccessPass: true}, meta())
		var e *recourse.Error
		if !errors.As(err, &e) || e.Code != recourse.EINVALID || e.Field != "access_pass" {
			t.Fatalf("a pass for a password reset: %v, want invalid access_pass", err)
		}
		w.wantState(rs, recourse.RecoveryReady)
		done, err := w.svc.CompleteRecovery(ctx, rs.RequestID, rs.BrowserSecret, tok, service.Completion{NewPassword: "saffron-kettle-meadow-9"}, meta())
		if err != nil {
			t.Fatalf("the token after the refusal: %v", err)
		}
		if done.SignIn == nil || done.AccessPass != "" || done.SignIn.Session.Restricted {
			t.Fatalf("completion = %+v, want an unrestricted session and no pass", done)
		}
		if _, err := w.svc.SignIn(ctx, "d.chen", "saffron-kettle-meadow-9", meta()); err != nil {
			t.Fatalf("the new password: %v", err)
		}
	})
}

// TestUnrevealedStepsLookAlike drives every step of a request that has not
// shown itself yet, for a real and for a made-up identifier, and compares
// the answers: they must not tell the two apart, even after the real
// account has used up its wrong-code allowance.
func TestUnrevealedStepsLookAlike(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		ctx := t.Context()
		known := w.start("a.silva", "password")
		unknown := w.start("nobody.at.all", "password")
		answers := func(rs *service.RecoveryStart) []string {
			var out []string
			add := func(err error) { out = append(out, recourse.ErrorCode(err)+": "+recourse.ErrorMessage(err)) }
			errOnly := func(_ *service.RecoveryView, err error) error { return err }
			add(errOnly(w.svc.SubmitChallengeCode(ctx, rs.RequestID, rs.BrowserSecret, "123456", meta())))
			add(errOnly(w.svc.SubmitTOTP(ctx, rs.RequestID, rs.BrowserSecret, "123456", meta())))
			add(errOnly(w.svc.SubmitSavedRecoveryCode(ctx, rs.RequestID, rs.BrowserSecret, "abcd-efgh-jkmn-pqrs", meta())))
			_, err := w.svc.ContinueRecovery(ctx, rs.RequestID, rs.BrowserSecret, meta())
			add(err)
			_, err = w.svc.CompleteRecovery(ctx, rs.RequestID, rs.BrowserSecret, "rct_"+strings.Repeat("a", 52), service.Completion{NewPassword: "x"}, meta())
			add(err)
			return out
		}
		for round := range 4 { // past the 10 wrong codes allowance
			k, u := answers(known), answers(unknown)
			if fmt.Sprint(k) != fmt.Sprint(u) {
				t.Fatalf("round %d: a real identifier answers\n%v\nbut an unknown one\n%v", round, k, u)
			}
		}
	})
}

// TestIdleRequestExpiresAndSecretsAreSwept: a request nobody finishes
// expires (72 h under the built-in policy): reads say so at once, the sweep
// stores it with its audit event and deletes its codes and tokens.
func TestIdleRequestExpiresAndSecretsAreSwept(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		ctx := t.Context()
		rs := w.start("d.chen", "password")
		code := w.code("d.chen@example.com")
		if swept, err := w.svc.Sweep(ctx); err != nil || swept.Expired != 0 {
			t.Fatalf("sweep before the expiry: %+v, %v", swept, err)
		}
		r, err := w.store.Recovery(ctx, rs.RequestID)
		if err != nil {
			t.Fatal(err)
		}
		w.clock.Add(r.ExpiresAt.Sub(w.clock.Now()))
		// Past its expiry its code no longer works, before any sweep.
		if _, err := w.svc.SubmitChallengeCode(ctx, rs.RequestID, rs.BrowserSecret, code, meta()); err == nil {
			t.Fatal("a code worked on an expired request")
		}
		swept, err := w.svc.Sweep(ctx)
		if err != nil || swept.Expired != 1 || swept.SecretsDeleted == 0 {
			t.Fatalf("sweep: %+v, %v", swept, err)
		}
		if r, err := w.store.Recovery(ctx, rs.RequestID); err != nil || r.State != recourse.RecoveryExpired {
			t.Fatalf("stored state after the sweep: %v, %v", r.State, err)
		}
		if cs, err := w.store.Challenges(ctx, rs.RequestID); err != nil || len(cs) != 0 {
			t.Fatalf("codes left after the sweep: %d, %v", len(cs), err)
		}
		recs, err := w.store.UnsequencedAuditEvents(ctx, 0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, rec := range recs {
			var e struct {
				Action     string            `json:"action"`
				After      map[string]string `json:"after"`
				Attributes map[string]string `json:"attributes"`
			}
			if err := json.Unmarshal(rec.Data, &e); err != nil {
				t.Fatal(err)
			}
			found = found || (e.Action == recourse.ActionRecoveryTransition && e.Attributes["request"] == rs.RequestID &&
				e.After["state"] == string(recourse.RecoveryExpired))
		}
		if !found {
			t.Error("no audit event for the expiry")
		}
		if swept, err := w.svc.Sweep(ctx); err != nil || swept.Expired != 0 {
			t.Fatalf("second sweep: %+v, %v", swept, err)
		}
	})
}

// TestOneActiveAccessPassUnderRace: passes issued for one account at the
// same moment leave exactly one active; the others are refused with a
// conflict that changed nothing (on PostgreSQL they really run at once).
func TestOneActiveAccessPassUnderRace(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		ctx := t.Context()
		p, _ := w.signIn("a.silva")
		const racers = 20
		var wg sync.WaitGroup
		errs := make(chan error, racers)
		for range racers {
			wg.Go(func() {
				_, _, err := w.svc.IssueAccessPass(ctx, p, meta())
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		issued := 0
		for err := range errs {
			switch {
			case err == nil:
				issued++
			case recourse.ErrorCode(err) != recourse.ECONFLICT:
				t.Fatalf("a racing pass failed with %v, want a conflict", err)
			}
		}
		if issued == 0 {
			t.Fatal("no pass was issued")
		}
		if n, err := w.store.RevokeAccessPasses(ctx, p.Account.ID, w.clock.Now()); err != nil || n != 1 {
			t.Fatalf("active passes after the race: %d, %v; want 1", n, err)
		}
	})
}
