package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/audit"
)

const auditUsage = `Usage: recourse audit <subcommand> [flags]

Subcommands:
  verify                 recompute the log from the stored events and check every signed checkpoint
                         [--key VKEY|FILE] [--checkpoint FILE (a checkpoint saved elsewhere)] [--tree-hashes]
  prove EVENT_ID         an inclusion proof of the event under the latest checkpoint (JSON)
  consistency OLD NEW    a consistency proof between two checkpoints, each a tree size or a saved checkpoint FILE (JSON)
  check FILE             check a proof printed by prove or consistency, offline [--key VKEY|FILE]
  export                 events as JSON lines or OCSF: [--since T] [--until T] [--format jsonl|ocsf] [--from N]
  tail                   print events as they are sequenced: [--format jsonl|ocsf] [-n N] [--interval D]
  checkpoint             print the latest signed checkpoint (save it elsewhere to verify against later)
  sequence               sequence pending events now and sign a checkpoint (serve does this continuously)
  key                    print the log's public verifier key
  keygen [--origin NAME] print a new private signing key for audit_signing_key (and its public key on stderr)

T is an RFC 3339 time, a date (YYYY-MM-DD) or a duration before now (24h).
`

// auditKeyFile is the signing key's file in the data directory.
const auditKeyFile = "audit.key"

// auditOrigin names the log in checkpoints and keys created here: the
// public URL's host name and "/audit".
func (c *Config) auditOrigin() string {
	if pub, err := c.publicURL(); err == nil {
		return pub.Hostname() + "/audit"
	}
	return "recourse/audit"
}

// loadAuditSigner returns the checkpoint signing key: audit_signing_key
// (RECOURSE_AUDIT_SIGNING_KEY), else DATA_DIR/audit.key. With create and
// SQLite, a missing key file is created (mode 0600); with PostgreSQL the
// key must be configured, since every replica signs the same log.
func (c *Config) loadAuditSigner(create bool) (skey string, created bool, err error) {
	if c.AuditSigningKey != "" {
		if _, err := audit.NewSigner(c.AuditSigningKey); err != nil {
			return "", false, fmt.Errorf("audit_signing_key: %w", err)
		}
		return strings.TrimSpace(c.AuditSigningKey), false, nil
	}
	path := filepath.Join(c.DataDir, auditKeyFile)
	data, err := os.ReadFile(path)
	if err == nil {
		if _, err := audit.NewSigner(string(data)); err != nil {
			return "", false, fmt.Errorf("audit key file %s: %w", path, err)
		}
		return strings.TrimSpace(string(data)), false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("audit key file: %w", err)
	}
	if kind, _ := c.DatabaseTarget(); kind == "postgres" {
		return "", false, errors.New("audit_signing_key: with PostgreSQL every replica must sign with one key; create it with `recourse audit keygen` and set RECOURSE_AUDIT_SIGNING_KEY")
	}
	if !create {
		return "", false, fmt.Errorf("no audit signing key: %s does not exist and audit_signing_key is not set", path)
	}
	skey, _, err = audit.GenerateKey(c.auditOrigin())
	if err != nil {
		return "", false, err
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return "", false, fmt.Errorf("data_dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("create audit key: %w", err)
	}
	if _, err := f.WriteString(skey + "\n"); err != nil {
		f.Close()
		return "", false, fmt.Errorf("create audit key: %w", err)
	}
	return skey, true, f.Close()
}

// startAudit builds the sequencer that serve runs, and the store the
// service writes through, which nudges the sequencer after each audited
// commit. The time each round's statements hold the sequencer lock goes
// to reg.
func startAudit(c *Config, st recourse.Store, reg *prometheus.Registry, log *slog.Logger) (*audit.Sequencer, recourse.Store, error) {
	skey, created, err := c.loadAuditSigner(true)
	if err != nil {
		return nil, nil, err
	}
	signer, err := audit.NewSigner(skey)
	if err != nil {
		return nil, nil, err
	}
	if created {
		vkey, _ := audit.VerifierKey(skey)
		log.Info("created a new audit signing key; keep its public key to verify the log", "file", filepath.Join(c.DataDir, auditKeyFile), "verifier_key", vkey)
	}
	rounds := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "recourse_audit_sequencer_round_seconds",
		Help:    "Time each audit sequencing round's statements held the sequencer lock, its COMMIT not counted (on SQLite the lock is the one writer: every other write waits as long).",
		Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2}})
	events := prometheus.NewCounter(prometheus.CounterOpts{Name: "recourse_audit_sequenced_events_total",
		Help: "Audit events this replica sequenced into the signed log."})
	for _, m := range []prometheus.Collector{rounds, events} {
		if err := reg.Register(m); err != nil {
			return nil, nil, err
		}
	}
	seq, err := audit.NewSequencer(audit.SequencerOptions{Store: st, Signer: signer, Logger: log,
		Observe: func(r audit.RoundStats) {
			rounds.Observe(r.Work.Seconds())
			events.Add(float64(r.Events))
		}})
	if err != nil {
		return nil, nil, err
	}
	return seq, audit.WithCommitHook(st, seq.Nudge), nil
}

// registerAuditMetrics exports the sequencer's backlog and the log size.
// The backlog is counted when scraped: counting it after every sequencing
// round cost PostgreSQL 7 ms a round under load (the index of unsequenced
// events holds the dead entries of every event sequenced since the last
// vacuum).
func registerAuditMetrics(reg *prometheus.Registry, st recourse.Store, seq *audit.Sequencer) error {
	for _, m := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "recourse_audit_unsequenced_events",
			Help: "Audit events committed but not yet in the signed log (-1 when the count failed)."},
			func() float64 {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				n, err := st.AuditBacklog(ctx)
				if err != nil {
					return -1
				}
				return float64(n)
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "recourse_audit_log_size",
			Help: "Events in the signed audit log, as of this replica's last sequencing round."},
			func() float64 { return float64(seq.TreeSize()) }),
	} {
		if err := reg.Register(m); err != nil {
			return err
		}
	}
	return nil
}

// auditVerifier reads --key: a verifier key, or a file holding one; by
// default the public half of the configured or local signing key.
func auditVerifier(c *Config, key string) (note.Verifier, error) {
	if key == "" {
		skey, _, err := c.loadAuditSigner(false)
		if err != nil {
			return nil, usageError{"give the log's public key with --key (print it with `recourse audit key` where the signing key is): " + err.Error()}
		}
		vkey, err := audit.VerifierKey(skey)
		if err != nil {
			return nil, err
		}
		return audit.NewVerifier(vkey)
	}
	if data, err := readBounded(key, 4096); err == nil {
		key = string(data)
	}
	return audit.NewVerifier(key)
}

// parseSince reads an RFC 3339 time, a date, or a duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	return parseDate(s)
}

func cmdAudit(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return usageError{"audit: no subcommand given"}
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("audit "+sub, stderr)
	var cf commonFlags
	cf.register(fs)
	key := fs.String("key", "", "the log's public verifier key, or a file holding it (default: from the local signing key)")
	product := audit.Product{Name: "Recourse", Vendor: "Recourse", Version: version()}
	var run func(c *Config, st recourse.Store) error
	needsStore := true
	switch sub {
	case "verify":
		external := fs.String("checkpoint", "", "a signed checkpoint saved elsewhere; the database must contain the tree it signs")
		treeHashes := fs.Bool("tree-hashes", false, "also compare every stored tree hash (what proofs are built from) with the recomputed one")
		run = func(c *Config, st recourse.Store) error {
			v, err := auditVerifier(c, *key)
			if err != nil {
				return err
			}
			o := audit.VerifyOptions{Verifier: v, TreeHashes: *treeHashes}
			if *external != "" {
				if o.External, err = readBounded(*external, 1<<16); err != nil {
					return err
				}
			}
			start := time.Now()
			rep, err := audit.Verify(ctx, st, o)
			var inc *audit.Inconsistency
			if errors.As(err, &inc) {
				return fmt.Errorf("the audit log does not match what was signed: %w", err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "ok: %d events under %d signed checkpoints (key %s), root %s, in %s\n",
				rep.Size, rep.Checkpoints, v.Name(), rep.Root, time.Since(start).Round(time.Millisecond))
			if rep.External != nil {
				fmt.Fprintf(stdout, "ok: the log contains the saved checkpoint of size %d\n", rep.External.Size)
			}
			if rep.Unsequenced > 0 {
				fmt.Fprintf(stdout, "%d events committed and not yet sequenced\n", rep.Unsequenced)
			}
			return nil
		}
	case "prove":
		run = func(c *Config, st recourse.Store) error {
			if fs.NArg() != 1 {
				return usageError{"audit prove: give one EVENT_ID"}
			}
			p, err := audit.ProveInclusion(ctx, st, fs.Arg(0))
			if err != nil {
				return describe(err)
			}
			if v, err := auditVerifier(c, *key); err == nil {
				if _, err := p.Check(v); err != nil {
					return fmt.Errorf("the proof the database yields does not check: %w", err)
				}
			}
			return printJSON(stdout, p)
		}
	case "consistency":
		run = func(c *Config, st recourse.Store) error {
			if fs.NArg() != 2 {
				return usageError{"audit consistency: give OLD and NEW, each a tree size or a saved checkpoint file"}
			}
			var notes [2][]byte
			for i, arg := range fs.Args() {
				if size, err := strconv.ParseInt(arg, 10, 64); err == nil {
					cp, err := audit.CheckpointAt(ctx, st, size)
					if err != nil {
						return describe(err)
					}
					notes[i] = cp.Note
					continue
				}
				data, err := readBounded(arg, 1<<16)
				if err != nil {
					return err
				}
				notes[i] = data
			}
			p, err := audit.ProveConsistency(ctx, st, notes[0], notes[1])
			if err != nil {
				return describe(err)
			}
			if v, err := auditVerifier(c, *key); err == nil {
				if _, _, err := p.Check(v); err != nil {
					return fmt.Errorf("the log is not consistent with the old checkpoint: %w", err)
				}
			}
			return printJSON(stdout, p)
		}
	case "check":
		needsStore = false
		run = func(c *Config, _ recourse.Store) error {
			if fs.NArg() != 1 {
				return usageError{"audit check: give one proof FILE ('-' is not accepted)"}
			}
			v, err := auditVerifier(c, *key)
			if err != nil {
				return err
			}
			data, err := readBounded(fs.Arg(0), 1<<20)
			if err != nil {
				return err
			}
			var probe struct {
				Event string `json:"event"`
				Old   string `json:"old"`
			}
			if err := json.Unmarshal(data, &probe); err != nil {
				return fmt.Errorf("%s: not a proof: %w", fs.Arg(0), err)
			}
			switch {
			case probe.Event != "":
				var p audit.InclusionProof
				if err := json.Unmarshal(data, &p); err != nil {
					return err
				}
				cp, err := p.Check(v)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "ok: the event is at position %d of the log of %d events signed by %s\n", p.Position, cp.Size, v.Name())
			case probe.Old != "":
				var p audit.ConsistencyProof
				if err := json.Unmarshal(data, &p); err != nil {
					return err
				}
				o, n, err := p.Check(v)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "ok: the log of %d events signed by %s extends the log of %d events\n", n.Size, v.Name(), o.Size)
			default:
				return fmt.Errorf("%s: not an inclusion or consistency proof", fs.Arg(0))
			}
			return nil
		}
	case "export":
		since := fs.String("since", "", "first event time (RFC 3339, YYYY-MM-DD, or a duration before now like 24h)")
		until := fs.String("until", "", "end of the time range, exclusive")
		format := fs.String("format", audit.FormatJSONL, "jsonl (the signed leaves) or ocsf (OCSF 1.3 events)")
		from := fs.Int64("from", 0, "first position")
		run = func(c *Config, st recourse.Store) error {
			o := audit.ExportOptions{Format: *format, FromSeq: *from, Product: product}
			var err error
			if o.Since, err = parseSince(*since, time.Now()); err != nil {
				return usageError{"--since: " + err.Error()}
			}
			if o.Until, err = parseSince(*until, time.Now()); err != nil {
				return usageError{"--until: " + err.Error()}
			}
			_, _, err = audit.Export(ctx, st, stdout, o)
			return describe(err)
		}
	case "tail":
		format := fs.String("format", audit.FormatJSONL, "jsonl or ocsf")
		n := fs.Int64("n", 10, "start this many events before the end")
		interval := fs.Duration("interval", time.Second, "how often to look for new events")
		run = func(c *Config, st recourse.Store) error {
			if *interval <= 0 {
				return usageError{"--interval: must be positive"}
			}
			from := int64(0)
			if head, err := st.LatestAuditCheckpoint(ctx); err == nil {
				from = max(head.Size-*n, 0)
			}
			return describe(audit.Tail(ctx, st, stdout, from, *interval, audit.ExportOptions{Format: *format, Product: product}))
		}
	case "checkpoint":
		run = func(c *Config, st recourse.Store) error {
			cp, err := st.LatestAuditCheckpoint(ctx)
			if errors.Is(err, recourse.ErrNotFound) {
				return errors.New("the audit log has no checkpoint yet")
			}
			if err != nil {
				return err
			}
			_, err = stdout.Write(cp.Note)
			return err
		}
	case "sequence":
		run = func(c *Config, st recourse.Store) error {
			skey, _, err := c.loadAuditSigner(true)
			if err != nil {
				return err
			}
			signer, err := audit.NewSigner(skey)
			if err != nil {
				return err
			}
			seq, err := audit.NewSequencer(audit.SequencerOptions{Store: st, Signer: signer})
			if err != nil {
				return err
			}
			n, err := seq.Drain(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "sequenced %d events; the log holds %d\n", n, seq.TreeSize())
			return nil
		}
	case "key":
		needsStore = false
		run = func(c *Config, _ recourse.Store) error {
			skey, _, err := c.loadAuditSigner(false)
			if err != nil {
				return err
			}
			vkey, err := audit.VerifierKey(skey)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, vkey)
			return nil
		}
	case "keygen":
		needsStore = false
		origin := fs.String("origin", "", "the log's name in checkpoints (default: the public URL's host and /audit)")
		run = func(c *Config, _ recourse.Store) error {
			name := *origin
			if name == "" {
				name = c.auditOrigin()
			}
			skey, vkey, err := audit.GenerateKey(name)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, skey)
			fmt.Fprintln(stderr, "public verifier key:", vkey)
			return nil
		}
	default:
		fmt.Fprint(stderr, auditUsage)
		return usageError{fmt.Sprintf("audit: unknown subcommand %q", sub)}
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := loadConfig(fs, &cf, getenv, nil)
	if err != nil {
		return err
	}
	if !needsStore {
		return run(c, nil)
	}
	// Reading commands never migrate: an auditor's run leaves the schema be.
	st, err := openStore(ctx, c, sub == "sequence" && c.AutoMigrate)
	if err != nil {
		return err
	}
	defer st.Close()
	return run(c, st)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
