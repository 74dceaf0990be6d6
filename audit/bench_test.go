package audit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/store/storetest"
)

// The benchmarks run on SQLite, and on PostgreSQL when
// RECOURSE_TEST_POSTGRES_DSN is set. docs/benchmarks.md has the figures and
// the commands. Each reports events/s; ns/op is per event except in
// BenchmarkVerify, where an op is one verification of the whole log.

// benchEvent is a typical event: a completed second-factor sign-in, about
// 480 bytes encoded.
func benchEvent(i int) *recourse.AuditEvent {
	return &recourse.AuditEvent{
		ID: recourse.NewID("ev_"), Time: storetest.T0.Add(time.Duration(i) * time.Millisecond),
		Actor:     recourse.AuditActor{AccountID: fmt.Sprintf("user%05d", i%50000), Role: recourse.ActorSubject},
		SubjectID: fmt.Sprintf("user%05d", i%50000), RequestID: fmt.Sprintf("%016x", i),
		Action: recourse.ActionSignInSecondFactor, Outcome: recourse.OutcomeSuccess, Channel: recourse.ViaWeb,
		IP: "198.51.100.23", UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
		Attributes:   map[string]string{"session_id": "ses_abcdefghijklmnopqrstuvwx", "aal": "2", "method": "otp"},
		Evidence:     []string{"pwd", "otp"},
		PolicyDigest: "9f2c4e0b7a1d3c5e8f6a2b4d6c8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d2e",
	}
}

func perSecond(b *testing.B, events int64) {
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppend: one business transaction writing one audit event, from
// concurrent request goroutines, as the service does.
func BenchmarkAppend(b *testing.B) {
	for _, be := range backends(b) {
		b.Run(be.name, func(b *testing.B) {
			st := be.open(b).st
			ctx := context.Background()
			var n atomic.Int64
			b.SetParallelism(1)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					e := benchEvent(int(n.Add(1)))
					if err := st.InTx(ctx, func(tx recourse.Tx) error { return tx.AddAuditEvent(ctx, e) }); err != nil {
						b.Error(err)
						return
					}
				}
			})
			perSecond(b, n.Load())
		})
	}
}

// BenchmarkAppendBatched: 100 events a transaction (an import, a bulk
// provisioning run).
func BenchmarkAppendBatched(b *testing.B) {
	for _, be := range backends(b) {
		b.Run(be.name, func(b *testing.B) {
			st := be.open(b).st
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i += 100 {
				err := st.InTx(ctx, func(tx recourse.Tx) error {
					for j := i; j < min(i+100, b.N); j++ {
						if err := tx.AddAuditEvent(ctx, benchEvent(j)); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			perSecond(b, int64(b.N))
		})
	}
}

// fill stores n events, untimed, in transactions of 1000.
func fill(b *testing.B, st recourse.Store, n, from int) {
	b.Helper()
	ctx := context.Background()
	for i := 0; i < n; i += 1000 {
		err := st.InTx(ctx, func(tx recourse.Tx) error {
			for j := i; j < min(i+1000, n); j++ {
				if err := tx.AddAuditEvent(ctx, benchEvent(from+j)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSequence: the sequencer alone, in rounds of DefaultBatch,
// over a backlog of b.N events: positions, tree hashes, a signed
// checkpoint a round.
func BenchmarkSequence(b *testing.B) {
	for _, be := range backends(b) {
		b.Run(be.name, func(b *testing.B) {
			st := be.open(b).st
			fill(b, st, b.N, 0)
			seq := newTestSequencer(b, st, DefaultBatch)
			b.ResetTimer()
			n, err := seq.Drain(context.Background())
			if err != nil || n != b.N {
				b.Fatalf("Drain = %d, %v", n, err)
			}
			perSecond(b, int64(n))
		})
	}
}

// BenchmarkSustained: 16 writers appending while a sequencer runs, as in
// `serve`; the clock stops when the last event is in a signed checkpoint.
// perTx=1 is one event per business transaction; perTx=10 is writers that
// record several events a transaction (a recovery completion, an import).
func BenchmarkSustained(b *testing.B) {
	for _, be := range backends(b) {
		for _, perTx := range []int{1, 10} {
			b.Run(fmt.Sprintf("%s/perTx=%d", be.name, perTx), func(b *testing.B) {
				sustained(b, be.open(b).st, perTx)
			})
		}
	}
}

// sustained runs the writers and the sequencer, as `serve` runs it (Run,
// nudged by each commit), for b.N events.
func sustained(b *testing.B, st recourse.Store, perTx int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seq := newTestSequencer(b, st, DefaultBatch)
	seq.afterRound = func() {
		if seq.TreeSize() >= int64(b.N) {
			cancel()
		}
	}
	const writers = 16
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range writers {
		wg.Go(func() {
			for {
				first := next.Add(int64(perTx)) - int64(perTx)
				if first >= int64(b.N) {
					return
				}
				last := min(first+int64(perTx), int64(b.N))
				err := st.InTx(ctx, func(tx recourse.Tx) error {
					for i := first; i < last; i++ {
						if err := tx.AddAuditEvent(ctx, benchEvent(int(i))); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Error(err)
					return
				}
				seq.Nudge()
			}
		})
	}
	if err := seq.Run(ctx, 200*time.Millisecond); err != nil {
		b.Fatal(err)
	}
	wg.Wait()
	if seq.TreeSize() < int64(b.N) {
		b.Fatalf("%d of %d events signed", seq.TreeSize(), b.N)
	}
	perSecond(b, int64(b.N))
}

// verifyLogSize is the log BenchmarkVerify checks.
const verifyLogSize = 200_000

// BenchmarkVerify: a full verification of a 200,000-event log sequenced in
// rounds of 1000 (every leaf recomputed, every checkpoint's signature and
// root checked; with tree_hashes, every stored tree hash compared too). One
// op is one whole verification.
func BenchmarkVerify(b *testing.B) {
	for _, be := range backends(b) {
		b.Run(be.name, func(b *testing.B) {
			st := be.open(b).st
			fill(b, st, verifyLogSize, 0)
			if _, err := newTestSequencer(b, st, DefaultBatch).Drain(context.Background()); err != nil {
				b.Fatal(err)
			}
			v := testVerifier(b)
			for _, deep := range []bool{false, true} {
				b.Run(fmt.Sprintf("tree_hashes=%v", deep), func(b *testing.B) {
					for range b.N {
						rep, err := Verify(context.Background(), st, VerifyOptions{Verifier: v, TreeHashes: deep})
						if err != nil || rep.Size != verifyLogSize {
							b.Fatalf("Verify = %+v, %v", rep, err)
						}
					}
					perSecond(b, int64(b.N)*verifyLogSize)
				})
			}
		})
	}
}
