// Package notify delivers what Recourse tells people and systems: mail over
// SMTP (plain text and HTML from embedded templates) and webhook calls
// signed as the Standard Webhooks specification says, through an HTTP client
// that refuses private, loopback and link-local targets unless configured.
//
// It only delivers. What to send, to whom and when is decided by the
// service, which stores each notification in the transaction of the change
// it reports and queues its delivery on the job queue; the queue's worker
// calls back into the service, which calls a Courier from this package.
package notify

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"strings"
	"time"
)

// Config is the "notify" section of the configuration file.
type Config struct {
	// SMTP sends mail; without a host, mail stays in the outbox (shown at
	// /dev/outbox in development and demo mode).
	SMTP SMTPConfig `yaml:"smtp"`
	// SecurityMailbox receives every security alert, besides the members
	// of the "security" group and the webhooks subscribed to them.
	SecurityMailbox string `yaml:"security_mailbox"`
	// Webhooks are receivers of signed event calls. More can be managed
	// through the API; these are kept in step with the file at start.
	Webhooks []WebhookConfig `yaml:"webhooks"`
	// AllowPrivateTargets lets webhooks call loopback, private and
	// link-local addresses (default false: such targets are refused).
	AllowPrivateTargets bool `yaml:"allow_private_targets"`
	// AllowedNetworks are CIDRs allowed as webhook targets even though
	// private (e.g. the SIEM's subnet), narrower than AllowPrivateTargets.
	AllowedNetworks []string `yaml:"allowed_networks"`
	// WebhookTimeout bounds one webhook call (default 10s).
	WebhookTimeout time.Duration `yaml:"webhook_timeout"`
	// RotationOverlap is how long a rotated webhook secret keeps signing
	// alongside the new one (default 24h).
	RotationOverlap time.Duration `yaml:"rotation_overlap"`
	// MaxAttempts bounds the delivery attempts of one notification
	// (default 12, about a day of retries).
	MaxAttempts int `yaml:"max_attempts"`
	// FailingAfter flags a webhook endpoint in the logs and the metrics
	// after this many consecutive failed calls (default 5).
	FailingAfter int `yaml:"failing_after"`
	// WebhookWorkers is how many webhook calls a replica makes at once
	// (default 1: calls go out in the order of their events).
	WebhookWorkers int `yaml:"webhook_workers"`
}

// SMTPConfig is how Recourse reaches its mail relay.
type SMTPConfig struct {
	Host string `yaml:"host"`
	// Port defaults to 587 for starttls, 465 for tls and 25 for none.
	Port int `yaml:"port"`
	// Security is "starttls" (default: STARTTLS is required), "tls"
	// (implicit TLS, "SMTPS"), or "none" (a relay on loopback only).
	Security string `yaml:"security"`
	// Username and Password (or PasswordFile) authenticate when set.
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// From is the sender: "Name <address>" or an address, which then gets
	// the issuer as its name.
	From string `yaml:"from"`
	// CAFile is a PEM bundle trusted instead of the system roots (a
	// private relay).
	CAFile string `yaml:"ca_file"`
	// Timeout bounds connecting and each command (default 15s).
	Timeout time.Duration `yaml:"timeout"`
	// HELO is the name sent in EHLO (default: the host name of From).
	HELO string `yaml:"helo"`
}

// WebhookConfig is one receiver set in the configuration file.
type WebhookConfig struct {
	URL string `yaml:"url"`
	// Secret is "whsec_" followed by 24–64 random bytes in base64.
	Secret string `yaml:"secret"`
	// Events are event types, "prefix.*" or "*".
	Events []string `yaml:"events"`
}

// Defaults of Config.
const (
	DefaultWebhookTimeout  = 10 * time.Second
	DefaultRotationOverlap = 24 * time.Hour
	DefaultMaxAttempts     = 12
	DefaultFailingAfter    = 5
	DefaultSMTPTimeout     = 15 * time.Second
)

// DefaultConfig returns the defaults: no SMTP (the outbox), no webhooks,
// private targets refused.
func DefaultConfig() Config {
	return Config{
		SMTP:            SMTPConfig{Security: "starttls", Timeout: DefaultSMTPTimeout},
		WebhookTimeout:  DefaultWebhookTimeout,
		RotationOverlap: DefaultRotationOverlap,
		MaxAttempts:     DefaultMaxAttempts,
		FailingAfter:    DefaultFailingAfter,
		WebhookWorkers:  1,
	}
}

// SMTPEnabled reports whether mail goes to an SMTP relay.
func (c Config) SMTPEnabled() bool { return c.SMTP.Host != "" }

// Guard returns the webhook target guard the configuration describes.
func (c Config) Guard() (Guard, error) {
	g := Guard{AllowPrivate: c.AllowPrivateTargets}
	for _, n := range c.AllowedNetworks {
		p, err := netip.ParsePrefix(strings.TrimSpace(n))
		if err != nil {
			return Guard{}, fmt.Errorf("notify.allowed_networks: %q is not a CIDR like 10.1.2.0/24", n)
		}
		g.Allow = append(g.Allow, p.Masked())
	}
	return g, nil
}

// Validate checks the configuration; errors name the field.
func (c Config) Validate() error {
	if err := c.SMTP.validate(); err != nil {
		return err
	}
	if c.SecurityMailbox != "" {
		if _, err := mail.ParseAddress(c.SecurityMailbox); err != nil {
			return fmt.Errorf("notify.security_mailbox: %q is not an email address", c.SecurityMailbox)
		}
	}
	g, err := c.Guard()
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, w := range c.Webhooks {
		field := fmt.Sprintf("notify.webhooks[%d]", i)
		if err := g.CheckURL(w.URL); err != nil {
			return fmt.Errorf("%s.url: %w", field, err)
		}
		if seen[w.URL] {
			return fmt.Errorf("%s.url: %q is listed twice", field, w.URL)
		}
		seen[w.URL] = true
		if _, err := ParseSecret(w.Secret); err != nil {
			return fmt.Errorf("%s.secret: %w", field, err)
		}
		if err := CheckEvents(w.Events); err != nil {
			return fmt.Errorf("%s.events: %w", field, err)
		}
	}
	if c.WebhookTimeout <= 0 || c.WebhookTimeout > 5*time.Minute {
		return errors.New("notify.webhook_timeout: must be between 0 and 5m")
	}
	if c.RotationOverlap < 0 || c.RotationOverlap > 30*24*time.Hour {
		return errors.New("notify.rotation_overlap: must be between 0 and 720h")
	}
	if c.MaxAttempts < 1 || c.MaxAttempts > 50 {
		return errors.New("notify.max_attempts: must be between 1 and 50")
	}
	if c.FailingAfter < 1 {
		return errors.New("notify.failing_after: must be at least 1")
	}
	if c.WebhookWorkers < 1 || c.WebhookWorkers > 64 {
		return errors.New("notify.webhook_workers: must be between 1 and 64")
	}
	return nil
}

func (c SMTPConfig) validate() error {
	if c.Host == "" {
		return nil
	}
	if strings.ContainsAny(c.Host, "/:@ ") {
		return fmt.Errorf("notify.smtp.host: %q must be a host name or address, without a port", c.Host)
	}
	switch c.Security {
	case "starttls", "tls":
	case "none":
		if !isLoopbackHost(c.Host) {
			return errors.New("notify.smtp.security: none (plain text) is allowed only for a relay on loopback; use starttls or tls")
		}
	default:
		return fmt.Errorf("notify.smtp.security: %q must be starttls, tls or none", c.Security)
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("notify.smtp.port: %d is not a port", c.Port)
	}
	if c.From == "" {
		return errors.New("notify.smtp.from: the sender address is required with notify.smtp.host")
	}
	if _, err := mail.ParseAddress(c.From); err != nil {
		return fmt.Errorf("notify.smtp.from: %q is not an address like \"Recourse <security@example.com>\"", c.From)
	}
	if c.Password != "" && c.PasswordFile != "" {
		return errors.New("notify.smtp.password and password_file: set one, not both")
	}
	if (c.Password != "" || c.PasswordFile != "") && c.Username == "" {
		return errors.New("notify.smtp.username: required with a password")
	}
	if c.Timeout <= 0 || c.Timeout > 5*time.Minute {
		return errors.New("notify.smtp.timeout: must be between 0 and 5m")
	}
	return nil
}

func (c SMTPConfig) port() int {
	if c.Port != 0 {
		return c.Port
	}
	switch c.Security {
	case "tls":
		return 465
	case "none":
		return 25
	}
	return 587
}

func isLoopbackHost(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && a.IsLoopback()
}

// hostOf returns the host part of an address, for EHLO and Message-IDs.
func hostOf(addr string) string {
	_, host, ok := strings.Cut(addr, "@")
	if !ok || host == "" {
		return "localhost"
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}
