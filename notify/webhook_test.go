package notify_test

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/recourse/recourse/notify"
	"github.com/recourse/recourse/notify/notifytest"
)

// secret returns a fixed, valid secret of n bytes (no random fixtures).
func secret(n int, fill byte) string {
	return notify.SecretPrefix + base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(fill), n)))
}

func TestSignVerifiesWithTheReferenceLibrary(t *testing.T) {
	oldS, newS := secret(32, 'o'), secret(32, 'n')
	oldK, _ := notify.ParseSecret(oldS)
	newK, _ := notify.ParseSecret(newS)
	at := time.Now()
	payload := []byte(`{"type":"recovery.opened","timestamp":"2026-11-26T09:00:00Z","data":{"request_id":"rr_1"}}`)
	tests := []struct {
		name     string
		keys     [][]byte
		verifier string
		ok       bool
	}{
		{"one secret", [][]byte{newK}, newS, true},
		{"rotation: new secret verifies", [][]byte{newK, oldK}, newS, true},
		{"rotation: old secret verifies", [][]byte{newK, oldK}, oldS, true},
		{"after rotation: old secret fails", [][]byte{newK}, oldS, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			h.Set("webhook-id", "msg_1")
			h.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
			h.Set("webhook-signature", notify.Sign("msg_1", at, payload, tc.keys...))
			wh, err := standardwebhooks.NewWebhook(tc.verifier)
			if err != nil {
				t.Fatal(err)
			}
			if err := wh.Verify(payload, h); (err == nil) != tc.ok {
				t.Fatalf("Verify = %v, want ok=%v", err, tc.ok)
			}
			// The payload is bound: a changed body fails.
			if tc.ok && wh.Verify(append(payload, ' '), h) == nil {
				t.Fatal("a modified payload verified")
			}
		})
	}
}

func TestParseSecret(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{secret(24, 'a'), true},
		{secret(32, 'a'), true},
		{secret(64, 'a'), true},
		{secret(23, 'a'), false}, // the specification's minimum is 24 bytes
		{secret(65, 'a'), false},
		{strings.TrimPrefix(secret(32, 'a'), notify.SecretPrefix), false},
		{"whsec_not base64!", false},
		{"", false},
	}
	for _, tc := range tests {
		_, err := notify.ParseSecret(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseSecret(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
		if err != nil && strings.Contains(err.Error(), strings.TrimPrefix(tc.in, notify.SecretPrefix)) && tc.in != "" {
			t.Errorf("the error quotes the secret: %v", err)
		}
	}
	s := notify.NewSecret()
	if b, err := notify.ParseSecret(s); err != nil || len(b) != 32 {
		t.Errorf("NewSecret() = %d bytes, %v", len(b), err)
	}
}

func TestGuardAddresses(t *testing.T) {
	deny, allowAll := notify.Guard{}, notify.Guard{AllowPrivate: true}
	loopbackOnly := notify.Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	tests := []struct {
		addr                    string
		deny, loopback, private bool // allowed under each guard
	}{
		{"127.0.0.1", false, true, true},
		{"127.9.9.9", false, true, true},
		{"::1", false, false, true},
		{"::ffff:127.0.0.1", false, true, true}, // IPv4-mapped
		{"10.0.0.1", false, false, true},
		{"172.16.5.4", false, false, true},
		{"192.168.1.1", false, false, true},
		{"169.254.169.254", false, false, true}, // cloud metadata
		{"fe80::1", false, false, true},
		{"fc00::1", false, false, true},
		{"100.64.0.1", false, false, true},
		{"0.0.0.0", false, false, true},
		{"224.0.0.1", false, false, true},
		{"192.0.2.7", false, false, true},
		{"8.8.8.8", true, true, true},
		{"2606:4700:4700::1111", true, true, true},
	}
	for _, tc := range tests {
		a := netip.MustParseAddr(tc.addr)
		for _, g := range []struct {
			name  string
			guard notify.Guard
			want  bool
		}{{"deny", deny, tc.deny}, {"loopback", loopbackOnly, tc.loopback}, {"private", allowAll, tc.private}} {
			err := g.guard.CheckAddr(a)
			if (err == nil) != g.want {
				t.Errorf("%s guard, %s: %v, want allowed=%v", g.name, tc.addr, err, g.want)
			}
			if err != nil && !errors.Is(err, notify.ErrRefusedTarget) {
				t.Errorf("%s: error %v does not wrap ErrRefusedTarget", tc.addr, err)
			}
		}
	}
}

func TestGuardURLs(t *testing.T) {
	deny, allow := notify.Guard{}, notify.Guard{AllowPrivate: true}
	tests := []struct {
		url         string
		deny, allow bool
	}{
		{"https://hooks.example.com/recourse", true, true},
		{"https://hooks.example.com:8443/r?tenant=1", true, true},
		{"http://hooks.example.com/recourse", false, false}, // public targets need TLS
		{"https://127.0.0.1/hook", false, true},
		{"http://127.0.0.1:9000/hook", false, true},
		{"https://[::1]/hook", false, true},
		{"https://localhost/hook", false, true},
		{"https://x.localhost/hook", false, true},
		{"https://169.254.169.254/latest/meta-data", false, true},
		{"http://10.1.2.3/siem", false, true},
		{"https://user:pw@hooks.example.com/", false, false},
		{"https://hooks.example.com/#frag", false, false},
		{"ftp://hooks.example.com/", false, false},
		{"/relative", false, false},
		{"hooks.example.com", false, false},
	}
	for _, tc := range tests {
		if err := deny.CheckURL(tc.url); (err == nil) != tc.deny {
			t.Errorf("default guard, %s: %v, want ok=%v", tc.url, err, tc.deny)
		}
		if err := allow.CheckURL(tc.url); (err == nil) != tc.allow {
			t.Errorf("private allowed, %s: %v, want ok=%v", tc.url, err, tc.allow)
		}
	}
}

// TestCallRefusedAtDial: a call whose name resolves to loopback is refused
// when dialling, before any byte is sent (the URL check alone would miss a
// name that resolves, or is re-pointed, to an internal address).
func TestCallRefusedAtDial(t *testing.T) {
	rcv := notifytest.NewReceiver(t, secret(32, 's'))
	key, _ := notify.ParseSecret(secret(32, 's'))
	url := strings.Replace(rcv.URL, "127.0.0.1", "localhost", 1)
	err := notify.NewWebhooks(notify.Guard{}, 5*time.Second).Do(t.Context(), notify.Call{URL: url, ID: "msg_1", Payload: []byte(`{}`), Secrets: [][]byte{key}})
	if !errors.Is(err, notify.ErrRefusedTarget) || !notify.Permanent(err) {
		t.Fatalf("Do = %v, want a permanent ErrRefusedTarget", err)
	}
	if calls := rcv.Calls(); len(calls) != 0 {
		t.Fatalf("the receiver got %d calls", len(calls))
	}
}

func TestCallOutcomes(t *testing.T) {
	s := secret(32, 'k')
	key, _ := notify.ParseSecret(s)
	rcv := notifytest.NewReceiver(t, s)
	hooks := notify.NewWebhooks(notify.Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, 5*time.Second)
	redirect := httptest.NewServer(http.RedirectHandler(rcv.URL, http.StatusTemporaryRedirect))
	t.Cleanup(redirect.Close)
	tests := []struct {
		name      string
		url       string
		respond   []int
		key       []byte
		wantErr   func(error) bool
		permanent bool
	}{
		{"accepted", rcv.URL, nil, key, func(err error) bool { return err == nil }, false},
		{"server error", rcv.URL, []int{500}, key, func(err error) bool { var se *notify.StatusError; return errors.As(err, &se) && se.Code == 500 }, false},
		{"too many requests", rcv.URL, []int{429}, key, func(err error) bool { var se *notify.StatusError; return errors.As(err, &se) && se.Code == 429 }, false},
		{"gone", rcv.URL, []int{410}, key, func(err error) bool { return errors.Is(err, notify.ErrGone) }, true},
		{"wrong secret", rcv.URL, nil, []byte(strings.Repeat("x", 32)), func(err error) bool { var se *notify.StatusError; return errors.As(err, &se) && se.Code == 401 }, false},
		{"redirect not followed", redirect.URL, nil, key, func(err error) bool { var se *notify.StatusError; return errors.As(err, &se) && se.Code == 307 }, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rcv.Respond(tc.respond...)
			before := len(rcv.Events())
			err := hooks.Do(t.Context(), notify.Call{URL: tc.url, ID: "msg_" + strconv.Itoa(i), Payload: []byte(`{"type":"security.lockout","timestamp":"2026-11-26T09:00:00Z","data":{}}`), Secrets: [][]byte{tc.key}})
			if !tc.wantErr(err) {
				t.Fatalf("Do = %v", err)
			}
			if notify.Permanent(err) != tc.permanent {
				t.Errorf("Permanent(%v) = %v", err, !tc.permanent)
			}
			if got := len(rcv.Events()) - before; (err == nil) != (got == 1) {
				t.Errorf("events accepted: %d", got)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	base, ceiling := 5*time.Second, 6*time.Hour
	for attempt, want := range map[int]time.Duration{
		1: 5 * time.Second, 2: 15 * time.Second, 3: 45 * time.Second, 4: 135 * time.Second,
		8: 3 * 3 * 3 * 3 * 3 * 3 * 3 * 5 * time.Second, 9: 6 * time.Hour, 20: 6 * time.Hour,
	} {
		want = min(want, ceiling)
		for range 50 {
			d := notify.Backoff(attempt, base, ceiling)
			if d < want*8/10 || d > want*12/10 {
				t.Fatalf("Backoff(%d) = %s, want %s ±20%%", attempt, d, want)
			}
		}
	}
}

func TestEventsAndPatterns(t *testing.T) {
	tests := []struct {
		patterns []string
		event    string
		match    bool
	}{
		{[]string{"*"}, notify.EventLockout, true},
		{[]string{"security.*"}, notify.EventLockout, true},
		{[]string{"security.*"}, notify.EventRecoveryOpened, false},
		{[]string{"recovery.opened", "recovery.completed"}, notify.EventRecoveryCompleted, true},
		{[]string{"recovery.opened"}, notify.EventRecoveryCompleted, false},
	}
	for _, tc := range tests {
		if err := notify.CheckEvents(tc.patterns); err != nil {
			t.Errorf("CheckEvents(%v) = %v", tc.patterns, err)
		}
		if got := notify.Matches(tc.patterns, tc.event); got != tc.match {
			t.Errorf("Matches(%v, %s) = %v", tc.patterns, tc.event, got)
		}
	}
	for _, bad := range [][]string{nil, {"recovery.nope"}, {"nope.*"}, {"security"}, {""}} {
		if notify.CheckEvents(bad) == nil {
			t.Errorf("CheckEvents(%q) accepted", bad)
		}
	}
}
