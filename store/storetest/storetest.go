// Package storetest is the conformance suite every recourse.Store backend
// passes. Each backend's tests call Run with a function that returns a fresh,
// empty, migrated store.
package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/recourse/recourse"
)

// Run runs the whole suite. newStore must return an isolated, empty store and
// arrange its cleanup with t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) recourse.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s recourse.Store)
	}{
		{"AccountRoundTrip", testAccountRoundTrip},
		{"AccountConflicts", testAccountConflicts},
		{"AccountUpdateOptimistic", testAccountUpdateOptimistic},
		{"AccountChannelOrder", testAccountChannelOrder},
		{"SessionWithAccount", testSessionWithAccount},
		{"AccountWithAuthenticators", testAccountWithAuthenticators},
		{"ListAccountsPaginates", testListAccounts},
		{"SharedChannels", testSharedChannels},
		{"AccountByVerifiedEmail", testAccountByVerifiedEmail},
		{"ChannelCodeAttempts", testChannelCodeAttempts},
		{"ChannelCodeAttemptsConcurrent", testChannelCodeAttemptsConcurrent},
		{"SignInFailuresConcurrent", testSignInFailuresConcurrent},
		{"Authenticators", testAuthenticators},
		{"OneActivePassword", testOneActivePassword},
		{"TOTPStepReplay", testTOTPStepReplay},
		{"RecoveryCodesSingleUse", testRecoveryCodesSingleUse},
		{"Sessions", testSessions},
		{"Outbox", testOutbox},
		{"TxRollback", testTxRollback},
		{"AfterCommit", testAfterCommit},
		{"RecoveryLifecycle", testRecoveryLifecycle},
		{"RecoveryTokenRace", testRecoveryTokenRace},
		{"RecoveryChallengeAttempts", testRecoveryChallengeAttempts},
		{"RecoveryExpiryAndSweep", testRecoveryExpiryAndSweep},
		{"OneAccessPass", testOneAccessPass},
		{"RecoveryVotesOncePerPerson", testRecoveryVotesOncePerPerson},
		{"RecoveryProof", testRecoveryProof},
		{"RecoveryWithAccount", testRecoveryWithAccount},
		{"QueuedInserts", testQueuedInserts},
		{"QueuedRecovery", testQueuedRecovery},
		{"RecoveryFailuresAndFreeze", testRecoveryFailuresAndFreeze},
		{"AuditAppendAndSequence", testAuditAppendAndSequence},
		{"AuditHashesAndCheckpoints", testAuditHashesAndCheckpoints},
		{"AuditListFilters", testAuditListFilters},
		{"AuditRollback", testAuditRollback},
		{"AuditEventsOfATransaction", testAuditEventsOfATransaction},
		{"Notify", testNotify},
		{"DeliverToOutbox", testDeliverToOutbox},
		{"APIKeys", testAPIKeys},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// T0 is the fixed instant the suite's fixtures are dated at.
var T0 = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

// NewAccount returns a valid account with the given id for tests.
func NewAccount(id string) *recourse.Account {
	return &recourse.Account{
		ID: id, Username: id, DisplayName: "User " + id,
		Kind: recourse.KindHuman, Status: recourse.StatusActive, Employment: recourse.EmploymentEmployee,
		IAL: 2, CreatedAt: T0, UpdatedAt: T0,
	}
}

func mustCreate(t *testing.T, s recourse.Store, a *recourse.Account) *recourse.Account {
	t.Helper()
	if err := s.CreateAccount(t.Context(), a); err != nil {
		t.Fatalf("CreateAccount(%s): %v", a.ID, err)
	}
	return a
}

func testAccountRoundTrip(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	end := T0.Add(72 * time.Hour)
	a := NewAccount("c.contractor")
	a.Employment = recourse.EmploymentContractor
	a.ContractEnd = &end
	a.ManagerID, a.SponsorID = "m.manager", "s.sponsor"
	a.Groups = []string{"finance", "privileged"}
	a.Roles = []string{recourse.RoleHelpdesk}
	a.RecoveryContacts = []string{"x.friend"}
	a.Emails = []recourse.Channel{{Kind: recourse.ChannelEmail, Address: "c@example.com", Verified: true}}
	a.Phones = []recourse.Channel{{Kind: recourse.ChannelPhone, Address: "+15551234567"}}
	mustCreate(t, s, a)

	got, err := s.Account(ctx, "c.contractor")
	if err != nil {
		t.Fatal(err)
	}
	if got.Username != a.Username || got.DisplayName != a.DisplayName || got.Employment != a.Employment ||
		got.ContractEnd == nil || !got.ContractEnd.Equal(end) || got.ManagerID != "m.manager" || got.SponsorID != "s.sponsor" ||
		!slices.Equal(got.Groups, a.Groups) || !slices.Equal(got.Roles, a.Roles) || !slices.Equal(got.RecoveryContacts, a.RecoveryContacts) ||
		got.IAL != 2 || got.Version != 1 || !got.CreatedAt.Equal(T0) {
		t.Errorf("Account = %+v, want %+v", got, a)
	}
	if len(got.Emails) != 1 || !got.Emails[0].Verified || got.Emails[0].Address != "c@example.com" || got.Emails[0].Shared {
		t.Errorf("Emails = %+v", got.Emails)
	}
	if len(got.Phones) != 1 || got.Phones[0].Verified {
		t.Errorf("Phones = %+v", got.Phones)
	}
	byName, err := s.AccountByUsername(ctx, "c.contractor")
	if err != nil || byName.ID != a.ID {
		t.Errorf("AccountByUsername = %v, %v", byName, err)
	}
	if _, err := s.Account(ctx, "nobody"); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("Account(nobody) err = %v, want ErrNotFound", err)
	}
}

func testAccountConflicts(t *testing.T, s recourse.Store) {
	mustCreate(t, s, NewAccount("a1"))
	dupID := NewAccount("a1")
	dupID.Username = "other"
	if err := s.CreateAccount(t.Context(), dupID); !errors.Is(err, recourse.ErrConflict) {
		t.Errorf("duplicate id: err = %v, want ErrConflict", err)
	}
	dupName := NewAccount("a2")
	dupName.Username = "a1"
	if err := s.CreateAccount(t.Context(), dupName); !errors.Is(err, recourse.ErrConflict) {
		t.Errorf("duplicate username: err = %v, want ErrConflict", err)
	}
	if _, err := s.Account(t.Context(), "a2"); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("failed create left a row behind: %v", err)
	}
}

// testAccountChannelOrder: an account's channels of each kind come back in
// the order they were added (by time, then id), whichever read returns it.
func testAccountChannelOrder(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	a := mustCreate(t, s, NewAccount("ord"))
	for _, c := range []recourse.Channel{
		{ID: "ch_e3", Kind: recourse.ChannelEmail, Address: "third@example.com", CreatedAt: T0.Add(2 * time.Minute)},
		{ID: "ch_p2", Kind: recourse.ChannelPhone, Address: "+15550000102", CreatedAt: T0.Add(time.Minute)},
		{ID: "ch_e2", Kind: recourse.ChannelEmail, Address: "second-b@example.com", CreatedAt: T0.Add(time.Minute)},
		{ID: "ch_e1", Kind: recourse.ChannelEmail, Address: "first@example.com", CreatedAt: T0},
		{ID: "ch_e2a", Kind: recourse.ChannelEmail, Address: "second-a@example.com", CreatedAt: T0.Add(time.Minute)},
		{ID: "ch_p1", Kind: recourse.ChannelPhone, Address: "+15550000101", CreatedAt: T0},
	} {
		c.AccountID = "ord"
		if err := s.AddChannel(ctx, &c); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(cs []recourse.Channel) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}
	byID, err := s.Account(ctx, "ord")
	if err != nil {
		t.Fatal(err)
	}
	byName, err := s.AccountByUsername(ctx, a.Username)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]*recourse.Account{"Account": byID, "AccountByUsername": byName} {
		if want := []string{"ch_e1", "ch_e2", "ch_e2a", "ch_e3"}; !slices.Equal(ids(got.Emails), want) {
			t.Errorf("%s: emails %v, want %v", name, ids(got.Emails), want)
		}
		if want := []string{"ch_p1", "ch_p2"}; !slices.Equal(ids(got.Phones), want) {
			t.Errorf("%s: phones %v, want %v", name, ids(got.Phones), want)
		}
	}
}

func testAccountUpdateOptimistic(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	a := NewAccount("u1")
	a.Emails = []recourse.Channel{
		{Kind: recourse.ChannelEmail, Address: "keep@example.com", Verified: true},
		{Kind: recourse.ChannelEmail, Address: "drop@example.com"},
	}
	mustCreate(t, s, a)
	first, _ := s.Account(ctx, "u1")
	second, _ := s.Account(ctx, "u1")

	first.DisplayName = "Renamed"
	first.UpdatedAt = T0.Add(time.Minute)
	first.Emails = []recourse.Channel{
		{Kind: recourse.ChannelEmail, Address: "keep@example.com"},
		{Kind: recourse.ChannelEmail, Address: "new@example.com"},
	}
	if err := s.UpdateAccount(ctx, first); err != nil {
		t.Fatal(err)
	}
	if first.Version != 2 {
		t.Errorf("Version after update = %d, want 2", first.Version)
	}
	second.DisplayName = "Lost update"
	if err := s.UpdateAccount(ctx, second); !errors.Is(err, recourse.ErrConflict) {
		t.Errorf("stale update: err = %v, want ErrConflict", err)
	}
	got, _ := s.Account(ctx, "u1")
	if got.DisplayName != "Renamed" {
		t.Errorf("DisplayName = %q", got.DisplayName)
	}
	var addrs []string
	for _, c := range got.Emails {
		addrs = append(addrs, fmt.Sprintf("%s:%v", c.Address, c.Verified))
	}
	slices.Sort(addrs)
	want := []string{"keep@example.com:true", "new@example.com:false"}
	if !slices.Equal(addrs, want) {
		t.Errorf("emails after update = %v, want %v (confirmation kept for an address that stays)", addrs, want)
	}
	missing := NewAccount("ghost")
	if err := s.UpdateAccount(ctx, missing); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("update of missing account: err = %v, want ErrNotFound", err)
	}

	// An account without channels is updated too (it has no channel to
	// read with its update), and gains its first; a stale copy of it
	// still conflicts.
	mustCreate(t, s, NewAccount("bare"))
	bare, _ := s.Account(ctx, "bare")
	stale, _ := s.Account(ctx, "bare")
	bare.DisplayName = "Bare"
	if err := s.UpdateAccount(ctx, bare); err != nil || bare.Version != 2 {
		t.Fatalf("update of an account without channels: err = %v, version %d, want nil, 2", err, bare.Version)
	}
	bare.Phones = []recourse.Channel{{Kind: recourse.ChannelPhone, Address: "+15550000099"}}
	if err := s.UpdateAccount(ctx, bare); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Account(ctx, "bare"); got.DisplayName != "Bare" || len(got.Phones) != 1 || got.Phones[0].Address != "+15550000099" {
		t.Errorf("after updates: %q, phones %+v", got.DisplayName, got.Phones)
	}
	if err := s.UpdateAccount(ctx, stale); !errors.Is(err, recourse.ErrConflict) {
		t.Errorf("stale update of an account without channels: err = %v, want ErrConflict", err)
	}
}

func testListAccounts(t *testing.T, s recourse.Store) {
	for i := range 7 {
		mustCreate(t, s, NewAccount(fmt.Sprintf("user%02d", i)))
	}
	var seen []string
	after := ""
	for range 10 {
		page, err := s.ListAccounts(t.Context(), recourse.AccountFilter{After: after, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, a := range page {
			seen = append(seen, a.ID)
		}
		after = page[len(page)-1].ID
	}
	if len(seen) != 7 || !slices.IsSorted(seen) {
		t.Errorf("paged ids = %v", seen)
	}
	q, err := s.ListAccounts(t.Context(), recourse.AccountFilter{Query: "USER0_"})
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 0 {
		t.Errorf("query with a literal underscore matched %d accounts, want 0", len(q))
	}
	q, _ = s.ListAccounts(t.Context(), recourse.AccountFilter{Query: "user05"})
	if len(q) != 1 || q[0].ID != "user05" {
		t.Errorf("query user05 = %v", q)
	}
}

func testSharedChannels(t *testing.T, s recourse.Store) {
	a := NewAccount("a")
	a.Phones = []recourse.Channel{{Kind: recourse.ChannelPhone, Address: "+15550000001", Verified: true}}
	b := NewAccount("b")
	b.Phones = []recourse.Channel{{Kind: recourse.ChannelPhone, Address: "+15550000001", Verified: true}}
	c := NewAccount("c")
	c.Phones = []recourse.Channel{{Kind: recourse.ChannelPhone, Address: "+15550000002", Verified: true}}
	for _, x := range []*recourse.Account{a, b, c} {
		mustCreate(t, s, x)
	}
	for id, shared := range map[string]bool{"a": true, "b": true, "c": false} {
		got, _ := s.Account(t.Context(), id)
		if got.Phones[0].Shared != shared || got.Phones[0].UsableForRecovery() == shared {
			t.Errorf("%s: Shared = %v, want %v", id, got.Phones[0].Shared, shared)
		}
	}
}

func testAccountByVerifiedEmail(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	a := NewAccount("a")
	a.Emails = []recourse.Channel{{Kind: recourse.ChannelEmail, Address: "a@example.com", Verified: true}, {Kind: recourse.ChannelEmail, Address: "pending@example.com"}}
	mustCreate(t, s, a)
	b := NewAccount("b")
	b.Emails = []recourse.Channel{{Kind: recourse.ChannelEmail, Address: "shared@example.com", Verified: true}}
	c := NewAccount("c")
	c.Emails = []recourse.Channel{{Kind: recourse.ChannelEmail, Address: "shared@example.com", Verified: true}}
	mustCreate(t, s, b)
	mustCreate(t, s, c)
	if got, err := s.AccountByVerifiedEmail(ctx, "a@example.com"); err != nil || got.ID != "a" {
		t.Errorf("verified = %v, %v", got, err)
	}
	for _, addr := range []string{"pending@example.com", "shared@example.com", "none@example.com"} {
		if _, err := s.AccountByVerifiedEmail(ctx, addr); !errors.Is(err, recourse.ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound", addr, err)
		}
	}
}

func testChannelCodeAttempts(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	a := NewAccount("a")
	mustCreate(t, s, a)
	ch := &recourse.Channel{AccountID: "a", Kind: recourse.ChannelEmail, Address: "a@example.com", CreatedAt: T0}
	if err := s.AddChannel(ctx, ch); err != nil {
		t.Fatal(err)
	}
	dup := &recourse.Channel{AccountID: "a", Kind: recourse.ChannelEmail, Address: "a@example.com", CreatedAt: T0}
	if err := s.AddChannel(ctx, dup); !errors.Is(err, recourse.ErrConflict) {
		t.Errorf("duplicate channel err = %v", err)
	}
	if _, _, err := s.TakeChannelCodeAttempt(ctx, ch.ID, 3); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("no code outstanding: err = %v, want ErrNotFound", err)
	}
	if err := s.SetChannelCode(ctx, ch.ID, []byte("hash"), T0.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		h, exp, err := s.TakeChannelCodeAttempt(ctx, ch.ID, 3)
		if err != nil || string(h) != "hash" || !exp.Equal(T0.Add(10*time.Minute)) {
			t.Fatalf("attempt %d: %q %v %v", i, h, exp, err)
		}
	}
	if _, _, err := s.TakeChannelCodeAttempt(ctx, ch.ID, 3); recourse.ErrorCode(err) != recourse.ERATELIMIT {
		t.Errorf("4th attempt err = %v, want rate limited", err)
	}
	if err := s.MarkChannelVerified(ctx, ch.ID, T0); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Channel(ctx, ch.ID)
	if !got.Verified || got.VerifiedAt == nil || !got.VerifiedAt.Equal(T0) {
		t.Errorf("channel after verify = %+v", got)
	}
	if _, _, err := s.TakeChannelCodeAttempt(ctx, ch.ID, 3); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("code survives verification: %v", err)
	}
	if err := s.DeleteChannel(ctx, ch.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Channel(ctx, ch.ID); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("deleted channel: %v", err)
	}
}

func testChannelCodeAttemptsConcurrent(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	mustCreate(t, s, NewAccount("a"))
	ch := &recourse.Channel{AccountID: "a", Kind: recourse.ChannelEmail, Address: "a@example.com", CreatedAt: T0}
	if err := s.AddChannel(ctx, ch); err != nil {
		t.Fatal(err)
	}
	if err := s.SetChannelCode(ctx, ch.ID, []byte("hash"), T0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	const workers, max = 16, 5
	var mu sync.Mutex
	granted := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			_, _, err := s.TakeChannelCodeAttempt(ctx, ch.ID, max)
			if err == nil {
				mu.Lock()
				granted++
				mu.Unlock()
			} else if recourse.ErrorCode(err) != recourse.ERATELIMIT {
				t.Errorf("attempt: %v", err)
			}
		})
	}
	wg.Wait()
	if granted != max {
		t.Errorf("granted %d attempts to %d racing callers, want exactly %d", granted, workers, max)
	}
}

func testSignInFailuresConcurrent(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	mustCreate(t, s, NewAccount("a"))
	const workers, each, limit = 8, 5, 30
	var wg sync.WaitGroup
	var mu sync.Mutex
	lockedReports := 0
	for range workers {
		wg.Go(func() {
			for range each {
				_, locked, err := s.RecordSignInFailure(ctx, "a", limit, T0)
				if err != nil {
					t.Errorf("RecordSignInFailure: %v", err)
					return
				}
				if locked {
					mu.Lock()
					lockedReports++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	a, err := s.Account(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if a.FailedSignIns != workers*each {
		t.Errorf("FailedSignIns = %d after %d concurrent failures: increments were lost", a.FailedSignIns, workers*each)
	}
	if !a.Locked() || !a.LockedAt.Equal(T0) {
		t.Errorf("account not locked at limit: %+v", a.LockedAt)
	}
	if lockedReports != workers*each-limit+1 {
		t.Errorf("locked reported %d times, want %d", lockedReports, workers*each-limit+1)
	}
	if err := s.ResetSignInFailures(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	a, _ = s.Account(ctx, "a")
	if a.FailedSignIns == 0 || !a.Locked() {
		t.Errorf("reset must not unlock a locked account: %d %v", a.FailedSignIns, a.LockedAt)
	}
	if err := s.UnlockAccount(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	a, _ = s.Account(ctx, "a")
	if a.FailedSignIns != 0 || a.Locked() {
		t.Errorf("after unlock: %d %v", a.FailedSignIns, a.LockedAt)
	}
}

func testAuthenticators(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	mustCreate(t, s, NewAccount("a"))
	pw := &recourse.Authenticator{AccountID: "a", Kind: recourse.AuthPassword, Status: recourse.AuthActive, Secret: []byte("$argon2id$..."), CreatedAt: T0}
	key := &recourse.Authenticator{AccountID: "a", Kind: recourse.AuthWebAuthn, Status: recourse.AuthActive, Name: "YubiKey",
		Secret: []byte(`{"k":1}`), CredentialID: []byte{1, 2, 3}, DeviceBound: true, CreatedAt: T0.Add(time.Second)}
	for _, au := range []*recourse.Authenticator{pw, key} {
		if err := s.CreateAuthenticator(ctx, au); err != nil {
			t.Fatal(err)
		}
	}
	dupCred := &recourse.Authenticator{AccountID: "a", Kind: recourse.AuthWebAuthn, Status: recourse.AuthActive, CredentialID: []byte{1, 2, 3}, CreatedAt: T0}
	if err := s.CreateAuthenticator(ctx, dupCred); !errors.Is(err, recourse.ErrConflict) {
		t.Errorf("duplicate credential id: err = %v", err)
	}
	list, err := s.Authenticators(ctx, "a")
	if err != nil || len(list) != 2 || list[0].ID != pw.ID || list[1].ID != key.ID {
		t.Fatalf("Authenticators = %v, %v", list, err)
	}
	got, err := s.AuthenticatorByCredentialID(ctx, []byte{1, 2, 3})
	if err != nil || got.ID != key.ID || !got.DeviceBound || got.Name != "YubiKey" || string(got.Secret) != `{"k":1}` {
		t.Errorf("by credential = %+v, %v", got, err)
	}
	now := T0.Add(time.Hour)
	got.Status, got.RevokedAt = recourse.AuthRevoked, &now
	if err := s.UpdateAuthenticator(ctx, got); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Authenticator(ctx, key.ID)
	if got.Status != recourse.AuthRevoked || got.RevokedAt == nil || !got.RevokedAt.Equal(now) {
		t.Errorf("after revoke = %+v", got)
	}
	var lastID int64
	for i, typ := range []recourse.AuthenticatorEventType{recourse.AuthEventBound, recourse.AuthEventUsed, recourse.AuthEventRevoked} {
		e := &recourse.AuthenticatorEvent{AuthenticatorID: key.ID, AccountID: "a", Kind: recourse.AuthWebAuthn, Type: typ,
			At: T0.Add(time.Duration(i) * time.Minute), IP: "192.0.2.1", UserAgent: "test"}
		if err := s.AddAuthenticatorEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
		if e.ID <= lastID {
			t.Fatalf("event %d: id %d after %d", i, e.ID, lastID)
		}
		lastID = e.ID
	}
	evs, err := s.AuthenticatorEvents(ctx, "a", 2)
	if err != nil || len(evs) != 2 || evs[0].Type != recourse.AuthEventRevoked || evs[1].Type != recourse.AuthEventUsed || evs[0].IP != "192.0.2.1" {
		t.Errorf("events = %+v, %v", evs, err)
	} else if evs[0].ID != lastID {
		t.Errorf("the newest event's id is %d, AddAuthenticatorEvent said %d", evs[0].ID, lastID)
	}

	// In a transaction the events may wait with its other queued
	// inserts: its own reads see them, and they are stored in order.
	err = s.InTx(ctx, func(tx recourse.Tx) error {
		for i, typ := range []recourse.AuthenticatorEventType{recourse.AuthEventBound, recourse.AuthEventUsed} {
			if err := tx.AddAuthenticatorEvent(ctx, &recourse.AuthenticatorEvent{AuthenticatorID: key.ID, AccountID: "a", Kind: recourse.AuthWebAuthn,
				Type: typ, At: T0.Add(time.Hour + time.Duration(i)*time.Minute), IP: "192.0.2.2", UserAgent: "tx"}); err != nil {
				return err
			}
		}
		evs, err := tx.AuthenticatorEvents(ctx, "a", 1)
		if err != nil || len(evs) != 1 || evs[0].Type != recourse.AuthEventUsed || evs[0].IP != "192.0.2.2" {
			t.Errorf("the transaction reads its events: %+v, %v", evs, err)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	evs, err = s.AuthenticatorEvents(ctx, "a", 3)
	if err != nil || len(evs) != 3 || evs[0].Type != recourse.AuthEventUsed || evs[1].Type != recourse.AuthEventBound ||
		evs[2].ID != lastID || evs[1].ID <= lastID || evs[0].ID <= evs[1].ID {
		t.Errorf("events after the transaction = %+v, %v", evs, err)
	}
}

func testOneActivePassword(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	mustCreate(t, s, NewAccount("a"))
	p1 := &recourse.Authenticator{AccountID: "a", Kind: recourse.AuthPassword, Status: recourse.AuthActive, Secret: []byte("1"), CreatedAt: T0}
	if err := s.CreateAuthenticator(ctx, p1); err != nil {
		t.Fatal(err)
	}
	p2 := &recourse.Authenticator{AccountID: "a", Kind: recourse.AuthPassword, Status: recourse.AuthActive, Secret: []byte("2"), CreatedAt: T0}
	if err := s.CreateAuthenticator(ctx, p2); !errors.Is(err, recourse.ErrConflict) {
		t.Errorf("second active password: err = %v, want ErrConflict", err)
	}
	// Replacing in one transaction works.
	err := s.InTx(ctx, func(tx recourse.Tx) error {
		p1.Status = recourse.AuthReplaced
		if err := tx.UpdateAuthenticator(ctx, p1); err != nil {
			return err
		}
		return tx.CreateAuthenticator(ctx, p2)
	})
	if err != nil {
		t.Fatalf("replace password: %v", err)
	}
}

func testTOTPStepReplay(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	mustCreate(t, s, NewAccount("a"))
	au := &recourse.Authenticator{AccountID: "a", Kind: recourse.AuthTOTP, Status: recourse.AuthActive, Secret: []byte("sealed"), CreatedAt: T0}
	if err := s.CreateAuthenticator(ctx, au); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.AdvanceTOTPStep(ctx, au.ID, 100, T0); !ok || err != nil {
		t.Fatalf("first use: %v %v", ok, err)
	}
	for _, step := range []int64{100, 99} {
		if ok, _ := s.AdvanceTOTPStep(ctx, au.ID, step, T0); ok {
			t.Errorf("step %d accepted after 100", step)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 10 {
		wg.Go(func() {
			ok, err := s.AdvanceTOTPStep(ctx, au.ID, 101, T0)
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
		t.Errorf("the same TOTP step was accepted %d times by racing callers, want 1", wins)
	}
	got, _ := s.Authenticator(ctx, au.ID)
	if got.LastStep != 101 || got.LastUsedAt == nil {
		t.Errorf("after advance = %+v", got)
	}
}

func testRecoveryCodesSingleUse(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	mustCreate(t, s, NewAccount("a"))
	mustCreate(t, s, NewAccount("b"))
	set := &recourse.Authenticator{AccountID: "a", Kind: recourse.AuthRecoveryCodes, Status: recourse.AuthActive, CreatedAt: T0}
	if err := s.CreateAuthenticator(ctx, set); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceRecoveryCodes(ctx, set.ID, [][]byte{[]byte("h1"), []byte("h2"), []byte("h3")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UseRecoveryCode(ctx, "b", []byte("h1"), T0); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("another account's code accepted: %v", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 10 {
		wg.Go(func() {
			id, err := s.UseRecoveryCode(ctx, "a", []byte("h1"), T0)
			if err == nil {
				if id != set.ID {
					t.Errorf("set id = %q", id)
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
		t.Errorf("one recovery code was accepted %d times, want 1", wins)
	}
	if n, _ := s.UnusedRecoveryCodes(ctx, set.ID); n != 2 {
		t.Errorf("unused = %d, want 2", n)
	}
	if err := s.ReplaceRecoveryCodes(ctx, set.ID, [][]byte{[]byte("h9")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UseRecoveryCode(ctx, "a", []byte("h2"), T0); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("code from a replaced set accepted: %v", err)
	}
	set.Status = recourse.AuthRevoked
	if err := s.UpdateAuthenticator(ctx, set); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UseRecoveryCode(ctx, "a", []byte("h9"), T0); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("code from a revoked set accepted: %v", err)
	}
}

// testSessionWithAccount: one read returns what SessionByTokenHash and
// Account return, for an account with several channels and for one with
// none, and ErrNotFound for an unknown hash.
// mustCreateWithChannels creates account id with groups, a role, two
// email addresses added out of address order and a phone number: the
// shape the joined account reads must rebuild.
func mustCreateWithChannels(t *testing.T, s recourse.Store, id string) {
	t.Helper()
	a := NewAccount(id)
	a.Groups, a.Roles = []string{"g1", "g2"}, []string{"security"}
	mustCreate(t, s, a)
	for i, addr := range []string{"b@example.com", "a@example.com"} {
		c := &recourse.Channel{AccountID: id, Kind: recourse.ChannelEmail, Address: addr, CreatedAt: T0.Add(time.Duration(i) * time.Minute)}
		if err := s.AddChannel(t.Context(), c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddChannel(t.Context(), &recourse.Channel{AccountID: id, Kind: recourse.ChannelPhone, Address: "+15550000100", CreatedAt: T0}); err != nil {
		t.Fatal(err)
	}
}

func testSessionWithAccount(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	mustCreateWithChannels(t, s, "with")
	mustCreate(t, s, NewAccount("without"))
	for _, id := range []string{"with", "without"} {
		ses := &recourse.Session{AccountID: id, TokenHash: []byte("hash-" + id), AAL: recourse.AAL2, Methods: []string{"pwd", "otp"},
			AuthTime: T0, ReauthAt: T0, CreatedAt: T0, LastSeenAt: T0, ExpiresAt: T0.Add(time.Hour), IdleTimeout: time.Hour, IP: "192.0.2.1", UserAgent: "ua"}
		if err := s.CreateSession(ctx, ses); err != nil {
			t.Fatal(err)
		}
		wantSes, err := s.SessionByTokenHash(ctx, ses.TokenHash)
		if err != nil {
			t.Fatal(err)
		}
		wantAcct, err := s.Account(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		gotSes, gotAcct, err := s.SessionWithAccount(ctx, ses.TokenHash)
		if err != nil {
			t.Fatalf("SessionWithAccount(%s): %v", id, err)
		}
		if !reflect.DeepEqual(gotSes, wantSes) {
			t.Errorf("%s: session %+v, want %+v", id, gotSes, wantSes)
		}
		if !reflect.DeepEqual(gotAcct, wantAcct) {
			t.Errorf("%s: account %+v, want %+v", id, gotAcct, wantAcct)
		}
	}
	if _, _, err := s.SessionWithAccount(ctx, []byte("nope")); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("unknown hash: %v", err)
	}
}

// testAccountWithAuthenticators: the joined read gives what
// AccountByUsername and Authenticators give, whichever of channels and
// authenticators the account has, and however many.
func testAccountWithAuthenticators(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	mustCreateWithChannels(t, s, "both")
	mustCreateWithChannels(t, s, "channels-only")
	mustCreate(t, s, NewAccount("keys-only"))
	mustCreate(t, s, NewAccount("neither"))
	used := T0.Add(time.Hour)
	for _, id := range []string{"both", "keys-only"} {
		for i, au := range []*recourse.Authenticator{
			{Kind: recourse.AuthWebAuthn, Status: recourse.AuthActive, Name: "Key", Secret: []byte(`{"k":1}`), CredentialID: []byte("cred-" + id),
				DeviceBound: true, CreatedAt: T0.Add(2 * time.Second), LastUsedAt: &used},
			{Kind: recourse.AuthPassword, Status: recourse.AuthActive, Secret: []byte("$argon2id$..."), CreatedAt: T0},
			{Kind: recourse.AuthTOTP, Status: recourse.AuthRevoked, Secret: []byte("sealed"), LastStep: 42, CreatedAt: T0.Add(time.Second), RevokedAt: &used},
		} {
			au.AccountID = id
			au.ID = fmt.Sprintf("au_%s_%d", id, i)
			if err := s.CreateAuthenticator(ctx, au); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, id := range []string{"both", "channels-only", "keys-only", "neither"} {
		wantAcct, err := s.AccountByUsername(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		wantAuths, err := s.Authenticators(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		gotAcct, gotAuths, err := s.AccountWithAuthenticators(ctx, id)
		if err != nil {
			t.Fatalf("AccountWithAuthenticators(%s): %v", id, err)
		}
		if !reflect.DeepEqual(gotAcct, wantAcct) {
			t.Errorf("%s: account %+v, want %+v", id, gotAcct, wantAcct)
		}
		if len(gotAuths) != len(wantAuths) {
			t.Fatalf("%s: %d authenticators, want %d", id, len(gotAuths), len(wantAuths))
		}
		for i := range wantAuths {
			if !reflect.DeepEqual(gotAuths[i], wantAuths[i]) {
				t.Errorf("%s: authenticator %d = %+v, want %+v", id, i, gotAuths[i], wantAuths[i])
			}
		}
	}
	if _, _, err := s.AccountWithAuthenticators(ctx, "nobody"); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("unknown username: %v", err)
	}
}

func testSessions(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	mustCreate(t, s, NewAccount("a"))
	mk := func(hash string, exp time.Time) *recourse.Session {
		ses := &recourse.Session{AccountID: "a", TokenHash: []byte(hash), AAL: recourse.AAL2, Methods: []string{"pwd", "otp"},
			AuthTime: T0, ReauthAt: T0, CreatedAt: T0, LastSeenAt: T0, ExpiresAt: exp, IdleTimeout: time.Hour, IP: "192.0.2.1", UserAgent: "ua"}
		if err := s.CreateSession(ctx, ses); err != nil {
			t.Fatal(err)
		}
		return ses
	}
	s1 := mk("h1", T0.Add(24*time.Hour))
	s2 := mk("h2", T0.Add(24*time.Hour))
	mk("h3", T0.Add(time.Minute))
	got, err := s.SessionByTokenHash(ctx, []byte("h1"))
	if err != nil || got.ID != s1.ID || got.AAL != recourse.AAL2 || !slices.Equal(got.Methods, []string{"pwd", "otp"}) ||
		got.IdleTimeout != time.Hour || !got.ExpiresAt.Equal(s1.ExpiresAt) {
		t.Fatalf("SessionByTokenHash = %+v, %v", got, err)
	}
	if _, err := s.SessionByTokenHash(ctx, []byte("nope")); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("unknown hash: %v", err)
	}
	if err := s.TouchSession(ctx, s1.ID, T0.Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchSession(ctx, s1.ID, T0.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Session(ctx, s1.ID)
	if !got.LastSeenAt.Equal(T0.Add(30 * time.Minute)) {
		t.Errorf("LastSeenAt moved backwards: %v", got.LastSeenAt)
	}
	list, _ := s.Sessions(ctx, "a", T0.Add(40*time.Minute))
	if len(list) != 2 {
		t.Errorf("Sessions at +40m = %d, want 2 (one expired)", len(list))
	}
	got.TokenHash, got.AAL, got.Ceremony = []byte("h1b"), recourse.AAL3, []byte("c")
	if err := s.UpdateSession(ctx, got); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SessionByTokenHash(ctx, []byte("h1")); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("old token hash still valid after rotation: %v", err)
	}
	n, err := s.RevokeSessions(ctx, "a", s1.ID, T0.Add(time.Hour))
	if err != nil || n != 2 {
		t.Errorf("RevokeSessions = %d, %v; want 2", n, err)
	}
	got, _ = s.Session(ctx, s2.ID)
	if got.RevokedAt == nil || got.Active(T0) {
		t.Errorf("s2 not revoked: %+v", got)
	}
	if err := s.RevokeSession(ctx, s1.ID, T0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeSession(ctx, s1.ID, T0.Add(time.Hour)); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("second revoke: %v", err)
	}
	if err := s.UpdateSession(ctx, got); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("update of revoked session: %v", err)
	}
	n, err = s.DeleteExpiredSessions(ctx, T0.Add(48*time.Hour))
	if err != nil || n != 3 {
		t.Errorf("DeleteExpiredSessions = %d, %v", n, err)
	}
}

func testOutbox(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	for i := range 3 {
		m := &recourse.OutboxMessage{To: "a@example.com", Subject: fmt.Sprintf("s%d", i), Body: "b", CreatedAt: T0.Add(time.Duration(i) * time.Second)}
		if err := s.AddOutboxMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := s.OutboxMessages(ctx, 2)
	if err != nil || len(ms) != 2 || ms[0].Subject != "s2" || ms[1].Subject != "s1" {
		t.Errorf("OutboxMessages = %v, %v", ms, err)
	}
	// Messages stamped with the same time come back newest-inserted first.
	for i := range 3 {
		if err := s.AddOutboxMessage(ctx, &recourse.OutboxMessage{To: "b@example.com", Subject: fmt.Sprintf("tie%d", i), Body: "b", CreatedAt: T0.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	ms, _ = s.OutboxMessages(ctx, 3)
	if len(ms) != 3 || ms[0].Subject != "tie2" || ms[1].Subject != "tie1" || ms[2].Subject != "tie0" {
		t.Errorf("same-time messages out of order: %v %v %v", ms[0].Subject, ms[1].Subject, ms[2].Subject)
	}
}

// testAfterCommit: what a transaction asks to run after it commits runs
// once the commit is visible to everyone, and never after a rollback (the
// job queue wakes its workers with it).
func testAfterCommit(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	type afterCommitter interface{ AfterCommit(func()) }
	var ran []string
	err := s.InTx(ctx, func(tx recourse.Tx) error {
		ac, ok := tx.(afterCommitter)
		if !ok {
			t.Fatalf("%T has no AfterCommit", tx)
		}
		if err := tx.CreateAccount(ctx, NewAccount("after-commit")); err != nil {
			return err
		}
		ac.AfterCommit(func() {
			_, err := s.Account(ctx, "after-commit")
			ran = append(ran, fmt.Sprintf("committed visible=%v", err == nil))
		})
		if len(ran) != 0 {
			t.Errorf("AfterCommit ran inside the transaction")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"committed visible=true"}; !slices.Equal(ran, want) {
		t.Errorf("after commit: ran %q, want %q", ran, want)
	}
	ran = nil
	_ = s.InTx(ctx, func(tx recourse.Tx) error {
		tx.(afterCommitter).AfterCommit(func() { ran = append(ran, "rolled back") })
		return errors.New("boom")
	})
	if len(ran) != 0 {
		t.Errorf("after rollback: ran %q, want nothing", ran)
	}
}

func testTxRollback(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx recourse.Tx) error {
		if err := tx.CreateAccount(ctx, NewAccount("rolled")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx err = %v", err)
	}
	if _, err := s.Account(ctx, "rolled"); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("rolled-back account exists: %v", err)
	}
	err = s.InTx(ctx, func(tx recourse.Tx) error {
		for _, id := range []string{"t1", "t2"} {
			if err := tx.CreateAccount(ctx, NewAccount(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Account(ctx, "t2"); err != nil {
		t.Errorf("committed account missing: %v", err)
	}
}
