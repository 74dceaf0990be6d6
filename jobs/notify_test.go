package jobs_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/jobs"
	"github.com/recourse/recourse/notify"
	"github.com/recourse/recourse/notify/notifytest"
	"github.com/recourse/recourse/service"
	"github.com/recourse/recourse/store/postgres"
	"github.com/recourse/recourse/store/sqlite"
)

// deadline bounds every wait for a delivery.
const deadline = 20 * time.Second

// notifyWorld is a world whose notifications go to a real SMTP server and
// real webhook receivers, all on loopback.
type notifyWorld struct {
	*world
	db      *sql.DB
	smtp    *notifytest.SMTPServer
	courier *notify.Courier
	// delivered streams the delivery jobs' events.
	delivered <-chan *river.Event
	runCtx    context.Context
}

type notifyOptions struct {
	// loopbackAllowed lets webhooks call 127.0.0.0/8 (tests only).
	loopbackAllowed bool
	// webhooks are configuration endpoints.
	webhooks []notify.WebhookConfig
	// stopped leaves the queue stopped (a process that died after
	// committing); call startQueue.
	stopped bool
}

func newNotifyWorld(t *testing.T, backend string, o notifyOptions) *notifyWorld {
	t.Helper()
	ctx := t.Context()
	var st recourse.Store
	var db *sql.DB
	switch backend {
	case "sqlite":
		s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "n.db"), sqlite.Options{Migrate: true})
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
	// Fast, bounded retries: five attempts, 10–50ms apart.
	q, err := jobs.New(db, backend, nil, jobs.Options{PollInterval: 20 * time.Millisecond, DeliveryAttempts: 5,
		RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond})
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

	srv := notifytest.NewSMTPServer(t, notifytest.STARTTLS, true)
	nc := notify.DefaultConfig()
	nc.SMTP = notify.SMTPConfig{Host: srv.Host, Port: srv.Port, Security: "starttls", Username: srv.Username, Password: srv.Password,
		From: "Recourse <security@example.com>", Timeout: 5 * time.Second}
	nc.SecurityMailbox, nc.FailingAfter = "soc@example.com", 2
	if o.loopbackAllowed {
		nc.AllowedNetworks = []string{"127.0.0.0/8"}
	}
	courier, err := notify.New(notify.Options{Config: nc, Issuer: "Recourse", PublicURL: cfg.PublicURL, SMTPTLS: srv.ClientTLS})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.EnableNotifications(ctx, service.Notifications{Courier: courier, Scheduler: q, Email: true,
		SecurityMailbox: nc.SecurityMailbox, Webhooks: o.webhooks, RotationOverlap: time.Hour, FailingAfter: nc.FailingAfter}); err != nil {
		t.Fatal(err)
	}

	w := &notifyWorld{world: &world{t: t, store: st, svc: svc, queue: q, clock: c, secrets: map[string]string{}},
		db: db, smtp: srv, courier: courier}
	for _, u := range users {
		w.secrets[u.Username] = u.TOTPSecret
	}
	events, cancelEvents := q.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	delivered, cancelDelivered := q.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled)
	w.events, w.delivered = events, delivered
	runCtx, stop := context.WithCancel(context.Background())
	w.runCtx = runCtx
	if !o.stopped {
		w.startQueue()
	}
	t.Cleanup(func() {
		sctx, c2 := context.WithTimeout(context.Background(), 10*time.Second)
		defer c2()
		_ = q.Stop(sctx)
		stop()
		cancelEvents()
		cancelDelivered()
		st.Close()
	})
	return w
}

func (w *notifyWorld) startQueue() {
	w.t.Helper()
	if err := w.queue.Start(w.runCtx, w.svc); err != nil {
		w.t.Fatal(err)
	}
}

func notifyBackends(t *testing.T, o notifyOptions, fn func(t *testing.T, w *notifyWorld)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, newNotifyWorld(t, "sqlite", o)) })
	t.Run("postgres", func(t *testing.T) { fn(t, newNotifyWorld(t, "postgres", o)) })
}

// admin signs in the demo administrator.
func (w *notifyWorld) admin() *service.Principal {
	w.t.Helper()
	p, _ := w.signIn("r.patel")
	return p
}

// notification waits until a notification matching f satisfies cond, after
// each delivery job's event, and returns it.
func (w *notifyWorld) notification(f recourse.NotificationFilter, what string, cond func(*recourse.Notification) bool) *recourse.Notification {
	w.t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		list, err := w.store.ListNotifications(w.t.Context(), f)
		if err != nil {
			w.t.Fatal(err)
		}
		for _, n := range list {
			if cond(n) {
				return n
			}
		}
		select {
		case <-w.delivered:
		case <-timer.C:
			w.t.Fatalf("no notification %s within %s: %+v", what, deadline, list)
		}
	}
}

// mailTo waits for a mail to an address whose subject contains s.
func (w *notifyWorld) mailTo(to, subject string) *notifytest.Mail {
	w.t.Helper()
	var found *notifytest.Mail
	w.smtp.WaitFor(w.t, deadline, "a mail to "+to+" about "+subject, func([]*notifytest.Mail) bool {
		for _, m := range w.smtp.MailsTo(to) {
			if strings.Contains(m.Subject, subject) {
				found = m
			}
		}
		return found != nil
	})
	return found
}

// smtpCode waits for the recovery code mailed to an address.
func (w *notifyWorld) smtpCode(to string) string {
	w.t.Helper()
	c := reCode.FindStringSubmatch(w.mailTo(to, "Your recovery code").Text)
	if c == nil {
		w.t.Fatalf("no code in the mail to %s", to)
	}
	return c[1]
}

// policyAlert emits one security.policy_reload_failed event.
func (w *notifyWorld) policyAlert(source string) {
	w.t.Helper()
	if err := w.svc.RecordPolicyLoad(w.t.Context(), "", source, false, "line 3: unknown field"); err != nil {
		w.t.Fatal(err)
	}
}

func TestMailOverSMTP(t *testing.T) {
	notifyBackends(t, notifyOptions{}, func(t *testing.T, w *notifyWorld) {
		ctx := t.Context()
		admin := w.admin()
		sent := func(to string) func(n *recourse.Notification) bool {
			return func(n *recourse.Notification) bool { return n.To == to && n.State != recourse.NotificationQueued }
		}

		// Delivered over SMTP, not kept in the outbox.
		p, _ := w.signIn("a.silva")
		if _, err := w.svc.SignOutEverywhere(ctx, p, meta()); err != nil {
			t.Fatal(err)
		}
		m := w.mailTo("a.silva@example.com", "You were signed out everywhere")
		for _, want := range []string{"Hello Ana Silva", "When: ", "From: 192.0.2.10", "Browser: test browser", "If this wasn't you", "/recover"} {
			if !strings.Contains(m.Text, want) {
				t.Errorf("the notice lacks %q:\n%s", want, m.Text)
			}
		}
		if m.HTML == "" || !m.TLS || m.User == "" || m.Header.Get("From") != `"Recourse" <security@example.com>` {
			t.Errorf("mail: TLS %v, user %q, From %q, HTML %d bytes", m.TLS, m.User, m.Header.Get("From"), len(m.HTML))
		}
		if w.mail("a.silva@example.com", "signed out everywhere") != nil {
			t.Error("with SMTP, the notice also went to the outbox")
		}
		n := w.notification(recourse.NotificationFilter{To: "a.silva@example.com"}, "sent", sent("a.silva@example.com"))
		if n.State != recourse.NotificationSent || n.Attempts != 1 || n.SentAt == nil || n.Body != nil || n.Kind != recourse.NotifyEmail {
			t.Errorf("notification = %+v", n)
		}
		if _, err := w.svc.ListNotifications(ctx, p, recourse.NotificationFilter{}); recourse.ErrorCode(err) != recourse.EFORBIDDEN {
			t.Errorf("a non-administrator listed notifications: %v", err)
		}
		list, err := w.svc.ListNotifications(ctx, admin, recourse.NotificationFilter{AccountID: "a.silva"})
		if err != nil || len(list) == 0 || list[0].Body != nil {
			t.Errorf("ListNotifications = %v, %v", list, err)
		}

		// The relay fails twice, then takes it: retried with back-off, one mail.
		w.smtp.TempFail(2)
		p, _ = w.signIn("c.novak")
		if _, err := w.svc.SignOutEverywhere(ctx, p, meta()); err != nil {
			t.Fatal(err)
		}
		n = w.notification(recourse.NotificationFilter{To: "c.novak@example.com"}, "sent after retries", sent("c.novak@example.com"))
		if n.State != recourse.NotificationSent || n.Attempts != 3 {
			t.Errorf("after two temporary failures: %+v", n)
		}
		if got := len(w.smtp.MailsTo("c.novak@example.com")); got != 1 {
			t.Errorf("c.novak got %d mails", got)
		}

		// The relay refuses the recipient for good: failed at once, with why.
		w.smtp.Reject("h.berg@example.com")
		p, _ = w.signIn("h.berg")
		if _, err := w.svc.SignOutEverywhere(ctx, p, meta()); err != nil {
			t.Fatal(err)
		}
		n = w.notification(recourse.NotificationFilter{To: "h.berg@example.com"}, "failed", sent("h.berg@example.com"))
		if n.State != recourse.NotificationFailed || n.Attempts != 1 || !strings.Contains(n.LastError, "550") {
			t.Errorf("a refused recipient: %+v", n)
		}
	})
}

func TestMailSurvivesACrash(t *testing.T) {
	notifyBackends(t, notifyOptions{stopped: true}, func(t *testing.T, w *notifyWorld) {
		ctx := t.Context()
		// The change commits with its notice and job; the process dies
		// before any worker runs.
		if err := w.svc.SetPassword(ctx, "a.silva", "saffron-kettle-meadow-9", meta()); err != nil {
			t.Fatal(err)
		}
		list, _ := w.store.ListNotifications(ctx, recourse.NotificationFilter{To: "a.silva@example.com"})
		if len(list) != 1 || list[0].State != recourse.NotificationQueued {
			t.Fatalf("after commit: %+v", list)
		}
		if n := len(w.smtp.Mails()); n != 0 {
			t.Fatalf("%d mails before any worker ran", n)
		}
		// A new process starts: the notice goes out.
		w.startQueue()
		w.mailTo("a.silva@example.com", "Your password was reset")
	})
}

func TestNotificationRolledBackWithItsChange(t *testing.T) {
	notifyBackends(t, notifyOptions{}, func(t *testing.T, w *notifyWorld) {
		ctx := t.Context()
		count := func() int {
			var n int
			if err := w.db.QueryRowContext(ctx, `SELECT count(*) FROM river_job WHERE kind = 'notify_deliver'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := count()
		boom := errors.New("the change failed")
		err := w.store.InTx(ctx, func(tx recourse.Tx) error {
			n := &recourse.Notification{ID: "msg_rolledback", Kind: recourse.NotifyEmail, To: "a.silva@example.com", Subject: "s",
				Body: []byte("x"), State: recourse.NotificationQueued, CreatedAt: w.clock.Now()}
			if err := tx.AddNotification(ctx, n); err != nil {
				return err
			}
			if err := w.queue.ScheduleDelivery(ctx, tx, n); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if _, err := w.store.Notification(ctx, "msg_rolledback"); !errors.Is(err, recourse.ErrNotFound) {
			t.Errorf("the notification survived the rollback: %v", err)
		}
		if after := count(); after != before {
			t.Errorf("delivery jobs: %d before, %d after a rolled-back change", before, after)
		}
		if err := w.queue.ScheduleDelivery(ctx, w.store, &recourse.Notification{ID: "msg_x"}); err == nil {
			t.Error("a delivery was queued outside a transaction")
		}
	})
}

var reSignatures = regexp.MustCompile(`v1,`)

func TestWebhookDelivery(t *testing.T) {
	notifyBackends(t, notifyOptions{loopbackAllowed: true}, func(t *testing.T, w *notifyWorld) {
		ctx := t.Context()
		admin := w.admin()
		rcv := notifytest.NewReceiver(t)
		if _, _, err := w.svc.CreateWebhook(ctx, admin, rcv.URL, []string{"bogus.event"}, meta()); recourse.ErrorCode(err) != recourse.EINVALID {
			t.Fatalf("unknown event accepted: %v", err)
		}
		p, _ := w.signIn("a.silva")
		if _, _, err := w.svc.CreateWebhook(ctx, p, rcv.URL, []string{"*"}, meta()); recourse.ErrorCode(err) != recourse.EFORBIDDEN {
			t.Fatalf("a non-administrator created a webhook: %v", err)
		}
		hook, oldSecret, err := w.svc.CreateWebhook(ctx, admin, rcv.URL, []string{"security.*"}, meta())
		if err != nil {
			t.Fatal(err)
		}
		rcv.SetSecrets(t, oldSecret)
		callsFor := func(id string) []notifytest.Call {
			var out []notifytest.Call
			for _, c := range rcv.Calls() {
				if c.ID == id {
					out = append(out, c)
				}
			}
			return out
		}
		// emit sends one event and waits until its delivery is over.
		newest := func() string {
			list, err := w.store.ListNotifications(ctx, recourse.NotificationFilter{To: hook.ID, Limit: 1})
			if err != nil || len(list) == 0 {
				return ""
			}
			return list[0].ID
		}
		emit := func(source string) *recourse.Notification {
			t.Helper()
			w.policyAlert(source)
			id := newest()
			return w.notification(recourse.NotificationFilter{To: hook.ID}, "for "+source, func(n *recourse.Notification) bool {
				return n.ID == id && n.State != recourse.NotificationQueued
			})
		}

		t.Run("verified with the reference library", func(t *testing.T) {
			n := emit("p1.yaml")
			evs := rcv.Events()
			if n.State != recourse.NotificationSent || len(evs) != 1 || evs[0].ID != n.ID || evs[0].Type != notify.EventPolicyReloadFailed ||
				evs[0].Data["source"] != "p1.yaml" {
				t.Fatalf("notification %+v, events %+v", n, evs)
			}
		})
		t.Run("retried after receiver failures", func(t *testing.T) {
			rcv.Respond(500, 503)
			n := emit("p2.yaml")
			if n.State != recourse.NotificationSent || n.Attempts != 3 || len(callsFor(n.ID)) != 3 {
				t.Fatalf("notification %+v, %d calls", n, len(callsFor(n.ID)))
			}
		})
		t.Run("idempotent on the receiver", func(t *testing.T) {
			rcv.Respond(notifytest.AcceptThenFail) // processed, but the answer is lost
			n := emit("p3.yaml")
			calls := callsFor(n.ID)
			if n.State != recourse.NotificationSent || len(calls) != 2 || !calls[1].Duplicate {
				t.Fatalf("notification %+v, calls %+v", n, calls)
			}
			once := 0
			for _, e := range rcv.Events() {
				if e.ID == n.ID {
					once++
				}
			}
			if once != 1 {
				t.Fatalf("the receiver processed the event %d times", once)
			}
		})
		t.Run("secret rotation", func(t *testing.T) {
			newSecret, err := w.svc.RotateWebhookSecret(ctx, admin, hook.ID, meta())
			if err != nil || newSecret == oldSecret {
				t.Fatal(err)
			}
			// During the overlap both secrets sign: a receiver on either verifies.
			n := emit("p4.yaml")
			calls := callsFor(n.ID)
			if n.State != recourse.NotificationSent || len(reSignatures.FindAllString(calls[0].Signature, -1)) != 2 {
				t.Fatalf("old secret during the overlap: %+v, %+v", n, calls)
			}
			rcv.SetSecrets(t, newSecret)
			if n := emit("p5.yaml"); n.State != recourse.NotificationSent {
				t.Fatalf("new secret during the overlap: %+v", n)
			}
			// After the overlap only the new secret signs.
			w.clock.Add(time.Hour + time.Second)
			rcv.SetSecrets(t, oldSecret)
			n = emit("p6.yaml")
			if n.State != recourse.NotificationFailed || n.Attempts != 5 || !strings.Contains(n.LastError, "401") {
				t.Fatalf("old secret after the overlap: %+v", n)
			}
			if c := callsFor(n.ID); len(reSignatures.FindAllString(c[0].Signature, -1)) != 1 {
				t.Fatalf("after the overlap: %s", c[0].Signature)
			}
			// Five failures in a row: the endpoint is flagged.
			if k, err := w.svc.FailingWebhooks(ctx); err != nil || k != 1 {
				t.Fatalf("FailingWebhooks = %d, %v", k, err)
			}
			rcv.SetSecrets(t, newSecret)
			if n := emit("p7.yaml"); n.State != recourse.NotificationSent {
				t.Fatalf("new secret after the overlap: %+v", n)
			}
			if k, _ := w.svc.FailingWebhooks(ctx); k != 0 {
				t.Fatalf("a success did not clear the flag: %d", k)
			}
		})
		t.Run("410 Gone disables the endpoint", func(t *testing.T) {
			rcv.Respond(410)
			n := emit("p8.yaml")
			if n.State != recourse.NotificationFailed || n.Attempts != 1 || !strings.Contains(n.LastError, "410") {
				t.Fatalf("after 410: %+v", n)
			}
			hooks, err := w.svc.ListWebhooks(ctx, admin)
			if err != nil || len(hooks) != 1 || !hooks[0].Disabled {
				t.Fatalf("ListWebhooks = %+v, %v", hooks, err)
			}
			calls, last := len(rcv.Calls()), newest()
			w.policyAlert("p9.yaml")
			if newest() != last {
				t.Fatal("an event was queued for a disabled endpoint")
			}
			if len(rcv.Calls()) != calls {
				t.Fatal("a disabled endpoint was called")
			}
			if k, _ := w.svc.FailingWebhooks(ctx); k != 1 {
				t.Fatalf("a disabled endpoint is not flagged: %d", k)
			}
		})
		t.Run("delete", func(t *testing.T) {
			if err := w.svc.DeleteWebhook(ctx, admin, hook.ID, meta()); err != nil {
				t.Fatal(err)
			}
			if err := w.svc.DeleteWebhook(ctx, admin, hook.ID, meta()); recourse.ErrorCode(err) != recourse.ENOTFOUND {
				t.Fatalf("second delete: %v", err)
			}
		})
	})
}

func TestWebhookSSRFRefusals(t *testing.T) {
	secret := notify.NewSecret()
	rcv := notifytest.NewReceiver(t, secret)
	// A name that resolves to loopback: a configured endpoint whose name
	// was public when it was set, and now points inside (DNS rebinding).
	// The guard refuses it when dialling.
	rebound := strings.Replace(rcv.URL, "127.0.0.1", "localhost", 1)
	o := notifyOptions{webhooks: []notify.WebhookConfig{{URL: rebound, Secret: secret, Events: []string{"*"}}}}
	notifyBackends(t, o, func(t *testing.T, w *notifyWorld) {
		ctx := t.Context()
		admin := w.admin()
		for _, url := range []string{
			rcv.URL, // loopback, not allowed here
			"https://[::1]/hooks",
			"https://localhost/hooks",
			"https://169.254.169.254/latest/meta-data/",
			"https://10.0.0.8/hooks",
			"https://192.168.1.20/hooks",
			"http://hooks.example.com/hooks", // no TLS
		} {
			if _, _, err := w.svc.CreateWebhook(ctx, admin, url, []string{"*"}, meta()); recourse.ErrorCode(err) != recourse.EINVALID {
				t.Errorf("CreateWebhook(%s) = %v, want a refusal", url, err)
			}
		}
		hooks, err := w.svc.ListWebhooks(ctx, admin)
		if err != nil || len(hooks) != 1 || hooks[0].Source != recourse.WebhookFromConfig {
			t.Fatalf("ListWebhooks = %+v, %v", hooks, err)
		}
		if err := w.svc.DeleteWebhook(ctx, admin, hooks[0].ID, meta()); recourse.ErrorCode(err) != recourse.ECONFLICT {
			t.Errorf("deleted a configuration endpoint through the service: %v", err)
		}
		w.policyAlert("p.yaml")
		n := w.notification(recourse.NotificationFilter{To: hooks[0].ID}, "refused", func(n *recourse.Notification) bool {
			return n.State != recourse.NotificationQueued
		})
		if n.State != recourse.NotificationFailed || n.Attempts != 1 || !strings.Contains(n.LastError, "loopback") {
			t.Fatalf("a call to a name resolving to loopback: %+v", n)
		}
		if calls := rcv.Calls(); len(calls) != 0 {
			t.Fatalf("the receiver got %d calls", len(calls))
		}
	})
}

// TestLostDeviceNoticesEndToEnd drives a lost-device recovery with mail
// going to a real SMTP server and events to two webhook receivers (one for
// the request's lifecycle, one for security), with a relay hiccup and a
// receiver that loses an answer on the way. Every channel gets the right
// notices, in order, each exactly once as the receiver sees it.
func TestLostDeviceNoticesEndToEnd(t *testing.T) {
	notifyBackends(t, notifyOptions{loopbackAllowed: true}, func(t *testing.T, w *notifyWorld) {
		ctx := t.Context()
		admin := w.admin()
		lifecycle, security := notifytest.NewReceiver(t), notifytest.NewReceiver(t)
		for _, h := range []struct {
			rcv    *notifytest.Receiver
			events string
		}{{lifecycle, "recovery.*"}, {security, "security.*"}} {
			_, secret, err := w.svc.CreateWebhook(ctx, admin, h.rcv.URL, []string{h.events}, meta())
			if err != nil {
				t.Fatal(err)
			}
			h.rcv.SetSecrets(t, secret)
		}
		var want []string
		// step waits for the next lifecycle events and checks the order so far.
		step := func(events ...string) {
			t.Helper()
			want = append(want, events...)
			lifecycle.WaitFor(t, deadline, strings.Join(events, ", "), func(evs []notifytest.Event, _ []notifytest.Call) bool {
				return len(evs) >= len(want)
			})
			if got := lifecycle.Types(); !slices.Equal(got, want) {
				t.Fatalf("lifecycle events = %v, want %v", got, want)
			}
		}
		const dchen, phone = "d.chen@example.com", "+15550100001"

		rs := w.start("d.chen", "device")
		step(notify.EventRecoveryOpened)
		started := w.mailTo(dchen, "A recovery of your account was started")
		for _, part := range []string{"replace a lost device", "When: ", "From: 192.0.2.10", "Browser: test browser",
			"This wasn't me: open https://recourse.example.com/recover/cancel?t=rcx_"} {
			if !strings.Contains(started.Text, part) {
				t.Errorf("the notice lacks %q:\n%s", part, started.Text)
			}
		}
		if !strings.Contains(started.HTML, `href="https://recourse.example.com/recover/cancel?t=rcx_`) {
			t.Errorf("the HTML notice has no cancel link:\n%s", started.HTML)
		}
		code := w.smtpCode(dchen)
		// The phone has no SMS gateway: its code is kept in the outbox, and
		// its notification says why it was not sent.
		sms := w.notification(recourse.NotificationFilter{To: phone}, "for the phone", func(*recourse.Notification) bool { return true })
		if sms.Kind != recourse.NotifySMS || sms.State != recourse.NotificationFailed || !strings.Contains(sms.LastError, "no SMS gateway") {
			t.Errorf("SMS notification = %+v", sms)
		}

		w.smtp.TempFail(1) // the relay refuses the next mail once
		if _, err := w.svc.SubmitChallengeCode(ctx, rs.RequestID, rs.BrowserSecret, code, meta()); err != nil {
			t.Fatal(err)
		}
		step(notify.EventRecoveryAwaitingApproval)
		w.mailTo("m.okafor@example.com", "Your approval is needed: Daniel Chen")

		lifecycle.Respond(notifytest.AcceptThenFail) // the receiver processes the next call but its answer is lost
		mgr, _ := w.signIn("m.okafor")
		if err := w.svc.Vote(ctx, mgr, rs.RequestID, "approve", "called him", meta()); err != nil {
			t.Fatal(err)
		}
		step(notify.EventRecoveryApproved, notify.EventRecoveryCoolingOff)
		w.mailTo(dchen, "Your account recovery was approved")
		cooling := w.mailTo(dchen, "waiting before it completes")
		if !strings.Contains(cooling.Text, "/recover/cancel?t=rcx_") {
			t.Errorf("the cooling-off notice has no \"this wasn't me\" link:\n%s", cooling.Text)
		}

		w.clock.Add(24*time.Hour + time.Second)
		if err := w.svc.AdvanceRecovery(ctx, rs.RequestID); err != nil {
			t.Fatal(err)
		}
		step(notify.EventRecoveryReady)
		w.mailTo(dchen, "Your account recovery can be completed")

		w.complete(rs, "")
		step(notify.EventRecoveryCompleted)
		done := w.mailTo(dchen, "Your account was recovered")
		if !strings.Contains(done.Text, "authenticator app and passkey") {
			t.Errorf("the completion notice does not say what was removed:\n%s", done.Text)
		}
		// The trust anchor changed: every old channel hears, the phone too.
		w.notification(recourse.NotificationFilter{To: phone}, "completion for the phone", func(n *recourse.Notification) bool {
			return strings.Contains(n.Subject, "Your account was recovered")
		})
		// Security hears of the device replacement, by webhook and mailbox.
		security.WaitFor(t, deadline, "the device replacement", func(evs []notifytest.Event, _ []notifytest.Call) bool { return len(evs) >= 1 })
		soc := w.mailTo("soc@example.com", "Device replaced for d.chen")
		if !strings.Contains(soc.Text, rs.RequestID) {
			t.Errorf("the security mail does not name the request:\n%s", soc.Text)
		}

		// Once everything is delivered, each channel saw each notice once.
		w.idle()
		if got := security.Types(); !slices.Equal(got, []string{notify.EventDeviceReplaced}) {
			t.Errorf("security events = %v", got)
		}
		if ev := security.Events()[0]; ev.Data["request_id"] != rs.RequestID || ev.Data["account_id"] != "d.chen" || ev.Data["action"] != "authenticator.recover" {
			t.Errorf("security event data = %v", ev.Data)
		}
		if got := lifecycle.Types(); !slices.Equal(got, want) {
			t.Errorf("lifecycle events = %v, want %v", got, want)
		}
		for _, ev := range lifecycle.Events() {
			if ev.Data["request_id"] != rs.RequestID {
				t.Errorf("%s is about %v", ev.Type, ev.Data["request_id"])
			}
		}
		duplicates := 0
		for _, c := range lifecycle.Calls() {
			if c.Duplicate {
				duplicates++
			}
		}
		if duplicates != 1 {
			t.Errorf("the lost answer caused %d duplicate calls, want 1 (dropped by the receiver)", duplicates)
		}
		wantMail := []string{
			"Your recovery code", "A recovery of your account was started", "Your account recovery was approved",
			"Your account recovery is waiting before it completes", "Your account recovery can be completed", "Your account was recovered",
		}
		var subjects []string
		for _, m := range w.smtp.MailsTo(dchen) {
			subjects = append(subjects, m.Subject)
			if m.Subject != "Your recovery code" && (!strings.Contains(m.Text, "When: ") || !strings.Contains(m.Text, "this wasn't you")) {
				t.Errorf("%q does not say when, or what to do if it wasn't them:\n%s", m.Subject, m.Text)
			}
		}
		slices.Sort(subjects)
		slices.Sort(wantMail)
		if !slices.Equal(subjects, wantMail) {
			t.Errorf("mail to %s:\n got %q\nwant %q", dchen, subjects, wantMail)
		}
		if raw, unique := len(w.smtp.Mails()), countUnique(w.smtp.Mails()); raw != unique {
			t.Errorf("the relay accepted %d mails for %d notices", raw, unique)
		}
		if n := len(w.smtp.MailsTo("m.okafor@example.com")); n != 1 {
			t.Errorf("the manager got %d mails", n)
		}
	})
}

func countUnique(ms []*notifytest.Mail) int {
	seen := map[string]bool{}
	for _, m := range ms {
		seen[m.MessageID] = true
	}
	return len(seen)
}

// idle waits until no notification is queued.
func (w *notifyWorld) idle() {
	w.t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		list, err := w.store.ListNotifications(w.t.Context(), recourse.NotificationFilter{State: recourse.NotificationQueued})
		if err != nil {
			w.t.Fatal(err)
		}
		if len(list) == 0 {
			return
		}
		select {
		case <-w.delivered:
		case <-timer.C:
			w.t.Fatalf("%d notifications still queued after %s", len(list), deadline)
		}
	}
}

// TestDeviceReplacedWithAccessPassAlertsSecurity: when a lost-device
// recovery ends with a temporary access pass, the security team's mail and
// webhook event say that a pass is outstanding, and until when.
func TestDeviceReplacedWithAccessPassAlertsSecurity(t *testing.T) {
	notifyBackends(t, notifyOptions{loopbackAllowed: true}, func(t *testing.T, w *notifyWorld) {
		ctx := t.Context()
		security := notifytest.NewReceiver(t)
		_, secret, err := w.svc.CreateWebhook(ctx, w.admin(), security.URL, []string{"security.*"}, meta())
		if err != nil {
			t.Fatal(err)
		}
		security.SetSecrets(t, secret)
		rs := w.start("d.chen", "device")
		if _, err := w.svc.SubmitChallengeCode(ctx, rs.RequestID, rs.BrowserSecret, w.smtpCode("d.chen@example.com"), meta()); err != nil {
			t.Fatal(err)
		}
		mgr, _ := w.signIn("m.okafor")
		if err := w.svc.Vote(ctx, mgr, rs.RequestID, "approve", "called him", meta()); err != nil {
			t.Fatal(err)
		}
		w.clock.Add(24*time.Hour + time.Second)
		if err := w.svc.AdvanceRecovery(ctx, rs.RequestID); err != nil {
			t.Fatal(err)
		}
		tok, err := w.svc.ContinueRecovery(ctx, rs.RequestID, rs.BrowserSecret, meta())
		if err != nil {
			t.Fatal(err)
		}
		done, err := w.svc.CompleteRecovery(ctx, rs.RequestID, rs.BrowserSecret, tok, service.Completion{AccessPass: true}, meta())
		if err != nil || done.AccessPass == "" {
			t.Fatalf("CompleteRecovery with a pass: %+v, %v", done, err)
		}
		until := done.AccessPassExpires.UTC().Format("2006-01-02 15:04 UTC")
		soc := w.mailTo("soc@example.com", "Device replaced for d.chen")
		if !strings.Contains(soc.Text, "temporary access pass") || !strings.Contains(soc.Text, until) {
			t.Errorf("the security mail does not say a pass is outstanding until %s:\n%s", until, soc.Text)
		}
		if strings.Contains(soc.Text, done.AccessPass) {
			t.Fatal("the security mail holds the pass")
		}
		security.WaitFor(t, 20*time.Second, "the device replacement", func(evs []notifytest.Event, _ []notifytest.Call) bool { return len(evs) >= 1 })
		ev := security.Events()[0]
		if ev.Type != notify.EventDeviceReplaced || ev.Data["access_pass_expires_at"] != done.AccessPassExpires.UTC().Format(time.RFC3339) {
			t.Errorf("security event %s data = %v", ev.Type, ev.Data)
		}
	})
}
