package storetest

import (
	"crypto/sha256"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recourse/recourse"
)

// Bench runs the store benchmarks against a backend, as Run runs the
// conformance suite: the persistence side of the hot paths (the session
// lookup of every signed-in request; a token and a code minted and
// redeemed). docs/benchmarks.md has the figures.
func Bench(b *testing.B, open func(b *testing.B) recourse.Store) {
	b.Run("SessionLookup", func(b *testing.B) { benchSessionLookup(b, open(b)) })
	b.Run("TokenMintRedeem", func(b *testing.B) { benchTokenMintRedeem(b, open(b)) })
	b.Run("CodeMintRedeem", func(b *testing.B) { benchCodeMintRedeem(b, open(b)) })
}

func benchAccounts(b *testing.B, s recourse.Store, n int) []string {
	b.Helper()
	var ids []string
	for i := range n {
		a := NewAccount(fmt.Sprintf("b%04d", i))
		if err := s.CreateAccount(b.Context(), a); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	return ids
}

func hashOf(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

// benchSessionLookup: the session by its token's hash, then its account,
// from concurrent requests (Service.Authenticate's reads).
func benchSessionLookup(b *testing.B, s recourse.Store) {
	ctx := b.Context()
	ids := benchAccounts(b, s, 64)
	var hashes [][]byte
	for i, id := range ids {
		h := hashOf(fmt.Sprint("session", i))
		ses := &recourse.Session{AccountID: id, TokenHash: h, AAL: recourse.AAL2, Methods: []string{"pwd", "otp"}, AuthTime: T0,
			ReauthAt: T0, CreatedAt: T0, LastSeenAt: T0, ExpiresAt: T0.Add(24 * time.Hour), IdleTimeout: time.Hour}
		if err := s.CreateSession(ctx, ses); err != nil {
			b.Fatal(err)
		}
		hashes = append(hashes, h)
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ses, err := s.SessionByTokenHash(ctx, hashes[int(n.Add(1))%len(hashes)])
			if err == nil {
				_, err = s.Account(ctx, ses.AccountID)
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// benchTokenMintRedeem: a completion token stored in one transaction and
// used up in another, as ContinueRecovery and CompleteRecovery do.
func benchTokenMintRedeem(b *testing.B, s recourse.Store) {
	ctx := b.Context()
	id := benchAccounts(b, s, 1)[0]
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		t := &recourse.Token{Hash: hashOf(fmt.Sprint("token", i)), Purpose: recourse.TokenCompletion, RequestID: "rr_bench", AccountID: id,
			BrowserHash: hashOf("browser"), ExpiresAt: T0.Add(15 * time.Minute), CreatedAt: T0}
		if err := s.InTx(ctx, func(tx recourse.Tx) error { return tx.CreateToken(ctx, t) }); err != nil {
			b.Fatal(err)
		}
		if err := s.InTx(ctx, func(tx recourse.Tx) error {
			_, err := tx.UseToken(ctx, t.Hash, recourse.TokenCompletion, T0)
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// benchCodeMintRedeem: a code stored for a request, an attempt taken on
// the request's outstanding codes (atomically), and the matching code used
// up in a transaction, as sendChallenges and SubmitChallengeCode do.
func benchCodeMintRedeem(b *testing.B, s recourse.Store) {
	ctx := b.Context()
	id := benchAccounts(b, s, 1)[0]
	newRequest := func() *recourse.Recovery {
		r := &recourse.Recovery{ID: recourse.NewID("rr_"), AccountID: id, Action: "password.reset", Tier: "recovery",
			State: recourse.RecoveryCollecting, Lost: "password", Initiator: "self", Change: map[string]string{"credential": "password"},
			ChangeDigest: "cd", PolicyDigest: "pd", Rule: "r", Requirement: []byte(`{"evidence":null}`), RequirementDigest: "rd",
			BrowserHash: []byte("browser"), ExpiresAt: T0.Add(72 * time.Hour), CreatedAt: T0, UpdatedAt: T0}
		if err := s.CreateRecovery(ctx, r); err != nil {
			b.Fatal(err)
		}
		return r
	}
	var r *recourse.Recovery
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		// A request sends at most 8 codes (resends included).
		if i%8 == 0 {
			b.StopTimer()
			r = newRequest()
			b.StartTimer()
		}
		i++
		c := &recourse.Challenge{ID: recourse.NewID("chl_"), RequestID: r.ID, ChannelID: "ch_bench", Kind: "email",
			CodeHash: hashOf(fmt.Sprint("code", i)), ExpiresAt: T0.Add(10 * time.Minute), CreatedAt: T0}
		if err := s.InTx(ctx, func(tx recourse.Tx) error { return tx.CreateChallenge(ctx, c) }); err != nil {
			b.Fatal(err)
		}
		cands, err := s.TakeChallengeAttempts(ctx, r.ID, 5, T0)
		if err != nil || len(cands) != 1 {
			b.Fatalf("take attempts: %d, %v", len(cands), err)
		}
		if err := s.InTx(ctx, func(tx recourse.Tx) error {
			ok, err := tx.UseChallenge(ctx, c.ID, T0)
			if err == nil && !ok {
				err = fmt.Errorf("challenge %s not used", c.ID)
			}
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
}
