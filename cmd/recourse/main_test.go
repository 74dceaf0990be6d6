package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// testEnv gives the commands a private data directory and fast, still
// valid, settings.
func testEnv(dir string) func(string) string {
	return env(map[string]string{"RECOURSE_DATA_DIR": dir, "RECOURSE_LISTEN": "127.0.0.1:0", "RECOURSE_LOG_LEVEL": "warn"})
}

// runCmd runs a command to completion and returns its output.
func runCmd(t *testing.T, getenv func(string) string, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut strings.Builder
	err := run(t.Context(), args, getenv, strings.NewReader(stdin), &out, &errOut)
	return out.String() + errOut.String(), err
}

// startServe runs `recourse serve` until the test ends and returns its URL.
func startServe(t *testing.T, getenv func(string) string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"serve"}, args...), getenv, strings.NewReader(""), pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v after shutdown", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("serve did not stop within 15s of cancellation")
		}
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	re := regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("serve exited early: %v", <-done)
			}
			if m := re.FindStringSubmatch(l); m != nil {
				go func() {
					for range lines {
					}
				}()
				return m[1]
			}
		case <-time.After(30 * time.Second):
			t.Fatal("serve did not start within 30s")
		}
	}
}

func TestServeDemoEndToEnd(t *testing.T) {
	dir := t.TempDir()
	base := startServe(t, testEnv(dir), "--demo")
	get := func(path string) (*http.Response, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, body := get("/readyz"); resp.StatusCode != 200 {
		t.Fatalf("/readyz = %d %s", resp.StatusCode, body)
	}
	// The demo page shows d.chen's current code; sign in with it.
	_, demo := get("/dev/demo")
	m := regexp.MustCompile(`data-demo-code="d\.chen">(\d{6})<`).FindStringSubmatch(demo)
	if m == nil {
		t.Fatal("no code for d.chen on /dev/demo")
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(path, cookie string, form url.Values) *http.Response {
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if cookie != "" {
			req.Header.Set("Cookie", "__Host-recourse_session="+cookie)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	cookieOf := func(resp *http.Response) string {
		for _, c := range resp.Cookies() {
			if c.Name == "__Host-recourse_session" {
				return c.Value
			}
		}
		t.Fatalf("no session cookie in %d response", resp.StatusCode)
		return ""
	}
	resp := post("/signin", "", url.Values{"identifier": {"d.chen"}, "password": {"Tangerine-Harbor-42"}})
	if resp.Header.Get("Location") != "/signin/second-factor" {
		t.Fatalf("password step -> %s", resp.Header.Get("Location"))
	}
	resp = post("/signin/totp", cookieOf(resp), url.Values{"code": {m[1]}})
	if resp.Header.Get("Location") != "/account" {
		t.Fatalf("TOTP step -> %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	req, _ := http.NewRequest("GET", base+"/account", nil)
	req.Header.Set("Cookie", "__Host-recourse_session="+cookieOf(resp))
	acct, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(acct.Body)
	acct.Body.Close()
	if acct.StatusCode != 200 || !strings.Contains(string(body), "Daniel Chen") || !strings.Contains(string(body), "Ana Silva") {
		t.Fatalf("security page = %d", acct.StatusCode)
	}
	if _, err := os.Stat(filepath.Join(dir, "recourse.db")); err != nil {
		t.Errorf("no database in the data directory: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "master.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("master key file: %v %v", fi, err)
	}
}

func TestAccountCommands(t *testing.T) {
	dir := t.TempDir()
	e := testEnv(dir)
	file := filepath.Join(dir, "people.jsonl")
	people := `{"id":"m.boss","username":"m.boss","display_name":"Mia Boss","emails":[{"address":"mia@example.com","verified":true}]}
{"id":"c.temp","username":"c.temp","display_name":"Cal Temp","employment":"contractor","sponsor":"m.boss","contract_end":"2027-01-31T00:00:00Z"}
`
	if err := os.WriteFile(file, []byte(people), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(t, e, "", "account", "import", file)
	if err != nil || !strings.Contains(out, "2 created") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	// All or nothing: a bad line 2 changes nothing.
	bad := `{"id":"n.new","username":"n.new","display_name":"New"}` + "\n" + `{"id":"x","username":"x","display_name":"X","manager":"ghost"}` + "\n"
	out, err = runCmd(t, e, bad, "account", "import", "-")
	if err == nil || !strings.Contains(err.Error(), "manager") {
		t.Fatalf("bad import: %v\n%s", err, out)
	}
	out, err = runCmd(t, e, `{"id":"a","username":"a","display_name":"A","colour":"red"}`, "account", "import", "-")
	if err == nil || !strings.Contains(err.Error(), "line 1") || !strings.Contains(err.Error(), "colour") {
		t.Fatalf("unknown field: %v", err)
	}
	out, err = runCmd(t, e, "", "account", "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("list --json printed %d lines:\n%s", len(lines), out)
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first["id"] != "c.temp" || first["sponsor"] != "m.boss" {
		t.Fatalf("list --json line = %s (%v)", lines[0], err)
	}
	// The list output re-imports as is.
	out, err = runCmd(t, e, out, "account", "import", "-")
	if err != nil || !strings.Contains(out, "2 updated") {
		t.Fatalf("re-import of list output: %v\n%s", err, out)
	}
	out, err = runCmd(t, e, "violet-lantern-carousel\n", "account", "create", "--id", "s.new", "--name", "Sam New", "--email", "sam@example.com", "--password-stdin")
	if err != nil || !strings.Contains(out, "password set") {
		t.Fatalf("create: %v\n%s", err, out)
	}
	out, err = runCmd(t, e, "password\n", "account", "set-password", "s.new")
	if err == nil || !strings.Contains(err.Error(), "password") {
		t.Fatalf("common password accepted: %v", err)
	}
	out, err = runCmd(t, e, "", "account", "show", "s.new")
	if err != nil || !strings.Contains(out, "sam@example.com (confirmed)") || !strings.Contains(out, "password") {
		t.Fatalf("show: %v\n%s", err, out)
	}
	if _, err := runCmd(t, e, "", "account", "show", "ghost"); err == nil {
		t.Fatal("show of a missing account succeeded")
	}
	if _, err := runCmd(t, e, "", "account", "unlock", "s.new"); err != nil {
		t.Fatal(err)
	}
}

func TestMigrateAndUsage(t *testing.T) {
	dir := t.TempDir()
	upToDate := regexp.MustCompile(`schema at version (\d+) \(latest (\d+)\)`)
	for _, when := range []string{"on an empty database", "when up to date"} {
		out, err := runCmd(t, testEnv(dir), "", "migrate")
		m := upToDate.FindStringSubmatch(out)
		if err != nil || m == nil || m[1] != m[2] || m[1] == "0" {
			t.Fatalf("migrate %s: %v %s", when, err, out)
		}
	}
	var ue usageError
	if _, err := runCmd(t, testEnv(dir), "", "frobnicate"); !errors.As(err, &ue) {
		t.Errorf("unknown command: %v", err)
	}
	if _, err := runCmd(t, testEnv(dir), "", "serve", "--listen", "0.0.0.0:8080"); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("serve on a public address over HTTP: %v", err)
	}
	if out, err := runCmd(t, testEnv(dir), "", "version"); err != nil || !strings.HasPrefix(out, "recourse ") {
		t.Errorf("version: %v %s", err, out)
	}
	if out, err := runCmd(t, testEnv(dir), "", "keygen"); err != nil || len(strings.TrimSpace(out)) != 44 {
		t.Errorf("keygen: %v %q", err, out)
	}
	// PostgreSQL without a shared master key is refused with advice.
	pg := env(map[string]string{"RECOURSE_DATA_DIR": t.TempDir(), "RECOURSE_DATABASE": "postgres://nobody@127.0.0.1:1/x"})
	if _, err := runCmd(t, pg, "", "account", "list"); err == nil {
		t.Error("account list against an unreachable database succeeded")
	}
}
