package service

import (
	"context"
	"errors"

	"github.com/recourse/recourse"
)

// Until a browser has proven something for its request (a code), every
// step must answer exactly as it would for an identifier that names no
// account: otherwise a stranger who typed a real username could learn that
// it exists (a 409 "not ready" against a 404, a 429 "too many codes" against
// a 400, a password-rules error before the token check). These wrappers
// give every failure of an unrevealed request the one answer an unknown
// request gets.

// revealed reports whether the request has shown itself to its browser: it
// holds evidence, or the help desk opened it (its holder claimed it with a
// code).
func (s *Service) revealed(ctx context.Context, id, secret string) bool {
	// The request and its evidence in one read.
	r, p, err := s.loadForBrowserWithProof(ctx, id, secret)
	if err != nil {
		return false
	}
	return r.Initiator != "self" || len(p.Evidence) > 0
}

// revealedRequest is revealed for a request its browser has loaded.
func (s *Service) revealedRequest(ctx context.Context, r *recourse.Recovery) bool {
	if r.Initiator != "self" {
		return true
	}
	ev, err := s.store.RecoveryEvidence(ctx, r.ID)
	return err == nil && len(ev) > 0
}

// conceal maps a failure on an unrevealed request to the answer unknown
// requests get. Internal errors pass through (they are logged and shown
// generically anyway).
func conceal(revealed bool, err error) error {
	if err == nil || revealed || recourse.ErrorCode(err) == recourse.EINTERNAL {
		return err
	}
	if errors.Is(err, errRateLimited) {
		return err // per client address, the same for every identifier
	}
	return errWrongCode
}

// SubmitChallengeCode checks a code sent to one of the account's channels.
// Each code allows five tries and every wrong code counts against the
// account, atomically, whatever the resends. It returns the request's
// status as the transaction that recorded the code left it (what
// RecoveryStatus would answer, without reading the request again).
func (s *Service) SubmitChallengeCode(ctx context.Context, id, secret, code string, meta Meta) (*RecoveryView, error) {
	r, a, err := s.loadForBrowserWithAccount(ctx, id, secret)
	if errors.Is(err, recourse.ErrNotFound) {
		return nil, errWrongCode
	}
	if err != nil {
		return nil, internal("read recovery", err)
	}
	var seen evidenceSeen
	if err := s.submitChallengeCode(ctx, r, a, code, meta, &seen); err != nil {
		// Whether it was revealed is asked only of a failure: a success
		// reveals it. A failure records no evidence, so the answer is the
		// one the request had before.
		return nil, conceal(s.revealedRequest(ctx, r), err)
	}
	return s.statusAfter(ctx, id, secret, &seen)
}

// SubmitTOTP proves possession of a still-bound authenticator app. A code
// is accepted once only. It returns the status as SubmitChallengeCode does.
func (s *Service) SubmitTOTP(ctx context.Context, id, secret, code string, meta Meta) (*RecoveryView, error) {
	var seen evidenceSeen
	if err := s.submitTOTP(ctx, id, secret, code, meta, &seen); err != nil {
		return nil, conceal(s.revealed(ctx, id, secret), err)
	}
	return s.statusAfter(ctx, id, secret, &seen)
}

// SubmitSavedRecoveryCode uses up one of the account's saved recovery
// codes. It returns the status as SubmitChallengeCode does.
func (s *Service) SubmitSavedRecoveryCode(ctx context.Context, id, secret, code string, meta Meta) (*RecoveryView, error) {
	var seen evidenceSeen
	if err := s.submitSavedRecoveryCode(ctx, id, secret, code, meta, &seen); err != nil {
		return nil, conceal(s.revealed(ctx, id, secret), err)
	}
	return s.statusAfter(ctx, id, secret, &seen)
}

// ContinueRecovery mints the single-use completion token for a ready
// request, bound to the request and to the browser that drives it. The
// token goes into the completion form; only its HMAC is stored.
func (s *Service) ContinueRecovery(ctx context.Context, id, secret string, meta Meta) (string, error) {
	tok, err := s.continueRecovery(ctx, id, secret, meta)
	if err != nil {
		// Asked only of a failure, which changed nothing: the answer is
		// the one the request had before.
		return "", conceal(s.revealed(ctx, id, secret), err)
	}
	return tok, nil
}

// CompleteRecovery consumes the completion token (exactly once, whatever
// the races), applies the change, revokes every other session, token and
// open request of the account, notifies every channel, and signs the person
// in — or, after a lost device and when in.AccessPass asks for it, issues a
// temporary access pass instead (Completed.SignIn is then nil). After a
// device recovery the new session is restricted to enrolling a new
// authenticator.
func (s *Service) CompleteRecovery(ctx context.Context, id, secret, token string, in Completion, meta Meta) (*Completed, error) {
	rev := s.revealed(ctx, id, secret)
	if !rev {
		return nil, errWrongCode
	}
	si, err := s.completeRecovery(ctx, id, secret, token, in, meta)
	return si, conceal(rev, err)
}

// BeginRecoveryWebAuthn starts a passkey or security-key assertion as
// possession evidence for a request; see beginRecoveryWebAuthn.
func (s *Service) BeginRecoveryWebAuthn(ctx context.Context, id, secret string) ([]byte, error) {
	rev := s.revealed(ctx, id, secret)
	out, err := s.beginRecoveryWebAuthn(ctx, id, secret)
	return out, conceal(rev, err)
}

// FinishRecoveryWebAuthn verifies the assertion and records possession; see
// finishRecoveryWebAuthn.
func (s *Service) FinishRecoveryWebAuthn(ctx context.Context, id, secret string, body []byte, meta Meta) error {
	return conceal(s.revealed(ctx, id, secret), s.finishRecoveryWebAuthn(ctx, id, secret, body, meta))
}
