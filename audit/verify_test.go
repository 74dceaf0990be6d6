package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/store/storetest"
)

// execSQL runs statements against the raw database, as an attacker with
// database access would.
func execSQL(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// rewriteHashes recomputes every stored tree hash from the events as they
// now are, as an attacker covering their tracks would (they cannot sign).
func rewriteHashes(t *testing.T, st recourse.Store, db *sql.DB) {
	t.Helper()
	ctx := context.Background()
	recs, err := st.AuditRecords(ctx, 0, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	execSQL(t, db, `DELETE FROM audit_hashes`)
	r := memHashes{}
	var all [][32]byte
	for i, rec := range recs {
		hs, err := tlog.StoredHashes(int64(i), recourse.AuditLeaf(rec.Data, int64(i)), r)
		if err != nil {
			t.Fatal(err)
		}
		for j, h := range hs {
			r[tlog.StoredHashIndex(0, int64(i))+int64(j)] = h
			all = append(all, [32]byte(h))
		}
	}
	if err := st.AddAuditHashes(ctx, 0, all); err != nil {
		t.Fatal(err)
	}
}

// resign replaces the notes of the checkpoints of at least size from with
// notes signed by another key of the same name, over the roots of the
// events as they now are.
func resign(t *testing.T, st recourse.Store, db *sql.DB, from int64) {
	t.Helper()
	ctx := context.Background()
	other, _, _ := GenerateKey(testOrigin)
	signer := mustSigner(t, other)
	cps, err := st.AuditCheckpoints(ctx, from-1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cps {
		root, err := tlog.TreeHash(c.Size, storeHashReader{ctx: ctx, tx: st})
		if err != nil {
			t.Fatal(err)
		}
		n, err := SignCheckpoint(Checkpoint{Origin: testOrigin, Size: c.Size, Root: root}, signer)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `UPDATE audit_checkpoints SET note = $1, root = $2 WHERE size = $3`, string(n), root[:], c.Size); err != nil {
			t.Fatal(err)
		}
	}
}

func forgedEvent(t *testing.T) string {
	t.Helper()
	e := storetest.NewAuditEvent(recourse.ActionPasswordSet, "victim", 999)
	b, err := e.MarshalCanonical()
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "'", "''")
}

// TestVerifyDetectsTampering applies each kind of tampering to the
// 100-event log of buildLog and checks that Verify reports it at the right
// position.
func TestVerifyDetectsTampering(t *testing.T) {
	type tamper func(t *testing.T, st recourse.Store, db *sql.DB)
	tests := []struct {
		name     string
		tamper   tamper
		pos, end int64  // want Inconsistency{Position: pos, End: end}
		problem  string // a word the report must contain
		deep     bool   // only VerifyOptions.TreeHashes sees it
	}{
		{"untouched", func(*testing.T, recourse.Store, *sql.DB) {}, -1, 0, "", false},
		{"edit a field", func(t *testing.T, _ recourse.Store, db *sql.DB) {
			execSQL(t, db, `UPDATE audit_events SET data = replace(data, '"outcome":"success"', '"outcome":"failure"') WHERE seq = 41`)
		}, 41, 0, "changed", false},
		{"edit a field in a batch", func(t *testing.T, _ recourse.Store, db *sql.DB) {
			execSQL(t, db, `UPDATE audit_events SET data = replace(data, '"ip":"192.0.2.1"', '"ip":"203.0.113.9"') WHERE seq = 75`)
		}, 75, 0, "changed", false},
		{"edit a field and rewrite the tree hashes", func(t *testing.T, st recourse.Store, db *sql.DB) {
			execSQL(t, db, `UPDATE audit_events SET data = replace(data, '"outcome":"success"', '"outcome":"failure"') WHERE seq = 41`)
			rewriteHashes(t, st, db)
		}, 41, 42, "does not match the checkpoint at size 42", false},
		{"edit in a batch and rewrite the tree hashes", func(t *testing.T, st recourse.Store, db *sql.DB) {
			execSQL(t, db, `UPDATE audit_events SET data = replace(data, '"outcome":"success"', '"outcome":"failure"') WHERE seq = 75`)
			rewriteHashes(t, st, db)
		}, 70, 80, "does not match the checkpoint at size 80", false},
		{"delete a row", func(t *testing.T, _ recourse.Store, db *sql.DB) {
			execSQL(t, db, `DELETE FROM audit_events WHERE seq = 41`)
		}, 41, 0, "missing", false},
		{"insert a row", func(t *testing.T, _ recourse.Store, db *sql.DB) {
			execSQL(t, db, `UPDATE audit_events SET seq = -(seq + 1) WHERE seq >= 41`,
				`UPDATE audit_events SET seq = -seq WHERE seq < 0`,
				`INSERT INTO audit_events (seq, data) VALUES (41, '`+forgedEvent(t)+`')`)
		}, 41, 0, "changed", false},
		{"append a row", func(t *testing.T, _ recourse.Store, db *sql.DB) {
			execSQL(t, db, `INSERT INTO audit_events (seq, data) VALUES (100, '`+forgedEvent(t)+`')`)
		}, 100, 0, "no signed checkpoint covers it", false},
		{"swap two rows", func(t *testing.T, _ recourse.Store, db *sql.DB) {
			execSQL(t, db, `UPDATE audit_events SET seq = -1 WHERE seq = 41`,
				`UPDATE audit_events SET seq = 41 WHERE seq = 57`,
				`UPDATE audit_events SET seq = 57 WHERE seq = -1`)
		}, 41, 0, "moved", false},
		{"truncate", func(t *testing.T, _ recourse.Store, db *sql.DB) {
			execSQL(t, db, `DELETE FROM audit_events WHERE seq >= 90`)
		}, 90, 0, "truncated", false},
		{"re-sign with another key", func(t *testing.T, st recourse.Store, db *sql.DB) {
			execSQL(t, db, `UPDATE audit_events SET data = replace(data, '"outcome":"success"', '"outcome":"failure"') WHERE seq = 41`)
			rewriteHashes(t, st, db)
			resign(t, st, db, 42)
		}, 41, 42, "signed by another key", false},
		{"re-sign everything with another key", func(t *testing.T, st recourse.Store, db *sql.DB) {
			resign(t, st, db, 1)
		}, 0, 10, "signed by another key", false},
		{"edit a checkpoint row", func(t *testing.T, _ recourse.Store, db *sql.DB) {
			execSQL(t, db, `UPDATE audit_checkpoints SET size = 65 WHERE size = 70`)
		}, 60, 65, "differs from the note it stores", false},
		{"edit a checkpoint note", func(t *testing.T, _ recourse.Store, db *sql.DB) {
			if _, err := db.ExecContext(context.Background(), `UPDATE audit_checkpoints SET note = replace(note, $1, $2) WHERE size = 50`, "\n50\n", "\n49\n"); err != nil {
				t.Fatal(err)
			}
		}, 49, 50, "invalid signature", false},
		{"edit a stored tree hash only", func(t *testing.T, _ recourse.Store, db *sql.DB) {
			if _, err := db.ExecContext(context.Background(), `UPDATE audit_hashes SET hash = $1 WHERE idx = $2`, make([]byte, 32), tlog.StoredHashIndex(0, 63)); err != nil {
				t.Fatal(err)
			}
		}, 63, 0, "inclusion proofs would be wrong", true},
	}
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			for _, tc := range tests {
				for _, deep := range []bool{false, true} {
					t.Run(fmt.Sprintf("%s/tree_hashes=%v", tc.name, deep), func(t *testing.T) {
						tdb := b.open(t)
						buildLog(t, tdb.st)
						tc.tamper(t, tdb.st, tdb.db)
						rep, err := Verify(t.Context(), tdb.st, VerifyOptions{Verifier: testVerifier(t), PageSize: 7, TreeHashes: deep})
						if tc.pos < 0 || (tc.deep && !deep) {
							if err != nil || rep.Size != 100 || rep.Checkpoints != 28 {
								t.Fatalf("Verify = %+v, %v; want 100 events under 28 checkpoints", rep, err)
							}
							return
						}
						var inc *Inconsistency
						if !errors.As(err, &inc) {
							t.Fatalf("Verify = %+v, %v; want an inconsistency at %d", rep, err, tc.pos)
						}
						t.Log(err)
						if inc.Position != tc.pos || inc.End != tc.end || !strings.Contains(err.Error(), tc.problem) {
							t.Errorf("Verify: %v\nwant position %d (end %d) and %q", err, tc.pos, tc.end, tc.problem)
						}
					})
				}
			}
		})
	}
}

// TestVerifyDuplicatePosition needs the unique constraint out of the way,
// which only PostgreSQL allows.
func TestVerifyDuplicatePosition(t *testing.T) {
	tdb := openPostgres(t)
	buildLog(t, tdb.st)
	execSQL(t, tdb.db, `ALTER TABLE audit_events DROP CONSTRAINT audit_events_seq_key`,
		`INSERT INTO audit_events (seq, data) VALUES (41, '`+forgedEvent(t)+`')`)
	_, err := Verify(t.Context(), tdb.st, VerifyOptions{Verifier: testVerifier(t)})
	var inc *Inconsistency
	if !errors.As(err, &inc) || inc.Position != 41 {
		t.Fatalf("Verify = %v, want an inconsistency at 41", err)
	}
	// At the last position too.
	execSQL(t, tdb.db, `DELETE FROM audit_events WHERE seq = 41 AND row_id = (SELECT max(row_id) FROM audit_events)`,
		`INSERT INTO audit_events (seq, data) VALUES (99, '`+forgedEvent(t)+`')`)
	_, err = Verify(t.Context(), tdb.st, VerifyOptions{Verifier: testVerifier(t), PageSize: 7})
	if !errors.As(err, &inc) || inc.Position != 99 || !strings.Contains(err.Error(), "2 events hold") {
		t.Fatalf("Verify = %v, want two events at 99", err)
	}
}

// TestVerifyExternalCheckpoint: a checkpoint kept outside the database
// catches what the database alone cannot: a consistent truncation, and a
// rewrite by someone holding the signing key.
func TestVerifyExternalCheckpoint(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			tdb := b.open(t)
			buildLog(t, tdb.st)
			saved, err := tdb.st.LatestAuditCheckpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			at50, err := CheckpointAt(ctx, tdb.st, 50)
			if err != nil {
				t.Fatal(err)
			}
			for _, ext := range [][]byte{saved.Note, at50.Note} {
				rep, err := Verify(ctx, tdb.st, VerifyOptions{Verifier: testVerifier(t), External: ext})
				if err != nil || rep.External == nil {
					t.Fatalf("Verify with a matching saved checkpoint: %+v, %v", rep, err)
				}
			}
			otherS, _, _ := GenerateKey(testOrigin)
			forged, _ := SignCheckpoint(Checkpoint{Origin: testOrigin, Size: 100, Root: tlog.Hash{1}}, mustSigner(t, otherS))
			if _, err := Verify(ctx, tdb.st, VerifyOptions{Verifier: testVerifier(t), External: forged}); err == nil || !strings.Contains(err.Error(), "saved checkpoint does not verify") {
				t.Errorf("a forged saved checkpoint: %v", err)
			}

			// An insider with the key rewrites event 41 and re-signs: the
			// database alone verifies, the saved checkpoint does not.
			execSQL(t, tdb.db, `UPDATE audit_events SET data = replace(data, '"outcome":"success"', '"outcome":"failure"') WHERE seq = 41`)
			rewriteHashes(t, tdb.st, tdb.db)
			resignWithKey(t, tdb.st, tdb.db, testSigner(t))
			if _, err := Verify(ctx, tdb.st, VerifyOptions{Verifier: testVerifier(t)}); err != nil {
				t.Fatalf("the re-signed database alone: %v", err)
			}
			_, err = Verify(ctx, tdb.st, VerifyOptions{Verifier: testVerifier(t), External: at50.Note})
			var inc *Inconsistency
			if !errors.As(err, &inc) || inc.Position != 0 || inc.End != 50 || !strings.Contains(err.Error(), "saved elsewhere") {
				t.Fatalf("rewrite under a saved checkpoint: %v", err)
			}

			// A consistent truncation to 90: events, hashes and checkpoints.
			execSQL(t, tdb.db, `DELETE FROM audit_events WHERE seq >= 90`,
				`DELETE FROM audit_checkpoints WHERE size > 90`)
			if _, err := tdb.db.ExecContext(ctx, `DELETE FROM audit_hashes WHERE idx >= $1`, tlog.StoredHashIndex(0, 90)); err != nil {
				t.Fatal(err)
			}
			if _, err := Verify(ctx, tdb.st, VerifyOptions{Verifier: testVerifier(t)}); err != nil {
				t.Fatalf("the truncated database alone: %v", err)
			}
			_, err = Verify(ctx, tdb.st, VerifyOptions{Verifier: testVerifier(t), External: saved.Note})
			if !errors.As(err, &inc) || inc.Position != 90 || !strings.Contains(err.Error(), "truncated") {
				t.Fatalf("truncation under a saved checkpoint: %v", err)
			}
		})
	}
}

// resignWithKey re-signs every checkpoint over the stored tree as it now is.
func resignWithKey(t *testing.T, st recourse.Store, db *sql.DB, signer interface {
	Name() string
	KeyHash() uint32
	Sign([]byte) ([]byte, error)
}) {
	t.Helper()
	ctx := context.Background()
	cps, err := st.AuditCheckpoints(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cps {
		root, err := tlog.TreeHash(c.Size, storeHashReader{ctx: ctx, tx: st})
		if err != nil {
			t.Fatal(err)
		}
		n, err := SignCheckpoint(Checkpoint{Origin: signer.Name(), Size: c.Size, Root: root}, signer)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `UPDATE audit_checkpoints SET note = $1, root = $2 WHERE size = $3`, string(n), root[:], c.Size); err != nil {
			t.Fatal(err)
		}
	}
}

func TestVerifyEmptyAndPending(t *testing.T) {
	ctx := t.Context()
	st := openSQLite(t).st
	rep, err := Verify(ctx, st, VerifyOptions{Verifier: testVerifier(t)})
	if err != nil || rep.Size != 0 {
		t.Fatalf("empty log: %+v, %v", rep, err)
	}
	appendEvents(t, st, 3, 0)
	rep, err = Verify(ctx, st, VerifyOptions{Verifier: testVerifier(t)})
	if err != nil || rep.Size != 0 || rep.Unsequenced != 3 {
		t.Fatalf("pending events: %+v, %v", rep, err)
	}
	if _, err := Verify(ctx, st, VerifyOptions{}); err == nil {
		t.Error("Verify without a key succeeded")
	}
}

func TestFrontierMatchesTlog(t *testing.T) {
	var f frontier
	r := memHashes{}
	for i := range int64(300) {
		leaf := tlog.RecordHash([]byte{byte(i), byte(i >> 8)})
		got := f.append(leaf, nil)
		want, err := tlog.StoredHashesForRecordHash(i, leaf, r)
		if err != nil {
			t.Fatal(err)
		}
		for j, h := range want {
			r[tlog.StoredHashIndex(0, i)+int64(j)] = h
		}
		if len(got) != len(want) {
			t.Fatalf("leaf %d: %d stored hashes, tlog has %d", i, len(got), len(want))
		}
		for j := range got {
			if got[j] != want[j] {
				t.Fatalf("leaf %d: stored hash %d differs", i, j)
			}
		}
		root, _ := tlog.TreeHash(i+1, r)
		if f.root() != root {
			t.Fatalf("root at size %d differs from tlog.TreeHash", i+1)
		}
	}
}
