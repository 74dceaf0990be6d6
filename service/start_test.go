package service

import (
	"testing"

	"github.com/recourse/recourse"
)

// TestProcessStartTwice: a start job that runs again (its first outcome
// went unrecorded) opens nothing more: one request, one code and one
// notice, as after the first run.
func TestProcessStartTwice(t *testing.T) {
	f := newFixture(t)
	f.person(t, "twice")
	job := StartJob{RequestID: recourse.NewID("rr_"), Identifier: "twice", Lost: "password",
		BrowserHash: f.svc.browserHash("secret"), IP: "192.0.2.1", At: f.clock.Now()}
	if err := f.svc.ProcessStart(t.Context(), job); err != nil {
		t.Fatal(err)
	}
	first, err := f.store.OutboxMessages(t.Context(), 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) == 0 {
		t.Fatal("the first run sent nothing")
	}
	before, err := f.store.AuditBacklog(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.ProcessStart(t.Context(), job); err != nil {
		t.Fatalf("second run: %v", err)
	}
	again, err := f.store.OutboxMessages(t.Context(), 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != len(first) {
		t.Errorf("the second run sent %d more messages", len(again)-len(first))
	}
	r, err := f.store.Recovery(t.Context(), job.RequestID)
	if err != nil || r.AccountID != "twice" {
		t.Fatalf("Recovery = %+v, %v", r, err)
	}
	if after, err := f.store.AuditBacklog(t.Context()); err != nil || after != before {
		t.Errorf("audit events: %d after the second run, %d before (%v); want no more", after, before, err)
	}
}
