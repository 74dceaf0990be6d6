package jobs_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/audit"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/jobs"
	"github.com/recourse/recourse/policy"
	"github.com/recourse/recourse/service"
	"github.com/recourse/recourse/store/sqlite"
	"github.com/recourse/recourse/store/sqlstore"
)

// offsetClock is the wall clock moved forward by a growing offset, so TOTP
// steps are fresh on every flow while River keeps real time.
type offsetClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().UTC().Add(c.offset)
}

func (c *offsetClock) Add(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

const crashKeyEnv, crashDBEnv, crashLogEnv, crashModeEnv = "RECOURSE_CRASH_CHILD", "RECOURSE_CRASH_DB", "RECOURSE_CRASH_LOG", "RECOURSE_CRASH_MODE"

var crashKey = []byte(strings.Repeat("c", 32))

// openCrashWorld opens the shared database, River and the service the way a
// restarted process would.
func openCrashWorld(ctx context.Context, path string, clock recourse.Clock) (*sqlstore.Store, *jobs.Queue, *service.Service, error) {
	st, err := sqlite.Open(ctx, path, sqlite.Options{Migrate: true})
	if err != nil {
		return nil, nil, nil, err
	}
	if err := jobs.Migrate(ctx, st.DB(), "sqlite", nil); err != nil {
		return nil, nil, nil, err
	}
	q, err := jobs.New(st.DB(), "sqlite", nil, jobs.Options{PollInterval: 10 * time.Millisecond, JobTimeout: 2 * time.Second, RescueAfter: 3 * time.Second})
	if err != nil {
		return nil, nil, nil, err
	}
	cfg := service.DefaultConfig()
	cfg.PasswordParams = credential.PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32, SaltLen: 16}
	cfg.SignInRatePerMinute, cfg.SignInBurst = 600000, 100000
	svc, err := service.New(service.Options{Store: st, Clock: clock, Config: cfg, Keys: service.Keys{Master: crashKey}, Scheduler: q})
	if err != nil {
		return nil, nil, nil, err
	}
	return st, q, svc, nil
}

// TestCrashChild is the process the crash test kills. It does nothing
// unless started by TestCrashLeavesNoHalfAppliedChange.
func TestCrashChild(t *testing.T) {
	if os.Getenv(crashKeyEnv) != "1" {
		t.Skip("run by TestCrashLeavesNoHalfAppliedChange")
	}
	ctx := context.Background()
	clock := &offsetClock{offset: 365 * 24 * time.Hour}
	st, q, svc, err := openCrashWorld(ctx, os.Getenv(crashDBEnv), clock)
	if err != nil {
		t.Fatal(err)
	}
	users, err := svc.SeedDemo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{}
	for _, u := range users {
		secrets[u.Username] = u.TOTPSecret
	}
	if err := q.Start(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if os.Getenv(crashModeEnv) == "drain" {
		// Let the queue finish what the killed processes left: jobs a kill
		// interrupted are still marked running until River's rescuer (every
		// 30 s) sees them older than RescueAfter and retries them, and
		// starts a killed process was to run itself wait, pending, until
		// they are due and become River jobs.
		deadline := time.Now().Add(90 * time.Second)
		for time.Now().Before(deadline) {
			var n int
			if err := st.DB().QueryRow(`SELECT (SELECT count(*) FROM river_job WHERE state IN ('available', 'running', 'retryable', 'pending', 'scheduled')
				AND kind = 'recovery_start') + (SELECT count(*) FROM pending_starts)`).Scan(&n); err == nil && n == 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = q.Stop(sctx)
		return
	}
	logf, err := os.OpenFile(os.Getenv(crashLogEnv), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	m := service.Meta{IP: "192.0.2.77", Channel: recourse.ViaWeb}
	names := []string{"d.chen", "a.silva", "m.okafor"}
	for i := 0; ; i++ {
		user := names[i%len(names)]
		clock.Add(time.Minute)
		rs, err := svc.StartRecovery(ctx, user, "password", m)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(logf, "%s\n", rs.RequestID)
		_ = logf.Sync()
		// Wait for the job, then drive the request to the end.
		var r *recourse.Recovery
		for range 500 {
			if r, err = st.Recovery(ctx, rs.RequestID); err == nil {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if r == nil {
			t.Fatalf("request %s never appeared", rs.RequestID)
		}
		code := latestCode(ctx, st, user+"@example.com")
		if _, err := svc.SubmitChallengeCode(ctx, rs.RequestID, rs.BrowserSecret, code, m); err != nil {
			continue
		}
		totp, _ := credential.TOTPCode(secrets[user], clock.Now())
		if _, err := svc.SubmitTOTP(ctx, rs.RequestID, rs.BrowserSecret, totp, m); err != nil {
			continue
		}
		tok, err := svc.ContinueRecovery(ctx, rs.RequestID, rs.BrowserSecret, m)
		if err != nil {
			continue
		}
		pw := fmt.Sprintf("saffron-kettle-meadow-%d", i)
		_, _ = svc.CompleteRecovery(ctx, rs.RequestID, rs.BrowserSecret, tok, service.Completion{NewPassword: pw}, m)
	}
}

func latestCode(ctx context.Context, st recourse.Store, to string) string {
	msgs, _ := st.OutboxMessages(ctx, 50)
	for _, m := range msgs {
		if m.To == to {
			if c := reCode.FindStringSubmatch(m.Body); c != nil {
				return c[1]
			}
		}
	}
	return "000000"
}

// TestCrashLeavesNoHalfAppliedChange kills a process driving recoveries at
// random points (SIGKILL: no deferred cleanup, no graceful shutdown), several
// times, then checks that nothing is half-applied, no notice is lost or
// phantom, every request is in a valid state, every committed start was
// processed, and the audit log verifies.
func TestCrashLeavesNoHalfAppliedChange(t *testing.T) {
	if os.Getenv(crashKeyEnv) == "1" {
		t.Skip("inside the child")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	dir := t.TempDir()
	db, logPath := filepath.Join(dir, "crash.db"), filepath.Join(dir, "started.log")
	run := func(mode string, killAfter time.Duration) {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
		cmd.Env = append(os.Environ(), crashKeyEnv+"=1", crashDBEnv+"="+db, crashLogEnv+"="+logPath, crashModeEnv+"="+mode)
		out, _ := os.Create(filepath.Join(dir, "child.out"))
		defer out.Close()
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if killAfter == 0 {
			if err := cmd.Wait(); err != nil {
				b, _ := os.ReadFile(filepath.Join(dir, "child.out"))
				t.Fatalf("drain: %v\n%s", err, b)
			}
			return
		}
		time.Sleep(killAfter) // the point of the test: a kill at an arbitrary moment
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 6 {
		// Long enough for flows to complete between kills even under the
		// race detector; where in a flow each kill lands is still random.
		run("work", time.Duration(1500+rng.IntN(1500))*time.Millisecond)
	}
	run("drain", 0)

	ctx := t.Context()
	st, err := sqlite.Open(ctx, db, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	// Every start the child saw committed was processed into a request.
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	started := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		started++
		if _, err := st.Recovery(ctx, sc.Text()); errors.Is(err, recourse.ErrNotFound) {
			t.Errorf("start %s committed but never processed", sc.Text())
		}
	}
	f.Close()
	if started < 6 {
		t.Fatalf("only %d flows started; the child did not run", started)
	}
	completedTotal := 0
	for _, user := range []string{"d.chen", "a.silva", "m.okafor"} {
		// Exactly one active password: no half-applied reset.
		auths, _ := st.Authenticators(ctx, user)
		active := 0
		for _, au := range auths {
			if au.Kind == recourse.AuthPassword && au.Status == recourse.AuthActive {
				active++
			}
		}
		if active != 1 {
			t.Errorf("%s has %d active passwords", user, active)
		}
		// The newest requests (the store lists 200) must each be complete
		// where completed; counts below cover all of them.
		reqs, _ := st.Recoveries(ctx, user, false)
		for _, r := range reqs {
			if r.State != recourse.RecoveryCompleted {
				continue
			}
			var req policy.Requirement
			_ = json.Unmarshal(r.Requirement, &req)
			if !policy.Satisfied(&req, evidenceFor(t, st, r)).Satisfied {
				t.Errorf("%s completed without its evidence", r.ID)
			}
		}
		var completed, invalid int
		if err := st.DB().QueryRowContext(ctx, `SELECT count(*) FROM recovery_requests WHERE account_id = $1 AND state = 'completed'`, user).Scan(&completed); err != nil {
			t.Fatal(err)
		}
		if err := st.DB().QueryRowContext(ctx, `SELECT count(*) FROM recovery_requests WHERE account_id = $1 AND (
			state NOT IN ('collecting', 'awaiting_approval', 'cooling_off', 'ready', 'completed', 'cancelled', 'denied', 'expired')
			OR (state = 'completed' AND completed_at IS NULL))`, user).Scan(&invalid); err != nil {
			t.Fatal(err)
		}
		if invalid != 0 {
			t.Errorf("%s: %d requests in an invalid state", user, invalid)
		}
		completedTotal += completed
		// One completion notice per completed recovery: none lost, none phantom.
		var notices int
		if err := st.DB().QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE to_address = $1 AND subject = $2`,
			user+"@example.com", "Your account was recovered").Scan(&notices); err != nil {
			t.Fatal(err)
		}
		if notices != completed {
			t.Errorf("%s: %d completed recoveries but %d completion notices", user, completed, notices)
		}
	}
	if completedTotal == 0 {
		t.Error("no recovery completed between the kills; the test exercised nothing")
	}
	// The audit log is whole: sequence what is pending, then verify.
	skey, vkey, err := audit.GenerateKey("crash.test")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := audit.NewSigner(skey)
	seq, err := audit.NewSequencer(audit.SequencerOptions{Store: st, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seq.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	verifier, _ := audit.NewVerifier(vkey)
	rep, err := audit.Verify(ctx, st, audit.VerifyOptions{Verifier: verifier})
	if err != nil {
		t.Fatalf("audit verify after crashes: %v", err)
	}
	t.Logf("%d flows started, %d completed across 6 kills; audit log of %d events verifies", started, completedTotal, rep.Size)
}

func evidenceFor(t *testing.T, st recourse.Store, r *recourse.Recovery) policy.Evidence {
	t.Helper()
	var ev policy.Evidence
	rows, _ := st.RecoveryEvidence(t.Context(), r.ID)
	for _, e := range rows {
		switch e.Kind {
		case "code":
			var c policy.Code
			_ = json.Unmarshal(e.Detail, &c)
			ev.Codes = append(ev.Codes, c)
		case "possession":
			var p policy.Possession
			_ = json.Unmarshal(e.Detail, &p)
			ev.Possessions = append(ev.Possessions, p)
		case "recovery_code":
			ev.RecoveryCodes++
		}
	}
	return ev
}
