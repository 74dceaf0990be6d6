package web

import (
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/recourse/recourse/audit"
)

// TestBrowserAdminPages signs the demo administrator in through the pages
// (password and authenticator app) and saves the audit log, the policy and
// the metrics dashboard as PNGs.
func TestBrowserAdminPages(t *testing.T) {
	ctx := newBrowser(t)
	w := newWorld(t, true)
	dir := artifactDir(t)
	// Some numbers for the dashboard: a request stopped by "this wasn't me".
	c := w.client()
	w.startRecovery(c, "a.silva", "password")
	link := w.cancelLink("a.silva@example.com")
	c.post("/recover/cancel", url.Values{"t": {strings.TrimPrefix(link, "/recover/cancel?t=")}, "freeze": {"1"}})
	browserSignIn(t, ctx, w, "r.patel")
	skey, _, _ := audit.GenerateKey("localhost/audit")
	sequenceAudit(t, w, skey)
	for _, p := range []struct{ path, wait, step string }{
		{"/admin/audit", "h-verification", "audit"},
		{"/admin/policy", "policy-matrix", "policy"},
		{"/admin/metrics", "chart-outcomes", "metrics"},
	} {
		if err := chromedp.Do(ctx, chromedp.Navigate(w.base+p.path), chromedp.WaitVisible(chromedp.ID(p.wait))); err != nil {
			t.Fatalf("%s: %v", p.path, err)
		}
		shot(t, ctx, dir, p.step)
	}
}
