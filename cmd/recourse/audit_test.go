package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/audit"
	"github.com/recourse/recourse/store/sqlite"
)

func writeFile(t *testing.T, path, data string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAuditCommands runs the audit commands the way an operator and an
// auditor would: sequence, verify, save a checkpoint, export, prove, check,
// then tamper with the database and watch verify name the position.
func TestAuditCommands(t *testing.T) {
	dir := t.TempDir()
	e := testEnv(dir)
	people := writeFile(t, filepath.Join(dir, "people.jsonl"), `{"id":"m.boss","username":"m.boss","display_name":"Mia Boss"}
{"id":"c.temp","username":"c.temp","display_name":"Cal Temp","employment":"contractor","sponsor":"m.boss","contract_end":"2027-01-31T00:00:00Z"}
`)
	if out, err := runCmd(t, e, "", "account", "import", people); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if _, err := runCmd(t, e, "", "audit", "key"); err == nil {
		t.Fatal("audit key before any key exists succeeded")
	}
	out, err := runCmd(t, e, "", "audit", "sequence")
	if err != nil || !strings.Contains(out, "sequenced 2 events") {
		t.Fatalf("sequence: %v\n%s", err, out)
	}
	if fi, err := os.Stat(filepath.Join(dir, "audit.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("audit key file: %v %v", fi, err)
	}
	vkey, err := runCmd(t, e, "", "audit", "key")
	if err != nil || !strings.HasPrefix(vkey, "localhost/audit+") {
		t.Fatalf("audit key = %q, %v", vkey, err)
	}
	keyFile := writeFile(t, filepath.Join(dir, "audit.pub"), vkey)
	saved, err := runCmd(t, e, "", "audit", "checkpoint")
	if err != nil || !strings.HasPrefix(saved, "localhost/audit\n2\n") {
		t.Fatalf("checkpoint: %v\n%s", err, saved)
	}
	savedFile := writeFile(t, filepath.Join(dir, "saved.checkpoint"), saved)

	if out, err := runCmd(t, e, "", "account", "unlock", "c.temp"); err != nil {
		t.Fatalf("unlock: %v %s", err, out)
	}
	if _, err := runCmd(t, e, "", "audit", "sequence"); err != nil {
		t.Fatal(err)
	}
	out, err = runCmd(t, e, "", "audit", "verify", "--key", keyFile, "--checkpoint", savedFile)
	if err != nil || !strings.Contains(out, "ok: 3 events under 2 signed checkpoints") || !strings.Contains(out, "contains the saved checkpoint of size 2") {
		t.Fatalf("verify: %v\n%s", err, out)
	}

	out, err = runCmd(t, e, "", "audit", "export")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 3 {
		t.Fatalf("export: %v\n%s", err, out)
	}
	first, err := recourse.ParseAuditEvent([]byte(lines[0]))
	if err != nil || first.Action != recourse.ActionAccountCreate || first.Channel != recourse.ViaCLI || first.Actor.Role != recourse.ActorAdmin {
		t.Fatalf("first exported event = %+v, %v", first, err)
	}
	out, err = runCmd(t, e, "", "audit", "export", "--format", "ocsf", "--since", "24h")
	if err != nil || strings.Count(out, `"class_uid":3001`) != 3 {
		t.Fatalf("export ocsf: %v\n%s", err, out)
	}
	if _, err := runCmd(t, e, "", "audit", "export", "--since", "last tuesday"); err == nil {
		t.Error("a bad --since was accepted")
	}

	proof, err := runCmd(t, e, "", "audit", "prove", first.ID)
	if err != nil {
		t.Fatalf("prove: %v\n%s", err, proof)
	}
	proofFile := writeFile(t, filepath.Join(dir, "proof.json"), proof)
	if out, err := runCmd(t, e, "", "audit", "check", "--key", keyFile, proofFile); err != nil || !strings.Contains(out, "position 0 of the log of 3 events") {
		t.Fatalf("check inclusion: %v\n%s", err, out)
	}
	cons, err := runCmd(t, e, "", "audit", "consistency", savedFile, "3")
	if err != nil {
		t.Fatalf("consistency: %v\n%s", err, cons)
	}
	consFile := writeFile(t, filepath.Join(dir, "consistency.json"), cons)
	if out, err := runCmd(t, e, "", "audit", "check", "--key", vkey, consFile); err != nil || !strings.Contains(out, "extends the log of 2 events") {
		t.Fatalf("check consistency: %v\n%s", err, out)
	}
	var p audit.InclusionProof
	if err := json.Unmarshal([]byte(proof), &p); err != nil {
		t.Fatal(err)
	}
	p.Event = strings.Replace(p.Event, "account.create", "account.update", 1)
	b, _ := json.Marshal(p)
	if _, err := runCmd(t, e, "", "audit", "check", "--key", keyFile, writeFile(t, filepath.Join(dir, "bad.json"), string(b))); err == nil {
		t.Error("a forged proof checked")
	}

	// Someone with database access rewrites history.
	db, err := sqlite.OpenDB(filepath.Join(dir, "recourse.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), `UPDATE audit_events SET data = replace(data, '"Cal Temp"', '"Someone Else"') WHERE seq = 1`); err != nil {
		t.Fatal(err)
	}
	out, err = runCmd(t, e, "", "audit", "verify")
	if err == nil || !strings.Contains(err.Error(), "position 1:") {
		t.Fatalf("verify after tampering: %v\n%s", err, out)
	}
	if _, err := runCmd(t, e, "", "audit", "frobnicate"); err == nil {
		t.Error("unknown subcommand accepted")
	}
}

func TestAuditTail(t *testing.T) {
	dir := t.TempDir()
	e := testEnv(dir)
	for _, id := range []string{"a.one", "b.two"} {
		if out, err := runCmd(t, e, "", "account", "create", "--id", id, "--name", id); err != nil {
			t.Fatalf("create: %v %s", err, out)
		}
	}
	if _, err := runCmd(t, e, "", "audit", "sequence"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"audit", "tail", "-n", "1", "--interval", "5ms"}, e, strings.NewReader(""), pw, io.Discard)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	next := func() *recourse.AuditEvent {
		t.Helper()
		if !sc.Scan() {
			t.Fatalf("tail ended: %v", <-done)
		}
		ev, err := recourse.ParseAuditEvent(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	if ev := next(); ev.SubjectID != "b.two" {
		t.Fatalf("tail -n 1 started at %+v", ev)
	}
	if out, err := runCmd(t, e, "", "account", "unlock", "a.one"); err != nil {
		t.Fatalf("unlock: %v %s", err, out)
	}
	if _, err := runCmd(t, e, "", "audit", "sequence"); err != nil {
		t.Fatal(err)
	}
	if ev := next(); ev.Action != recourse.ActionAccountUnlock {
		t.Fatalf("tail followed with %+v", ev)
	}
	cancel()
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if err := <-done; err != nil {
		t.Fatalf("tail = %v", err)
	}
}

func TestAuditSigningKeyRules(t *testing.T) {
	skey, vkey, _ := audit.GenerateKey("recourse.example.com/audit")
	tests := []struct {
		name    string
		c       Config
		create  bool
		wantErr string
		wantKey string
	}{
		{"configured", Config{DataDir: t.TempDir(), AuditSigningKey: skey}, false, "", skey},
		{"bad configured", Config{DataDir: t.TempDir(), AuditSigningKey: "PRIVATE+KEY+nope"}, false, "audit_signing_key", ""},
		{"postgres needs one", Config{DataDir: t.TempDir(), Database: "postgres://db/x", Listen: "127.0.0.1:1"}, true, "with PostgreSQL every replica", ""},
		{"sqlite creates one", Config{DataDir: t.TempDir(), Listen: "127.0.0.1:1"}, true, "", ""},
		{"not created on read", Config{DataDir: t.TempDir(), Listen: "127.0.0.1:1"}, false, "does not exist", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, created, err := tc.c.loadAuditSigner(tc.create)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantKey != "" && got != tc.wantKey {
				t.Errorf("key = %q", got)
			}
			if tc.create && !created {
				t.Error("no key created")
			}
			again, created2, err := tc.c.loadAuditSigner(tc.create)
			if err != nil || again != got || created2 {
				t.Errorf("second load = %q %v %v", again, created2, err)
			}
		})
	}
	c := Config{AuditSigningKey: skey, DataDir: t.TempDir()}
	v, err := auditVerifier(&c, "")
	if err != nil || v.Name() != "recourse.example.com/audit" {
		t.Fatalf("default verifier = %v, %v", v, err)
	}
	if v, err := auditVerifier(&Config{DataDir: t.TempDir()}, vkey); err != nil || v.Name() != "recourse.example.com/audit" {
		t.Fatalf("--key VKEY = %v, %v", v, err)
	}
}

// TestServeAudit: serve creates the signing key, records the policy it
// loads, signs the log before it listens, sequences what happens while it
// runs, and publishes the checkpoint; verify passes against the live
// database.
func TestServeAudit(t *testing.T) {
	dir := t.TempDir()
	e := testEnv(dir)
	base := startServe(t, e)
	resp, err := http.Get(base + "/api/v1/audit/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "\n1\n") {
		t.Fatalf("checkpoint at start = %d %q", resp.StatusCode, body)
	}
	if fi, err := os.Stat(filepath.Join(dir, "audit.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("audit key: %v %v", fi, err)
	}
	out, err := runCmd(t, e, "", "audit", "verify")
	if err != nil || !strings.Contains(out, "ok: 1 events") {
		t.Fatalf("verify against the running server: %v\n%s", err, out)
	}
	out, err = runCmd(t, e, "", "audit", "export")
	if err != nil || !strings.Contains(out, `"action":"policy.load"`) {
		t.Fatalf("the policy load is not in the log: %v\n%s", err, out)
	}
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "recourse_audit_unsequenced_events 0") || !strings.Contains(string(body), "recourse_audit_log_size 1") {
		t.Errorf("audit metrics missing:\n%s", body)
	}
	// The server has written (migrations, the policy load, its audit
	// event), so the SQLite writer has had turns and commits. How many
	// writers wait at the moment of the scrape depends on the background
	// jobs; store/sqlite tests the gauge exactly.
	for _, re := range []string{`recourse_sqlite_writer_turns_total [1-9]`, `recourse_sqlite_writer_commits_total [1-9]`,
		`recourse_sqlite_writer_busy_seconds_total [0-9.e+-]+`, `recourse_sqlite_writer_failed_commits_total 0`, `recourse_sqlite_log_restarts_total [0-9]+`, `recourse_sqlite_writer_waiting [0-9]+`,
		// No recovery was started: the in-process starts' buffer is empty.
		`recourse_recovery_starts_buffered 0`, `recourse_recovery_starts_waited_total 0`, `recourse_recovery_starts_deferred_total 0`, `recourse_recovery_starts_refused_total 0`,
		// The policy load, signed before serving: one round of one event.
		`recourse_audit_sequencer_round_seconds_count 1`, `recourse_audit_sequenced_events_total 1`,
		`recourse_audit_sequencer_round_seconds_bucket\{le="2"\} 1`} {
		if !regexp.MustCompile(`(?m)^` + re).Match(body) {
			t.Errorf("/metrics lacks %s", re)
		}
	}
}
