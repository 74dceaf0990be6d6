package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"github.com/jackc/pgx/v5/pgxpool"
	"io"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/service"
	"github.com/recourse/recourse/store/postgres"
	"github.com/recourse/recourse/store/sqlite"
	"github.com/recourse/recourse/store/sqlstore"
)

// commonFlags are accepted by every command that touches the database.
type commonFlags struct {
	config, dataDir, database string
}

func (f *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "YAML configuration file")
	fs.StringVar(&f.dataDir, "data-dir", "", "data directory (default ./recourse-data; env RECOURSE_DATA_DIR)")
	fs.StringVar(&f.database, "database", "", "sqlite:PATH or postgres:// URL (env RECOURSE_DATABASE)")
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("recourse "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args, turning flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return usageError{"help requested"}
		}
		return usageError{err.Error()}
	}
	return nil
}

// loadConfig layers defaults, the file, the environment and the flags that
// were set, then validates.
func loadConfig(fs *flag.FlagSet, cf *commonFlags, getenv func(string) string, apply func(c *Config, set map[string]bool)) (*Config, error) {
	c := DefaultConfig()
	path := cf.config
	if path == "" {
		path = getenv("RECOURSE_CONFIG")
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if err := c.ParseConfigYAML(data); err != nil {
			return nil, err
		}
	}
	if err := c.applyEnv(getenv); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["data-dir"] {
		c.DataDir = cf.dataDir
	}
	if set["database"] {
		c.Database = cf.database
	}
	if apply != nil {
		apply(&c, set)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func newLogger(c *Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// openStore opens the configured backend, migrating first when asked.
func openStore(ctx context.Context, c *Config, migrate bool) (recourse.Store, error) {
	kind, target := c.DatabaseTarget()
	switch kind {
	case "sqlite":
		if c.Database == "" {
			if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
				return nil, fmt.Errorf("data_dir: %w", err)
			}
		}
		return sqlite.Open(ctx, target, sqlite.Options{Migrate: migrate})
	case "postgres":
		return postgres.Open(ctx, target, postgres.Options{Migrate: migrate})
	}
	return nil, errors.New("database: unsupported")
}

// sqlDB returns the database under a store, for the job queue.
func sqlDB(st recourse.Store) (*sql.DB, string, error) {
	switch s := st.(type) {
	case *sqlstore.Store:
		return s.DB(), "sqlite", nil
	case *postgres.Store:
		return s.DB(), "postgres", nil
	case interface{ Unwrap() recourse.Store }:
		return sqlDB(s.Unwrap())
	}
	return nil, "", fmt.Errorf("no SQL database under %T", st)
}

// pgxPool returns the pgx pool under a PostgreSQL store (the job queue
// listens for other replicas' jobs on it), or nil.
func pgxPool(st recourse.Store) *pgxpool.Pool {
	switch s := st.(type) {
	case *postgres.Store:
		return s.Pool
	case interface{ Unwrap() recourse.Store }:
		return pgxPool(s.Unwrap())
	}
	return nil
}

// serviceConfig translates the file configuration for the service.
func serviceConfig(c *Config) service.Config {
	sc := service.DefaultConfig()
	sc.SignInFailureLimit = c.Auth.FailureLimit
	sc.SignInRatePerMinute = c.Auth.SignInRatePerMinute
	sc.SignInBurst = c.Auth.SignInBurst
	sc.PasswordRules.MinLength = c.Auth.PasswordMinLength
	sc.PasswordParams.Time = c.Auth.Argon2Time
	sc.PasswordParams.MemoryKiB = c.Auth.Argon2MemoryKiB
	sc.PasswordParams.Threads = c.Auth.Argon2Threads
	sc.Sessions = map[int]service.SessionLifetime{
		recourse.AAL1: {Absolute: time.Duration(c.Auth.AAL1Absolute)},
		recourse.AAL2: {Absolute: time.Duration(c.Auth.AAL2Absolute), Idle: time.Duration(c.Auth.AAL2Idle)},
		recourse.AAL3: {Absolute: time.Duration(c.Auth.AAL3Absolute), Idle: time.Duration(c.Auth.AAL3Idle)},
	}
	sc.Issuer = c.Issuer
	if pub, err := c.publicURL(); err == nil {
		sc.PublicURL = pub.String()
	}
	return sc
}

func randomKey() ([]byte, error) {
	k := make([]byte, 32)
	_, err := rand.Read(k)
	return k, err
}

// newService wires the service for a command.
func newService(ctx context.Context, c *Config, st recourse.Store, log *slog.Logger, withWebAuthn bool, sched ...service.Scheduler) (*service.Service, error) {
	key, created, err := c.loadMasterKey(randomKey)
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("created a new master key", "file", c.DataDir+"/master.key")
	}
	var wa *webauthn.WebAuthn
	if withWebAuthn {
		pub, err := c.publicURL()
		if err != nil {
			return nil, err
		}
		rpID := c.Auth.WebAuthnRPID
		if rpID == "" {
			rpID = pub.Hostname()
		}
		origin := (&url.URL{Scheme: pub.Scheme, Host: pub.Host}).String()
		wa, err = credential.NewWebAuthn(rpID, c.Issuer, []string{origin})
		if err != nil {
			// Passkeys need a domain name; on an IP address they stay off.
			log.Warn("passkeys disabled", "reason", err.Error(), "public_url", origin)
			wa = nil
		}
	}
	o := service.Options{Store: st, Config: serviceConfig(c), Keys: service.Keys{Master: key}, Logger: log, WebAuthn: wa}
	if len(sched) > 0 {
		o.Scheduler = sched[0]
	}
	svc, err := service.New(o)
	if err != nil {
		return nil, err
	}
	if err := svc.SetAPIConfig(c.API.Service()); err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	return svc, nil
}
