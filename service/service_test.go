package service

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/store/sqlite"
)

// testClock is a clock tests move by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var testParams = credential.PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32, SaltLen: 16}

type fixture struct {
	svc   *Service
	clock *testClock
	store recourse.Store
}

func newFixture(t *testing.T, edit ...func(*Config)) *fixture {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "r.db"), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := &testClock{t: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}
	cfg := DefaultConfig()
	cfg.PasswordParams = testParams
	for _, e := range edit {
		e(&cfg)
	}
	svc, err := New(Options{Store: st, Clock: clock, Config: cfg, Keys: Keys{Master: []byte(strings.Repeat("k", 32))}})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{svc: svc, clock: clock, store: st}
}

const pw = "violet-lantern-carousel"

// person creates an active person with a password and a confirmed email.
func (f *fixture) person(t *testing.T, id string) *recourse.Account {
	t.Helper()
	a := &recourse.Account{ID: id, Username: id, DisplayName: "Person " + id, Kind: recourse.KindHuman, Status: recourse.StatusActive,
		Employment: recourse.EmploymentEmployee, IAL: 2,
		Emails: []recourse.Channel{{Kind: recourse.ChannelEmail, Address: id + "@example.com", Verified: true}}}
	if err := f.svc.CreateAccount(t.Context(), a, Meta{}); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.SetPassword(t.Context(), id, pw, Meta{}); err != nil {
		t.Fatal(err)
	}
	return a
}

// signIn signs in with the password and fails the test on error.
func (f *fixture) signIn(t *testing.T, id string) *SignIn {
	t.Helper()
	res, err := f.svc.SignIn(t.Context(), id, pw, Meta{IP: "192.0.2.1"})
	if err != nil {
		t.Fatalf("SignIn(%s): %v", id, err)
	}
	return res
}

func (f *fixture) principal(t *testing.T, token string) *Principal {
	t.Helper()
	p, err := f.svc.Authenticate(t.Context(), token)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	return p
}

// enrolTOTP adds a confirmed TOTP authenticator and returns its secret.
func (f *fixture) enrolTOTP(t *testing.T, id string) string {
	t.Helper()
	res := f.signIn(t, id)
	if !res.Complete() {
		t.Fatalf("enrolTOTP: %s already has a second factor", id)
	}
	p := f.principal(t, res.Token)
	enr, err := f.svc.BeginTOTP(t.Context(), p, "Phone", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	code, _ := credential.TOTPCode(enr.Secret, f.clock.Now())
	if err := f.svc.ConfirmTOTP(t.Context(), p, enr.AuthenticatorID, code, Meta{}); err != nil {
		t.Fatal(err)
	}
	// Move to the next time step so the enrolment code is not the sign-in code.
	f.clock.Add(30 * time.Second)
	return enr.Secret
}

func TestSignInPasswordOnlyIsAAL1(t *testing.T) {
	f := newFixture(t)
	f.person(t, "alice")
	res := f.signIn(t, "alice")
	if !res.Complete() || res.Session.AAL != recourse.AAL1 {
		t.Fatalf("SignIn = %+v", res)
	}
	if !strings.HasPrefix(res.Token, SessionTokenPrefix) {
		t.Errorf("token %q lacks prefix", res.Token)
	}
	ses, _ := f.store.Session(t.Context(), res.Session.ID)
	if string(ses.TokenHash) == res.Token || len(ses.TokenHash) != 32 {
		t.Error("the store must hold only a hash of the token")
	}
	// By email too.
	if _, err := f.svc.SignIn(t.Context(), "ALICE@example.com", pw, Meta{IP: "192.0.2.1"}); err != nil {
		t.Errorf("sign-in by email: %v", err)
	}
}

func TestSignInFailuresLookAlike(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.SignInFailureLimit = 3 })
	f.person(t, "alice")
	locked := f.person(t, "locked")
	for range 3 {
		_, _ = f.svc.SignIn(t.Context(), "locked", "wrong", Meta{IP: "192.0.2.9"})
	}
	if a, _ := f.store.Account(t.Context(), locked.ID); !a.Locked() {
		t.Fatal("account not locked after 3 failures")
	}
	susp := f.person(t, "suspended")
	susp, _ = f.store.Account(t.Context(), susp.ID)
	susp.Status = recourse.StatusSuspended
	if err := f.store.UpdateAccount(t.Context(), susp); err != nil {
		t.Fatal(err)
	}
	nopw := &recourse.Account{ID: "nopw", Username: "nopw", DisplayName: "No Password", Kind: recourse.KindHuman, Status: recourse.StatusActive,
		Employment: recourse.EmploymentEmployee, IAL: 1}
	if err := f.svc.CreateAccount(t.Context(), nopw, Meta{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, id, password string }{
		{"wrong password", "alice", "not-the-password"},
		{"unknown account", "nobody", pw},
		{"unknown email", "nobody@example.com", pw},
		{"locked account, right password", "locked", pw},
		{"suspended account, right password", "suspended", pw},
		{"account without a password", "nopw", pw},
		{"empty identifier", "", pw},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := f.svc.SignIn(t.Context(), tc.id, tc.password, Meta{IP: "192.0.2." + fmt.Sprint(len(tc.name))})
			if res != nil || err != errSignIn {
				t.Fatalf("SignIn = %v, %v; want the one generic error", res, err)
			}
		})
	}
	// The lock-out was notified once.
	msgs, _ := f.store.OutboxMessages(t.Context(), 100)
	n := 0
	for _, m := range msgs {
		if m.To == "locked@example.com" && m.Subject == "Your account was locked" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("lock-out notices = %d, want 1", n)
	}
	// An administrator unlocks it.
	if err := f.svc.UnlockAccount(t.Context(), "locked", Meta{}); err != nil {
		t.Fatal(err)
	}
	f.signIn(t, "locked")
}

func TestSignInTOTP(t *testing.T) {
	f := newFixture(t)
	f.person(t, "alice")
	secret := f.enrolTOTP(t, "alice")

	res := f.signIn(t, "alice")
	if res.Complete() || res.Session.AAL != recourse.AALNone || len(res.SecondFactors) != 1 || res.SecondFactors[0] != recourse.AuthTOTP {
		t.Fatalf("SignIn with TOTP bound = %+v", res)
	}
	if _, err := f.svc.Authenticate(t.Context(), res.Token); err == nil {
		t.Fatal("a pending session authenticated")
	}
	pending := res.Token
	code, _ := credential.TOTPCode(secret, f.clock.Now())
	wrong := "000000"
	if wrong == code {
		wrong = "111111"
	}
	if _, err := f.svc.SignInTOTP(t.Context(), pending, wrong, Meta{IP: "192.0.2.1"}); err != errSignIn {
		t.Fatalf("wrong code: %v", err)
	}
	done, err := f.svc.SignInTOTP(t.Context(), pending, code, Meta{IP: "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	if done.Session.AAL != recourse.AAL2 || done.Token == pending {
		t.Fatalf("after TOTP: AAL %d, token rotated %v", done.Session.AAL, done.Token != pending)
	}
	if _, err := f.svc.Authenticate(t.Context(), pending); err == nil {
		t.Error("the pre-MFA token still works after the upgrade")
	}
	p := f.principal(t, done.Token)
	if p.Account.FailedSignIns != 0 {
		t.Errorf("failures not reset: %d", p.Account.FailedSignIns)
	}
	// The same code again, in its window, on a new pending sign-in: refused.
	again := f.signIn(t, "alice")
	if _, err := f.svc.SignInTOTP(t.Context(), again.Token, code, Meta{IP: "192.0.2.1"}); err != errSignIn {
		t.Fatalf("replayed code: err = %v, want refusal", err)
	}
	// A pending sign-in expires.
	f.clock.Add(6 * time.Minute)
	code, _ = credential.TOTPCode(secret, f.clock.Now())
	if _, err := f.svc.SignInTOTP(t.Context(), again.Token, code, Meta{IP: "192.0.2.1"}); err != errSignIn {
		t.Fatalf("expired pending sign-in: %v", err)
	}
}

func TestRecoveryCodeSecondFactor(t *testing.T) {
	f := newFixture(t)
	f.person(t, "alice")
	p := f.principal(t, f.signIn(t, "alice").Token)
	codes, err := f.svc.RecoveryCodes(t.Context(), p, Meta{})
	if err != nil || len(codes) != 10 {
		t.Fatalf("RecoveryCodes = %v, %v", codes, err)
	}
	res := f.signIn(t, "alice")
	if res.Complete() {
		t.Fatal("recovery codes did not make a second factor")
	}
	done, err := f.svc.SignInRecoveryCode(t.Context(), res.Token, strings.ToUpper(codes[3]), Meta{})
	if err != nil || done.Session.AAL != recourse.AAL2 {
		t.Fatalf("SignInRecoveryCode = %+v, %v", done, err)
	}
	res = f.signIn(t, "alice")
	if _, err := f.svc.SignInRecoveryCode(t.Context(), res.Token, codes[3], Meta{}); err != errSignIn {
		t.Fatalf("reused recovery code: %v", err)
	}
	// Regenerating replaces the whole set.
	p = f.principal(t, done.Token)
	if _, err := f.svc.RecoveryCodes(t.Context(), p, Meta{}); err != nil {
		t.Fatal(err)
	}
	res = f.signIn(t, "alice")
	if _, err := f.svc.SignInRecoveryCode(t.Context(), res.Token, codes[4], Meta{}); err != errSignIn {
		t.Fatalf("code of a replaced set: %v", err)
	}
}

func TestSessionLifetimesByAAL(t *testing.T) {
	tests := []struct {
		aal      int
		idle     time.Duration // 0 = none
		absolute time.Duration
	}{
		{recourse.AAL1, 0, 30 * 24 * time.Hour},
		{recourse.AAL2, time.Hour, 24 * time.Hour},
		{recourse.AAL3, 15 * time.Minute, 12 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("AAL%d", tc.aal), func(t *testing.T) {
			f := newFixture(t)
			f.person(t, "alice")
			mk := func() string {
				res := f.signIn(t, "alice")
				var out *SignIn
				err := f.store.InTx(t.Context(), func(tx recourse.Tx) error {
					var err error
					res.Session.AAL = recourse.AALNone
					out, err = f.svc.completeSignIn(t.Context(), tx, res.Session, tc.aal, "test", Meta{})
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				return out.Token
			}
			if tc.idle > 0 {
				tok := mk()
				f.clock.Add(tc.idle - time.Minute)
				f.principal(t, tok) // activity just before the idle limit
				f.clock.Add(tc.idle - time.Minute)
				f.principal(t, tok) // still alive: idle is measured from the last activity
				f.clock.Add(tc.idle)
				if _, err := f.svc.Authenticate(t.Context(), tok); err == nil {
					t.Fatalf("session alive after %v idle", tc.idle)
				}
			}
			tok := mk()
			start := f.clock.Now()
			step := tc.absolute / 50
			if tc.idle > 0 && step >= tc.idle {
				step = tc.idle / 2
			}
			for f.clock.Now().Before(start.Add(tc.absolute - step)) {
				f.clock.Add(step)
				f.principal(t, tok)
			}
			f.clock.Add(step)
			if _, err := f.svc.Authenticate(t.Context(), tok); err == nil {
				t.Fatalf("session alive past its absolute lifetime %v", tc.absolute)
			}
		})
	}
}

func TestConcurrentFailuresCountedExactly(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.SignInFailureLimit = 100
		c.SignInRatePerMinute, c.SignInBurst = 6000, 1000
	})
	f.person(t, "alice")
	const n = 40
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := f.svc.SignIn(t.Context(), "alice", "wrong-password", Meta{IP: "192.0.2.1"}); err != errSignIn {
				t.Errorf("SignIn: %v", err)
			}
		})
	}
	wg.Wait()
	a, _ := f.store.Account(t.Context(), "alice")
	if a.FailedSignIns != n {
		t.Errorf("FailedSignIns = %d after %d concurrent failures", a.FailedSignIns, n)
	}
}

func TestSignInRateLimitPerIP(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.SignInRatePerMinute, c.SignInBurst = 1, 3 })
	f.person(t, "alice")
	for i := range 3 {
		if _, err := f.svc.SignIn(t.Context(), "alice", "x", Meta{IP: "198.51.100.7"}); err != errSignIn {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if _, err := f.svc.SignIn(t.Context(), "alice", pw, Meta{IP: "198.51.100.7"}); recourse.ErrorCode(err) != recourse.ERATELIMIT {
		t.Fatalf("4th attempt: %v, want rate limited", err)
	}
	// Another address is not affected; time refills the bucket.
	f.signIn(t, "alice")
	f.clock.Add(time.Minute)
	if _, err := f.svc.SignIn(t.Context(), "alice", pw, Meta{IP: "198.51.100.7"}); err != nil {
		t.Fatalf("after a minute: %v", err)
	}
}

func TestStepUpRequiredForEnrolment(t *testing.T) {
	f := newFixture(t)
	f.person(t, "alice")
	tok := f.signIn(t, "alice").Token
	f.clock.Add(16 * time.Minute)
	p := f.principal(t, tok)
	if _, err := f.svc.BeginTOTP(t.Context(), p, "", Meta{}); recourse.ErrorCode(err) != recourse.ESTEPUP {
		t.Fatalf("BeginTOTP on a stale session: %v, want step-up", err)
	}
	if err := f.svc.Reauthenticate(t.Context(), p, "wrong", "", Meta{}); recourse.ErrorCode(err) != recourse.EUNAUTHORIZED {
		t.Fatalf("wrong re-authentication: %v", err)
	}
	if err := f.svc.Reauthenticate(t.Context(), p, pw, "", Meta{}); err != nil {
		t.Fatal(err)
	}
	p = f.principal(t, tok)
	if _, err := f.svc.BeginTOTP(t.Context(), p, "", Meta{}); err != nil {
		t.Fatalf("BeginTOTP after step-up: %v", err)
	}
}

func TestTOTPEnrolmentNeedsTheCode(t *testing.T) {
	f := newFixture(t)
	f.person(t, "alice")
	p := f.principal(t, f.signIn(t, "alice").Token)
	enr, err := f.svc.BeginTOTP(t.Context(), p, "Phone", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if len(enr.QRCodePNG) == 0 || !strings.HasPrefix(enr.URL, "otpauth://totp/") {
		t.Errorf("enrolment = %+v", enr)
	}
	// Not confirmed: no second factor yet.
	if res := f.signIn(t, "alice"); !res.Complete() {
		t.Fatal("a pending TOTP enrolment counted as a second factor")
	}
	if err := f.svc.ConfirmTOTP(t.Context(), p, enr.AuthenticatorID, "123456", Meta{}); recourse.ErrorCode(err) != recourse.EINVALID {
		t.Fatalf("wrong confirmation code: %v", err)
	}
	code, _ := credential.TOTPCode(enr.Secret, f.clock.Now())
	if err := f.svc.ConfirmTOTP(t.Context(), p, enr.AuthenticatorID, code, Meta{IP: "192.0.2.5", UserAgent: "test"}); err != nil {
		t.Fatal(err)
	}
	evs, _ := f.svc.AuthenticatorEvents(t.Context(), "alice", 10)
	if len(evs) == 0 || evs[0].Type != recourse.AuthEventBound || evs[0].Kind != recourse.AuthTOTP || evs[0].IP != "192.0.2.5" {
		t.Errorf("latest event = %+v", evs[0])
	}
	msgs, _ := f.store.OutboxMessages(t.Context(), 1)
	if len(msgs) != 1 || !strings.Contains(msgs[0].Subject, "authenticator app was added") || msgs[0].To != "alice@example.com" {
		t.Errorf("notice = %+v", msgs)
	}
	// Another account cannot confirm it.
	f.person(t, "bob")
	pb := f.principal(t, f.signIn(t, "bob").Token)
	if err := f.svc.ConfirmTOTP(t.Context(), pb, enr.AuthenticatorID, code, Meta{}); recourse.ErrorCode(err) != recourse.ENOTFOUND {
		t.Errorf("foreign enrolment: %v", err)
	}
}

func TestChannelConfirmation(t *testing.T) {
	f := newFixture(t)
	f.person(t, "alice")
	p := f.principal(t, f.signIn(t, "alice").Token)
	c, err := f.svc.AddChannel(t.Context(), p, recourse.ChannelPhone, "+1 555 010 0099", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Address != "+15550100099" || c.Verified {
		t.Fatalf("channel = %+v", c)
	}
	msgs, _ := f.store.OutboxMessages(t.Context(), 1)
	code := ""
	for _, w := range strings.Fields(msgs[0].Body) {
		w = strings.TrimSuffix(w, ".")
		if len(w) == 6 && strings.Trim(w, "0123456789") == "" {
			code = w
		}
	}
	if code == "" || msgs[0].To != "+15550100099" {
		t.Fatalf("no code sent to the channel: %+v", msgs[0])
	}
	if err := f.svc.ConfirmChannel(t.Context(), p, c.ID, "000000", Meta{}); recourse.ErrorCode(err) != recourse.EINVALID && code != "000000" {
		t.Fatalf("wrong code: %v", err)
	}
	if err := f.svc.ConfirmChannel(t.Context(), p, c.ID, code, Meta{}); err != nil {
		t.Fatal(err)
	}
	got, _ := f.store.Channel(t.Context(), c.ID)
	if !got.Verified {
		t.Error("channel not confirmed")
	}
	// Attempts are bounded.
	c2, err := f.svc.AddChannel(t.Context(), p, recourse.ChannelEmail, "alice.home@example.org", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	var last error
	for range 6 {
		last = f.svc.ConfirmChannel(t.Context(), p, c2.ID, "99999x", Meta{})
	}
	if recourse.ErrorCode(last) != recourse.ERATELIMIT {
		t.Errorf("after 6 wrong codes: %v, want rate limited", last)
	}
}

func TestImportAllOrNothing(t *testing.T) {
	f := newFixture(t)
	good := &recourse.Account{ID: "m", Username: "m", DisplayName: "M", Kind: recourse.KindHuman, Status: recourse.StatusActive, Employment: recourse.EmploymentEmployee, IAL: 1}
	bad := &recourse.Account{ID: "e", Username: "e", DisplayName: "E", Kind: recourse.KindHuman, Status: recourse.StatusActive, Employment: recourse.EmploymentEmployee, IAL: 1, ManagerID: "ghost"}
	_, err := f.svc.ImportAccounts(t.Context(), []*recourse.Account{good, bad}, Meta{})
	var e *recourse.Error
	if !errors.As(err, &e) || e.Field != "manager" {
		t.Fatalf("import with a dangling manager: %v", err)
	}
	if _, err := f.store.Account(t.Context(), "m"); !errors.Is(err, recourse.ErrNotFound) {
		t.Fatal("a failed import left accounts behind")
	}
	bad.ManagerID = "m"
	res, err := f.svc.ImportAccounts(t.Context(), []*recourse.Account{bad, good}, Meta{})
	if err != nil || res.Created != 2 {
		t.Fatalf("import = %+v, %v", res, err)
	}
	good.DisplayName = "Mia"
	res, err = f.svc.ImportAccounts(t.Context(), []*recourse.Account{good}, Meta{})
	if err != nil || res.Updated != 1 {
		t.Fatalf("re-import = %+v, %v", res, err)
	}
}

func TestSignOutAndRevoke(t *testing.T) {
	f := newFixture(t)
	f.person(t, "alice")
	t1 := f.signIn(t, "alice").Token
	t2 := f.signIn(t, "alice").Token
	p := f.principal(t, t1)
	list, err := f.svc.Sessions(t.Context(), p)
	if err != nil || len(list) != 2 {
		t.Fatalf("Sessions = %d, %v", len(list), err)
	}
	p2 := f.principal(t, t2)
	f.person(t, "bob")
	pb := f.principal(t, f.signIn(t, "bob").Token)
	if err := f.svc.RevokeSession(t.Context(), pb, p2.Session.ID, Meta{}); recourse.ErrorCode(err) != recourse.ENOTFOUND {
		t.Errorf("revoking another account's session: %v", err)
	}
	if err := f.svc.RevokeSession(t.Context(), p, p2.Session.ID, Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(t.Context(), t2); err == nil {
		t.Error("revoked session still works")
	}
	if err := f.svc.SignOut(t.Context(), t1, Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(t.Context(), t1); err == nil {
		t.Error("signed-out session still works")
	}
}

func TestSeedDemo(t *testing.T) {
	f := newFixture(t)
	users, err := f.svc.SeedDemo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 9 {
		t.Fatalf("demo users = %d", len(users))
	}
	again, err := f.svc.SeedDemo(t.Context())
	if err != nil || len(again) != 9 {
		t.Fatalf("second seed = %d, %v", len(again), err)
	}
	var secret string
	for _, u := range users {
		if u.Username == "d.chen" {
			secret = u.TOTPSecret
		}
	}
	res, err := f.svc.SignIn(t.Context(), "d.chen", DemoPassword, Meta{IP: "192.0.2.1"})
	if err != nil || res.Complete() {
		t.Fatalf("demo sign-in = %+v, %v", res, err)
	}
	code, _ := credential.TOTPCode(secret, f.clock.Now())
	if _, err := f.svc.SignInTOTP(t.Context(), res.Token, code, Meta{IP: "192.0.2.1"}); err != nil {
		t.Fatalf("demo TOTP: %v", err)
	}
}
