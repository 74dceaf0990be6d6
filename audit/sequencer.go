package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/recourse/recourse"
)

// DefaultBatch is how many events one sequencing transaction takes at most.
const DefaultBatch = 1000

// Sequencer assigns positions to committed audit events and signs
// checkpoints. Any number of replicas may run one: a round takes the
// store's sequencer lock inside its transaction (a PostgreSQL advisory
// transaction lock; SQLite's write lock), so rounds never overlap, and a
// replica that finds the lock taken skips its round.
//
// A round is one transaction: read the latest checkpoint, take up to Batch
// unsequenced events in insertion order, give them the next positions,
// store the new Merkle tree hashes and a signed checkpoint, commit. If the
// process dies or the transaction fails midway, nothing of the round stays
// and the events wait for the next round: positions never have gaps or
// duplicates.
type Sequencer struct {
	store   recourse.Store
	signer  note.Signer
	clock   recourse.Clock
	log     *slog.Logger
	batch   int
	gap     time.Duration
	nudge   chan struct{}
	observe func(RoundStats)

	sequenced atomic.Int64
	size      atomic.Int64

	// floor is the last insertion row this sequencer sequenced: a round
	// looks above it, so it never steps over the rows sequenced before
	// (on PostgreSQL their entries in the index of unsequenced events
	// stay until a vacuum, and walking them cost 9 ms a round under load,
	// docs/benchmarks.md). Rows are numbered at insertion, and on
	// PostgreSQL a transaction may commit after a later-numbered one was
	// sequenced: every fullScanEvery a round looks from the start, so such
	// an event waits at most that long. (SQLite commits in row order.)
	floor    atomic.Int64
	fullScan atomic.Int64 // when a round last looked from the start, in Unix nanoseconds
	// lastRound is how many events the last round sequenced: after a
	// round of largeRound or more, a backlog is being caught up, and the
	// next round is marked recourse.LargeWrite.
	lastRound atomic.Int64

	// beforeCommit, when set by tests, runs inside the round's transaction
	// after all its writes; afterRound runs after each round of Run.
	beforeCommit func()
	afterRound   func()
}

// SequencerOptions configure a Sequencer. Store and Signer are required.
type SequencerOptions struct {
	Store  recourse.Store
	Signer note.Signer
	Clock  recourse.Clock
	Logger *slog.Logger
	// Batch bounds the events of one round (default DefaultBatch).
	Batch int
	// Coalesce holds a nudged round back until this long after the
	// previous one (default DefaultCoalesce; negative for none), so that a
	// burst of commits shares one round and one signed checkpoint instead
	// of each taking the write lock for a round of its own.
	Coalesce time.Duration
	// Observe, when set, is told of every round that sequenced events,
	// after its commit; it must not block (serve feeds a histogram).
	Observe func(RoundStats)
}

// RoundStats describe one round that sequenced events.
type RoundStats struct {
	Events int
	// Work is how long the round's statements held the sequencer lock,
	// from taking it until its last write; its COMMIT is not counted (on
	// SQLite group commit may share it with other transactions, whose
	// turns it would count too). On SQLite the lock is the database's one
	// writer: every other write waits as long, so a long round is a
	// latency tail for everyone.
	Work time.Duration
}

// DefaultCoalesce is the least time between two nudged rounds.
const DefaultCoalesce = 20 * time.Millisecond

// fullScanEvery bounds how long an event that committed out of row order
// waits (Sequencer.floor).
const fullScanEvery = time.Second

// largeRound is the size from which a round counts as a large write.
const largeRound = 256

// NewSequencer returns a sequencer; it does nothing until Run or Sequence.
func NewSequencer(o SequencerOptions) (*Sequencer, error) {
	if o.Store == nil || o.Signer == nil {
		return nil, errors.New("audit: the sequencer needs a store and a signer")
	}
	s := &Sequencer{store: o.Store, signer: o.Signer, clock: o.Clock, log: o.Logger, batch: o.Batch, gap: o.Coalesce, nudge: make(chan struct{}, 1), observe: o.Observe}
	if s.clock == nil {
		s.clock = recourse.SystemClock{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.batch <= 0 {
		s.batch = DefaultBatch
	}
	switch {
	case s.gap == 0:
		s.gap = DefaultCoalesce
	case s.gap < 0:
		s.gap = 0
	}
	return s, nil
}

// Nudge asks for a round soon; it never blocks. Call it after committing an
// audit event.
func (s *Sequencer) Nudge() {
	select {
	case s.nudge <- struct{}{}:
	default:
	}
}

// Sequenced returns how many events this sequencer has sequenced.
func (s *Sequencer) Sequenced() int64 { return s.sequenced.Load() }

// TreeSize returns the size of the signed log as of this sequencer's last
// round or Drain, whichever replica sequenced it.
func (s *Sequencer) TreeSize() int64 { return s.size.Load() }

// Run sequences every interval and whenever nudged (but not sooner than
// the Coalesce time after the previous round) until ctx ends, then returns
// nil. A failed round is logged and retried at the next tick.
func (s *Sequencer) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	hold := time.NewTimer(time.Hour)
	hold.Stop()
	for {
		last := time.Now()
		if _, err := s.Drain(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("audit sequencing failed; events wait for the next round", "err", err)
		}
		if s.afterRound != nil {
			s.afterRound()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			continue
		case <-s.nudge:
		}
		if wait := s.gap - time.Since(last); wait > 0 {
			hold.Reset(wait)
			select {
			case <-ctx.Done():
				return nil
			case <-hold.C:
			}
		}
	}
}

// Drain runs rounds until the backlog is empty, another replica holds the
// lock, or ctx ends, and returns how many events it sequenced.
func (s *Sequencer) Drain(ctx context.Context) (int, error) {
	total := 0
	for ctx.Err() == nil {
		n, err := s.Sequence(ctx)
		total += n
		if err != nil {
			return total, err
		}
		if n < s.batch {
			break
		}
	}
	if c, err := s.store.LatestAuditCheckpoint(ctx); err == nil {
		s.size.Store(c.Size) // another replica's rounds count too
	}
	return total, nil
}

// Sequence runs one round and returns how many events it sequenced: 0 when
// there was nothing to do or another sequencer holds the lock.
func (s *Sequencer) Sequence(ctx context.Context) (int, error) {
	after, full := s.floor.Load(), false
	if time.Since(time.Unix(0, s.fullScan.Load())) >= fullScanEvery {
		after, full = 0, true
	}
	// A cheap look outside any transaction, so an idle log never takes the
	// write lock.
	if peek, err := s.store.UnsequencedAuditEvents(ctx, after, 1); err != nil || len(peek) == 0 {
		if err == nil && full {
			s.fullScan.Store(time.Now().UnixNano())
		}
		return 0, err
	}
	var n int
	var size, last int64
	var work time.Duration
	txCtx := ctx
	if s.lastRound.Load() >= largeRound {
		txCtx = recourse.LargeWrite(ctx)
	}
	err := s.store.InTx(txCtx, func(tx recourse.Tx) error {
		n, size = 0, 0
		ok, err := tx.LockAuditSequencer(ctx)
		if err != nil || !ok {
			return err
		}
		locked := time.Now()
		old, oldRoot, err := treeHead(ctx, tx)
		if err != nil {
			return err
		}
		recs, err := tx.UnsequencedAuditEvents(ctx, after, s.batch)
		if err != nil || len(recs) == 0 {
			return err
		}
		last = recs[len(recs)-1].Row
		hashes, err := loadFrontier(ctx, tx, old, len(recs))
		if err != nil {
			return err
		}
		// Never extend a tree whose stored hashes disagree with its signed
		// checkpoint: that would sign over tampering.
		if old > 0 {
			root, err := tlog.TreeHash(old, hashes)
			if err != nil {
				return fmt.Errorf("recompute tree head: %w", err)
			}
			if root != oldRoot {
				return fmt.Errorf("audit log: the stored Merkle tree of size %d does not match its signed checkpoint; run `recourse audit verify`", old)
			}
		}
		start := tlog.StoredHashIndex(0, old)
		var added [][32]byte
		rows := make([]int64, len(recs))
		var leaf []byte
		for i, r := range recs {
			seq := old + int64(i)
			leaf = recourse.AppendAuditLeaf(leaf[:0], r.Data, seq)
			hs, err := tlog.StoredHashes(seq, leaf, hashes)
			if err != nil {
				return fmt.Errorf("hash position %d: %w", seq, err)
			}
			for _, h := range hs {
				hashes[start+int64(len(added))] = h
				added = append(added, [32]byte(h))
			}
			rows[i] = r.Row
		}
		size = old + int64(len(recs))
		root, err := tlog.TreeHash(size, hashes)
		if err != nil {
			return fmt.Errorf("tree head: %w", err)
		}
		if err := tx.SequenceAuditEvents(ctx, old, rows); err != nil {
			return err
		}
		if err := tx.AddAuditHashes(ctx, start, added); err != nil {
			return err
		}
		signed, err := SignCheckpoint(Checkpoint{Origin: s.signer.Name(), Size: size, Root: root}, s.signer)
		if err != nil {
			return err
		}
		if err := tx.AddAuditCheckpoint(ctx, &recourse.AuditCheckpoint{Size: size, Root: root, Note: signed, CreatedAt: s.clock.Now().UTC()}); err != nil {
			return err
		}
		work = time.Since(locked)
		if s.beforeCommit != nil {
			s.beforeCommit()
		}
		n = len(recs)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sequence audit events: %w", err)
	}
	if full {
		// Also when another replica held the lock: it makes full looks
		// of its own, and this one's next is a second away.
		s.fullScan.Store(time.Now().UnixNano())
	}
	s.lastRound.Store(int64(n))
	if n > 0 {
		s.sequenced.Add(int64(n))
		s.size.Store(size)
		s.raiseFloor(last)
		if s.observe != nil {
			s.observe(RoundStats{Events: n, Work: work})
		}
	}
	return n, nil
}

// raiseFloor records that the rows up to row are sequenced; a concurrent
// round may have raised the floor past row already.
func (s *Sequencer) raiseFloor(row int64) {
	for {
		f := s.floor.Load()
		if row <= f || s.floor.CompareAndSwap(f, row) {
			return
		}
	}
}

// treeHead returns the size and root of the latest checkpoint (0 and the
// empty hash before the first).
func treeHead(ctx context.Context, tx recourse.Tx) (int64, tlog.Hash, error) {
	c, err := tx.LatestAuditCheckpoint(ctx)
	if errors.Is(err, recourse.ErrNotFound) {
		return 0, tlog.Hash{}, nil
	}
	if err != nil {
		return 0, tlog.Hash{}, err
	}
	return c.Size, hashOf(c.Root), nil
}

// frontierIndexes lists the stored-hash indexes of the complete subtrees
// that make up a tree of size n: all a new leaf, or the tree hash, needs
// from the existing tree.
func frontierIndexes(n int64) []int64 {
	var idx []int64
	for level := 62; level >= 0; level-- {
		if n&(1<<level) != 0 {
			idx = append(idx, tlog.StoredHashIndex(level, (n>>level)-1))
		}
	}
	return idx
}

// memHashes is a tlog.HashReader over hashes held in memory.
type memHashes map[int64]tlog.Hash

func (m memHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := m[x]
		if !ok {
			return nil, fmt.Errorf("stored hash %d: %w", x, recourse.ErrNotFound)
		}
		out[i] = h
	}
	return out, nil
}

// loadFrontier reads the frontier of a tree of size n into memory, with
// room for the hashes of adding more leaves (two a leaf on average). The
// sequencer runs for every few events under load: room for a full batch
// each time was a tenth of the server's allocations.
func loadFrontier(ctx context.Context, tx recourse.Tx, n int64, adding int) (memHashes, error) {
	idx := frontierIndexes(n)
	hs, err := tx.AuditHashes(ctx, idx)
	if err != nil {
		return nil, fmt.Errorf("read the tree's stored hashes: %w", err)
	}
	m := make(memHashes, len(idx)+2*adding+8)
	for i, x := range idx {
		m[x] = hashOf(hs[i])
	}
	return m, nil
}

// storeHashReader reads stored hashes from the store, for proofs.
type storeHashReader struct {
	ctx context.Context
	tx  recourse.Tx
}

func (r storeHashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	hs, err := r.tx.AuditHashes(r.ctx, indexes)
	if err != nil {
		return nil, err
	}
	out := make([]tlog.Hash, len(hs))
	for i, h := range hs {
		out[i] = hashOf(h)
	}
	return out, nil
}
