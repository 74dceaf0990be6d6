package web

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func TestAccessPassPages(t *testing.T) {
	e := newEnv(t, Config{})
	e.person(t, "alice")
	b := e.browser(t)
	b.do("POST", "/signin", url.Values{"identifier": {"alice"}, "password": {"violet-lantern-carousel"}})
	resp, page := b.do("POST", "/account/access-pass", url.Values{})
	m := regexp.MustCompile(`id="access-pass">(tap_[a-z2-7]+)<`).FindStringSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("issue pass = %d", resp.StatusCode)
	}
	other := e.browser(t)
	resp, page = other.do("POST", "/signin/pass", url.Values{"identifier": {"alice"}, "pass": {"tap_wrong"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, `role="alert"`) {
		t.Fatalf("wrong pass = %d", resp.StatusCode)
	}
	resp, _ = other.do("POST", "/signin/pass", url.Values{"identifier": {"alice"}, "pass": {m[1]}})
	if resp.Header.Get("Location") != "/account" || other.cookie == "" {
		t.Fatalf("pass sign-in -> %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = e.browser(t).do("POST", "/signin/pass", url.Values{"identifier": {"alice"}, "pass": {m[1]}})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a pass worked twice: %d", resp.StatusCode)
	}
}
