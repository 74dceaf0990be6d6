package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/recourse/recourse"
)

// Export formats.
const (
	// FormatJSONL writes each event's canonical encoding with its position,
	// one per line: exactly the Merkle tree's leaf, so a line can be checked
	// against an inclusion proof as is.
	FormatJSONL = "jsonl"
	// FormatOCSF writes one OCSF event object per line (see OCSF).
	FormatOCSF = "ocsf"
)

// ExportOptions select and format exported events.
type ExportOptions struct {
	// Since and Until bound event times (Since <= time < Until); zero is
	// unbounded.
	Since, Until time.Time
	// FromSeq is the first position to consider.
	FromSeq int64
	// Format is FormatJSONL (default) or FormatOCSF.
	Format string
	// Product names Recourse in OCSF metadata.
	Product Product
}

// exportPage is how many events one query reads.
const exportPage = 1000

// Export writes the sequenced events matching o to w, one per line, in
// position order. It returns how many it wrote and the position after the
// last one it considered (where a later export can continue).
func Export(ctx context.Context, st recourse.Tx, w io.Writer, o ExportOptions) (n int64, next int64, err error) {
	if o.Format == "" {
		o.Format = FormatJSONL
	}
	if o.Format != FormatJSONL && o.Format != FormatOCSF {
		return 0, o.FromSeq, recourse.FieldError("format", "must be %s or %s", FormatJSONL, FormatOCSF)
	}
	bw := bufio.NewWriter(w)
	next = o.FromSeq
	for {
		evs, err := st.ListAuditEvents(ctx, recourse.AuditFilter{Since: o.Since, Until: o.Until, FromSeq: next, Limit: exportPage})
		if err != nil {
			return n, next, fmt.Errorf("export: %w", err)
		}
		for _, e := range evs {
			line, err := encodeEvent(e, o)
			if err != nil {
				return n, next, err
			}
			line = append(line, '\n')
			if _, err := bw.Write(line); err != nil {
				return n, next, fmt.Errorf("export: %w", err)
			}
			n++
			next = *e.Seq + 1
		}
		if len(evs) < exportPage {
			break
		}
	}
	if err := bw.Flush(); err != nil {
		return n, next, fmt.Errorf("export: %w", err)
	}
	return n, next, nil
}

func encodeEvent(e *recourse.AuditEvent, o ExportOptions) ([]byte, error) {
	if o.Format == FormatOCSF {
		b, err := json.Marshal(OCSF(e, o.Product))
		if err != nil {
			return nil, fmt.Errorf("export: encode OCSF: %w", err)
		}
		return b, nil
	}
	return e.MarshalCanonical()
}

// Tail writes events as Export does, starting at position from, then keeps
// polling every interval for newly sequenced events until ctx ends, when
// it returns nil.
func Tail(ctx context.Context, st recourse.Tx, w io.Writer, from int64, interval time.Duration, o ExportOptions) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	o.FromSeq = from
	for {
		_, next, err := Export(ctx, st, w, o)
		if err != nil && ctx.Err() == nil {
			return err
		}
		o.FromSeq = next
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// WithCommitHook returns st that calls fn after each commit that stored an
// audit event (in InTx or directly), so a Sequencer can be nudged
// (Sequencer.Nudge) instead of waiting for its next tick.
func WithCommitHook(st recourse.Store, fn func()) recourse.Store {
	return hookedStore{Store: st, fn: fn}
}

type hookedStore struct {
	recourse.Store
	fn func()
}

func (h hookedStore) AddAuditEvent(ctx context.Context, e *recourse.AuditEvent) error {
	err := h.Store.AddAuditEvent(ctx, e)
	if err == nil {
		h.fn()
	}
	return err
}

func (h hookedStore) InTx(ctx context.Context, fn func(tx recourse.Tx) error) error {
	added := false
	err := h.Store.InTx(ctx, func(tx recourse.Tx) error {
		return fn(hookedTx{Tx: tx, added: &added})
	})
	if err == nil && added {
		h.fn()
	}
	return err
}

type hookedTx struct {
	recourse.Tx
	added *bool
}

func (t hookedTx) AddAuditEvent(ctx context.Context, e *recourse.AuditEvent) error {
	err := t.Tx.AddAuditEvent(ctx, e)
	if err == nil {
		*t.added = true
	}
	return err
}

// Unwrap returns the wrapped store (the job queue needs its database).
func (h hookedStore) Unwrap() recourse.Store { return h.Store }

// Unwrap returns the wrapped transaction (the job queue inserts in it).
func (t hookedTx) Unwrap() recourse.Tx { return t.Tx }
