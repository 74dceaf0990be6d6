package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/recourse/recourse"
)

// Inconsistency is the error Verify returns when the stored log does not
// match what was signed: an event edited, deleted, inserted or moved, a
// truncation, a checkpoint forged or re-signed. Position is the first
// position that is wrong; every event before it is intact. When the damage
// can be placed only within the events one checkpoint signed (because the
// stored tree hashes were rewritten as well), End is the end of that range,
// exclusive; otherwise End is 0.
type Inconsistency struct {
	Position int64
	End      int64
	Problem  string
}

func (e *Inconsistency) Error() string {
	if e.End > e.Position+1 {
		return fmt.Sprintf("positions %d–%d: %s", e.Position, e.End-1, e.Problem)
	}
	return fmt.Sprintf("position %d: %s", e.Position, e.Problem)
}

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// Verifier is the log's public key. Required.
	Verifier note.Verifier
	// External is a signed checkpoint kept outside the database (by a
	// witness, a SIEM, an auditor). The database must contain the tree it
	// signs, so a database rewritten or rolled back as a whole fails.
	External []byte
	// TreeHashes also compares every stored tree hash with the recomputed
	// one. Without it, stored hashes are read only to place a failure
	// precisely; a stored hash altered while the events are intact breaks
	// only the inclusion proofs built from it, which their checkers catch.
	TreeHashes bool
	// PageSize bounds the rows read per query (default 10000).
	PageSize int
}

// Report is what a successful Verify checked.
type Report struct {
	// Size is the number of events verified: the latest checkpoint's size.
	Size int64
	// Root is the tree hash at Size.
	Root tlog.Hash
	// Checkpoints is the number of signed checkpoints checked.
	Checkpoints int
	// Unsequenced counts events committed but not yet in the tree.
	Unsequenced int64
	// External is the external checkpoint, when one was given.
	External *Checkpoint
}

// Verify recomputes the Merkle tree from the stored events, independently of
// the stored tree hashes, and checks it against every signed checkpoint:
// each checkpoint's signature, and the recomputed root at its size. It also
// checks that positions run 0, 1, 2, … without gap or duplicate, and that no
// sequenced event lies beyond the latest checkpoint (and, with TreeHashes,
// that the stored tree hashes proofs are built from match the events). The
// first problem is returned as an *Inconsistency, placed as precisely as
// the stored data allows; other errors are failures to read.
//
// Verify reads on several connections of st at once. It may run while the
// service writes: it checks the log up to the latest checkpoint it sees
// when it starts; what is sequenced meanwhile is left to the next run.
func Verify(ctx context.Context, st recourse.Store, o VerifyOptions) (*Report, error) {
	if o.Verifier == nil {
		return nil, errors.New("verify: a verifier key is required")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	v := &verifier{ctx: ctx, st: st, key: o.Verifier, page: o.PageSize, deep: o.TreeHashes, storedBad: -1}
	if v.page <= 0 {
		v.page = 10_000
	}
	rep := &Report{}
	if o.External != nil {
		ext, err := OpenCheckpoint(o.External, o.Verifier)
		if err != nil {
			return nil, fmt.Errorf("the saved checkpoint does not verify: %w", err)
		}
		rep.External, v.external = &ext, &ext
	}
	head, err := st.LatestAuditCheckpoint(ctx)
	switch {
	case errors.Is(err, recourse.ErrNotFound):
		head = &recourse.AuditCheckpoint{}
	case err != nil:
		return nil, fmt.Errorf("verify: %w", err)
	}
	v.end = head.Size
	if v.external != nil && v.external.Size > v.end {
		return nil, &Inconsistency{Position: v.end, Problem: fmt.Sprintf(
			"the log ends here, but the checkpoint saved elsewhere covers %d events (truncated or rolled back)", v.external.Size)}
	}
	// The events and the stored hashes are read ahead on connections of
	// their own while the tree is recomputed.
	v.readRecords()
	if v.deep {
		v.hashPages = make(chan hashPage, 2)
		go v.readHashes()
	}
	if err := v.walk(); err != nil {
		return nil, err
	}
	if err := v.checkTail(); err != nil {
		return nil, err
	}
	rep.Size, rep.Root, rep.Checkpoints = v.end, v.tree.root(), v.checked
	if rep.Unsequenced, err = st.AuditBacklog(ctx); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	return rep, nil
}

type verifier struct {
	ctx      context.Context
	st       recourse.Store
	key      note.Verifier
	page     int
	external *Checkpoint
	end      int64 // positions [0, end) are verified

	tree     frontier
	produced []tlog.Hash
	// leaves are the leaf hashes recomputed since the last checkpoint
	// that verified, to place a failure among them.
	leaves []tlog.Hash
	deep   bool

	// The streams, each read a page at a time; events and hashes ahead,
	// by readRecords and readHashes.
	recPages  chan chan recordPage
	recs      []leafEntry
	recsDone  bool
	hashPages chan hashPage
	hashIdx   []int64
	hashes    [][32]byte
	hashDone  bool
	hashNext  int64 // the next stored-hash index to compare
	cps       []*recourse.AuditCheckpoint
	cpsDone   bool
	cpAfter   int64

	prevGood  int64 // the size of the last checkpoint that verified
	checked   int
	storedBad int64 // first position whose stored hashes differ from the events; -1 if none
	storedMsg string
}

// walk checks positions 0 … end-1 and every checkpoint on the way.
func (v *verifier) walk() error {
	for p := int64(0); p < v.end; p++ {
		r, err := v.nextRecord()
		if err != nil {
			return err
		}
		switch {
		case r == nil:
			return v.fail(p, 0, fmt.Sprintf("missing: the stored log ends here, but the latest checkpoint covers %d events (truncated?)", v.end))
		case r.seq > p:
			return v.fail(p, 0, fmt.Sprintf("missing: no event holds this position, the next one holds %d (deleted?)", r.seq))
		case r.seq < p:
			return v.fail(r.seq, 0, v.duplicate(r.seq))
		}
		lh := r.leaf
		v.produced = v.tree.append(lh, v.produced[:0])
		v.leaves = append(v.leaves, lh)
		if v.deep {
			if err := v.compareStored(p); err != nil {
				return err
			}
		}
		size := p + 1
		if v.external != nil && v.external.Size == size && v.tree.root() != v.external.Root {
			// The database's own checkpoints may all verify (re-signed by
			// someone holding the key), so none of them bounds the damage.
			return v.fail(0, size, "the log was rewritten: the recomputed tree does not match the checkpoint saved elsewhere")
		}
		cp, err := v.checkpointAt(size)
		if err != nil {
			return err
		}
		if cp != nil {
			if err := v.checkCheckpoint(cp); err != nil {
				return err
			}
		}
	}
	// A second event at the last position would otherwise go unseen.
	r, err := v.nextRecord()
	if err != nil {
		return err
	}
	if r != nil && r.seq < v.end {
		return v.fail(r.seq, 0, v.duplicate(r.seq))
	}
	return nil
}

// duplicate describes two events holding one position.
func (v *verifier) duplicate(seq int64) string {
	var ids []string
	if recs, err := v.st.AuditRecords(v.ctx, seq, 4); err == nil {
		for _, r := range recs {
			if *r.Seq == seq {
				ids = append(ids, r.EventID())
			}
		}
	}
	return fmt.Sprintf("%d events hold this position (%s: inserted?)", max(len(ids), 2), strings.Join(ids, ", "))
}

// checkTail refuses sequenced events that no checkpoint covers.
func (v *verifier) checkTail() error {
	extra, err := v.st.AuditRecords(v.ctx, v.end, 1)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if len(extra) == 0 {
		return nil
	}
	// The sequencer may have committed a round since Verify started: only
	// events beyond the checkpoint now latest are out of place.
	latest, err := v.st.LatestAuditCheckpoint(v.ctx)
	if err != nil && !errors.Is(err, recourse.ErrNotFound) {
		return fmt.Errorf("verify: %w", err)
	}
	covered := int64(0)
	if latest != nil {
		covered = latest.Size
	}
	if *extra[0].Seq >= covered {
		return &Inconsistency{Position: *extra[0].Seq, Problem: fmt.Sprintf(
			"event %s is sequenced here, but no signed checkpoint covers it (inserted?)", extra[0].EventID())}
	}
	if latest != nil && latest.Size > v.end {
		extra, err = v.st.AuditRecords(v.ctx, latest.Size, 1)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		if len(extra) > 0 {
			return &Inconsistency{Position: *extra[0].Seq, Problem: fmt.Sprintf(
				"event %s is sequenced here, but no signed checkpoint covers it (inserted?)", extra[0].EventID())}
		}
	}
	return nil
}

type recordPage struct {
	recs []leafEntry
	err  error
}

type hashPage struct {
	idx    []int64
	hashes [][32]byte
	err    error
	last   bool
}

// send hands a page to the walk; false when the walk has ended.
func send[T any](ctx context.Context, ch chan<- T, page T) bool {
	select {
	case ch <- page:
		return true
	case <-ctx.Done():
		return false
	}
}

// leafEntry is a stored event as the walk needs it: its position and its
// leaf hash, computed by the readers.
type leafEntry struct {
	seq  int64
	leaf tlog.Hash
}

// readRecords starts reading the events at positions below end, a range of
// positions at a time, on two connections at once; the readers also hash
// the leaves. The walk receives the ranges in order through recPages, each
// on its own channel; at most a few are read ahead. A range holds every
// event whose position falls in it, so a duplicated position shows
// wherever it is.
func (v *verifier) readRecords() {
	const readers = 2
	type fetch struct {
		from, to int64
		out      chan recordPage
	}
	v.recPages = make(chan chan recordPage, 2*readers)
	fetches := make(chan fetch)
	go func() {
		defer close(v.recPages)
		defer close(fetches)
		for from := int64(0); from < v.end; from += int64(v.page) {
			f := fetch{from: from, to: min(from+int64(v.page), v.end), out: make(chan recordPage, 1)}
			if !send(v.ctx, v.recPages, f.out) || !send(v.ctx, fetches, f) {
				return
			}
		}
	}()
	for range readers {
		go func() {
			var leaf []byte
			for f := range fetches {
				entries := make([]leafEntry, 0, f.to-f.from)
				err := v.st.ScanAuditRecords(v.ctx, f.from, f.to, func(seq int64, data []byte) error {
					leaf = recourse.AppendAuditLeaf(leaf[:0], data, seq)
					entries = append(entries, leafEntry{seq: seq, leaf: tlog.RecordHash(leaf)})
					return nil
				})
				if err != nil {
					err = fmt.Errorf("verify: read events: %w", err)
				}
				f.out <- recordPage{recs: entries, err: err}
			}
		}()
	}
}

// readHashes reads the stored tree hashes of the tree of size end, in
// index order, a page at a time.
func (v *verifier) readHashes() {
	end := tlog.StoredHashIndex(0, v.end)
	for from := int64(0); ; from += int64(2 * v.page) {
		to := min(from+int64(2*v.page), end)
		idx, hs, err := v.st.AuditHashRange(v.ctx, from, to)
		if err != nil {
			err = fmt.Errorf("verify: read tree hashes: %w", err)
		}
		done := err != nil || to >= end
		if !send(v.ctx, v.hashPages, hashPage{idx: idx, hashes: hs, err: err, last: done}) || done {
			return
		}
	}
}

func (v *verifier) nextRecord() (*leafEntry, error) {
	for len(v.recs) == 0 && !v.recsDone {
		out, ok := <-v.recPages
		if !ok {
			v.recsDone = true
			break
		}
		page := <-out
		if page.err != nil {
			return nil, page.err
		}
		v.recs = page.recs
	}
	if len(v.recs) == 0 {
		return nil, nil
	}
	r := &v.recs[0]
	v.recs = v.recs[1:]
	return r, nil
}

// compareStored compares the hashes the new leaf produced with the stored
// ones and remembers the first position where they differ.
func (v *verifier) compareStored(p int64) error {
	for _, h := range v.produced {
		idx := v.hashNext
		v.hashNext++
		stored, ok, err := v.storedHash(idx)
		if err != nil {
			return err
		}
		if v.storedBad >= 0 {
			continue
		}
		switch {
		case !ok:
			v.storedBad, v.storedMsg = p, fmt.Sprintf("stored tree hash %d is missing", idx)
		case tlog.Hash(stored) != h:
			v.storedBad, v.storedMsg = p, fmt.Sprintf("stored tree hash %d differs from the recomputed one", idx)
		}
	}
	return nil
}

// storedHash returns the stored hash at idx; indexes are asked in order.
func (v *verifier) storedHash(idx int64) ([32]byte, bool, error) {
	for {
		for len(v.hashIdx) > 0 && v.hashIdx[0] < idx {
			v.hashIdx, v.hashes = v.hashIdx[1:], v.hashes[1:]
		}
		if len(v.hashIdx) > 0 {
			if v.hashIdx[0] == idx {
				return v.hashes[0], true, nil
			}
			return [32]byte{}, false, nil
		}
		if v.hashDone {
			return [32]byte{}, false, nil
		}
		page := <-v.hashPages
		if page.err != nil {
			return [32]byte{}, false, page.err
		}
		v.hashIdx, v.hashes, v.hashDone = page.idx, page.hashes, page.last
	}
}

// checkpointAt returns the stored checkpoint of exactly this size, if any.
func (v *verifier) checkpointAt(size int64) (*recourse.AuditCheckpoint, error) {
	for {
		if len(v.cps) > 0 {
			if v.cps[0].Size == size {
				c := v.cps[0]
				v.cps = v.cps[1:]
				return c, nil
			}
			return nil, nil
		}
		if v.cpsDone {
			return nil, nil
		}
		cps, err := v.st.AuditCheckpoints(v.ctx, v.cpAfter, v.page)
		if err != nil {
			return nil, fmt.Errorf("verify: read checkpoints: %w", err)
		}
		v.cpsDone = len(cps) < v.page
		if len(cps) > 0 {
			v.cpAfter = cps[len(cps)-1].Size
		}
		v.cps = cps
		if len(cps) == 0 {
			return nil, nil
		}
	}
}

// checkCheckpoint checks a stored checkpoint's signature, that its columns
// say what its note says, and the recomputed root at its size.
func (v *verifier) checkCheckpoint(c *recourse.AuditCheckpoint) error {
	body, err := OpenCheckpoint(c.Note, v.key)
	if err != nil {
		return v.fail(v.prevGood, c.Size, fmt.Sprintf("the checkpoint at size %d %s", c.Size, v.whyUnverified(c.Note, err)))
	}
	if body.Size != c.Size || body.Root != hashOf(c.Root) {
		return v.fail(v.prevGood, c.Size, fmt.Sprintf("the checkpoint row at size %d differs from the note it stores (size %d)", c.Size, body.Size))
	}
	if v.tree.root() != body.Root {
		return v.fail(v.prevGood, c.Size, fmt.Sprintf(
			"an event in these positions was changed, inserted, deleted or moved: the recomputed tree does not match the checkpoint at size %d", c.Size))
	}
	if v.storedBad >= 0 {
		// The events are those signed; the stored tree hashes are not.
		return &Inconsistency{Position: v.storedBad, Problem: v.storedMsg + " (the events match the signed checkpoint; inclusion proofs would be wrong)"}
	}
	v.prevGood = c.Size
	v.leaves = v.leaves[:0]
	v.checked++
	return nil
}

// whyUnverified explains why a stored checkpoint note did not verify.
func (v *verifier) whyUnverified(msg []byte, err error) string {
	if _, perr := ParseCheckpoint(noteText(msg)); perr != nil {
		return "is not a checkpoint: " + perr.Error()
	}
	var unverified *note.UnverifiedNoteError
	if errors.As(err, &unverified) {
		for _, sig := range unverified.Note.UnverifiedSigs {
			if sig.Name == v.key.Name() && sig.Hash != v.key.KeyHash() {
				return fmt.Sprintf("is signed by another key named %s (key hash %08x, not %08x): re-signed?", sig.Name, sig.Hash, v.key.KeyHash())
			}
		}
		return "carries no signature by this log's key " + v.key.Name()
	}
	var invalid *note.InvalidSignatureError
	if errors.As(err, &invalid) {
		return "has an invalid signature: its text was changed after signing"
	}
	return "does not verify: " + err.Error()
}

// fail reports the first inconsistency. A position whose event disagrees
// with the stored tree hashes comes first when it lies earlier and the
// stored hashes are the authentic ones (they match the next signed
// checkpoint): then it is exactly where the log was changed.
func (v *verifier) fail(pos, end int64, problem string) error {
	if v.storedBad < 0 && !v.deep {
		v.locate(max(pos+1, end))
	}
	if v.storedBad >= 0 && v.storedBad < pos+max(end-pos, 1) && v.storedBad >= v.prevGood {
		if ok, size := v.storedTreeAuthentic(); ok {
			return &Inconsistency{Position: v.storedBad, Problem: fmt.Sprintf(
				"event changed, inserted or moved: its leaf hash is not the one sequenced at this position, which the checkpoint at size %d signs", size)}
		}
	}
	return &Inconsistency{Position: pos, End: end, Problem: problem}
}

// locate compares the leaf hashes recomputed since the last good
// checkpoint, up to position limit, with the stored ones, and records the
// first that differs in storedBad.
func (v *verifier) locate(limit int64) {
	from := v.prevGood
	to := min(limit, from+int64(len(v.leaves)))
	if to <= from {
		return
	}
	idx, hs, err := v.st.AuditHashRange(v.ctx, tlog.StoredHashIndex(0, from), tlog.StoredHashIndex(0, to-1)+1)
	if err != nil {
		return
	}
	stored := make(map[int64][32]byte, len(idx))
	for i, x := range idx {
		stored[x] = hs[i]
	}
	for p := from; p < to; p++ {
		h, ok := stored[tlog.StoredHashIndex(0, p)]
		if !ok || tlog.Hash(h) != v.leaves[p-from] {
			v.storedBad = p
			return
		}
	}
}

// storedTreeAuthentic reports whether the stored tree hashes at the next
// checkpoint's size reproduce that checkpoint's signed root.
func (v *verifier) storedTreeAuthentic() (bool, int64) {
	cps, err := v.st.AuditCheckpoints(v.ctx, max(v.prevGood, v.storedBad), 1)
	if err != nil || len(cps) == 0 {
		return false, 0
	}
	body, err := OpenCheckpoint(cps[0].Note, v.key)
	if err != nil {
		return false, 0
	}
	root, err := tlog.TreeHash(body.Size, storeHashReader{ctx: v.ctx, tx: v.st})
	return err == nil && root == body.Root, body.Size
}

// frontier is the right edge of a Merkle tree: the roots of its complete
// subtrees, largest first. It grows a leaf at a time in constant memory per
// level and yields the same stored hashes, in the same order, as
// tlog.StoredHashes.
type frontier struct {
	n      int64
	hashes []tlog.Hash
}

// append adds leaf hash h and appends the hashes it completes (the leaf,
// then each new parent) to out.
func (f *frontier) append(h tlog.Hash, out []tlog.Hash) []tlog.Hash {
	out = append(out, h)
	for n := f.n; n&1 == 1; n >>= 1 {
		left := f.hashes[len(f.hashes)-1]
		f.hashes = f.hashes[:len(f.hashes)-1]
		h = tlog.NodeHash(left, h)
		out = append(out, h)
	}
	f.hashes = append(f.hashes, h)
	f.n++
	return out
}

// root returns the RFC 6962 tree hash of the leaves so far.
func (f *frontier) root() tlog.Hash {
	if len(f.hashes) == 0 {
		return tlog.Hash{}
	}
	h := f.hashes[len(f.hashes)-1]
	for i := len(f.hashes) - 2; i >= 0; i-- {
		h = tlog.NodeHash(f.hashes[i], h)
	}
	return h
}
