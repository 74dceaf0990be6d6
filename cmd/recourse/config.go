package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/recourse/recourse/service"

	"github.com/recourse/recourse/notify"
)

// Config is Recourse's configuration. Values come, later ones winning, from
// the defaults, an optional YAML file (--config), RECOURSE_* environment
// variables, and flags. docs/configuration.md lists every field.
type Config struct {
	// DataDir holds the SQLite database and the generated master key.
	DataDir string `yaml:"data_dir"`
	// Listen is the address the HTTP server binds.
	Listen string `yaml:"listen"`
	// Database is "sqlite:PATH" or a postgres:// URL; empty means SQLite in
	// the data directory.
	Database string `yaml:"database"`
	// PublicURL is the address users reach the server at; it sets the
	// WebAuthn relying party and origin. Default: http://localhost:PORT.
	PublicURL string `yaml:"public_url"`
	// MasterKey is 32+ random bytes, base64; MasterKeyFile names a file
	// holding it. With SQLite and neither set, a key is created in DataDir.
	MasterKey     string `yaml:"master_key"`
	MasterKeyFile string `yaml:"master_key_file"`
	// AuditSigningKey signs the audit log's checkpoints (a note signer key,
	// `recourse audit keygen`). With SQLite and none set, DataDir/audit.key
	// is created; with PostgreSQL it is required.
	AuditSigningKey string `yaml:"audit_signing_key"`
	// TLSCert and TLSKey serve HTTPS directly.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// TrustedProxies are CIDRs whose X-Forwarded-For is believed.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// AutoMigrate applies schema migrations at start (default true).
	AutoMigrate bool `yaml:"auto_migrate"`
	// Dev enables /dev/outbox and relaxed development defaults.
	Dev       bool   `yaml:"dev"`
	LogLevel  string `yaml:"log_level"`
	LogFormat string `yaml:"log_format"`
	Issuer    string `yaml:"issuer"`
	// Policy is a policy file; empty means the built-in policy. The file is
	// reloaded on SIGHUP and when it changes.
	Policy string `yaml:"policy"`
	Auth   Auth   `yaml:"auth"`
	// Notify is mail (SMTP) and webhooks; docs/notifications.md.
	Notify notify.Config `yaml:"notify"`
	// API bounds API keys and calls; docs/api.md.
	API API `yaml:"api"`
}

// Auth holds the sign-in and session settings.
type Auth struct {
	// FailureLimit locks an account after this many consecutive failures.
	FailureLimit        int `yaml:"failure_limit"`
	SignInRatePerMinute int `yaml:"signin_rate_per_minute"`
	SignInBurst         int `yaml:"signin_burst"`
	PasswordMinLength   int `yaml:"password_min_length"`
	// Argon2id parameters for new hashes.
	Argon2Time      uint32 `yaml:"argon2_time"`
	Argon2MemoryKiB uint32 `yaml:"argon2_memory_kib"`
	Argon2Threads   uint8  `yaml:"argon2_threads"`
	// Session lifetimes per AAL (Go durations, e.g. "24h", "15m").
	AAL1Absolute Duration `yaml:"aal1_absolute"`
	AAL2Absolute Duration `yaml:"aal2_absolute"`
	AAL2Idle     Duration `yaml:"aal2_idle"`
	AAL3Absolute Duration `yaml:"aal3_absolute"`
	AAL3Idle     Duration `yaml:"aal3_idle"`
	// WebAuthnRPID overrides the relying party id (default: the public
	// URL's host).
	WebAuthnRPID string `yaml:"webauthn_rp_id"`
}

// API holds the JSON API's limits; zero values take the defaults (90-day
// keys, a day's rotation overlap, 600 calls a minute per key).
type API struct {
	MaxKeyLifetime     Duration `yaml:"max_key_lifetime"`
	RotationOverlap    Duration `yaml:"rotation_overlap"`
	MaxRotationOverlap Duration `yaml:"max_rotation_overlap"`
	RatePerMinute      int      `yaml:"rate_per_minute"`
	Burst              int      `yaml:"burst"`
	IdempotencyWindow  Duration `yaml:"idempotency_window"`
}

// Service returns the service's form of the API limits.
func (a API) Service() service.APIConfig {
	return service.APIConfig{MaxKeyLifetime: time.Duration(a.MaxKeyLifetime), RotationOverlap: time.Duration(a.RotationOverlap),
		MaxRotationOverlap: time.Duration(a.MaxRotationOverlap), RatePerMinute: a.RatePerMinute, Burst: a.Burst,
		IdempotencyWindow: time.Duration(a.IdempotencyWindow)}
}

// Duration is a time.Duration written as a Go duration string in YAML.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 15m or 24h", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// DefaultConfig returns the built-in defaults: SQLite in ./recourse-data,
// listening on 127.0.0.1:8080, NIST SP 800-63B-4 session lifetimes.
func DefaultConfig() Config {
	return Config{
		DataDir:     "./recourse-data",
		Listen:      "127.0.0.1:8080",
		AutoMigrate: true,
		LogLevel:    "info",
		LogFormat:   "text",
		Issuer:      "Recourse",
		Auth: Auth{
			FailureLimit:        10,
			SignInRatePerMinute: 30,
			SignInBurst:         20,
			PasswordMinLength:   12,
			Argon2Time:          2,
			Argon2MemoryKiB:     19 * 1024,
			Argon2Threads:       1,
			AAL1Absolute:        Duration(30 * 24 * time.Hour),
			AAL2Absolute:        Duration(24 * time.Hour),
			AAL2Idle:            Duration(time.Hour),
			AAL3Absolute:        Duration(12 * time.Hour),
			AAL3Idle:            Duration(15 * time.Minute),
		},
		Notify: notify.DefaultConfig(),
	}
}

// maxConfigFile bounds the configuration file.
const maxConfigFile = 1 << 20

// ParseConfigYAML overlays YAML onto c. Unknown keys are errors, so a typo
// never silently falls back to a default.
func (c *Config) ParseConfigYAML(data []byte) error {
	if len(data) > maxConfigFile {
		return errors.New("config file: larger than 1 MiB")
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return fmt.Errorf("config file: %w", err)
	}
	return nil
}

// envVars maps environment variables to setters.
var envVars = []struct {
	name string
	set  func(c *Config, v string) error
}{
	{"RECOURSE_DATA_DIR", func(c *Config, v string) error { c.DataDir = v; return nil }},
	{"RECOURSE_LISTEN", func(c *Config, v string) error { c.Listen = v; return nil }},
	{"RECOURSE_DATABASE", func(c *Config, v string) error { c.Database = v; return nil }},
	{"RECOURSE_PUBLIC_URL", func(c *Config, v string) error { c.PublicURL = v; return nil }},
	{"RECOURSE_MASTER_KEY", func(c *Config, v string) error { c.MasterKey = v; return nil }},
	{"RECOURSE_MASTER_KEY_FILE", func(c *Config, v string) error { c.MasterKeyFile = v; return nil }},
	{"RECOURSE_AUDIT_SIGNING_KEY", func(c *Config, v string) error { c.AuditSigningKey = v; return nil }},
	{"RECOURSE_TLS_CERT", func(c *Config, v string) error { c.TLSCert = v; return nil }},
	{"RECOURSE_TLS_KEY", func(c *Config, v string) error { c.TLSKey = v; return nil }},
	{"RECOURSE_TRUSTED_PROXIES", func(c *Config, v string) error { c.TrustedProxies = splitList(v); return nil }},
	{"RECOURSE_AUTO_MIGRATE", func(c *Config, v string) error { return parseBool(&c.AutoMigrate, v) }},
	{"RECOURSE_DEV", func(c *Config, v string) error { return parseBool(&c.Dev, v) }},
	{"RECOURSE_LOG_LEVEL", func(c *Config, v string) error { c.LogLevel = v; return nil }},
	{"RECOURSE_LOG_FORMAT", func(c *Config, v string) error { c.LogFormat = v; return nil }},
	{"RECOURSE_ISSUER", func(c *Config, v string) error { c.Issuer = v; return nil }},
	{"RECOURSE_POLICY", func(c *Config, v string) error { c.Policy = v; return nil }},
	{"RECOURSE_AUTH_FAILURE_LIMIT", func(c *Config, v string) error { return parseInt(&c.Auth.FailureLimit, v) }},
	{"RECOURSE_AUTH_WEBAUTHN_RP_ID", func(c *Config, v string) error { c.Auth.WebAuthnRPID = v; return nil }},
	{"RECOURSE_SMTP_HOST", func(c *Config, v string) error { c.Notify.SMTP.Host = v; return nil }},
	{"RECOURSE_SMTP_USERNAME", func(c *Config, v string) error { c.Notify.SMTP.Username = v; return nil }},
	{"RECOURSE_SMTP_PASSWORD", func(c *Config, v string) error { c.Notify.SMTP.Password = v; return nil }},
	{"RECOURSE_SMTP_FROM", func(c *Config, v string) error { c.Notify.SMTP.From = v; return nil }},
	{"RECOURSE_NOTIFY_SECURITY_MAILBOX", func(c *Config, v string) error { c.Notify.SecurityMailbox = v; return nil }},
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func parseBool(dst *bool, v string) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return errors.New("must be true or false")
	}
	*dst = b
	return nil
}

func parseInt(dst *int, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return errors.New("must be a whole number")
	}
	*dst = n
	return nil
}

// applyEnv overlays RECOURSE_* variables onto c.
func (c *Config) applyEnv(getenv func(string) string) error {
	for _, e := range envVars {
		if v := getenv(e.name); v != "" {
			if err := e.set(c, v); err != nil {
				return fmt.Errorf("%s: %w", e.name, err)
			}
		}
	}
	return nil
}

// DatabaseTarget returns "sqlite" or "postgres" and the path or URL.
func (c *Config) DatabaseTarget() (kind, target string) {
	switch {
	case c.Database == "":
		return "sqlite", filepath.Join(c.DataDir, "recourse.db")
	case strings.HasPrefix(c.Database, "sqlite:"):
		return "sqlite", strings.TrimPrefix(c.Database, "sqlite:")
	case strings.HasPrefix(c.Database, "postgres://"), strings.HasPrefix(c.Database, "postgresql://"):
		return "postgres", c.Database
	}
	return "", ""
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// Validate checks the configuration; each error names the field.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("data_dir: must not be empty")
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("listen: %q is not host:port (for example 127.0.0.1:8080)", c.Listen)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("listen: %q has no valid port", c.Listen)
	}
	if kind, target := c.DatabaseTarget(); kind == "" || target == "" {
		return errors.New("database: must be sqlite:PATH or a postgres:// URL")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls_cert and tls_key: set both or neither")
	}
	pub, err := c.publicURL()
	if err != nil {
		return err
	}
	// Plain HTTP is allowed only on loopback: session cookies are Secure, and
	// browsers send Secure cookies over plain HTTP only to loopback hosts.
	if c.TLSCert == "" && !isLoopback(host) && host != "" && pub.Scheme != "https" {
		return fmt.Errorf("listen: plain HTTP on %q is refused; serve TLS (tls_cert, tls_key) or set public_url to the https:// address of your TLS proxy", host)
	}
	if c.TLSCert == "" && host == "" && pub.Scheme != "https" {
		return errors.New("listen: plain HTTP on all interfaces is refused; serve TLS or set public_url to https://")
	}
	for _, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			return fmt.Errorf("trusted_proxies: %q is not a CIDR like 10.0.0.0/8", p)
		}
	}
	if c.MasterKey != "" {
		if _, err := decodeKey(c.MasterKey); err != nil {
			return fmt.Errorf("master_key: %w", err)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level: %q must be debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("log_format: %q must be text or json", c.LogFormat)
	}
	if strings.TrimSpace(c.Issuer) == "" || len(c.Issuer) > 60 {
		return errors.New("issuer: must be 1–60 characters")
	}
	a := c.Auth
	if a.FailureLimit < 1 || a.FailureLimit > 100 {
		return fmt.Errorf("auth.failure_limit: must be 1–100 (NIST SP 800-63B-4 §3.2.2), got %d", a.FailureLimit)
	}
	if a.SignInRatePerMinute < 1 || a.SignInBurst < 1 {
		return errors.New("auth.signin_rate_per_minute and auth.signin_burst: must be at least 1")
	}
	if a.PasswordMinLength < 8 || a.PasswordMinLength > 64 {
		return fmt.Errorf("auth.password_min_length: must be 8–64, got %d", a.PasswordMinLength)
	}
	if a.Argon2Time < 1 || a.Argon2MemoryKiB < 19*1024 || a.Argon2Threads < 1 {
		return errors.New("auth.argon2_*: below the OWASP minimum (time 1+, memory 19456 KiB+, threads 1+)")
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{{"aal1_absolute", a.AAL1Absolute}, {"aal2_absolute", a.AAL2Absolute}, {"aal3_absolute", a.AAL3Absolute}} {
		if d.v <= 0 {
			return fmt.Errorf("auth.%s: must be positive", d.name)
		}
	}
	if a.AAL2Idle < 0 || a.AAL2Idle > a.AAL2Absolute {
		return errors.New("auth.aal2_idle: must be between 0 and auth.aal2_absolute")
	}
	if a.AAL3Idle <= 0 || a.AAL3Idle > a.AAL3Absolute {
		return errors.New("auth.aal3_idle: must be positive and at most auth.aal3_absolute")
	}
	if err := c.Notify.Validate(); err != nil {
		return err
	}
	// The API limits are checked, with their defaults, when the service
	// takes them (newService), with errors naming the field.
	return nil
}

// publicURL returns the configured or derived public URL.
func (c *Config) publicURL() (*url.URL, error) {
	raw := c.PublicURL
	if raw == "" {
		_, port, err := net.SplitHostPort(c.Listen)
		if err != nil {
			return nil, fmt.Errorf("listen: %q is not host:port", c.Listen)
		}
		scheme := "http"
		if c.TLSCert != "" {
			scheme = "https"
		}
		raw = scheme + "://localhost:" + port
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("public_url: %q must be an http(s) origin like https://recourse.example.com", raw)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("public_url: %q must be https:// unless it is a loopback address", raw)
	}
	return u, nil
}

func decodeKey(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		b, err = base64.RawURLEncoding.DecodeString(strings.TrimSpace(s))
	}
	if err != nil {
		return nil, errors.New("must be base64")
	}
	if len(b) < 32 {
		return nil, errors.New("must decode to at least 32 bytes (create one with `recourse keygen`)")
	}
	return b, nil
}

// loadMasterKey returns the master key from the configuration, a key file,
// or (SQLite only) a key file created in the data directory on first start.
func (c *Config) loadMasterKey(create func() ([]byte, error)) ([]byte, bool, error) {
	if c.MasterKey != "" {
		k, err := decodeKey(c.MasterKey)
		return k, false, err
	}
	path := c.MasterKeyFile
	explicit := path != ""
	if !explicit {
		path = filepath.Join(c.DataDir, "master.key")
	}
	data, err := os.ReadFile(path)
	if err == nil {
		k, err := decodeKey(string(data))
		if err != nil {
			return nil, false, fmt.Errorf("master key file %s: %w", path, err)
		}
		return k, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("master key file: %w", err)
	}
	if explicit {
		return nil, false, fmt.Errorf("master_key_file: %s does not exist (create it with `recourse keygen > %s`)", path, path)
	}
	if kind, _ := c.DatabaseTarget(); kind == "postgres" {
		return nil, false, errors.New("master_key: with PostgreSQL every replica must share one master key; create it with `recourse keygen` and set RECOURSE_MASTER_KEY or master_key_file")
	}
	k, err := create()
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, false, fmt.Errorf("data_dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("create master key: %w", err)
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n"); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("create master key: %w", err)
	}
	return k, true, f.Close()
}
