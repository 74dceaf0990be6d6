package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recourse/recourse/notify"
	"github.com/recourse/recourse/notify/notifytest"
)

func TestNotifyConfig(t *testing.T) {
	secret := notify.NewSecret()
	hook := "notify:\n  webhooks:\n    - url: https://siem.example.com/hooks\n      secret: " + secret + "\n      events: [\"security.*\", recovery.completed]\n"
	tests := []struct {
		name  string
		yaml  string
		env   map[string]string
		want  string // start of the error; "" = valid
		check func(t *testing.T, c *Config)
	}{
		{"defaults: the outbox", "", nil, "", func(t *testing.T, c *Config) {
			if c.Notify.SMTPEnabled() || c.Notify.AllowPrivateTargets || c.Notify.MaxAttempts != notify.DefaultMaxAttempts {
				t.Errorf("defaults = %+v", c.Notify)
			}
		}},
		{"smtp from the file, password from the environment",
			"notify:\n  smtp:\n    host: smtp.example.com\n    username: recourse\n    from: Recourse <security@example.com>\n    timeout: 20s\n",
			map[string]string{"RECOURSE_SMTP_PASSWORD": "from-env"}, "", func(t *testing.T, c *Config) {
				s := c.Notify.SMTP
				if s.Host != "smtp.example.com" || s.Password != "from-env" || s.Security != "starttls" || s.Timeout != 20*time.Second {
					t.Errorf("smtp = %+v", s)
				}
			}},
		{"webhooks", hook, nil, "", func(t *testing.T, c *Config) {
			if len(c.Notify.Webhooks) != 1 || c.Notify.Webhooks[0].Events[1] != "recovery.completed" {
				t.Errorf("webhooks = %+v", c.Notify.Webhooks)
			}
		}},
		{"a typo is an error", "notify:\n  smpt:\n    host: x\n", nil, "config file", nil},
		{"smtp without a sender", "notify:\n  smtp:\n    host: smtp.example.com\n", nil, "notify.smtp.from", nil},
		{"a private webhook target", strings.Replace(hook, "https://siem.example.com", "http://10.1.1.1", 1), nil, "notify.webhooks[0].url", nil},
		{"a private webhook target, allowed", strings.Replace(hook, "https://siem.example.com", "http://10.1.1.1", 1) + "  allow_private_targets: true\n", nil, "", nil},
		{"a weak secret", strings.Replace(hook, secret, "whsec_c2hvcnQ=", 1), nil, "notify.webhooks[0].secret", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "recourse.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			vars := map[string]string{"RECOURSE_DATA_DIR": dir}
			for k, v := range tc.env {
				vars[k] = v
			}
			fs := newFlagSet("serve", io.Discard)
			var cf commonFlags
			cf.register(fs)
			if err := parseFlags(fs, []string{"--config", path}); err != nil {
				t.Fatal(err)
			}
			c, err := loadConfig(fs, &cf, env(vars), func(*Config, map[string]bool) {})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("loadConfig = %v", err)
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
				t.Fatalf("loadConfig = %v, want an error about %s", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), strings.TrimPrefix(secret, notify.SecretPrefix)) {
				t.Fatalf("the error shows the secret: %v", err)
			}
			if tc.check != nil && err == nil {
				tc.check(t, c)
			}
		})
	}
}

// TestServeNotifies runs `recourse serve` with a relay and a webhook from
// its configuration file: a lock-out reaches the account holder by mail,
// the security mailbox, and the security webhook; the metrics count them.
func TestServeNotifies(t *testing.T) {
	relay := notifytest.NewSMTPServer(t, notifytest.Plain, false) // a relay on loopback
	secret := notify.NewSecret()
	rcv := notifytest.NewReceiver(t, secret)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`notify:
  smtp:
    host: 127.0.0.1
    port: %d
    security: none
    from: "Acme Security <security@example.com>"
  security_mailbox: soc@example.com
  allowed_networks: ["127.0.0.0/8"]
  webhooks:
    - url: %s
      secret: %s
      events: ["security.*"]
`, relay.Port, rcv.URL, secret)
	path := filepath.Join(dir, "recourse.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	base := startServe(t, testEnv(dir), "--demo", "--config", path)

	for range 10 { // auth.failure_limit
		resp, err := http.PostForm(base+"/signin", url.Values{"identifier": {"a.silva"}, "password": {"not-the-password"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	relay.WaitFor(t, 20*time.Second, "the lock-out notices", func([]*notifytest.Mail) bool {
		return len(relay.MailsTo("a.silva@example.com")) > 0 && len(relay.MailsTo("soc@example.com")) > 0
	})
	if m := relay.MailsTo("a.silva@example.com")[0]; m.Subject != "Your account was locked" || m.Header.Get("From") != `"Acme Security" <security@example.com>` {
		t.Errorf("mail = %q from %q", m.Subject, m.Header.Get("From"))
	}
	rcv.WaitFor(t, 20*time.Second, "the lock-out event", func(evs []notifytest.Event, _ []notifytest.Call) bool { return len(evs) > 0 })
	if ev := rcv.Events()[0]; ev.Type != notify.EventLockout || ev.Data["account_id"] != "a.silva" {
		t.Errorf("event = %+v", ev)
	}
	// The metrics count the deliveries (polled: the count follows the
	// receiver's answer).
	want := []string{`recourse_notifications_sent_total{kind="email"} 2`, `recourse_notifications_sent_total{kind="webhook"} 1`, "recourse_webhook_endpoints_failing 0"}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		missing := ""
		for _, w := range want {
			if !strings.Contains(string(body), w) {
				missing = w
			}
		}
		if missing == "" {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("/metrics lacks %s", missing)
		}
	}
}
