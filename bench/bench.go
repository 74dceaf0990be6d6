// Package bench is the load generator behind `recourse bench`. It seeds a
// directory of bench accounts, starts a Recourse server on a fresh
// database (or targets a running one), drives real HTTP traffic through the
// self-service recovery, sign-in and routine paths with a fixed number of
// clients, and reports requests and completed flows per second, latency
// percentiles per step, errors by kind, and the server's CPU time and
// memory. docs/benchmarks.md has the commands and the figures.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/recourse/recourse/audit"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/service"
)

// Report is the outcome of a run (--json prints it as is).
type Report struct {
	Machine     Machine `json:"machine"`
	Database    string  `json:"database"`
	Server      string  `json:"server"`
	Accounts    int     `json:"accounts"`
	Clients     int     `json:"clients"`
	Duration    float64 `json:"duration_seconds"`
	Warmup      float64 `json:"warmup_seconds"`
	Iterations  int     `json:"iterations,omitempty"`
	Argon2id    string  `json:"argon2id"`
	Seeded      int     `json:"seeded_accounts"`
	SeedSeconds float64 `json:"seed_seconds"`
	// StartSeconds is how long the server took to listen (it signs the
	// seeding's audit events first).
	StartSeconds float64 `json:"server_start_seconds,omitempty"`
	// IdleRSSBytes is the server's resident memory after start, before load.
	IdleRSSBytes int64            `json:"idle_rss_bytes,omitempty"`
	PeakRSSBytes int64            `json:"peak_rss_bytes,omitempty"`
	Scenarios    []ScenarioResult `json:"scenarios"`
	Notes        []string         `json:"notes,omitempty"`
}

// ScenarioResult is one scenario's measurements.
type ScenarioResult struct {
	Name           string           `json:"name"`
	Seconds        float64          `json:"seconds"`
	Requests       int64            `json:"requests"`
	RequestsPerSec float64          `json:"requests_per_second"`
	Flows          int64            `json:"flows"`
	FlowsPerSec    float64          `json:"flows_per_second"`
	FailedFlows    int64            `json:"failed_flows"`
	FlowKinds      map[string]int64 `json:"flow_kinds,omitempty"`
	Steps          []StepResult     `json:"steps"`
	Errors         map[string]int64 `json:"errors"`
	// ServerCPUSeconds is the server process's CPU time in the window;
	// ServerCores the same per second of wall time.
	ServerCPUSeconds float64 `json:"server_cpu_seconds"`
	ServerCores      float64 `json:"server_cores"`
	// ServerPeakRSSBytes is the highest resident memory sampled in the
	// window (every 200 ms).
	ServerPeakRSSBytes int64 `json:"server_peak_rss_bytes"`
	// ClientCPUSeconds is the load generator's own CPU time in the window
	// (0 when the server runs in its process).
	ClientCPUSeconds float64 `json:"client_cpu_seconds,omitempty"`
	// DatabaseCPUSeconds is the CPU time of the local PostgreSQL server's
	// processes in the window (0 for SQLite, which runs in the server).
	DatabaseCPUSeconds float64 `json:"database_cpu_seconds,omitempty"`
	// MachineBusyCores is the whole machine's CPU use in the window: the
	// server, the clients, the database and anything else running.
	MachineBusyCores float64 `json:"machine_busy_cores"`
	// Background jobs (River): completed in the window, still waiting at
	// its end, and how long they took to drain after it.
	JobsCompleted int64   `json:"jobs_completed"`
	JobsWaiting   int64   `json:"jobs_waiting_at_end"`
	DrainSeconds  float64 `json:"jobs_drain_seconds"`
	Profile       string  `json:"cpu_profile,omitempty"`
}

// Run performs a whole run: prepare, seed, serve, measure, report.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.withDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	scenarios, _ := expandScenarios(o.Scenarios)
	dir, err := os.MkdirTemp("", "recourse-bench-")
	if err != nil {
		return nil, err
	}
	if o.Keep {
		fmt.Fprintf(o.Log, "keeping the work directory %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	params := credential.DefaultPasswordParams
	rep := &Report{Machine: describeMachine(dir), Accounts: o.Accounts, Clients: o.Concurrency, Duration: o.Duration.Seconds(),
		Warmup: o.Warmup.Seconds(), Iterations: o.Iterations,
		Argon2id: fmt.Sprintf("time=%d memory=%d KiB threads=%d (the default)", params.Time, params.MemoryKiB, params.Threads)}
	if busy, _, ok := machineCPU(); ok {
		time.Sleep(500 * time.Millisecond)
		if busy2, _, ok := machineCPU(); ok {
			rep.Machine.BusyBefore = (busy2 - busy) / 0.5
		}
	}
	if rep.Machine.BusyBefore > 0.3 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the machine was already %.1f cores busy before the run (load average %s): other work shares it",
			rep.Machine.BusyBefore, rep.Machine.LoadAverage))
	}

	// The database, its keys, the seed.
	var db *database
	masterKey := o.MasterKey
	switch {
	case o.URL == "":
		if db, err = freshDatabase(ctx, dir, o.Database); err != nil {
			return nil, err
		}
		if !o.Keep {
			defer func() {
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				defer cancel()
				_ = db.drop(dctx)
			}()
		}
		masterKey = make([]byte, 32)
		rand.Read(masterKey)
	case o.Database != "":
		if db, err = existingDatabase(o.Database); err != nil {
			return nil, err
		}
	}
	rep.Database = "none (no mail can be read: only recovery-start runs)"
	if db != nil {
		rep.Database = db.kind
		t0 := time.Now()
		n, err := seedDatabase(ctx, db, masterKey, o, params)
		if err != nil {
			return nil, err
		}
		rep.Seeded, rep.SeedSeconds = n, time.Since(t0).Seconds()
		if n > 0 {
			fmt.Fprintf(o.Log, "seeded %s accounts in %.1fs\n", thousands(int64(n)), rep.SeedSeconds)
		}
	} else {
		for _, s := range scenarios {
			if s != RecoveryStart {
				return nil, fmt.Errorf("scenario %s reads the mailed codes or signs in seeded accounts: give the server's --database", s)
			}
		}
	}

	// The server.
	srv := &Server{URL: o.URL, PID: o.ServerPID}
	rep.Server = "external (" + o.URL + ")"
	if o.URL == "" {
		t0 := time.Now()
		srv, err = launch(ctx, o, dir, db, masterKey)
		if err != nil {
			return nil, err
		}
		rep.StartSeconds = time.Since(t0).Seconds()
		defer func() {
			if err := srv.Stop(); err != nil {
				fmt.Fprintf(o.Log, "server stop: %v\n", err)
			}
		}()
		rep.Server = "child process (recourse serve)"
		if srv.InProcess {
			rep.Server = "in-process (the clients share its process: CPU and RSS include them)"
		}
		fmt.Fprintf(o.Log, "server %s listening on %s (started in %.1fs; log in %s)\n", rep.Server, srv.URL, rep.StartSeconds,
			filepath.Join(dir, "server.log"))
	}
	if err := waitReady(ctx, srv.URL, 30*time.Second); err != nil {
		return nil, err
	}
	if srv.PID > 0 {
		time.Sleep(time.Second) // let start-up settle before the idle reading
		rep.IdleRSSBytes, _, _ = procMemory(srv.PID)
	}

	e := &env{lay: layout{n: o.Accounts, clients: o.Concurrency}, h: newHTTPDriver(srv.URL, o.Concurrency), totp: newTOTPTracker(),
		codeTimeout: 60 * time.Second}
	if db != nil {
		sqlDB, err := db.openSQL()
		if err != nil {
			return nil, err
		}
		defer sqlDB.Close()
		e.mail, e.dbKind = &mailbox{db: sqlDB}, db.kind
	}
	clients := make([]*client, o.Concurrency)
	for k := range clients {
		clients[k] = newClient(k, e)
	}
	for _, name := range scenarios {
		res, err := runScenario(ctx, o, e, clients, srv, name)
		if err != nil {
			return rep, err
		}
		rep.Scenarios = append(rep.Scenarios, *res)
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
	}
	if srv.PID > 0 {
		_, rep.PeakRSSBytes, _ = procMemory(srv.PID)
	}
	return rep, nil
}

// seedDatabase seeds the bench accounts through the service, as an
// import and a bench-only credential fast path.
func seedDatabase(ctx context.Context, db *database, masterKey []byte, o Options, params credential.PasswordParams) (int, error) {
	st, err := db.openStore(ctx)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	cfg := service.DefaultConfig()
	cfg.PasswordParams = params
	svc, err := service.New(service.Options{Store: st, Config: cfg, Keys: service.Keys{Master: masterKey}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return 0, err
	}
	have, err := seeded(ctx, svc, o.Accounts)
	if err != nil || have == o.Accounts {
		return 0, err
	}
	if len(masterKey) < 32 {
		return 0, errors.New("seeding needs the server's master key (RECOURSE_MASTER_KEY)")
	}
	return seed(ctx, svc, o.Accounts, params, o.Log, o.Live)
}

// serverConfig is the bench server's configuration: defaults, except that
// the per-address throttles are lifted — every client of the bench comes
// from 127.0.0.1, and the default (30 a minute, bursts of 20) would answer
// almost everything with 429.
const serverConfig = `# Written by recourse bench.
log_level: info
auth:
  signin_rate_per_minute: 100000000
  signin_burst: 1000000
`

// launch writes the server's files and starts it.
func launch(ctx context.Context, o Options, dir string, db *database, masterKey []byte) (*Server, error) {
	pol, err := BenchPolicy()
	if err != nil {
		return nil, err
	}
	policyPath := filepath.Join(dir, "bench-policy.yaml")
	cfgPath := filepath.Join(dir, "server.yaml")
	if err := os.WriteFile(policyPath, pol, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(cfgPath, []byte(serverConfig), 0o600); err != nil {
		return nil, err
	}
	skey, _, err := audit.GenerateKey("bench.localhost/audit")
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, err
	}
	args := []string{"serve", "--config", cfgPath, "--data-dir", filepath.Join(dir, "data"), "--database", db.flag,
		"--listen", "127.0.0.1:0", "--policy", policyPath}
	env := []string{"RECOURSE_MASTER_KEY=" + base64.StdEncoding.EncodeToString(masterKey), "RECOURSE_AUDIT_SIGNING_KEY=" + skey}
	srv, err := o.Launcher.Launch(ctx, args, env, logf)
	if err != nil {
		logf.Close()
		tail, _ := os.ReadFile(logf.Name())
		return nil, fmt.Errorf("start the server: %w\n%s", err, lastLines(string(tail), 20))
	}
	stop := srv.Stop
	srv.Stop = func() error { defer logf.Close(); return stop() }
	return srv, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitReady waits for /readyz to answer 200.
func waitReady(ctx context.Context, base string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server at %s is not ready after %s", base, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// runScenario runs one scenario with every client and measures it.
func runScenario(ctx context.Context, o Options, e *env, clients []*client, srv *Server, name string) (*ScenarioResult, error) {
	rec := newRecorder()
	e.h.rec = rec
	// Sign in what the flows need, a few clients at a time (Argon2id).
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	errs := make([]error, len(clients))
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = c.setup(ctx, name)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%s: setup: %w", name, err)
	}

	// The measured window starts after the warm-up, or at once.
	res := &ScenarioResult{Name: name}
	var cpu0, self0, busy0 float64
	var db0 map[int]float64
	var jobs0 int64
	var start time.Time
	begin := func() error {
		cpu0, _ = procCPU(srv.PID)
		self0, _ = procCPU(os.Getpid())
		busy0, _, _ = machineCPU()
		if e.dbKind == "postgres" {
			db0 = commandCPU("postgres")
		}
		if e.mail != nil {
			jobs0, _, _ = jobCounts(ctx, e.mail.db)
		}
		if o.CPUProfile != "" && srv.StartProfile != nil {
			res.Profile = profilePath(o.CPUProfile, name)
			if err := srv.StartProfile(res.Profile); err != nil {
				return fmt.Errorf("cpu profile: %w", err)
			}
		}
		start = time.Now()
		rec.measuring.Store(true)
		return nil
	}
	warmup := o.Warmup
	if o.Iterations > 0 {
		warmup = 0
	}
	if warmup == 0 {
		if err := begin(); err != nil {
			return nil, err
		}
	}

	runCtx, stopClients := context.WithCancel(ctx)
	defer stopClients()
	var done sync.WaitGroup
	for _, c := range clients {
		done.Add(1)
		go func() {
			defer done.Done()
			for n := 0; o.Iterations == 0 || n < o.Iterations; n++ {
				kind, err := c.flow(runCtx, name)
				if runCtx.Err() != nil {
					return // cut short by the end of the scenario: not counted
				}
				rec.flowDone(kind, err == nil)
				if err != nil {
					rec.fail(errorKind(err))
					time.Sleep(5 * time.Millisecond) // no busy loop against a failing server
				}
			}
		}()
	}
	if warmup > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(warmup):
		}
		if err := begin(); err != nil {
			stopClients()
			done.Wait()
			return nil, err
		}
	}
	var peak int64
	sampleRSS := func() {
		if rss, _, ok := procMemory(srv.PID); ok {
			peak = max(peak, rss)
		}
	}
	allDone := make(chan struct{})
	go func() { done.Wait(); close(allDone) }()
	end := time.After(o.Duration)
	if o.Iterations > 0 {
		end = nil
	}
	tick := time.NewTicker(200 * time.Millisecond)
	lastLine := time.Now()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-end:
			break loop
		case <-allDone:
			break loop
		case <-tick.C:
			sampleRSS()
			every := time.Second
			if !o.Live {
				every = 5 * time.Second
			}
			if time.Since(lastLine) >= every {
				lastLine = time.Now()
				progress(o, name, rec, time.Since(start))
			}
		}
	}
	rec.measuring.Store(false)
	elapsed := time.Since(start)
	tick.Stop()
	sampleRSS()
	if o.CPUProfile != "" && srv.StopProfile != nil {
		if err := srv.StopProfile(); err != nil {
			fmt.Fprintf(o.Log, "cpu profile: %v\n", err)
		}
	}
	cpu1, _ := procCPU(srv.PID)
	self1, _ := procCPU(os.Getpid())
	busy1, _, _ := machineCPU()
	if e.dbKind == "postgres" {
		res.DatabaseCPUSeconds = cpuSince(db0, commandCPU("postgres"))
	}
	stopClients()
	done.Wait()
	if o.Live {
		fmt.Fprint(o.Log, "\r\x1b[K")
	}

	res.Seconds = elapsed.Seconds()
	res.Requests, res.Flows, res.FailedFlows = rec.requests.Load(), rec.flows.Load(), rec.failed.Load()
	res.RequestsPerSec = float64(res.Requests) / res.Seconds
	res.FlowsPerSec = float64(res.Flows) / res.Seconds
	res.Steps = rec.stepResults()
	res.Errors = map[string]int64{}
	rec.mu.Lock()
	for k, v := range rec.errors {
		res.Errors[k] = v
	}
	if name == Mixed {
		res.FlowKinds = map[string]int64{}
		for k, v := range rec.flowKinds {
			res.FlowKinds[k] = v
		}
	}
	rec.mu.Unlock()
	if srv.PID > 0 {
		res.ServerCPUSeconds = cpu1 - cpu0
		res.ServerCores = res.ServerCPUSeconds / res.Seconds
		res.ServerPeakRSSBytes = peak
	}
	res.MachineBusyCores = (busy1 - busy0) / res.Seconds
	if !srv.InProcess {
		res.ClientCPUSeconds = self1 - self0
	}

	// Background jobs: what the window completed, what it left, and how
	// long that takes to drain (so the next scenario starts clean).
	if e.mail != nil {
		jobs1, waiting, err := jobCounts(ctx, e.mail.db)
		if err == nil {
			res.JobsCompleted, res.JobsWaiting = jobs1-jobs0, waiting
		}
		t0 := time.Now()
		for waiting > 0 && time.Since(t0) < 5*time.Minute && ctx.Err() == nil {
			time.Sleep(200 * time.Millisecond)
			if _, waiting, err = jobCounts(ctx, e.mail.db); err != nil {
				break
			}
		}
		res.DrainSeconds = time.Since(t0).Seconds()
	}
	fmt.Fprintf(o.Log, "%-15s done: %s requests (%s/s), %s flows (%s/s), %d failed\n", name, thousands(res.Requests),
		thousands(int64(res.RequestsPerSec)), thousands(res.Flows), thousands(int64(res.FlowsPerSec)), res.FailedFlows)
	return res, nil
}

func profilePath(base, scenario string) string {
	ext := filepath.Ext(base)
	return strings.TrimSuffix(base, ext) + "-" + scenario + ext
}

// progress prints the live line.
func progress(o Options, name string, rec *recorder, d time.Duration) {
	secs := d.Seconds()
	rec.mu.Lock()
	nerr := int64(0)
	for _, n := range rec.errors {
		nerr += n
	}
	rec.mu.Unlock()
	total := o.Duration.Round(time.Second).String()
	if o.Iterations > 0 {
		total = fmt.Sprintf("%d iterations", o.Iterations)
	}
	line := fmt.Sprintf("%-15s %5.1fs of %s  %s requests  %s req/s  %s flows/s  %s errors", name, secs, total,
		thousands(rec.requests.Load()), thousands(int64(float64(rec.requests.Load())/secs)),
		thousands(int64(float64(rec.flows.Load())/secs)), thousands(nerr))
	if o.Live {
		fmt.Fprintf(o.Log, "\r%s\x1b[K", line)
	} else {
		fmt.Fprintln(o.Log, line)
	}
}

// sortedKeys returns m's keys by descending count.
func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}
