package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Scenario names, in the order "all" runs them.
const (
	RecoveryStart = "recovery-start"
	RecoveryCode  = "recovery-code"
	RecoveryFull  = "recovery-full"
	SignIn        = "signin"
	Routine       = "routine"
	Mixed         = "mixed"
)

// Scenarios lists every scenario, in the order "all" runs them.
var Scenarios = []string{RecoveryStart, RecoveryCode, RecoveryFull, SignIn, Routine, Mixed}

// Limits of the seeded directory.
const (
	DefaultAccounts = 10_000
	MaxAccounts     = 1_000_000
)

// Options configure one run of the load generator. The zero value of each
// field takes the default that DefaultOptions documents.
type Options struct {
	// Scenarios to run, in order; "all" stands for every one.
	Scenarios []string
	// Accounts is how many bench accounts to seed (default 10,000).
	Accounts int
	// AuditEvents, when positive, is how many events the audit log must
	// hold, sequenced and signed, before the server starts (at most
	// MaxAuditEvents): the bench appends typical sign-in and recovery
	// events through the store and signs them with the server's key. The
	// account seeding's own events count towards it. Not with URL.
	AuditEvents int64
	// Concurrency is the number of clients, each running one flow at a
	// time (default 16).
	Concurrency int
	// Duration is how long each scenario is measured (default 10s), after
	// Warmup (default 2s) during which the clients run but nothing counts.
	Duration time.Duration
	Warmup   time.Duration
	// Iterations, when positive, ends a scenario after each client has
	// completed (or failed) that many flows instead of after Duration; the
	// smoke test uses it.
	Iterations int

	// Database is empty for SQLite in a fresh temporary directory, or a
	// postgres:// URL: the bench then works in a fresh schema of that
	// database, dropped at the end unless Keep.
	Database string
	// URL targets a running server instead of starting one. Seeding and the
	// scenarios that read mail then need Database (the server's) and
	// MasterKey; see docs/benchmarks.md.
	URL string
	// MasterKey is the target server's master key (with URL).
	MasterKey []byte
	// ServerPID, with URL, is the server process to measure (CPU, RSS).
	ServerPID int
	// Keep leaves the temporary directory (database, server log, policy)
	// and the PostgreSQL schema in place.
	Keep bool
	// Launcher starts the server (required without URL).
	Launcher Launcher
	// CPUProfile, when set, names the file a CPU profile of the server is
	// written to for each scenario's measured window (the scenario's name
	// is added before the extension); the launcher must support it.
	CPUProfile string
	// Log receives progress and notes; nil discards them.
	Log io.Writer
	// Live says whether Log is a terminal, for a progress line that
	// redraws itself instead of one line every few seconds.
	Live bool
}

// Launcher starts `recourse serve` with the given arguments and extra
// environment, its log going to logw, and returns once it listens.
type Launcher interface {
	Launch(ctx context.Context, args, env []string, logw io.Writer) (*Server, error)
}

// Server is a running Recourse server.
type Server struct {
	// URL is its base URL, like http://127.0.0.1:43117.
	URL string
	// PID is the process to measure; for an in-process server it is the
	// bench's own process, client included.
	PID       int
	InProcess bool
	// Stop shuts it down gracefully and waits for it.
	Stop func() error
	// StartProfile and StopProfile, when set, take a CPU profile of the
	// server into the file at path (Options.CPUProfile).
	StartProfile func(path string) error
	StopProfile  func() error
}

// DefaultOptions returns the defaults: every scenario, 10,000 accounts, 16
// clients, 10 seconds each after a 2-second warm-up, SQLite.
func DefaultOptions() Options {
	return Options{Scenarios: []string{"all"}, Accounts: DefaultAccounts, Concurrency: 16, Duration: 10 * time.Second, Warmup: 2 * time.Second}
}

func (o *Options) withDefaults() {
	d := DefaultOptions()
	if len(o.Scenarios) == 0 {
		o.Scenarios = d.Scenarios
	}
	if o.Accounts == 0 {
		o.Accounts = d.Accounts
	}
	if o.Concurrency == 0 {
		o.Concurrency = d.Concurrency
	}
	if o.Duration == 0 {
		o.Duration = d.Duration
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// expandScenarios resolves "all" and checks the names.
func expandScenarios(names []string) ([]string, error) {
	var out []string
	for _, n := range names {
		for _, n := range strings.Split(n, ",") {
			n = strings.TrimSpace(n)
			switch {
			case n == "":
			case n == "all":
				out = append(out, Scenarios...)
			case slices.Contains(Scenarios, n):
				out = append(out, n)
			default:
				return nil, fmt.Errorf("unknown scenario %q (choose from %s, or all)", n, strings.Join(Scenarios, ", "))
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no scenario given")
	}
	return out, nil
}

// Validate checks the options after defaults are applied.
func (o *Options) Validate() error {
	if _, err := expandScenarios(o.Scenarios); err != nil {
		return err
	}
	if o.Concurrency < 1 || o.Concurrency > 1024 {
		return fmt.Errorf("concurrency: must be 1–1024, got %d", o.Concurrency)
	}
	if o.Accounts < 1 || o.Accounts > MaxAccounts {
		return fmt.Errorf("accounts: must be 1–%d, got %d", MaxAccounts, o.Accounts)
	}
	if need := minAccounts(o.Concurrency); o.Accounts < need {
		return fmt.Errorf("accounts: %d clients need at least %d accounts (%d teams of %d for recovery-full, plus sign-in, routine and recovery pools)",
			o.Concurrency, need, o.Concurrency*perClient, teamSize)
	}
	if o.AuditEvents < 0 || o.AuditEvents > MaxAuditEvents {
		return fmt.Errorf("audit-events: must be 0–%d, got %d", MaxAuditEvents, o.AuditEvents)
	}
	if o.AuditEvents > 0 && o.URL != "" {
		return errors.New("audit-events: the bench fills the audit log of the database it creates for its own server, not a running server's (--url)")
	}
	if o.Duration < 0 || o.Warmup < 0 || o.Iterations < 0 {
		return errors.New("duration, warmup and iterations must not be negative")
	}
	isPG := strings.HasPrefix(o.Database, "postgres://") || strings.HasPrefix(o.Database, "postgresql://")
	switch {
	case o.Database == "" || isPG:
	case o.URL != "" && strings.HasPrefix(o.Database, "sqlite:"):
		// the running server's SQLite file
	default:
		return errors.New("database: give a postgres:// URL (SQLite is the default, in a temporary directory; with --url, sqlite:PATH names the server's file)")
	}
	if o.URL == "" && o.Launcher == nil {
		return errors.New("bench: a launcher is required to start a server")
	}
	return nil
}
