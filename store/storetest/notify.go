package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/recourse/recourse"
)

func testNotify(t *testing.T, s recourse.Store) {
	t.Run("Notifications", func(t *testing.T) { testNotifications(t, s) })
	t.Run("DeliveryAttemptsConcurrent", func(t *testing.T) { testDeliveryAttemptsConcurrent(t, s) })
	t.Run("NotificationRollback", func(t *testing.T) { testNotificationRollback(t, s) })
	t.Run("WebhookEndpoints", func(t *testing.T) { testWebhookEndpoints(t, s) })
}

func newNotification(id string, kind recourse.NotificationKind, account, to string, at time.Time) *recourse.Notification {
	return &recourse.Notification{ID: id, Kind: kind, AccountID: account, To: to, Subject: "subject " + id,
		Body: []byte("sealed " + id), State: recourse.NotificationQueued, CreatedAt: at}
}

func testNotifications(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	for i, n := range []*recourse.Notification{
		newNotification("ntf_1", recourse.NotifyEmail, "a", "a@example.com", T0),
		newNotification("ntf_2", recourse.NotifySMS, "a", "+15550100", T0.Add(time.Second)),
		newNotification("ntf_3", recourse.NotifyWebhook, "", "whk_1", T0.Add(2*time.Second)),
		newNotification("ntf_4", recourse.NotifyEmail, "b", "b@example.com", T0.Add(3*time.Second)),
	} {
		if err := s.AddNotification(ctx, n); err != nil {
			t.Fatal(err)
		}
		if n.Seq == 0 {
			t.Fatalf("notification %d: Seq not set", i)
		}
		if got, err := s.ListNotifications(ctx, recourse.NotificationFilter{Limit: 1}); err != nil || len(got) != 1 || got[0].ID != n.ID || got[0].Seq != n.Seq {
			t.Fatalf("notification %d: Seq %d, the newest listed is %+v (%v)", i, n.Seq, got, err)
		}
	}
	if err := s.AddNotification(ctx, newNotification("ntf_1", recourse.NotifyEmail, "a", "x", T0)); !errors.Is(err, recourse.ErrConflict) {
		t.Errorf("duplicate id: %v, want ErrConflict", err)
	}
	got, err := s.Notification(ctx, "ntf_2")
	if err != nil || got.Kind != recourse.NotifySMS || got.To != "+15550100" || string(got.Body) != "sealed ntf_2" ||
		got.State != recourse.NotificationQueued || !got.CreatedAt.Equal(T0.Add(time.Second)) || got.SentAt != nil {
		t.Fatalf("Notification = %+v, %v", got, err)
	}
	if _, err := s.Notification(ctx, "nope"); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("missing notification: %v", err)
	}

	ids := func(ns []*recourse.Notification) []string {
		var out []string
		for _, n := range ns {
			out = append(out, n.ID)
			if n.Body != nil {
				t.Errorf("list returned the body of %s", n.ID)
			}
		}
		return out
	}
	all, _ := s.ListNotifications(ctx, recourse.NotificationFilter{})
	tests := []struct {
		name string
		f    recourse.NotificationFilter
		want []string
	}{
		{"all newest first", recourse.NotificationFilter{}, []string{"ntf_4", "ntf_3", "ntf_2", "ntf_1"}},
		{"account", recourse.NotificationFilter{AccountID: "a"}, []string{"ntf_2", "ntf_1"}},
		{"kind", recourse.NotificationFilter{Kind: recourse.NotifyEmail}, []string{"ntf_4", "ntf_1"}},
		{"to", recourse.NotificationFilter{To: "whk_1"}, []string{"ntf_3"}},
		{"limit", recourse.NotificationFilter{Limit: 1}, []string{"ntf_4"}},
		{"before", recourse.NotificationFilter{Before: all[1].Seq}, []string{"ntf_2", "ntf_1"}},
		{"state", recourse.NotificationFilter{State: recourse.NotificationSent}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListNotifications(ctx, tc.f)
			if err != nil || !slices.Equal(ids(got), tc.want) {
				t.Errorf("ListNotifications(%+v) = %v, %v; want %v", tc.f, ids(got), err, tc.want)
			}
		})
	}

	// Attempts: a retry keeps it queued, success ends it, and an ended
	// notification takes no more attempts.
	n, err := s.RecordDeliveryAttempt(ctx, "ntf_1", recourse.NotificationQueued, "451 try later", T0.Add(time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("first attempt = %d, %v", n, err)
	}
	n, err = s.RecordDeliveryAttempt(ctx, "ntf_1", recourse.NotificationSent, "", T0.Add(2*time.Minute))
	if err != nil || n != 2 {
		t.Fatalf("second attempt = %d, %v", n, err)
	}
	if _, err := s.RecordDeliveryAttempt(ctx, "ntf_1", recourse.NotificationFailed, "late", T0.Add(3*time.Minute)); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("attempt after sent: %v, want ErrNotFound", err)
	}
	got, _ = s.Notification(ctx, "ntf_1")
	if got.State != recourse.NotificationSent || got.Attempts != 2 || got.LastError != "" || got.SentAt == nil ||
		!got.SentAt.Equal(T0.Add(2*time.Minute)) || !got.UpdatedAt.Equal(T0.Add(2*time.Minute)) {
		t.Errorf("after delivery: %+v", got)
	}
	if _, err := s.RecordDeliveryAttempt(ctx, "ntf_4", recourse.NotificationFailed, "550 no such user", T0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Notification(ctx, "ntf_4")
	if got.State != recourse.NotificationFailed || got.LastError != "550 no such user" || got.SentAt != nil {
		t.Errorf("after failure: %+v", got)
	}
	sent, _ := s.ListNotifications(ctx, recourse.NotificationFilter{State: recourse.NotificationSent})
	if !slices.Equal(ids(sent), []string{"ntf_1"}) {
		t.Errorf("sent = %v", ids(sent))
	}
}

// testDeliveryAttemptsConcurrent races workers finishing the same
// notification: exactly one may record the final outcome.
func testDeliveryAttemptsConcurrent(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	if err := s.AddNotification(ctx, newNotification("ntf_race", recourse.NotifyEmail, "", "r@example.com", T0)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 8 {
		wg.Go(func() {
			_, err := s.RecordDeliveryAttempt(ctx, "ntf_race", recourse.NotificationSent, "", T0)
			if err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			} else if !errors.Is(err, recourse.ErrNotFound) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d workers marked the notification sent, want 1", wins)
	}
}

func testNotificationRollback(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx recourse.Tx) error {
		if err := tx.AddNotification(ctx, newNotification("ntf_rolled", recourse.NotifyEmail, "", "x@example.com", T0)); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if _, err := s.Notification(ctx, "ntf_rolled"); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("a rolled-back notification exists: %v", err)
	}
}

func testWebhookEndpoints(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	for i, id := range []string{"whk_b", "whk_a"} {
		e := &recourse.WebhookEndpoint{ID: id, URL: fmt.Sprintf("https://hooks.example.com/%d", i), Events: []string{"security.*"},
			Secret: []byte("sealed-" + id), Source: recourse.WebhookFromAPI, CreatedAt: T0}
		if err := s.CreateWebhookEndpoint(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	dup := &recourse.WebhookEndpoint{ID: "whk_a", URL: "https://x.example.com", Secret: []byte("s"), Source: recourse.WebhookFromConfig, CreatedAt: T0}
	if err := s.CreateWebhookEndpoint(ctx, dup); !errors.Is(err, recourse.ErrConflict) {
		t.Errorf("duplicate endpoint: %v", err)
	}
	list, err := s.WebhookEndpoints(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "whk_a" || list[1].ID != "whk_b" {
		t.Fatalf("WebhookEndpoints = %v, %v", list, err)
	}
	e, err := s.WebhookEndpoint(ctx, "whk_a")
	if err != nil || e.URL != "https://hooks.example.com/1" || !slices.Equal(e.Events, []string{"security.*"}) ||
		string(e.Secret) != "sealed-whk_a" || e.PreviousSecret != nil || e.PreviousUntil != nil || e.DisabledAt != nil ||
		e.Source != recourse.WebhookFromAPI || !e.CreatedAt.Equal(T0) {
		t.Fatalf("WebhookEndpoint = %+v, %v", e, err)
	}

	// Rotation keeps the previous secret until a time.
	until := T0.Add(24 * time.Hour)
	e.PreviousSecret, e.PreviousUntil, e.Secret = e.Secret, &until, []byte("sealed-new")
	e.Events, e.UpdatedAt = []string{"*"}, T0.Add(time.Hour)
	if err := s.UpdateWebhookEndpoint(ctx, e); err != nil {
		t.Fatal(err)
	}
	got, _ := s.WebhookEndpoint(ctx, "whk_a")
	if string(got.Secret) != "sealed-new" || string(got.PreviousSecret) != "sealed-whk_a" || got.PreviousUntil == nil ||
		!got.PreviousUntil.Equal(until) || !slices.Equal(got.Events, []string{"*"}) || !got.UpdatedAt.Equal(T0.Add(time.Hour)) {
		t.Errorf("after rotation: %+v", got)
	}

	// Consecutive failures count atomically and reset on success.
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if _, err := s.RecordWebhookOutcome(ctx, "whk_a", false, T0); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n, err := s.RecordWebhookOutcome(ctx, "whk_a", false, T0); err != nil || n != 6 {
		t.Errorf("failures = %d, %v, want 6", n, err)
	}
	if n, err := s.RecordWebhookOutcome(ctx, "whk_a", true, T0); err != nil || n != 0 {
		t.Errorf("after success = %d, %v", n, err)
	}
	if _, err := s.RecordWebhookOutcome(ctx, "nope", true, T0); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("outcome of a missing endpoint: %v", err)
	}

	// Disabling (410 Gone) and deleting.
	off := T0.Add(2 * time.Hour)
	got.DisabledAt, got.DisabledReason, got.UpdatedAt = &off, "410 Gone", off
	if err := s.UpdateWebhookEndpoint(ctx, got); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.WebhookEndpoint(ctx, "whk_a"); got.DisabledAt == nil || !got.DisabledAt.Equal(off) || got.DisabledReason != "410 Gone" {
		t.Errorf("after disabling: %+v", got)
	}
	if err := s.DeleteWebhookEndpoint(ctx, "whk_a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteWebhookEndpoint(ctx, "whk_a"); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if err := s.UpdateWebhookEndpoint(ctx, got); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("update of a deleted endpoint: %v", err)
	}
}

// testDeliverToOutbox: deliveries to the outbox in a transaction are
// written with its audit events, in every shape of multi-row statement, in
// the order they were made; the transaction reads them back before it ends;
// a rollback leaves none; one made outside a transaction is stored at once.
func testDeliverToOutbox(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	deliver := func(tx recourse.Tx, i int, state recourse.NotificationState) (*recourse.OutboxMessage, *recourse.Notification) {
		at := T0.Add(time.Duration(i) * time.Second)
		m := &recourse.OutboxMessage{AccountID: "acct", To: fmt.Sprintf("p%d@example.com", i), Subject: fmt.Sprintf("s%d", i), Body: fmt.Sprintf("body %d", i), CreatedAt: at}
		n := &recourse.Notification{ID: fmt.Sprintf("msg_d%02d", i), Kind: recourse.NotifyEmail, AccountID: "acct", To: m.To, Subject: m.Subject,
			State: state, CreatedAt: at}
		if state == recourse.NotificationSent {
			n.SentAt = &n.CreatedAt
		} else {
			n.LastError = "no gateway"
		}
		if err := tx.DeliverToOutbox(ctx, m, n); err != nil {
			t.Fatalf("DeliverToOutbox %d: %v", i, err)
		}
		return m, n
	}
	// 7 = 4 + 2 + 1 deliveries beside 3 = 2 + 1 audit events: every pairing
	// of the statement shapes, and deliveries with no event left to pair.
	err := s.InTx(ctx, func(tx recourse.Tx) error {
		for i := range 7 {
			if i < 3 {
				if err := tx.AddAuditEvent(ctx, NewAuditEvent(recourse.ActionSessionRevoke, "with mail", i)); err != nil {
					return err
				}
			}
			state := recourse.NotificationSent
			if i == 5 {
				state = recourse.NotificationFailed
			}
			deliver(tx, i, state)
			if i == 1 {
				// Read in the middle: the first two are there.
				ms, err := tx.OutboxMessages(ctx, 10)
				if err != nil || len(ms) != 2 {
					t.Errorf("the transaction reads %d of its 2 messages, %v", len(ms), err)
				}
				if _, err := tx.Notification(ctx, "msg_d01"); err != nil {
					t.Errorf("the transaction cannot read its own notification: %v", err)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := s.OutboxMessages(ctx, 100)
	if err != nil || len(ms) != 7 {
		t.Fatalf("OutboxMessages = %d, %v; want 7", len(ms), err)
	}
	for i, m := range ms { // newest first
		if want := fmt.Sprintf("s%d", 6-i); m.Subject != want || m.Body != fmt.Sprintf("body %d", 6-i) || !m.CreatedAt.Equal(T0.Add(time.Duration(6-i)*time.Second)) {
			t.Errorf("message %d = %+v, want subject %s", i, m, want)
		}
	}
	ns, err := s.ListNotifications(ctx, recourse.NotificationFilter{AccountID: "acct"})
	if err != nil || len(ns) != 7 {
		t.Fatalf("ListNotifications = %d, %v; want 7", len(ns), err)
	}
	for i, n := range ns { // newest first
		if want := fmt.Sprintf("msg_d%02d", 6-i); n.ID != want {
			t.Errorf("notification %d is %s, want %s (the order they were made in)", i, n.ID, want)
		}
		if i > 0 && n.Seq >= ns[i-1].Seq {
			t.Errorf("notification rows out of order: %d before %d", n.Seq, ns[i-1].Seq)
		}
	}
	n, err := s.Notification(ctx, "msg_d05")
	if err != nil || n.State != recourse.NotificationFailed || n.LastError != "no gateway" || n.SentAt != nil || len(n.Body) != 0 {
		t.Errorf("failed delivery = %+v, %v", n, err)
	}
	n, err = s.Notification(ctx, "msg_d06")
	if err != nil || n.State != recourse.NotificationSent || n.SentAt == nil || !n.SentAt.Equal(T0.Add(6*time.Second)) || len(n.Body) != 0 {
		t.Errorf("sent delivery = %+v, %v", n, err)
	}
	recs, err := s.UnsequencedAuditEvents(ctx, 0, 100)
	if err != nil || len(recs) != 3 {
		t.Errorf("audit events with the deliveries = %d, %v; want 3", len(recs), err)
	}

	// A rollback takes the queued deliveries with it.
	boom := errors.New("boom")
	err = s.InTx(ctx, func(tx recourse.Tx) error {
		deliver(tx, 10, recourse.NotificationSent)
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v", err)
	}
	if _, err := s.Notification(ctx, "msg_d10"); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("a rolled-back delivery's notification: %v", err)
	}
	// A duplicate notification id fails the transaction that queued it.
	err = s.InTx(ctx, func(tx recourse.Tx) error {
		deliver(tx, 6, recourse.NotificationSent)
		return nil
	})
	if !errors.Is(err, recourse.ErrConflict) {
		t.Errorf("a duplicate delivery committed: %v", err)
	}
	// Outside a transaction: stored at once.
	deliver(s, 11, recourse.NotificationSent)
	if _, err := s.Notification(ctx, "msg_d11"); err != nil {
		t.Errorf("a delivery outside a transaction: %v", err)
	}
	if ms, _ := s.OutboxMessages(ctx, 100); len(ms) != 8 {
		t.Errorf("outbox holds %d messages, want 8", len(ms))
	}
	// A queued notification is not an outbox delivery.
	if err := s.DeliverToOutbox(ctx, &recourse.OutboxMessage{To: "q@example.com", CreatedAt: T0},
		&recourse.Notification{ID: "msg_q", Kind: recourse.NotifyEmail, To: "q@example.com", State: recourse.NotificationQueued, CreatedAt: T0}); err == nil {
		t.Error("a queued notification was delivered to the outbox")
	}
}
