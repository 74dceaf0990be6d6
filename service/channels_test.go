package service

import (
	"slices"
	"testing"

	"github.com/recourse/recourse"
)

// SetRecoveryContacts starts from the account its principal carries, and
// a change made to the account since that was read is neither lost nor
// refused: the contacts are set on the account as stored.
func TestSetRecoveryContactsKeepsAChangeMadeMeanwhile(t *testing.T) {
	f := newFixture(t)
	for _, id := range []string{"alice", "bob", "carol"} {
		f.person(t, id)
	}
	ctx := t.Context()
	p := f.principal(t, f.signIn(t, "alice").Token)
	for _, tc := range []struct {
		name     string
		meantime func(t *testing.T) // a change after p's account was read
		contacts []string
	}{
		{name: "account changed since it was read", contacts: []string{"bob"}, meantime: func(t *testing.T) {
			a, err := f.store.Account(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			a.DisplayName = "Alice Changed"
			if err := f.store.InTx(ctx, func(tx recourse.Tx) error { return tx.UpdateAccount(ctx, a) }); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "account as read", contacts: []string{"carol", "bob"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.meantime != nil {
				tc.meantime(t)
			}
			if err := f.svc.SetRecoveryContacts(ctx, p, tc.contacts, Meta{}); err != nil {
				t.Fatal(err)
			}
			stored, err := f.store.Account(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(stored.RecoveryContacts, tc.contacts) {
				t.Errorf("contacts %v, want %v", stored.RecoveryContacts, tc.contacts)
			}
			if stored.DisplayName != "Alice Changed" {
				t.Errorf("display name %q: the change made meanwhile was lost", stored.DisplayName)
			}
			if len(stored.Emails) != 1 || !stored.Emails[0].Verified {
				t.Errorf("emails %+v, want the one confirmed address", stored.Emails)
			}
			if p.Account.Version != stored.Version || !slices.Equal(p.Account.RecoveryContacts, tc.contacts) {
				t.Errorf("principal's account at version %d with %v, stored at %d", p.Account.Version, p.Account.RecoveryContacts, stored.Version)
			}
		})
	}
}

// An account suspended after the request's sign-in check read it is not
// changed: the second attempt, on the account as stored, refuses.
func TestSetRecoveryContactsRefusedOnceSuspended(t *testing.T) {
	f := newFixture(t)
	for _, id := range []string{"alice", "bob"} {
		f.person(t, id)
	}
	ctx := t.Context()
	p := f.principal(t, f.signIn(t, "alice").Token)
	a, err := f.store.Account(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	a.Status = recourse.StatusSuspended
	if err := f.store.InTx(ctx, func(tx recourse.Tx) error { return tx.UpdateAccount(ctx, a) }); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.SetRecoveryContacts(ctx, p, []string{"bob"}, Meta{}); recourse.ErrorCode(err) != recourse.EUNAUTHORIZED {
		t.Fatalf("SetRecoveryContacts on a suspended account: %v, want a refusal", err)
	}
	stored, err := f.store.Account(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(stored.RecoveryContacts) != 0 {
		t.Errorf("a suspended account's contacts were set: %v", stored.RecoveryContacts)
	}
}
