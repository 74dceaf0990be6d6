package main

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *Config)
		want string // substring naming the field; "" = valid
	}{
		{"defaults", func(c *Config) {}, ""},
		{"empty data dir", func(c *Config) { c.DataDir = "" }, "data_dir"},
		{"bad listen", func(c *Config) { c.Listen = "8080" }, "listen"},
		{"bad port", func(c *Config) { c.Listen = "127.0.0.1:99999" }, "listen"},
		{"plain http on a public address", func(c *Config) { c.Listen = "0.0.0.0:8080" }, "listen"},
		{"plain http on all interfaces", func(c *Config) { c.Listen = ":8080" }, "listen"},
		{"behind a TLS proxy", func(c *Config) { c.Listen = "0.0.0.0:8080"; c.PublicURL = "https://recourse.example.com" }, ""},
		{"http public url off loopback", func(c *Config) { c.PublicURL = "http://recourse.example.com" }, "public_url"},
		{"public url with a path", func(c *Config) { c.PublicURL = "https://example.com/recourse" }, "public_url"},
		{"bad database", func(c *Config) { c.Database = "mysql://x" }, "database"},
		{"postgres", func(c *Config) { c.Database = "postgres://u@localhost/db" }, ""},
		{"half TLS", func(c *Config) { c.TLSCert = "cert.pem" }, "tls_cert"},
		{"bad proxy", func(c *Config) { c.TrustedProxies = []string{"10.0.0.1"} }, "trusted_proxies"},
		{"short master key", func(c *Config) { c.MasterKey = "c2hvcnQ=" }, "master_key"},
		{"bad log level", func(c *Config) { c.LogLevel = "loud" }, "log_level"},
		{"failure limit above NIST", func(c *Config) { c.Auth.FailureLimit = 101 }, "auth.failure_limit"},
		{"failure limit zero", func(c *Config) { c.Auth.FailureLimit = 0 }, "auth.failure_limit"},
		{"short passwords", func(c *Config) { c.Auth.PasswordMinLength = 6 }, "auth.password_min_length"},
		{"weak argon2", func(c *Config) { c.Auth.Argon2MemoryKiB = 1024 }, "auth.argon2"},
		{"idle above absolute", func(c *Config) { c.Auth.AAL3Idle = c.Auth.AAL3Absolute * 2 }, "auth.aal3_idle"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

func TestConfigLayers(t *testing.T) {
	c := DefaultConfig()
	err := c.ParseConfigYAML([]byte("listen: 127.0.0.1:9000\ndata_dir: /from/file\nauth:\n  failure_limit: 20\n  aal3_idle: 10m\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.applyEnv(env(map[string]string{"RECOURSE_DATA_DIR": "/from/env", "RECOURSE_DEV": "true"})); err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9000" || c.DataDir != "/from/env" || !c.Dev || c.Auth.FailureLimit != 20 || time.Duration(c.Auth.AAL3Idle) != 10*time.Minute {
		t.Errorf("layered config = %+v", c)
	}
	if err := c.applyEnv(env(map[string]string{"RECOURSE_DEV": "maybe"})); err == nil || !strings.HasPrefix(err.Error(), "RECOURSE_DEV") {
		t.Errorf("bad boolean: %v", err)
	}
	for _, bad := range []string{"listne: x\n", "auth:\n  aal2_idle: soon\n", "listen: [1, 2]\n", "\t:"} {
		c := DefaultConfig()
		if err := c.ParseConfigYAML([]byte(bad)); err == nil {
			t.Errorf("ParseConfigYAML(%q) accepted", bad)
		}
	}
	empty := DefaultConfig()
	if err := empty.ParseConfigYAML(nil); err != nil {
		t.Errorf("empty file: %v", err)
	}
}

func FuzzParseConfigYAML(f *testing.F) {
	f.Add("listen: 127.0.0.1:9000\ndata_dir: /x\n")
	f.Add("auth:\n  aal2_idle: 1h\n  failure_limit: 5\n")
	f.Add("trusted_proxies: [10.0.0.0/8]\n")
	f.Add("&a [*a, *a]")
	f.Fuzz(func(t *testing.T, in string) {
		c := DefaultConfig()
		if err := c.ParseConfigYAML([]byte(in)); err != nil {
			return
		}
		_ = c.Validate() // must not panic on anything the parser accepts
		_, _ = c.publicURL()
		_, _ = c.DatabaseTarget()
	})
}

func TestAPIConfigReachesTheService(t *testing.T) {
	dir := t.TempDir()
	c := DefaultConfig()
	c.DataDir = dir
	if err := c.ParseConfigYAML([]byte("api:\n  max_key_lifetime: 720h\n  rate_per_minute: 60\n")); err != nil {
		t.Fatal(err)
	}
	st, err := openStore(t.Context(), &c, true)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err := newService(t.Context(), &c, st, slog.New(slog.DiscardHandler), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := svc.APIConfig(); got.MaxKeyLifetime != 720*time.Hour || got.RatePerMinute != 60 || got.Burst == 0 {
		t.Fatalf("APIConfig = %+v", got)
	}
	bad := DefaultConfig()
	bad.DataDir = t.TempDir()
	_ = bad.ParseConfigYAML([]byte("api:\n  max_key_lifetime: 9000h\n"))
	st2, _ := openStore(t.Context(), &bad, true)
	defer st2.Close()
	if _, err := newService(t.Context(), &bad, st2, slog.New(slog.DiscardHandler), false); err == nil || !strings.Contains(err.Error(), "api") {
		t.Errorf("a year-long key lifetime: %v", err)
	}
}
