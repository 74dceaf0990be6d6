// Package audit makes Recourse's audit log tamper-evident and exportable.
//
// Events are written by the service in the transaction of the change they
// describe (recourse.Tx.AddAuditEvent), unsequenced. A Sequencer gives them
// positions in an append-only Merkle tree (RFC 6962 hashing, as
// golang.org/x/mod/sumdb/tlog computes it) in batches, and signs a
// checkpoint of the tree (C2SP tlog-checkpoint in a C2SP signed note,
// Ed25519) for each batch. Verify recomputes the tree from the stored events
// and checks every checkpoint; ProveInclusion and ProveConsistency produce
// proofs anyone can check offline with the public key. Export writes events
// as JSON lines or OCSF events for a SIEM.
//
// docs/audit.md describes the format and the procedure an auditor follows.
package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is the signed statement of the log: its origin (the name of
// the signing key), its size and the Merkle tree hash over its first Size
// events. Its text form is the C2SP tlog-checkpoint body:
//
//	<origin>
//	<size in decimal>
//	<root hash in base64>
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
}

// Text returns the checkpoint body that is signed.
func (c Checkpoint) Text() []byte {
	return fmt.Appendf(nil, "%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root[:]))
}

var errMalformedCheckpoint = errors.New("malformed checkpoint")

// ParseCheckpoint parses a checkpoint body. Extension lines after the root
// hash are allowed by the format and ignored.
func ParseCheckpoint(text []byte) (Checkpoint, error) {
	lines := strings.SplitN(string(text), "\n", 4)
	if len(lines) < 4 || len(text) > 1<<16 {
		return Checkpoint{}, errMalformedCheckpoint
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || lines[1] != strconv.FormatInt(size, 10) {
		return Checkpoint{}, fmt.Errorf("%w: size %q", errMalformedCheckpoint, lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return Checkpoint{}, fmt.Errorf("%w: root hash %q", errMalformedCheckpoint, lines[2])
	}
	if lines[0] == "" {
		return Checkpoint{}, fmt.Errorf("%w: empty origin", errMalformedCheckpoint)
	}
	c := Checkpoint{Origin: lines[0], Size: size}
	copy(c.Root[:], root)
	return c, nil
}

// SignCheckpoint returns c as a signed note.
func SignCheckpoint(c Checkpoint, signer note.Signer) ([]byte, error) {
	if c.Origin != signer.Name() {
		return nil, fmt.Errorf("sign checkpoint: origin %q is not the key's name %q", c.Origin, signer.Name())
	}
	msg, err := note.Sign(&note.Note{Text: string(c.Text())}, signer)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	return msg, nil
}

// OpenCheckpoint checks a signed checkpoint against the verifier key and
// returns its body. The origin must be the key's name, so a checkpoint of
// another log signed by the same key is refused.
func OpenCheckpoint(msg []byte, v note.Verifier) (Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint signature: %w", err)
	}
	c, err := ParseCheckpoint([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("checkpoint origin %q is not the key's name %q", c.Origin, v.Name())
	}
	return c, nil
}

// GenerateKey returns a new Ed25519 signing key for checkpoints, named
// origin, in the note formats: the private "PRIVATE+KEY+origin+…" and the
// public verifier key "origin+hash+key" that auditors use.
func GenerateKey(origin string) (skey, vkey string, err error) {
	skey, vkey, err = note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return "", "", fmt.Errorf("generate audit key: %w", err)
	}
	return skey, vkey, nil
}

// NewSigner parses a private signer key.
func NewSigner(skey string) (note.Signer, error) {
	s, err := note.NewSigner(strings.TrimSpace(skey))
	if err != nil {
		return nil, fmt.Errorf("audit signing key: %w (want the PRIVATE+KEY+… form from `recourse audit keygen`)", err)
	}
	return s, nil
}

// NewVerifier parses a public verifier key.
func NewVerifier(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, fmt.Errorf("audit verifier key: %w (want the name+hash+key form from `recourse audit key`)", err)
	}
	return v, nil
}

// VerifierKey derives the public verifier key from a private signer key.
func VerifierKey(skey string) (string, error) {
	if _, err := NewSigner(skey); err != nil {
		return "", err
	}
	// PRIVATE+KEY+name+hash+base64(alg || seed); the base64 may hold '+'.
	_, rest, _ := strings.Cut(strings.TrimSpace(skey), "+")
	_, rest, _ = strings.Cut(rest, "+")
	name, rest, _ := strings.Cut(rest, "+")
	_, key64, _ := strings.Cut(rest, "+")
	key, err := base64.StdEncoding.DecodeString(key64)
	if err != nil || len(key) != 1+ed25519.SeedSize {
		return "", errors.New("audit signing key: not an Ed25519 key")
	}
	pub := ed25519.NewKeyFromSeed(key[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(name, pub)
}

// hashOf converts a stored hash.
func hashOf(b [32]byte) tlog.Hash { return tlog.Hash(b) }

// noteText returns the text of a signed note without checking it, for
// messages about notes that fail verification.
func noteText(msg []byte) []byte {
	text, _, _ := bytes.Cut(msg, []byte("\n\n"))
	return append(text, '\n')
}
