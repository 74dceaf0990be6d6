package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/recourse/recourse/bench"
)

const benchUsage = `Usage: recourse bench [flags]

Seeds bench accounts into a fresh database, starts a server on it (a child
process running 'recourse serve'), drives HTTP traffic with a fixed number
of clients, and prints requests/s, completed flows/s, latency percentiles
per step, errors by kind, and the server's CPU time and memory.

Scenarios: recovery-start, recovery-code, recovery-full, signin, routine,
mixed (default: all, in that order). docs/benchmarks.md has the details.

Flags:
`

// cmdBench runs the load generator (package bench).
func cmdBench(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == internalServe {
		return benchServe(ctx, args[1:], getenv, stdin, stdout, stderr)
	}
	fs := newFlagSet("bench", stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage)
		fs.PrintDefaults()
	}
	d := bench.DefaultOptions()
	scenario := fs.String("scenario", "all", "scenarios to run, comma-separated: "+strings.Join(bench.Scenarios, ", ")+", or all")
	accounts := fs.Int("accounts", d.Accounts, fmt.Sprintf("bench accounts to seed (up to %d)", bench.MaxAccounts))
	auditEvents := fs.Int64("audit-events", 0, fmt.Sprintf("before the server starts, fill the audit log to this many events (up to %d),\nsequenced and signed with the server's key; the seeding's own events count (not with --url)", bench.MaxAuditEvents))
	concurrency := fs.Int("concurrency", d.Concurrency, "concurrent clients, each running one flow at a time")
	duration := fs.Duration("duration", d.Duration, "measured time per scenario")
	warmup := fs.Duration("warmup", d.Warmup, "unmeasured time per scenario before the measurement")
	iterations := fs.Int("iterations", 0, "end each scenario after this many flows per client instead of after --duration")
	database := fs.String("database", "", "postgres:// URL to bench PostgreSQL, in a fresh schema (default: SQLite in a temporary directory);\nwith --url, the server's own database (sqlite:PATH or postgres://…) to seed and read mail from")
	target := fs.String("url", "", "drive a running server at this URL instead of starting one (see docs/benchmarks.md)")
	pid := fs.Int("pid", 0, "with --url: the server's process id, to report its CPU time and memory")
	server := fs.String("server", "child", "how to run the server: child (a separate process) or in-process (shares the clients' process)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the server for each scenario (FILE gets the scenario's name)")
	keep := fs.Bool("keep", false, "keep the temporary directory and the PostgreSQL schema")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	printPolicy := fs.Bool("print-policy", false, "print the bench policy (for a server driven with --url) and exit")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("bench takes no arguments, got %q", fs.Args())}
	}
	if *printPolicy {
		p, err := bench.BenchPolicy()
		if err != nil {
			return err
		}
		_, err = stdout.Write(p)
		return err
	}
	o := bench.Options{Scenarios: []string{*scenario}, Accounts: *accounts, AuditEvents: *auditEvents, Concurrency: *concurrency, Duration: *duration,
		Warmup: *warmup, Iterations: *iterations, Database: *database, URL: *target, ServerPID: *pid, Keep: *keep,
		CPUProfile: *cpuprofile, Log: stderr, Live: isTerminal(stderr)}
	if *target != "" {
		if *server != "child" || *cpuprofile != "" {
			return usageError{"--server and --cpuprofile apply to the server bench starts, not to --url"}
		}
		if *database != "" {
			if k := getenv("RECOURSE_MASTER_KEY"); k != "" {
				key, err := decodeKey(k)
				if err != nil {
					return fmt.Errorf("RECOURSE_MASTER_KEY: %w", err)
				}
				o.MasterKey = key
			}
		}
	} else {
		switch *server {
		case "child":
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("bench: cannot find this program to start the server: %w", err)
			}
			o.Launcher = childLauncher{exe: exe}
		case "in-process":
			o.Launcher = inProcessLauncher{getenv: getenv}
		default:
			return usageError{fmt.Sprintf("--server must be child or in-process, got %q", *server)}
		}
	}
	if err := o.Validate(); err != nil {
		return usageError{err.Error()}
	}
	rep, err := bench.Run(ctx, o)
	if rep != nil {
		var werr error
		if *asJSON {
			werr = rep.WriteJSON(stdout)
		} else {
			werr = rep.WriteTable(stdout)
		}
		if err == nil {
			err = werr
		}
	}
	return err
}

// isTerminal reports whether w is a terminal, for the redrawn progress line.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

var reListening = regexp.MustCompile(`listening on (https?://\S+)`)

// internalServe is the hidden first argument of `recourse bench` that runs
// `serve` under the bench's control: it takes CPU profiles when told so on
// standard input ("start FILE", "stop") and answers on standard output.
const internalServe = "--internal-serve"

func benchServe(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	out := &lockedWriter{w: stdout}
	go func() {
		var f *os.File
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			cmd, arg, _ := strings.Cut(sc.Text(), " ")
			switch {
			case cmd == "start" && f == nil:
				var err error
				if f, err = os.Create(arg); err == nil {
					err = pprof.StartCPUProfile(f)
				}
				fmt.Fprintf(out, "cpuprofile started %v\n", err)
			case cmd == "stop" && f != nil:
				pprof.StopCPUProfile()
				err := f.Close()
				f = nil
				fmt.Fprintf(out, "cpuprofile written %v\n", err)
			}
		}
	}()
	return cmdServe(ctx, args, getenv, out, stderr)
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// childLauncher runs the server as a child process of the bench, so its CPU
// time and memory are its own.
type childLauncher struct{ exe string }

func (l childLauncher) Launch(ctx context.Context, args, env []string, logw io.Writer) (*bench.Server, error) {
	// The server runs under `bench --internal-serve` so a profile can be
	// asked for; otherwise it is exactly `recourse serve`.
	cmd := exec.Command(l.exe, append([]string{"bench", internalServe}, args[1:]...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = logw
	control, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			fmt.Fprintln(logw, sc.Text())
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	stop := func() error {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			return err
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			return errors.New("the server did not stop within 20s of an interrupt; killed")
		}
	}
	url, err := waitListening(ctx, lines, 10*time.Minute)
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	ack := func(want string) error {
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					return errors.New("the server exited")
				}
				if rest, found := strings.CutPrefix(l, want+" "); found {
					if rest != "<nil>" {
						return errors.New(rest)
					}
					return nil
				}
			case <-time.After(30 * time.Second):
				return fmt.Errorf("the server did not answer %q", want)
			}
		}
	}
	return &bench.Server{URL: url, PID: cmd.Process.Pid, Stop: stop,
		StartProfile: func(path string) error {
			if _, err := fmt.Fprintf(control, "start %s\n", path); err != nil {
				return err
			}
			return ack("cpuprofile started")
		},
		StopProfile: func() error {
			if _, err := fmt.Fprintln(control, "stop"); err != nil {
				return err
			}
			return ack("cpuprofile written")
		},
	}, nil
}

// waitListening returns the URL of the server's "listening on" line.
func waitListening(ctx context.Context, lines <-chan string, timeout time.Duration) (string, error) {
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return "", errors.New("the server exited before listening (its log is below)")
			}
			if m := reListening.FindStringSubmatch(l); m != nil {
				return m[1], nil
			}
		case <-deadline:
			return "", fmt.Errorf("the server did not listen within %s", timeout)
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// inProcessLauncher runs the server in the bench's own process: simpler to
// debug, but its CPU time and memory then include the clients.
type inProcessLauncher struct{ getenv func(string) string }

func (l inProcessLauncher) Launch(ctx context.Context, args, env []string, logw io.Writer) (*bench.Server, error) {
	extra := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		extra[k] = v
	}
	getenv := func(k string) string {
		if v, ok := extra[k]; ok {
			return v
		}
		return l.getenv(k)
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	pr, pw := io.Pipe()
	exited := make(chan error, 1)
	go func() {
		err := run(sctx, args, getenv, strings.NewReader(""), pw, logw)
		pw.Close()
		exited <- err
	}()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			fmt.Fprintln(logw, sc.Text())
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	url, err := waitListening(ctx, lines, 10*time.Minute)
	if err != nil {
		cancel()
		if rerr := <-exited; rerr != nil {
			err = rerr
		}
		return nil, err
	}
	var prof *os.File
	return &bench.Server{URL: url, PID: os.Getpid(), InProcess: true,
		Stop: func() error {
			cancel()
			select {
			case err := <-exited:
				return err
			case <-time.After(20 * time.Second):
				return errors.New("the server did not stop within 20s")
			}
		},
		StartProfile: func(path string) error {
			f, err := os.Create(path)
			if err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				f.Close()
				return err
			}
			prof = f
			return nil
		},
		StopProfile: func() error {
			pprof.StopCPUProfile()
			return prof.Close()
		},
	}, nil
}
