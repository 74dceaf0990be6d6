package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/audit"
	"github.com/recourse/recourse/service"
)

func TestAuditAPI(t *testing.T) {
	e := newEnv(t, Config{})
	e.person(t, "alice")
	admin := &recourse.Account{ID: "root", Username: "root", DisplayName: "Root", Kind: recourse.KindHuman, Status: recourse.StatusActive,
		Employment: recourse.EmploymentEmployee, IAL: 2, Roles: []string{recourse.RoleSecurity}}
	if err := e.svc.CreateAccount(t.Context(), admin, service.Meta{}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SetPassword(t.Context(), "root", "violet-lantern-carousel", service.Meta{}); err != nil {
		t.Fatal(err)
	}
	signIn := func(id string) *browser {
		b := e.browser(t)
		resp, _ := b.do("POST", "/signin", url.Values{"identifier": {id}, "password": {"violet-lantern-carousel"}})
		if resp.StatusCode != http.StatusSeeOther || b.cookie == "" {
			t.Fatalf("sign in %s = %d", id, resp.StatusCode)
		}
		return b
	}
	alice, root := signIn("alice"), signIn("root")
	// A wrong password, to have a failure with its request id.
	resp, _ := e.browser(t).do("POST", "/signin", url.Values{"identifier": {"alice"}, "password": {"wrong-password-here"}})
	failedRequest := resp.Header.Get("X-Request-Id")

	// Nothing is sequenced yet: no checkpoint, no events.
	resp, body := e.browser(t).do("GET", "/api/v1/audit/checkpoint", nil)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, `"not_found"`) {
		t.Errorf("checkpoint before sequencing = %d %s", resp.StatusCode, body)
	}
	skey, vkey, _ := audit.GenerateKey("localhost/audit")
	signer, _ := audit.NewSigner(skey)
	seq, err := audit.NewSequencer(audit.SequencerOptions{Store: e.store, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seq.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		b      *browser
		query  string
		status int
		check  func(t *testing.T, page auditPage)
	}{
		{"signed out", e.browser(t), "", http.StatusUnauthorized, nil},
		{"not an administrator", alice, "", http.StatusForbidden, nil},
		{"security team", root, "", http.StatusOK, func(t *testing.T, page auditPage) {
			if len(page.Events) < 6 || page.NextCursor != "" {
				t.Errorf("%d events, cursor %q", len(page.Events), page.NextCursor)
			}
		}},
		{"by request", root, "?request=" + failedRequest, http.StatusOK, func(t *testing.T, page auditPage) {
			if len(page.Events) != 1 || !strings.Contains(string(page.Events[0]), `"outcome":"failure"`) {
				t.Errorf("events = %s", page.Events)
			}
		}},
		{"by account and action", root, "?account=alice&action=signin.password", http.StatusOK, func(t *testing.T, page auditPage) {
			if len(page.Events) != 2 {
				t.Errorf("events = %s", page.Events)
			}
		}},
		{"by actor", root, "?actor=root", http.StatusOK, func(t *testing.T, page auditPage) {
			for _, ev := range page.Events {
				if !strings.Contains(string(ev), `"account_id":"root"`) {
					t.Errorf("event of another actor: %s", ev)
				}
			}
		}},
		{"time range", root, "?since=2000-01-01T00:00:00Z&until=2001-01-01T00:00:00Z", http.StatusOK, func(t *testing.T, page auditPage) {
			if len(page.Events) != 0 {
				t.Errorf("events outside the range: %s", page.Events)
			}
		}},
		{"bad limit", root, "?limit=5000", http.StatusBadRequest, nil},
		{"bad time", root, "?since=yesterday", http.StatusBadRequest, nil},
		{"bad cursor", root, "?cursor=!!", http.StatusBadRequest, nil},
		{"bad order", root, "?order=random", http.StatusBadRequest, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := tc.b.do("GET", "/api/v1/audit"+tc.query, nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Errorf("Content-Type = %s", resp.Header.Get("Content-Type"))
			}
			if tc.check != nil {
				var page auditPage
				if err := json.Unmarshal([]byte(body), &page); err != nil {
					t.Fatal(err)
				}
				tc.check(t, page)
			}
		})
	}

	// Cursor pagination visits every event once, newest first or oldest first.
	for _, order := range []string{"desc", "asc"} {
		var seen []int64
		cursor := ""
		for range 100 {
			_, body := root.do("GET", "/api/v1/audit?limit=2&order="+order+"&cursor="+cursor, nil)
			var page auditPage
			if err := json.Unmarshal([]byte(body), &page); err != nil {
				t.Fatal(err)
			}
			for _, raw := range page.Events {
				ev, err := recourse.ParseAuditEvent(raw)
				if err != nil {
					t.Fatal(err)
				}
				seen = append(seen, *ev.Seq)
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		if int64(len(seen)) != seq.TreeSize() {
			t.Fatalf("%s: paged through %d events of %d", order, len(seen), seq.TreeSize())
		}
		for i := 1; i < len(seen); i++ {
			if (order == "asc") != (seen[i] > seen[i-1]) {
				t.Fatalf("%s: positions out of order: %v", order, seen)
			}
		}
	}

	// The checkpoint is public, a signed note that verifies with the key.
	resp, body = e.browser(t).do("GET", "/api/v1/audit/checkpoint", nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("checkpoint = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	v, _ := audit.NewVerifier(vkey)
	c, err := audit.OpenCheckpoint([]byte(body), v)
	if err != nil || c.Size != seq.TreeSize() {
		t.Fatalf("checkpoint %+v, %v", c, err)
	}
}

// TestWebRecordsRequestAndChannel: what the web layer does is audited with
// the request id and the web channel.
func TestWebRecordsRequestAndChannel(t *testing.T) {
	e := newEnv(t, Config{})
	e.person(t, "alice")
	b := e.browser(t)
	resp, _ := b.do("POST", "/signin", url.Values{"identifier": {"alice"}, "password": {"violet-lantern-carousel"}}, "User-Agent", "probe/1.0")
	id := resp.Header.Get("X-Request-Id")
	resp, _ = b.do("POST", "/signout", url.Values{})
	signout := resp.Header.Get("X-Request-Id")
	recs, err := e.store.UnsequencedAuditEvents(t.Context(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, r := range recs {
		ev, _ := recourse.ParseAuditEvent(r.Data)
		if ev.Channel == recourse.ViaWeb {
			found[ev.Action+" "+ev.RequestID] = true
			if ev.Action == recourse.ActionSignInPassword && ev.UserAgent != "probe/1.0" {
				t.Errorf("user agent = %q", ev.UserAgent)
			}
		}
	}
	for _, want := range []string{recourse.ActionSignInPassword + " " + id, recourse.ActionSignOut + " " + signout} {
		if !found[want] {
			t.Errorf("no web event %q among %v", want, found)
		}
	}
}
