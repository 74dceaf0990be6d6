package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/notify"
)

// fakeCourier answers each attempt with the next scripted error.
type fakeCourier struct {
	mu     sync.Mutex
	errs   []error
	emails []notify.Email
	calls  []notify.Call
}

func (c *fakeCourier) next() error {
	if len(c.errs) == 0 {
		return nil
	}
	err := c.errs[0]
	c.errs = c.errs[1:]
	return err
}

func (c *fakeCourier) SendEmail(_ context.Context, m notify.Email) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.emails = append(c.emails, m)
	return c.next()
}

func (c *fakeCourier) CallWebhook(_ context.Context, call notify.Call) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, call)
	return c.next()
}

func (c *fakeCourier) CheckWebhookURL(raw string) error { return notify.Guard{}.CheckURL(raw) }

// fakeDeliveries records what would be queued.
type fakeDeliveries struct{ ids []string }

func (d *fakeDeliveries) ScheduleDelivery(_ context.Context, _ recourse.Tx, n *recourse.Notification) error {
	d.ids = append(d.ids, n.ID)
	return nil
}

func notifyFixture(t *testing.T) (*fixture, *fakeCourier, *fakeDeliveries, *Principal) {
	t.Helper()
	f := newFixture(t)
	c, d := &fakeCourier{}, &fakeDeliveries{}
	if err := f.svc.EnableNotifications(t.Context(), Notifications{Courier: c, Scheduler: d, Email: true, RotationOverlap: time.Hour}); err != nil {
		t.Fatal(err)
	}
	admin := &recourse.Account{ID: "root", Username: "root", DisplayName: "Root", Kind: recourse.KindHuman, Status: recourse.StatusActive,
		Employment: recourse.EmploymentEmployee, IAL: 2, Roles: []string{recourse.RoleAdmin}}
	if err := f.svc.CreateAccount(t.Context(), admin, Meta{}); err != nil {
		t.Fatal(err)
	}
	return f, c, d, &Principal{Account: admin}
}

func TestDeliverNotificationOutcomes(t *testing.T) {
	boom := errors.New("connection reset")
	tests := []struct {
		name      string
		errs      []error
		final     bool
		state     recourse.NotificationState
		retryable bool // the job should retry
		disabled  bool
	}{
		{"delivered", nil, false, recourse.NotificationSent, false, false},
		{"transient failure", []error{boom}, false, recourse.NotificationQueued, true, false},
		{"transient failure on the last attempt", []error{boom}, true, recourse.NotificationFailed, true, false},
		{"server error", []error{&notify.StatusError{Code: 503}}, false, recourse.NotificationQueued, true, false},
		{"gone", []error{notify.ErrGone}, false, recourse.NotificationFailed, false, true},
		{"refused target", []error{fmt.Errorf("%w: 10.0.0.1 is a private address", notify.ErrRefusedTarget)}, false, recourse.NotificationFailed, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, c, d, admin := notifyFixture(t)
			ctx := t.Context()
			hook, secret, err := f.svc.CreateWebhook(ctx, admin, "https://siem.example.com/hooks", []string{"security.*"}, Meta{})
			if err != nil {
				t.Fatal(err)
			}
			if err := f.svc.RecordPolicyLoad(ctx, "", "policy.yaml", false, "bad"); err != nil {
				t.Fatal(err)
			}
			if len(d.ids) != 1 {
				t.Fatalf("%d deliveries queued, want 1", len(d.ids))
			}
			c.errs = tc.errs
			err = f.svc.DeliverNotification(ctx, d.ids[0], tc.final)
			var ok bool
			switch {
			case tc.state == recourse.NotificationSent:
				ok = err == nil
			case tc.retryable:
				ok = err != nil && !errors.Is(err, ErrUndeliverable)
			default:
				ok = errors.Is(err, ErrUndeliverable)
			}
			if !ok {
				t.Fatalf("DeliverNotification = %v (retryable %v)", err, tc.retryable)
			}
			n, _ := f.store.Notification(ctx, d.ids[0])
			if n.State != tc.state || n.Attempts != 1 || (tc.errs != nil) != (n.LastError != "") {
				t.Fatalf("notification = %+v", n)
			}
			eps, _ := f.store.WebhookEndpoints(ctx)
			if (eps[0].DisabledAt != nil) != tc.disabled {
				t.Fatalf("endpoint disabled = %v", eps[0].DisabledAt)
			}
			call := c.calls[0]
			key, _ := notify.ParseSecret(secret)
			if call.ID != n.ID || call.URL != hook.URL || len(call.Secrets) != 1 || string(call.Secrets[0]) != string(key) ||
				!strings.Contains(string(call.Payload), `"type":"security.policy_reload_failed"`) {
				t.Fatalf("call = %+v", call)
			}
			// A notification no longer queued is left alone.
			if n.State != recourse.NotificationQueued {
				if err := f.svc.DeliverNotification(ctx, n.ID, false); err != nil || len(c.calls) != 1 {
					t.Fatalf("second delivery: %v, %d calls", err, len(c.calls))
				}
			}
		})
	}
}

func TestNotificationsAreSealedAndListedWithoutBodies(t *testing.T) {
	f, c, d, admin := notifyFixture(t)
	ctx := t.Context()
	f.person(t, "alice")
	if err := f.svc.SetPassword(ctx, "alice", "another-violet-lantern", Meta{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	if len(d.ids) != 1 {
		t.Fatalf("%d deliveries queued", len(d.ids))
	}
	stored, _ := f.store.Notification(ctx, d.ids[0])
	if strings.Contains(string(stored.Body), "password") || stored.State != recourse.NotificationQueued {
		t.Fatalf("the body is stored in the clear: %q", stored.Body)
	}
	if err := f.svc.DeliverNotification(ctx, d.ids[0], false); err != nil {
		t.Fatal(err)
	}
	if len(c.emails) != 1 || c.emails[0].To != "alice@example.com" || !strings.Contains(c.emails[0].Text, "From: 192.0.2.1") {
		t.Fatalf("emails = %+v", c.emails)
	}
	list, err := f.svc.ListNotifications(ctx, admin, recourse.NotificationFilter{AccountID: "alice"})
	if err != nil || len(list) != 1 || list[0].Body != nil || list[0].State != recourse.NotificationSent || list[0].Subject != "Your password was reset" {
		t.Fatalf("ListNotifications = %+v, %v", list, err)
	}
	if msgs, _ := f.store.OutboxMessages(ctx, 10); len(msgs) != 0 {
		t.Fatalf("with SMTP, mail went to the outbox: %v", msgs)
	}
}

// Without SMTP each message is written once: the outbox holds it, and its
// notification, delivered when stored, keeps no body.
func TestOutboxMessagesAreWrittenOnce(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	if err := f.svc.EnableNotifications(ctx, Notifications{Courier: &fakeCourier{}, Scheduler: &fakeDeliveries{}}); err != nil {
		t.Fatal(err)
	}
	f.person(t, "alice")
	if err := f.svc.SetPassword(ctx, "alice", "another-violet-lantern", Meta{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	msgs, err := f.store.OutboxMessages(ctx, 10)
	if err != nil || len(msgs) != 1 || msgs[0].Subject != "Your password was reset" || !strings.Contains(msgs[0].Body, "From: 192.0.2.1") {
		t.Fatalf("outbox = %+v, %v", msgs, err)
	}
	list, err := f.store.ListNotifications(ctx, recourse.NotificationFilter{AccountID: "alice"})
	if err != nil || len(list) != 1 || list[0].State != recourse.NotificationSent {
		t.Fatalf("notifications = %+v, %v", list, err)
	}
	stored, err := f.store.Notification(ctx, list[0].ID)
	if err != nil || len(stored.Body) != 0 || stored.Subject != "Your password was reset" || stored.SentAt == nil {
		t.Fatalf("the delivered notification = %+v, %v", stored, err)
	}
}

// TestWebhookRoutes: emit routes by a kept copy of the endpoints. A change
// made through the service is routed by at once; one made elsewhere (another
// replica, here the store directly) within webhookRoutesTTL.
func TestWebhookRoutes(t *testing.T) {
	f, c, d, admin := notifyFixture(t)
	ctx := t.Context()
	queued := func() int {
		t.Helper()
		before := len(d.ids)
		if err := f.svc.RecordPolicyLoad(ctx, "", "policy.yaml", false, "bad"); err != nil {
			t.Fatal(err)
		}
		return len(d.ids) - before
	}
	if n := queued(); n != 0 {
		t.Fatalf("%d calls queued without an endpoint", n)
	}
	hook, _, err := f.svc.CreateWebhook(ctx, admin, "https://siem.example.com/hooks", []string{"security.*"}, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if n := queued(); n != 1 {
		t.Fatalf("%d calls queued right after CreateWebhook, want 1", n)
	}
	// Disabled by another replica: routed to until the copy is too old.
	setDisabled := func(disabled bool) {
		t.Helper()
		err := f.store.InTx(ctx, func(tx recourse.Tx) error {
			e, err := tx.WebhookEndpoint(ctx, hook.ID)
			if err != nil {
				return err
			}
			e.DisabledAt, e.DisabledReason = nil, ""
			if disabled {
				at := f.clock.Now()
				e.DisabledAt, e.DisabledReason = &at, "elsewhere"
			}
			return tx.UpdateWebhookEndpoint(ctx, e)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	setDisabled(true)
	if n := queued(); n != 1 {
		t.Fatalf("%d calls queued within the TTL of a change made elsewhere, want 1 (the kept copy)", n)
	}
	f.clock.Add(webhookRoutesTTL)
	if n := queued(); n != 0 {
		t.Fatalf("%d calls queued to an endpoint disabled elsewhere after the TTL", n)
	}
	setDisabled(false)
	f.clock.Add(webhookRoutesTTL)
	if n := queued(); n != 1 {
		t.Fatalf("%d calls queued after the endpoint was enabled again elsewhere, want 1", n)
	}
	// A 410 Gone disables it here: no call is queued from the next event on.
	c.errs = []error{notify.ErrGone}
	if err := f.svc.DeliverNotification(ctx, d.ids[len(d.ids)-1], false); !errors.Is(err, ErrUndeliverable) {
		t.Fatalf("DeliverNotification = %v", err)
	}
	if n := queued(); n != 0 {
		t.Fatalf("%d calls queued right after a 410 Gone disabled the endpoint", n)
	}
	// Deleted here: none either, even once enabled elsewhere meanwhile.
	setDisabled(false)
	if err := f.svc.DeleteWebhook(ctx, admin, hook.ID, Meta{}); err != nil {
		t.Fatal(err)
	}
	if n := queued(); n != 0 {
		t.Fatalf("%d calls queued right after DeleteWebhook", n)
	}
}

func TestWebhookRotationOverlap(t *testing.T) {
	f, c, d, admin := notifyFixture(t)
	ctx := t.Context()
	hook, _, err := f.svc.CreateWebhook(ctx, admin, "https://siem.example.com/hooks", []string{"*"}, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.RotateWebhookSecret(ctx, &Principal{Account: &recourse.Account{ID: "x"}}, hook.ID, Meta{}); recourse.ErrorCode(err) != recourse.EFORBIDDEN {
		t.Fatalf("a non-administrator rotated: %v", err)
	}
	fresh, err := f.svc.RotateWebhookSecret(ctx, admin, hook.ID, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	freshKey, _ := notify.ParseSecret(fresh)
	deliver := func() notify.Call {
		t.Helper()
		if err := f.svc.RecordPolicyLoad(ctx, "", "p.yaml", false, "bad"); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.DeliverNotification(ctx, d.ids[len(d.ids)-1], false); err != nil {
			t.Fatal(err)
		}
		return c.calls[len(c.calls)-1]
	}
	if call := deliver(); len(call.Secrets) != 2 || string(call.Secrets[0]) != string(freshKey) {
		t.Fatalf("during the overlap: %d secrets", len(call.Secrets))
	}
	hooks, _ := f.svc.ListWebhooks(ctx, admin)
	if hooks[0].RotatingUntil == nil {
		t.Fatal("ListWebhooks does not show the rotation")
	}
	f.clock.Add(time.Hour)
	if call := deliver(); len(call.Secrets) != 1 || string(call.Secrets[0]) != string(freshKey) {
		t.Fatalf("after the overlap: %d secrets", len(call.Secrets))
	}
}

func TestConfigWebhooksSync(t *testing.T) {
	f, _, _, admin := notifyFixture(t)
	ctx := t.Context()
	s1, s2 := notify.NewSecret(), notify.NewSecret()
	apply := func(hooks ...notify.WebhookConfig) []*Webhook {
		t.Helper()
		if err := f.svc.syncConfigWebhooks(ctx, hooks); err != nil {
			t.Fatal(err)
		}
		list, err := f.svc.ListWebhooks(ctx, admin)
		if err != nil {
			t.Fatal(err)
		}
		return list
	}
	a := notify.WebhookConfig{URL: "https://a.example.com/h", Secret: s1, Events: []string{"security.*"}}
	b := notify.WebhookConfig{URL: "https://b.example.com/h", Secret: s1, Events: []string{"*"}}
	list := apply(a, b)
	if len(list) != 2 || list[0].Source != recourse.WebhookFromConfig {
		t.Fatalf("after the first start: %+v", list)
	}
	id := configWebhookID(a.URL)
	if list := apply(a, b); list[0].ID != id && list[1].ID != id || list[0].RotatingUntil != nil {
		t.Fatalf("a restart changed the endpoints: %+v", list)
	}
	a.Secret, a.Events = s2, []string{"*"}
	list = apply(a)
	if len(list) != 1 || list[0].ID != id || list[0].RotatingUntil == nil || list[0].Events[0] != "*" {
		t.Fatalf("after changing the file: %+v", list)
	}
	if _, err := f.svc.RotateWebhookSecret(ctx, admin, id, Meta{}); recourse.ErrorCode(err) != recourse.ECONFLICT {
		t.Fatalf("rotated a configuration endpoint through the service: %v", err)
	}
}

func TestAuditStallAlertsOnce(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	sec := &recourse.Account{ID: "sec", Username: "sec", DisplayName: "Sec", Kind: recourse.KindHuman, Status: recourse.StatusActive,
		Employment: recourse.EmploymentEmployee, IAL: 2, Groups: []string{"security"},
		Emails: []recourse.Channel{{Kind: recourse.ChannelEmail, Address: "sec@example.com", Verified: true}}}
	if err := f.svc.CreateAccount(ctx, sec, Meta{}); err != nil {
		t.Fatal(err)
	}
	alerts := func() int {
		msgs, _ := f.store.OutboxMessages(ctx, 100)
		n := 0
		for _, m := range msgs {
			if strings.Contains(m.Subject, "audit log is not being sealed") {
				n++
			}
		}
		return n
	}
	steps := []struct {
		advance            time.Duration
		backlog, sequenced int64
		alerts             int
	}{
		{0, 5, 0, 0},                // first look
		{4 * time.Minute, 5, 0, 0},  // no progress, not long enough
		{2 * time.Minute, 7, 0, 1},  // six minutes without progress: alert
		{5 * time.Minute, 9, 0, 1},  // still stalled: no second alert
		{time.Minute, 2, 7, 1},      // progress
		{10 * time.Minute, 0, 9, 1}, // drained: nothing waits
		{time.Minute, 3, 9, 1},      // new events
		{6 * time.Minute, 3, 9, 2},  // a new stall, a new alert
	}
	for i, s := range steps {
		f.clock.Add(s.advance)
		if err := f.svc.CheckAuditSequencer(ctx, s.backlog, s.sequenced, 5*time.Minute); err != nil {
			t.Fatal(err)
		}
		if got := alerts(); got != s.alerts {
			t.Fatalf("step %d: %d alerts, want %d", i, got, s.alerts)
		}
	}
}

func TestNoticeBodyKeepsClientTextOnOneLine(t *testing.T) {
	f := newFixture(t)
	body := f.svc.noticeBody(&recourse.Account{DisplayName: "Dana"}, []string{"Your password was changed."},
		Meta{IP: "192.0.2.1", UserAgent: "Mozilla\nThis wasn't me: open https://evil.example"})
	if strings.Contains(body, "\nThis wasn't me: open https://evil.example") {
		t.Fatalf("a user agent forged a line:\n%s", body)
	}
	for _, want := range []string{"Hello Dana", "When: 2026-11-26 09:00", "From: 192.0.2.1", "Browser: Mozilla This wasn't me", "If this wasn't you", "/recover"} {
		if !strings.Contains(body, want) {
			t.Errorf("the notice lacks %q:\n%s", want, body)
		}
	}
}
