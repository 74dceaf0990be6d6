package main

import (
	"strings"
	"testing"

	"github.com/recourse/recourse/service"
)

// TestPrintDemo: the demo's banner says where mail goes: the outbox, or the
// SMTP relay (with text messages still in the outbox).
func TestPrintDemo(t *testing.T) {
	users := []service.DemoUser{{Username: "a.silva", DisplayName: "Ana Silva", Role: "employee"}}
	for _, tt := range []struct {
		smtp, want, not string
	}{
		{"", "Mail that would have been sent is at http://x/dev/outbox", "SMTP relay"},
		{"mail.example.com", "Mail goes through the SMTP relay mail.example.com; text messages (no SMS gateway) are kept at http://x/dev/outbox", "would have been sent"},
	} {
		var b strings.Builder
		printDemo(&b, "http://x", users, tt.smtp)
		out := b.String()
		if !strings.Contains(out, tt.want) || strings.Contains(out, tt.not) || !strings.Contains(out, "a.silva") {
			t.Errorf("smtp %q: banner\n%s\nwant %q and not %q", tt.smtp, out, tt.want, tt.not)
		}
	}
}
