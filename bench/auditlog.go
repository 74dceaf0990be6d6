package bench

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/sync/errgroup"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/audit"
	"github.com/recourse/recourse/policy"
)

// Filling the audit log (--audit-events): events like the ones the service
// writes, appended through the store in large transactions, then given
// positions and signed checkpoints by the real sequencer with the key the
// bench server signs with, so the whole log verifies with one key.
const (
	// MaxAuditEvents bounds --audit-events (issue 9 asks for 10 million).
	MaxAuditEvents = 20_000_000
	// auditAppendBatch events are appended per transaction.
	auditAppendBatch = 5000
	// auditSequenceBatch events are sequenced per round (one signed
	// checkpoint each); the server's rounds take audit.DefaultBatch. On
	// SQLite 5,000 was faster in both phases than 1,000, 2,000 or 10,000.
	auditSequenceBatch = 5000
	// auditEventGap is the time between two generated events: their times
	// run up to the moment of seeding, ten million of them over about a
	// year.
	auditEventGap = 3 * time.Second
)

// auditFill is what filling the log did.
type auditFill struct {
	// Before is how many events the log held, sequenced or not, before.
	Before int64
	// Appended events were added; Sequenced events were given positions
	// and signed (the appended ones and any the account seeding wrote).
	Appended, Sequenced      int64
	AppendTime, SequenceTime time.Duration
	// Size is the signed log's size afterwards.
	Size int64
}

// fillAuditLog makes the log in st hold at least want events, all of them
// sequenced and signed by signer. It counts what is there first (the
// signed log and the backlog), so a second call appends nothing; subjects
// are bench accounts 1…accounts. writers transactions append at once.
func fillAuditLog(ctx context.Context, st recourse.Store, signer note.Signer, want int64, accounts, writers int, w io.Writer, live bool) (auditFill, error) {
	var f auditFill
	size, err := auditLogSize(ctx, st)
	if err != nil {
		return f, err
	}
	backlog, err := st.AuditBacklog(ctx)
	if err != nil {
		return f, err
	}
	f.Before = size + backlog

	if missing := want - f.Before; missing > 0 {
		t0 := time.Now()
		if err := appendAuditEvents(ctx, st, missing, accounts, writers, newProgressBar(w, live, int(missing), "seeding", "audit events")); err != nil {
			return f, err
		}
		f.Appended, f.AppendTime = missing, time.Since(t0)
		backlog += missing
	}

	if backlog > 0 {
		t0 := time.Now()
		seq, err := audit.NewSequencer(audit.SequencerOptions{Store: st, Signer: signer, Batch: auditSequenceBatch, Coalesce: -1})
		if err != nil {
			return f, err
		}
		bar := newProgressBar(w, live, int(backlog), "signing", "audit events")
		for {
			n, err := seq.Sequence(ctx)
			if err != nil {
				return f, err
			}
			if n == 0 {
				break
			}
			f.Sequenced += int64(n)
			bar.set(int(min(f.Sequenced, backlog)))
		}
		f.SequenceTime = time.Since(t0)
		bar.done(time.Since(t0))
	}
	if f.Size, err = auditLogSize(ctx, st); err != nil {
		return f, err
	}
	if f.Size < want {
		return f, fmt.Errorf("the audit log holds %d signed events after filling, want %d (is another sequencer running on this database?)", f.Size, want)
	}
	return f, nil
}

// appendAuditEvents appends n generated events in transactions of
// auditAppendBatch, writers at a time. Each writer generates its batch
// before its transaction, so on SQLite (one writer at a time) one
// generates while another writes, and on PostgreSQL their round trips
// overlap. The events' insertion order, which the sequencer follows, then
// interleaves the batches a little; their times are for reading, not
// ordering.
func appendAuditEvents(ctx context.Context, st recourse.Store, n int64, accounts, writers int, bar *progressBar) error {
	gen, err := newAuditGenerator(accounts, n, time.Now())
	if err != nil {
		return err
	}
	var next atomic.Int64
	var mu sync.Mutex
	var done int64
	g, gctx := errgroup.WithContext(ctx)
	for range max(writers, 1) {
		g.Go(func() error {
			batch := make([]*recourse.AuditEvent, 0, auditAppendBatch)
			for gctx.Err() == nil {
				first := next.Add(auditAppendBatch) - auditAppendBatch
				if first >= n {
					return nil
				}
				batch = batch[:0]
				for i := first; i < min(first+auditAppendBatch, n); i++ {
					batch = append(batch, gen.event(i))
				}
				err := st.InTx(recourse.LargeWrite(gctx), func(tx recourse.Tx) error {
					for _, e := range batch {
						if err := tx.AddAuditEvent(gctx, e); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					return fmt.Errorf("append audit events %d–%d: %w", first+1, first+int64(len(batch)), err)
				}
				mu.Lock()
				done += int64(len(batch))
				bar.set(int(done))
				mu.Unlock()
			}
			return gctx.Err()
		})
	}
	err = g.Wait()
	bar.done(time.Since(bar.start))
	return err
}

// auditLogSize is the size of the signed log: its latest checkpoint's.
func auditLogSize(ctx context.Context, st recourse.Store) (int64, error) {
	c, err := st.LatestAuditCheckpoint(ctx)
	if errors.Is(err, recourse.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return c.Size, nil
}

// auditGenerator makes the history of a directory's sign-ins and
// recoveries, in the shapes the service records them (service/signin.go,
// service/sessions.go, service/recovery.go): per 20 events, 8 password
// steps, 7 second-factor steps, a wrong password, a sign-out, and a
// self-service recovery's start, code and state change. About 570 bytes
// an event, encoded: like the service's, each carries the policy digest,
// a browser's user agent and a session or request id. It is deterministic
// but for the event ids, which are random as the service's are (so the
// unique index on them grows as it would in production).
type auditGenerator struct {
	accounts int
	first    time.Time
	digest   string
}

func newAuditGenerator(accounts int, n int64, end time.Time) (*auditGenerator, error) {
	data, err := BenchPolicy()
	if err != nil {
		return nil, err
	}
	pol, err := policy.Load(data, "bench-policy.yaml")
	if err != nil {
		return nil, err
	}
	first := end.Add(-time.Duration(n) * auditEventGap).UTC().Truncate(time.Microsecond)
	return &auditGenerator{accounts: max(accounts, 1), first: first, digest: pol.Digest()}, nil
}

var benchUserAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
	"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
}

// event returns the i-th generated event (from 0).
func (g *auditGenerator) event(i int64) *recourse.AuditEvent {
	r := rand.New(rand.NewPCG(uint64(i), 0x5eed_a0d1))
	subject := accountID(1 + r.IntN(g.accounts))
	var reqID [8]byte
	for k := range reqID {
		reqID[k] = byte(r.Uint32())
	}
	// A person signs in from one address and one browser.
	h := uint64(len(subject))
	for _, c := range subject {
		h = h*31 + uint64(c)
	}
	e := &recourse.AuditEvent{
		ID: recourse.NewID("ev_"), Time: g.first.Add(time.Duration(i) * auditEventGap),
		Actor: recourse.AuditActor{AccountID: subject, Role: recourse.ActorSubject}, SubjectID: subject,
		RequestID: hex.EncodeToString(reqID[:]), Outcome: recourse.OutcomeSuccess, Channel: recourse.ViaWeb,
		IP:        fmt.Sprintf("10.%d.%d.%d", h%200+20, h/200%250, h/50_000%250+2),
		UserAgent: benchUserAgents[h%uint64(len(benchUserAgents))], PolicyDigest: g.digest,
	}
	session, request := pseudoID(r, "ses_", e.Time), pseudoID(r, "rr_", e.Time)
	switch k := i % 20; {
	case k < 8:
		e.Action, e.Evidence = recourse.ActionSignInPassword, []string{"pwd"}
		e.Attributes = map[string]string{"session_id": session, "aal": "1", "second_factor": "pending"}
	case k < 15:
		e.Action, e.Evidence = recourse.ActionSignInSecondFactor, []string{"pwd", "otp"}
		e.Attributes = map[string]string{"session_id": session, "aal": "2", "method": "otp"}
	case k == 15:
		e.Action, e.Outcome, e.Reason = recourse.ActionSignInPassword, recourse.OutcomeFailure, "wrong password"
		e.Attributes = map[string]string{"method": "pwd", "failures": strconv.Itoa(1 + r.IntN(3))}
	case k == 16:
		e.Action = recourse.ActionSignOut
		e.Attributes = map[string]string{"session_id": session}
	case k == 17:
		e.Action, e.Channel = recourse.ActionRecoveryStart, recourse.ViaAPI
		e.Attributes = map[string]string{"request": request, "action": "password.reset", "rule": "bench", "initiator": "self",
			"tier": string(policy.TierRecovery), "state": string(recourse.RecoveryCollecting)}
	case k == 18:
		e.Action, e.Channel, e.Evidence = recourse.ActionRecoveryEvidence, recourse.ViaAPI, []string{"code by email"}
		e.Attributes = map[string]string{"request": request}
	default:
		e.Action, e.Channel = recourse.ActionRecoveryTransition, recourse.ViaAPI
		e.Before = map[string]string{"state": string(recourse.RecoveryCollecting)}
		e.After = map[string]string{"state": string(recourse.RecoveryAwaitingApproval)}
		e.Attributes = map[string]string{"request": request, "action": "password.reset"}
	}
	return e
}

// pseudoID returns the id recourse.NewID would make at t, its random bits
// drawn from r.
func pseudoID(r *rand.Rand, prefix string, t time.Time) string {
	var b [10]byte
	for k := range b {
		b[k] = byte(r.Uint32())
	}
	return recourse.IDFrom(prefix, t, b)
}
