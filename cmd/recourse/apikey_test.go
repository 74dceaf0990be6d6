package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/recourse/recourse/client"
)

// TestAPIKeyCommand issues a key on the database, then uses it to manage
// keys on the running server through the Go client.
func TestAPIKeyCommand(t *testing.T) {
	dir := t.TempDir()
	base := startServe(t, testEnv(dir), "--demo")
	local := testEnv(dir)

	out, err := runCmd(t, local, "", "apikey", "create", "--owner", "r.patel", "--name", "ops laptop", "--scopes", "api_keys:read,api_keys:write,audit:read", "--expires", "30d")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	secret := regexp.MustCompile(`secret:\s+(rcs_[a-z2-7]{52})`).FindStringSubmatch(out)
	id := regexp.MustCompile(`id:\s+(ak_[a-z2-7]+)`).FindStringSubmatch(out)
	if secret == nil || id == nil || !strings.Contains(out, "shown once") {
		t.Fatalf("create printed:\n%s", out)
	}
	remote := env(map[string]string{"RECOURSE_SERVER": base, "RECOURSE_API_KEY": secret[1]})

	// Remote: the key lists keys and issues one within its own scopes.
	out, err = runCmd(t, remote, "", "apikey", "create", "--owner", "s.ito", "--name", "siem", "--scopes", "audit:read", "--json")
	if err != nil {
		t.Fatalf("remote create: %v\n%s", err, out)
	}
	var issued client.IssuedAPIKey
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &issued); err != nil || issued.APIKey.Owner != "s.ito" || issued.APIKey.CreatedBy != id[1] {
		t.Fatalf("remote create printed %s (%v)", out, err)
	}
	out, err = runCmd(t, remote, "", "apikey", "list")
	if err != nil || !strings.Contains(out, id[1]) || !strings.Contains(out, issued.APIKey.ID) {
		t.Fatalf("remote list: %v\n%s", err, out)
	}
	if out, err := runCmd(t, remote, "", "apikey", "create", "--owner", "s.ito", "--name", "x", "--scopes", "accounts:write"); err == nil || !strings.Contains(out+err.Error(), "scopes") {
		t.Fatalf("a key issued a scope it lacks: %v\n%s", err, out)
	}

	// Local: rotate, then revoke; the remote view agrees.
	out, err = runCmd(t, local, "", "apikey", "rotate", issued.APIKey.ID, "--overlap", "1h")
	if err != nil || !strings.Contains(out, "replaces:    "+issued.APIKey.ID) {
		t.Fatalf("rotate: %v\n%s", err, out)
	}
	if out, err := runCmd(t, local, "", "apikey", "revoke", issued.APIKey.ID); err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	out, err = runCmd(t, remote, "", "apikey", "show", issued.APIKey.ID)
	if err != nil || !strings.Contains(out, "state:       revoked") || !strings.Contains(out, "replaced by:") {
		t.Fatalf("remote show: %v\n%s", err, out)
	}
	if out, err := runCmd(t, local, "", "apikey", "scopes"); err != nil || !strings.Contains(out, "recovery:open") {
		t.Fatalf("scopes: %v\n%s", err, out)
	}

	for _, args := range [][]string{
		{"apikey"},
		{"apikey", "create", "--owner", "r.patel"},
		{"apikey", "show"},
		{"apikey", "nope"},
		{"apikey", "list", "--server", base},
		{"apikey", "create", "--owner", "r.patel", "--name", "x", "--scopes", "audit:read", "--expires", "soon"},
	} {
		if _, err := runCmd(t, local, "", args...); exitCode(err) != 2 {
			t.Errorf("%v: exit %d (%v), want a usage error", args, exitCode(err), err)
		}
	}
}
