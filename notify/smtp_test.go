package notify_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/recourse/recourse/notify"
	"github.com/recourse/recourse/notify/notifytest"
)

const publicURL = "https://recourse.example.com"

func smtpConfig(srv *notifytest.SMTPServer, security string, auth bool) notify.SMTPConfig {
	c := notify.SMTPConfig{Host: srv.Host, Port: srv.Port, Security: security, From: "security@example.com", Timeout: 5 * time.Second}
	if auth {
		c.Username, c.Password = srv.Username, srv.Password
	}
	return c
}

func TestSMTPDelivers(t *testing.T) {
	tests := []struct {
		name     string
		mode     notifytest.SMTPMode
		security string
		auth     bool
	}{
		{"STARTTLS with authentication", notifytest.STARTTLS, "starttls", true},
		{"implicit TLS with authentication", notifytest.Implicit, "tls", true},
		{"plain relay on loopback", notifytest.Plain, "none", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := notifytest.NewSMTPServer(t, tc.mode, tc.auth)
			s, err := notify.NewSMTP(smtpConfig(srv, tc.security, tc.auth), "Acme Recourse", srv.ClientTLS)
			if err != nil {
				t.Fatal(err)
			}
			text := "Hello Dana,\n\nYour password was changed.\n\nWhen: 2026-11-26 09:00 UTC\nBrowser: Evil/1.0 (+https://evil.example/phish)\n\n" +
				"This wasn't me: open " + publicURL + "/recover/cancel?t=rcx_abc and confirm.\n\n— Acme Recourse\n"
			body, err := notify.Render("Acme Recourse", "Your password was changed <b>", text, publicURL)
			if err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
			if err := s.Send(t.Context(), notify.Email{ID: "msg_abc", To: "dana@example.com", Subject: "Your password was changed <b>", Text: text, At: at}, body); err != nil {
				t.Fatal(err)
			}
			ms := srv.Mails()
			if len(ms) != 1 {
				t.Fatalf("%d mails", len(ms))
			}
			m := ms[0]
			checks := []struct {
				what string
				ok   bool
			}{
				{"envelope recipient", len(m.To) == 1 && m.To[0] == "dana@example.com"},
				{"envelope sender", m.From == "security@example.com"},
				{"From names the issuer", m.Header.Get("From") == `"Acme Recourse" <security@example.com>`},
				{"Message-ID is the notification id", m.MessageID == "<msg_abc@example.com>"},
				{"Subject", m.Subject == "Your password was changed <b>"},
				{"Auto-Submitted", m.Header.Get("Auto-Submitted") == "auto-generated"},
				{"Date", m.Header.Get("Date") != "" && strings.Contains(m.Header.Get("Date"), "26 Nov 2026")},
				{"TLS", m.TLS == (tc.mode != notifytest.Plain)},
				{"authenticated", (m.User != "") == tc.auth},
				{"text body", strings.Contains(m.Text, "Your password was changed.") && strings.Contains(m.Text, "Replies are not read.")},
				{"html has our link", strings.Contains(m.HTML, `<a href="`+publicURL+`/recover/cancel?t=rcx_abc"`)},
				{"html does not link a client-supplied URL", !strings.Contains(m.HTML, `href="https://evil.example`)},
				{"html escapes the subject", strings.Contains(m.HTML, "changed &lt;b&gt;")},
			}
			for _, c := range checks {
				if !c.ok {
					t.Errorf("%s: wrong\nheaders: %v\ntext:\n%s\nhtml:\n%s", c.what, m.Header, m.Text, m.HTML)
				}
			}
		})
	}
}

func TestSMTPFailures(t *testing.T) {
	mail := notify.Email{ID: "msg_f", To: "dana@example.com", Subject: "s", Text: "t"}
	body := notify.Rendered{Text: "t", HTML: "<p>t</p>"}
	t.Run("STARTTLS is required", func(t *testing.T) {
		srv := notifytest.NewSMTPServer(t, notifytest.Plain, false)
		c := smtpConfig(srv, "starttls", false)
		s, _ := notify.NewSMTP(c, "Recourse", srv.ClientTLS)
		if err := s.Send(t.Context(), mail, body); err == nil {
			t.Fatal("sent in plain text to a relay without STARTTLS")
		}
		if n := len(srv.Mails()); n != 0 {
			t.Fatalf("%d mails", n)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		srv := notifytest.NewSMTPServer(t, notifytest.STARTTLS, true)
		c := smtpConfig(srv, "starttls", true)
		c.Password = "wrong-password"
		s, _ := notify.NewSMTP(c, "Recourse", srv.ClientTLS)
		err := s.Send(t.Context(), mail, body)
		if err == nil || notify.Permanent(err) {
			t.Fatalf("Send = %v, want a retryable error", err)
		}
		if strings.Contains(err.Error(), "wrong-password") {
			t.Fatalf("the error shows the password: %v", err)
		}
	})
	t.Run("temporary failure", func(t *testing.T) {
		srv := notifytest.NewSMTPServer(t, notifytest.STARTTLS, true)
		srv.TempFail(1)
		s, _ := notify.NewSMTP(smtpConfig(srv, "starttls", true), "Recourse", srv.ClientTLS)
		err := s.Send(t.Context(), mail, body)
		if err == nil || notify.Permanent(err) {
			t.Fatalf("Send = %v, want a retryable error", err)
		}
		if err := s.Send(t.Context(), mail, body); err != nil {
			t.Fatalf("retry: %v", err)
		}
	})
	t.Run("recipient refused", func(t *testing.T) {
		srv := notifytest.NewSMTPServer(t, notifytest.STARTTLS, true)
		srv.Reject("dana@example.com")
		s, _ := notify.NewSMTP(smtpConfig(srv, "starttls", true), "Recourse", srv.ClientTLS)
		if err := s.Send(t.Context(), mail, body); !notify.Permanent(err) {
			t.Fatalf("Send = %v, want a permanent error", err)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		srv := notifytest.NewSMTPServer(t, notifytest.Implicit, true)
		s, _ := notify.NewSMTP(smtpConfig(srv, "tls", true), "Recourse", nil) // system roots only
		if err := s.Send(t.Context(), mail, body); err == nil {
			t.Fatal("sent to a relay with an untrusted certificate")
		}
	})
}

func TestConfigValidate(t *testing.T) {
	ok := notify.DefaultConfig()
	hook := notify.WebhookConfig{URL: "https://siem.example.com/hook", Secret: secret(32, 'w'), Events: []string{"security.*"}}
	tests := []struct {
		name string
		edit func(c *notify.Config)
		want string // "" for valid
	}{
		{"defaults", func(*notify.Config) {}, ""},
		{"smtp", func(c *notify.Config) {
			c.SMTP.Host, c.SMTP.From, c.SMTP.Username, c.SMTP.Password = "smtp.example.com", "Recourse <r@example.com>", "u", "p"
		}, ""},
		{"smtp without from", func(c *notify.Config) { c.SMTP.Host = "smtp.example.com" }, "notify.smtp.from"},
		{"smtp host with port", func(c *notify.Config) { c.SMTP.Host, c.SMTP.From = "smtp.example.com:25", "r@example.com" }, "notify.smtp.host"},
		{"plain text to a remote relay", func(c *notify.Config) {
			c.SMTP.Host, c.SMTP.From, c.SMTP.Security = "smtp.example.com", "r@example.com", "none"
		}, "notify.smtp.security"},
		{"plain text to a local relay", func(c *notify.Config) {
			c.SMTP.Host, c.SMTP.From, c.SMTP.Security = "127.0.0.1", "r@example.com", "none"
		}, ""},
		{"bad security", func(c *notify.Config) { c.SMTP.Host, c.SMTP.From, c.SMTP.Security = "h", "r@example.com", "ssl" }, "notify.smtp.security"},
		{"password without user", func(c *notify.Config) { c.SMTP.Host, c.SMTP.From, c.SMTP.Password = "h", "r@example.com", "p" }, "notify.smtp.username"},
		{"webhook", func(c *notify.Config) { c.Webhooks = []notify.WebhookConfig{hook} }, ""},
		{"webhook short secret", func(c *notify.Config) {
			h := hook
			h.Secret = secret(16, 'w')
			c.Webhooks = []notify.WebhookConfig{h}
		}, "notify.webhooks[0].secret"},
		{"webhook private target", func(c *notify.Config) {
			h := hook
			h.URL = "http://10.0.0.5/hook"
			c.Webhooks = []notify.WebhookConfig{h}
		}, "notify.webhooks[0].url"},
		{"webhook private target allowed by network", func(c *notify.Config) {
			h := hook
			h.URL = "http://10.0.0.5/hook"
			c.Webhooks, c.AllowedNetworks = []notify.WebhookConfig{h}, []string{"10.0.0.0/24"}
		}, ""},
		{"webhook unknown event", func(c *notify.Config) {
			h := hook
			h.Events = []string{"recovery.opend"}
			c.Webhooks = []notify.WebhookConfig{h}
		}, "notify.webhooks[0].events"},
		{"webhook listed twice", func(c *notify.Config) { c.Webhooks = []notify.WebhookConfig{hook, hook} }, "notify.webhooks[1].url"},
		{"bad network", func(c *notify.Config) { c.AllowedNetworks = []string{"10.0.0.0"} }, "notify.allowed_networks"},
		{"bad mailbox", func(c *notify.Config) { c.SecurityMailbox = "soc" }, "notify.security_mailbox"},
		{"max attempts", func(c *notify.Config) { c.MaxAttempts = 0 }, "notify.max_attempts"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			c.Webhooks = nil
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate = %v", err)
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
				t.Fatalf("Validate = %v, want an error about %s", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), strings.TrimPrefix(hook.Secret, notify.SecretPrefix)) {
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}
}

func TestCourierWithoutSMTP(t *testing.T) {
	c, err := notify.New(notify.Options{Config: notify.DefaultConfig(), Issuer: "Recourse"})
	if err != nil {
		t.Fatal(err)
	}
	if c.SendsEmail() {
		t.Fatal("SendsEmail without a host")
	}
	if err := c.SendEmail(t.Context(), notify.Email{To: "a@example.com"}); !notify.Permanent(err) || errors.Is(err, notify.ErrGone) {
		t.Fatalf("SendEmail = %v", err)
	}
}
