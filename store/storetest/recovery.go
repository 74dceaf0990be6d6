package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recourse/recourse"
)

func newRecovery(t *testing.T, s recourse.Store, accountID string) *recourse.Recovery {
	t.Helper()
	r := &recourse.Recovery{ID: recourse.NewID("rr_"), AccountID: accountID, Action: "password.reset", Tier: "recovery",
		State: recourse.RecoveryCollecting, Lost: "password", Initiator: "self", Change: map[string]string{"credential": "password"},
		ChangeDigest: "cd1", PolicyDigest: "pd", Rule: "r", Requirement: []byte(`{"evidence":null}`), RequirementDigest: "rd",
		BrowserHash: []byte("browser"), ExpiresAt: T0.Add(72 * time.Hour), CreatedAt: T0, UpdatedAt: T0}
	if err := s.CreateRecovery(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	return r
}

// testRecoveryWithAccount: one read returns what Recovery and Account
// return, for requests of an account with several channels and of one
// with none, with every optional field set and unset, and ErrNotFound for
// an unknown request.
func testRecoveryWithAccount(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	mustCreateWithChannels(t, s, "with")
	mustCreate(t, s, NewAccount("without"))
	plain := newRecovery(t, s, "without")
	full := newRecovery(t, s, "with")
	until, done := T0.Add(time.Hour), T0.Add(2*time.Hour)
	full.CoolingUntil, full.CompletedAt, full.Ceremony, full.Outcome = &until, &done, []byte(`{"kind":"recovery"}`), "changed"
	if err := s.UpdateRecovery(ctx, full); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*recourse.Recovery{plain, full} {
		wantR, err := s.Recovery(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantA, err := s.Account(ctx, r.AccountID)
		if err != nil {
			t.Fatal(err)
		}
		gotR, gotA, err := s.RecoveryWithAccount(ctx, r.ID)
		if err != nil {
			t.Fatalf("RecoveryWithAccount(%s): %v", r.AccountID, err)
		}
		if !reflect.DeepEqual(gotR, wantR) {
			t.Errorf("%s: request %+v, want %+v", r.AccountID, gotR, wantR)
		}
		if !reflect.DeepEqual(gotA, wantA) {
			t.Errorf("%s: account %+v, want %+v", r.AccountID, gotA, wantA)
		}
	}
	if _, _, err := s.RecoveryWithAccount(ctx, "rr_nope"); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("unknown request: %v", err)
	}
}

// testQueuedInserts: the codes and tokens a transaction issues, queued
// with its audit events and deliveries until its next statement of another
// kind (and written in one statement on PostgreSQL), are read back by the
// transaction itself, all committed together, and a queued insert that
// fails fails the transaction even when nothing it read reported it. An
// access pass is never queued: its conflict is reported at once.
func testQueuedInserts(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	mustCreate(t, s, NewAccount("a"))
	r := newRecovery(t, s, "a")
	challenge := func(id string, i int) *recourse.Challenge {
		return &recourse.Challenge{ID: id, RequestID: r.ID, ChannelID: "ch", Kind: "email", CodeHash: []byte{byte(i)},
			ExpiresAt: T0.Add(time.Hour), CreatedAt: T0.Add(time.Duration(i) * time.Second)}
	}
	token := func(hash, purpose string) *recourse.Token {
		return &recourse.Token{Hash: []byte(hash), Purpose: purpose, RequestID: r.ID, AccountID: "a", ExpiresAt: T0.Add(time.Hour), CreatedAt: T0}
	}
	mail := func(i int) (*recourse.OutboxMessage, *recourse.Notification) {
		at := T0.Add(time.Duration(i) * time.Second)
		return &recourse.OutboxMessage{AccountID: "a", To: "a@example.com", Subject: fmt.Sprintf("q%d", i), Body: "b", CreatedAt: at},
			&recourse.Notification{ID: fmt.Sprintf("msg_q%02d", i), Kind: recourse.NotifyEmail, AccountID: "a", To: "a@example.com",
				Subject: fmt.Sprintf("q%d", i), State: recourse.NotificationSent, CreatedAt: at, SentAt: &at}
	}

	// Every table queued at once, in shapes of 3, 2, 1 and 2 rows, then
	// read back inside the transaction.
	err := s.InTx(ctx, func(tx recourse.Tx) error {
		for i := range 3 {
			if err := tx.AddAuditEvent(ctx, NewAuditEvent(recourse.ActionRecoveryStart, "a", i)); err != nil {
				return err
			}
		}
		for i, id := range []string{"chl_q1", "chl_q2"} {
			if err := tx.CreateChallenge(ctx, challenge(id, i)); err != nil {
				return err
			}
		}
		if err := tx.CreateToken(ctx, token("cancel-1", recourse.TokenCancel)); err != nil {
			return err
		}
		for i := range 2 {
			m, n := mail(i)
			if err := tx.DeliverToOutbox(ctx, m, n); err != nil {
				return err
			}
		}
		cands, err := tx.TakeChallengeAttempts(ctx, r.ID, 5, T0)
		if err != nil || len(cands) != 2 {
			t.Errorf("the transaction takes attempts on %d of its 2 codes, %v", len(cands), err)
		}
		if tok, err := tx.UseToken(ctx, []byte("cancel-1"), recourse.TokenCancel, T0); err != nil || tok.RequestID != r.ID {
			t.Errorf("the transaction cannot use its own token: %+v, %v", tok, err)
		}
		// Queued again after a read, written at the commit.
		return tx.CreateChallenge(ctx, challenge("chl_q3", 3))
	})
	if err != nil {
		t.Fatal(err)
	}
	chs, err := s.Challenges(ctx, r.ID)
	if err != nil || len(chs) != 3 || chs[0].ID != "chl_q1" || chs[0].Attempts != 1 || chs[2].ID != "chl_q3" || chs[2].Attempts != 0 {
		t.Errorf("Challenges = %d, %v; want chl_q1 and chl_q2 tried once, chl_q3 untried", len(chs), err)
	}
	if _, err := s.UseToken(ctx, []byte("cancel-1"), recourse.TokenCancel, T0); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("the token used in the transaction is usable again: %v", err)
	}
	if ms, err := s.OutboxMessages(ctx, 10); err != nil || len(ms) != 2 {
		t.Errorf("OutboxMessages = %d, %v; want 2", len(ms), err)
	}
	if recs, err := s.UnsequencedAuditEvents(ctx, 0, 10); err != nil || len(recs) != 3 {
		t.Errorf("audit events = %d, %v; want 3", len(recs), err)
	}

	// A queued code whose id is taken fails the transaction, though the
	// transaction's function ignores the failure its read of the codes
	// met, and a read of one row (which cannot hand a failure back) came
	// after; none of its writes stay.
	err = s.InTx(ctx, func(tx recourse.Tx) error {
		if err := tx.AddAuditEvent(ctx, NewAuditEvent(recourse.ActionRecoveryStart, "a", 9)); err != nil {
			return err
		}
		if err := tx.CreateToken(ctx, token("cancel-2", recourse.TokenCancel)); err != nil {
			return err
		}
		if err := tx.CreateChallenge(ctx, challenge("chl_q1", 9)); err != nil {
			return err
		}
		if _, err := tx.Challenges(ctx, r.ID); err == nil {
			t.Error("reading the codes after a failed queued insert succeeded")
		}
		_, _ = tx.Recovery(ctx, r.ID)
		return nil
	})
	if err == nil {
		t.Fatal("a transaction whose queued insert failed committed")
	}
	if recs, _ := s.UnsequencedAuditEvents(ctx, 0, 10); len(recs) != 3 {
		t.Errorf("the failed transaction's audit event was stored: %d events", len(recs))
	}
	if _, err := s.UseToken(ctx, []byte("cancel-2"), recourse.TokenCancel, T0); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("the failed transaction's token was stored: %v", err)
	}

	// A second outstanding access pass is refused by CreateToken itself.
	err = s.InTx(ctx, func(tx recourse.Tx) error {
		if err := tx.CreateToken(ctx, token("pass-1", recourse.TokenAccessPass)); err != nil {
			return err
		}
		if err := tx.CreateToken(ctx, token("pass-2", recourse.TokenAccessPass)); !errors.Is(err, recourse.ErrConflict) {
			t.Errorf("second access pass: %v, want ErrConflict from CreateToken", err)
		}
		return errors.New("rolled back")
	})
	if err == nil {
		t.Error("the access-pass transaction committed")
	}
}

func testRecoveryLifecycle(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	mustCreate(t, s, NewAccount("a"))
	r := newRecovery(t, s, "a")
	got, err := s.Recovery(ctx, r.ID)
	if err != nil || got.State != recourse.RecoveryCollecting || got.Change["credential"] != "password" || string(got.BrowserHash) != "browser" || got.Version != 1 {
		t.Fatalf("Recovery = %+v, %v", got, err)
	}
	stale := *got
	until := T0.Add(24 * time.Hour)
	got.State, got.CoolingUntil, got.UpdatedAt = recourse.RecoveryCoolingOff, &until, T0.Add(time.Minute)
	if err := s.UpdateRecovery(ctx, got); err != nil || got.Version != 2 {
		t.Fatalf("UpdateRecovery: %v (version %d)", err, got.Version)
	}
	stale.State = recourse.RecoveryCancelled
	if err := s.UpdateRecovery(ctx, &stale); !errors.Is(err, recourse.ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}
	open, err := s.Recoveries(ctx, "a", true)
	if err != nil || len(open) != 1 || open[0].CoolingUntil == nil || !open[0].CoolingUntil.Equal(until) {
		t.Fatalf("Recoveries = %v, %v", open, err)
	}
	cooling, err := s.OpenRecoveries(ctx, []recourse.RecoveryState{recourse.RecoveryCoolingOff}, 10)
	if err != nil || len(cooling) != 1 {
		t.Fatalf("OpenRecoveries = %v, %v", cooling, err)
	}
	var evIDs []int64
	for i, kind := range []string{"code", "possession"} {
		e := &recourse.RecoveryEvidence{RequestID: r.ID, Kind: kind, Detail: []byte(fmt.Sprintf(`{"n":%d}`, i)), CreatedAt: T0}
		if err := s.AddRecoveryEvidence(ctx, e); err != nil {
			t.Fatal(err)
		}
		evIDs = append(evIDs, e.ID)
	}
	ev, err := s.RecoveryEvidence(ctx, r.ID)
	if err != nil || len(ev) != 2 || ev[0].Kind != "code" || string(ev[1].Detail) != `{"n":1}` {
		t.Fatalf("RecoveryEvidence = %v, %v", ev, err)
	}
	if ev[0].ID != evIDs[0] || ev[1].ID != evIDs[1] || evIDs[0] == evIDs[1] {
		t.Fatalf("evidence ids: stored %d, %d; AddRecoveryEvidence said %v", ev[0].ID, ev[1].ID, evIDs)
	}
	// Group membership.
	g := NewAccount("g")
	g.Groups = []string{"security", "x"}
	mustCreate(t, s, g)
	members, err := s.AccountsInGroup(ctx, "security", 10)
	if err != nil || len(members) != 1 || members[0].ID != "g" {
		t.Fatalf("AccountsInGroup = %v, %v", members, err)
	}
	if none, _ := s.AccountsInGroup(ctx, "secur", 10); len(none) != 0 {
		t.Errorf("group match is not exact: %v", none)
	}
}

func testRecoveryTokenRace(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	mustCreate(t, s, NewAccount("a"))
	tok := &recourse.Token{Hash: []byte("h1"), Purpose: recourse.TokenCompletion, RequestID: "rr", AccountID: "a", ExpiresAt: T0.Add(15 * time.Minute), CreatedAt: T0}
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UseToken(ctx, []byte("h1"), recourse.TokenCancel, T0); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("wrong purpose accepted: %v", err)
	}
	const racers = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range racers {
		wg.Go(func() {
			got, err := s.UseToken(ctx, []byte("h1"), recourse.TokenCompletion, T0.Add(time.Minute))
			if err == nil {
				if got.RequestID != "rr" {
					t.Errorf("token = %+v", got)
				}
				mu.Lock()
				wins++
				mu.Unlock()
			} else if !errors.Is(err, recourse.ErrNotFound) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d of %d racing redemptions of one token succeeded, want exactly 1", wins, racers)
	}
	expired := &recourse.Token{Hash: []byte("h2"), Purpose: recourse.TokenCompletion, AccountID: "a", ExpiresAt: T0, CreatedAt: T0}
	if err := s.CreateToken(ctx, expired); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UseToken(ctx, []byte("h2"), recourse.TokenCompletion, T0); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("expired token accepted: %v", err)
	}
	for i, h := range []string{"h3", "h4"} {
		if err := s.CreateToken(ctx, &recourse.Token{ID: fmt.Sprintf("keep%d", i), Hash: []byte(h), Purpose: recourse.TokenCancel, AccountID: "a", ExpiresAt: T0.Add(time.Hour), CreatedAt: T0}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.RevokeTokens(ctx, "a", "keep1", T0)
	if err != nil || n != 1 {
		t.Fatalf("RevokeTokens = %d, %v; want 1", n, err)
	}
	if _, err := s.UseToken(ctx, []byte("h3"), recourse.TokenCancel, T0); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("revoked token accepted: %v", err)
	}
	if _, err := s.UseToken(ctx, []byte("h4"), recourse.TokenCancel, T0); err != nil {
		t.Errorf("the excepted token was revoked: %v", err)
	}
}

func testRecoveryChallengeAttempts(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	mustCreate(t, s, NewAccount("a"))
	r := newRecovery(t, s, "a")
	for _, kind := range []string{"email", "sms"} {
		c := &recourse.Challenge{RequestID: r.ID, ChannelID: "ch", Kind: kind, CodeHash: []byte(kind), ExpiresAt: T0.Add(10 * time.Minute), CreatedAt: T0}
		if err := s.CreateChallenge(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	const racers, max = 30, 5
	var wg sync.WaitGroup
	var mu sync.Mutex
	granted := 0
	for range racers {
		wg.Go(func() {
			cs, err := s.TakeChallengeAttempts(ctx, r.ID, max, T0)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			granted += len(cs)
			mu.Unlock()
		})
	}
	wg.Wait()
	if granted != 2*max {
		t.Fatalf("granted %d challenge attempts to %d racers, want exactly %d", granted, racers, 2*max)
	}
	all, _ := s.Challenges(ctx, r.ID)
	first := all[0].ID
	var wins int
	for range 10 {
		wg.Go(func() {
			ok, err := s.UseChallenge(ctx, first, T0)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("a challenge was used %d times, want 1", wins)
	}
	later := &recourse.Challenge{RequestID: r.ID, ChannelID: "ch", Kind: "email", CodeHash: []byte("x"), ExpiresAt: T0.Add(time.Minute), CreatedAt: T0}
	if err := s.CreateChallenge(ctx, later); err != nil {
		t.Fatal(err)
	}
	if cs, _ := s.TakeChallengeAttempts(ctx, r.ID, max, T0.Add(2*time.Minute)); len(cs) != 0 {
		t.Errorf("expired challenge offered: %v", cs)
	}
}

func testRecoveryVotesOncePerPerson(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	mustCreate(t, s, NewAccount("a"))
	r := newRecovery(t, s, "a")
	const racers = 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range racers {
		wg.Go(func() {
			err := s.AddRecoveryVote(ctx, &recourse.RecoveryVote{RequestID: r.ID, ApproverID: "m", ChangeDigest: "cd1", Vote: "approve", Roles: []string{"manager"}, CreatedAt: T0})
			if err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			} else if !errors.Is(err, recourse.ErrConflict) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("one approver's vote was recorded %d times, want 1", wins)
	}
	// A new change digest is a new question.
	if err := s.AddRecoveryVote(ctx, &recourse.RecoveryVote{RequestID: r.ID, ApproverID: "m", ChangeDigest: "cd2", Vote: "deny", CreatedAt: T0.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	votes, err := s.RecoveryVotes(ctx, r.ID)
	if err != nil || len(votes) != 2 || votes[0].Roles[0] != "manager" || votes[1].Vote != "deny" {
		t.Fatalf("RecoveryVotes = %+v, %v", votes, err)
	}
}

func testRecoveryFailuresAndFreeze(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	mustCreate(t, s, NewAccount("a"))
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			if _, err := s.RecordRecoveryFailure(ctx, "a"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	a, _ := s.Account(ctx, "a")
	if a.RecoveryFailures != 40 {
		t.Fatalf("RecoveryFailures = %d after 40 concurrent failures", a.RecoveryFailures)
	}
	if err := s.ResetRecoveryFailures(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	at := T0
	if err := s.SetAccountFrozen(ctx, "a", &at); err != nil {
		t.Fatal(err)
	}
	a, _ = s.Account(ctx, "a")
	if a.RecoveryFailures != 0 || a.FrozenAt == nil || !a.FrozenAt.Equal(T0) {
		t.Fatalf("after reset and freeze: %d %v", a.RecoveryFailures, a.FrozenAt)
	}
	if err := s.SetAccountFrozen(ctx, "ghost", &at); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("freeze unknown: %v", err)
	}
}

// testRecoveryExpiryAndSweep: the hygiene sweep finds open requests past
// their expiry (only open ones, soonest first) and deletes expired tokens
// and codes, used or not, and nothing else.
func testRecoveryExpiryAndSweep(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	mustCreate(t, s, NewAccount("a"))
	soon, later, closed := newRecovery(t, s, "a"), newRecovery(t, s, "a"), newRecovery(t, s, "a")
	soon.ExpiresAt = T0.Add(time.Hour)
	if err := s.UpdateRecovery(ctx, soon); err != nil {
		t.Fatal(err)
	}
	closed.State = recourse.RecoveryCompleted
	if err := s.UpdateRecovery(ctx, closed); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   time.Time
		want []string
	}{
		{T0, nil},
		{T0.Add(time.Hour), []string{soon.ID}},
		{T0.Add(100 * time.Hour), []string{soon.ID, later.ID}},
	} {
		ids, err := s.ExpiredRecoveries(ctx, tc.at, 10)
		if err != nil || !slices.Equal(ids, tc.want) {
			t.Errorf("ExpiredRecoveries(%v) = %v, %v; want %v", tc.at.Sub(T0), ids, err, tc.want)
		}
	}
	if ids, _ := s.ExpiredRecoveries(ctx, T0.Add(100*time.Hour), 1); len(ids) != 1 {
		t.Errorf("limit 1: %v", ids)
	}

	used := T0.Add(time.Minute)
	for i, exp := range []time.Duration{time.Minute, 2 * time.Hour} {
		if err := s.CreateChallenge(ctx, &recourse.Challenge{RequestID: soon.ID, ChannelID: "ch", Kind: "email",
			CodeHash: []byte{byte(i)}, ExpiresAt: T0.Add(exp), CreatedAt: T0}); err != nil {
			t.Fatal(err)
		}
		tok := &recourse.Token{Hash: []byte{'t', byte(i)}, Purpose: recourse.TokenCompletion, RequestID: soon.ID, AccountID: "a",
			ExpiresAt: T0.Add(exp), CreatedAt: T0}
		if i == 0 {
			tok.UsedAt = &used
		}
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.DeleteExpiredSecrets(ctx, T0.Add(time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("DeleteExpiredSecrets = %d, %v; want 2 (a code and a token)", n, err)
	}
	left, err := s.Challenges(ctx, soon.ID)
	if err != nil || len(left) != 1 || !left[0].ExpiresAt.Equal(T0.Add(2*time.Hour)) {
		t.Fatalf("challenges left: %v, %v", left, err)
	}
	if _, err := s.UseToken(ctx, []byte{'t', 1}, recourse.TokenCompletion, T0.Add(time.Hour)); err != nil {
		t.Errorf("the unexpired token was deleted: %v", err)
	}
}

// testOneAccessPass: the database keeps one active access pass per
// account; a second is refused (ErrConflict) until the first is used or
// revoked.
func testOneAccessPass(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	mustCreate(t, s, NewAccount("a"))
	pass := func(b byte) *recourse.Token {
		return &recourse.Token{Hash: []byte{'p', b}, Purpose: recourse.TokenAccessPass, AccountID: "a", ExpiresAt: T0.Add(time.Hour), CreatedAt: T0}
	}
	if err := s.CreateToken(ctx, pass(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateToken(ctx, pass(2)); !errors.Is(err, recourse.ErrConflict) {
		t.Fatalf("a second active pass: %v, want ErrConflict", err)
	}
	// Other purposes are not limited.
	for i := byte(0); i < 2; i++ {
		if err := s.CreateToken(ctx, &recourse.Token{Hash: []byte{'c', i}, Purpose: recourse.TokenCompletion, AccountID: "a",
			ExpiresAt: T0.Add(time.Hour), CreatedAt: T0}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.RevokeAccessPasses(ctx, "a", T0); err != nil || n != 1 {
		t.Fatalf("RevokeAccessPasses = %d, %v", n, err)
	}
	if err := s.CreateToken(ctx, pass(3)); err != nil {
		t.Fatalf("a pass after revoking the first: %v", err)
	}
	if _, err := s.UseToken(ctx, []byte{'p', 3}, recourse.TokenAccessPass, T0); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateToken(ctx, pass(4)); err != nil {
		t.Fatalf("a pass after using the last: %v", err)
	}
}

// testRecoveryProof: one read returns exactly what RecoveryEvidence and
// RecoveryVotes return, in their orders: evidence by id, votes by time
// then approver, for a request with both, with only one kind, and with none;
// and the kinds of the subject's active authenticators, each once, sorted.
func testRecoveryProof(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	mustCreate(t, s, NewAccount("a"))
	mustCreate(t, s, NewAccount("other"))
	// The subject's active authenticators, two keys of one kind; a revoked
	// app and another account's do not count.
	for i, au := range []*recourse.Authenticator{
		{AccountID: "a", Kind: recourse.AuthWebAuthn, Status: recourse.AuthActive, CredentialID: []byte{1}, CreatedAt: T0},
		{AccountID: "a", Kind: recourse.AuthPassword, Status: recourse.AuthActive, CreatedAt: T0.Add(time.Second)},
		{AccountID: "a", Kind: recourse.AuthWebAuthn, Status: recourse.AuthActive, CredentialID: []byte{2}, CreatedAt: T0.Add(2 * time.Second)},
		{AccountID: "a", Kind: recourse.AuthTOTP, Status: recourse.AuthRevoked, CreatedAt: T0},
		{AccountID: "other", Kind: recourse.AuthRecoveryCodes, Status: recourse.AuthActive, CreatedAt: T0},
	} {
		au.Secret = []byte(fmt.Sprint(i))
		if err := s.CreateAuthenticator(ctx, au); err != nil {
			t.Fatal(err)
		}
	}
	both, evidenceOnly, votesOnly, none := newRecovery(t, s, "a"), newRecovery(t, s, "a"), newRecovery(t, s, "a"), newRecovery(t, s, "a")
	for i, kind := range []string{"possession", "code", "attestation"} {
		for _, r := range []*recourse.Recovery{both, evidenceOnly} {
			e := &recourse.RecoveryEvidence{RequestID: r.ID, Kind: kind, Detail: []byte(fmt.Sprintf(`{"n":%d}`, i)), ActorID: fmt.Sprintf("agent%d", i),
				CreatedAt: T0.Add(time.Duration(3-i) * time.Second)}
			if err := s.AddRecoveryEvidence(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, v := range []recourse.RecoveryVote{
		{ApproverID: "z", ChangeDigest: "cd1", Vote: "approve", Roles: []string{"manager", "sponsor"}, Comment: "ok", CreatedAt: T0},
		{ApproverID: "b", ChangeDigest: "cd1", Vote: "deny", CreatedAt: T0.Add(time.Second)},
		{ApproverID: "a2", ChangeDigest: "cd2", Vote: "approve", Roles: []string{"security"}, CreatedAt: T0.Add(time.Second)},
	} {
		for _, r := range []*recourse.Recovery{both, votesOnly} {
			v.RequestID = r.ID
			if err := s.AddRecoveryVote(ctx, &v); err != nil {
				t.Fatal(err)
			}
		}
	}
	wantMeans := []recourse.AuthenticatorKind{recourse.AuthPassword, recourse.AuthWebAuthn}
	for name, r := range map[string]*recourse.Recovery{"both": both, "evidence only": evidenceOnly, "votes only": votesOnly, "none": none} {
		ev, err := s.RecoveryEvidence(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		votes, err := s.RecoveryVotes(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.RecoveryProof(ctx, r.ID, r.AccountID)
		if err != nil {
			t.Fatalf("%s: RecoveryProof: %v", name, err)
		}
		if !reflect.DeepEqual(got.Evidence, ev) {
			t.Errorf("%s: evidence %s, want %s", name, show(got.Evidence), show(ev))
		}
		if !reflect.DeepEqual(got.Votes, votes) {
			t.Errorf("%s: votes %s, want %s", name, show(got.Votes), show(votes))
		}
		if !slices.Equal(got.Means, wantMeans) {
			t.Errorf("%s: means %v, want %v", name, got.Means, wantMeans)
		}
		// The request with its proof in one read: the same.
		wantR, err := s.Recovery(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		gotR, withProof, err := s.RecoveryWithProof(ctx, r.ID)
		if err != nil {
			t.Fatalf("%s: RecoveryWithProof: %v", name, err)
		}
		if !reflect.DeepEqual(gotR, wantR) {
			t.Errorf("%s: RecoveryWithProof request %+v, want %+v", name, gotR, wantR)
		}
		if !reflect.DeepEqual(withProof, got) {
			t.Errorf("%s: RecoveryWithProof proof %+v, want %+v", name, withProof, got)
		}
	}
	// A request whose subject has no authenticators, and nothing else:
	// its one row is the request beside NULLs.
	mustCreate(t, s, NewAccount("bare"))
	bare := newRecovery(t, s, "bare")
	if r, p, err := s.RecoveryWithProof(ctx, bare.ID); err != nil || r.ID != bare.ID || !reflect.DeepEqual(p, &recourse.RecoveryProof{}) {
		t.Errorf("RecoveryWithProof of a bare request = %+v, %+v, %v", r, p, err)
	}
	if _, _, err := s.RecoveryWithProof(ctx, "rr_missing"); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("RecoveryWithProof of no request: %v", err)
	}
	p, _ := s.RecoveryProof(ctx, both.ID, both.AccountID)
	ev, votes := p.Evidence, p.Votes
	if len(ev) != 3 || ev[0].Kind != "possession" || string(ev[2].Detail) != `{"n":2}` || ev[1].ActorID != "agent1" {
		t.Errorf("evidence = %s", show(ev))
	}
	if len(votes) != 3 || votes[0].ApproverID != "z" || votes[1].ApproverID != "a2" || votes[2].Vote != "deny" ||
		!slices.Equal(votes[0].Roles, []string{"manager", "sponsor"}) || votes[0].Comment != "ok" || !votes[1].CreatedAt.Equal(T0.Add(time.Second)) {
		t.Errorf("votes = %s", show(votes))
	}
	// An account without authenticators, a request without anything.
	if p, err := s.RecoveryProof(ctx, "rr_missing", "nobody"); err != nil || len(p.Evidence)+len(p.Votes)+len(p.Means) != 0 {
		t.Errorf("RecoveryProof of nothing = %+v, %v", p, err)
	}
}

func show[T any](xs []*T) string {
	var b strings.Builder
	for _, x := range xs {
		fmt.Fprintf(&b, "%+v ", *x)
	}
	return "[" + b.String() + "]"
}

// testQueuedRecovery: a request created in a transaction waits with the
// transaction's other queued inserts (a start's: its audit event and
// codes), is written before a statement on a table that refers to it,
// and is read back by the transaction; a request whose id is taken fails
// the commit with ErrConflict, and none of the transaction's writes stay.
func testQueuedRecovery(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	mustCreate(t, s, NewAccount("a"))
	fresh := func() *recourse.Recovery {
		return &recourse.Recovery{ID: recourse.NewID("rr_"), AccountID: "a", Action: "password.reset", Tier: "recovery",
			State: recourse.RecoveryCollecting, Lost: "password", Initiator: "self", Change: map[string]string{"credential": "password"},
			ChangeDigest: "cd1", PolicyDigest: "pd", Rule: "r", Requirement: []byte(`{"evidence":null}`), RequirementDigest: "rd",
			BrowserHash: []byte("browser"), ExpiresAt: T0.Add(72 * time.Hour), CreatedAt: T0, UpdatedAt: T0}
	}
	r := fresh()
	err := s.InTx(ctx, func(tx recourse.Tx) error {
		if err := tx.CreateRecovery(ctx, r); err != nil {
			return err
		}
		// Changed after it was queued: the request is stored as it was
		// when created, as an insert at once would have stored it.
		r.Change["credential"] = "changed in memory"
		if err := tx.AddAuditEvent(ctx, NewAuditEvent(recourse.ActionRecoveryStart, "a", 1)); err != nil {
			return err
		}
		if err := tx.CreateChallenge(ctx, &recourse.Challenge{ID: "chl_r1", RequestID: r.ID, ChannelID: "ch", Kind: "email",
			CodeHash: []byte{1}, ExpiresAt: T0.Add(time.Hour), CreatedAt: T0}); err != nil {
			return err
		}
		// Refers to the request: written after it.
		if err := tx.AddRecoveryEvidence(ctx, &recourse.RecoveryEvidence{RequestID: r.ID, Kind: "code", Detail: []byte(`{}`), CreatedAt: T0}); err != nil {
			return err
		}
		got, err := tx.Recovery(ctx, r.ID)
		if err != nil || got.State != recourse.RecoveryCollecting {
			t.Errorf("the transaction reads its own request: %+v, %v", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Recovery(ctx, r.ID)
	if err != nil || got.Change["credential"] != "password" {
		t.Fatalf("stored request = %+v, %v", got, err)
	}
	if chs, err := s.Challenges(ctx, r.ID); err != nil || len(chs) != 1 {
		t.Errorf("codes = %d, %v; want 1", len(chs), err)
	}
	events0, _ := s.UnsequencedAuditEvents(ctx, 0, 100)

	taken := fresh()
	taken.ID = r.ID
	err = s.InTx(ctx, func(tx recourse.Tx) error {
		if err := tx.CreateRecovery(ctx, taken); err != nil {
			return err
		}
		return tx.AddAuditEvent(ctx, NewAuditEvent(recourse.ActionRecoveryStart, "a", 2))
	})
	if !errors.Is(err, recourse.ErrConflict) {
		t.Errorf("a request whose id is taken: err = %v, want ErrConflict", err)
	}
	if events, _ := s.UnsequencedAuditEvents(ctx, 0, 100); len(events) != len(events0) {
		t.Errorf("the failed transaction's event stayed: %d events, want %d", len(events), len(events0))
	}
}
