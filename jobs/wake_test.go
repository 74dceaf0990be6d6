package jobs

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/riverqueue/river/riverdriver"
)

// blockingListener stands in for the database's listener: it hands over
// what is put on its channel and otherwise waits until its context ends.
type blockingListener struct {
	riverdriver.Listener // unused methods
	notes                chan *riverdriver.Notification
}

func (l *blockingListener) WaitForNotification(ctx context.Context) (*riverdriver.Notification, error) {
	select {
	case n := <-l.notes:
		return n, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestWakeListener(t *testing.T) {
	inner := &blockingListener{notes: make(chan *riverdriver.Notification, 1)}
	w := newWake()
	l := &wakeListener{Listener: inner, w: w}
	ctx := t.Context()

	// A kick while the database is silent interrupts the wait and comes out
	// as River's insert notification for each kicked queue, once.
	w.kick(QueueMail)
	w.kick(QueueMail)
	n, err := l.WaitForNotification(ctx)
	if err != nil || n.Topic != "river_insert" || n.Payload != `{"queue":"notify_mail"}` {
		t.Fatalf("after a kick: %+v, %v", n, err)
	}
	go func() { time.Sleep(10 * time.Millisecond); w.kick("default") }()
	n, err = l.WaitForNotification(ctx)
	if err != nil || n.Payload != `{"queue":"default"}` {
		t.Fatalf("kick during the wait: %+v, %v", n, err)
	}

	// The database's own notifications pass through untouched.
	inner.notes <- &riverdriver.Notification{Topic: "river_leadership", Payload: "x"}
	if n, err := l.WaitForNotification(ctx); err != nil || n.Topic != "river_leadership" {
		t.Fatalf("database notification: %+v, %v", n, err)
	}

	// The caller's context still ends the wait.
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := l.WaitForNotification(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ended context: %v", err)
	}
}
