package web

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recourse/recourse/audit"
	"github.com/recourse/recourse/service"
)

// sequenceAudit signs what the world has logged so far, as serve's
// sequencer would, and returns the log's verifier key.
func sequenceAudit(t *testing.T, w *world, skey string) {
	t.Helper()
	signer, err := audit.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	seq, err := audit.NewSequencer(audit.SequencerOptions{Store: w.store, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seq.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// reSVGPaint finds presentation attributes that would colour SVG outside
// the stylesheet; the pages colour charts with classes only.
var reSVGPaint = regexp.MustCompile(`(?i)<(?:svg|rect|text|g|path)\b[^>]*\s(?:fill|stroke|style)\s*=`)

func checkAdminPage(t *testing.T, name, body string) {
	t.Helper()
	checkNoInlineCode(t, name, body)
	if m := reSVGPaint.FindString(body); m != "" {
		t.Errorf("%s has %q: SVG must take its colours from CSS classes", name, m)
	}
}

var adminPaths = []string{"/admin", "/admin/audit", "/admin/policy", "/admin/metrics", "/admin/integrations"}

func TestAdminRoleGates(t *testing.T) {
	w := newWorld(t, false)
	skey, _, _ := audit.GenerateKey("localhost/audit")
	anon, user, sec, adm := w.client(), w.client(), w.client(), w.client()
	w.signIn(user, "d.chen")
	w.signIn(sec, "s.ito")
	w.signIn(adm, "r.patel")
	sequenceAudit(t, w, skey)
	for _, path := range adminPaths {
		t.Run(path, func(t *testing.T) {
			if resp, _ := anon.get(path); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin" {
				t.Errorf("anonymous = %d %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			if resp, body := user.get(path); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Not available") {
				t.Errorf("plain user = %d", resp.StatusCode)
			}
			resp, body := sec.get(path)
			if want := map[bool]int{true: http.StatusOK, false: http.StatusForbidden}[path == "/admin/audit"]; resp.StatusCode != want {
				t.Errorf("security = %d, want %d", resp.StatusCode, want)
			}
			resp, body = adm.get(path)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("admin = %d", resp.StatusCode)
			}
			checkAdminPage(t, path, body)
		})
	}
	_, body := adm.get("/account")
	if !strings.Contains(body, `<a href="/admin"`) {
		t.Error("no Admin link in an administrator's navigation")
	}
	_, body = sec.get("/account")
	if !strings.Contains(body, `<a href="/admin/audit"`) || strings.Contains(body, `<a href="/admin"`) {
		t.Error("the security team's navigation should link the audit log only")
	}
	_, body = user.get("/account")
	if strings.Contains(body, `href="/admin`) {
		t.Error("a plain user's navigation links the admin pages")
	}
}

var reEventRow = regexp.MustCompile(`<tr id="(ev_[a-z0-9]+)">\s*<td class="mono">(\d+)</td>`)

func TestAdminAuditBrowser(t *testing.T) {
	w := newWorld(t, false)
	skey, vkey, _ := audit.GenerateKey("localhost/audit")
	adm := w.client()
	w.signIn(adm, "r.patel")
	// A wrong password, to have a failure with its own request id.
	resp, _ := w.client().post("/signin", url.Values{"identifier": {"d.chen"}, "password": {"not-the-password-1"}})
	failed := resp.Header.Get("X-Request-Id")
	// Sign-in attempts for unknown names, so the log is longer than a page.
	for i := range adminAuditPage {
		w.client().post("/signin", url.Values{"identifier": {fmt.Sprintf("nobody-%d", i)}, "password": {"not-the-password-1"}})
	}
	sequenceAudit(t, w, skey)

	_, body := adm.get("/admin/audit")
	checkAdminPage(t, "/admin/audit", body)
	if !strings.Contains(body, `id="checkpoint-note"`) || !strings.Contains(body, "localhost/audit") || !strings.Contains(body, "recourse audit verify") {
		t.Error("the page does not show the signed checkpoint and how to verify it")
	}
	first := reEventRow.FindAllStringSubmatch(body, -1)
	if len(first) != adminAuditPage {
		t.Fatalf("first page has %d events, want %d", len(first), adminAuditPage)
	}
	next := regexp.MustCompile(`id="next-page" rel="next" href="([^"]+)"`).FindStringSubmatch(body)
	if next == nil {
		t.Fatal("no link to older events")
	}
	_, body = adm.get(strings.ReplaceAll(next[1], "&amp;", "&"))
	second := reEventRow.FindAllStringSubmatch(body, -1)
	if len(second) == 0 || atoi(t, second[0][2]) != atoi(t, first[len(first)-1][2])-1 {
		t.Fatalf("the second page does not continue below the first (%d events)", len(second))
	}
	for _, a := range first {
		for _, b := range second {
			if a[1] == b[1] {
				t.Fatalf("event %s on both pages", a[1])
			}
		}
	}

	tests := []struct {
		name, query string
		status      int
		check       func(t *testing.T, body string)
	}{
		{"by request", "?request=" + failed, http.StatusOK, func(t *testing.T, body string) {
			if n := len(reEventRow.FindAllString(body, -1)); n != 1 || !strings.Contains(body, "badge-warn\">failure") {
				t.Errorf("%d events", n)
			}
		}},
		{"by account and action", "?account=d.chen&action=signin.password", http.StatusOK, func(t *testing.T, body string) {
			rows := reEventRow.FindAllString(body, -1)
			if len(rows) != 1 || strings.Count(body, `href="/admin/audit?action=signin.password"`) != 1 {
				t.Errorf("%d events", len(rows))
			}
		}},
		{"by actor", "?actor=r.patel", http.StatusOK, func(t *testing.T, body string) {
			if n := len(reEventRow.FindAllString(body, -1)); n < 2 || strings.Contains(body, "d.chen</a></td>") {
				t.Errorf("%d events", n)
			}
		}},
		{"from the future", "?from=" + url.QueryEscape(w.clock.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04")), http.StatusOK, func(t *testing.T, body string) {
			if !strings.Contains(body, `id="no-events"`) {
				t.Error("events from the future")
			}
		}},
		{"until long ago", "?until=2001-01-01", http.StatusOK, func(t *testing.T, body string) {
			if !strings.Contains(body, `id="no-events"`) {
				t.Error("events before 2001")
			}
		}},
		{"a bad time", "?from=yesterday", http.StatusBadRequest, func(t *testing.T, body string) {
			if !regexp.MustCompile(`id="from"[^>]*aria-invalid="true"`).MatchString(body) {
				t.Error("the From field is not marked")
			}
		}},
		{"a bad cursor", "?cursor=%21%21", http.StatusBadRequest, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := adm.get("/admin/audit" + tc.query)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			checkAdminPage(t, tc.name, body)
			if tc.check != nil {
				tc.check(t, body)
			}
		})
	}

	_, body = adm.get("/admin/audit/verify?key=" + url.QueryEscape(vkey))
	checkAdminPage(t, "verify", body)
	if !strings.Contains(body, "The log verifies.") {
		t.Error("the log does not verify with its own key")
	}
	_, other, _ := audit.GenerateKey("localhost/audit")
	if _, body = adm.get("/admin/audit/verify?key=" + url.QueryEscape(other)); !strings.Contains(body, "does not verify with this key") {
		t.Error("the log verifies with another key")
	}
	if resp, _ := adm.get("/admin/audit/verify?key=nonsense"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a malformed key = %d", resp.StatusCode)
	}
}

// TestAdminMetrics runs requests through the real service and queue and
// checks the dashboard's numbers: a self-service password reset that
// completes, a request stopped by "this wasn't me" (and the account
// frozen), and an account locked by failed sign-ins.
func TestAdminMetrics(t *testing.T) {
	w := newWorld(t, false)
	adm := w.client()
	w.signIn(adm, "r.patel")

	user := w.client()
	id := w.startRecovery(user, "d.chen", "password")
	user.post("/recover/"+id+"/code", url.Values{"code": {w.code("d.chen@example.com")}})
	user.post("/recover/"+id+"/totp", url.Values{"code": {w.totp("d.chen")}})
	_, body := user.post("/recover/"+id+"/continue", nil)
	resp, _ := user.post("/recover/"+id+"/complete", url.Values{"token": {formValue(t, body, "token")},
		"new_password": {"saffron-kettle-meadow-9"}, "confirm_password": {"saffron-kettle-meadow-9"}})
	if resp.Header.Get("Location") != "/account?done=recovered" {
		t.Fatalf("complete -> %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	done := w.recovery(id)

	other := w.client()
	cancelled := w.startRecovery(other, "a.silva", "password")
	link := w.cancelLink("a.silva@example.com")
	if resp, _ := other.post("/recover/cancel", url.Values{"t": {strings.TrimPrefix(link, "/recover/cancel?t=")}, "freeze": {"1"}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("this wasn't me = %d", resp.StatusCode)
	}
	if w.recovery(cancelled).State != "cancelled" {
		t.Fatal("the request was not cancelled")
	}

	for range 30 {
		w.client().post("/signin", url.Values{"identifier": {"c.novak"}, "password": {"wrong-password-123"}})
		if a, _ := w.store.Account(t.Context(), "c.novak"); a.LockedAt != nil {
			break
		}
	}
	if a, _ := w.store.Account(t.Context(), "c.novak"); a.LockedAt == nil {
		t.Fatal("c.novak was not locked")
	}

	st, err := w.svc.RecoveryStats(t.Context(), mustPrincipal(t, w, adm))
	if err != nil {
		t.Fatal(err)
	}
	if st.Requests != 2 || st.Completed != 1 || st.CompletedSelf != 1 || st.CompletedHelpDesk != 0 || st.Cancelled != 1 ||
		st.NotMe != 1 || st.Locked != 1 || st.Frozen != 1 {
		t.Errorf("stats = %+v", st)
	}

	resp, body = adm.get("/admin/metrics")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics = %d", resp.StatusCode)
	}
	checkAdminPage(t, "/admin/metrics", body)
	tierRow := regexp.MustCompile(`<tr><th scope="row">` + done.Tier + `</th><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td><td>([^<]+)</td></tr>`).FindStringSubmatch(body)
	if tierRow == nil {
		t.Fatalf("no %s row in the tier table", done.Tier)
	}
	if tierRow[1] != "2" || tierRow[2] != "1" || tierRow[3] != "1" || tierRow[7] != humanSpan(done.CompletedAt.Sub(done.CreatedAt)) {
		t.Errorf("%s row = %q", done.Tier, tierRow[1:])
	}
	for _, want := range []string{`id="share-self">100%`, `id="share-helpdesk">0%`, `id="count-notme">1<`, `id="count-locked">1<`,
		`<svg id="chart-outcomes"`, `<title id="chart-outcomes-title">Requests by tier and outcome</title>`, `<rect class="seg-completed"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the dashboard lacks %s", want)
		}
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// mustPrincipal returns the principal of a signed-in client.
func mustPrincipal(t *testing.T, w *world, c *client) *service.Principal {
	t.Helper()
	p, err := w.svc.Authenticate(t.Context(), c.cookies[sessionCookie])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBarChartAndMedian(t *testing.T) {
	c := newBarChart("c", "T", "D", []string{"a", "b"}, []chartRow{{Label: "x", Values: []int{3, 1}}, {Label: "y", Values: []int{2}}, {Label: "z", Values: []int{0}}})
	if got := c.Rows[0].Segments; len(got) != 2 || got[0].Width+got[1].Width != chartBarW || got[1].X != chartLabelW+got[0].Width {
		t.Errorf("stacked row = %+v", got)
	}
	if got := c.Rows[1].Segments; len(got) != 1 || got[0].Width != chartBarW/2 {
		t.Errorf("half row = %+v", got)
	}
	if len(c.Rows[2].Segments) != 0 || c.Height != 2*chartPad+3*chartRowH {
		t.Errorf("empty row = %+v, height %d", c.Rows[2], c.Height)
	}
	for d, want := range map[time.Duration]string{0: "—", 45 * time.Second: "45 s", 90 * time.Minute: "1 h 30 min", 75 * time.Hour: "3 days 3 h"} {
		if got := humanSpan(d); got != want {
			t.Errorf("humanSpan(%v) = %q, want %q", d, got, want)
		}
	}
}
