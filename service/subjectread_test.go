package service

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/recourse/recourse"
)

// TestSubjectReadAnswersFromItsCopy: reads of the subject, its channels and
// the accounts read with it come from the copies; anything else is read
// from the store.
func TestSubjectReadAnswersFromItsCopy(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	verified := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	copyOf := &recourse.Account{ID: "subject",
		Emails: []recourse.Channel{{ID: "ch_mail", AccountID: "subject", Kind: recourse.ChannelEmail, Address: "copy@example.com", VerifiedAt: &verified}},
		Phones: []recourse.Channel{{ID: "ch_phone", AccountID: "subject", Kind: recourse.ChannelPhone, Address: "+15550100"}}}
	err := f.store.InTx(ctx, func(tx recourse.Tx) error {
		manager := &recourse.Account{ID: "manager", Username: "copy-of-manager"}
		st := subjectRead{Tx: tx, a: copyOf, others: map[string]*recourse.Account{"manager": manager}}
		if m, err := st.Account(ctx, "manager"); err != nil || m == manager || m.Username != "copy-of-manager" {
			t.Errorf("Account(manager) = %+v, %v, want a copy of the one read before", m, err)
		}
		a, err := st.Account(ctx, "subject")
		if err != nil || a == copyOf || a.ID != "subject" {
			t.Errorf("Account(subject) = %p %v, want a copy of %p", a, err, copyOf)
		}
		if _, err := st.Account(ctx, "someone-else"); !errors.Is(err, recourse.ErrNotFound) {
			t.Errorf("Account(someone-else) = %v, want the store's ErrNotFound", err)
		}
		for _, tc := range []struct{ id, address string }{{"ch_mail", "copy@example.com"}, {"ch_phone", "+15550100"}} {
			c, err := st.Channel(ctx, tc.id)
			if err != nil || c.Address != tc.address {
				t.Errorf("Channel(%s) = %+v, %v", tc.id, c, err)
			}
		}
		if c, _ := st.Channel(ctx, "ch_mail"); c.VerifiedAt == nil || !c.VerifiedAt.Equal(verified) {
			t.Errorf("Channel(ch_mail) lost its verification time: %+v", c)
		}
		if _, err := st.Channel(ctx, "ch_other"); !errors.Is(err, recourse.ErrNotFound) {
			t.Errorf("Channel(ch_other) = %v, want the store's ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestReadSubjectReadsApproversOfCollectingRequestsOnly: the people an
// approval transition would notify are read before the transaction only
// when the evidence can cause that transition.
func TestReadSubjectReadsApproversOfCollectingRequestsOnly(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	f.person(t, "boss")
	f.person(t, "friend")
	a := f.person(t, "worker")
	a.ManagerID, a.RecoveryContacts, a.SponsorID = "boss", []string{"friend", "boss", "ghost"}, ""
	tests := []struct {
		state recourse.RecoveryState
		want  []string
	}{
		{recourse.RecoveryCollecting, []string{"boss", "friend"}}, // ghost cannot be read: left to the transaction
		{recourse.RecoveryAwaitingApproval, nil},
		{recourse.RecoveryCoolingOff, nil},
	}
	for _, tc := range tests {
		c := f.svc.readSubject(ctx, a, &recourse.Recovery{State: tc.state})
		var got []string
		for id := range c.others {
			got = append(got, id)
		}
		slices.Sort(got)
		if c.a != a || !slices.Equal(got, tc.want) {
			t.Errorf("%s: subject %p (want %p), others %v, want %v", tc.state, c.a, a, got, tc.want)
		}
	}
	var none *subjectRead
	if err := f.store.InTx(ctx, func(tx recourse.Tx) error {
		if _, wrapped := none.in(tx).(subjectRead); wrapped {
			t.Error("a nil subjectRead does not hand back the transaction")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
