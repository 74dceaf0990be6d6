package service

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/store/sqlite"
)

// auditEvents returns every audit event stored so far, in insertion order.
func (f *fixture) auditEvents(t *testing.T) []*recourse.AuditEvent {
	t.Helper()
	recs, err := f.store.UnsequencedAuditEvents(t.Context(), 0, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	var out []*recourse.AuditEvent
	for _, r := range recs {
		e, err := recourse.ParseAuditEvent(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// rawAudit returns every stored audit event's encoding, joined.
func (f *fixture) rawAudit(t *testing.T) string {
	t.Helper()
	recs, err := f.store.UnsequencedAuditEvents(t.Context(), 0, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, r := range recs {
		b.Write(r.Data)
		b.WriteByte('\n')
	}
	return b.String()
}

func summary(evs []*recourse.AuditEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Action+" "+string(e.Outcome))
	}
	return out
}

// TestAuditTrail walks a person through the self-service flows and checks
// that each change and each sign-in outcome left its event, with who, how
// and from where, and that no secret reached the log.
func TestAuditTrail(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	web := Meta{IP: "192.0.2.7", UserAgent: "test-agent", RequestID: "req-1", Channel: recourse.ViaWeb}
	admin := Meta{Channel: recourse.ViaCLI, Actor: recourse.AuditActor{Role: recourse.ActorAdmin}}
	a := &recourse.Account{ID: "alice", Username: "alice", DisplayName: "Alice", Kind: recourse.KindHuman, Status: recourse.StatusActive,
		Employment: recourse.EmploymentEmployee, IAL: 2, Emails: []recourse.Channel{{Kind: recourse.ChannelEmail, Address: "alice@example.com", Verified: true}}}
	if err := f.svc.CreateAccount(ctx, a, admin); err != nil {
		t.Fatal(err)
	}
	f.person(t, "bob")
	if err := f.svc.SetPassword(ctx, "alice", pw, admin); err != nil {
		t.Fatal(err)
	}
	var secrets []string
	secrets = append(secrets, pw)
	res, err := f.svc.SignIn(ctx, "alice", pw, web)
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, res.Token)
	if _, err := f.svc.SignIn(ctx, "alice", "not-the-password", web); err != errSignIn {
		t.Fatal(err)
	}
	secrets = append(secrets, "not-the-password")
	p := f.principal(t, res.Token)
	c, err := f.svc.AddChannel(ctx, p, recourse.ChannelPhone, "+15550100042", web)
	if err != nil {
		t.Fatal(err)
	}
	msgs, _ := f.store.OutboxMessages(ctx, 1)
	code := sixDigits(msgs[0].Body)
	secrets = append(secrets, code)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	_ = f.svc.ConfirmChannel(ctx, p, c.ID, wrong, web)
	if err := f.svc.ConfirmChannel(ctx, p, c.ID, code, web); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.SetRecoveryContacts(ctx, p, []string{"bob"}, web); err != nil {
		t.Fatal(err)
	}
	enr, err := f.svc.BeginTOTP(ctx, p, "Phone", web)
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, enr.Secret)
	totp, _ := credential.TOTPCode(enr.Secret, f.clock.Now())
	if err := f.svc.ConfirmTOTP(ctx, p, enr.AuthenticatorID, totp, web); err != nil {
		t.Fatal(err)
	}
	codes, err := f.svc.RecoveryCodes(ctx, p, web)
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, codes...)
	f.clock.Add(30 * time.Second)
	res2 := f.signIn(t, "alice")
	totp, _ = credential.TOTPCode(enr.Secret, f.clock.Now())
	done, err := f.svc.SignInTOTP(ctx, res2.Token, totp, web)
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, res2.Token, done.Token)
	if err := f.svc.RevokeSession(ctx, p, res.Session.ID, web); err != nil {
		t.Fatal(err)
	}
	p2 := f.principal(t, done.Token)
	if _, err := f.svc.SignOutEverywhere(ctx, p2, web); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.UnlockAccount(ctx, "alice", admin); err != nil {
		t.Fatal(err)
	}

	var mine []*recourse.AuditEvent
	for _, e := range f.auditEvents(t) {
		if e.SubjectID == "alice" {
			mine = append(mine, e)
		}
	}
	want := []string{
		"account.create success", "password.set success",
		"signin.password success", "signin.password failure",
		"channel.add success", "channel.confirm failure", "channel.confirm success",
		"recovery_contacts.change success",
		"authenticator.enroll success", "authenticator.bind success",
		"recovery_codes.issue success",
		"signin.password success", "signin.second_factor success",
		"session.revoke success", "session.revoke_all success",
		"account.unlock success",
	}
	if got := summary(mine); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit trail:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, e := range mine {
		switch e.Channel {
		case recourse.ViaCLI:
			if e.Actor.Role != recourse.ActorAdmin {
				t.Errorf("%s: CLI actor = %+v", e.Action, e.Actor)
			}
		case recourse.ViaWeb:
			if e.Actor != (recourse.AuditActor{AccountID: "alice", Role: recourse.ActorSubject}) || e.IP != "192.0.2.7" ||
				e.UserAgent != "test-agent" || e.RequestID != "req-1" {
				t.Errorf("%s: web event = %+v", e.Action, e)
			}
		default:
			if e.Action != recourse.ActionSignInPassword || e.Channel != recourse.ViaSystem {
				t.Errorf("%s: channel %q", e.Action, e.Channel)
			}
		}
		if !strings.HasPrefix(e.ID, "ev_") || !e.Time.Equal(e.Time.Truncate(time.Microsecond)) || e.PolicyDigest != f.svc.Policy().Digest() {
			t.Errorf("%s: id %q, time %v, digest %q", e.Action, e.ID, e.Time, e.PolicyDigest)
		}
	}
	second := mine[12]
	if strings.Join(second.Evidence, ",") != "pwd,otp" || second.Attributes["aal"] != "2" || second.Attributes["session_id"] != done.Session.ID {
		t.Errorf("second factor event = %+v", second)
	}
	if mine[7].Before["recovery_contacts"] != "" || mine[7].After["recovery_contacts"] != "bob" {
		t.Errorf("recovery contacts change = %+v / %+v", mine[7].Before, mine[7].After)
	}
	if mine[4].After["address"] != "+15550100042" {
		t.Errorf("channel.add = %+v", mine[4].After)
	}
	raw := f.rawAudit(t)
	for _, s := range secrets {
		if strings.Contains(raw, s) {
			t.Errorf("a secret reached the audit log: %q", s)
		}
	}
}

func sixDigits(body string) string {
	for _, w := range strings.Fields(body) {
		w = strings.TrimSuffix(w, ".")
		if len(w) == 6 && strings.Trim(w, "0123456789") == "" {
			return w
		}
	}
	return ""
}

func TestAuditSignInFailures(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.SignInFailureLimit = 3 })
	ctx := t.Context()
	f.person(t, "alice")
	meta := Meta{IP: "198.51.100.1", Channel: recourse.ViaWeb}
	// An unknown identifier is kept only as an HMAC: a password typed into
	// the username field never reaches the log, yet repeated attempts with
	// the same identifier correlate.
	typo := "Hunter2-secret-password"
	for range 2 {
		if _, err := f.svc.SignIn(ctx, typo, "x", meta); err != errSignIn {
			t.Fatal(err)
		}
	}
	for range 3 {
		_, _ = f.svc.SignIn(ctx, "alice", "wrong-password", meta)
	}
	if _, err := f.svc.SignIn(ctx, "alice", pw, meta); err != errSignIn {
		t.Fatal(err)
	}
	evs := f.auditEvents(t)
	got := summary(evs)
	want := []string{"account.create success", "password.set success",
		"signin.password failure", "signin.password failure",
		"signin.password failure", "signin.password failure", "signin.password failure", "account.lock success",
		"signin.password denied"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("events = %v\nwant %v", got, want)
	}
	u1, u2 := evs[2], evs[3]
	if u1.SubjectID != "" || u1.Attributes["identifier_hmac"] == "" || u1.Attributes["identifier_hmac"] != u2.Attributes["identifier_hmac"] {
		t.Errorf("unknown-account events = %+v / %+v", u1, u2)
	}
	if strings.Contains(f.rawAudit(t), typo) || strings.Contains(strings.ToLower(f.rawAudit(t)), strings.ToLower(typo)) {
		t.Error("the identifier tried reached the log in the clear")
	}
	if evs[6].Attributes["failures"] != "3" || evs[6].Reason != "wrong password" {
		t.Errorf("third failure = %+v", evs[6])
	}
	lock := evs[7]
	if lock.Actor.Role != recourse.ActorSystem || lock.SubjectID != "alice" || lock.After["locked"] != "true" {
		t.Errorf("lock event = %+v", lock)
	}
	if denied := evs[8]; denied.Reason != "account locked" || denied.Attributes["password_correct"] != "true" {
		t.Errorf("denied event = %+v", denied)
	}
}

func TestRecordPolicyLoad(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	if err := f.svc.RecordPolicyLoad(ctx, "sha256:abc", "policy.yaml", true, ""); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.RecordPolicyLoad(ctx, "", "policy.yaml", false, "line 3: unknown action"); err != nil {
		t.Fatal(err)
	}
	evs := f.auditEvents(t)
	if len(evs) != 2 || evs[0].PolicyDigest != "sha256:abc" || evs[0].Actor.Role != recourse.ActorSystem || evs[0].Channel != recourse.ViaSystem ||
		evs[1].Outcome != recourse.OutcomeFailure || evs[1].Reason != "line 3: unknown action" || evs[1].Attributes["source"] != "policy.yaml" {
		t.Errorf("policy.load events = %+v / %+v", evs[0], evs[1])
	}
}

func TestAuditReadNeedsRole(t *testing.T) {
	f := newFixture(t)
	f.person(t, "alice")
	p := f.principal(t, f.signIn(t, "alice").Token)
	if _, err := f.svc.AuditEvents(t.Context(), p, recourse.AuditFilter{}); recourse.ErrorCode(err) != recourse.EFORBIDDEN {
		t.Errorf("a plain account read the audit log: %v", err)
	}
	p.Account.Roles = []string{recourse.RoleAdmin}
	if _, err := f.svc.AuditEvents(t.Context(), p, recourse.AuditFilter{}); err != nil {
		t.Errorf("an administrator: %v", err)
	}
	if _, err := f.svc.AuditCheckpoint(t.Context()); recourse.ErrorCode(err) != recourse.ENOTFOUND {
		t.Errorf("checkpoint before any: %v", err)
	}
}

// failingAudit is a store whose audit writes fail on demand, as a full disk
// or a broken table would make them.
type failingAudit struct {
	recourse.Store
	fail atomic.Bool
}

var errAuditDown = errors.New("audit table unavailable")

func (s *failingAudit) AddAuditEvent(ctx context.Context, e *recourse.AuditEvent) error {
	if s.fail.Load() {
		return errAuditDown
	}
	return s.Store.AddAuditEvent(ctx, e)
}

func (s *failingAudit) InTx(ctx context.Context, fn func(tx recourse.Tx) error) error {
	return s.Store.InTx(ctx, func(tx recourse.Tx) error { return fn(failingTx{Tx: tx, s: s}) })
}

type failingTx struct {
	recourse.Tx
	s *failingAudit
}

func (t failingTx) AddAuditEvent(ctx context.Context, e *recourse.AuditEvent) error {
	if t.s.fail.Load() {
		return errAuditDown
	}
	return t.Tx.AddAuditEvent(ctx, e)
}

// TestAuditFailsClosed: when the audit record cannot be written, the change
// it describes does not happen, and neither does its notice.
func TestAuditFailsClosed(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "r.db"), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fs := &failingAudit{Store: st}
	clock := &testClock{t: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}
	cfg := DefaultConfig()
	cfg.PasswordParams = testParams
	svc, err := New(Options{Store: fs, Clock: clock, Config: cfg, Keys: Keys{Master: []byte(strings.Repeat("k", 32))}})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{svc: svc, clock: clock, store: st}
	ctx := t.Context()
	f.person(t, "alice")
	f.person(t, "bob")
	tok := f.signIn(t, "alice").Token
	p := f.principal(t, tok)

	type state struct {
		account  *recourse.Account
		auths    int
		sessions int
		outbox   int
		events   int64
	}
	snapshot := func() state {
		a, _ := st.Account(ctx, "alice")
		auths, _ := st.Authenticators(ctx, "alice")
		sess, _ := st.Sessions(ctx, "alice", clock.Now())
		msgs, _ := st.OutboxMessages(ctx, 1000)
		n, _ := st.AuditBacklog(ctx)
		return state{a, len(auths), len(sess), len(msgs), n}
	}
	tests := []struct {
		name string
		do   func() error
	}{
		{"set password", func() error { return svc.SetPassword(ctx, "alice", "another-long-passphrase", Meta{}) }},
		{"create account", func() error {
			return svc.CreateAccount(ctx, &recourse.Account{ID: "carol", Username: "carol", DisplayName: "Carol", Kind: recourse.KindHuman,
				Status: recourse.StatusActive, Employment: recourse.EmploymentEmployee, IAL: 1}, Meta{})
		}},
		{"sign in", func() error { _, err := svc.SignIn(ctx, "alice", pw, Meta{}); return err }},
		{"failed sign-in", func() error { _, err := svc.SignIn(ctx, "alice", "wrong-password", Meta{}); return err }},
		{"recovery contacts", func() error { return svc.SetRecoveryContacts(ctx, p, []string{"bob"}, Meta{}) }},
		{"add channel", func() error {
			_, err := svc.AddChannel(ctx, p, recourse.ChannelEmail, "new@example.org", Meta{})
			return err
		}},
		{"recovery codes", func() error { _, err := svc.RecoveryCodes(ctx, p, Meta{}); return err }},
		{"begin TOTP", func() error { _, err := svc.BeginTOTP(ctx, p, "Phone", Meta{}); return err }},
		{"sign out everywhere", func() error { _, err := svc.SignOutEverywhere(ctx, p, Meta{}); return err }},
		{"revoke session", func() error { return svc.RevokeSession(ctx, p, p.Session.ID, Meta{}) }},
		{"unlock", func() error { return svc.UnlockAccount(ctx, "alice", Meta{}) }},
		{"policy load", func() error { return svc.RecordPolicyLoad(ctx, "d", "s", true, "") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot()
			fs.fail.Store(true)
			err := tc.do()
			fs.fail.Store(false)
			if recourse.ErrorCode(err) != recourse.EINTERNAL || !errors.Is(err, errAuditDown) {
				t.Fatalf("err = %v, want the internal audit failure", err)
			}
			after := snapshot()
			if after.account.Version != before.account.Version || after.account.FailedSignIns != before.account.FailedSignIns ||
				after.auths != before.auths || after.sessions != before.sessions || after.outbox != before.outbox || after.events != before.events {
				t.Errorf("changed without its audit record: before %+v, after %+v", before, after)
			}
			if _, err := st.Account(ctx, "carol"); !errors.Is(err, recourse.ErrNotFound) {
				t.Error("an account was created without its audit record")
			}
		})
	}
	// And with the audit log back, the same actions work.
	if err := svc.SetRecoveryContacts(ctx, p, []string{"bob"}, Meta{}); err != nil {
		t.Fatal(err)
	}
}
