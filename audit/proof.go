package audit

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/recourse/recourse"
)

// InclusionProof shows that one event is in the log at a position, under a
// signed checkpoint. Anyone holding the log's verifier key can check it
// offline (Check, or the few lines in docs/audit.md).
type InclusionProof struct {
	// Event is the leaf: the event's canonical encoding with its position,
	// exactly what `recourse audit export` writes for it.
	Event string `json:"event"`
	// Position is the event's index in the log.
	Position int64 `json:"position"`
	// Proof is the RFC 6962 audit path, as tlog.ProveRecord returns it.
	Proof tlog.RecordProof `json:"proof"`
	// Checkpoint is the signed checkpoint the proof leads to.
	Checkpoint string `json:"checkpoint"`
}

// ConsistencyProof shows that the log signed by Old is a prefix of the log
// signed by New: nothing was changed or removed in between.
type ConsistencyProof struct {
	Old   string         `json:"old"`
	New   string         `json:"new"`
	Proof tlog.TreeProof `json:"proof"`
}

// ProveInclusion returns the proof that the event is in the log under the
// latest checkpoint. ENOTFOUND when there is no such event; EINVALID when it
// is not sequenced yet.
func ProveInclusion(ctx context.Context, st recourse.Tx, eventID string) (*InclusionProof, error) {
	rec, err := st.AuditRecordByEventID(ctx, eventID)
	if errors.Is(err, recourse.ErrNotFound) {
		return nil, recourse.Errorf(recourse.ENOTFOUND, "No audit event %q.", eventID)
	}
	if err != nil {
		return nil, fmt.Errorf("prove: %w", err)
	}
	if rec.Seq == nil {
		return nil, recourse.Errorf(recourse.EINVALID, "Audit event %q is not sequenced yet; try again in a moment.", eventID)
	}
	head, err := st.LatestAuditCheckpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("prove: latest checkpoint: %w", err)
	}
	if *rec.Seq >= head.Size {
		return nil, recourse.Errorf(recourse.EINVALID, "Audit event %q is not covered by a checkpoint yet.", eventID)
	}
	proof, err := tlog.ProveRecord(head.Size, *rec.Seq, storeHashReader{ctx: ctx, tx: st})
	if err != nil {
		return nil, fmt.Errorf("prove: %w", err)
	}
	return &InclusionProof{
		Event: string(recourse.AuditLeaf(rec.Data, *rec.Seq)), Position: *rec.Seq, Proof: proof, Checkpoint: string(head.Note),
	}, nil
}

// Check verifies the proof with the log's key and returns the checkpoint it
// rests on.
func (p *InclusionProof) Check(v note.Verifier) (Checkpoint, error) {
	c, err := OpenCheckpoint([]byte(p.Checkpoint), v)
	if err != nil {
		return Checkpoint{}, err
	}
	e, err := recourse.ParseAuditEvent([]byte(p.Event))
	if err != nil {
		return Checkpoint{}, err
	}
	if e.Seq == nil || *e.Seq != p.Position {
		return Checkpoint{}, fmt.Errorf("the event does not carry position %d", p.Position)
	}
	if err := tlog.CheckRecord(p.Proof, c.Size, c.Root, p.Position, tlog.RecordHash([]byte(p.Event))); err != nil {
		return Checkpoint{}, fmt.Errorf("inclusion proof: %w", err)
	}
	return c, nil
}

// ProveConsistency returns the proof that the tree signed by oldNote is a
// prefix of the tree signed by newNote. The notes are signed checkpoints,
// from the database or saved elsewhere; the proof is built from the stored
// tree, so a database that no longer contains the old tree cannot produce
// one that checks.
func ProveConsistency(ctx context.Context, st recourse.Tx, oldNote, newNote []byte) (*ConsistencyProof, error) {
	oldC, err := ParseCheckpoint(noteText(oldNote))
	if err != nil {
		return nil, fmt.Errorf("old checkpoint: %w", err)
	}
	newC, err := ParseCheckpoint(noteText(newNote))
	if err != nil {
		return nil, fmt.Errorf("new checkpoint: %w", err)
	}
	if oldC.Size < 1 || oldC.Size > newC.Size {
		return nil, recourse.Errorf(recourse.EINVALID, "The old checkpoint (size %d) must be non-empty and no larger than the new one (size %d).", oldC.Size, newC.Size)
	}
	proof, err := tlog.ProveTree(newC.Size, oldC.Size, storeHashReader{ctx: ctx, tx: st})
	if err != nil {
		return nil, fmt.Errorf("prove consistency: %w", err)
	}
	return &ConsistencyProof{Old: string(oldNote), New: string(newNote), Proof: proof}, nil
}

// Check verifies both checkpoints with the log's key and the proof between
// them, and returns the checkpoints.
func (p *ConsistencyProof) Check(v note.Verifier) (oldC, newC Checkpoint, err error) {
	if oldC, err = OpenCheckpoint([]byte(p.Old), v); err != nil {
		return oldC, newC, fmt.Errorf("old checkpoint: %w", err)
	}
	if newC, err = OpenCheckpoint([]byte(p.New), v); err != nil {
		return oldC, newC, fmt.Errorf("new checkpoint: %w", err)
	}
	if oldC.Size > newC.Size {
		return oldC, newC, errors.New("the old checkpoint is larger than the new one")
	}
	if err := tlog.CheckTree(p.Proof, newC.Size, newC.Root, oldC.Size, oldC.Root); err != nil {
		return oldC, newC, fmt.Errorf("consistency proof: %w", err)
	}
	return oldC, newC, nil
}

// CheckpointAt returns the stored signed checkpoint of exactly this size.
func CheckpointAt(ctx context.Context, st recourse.Tx, size int64) (*recourse.AuditCheckpoint, error) {
	cps, err := st.AuditCheckpoints(ctx, size-1, 1)
	if err != nil {
		return nil, err
	}
	if len(cps) == 0 || cps[0].Size != size {
		return nil, recourse.Errorf(recourse.ENOTFOUND, "No checkpoint of size %d is stored.", size)
	}
	return cps[0], nil
}
