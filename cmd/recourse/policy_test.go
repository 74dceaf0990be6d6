package main

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/policy"
)

func TestPolicyLintCommand(t *testing.T) {
	dir := t.TempDir()
	e := testEnv(dir)
	out, err := runCmd(t, e, "", "policy", "lint")
	if err != nil || !strings.Contains(out, "0 errors, 0 warnings") {
		t.Fatalf("lint built-in: %v\n%s", err, out)
	}
	src := string(policy.DefaultYAML())
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	broken := write("broken.yaml", strings.Replace(src, `account.status == "suspended"`, `account.stauts == "suspended"`, 1))
	out, err = runCmd(t, e, "", "policy", "lint", broken)
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(out, "broken.yaml:") || !strings.Contains(out, "stauts") {
		t.Fatalf("lint broken: %v\n%s", err, out)
	}
	weak := write("weak.yaml", strings.Replace(src, "              - all:\n                  - code: {channel: email}\n                  - any:\n                      - code: {channel: sms}\n                      - approval: {from: [manager, recovery_contact]}", "              - code: {channel: email}", 1))
	if out, err = runCmd(t, e, "", "policy", "lint", weak); err != nil || !strings.Contains(out, "warning: an email code is the only factor") {
		t.Fatalf("lint weak (not strict): %v\n%s", err, out)
	}
	if _, err = runCmd(t, e, "", "policy", "lint", "--strict", weak); !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("lint --strict weak: %v", err)
	}
	if exitCode(ee) != 2 {
		t.Errorf("exit code %d", exitCode(ee))
	}
}

func TestPolicyExplainAndTestCommands(t *testing.T) {
	dir := t.TempDir()
	e := testEnv(dir)
	acct := filepath.Join(dir, "riya.json")
	os.WriteFile(acct, []byte(`{"id":"r.patel","username":"r.patel","display_name":"Riya Patel","groups":["admins"],
		"authenticators":[{"type":"webauthn","phishing_resistant":true,"device_bound":true,"bound_at":"2025-01-01T00:00:00Z"}]}`), 0o600)
	out, err := runCmd(t, e, "", "policy", "explain", "--action", "password.reset", "--account-file", acct, "--initiator", "help_desk")
	if err != nil || !strings.Contains(out, "Rule:          privileged") || !strings.Contains(out, "Initiated by:  help_desk") {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	out, err = runCmd(t, e, "", "policy", "explain", "--action", "password.reset", "--account-file", acct, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("explain --json: %v\n%s", err, out)
	}
	for _, k := range []string{"decision", "rule", "tier", "requirement", "delay", "policy_digest"} {
		if _, ok := d[k]; !ok {
			t.Errorf("explain --json lacks %q", k)
		}
	}
	// Against the database.
	if _, err := runCmd(t, e, "violet-lantern-carousel\n", "account", "create", "--id", "d.chen", "--name", "Daniel Chen", "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	out, err = runCmd(t, e, "", "policy", "explain", "--action", "phone.change", "--account", "d.chen")
	if err != nil || !strings.Contains(out, "holder-without-session") {
		t.Fatalf("explain --account: %v\n%s", err, out)
	}
	if _, err := runCmd(t, e, "", "policy", "explain", "--action", "account.delete", "--account", "d.chen"); err == nil {
		t.Error("unknown action accepted")
	}
	out, err = runCmd(t, e, "", "policy", "test")
	if err != nil || !strings.Contains(out, "0 failed") {
		t.Fatalf("policy test: %v\n%s", err, out)
	}
	cases := filepath.Join(dir, "cases.yaml")
	os.WriteFile(cases, []byte("cases:\n  - name: wrong\n    account: {id: a, username: a, display_name: A}\n    action: password.change\n    request: {initiator: help_desk}\n    expect: {decision: require}\n"), 0o600)
	out, err = runCmd(t, e, "", "policy", "test", cases)
	if err == nil || !strings.Contains(out, "decision: want require, got deny") {
		t.Fatalf("failing case: %v\n%s", err, out)
	}
	out, err = runCmd(t, e, "", "policy", "show")
	if err != nil || !strings.Contains(out, "sha256:") || !strings.Contains(out, "credential.reissue (critical)") {
		t.Fatalf("show: %v\n%s", err, out)
	}
}

func TestPolicyWatcher(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	src := string(policy.DefaultYAML())
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.DataDir = dir
	st, err := openStore(t.Context(), &c, true)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.DiscardHandler)
	svc, err := newService(t.Context(), &c, st, log, false)
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := loadPolicyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	svc.SetPolicy(p)
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "r"}, []string{"result"})
	w := newPolicyWatcher(path, svc, log, reloads)
	first := svc.Policy().Digest()

	w.check(t.Context(), false) // unchanged file: nothing happens
	if got := testutil.ToFloat64(reloads.WithLabelValues("ok")); got != 0 {
		t.Fatalf("reloaded an unchanged file")
	}
	// A valid change is picked up.
	os.WriteFile(path, []byte(strings.Replace(src, "code_ttl: 10m", "code_ttl: 5m", 1)), 0o600)
	w.check(t.Context(), false)
	second := svc.Policy().Digest()
	if second == first || testutil.ToFloat64(reloads.WithLabelValues("ok")) != 1 {
		t.Fatal("a changed policy was not loaded")
	}
	// An invalid one is refused and the old one stays.
	os.WriteFile(path, []byte(strings.Replace(src, "version: 1", "version: 2", 1)), 0o600)
	w.check(t.Context(), false)
	if svc.Policy().Digest() != second || testutil.ToFloat64(reloads.WithLabelValues("refused")) != 1 {
		t.Fatal("an invalid policy replaced the one in force")
	}
	// An unsafe one (lint error) is refused too, even on SIGHUP.
	os.WriteFile(path, []byte(strings.Replace(src, "              - recovery_code: {}\n              - all:\n                  - code: {channel: email}", "              - attestation: {}\n              - all:\n                  - code: {channel: email}", 1)), 0o600)
	w.check(t.Context(), true)
	if svc.Policy().Digest() != second || testutil.ToFloat64(reloads.WithLabelValues("refused")) != 2 {
		t.Fatal("a policy with lint errors was put in force")
	}
	// Every reload attempt is in the audit log, with its digest or its error.
	recs, err := st.UnsequencedAuditEvents(t.Context(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	for _, r := range recs {
		if e, _ := recourse.ParseAuditEvent(r.Data); e.Action == recourse.ActionPolicyLoad {
			outcomes = append(outcomes, string(e.Outcome))
			if e.Outcome == recourse.OutcomeSuccess && e.PolicyDigest != second {
				t.Errorf("policy.load digest = %q, want %q", e.PolicyDigest, second)
			}
		}
	}
	if strings.Join(outcomes, ",") != "success,failure,failure" {
		t.Errorf("policy.load outcomes = %v", outcomes)
	}
}
