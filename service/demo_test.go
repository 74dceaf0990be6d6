package service

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/store/sqlite"
)

// interruptedStore is the real store with one fault: the failAt-th authenticator
// created through it fails, as a process killed at that moment would.
type interruptedStore struct {
	recourse.Store
	failAt, created int
}

type interruptedTx struct {
	recourse.Tx
	s *interruptedStore
}

func (s *interruptedStore) InTx(ctx context.Context, fn func(recourse.Tx) error) error {
	return s.Store.InTx(ctx, func(tx recourse.Tx) error { return fn(interruptedTx{tx, s}) })
}

func (tx interruptedTx) CreateAuthenticator(ctx context.Context, a *recourse.Authenticator) error {
	tx.s.created++
	if tx.s.created == tx.s.failAt {
		return errors.New("injected failure")
	}
	return tx.Tx.CreateAuthenticator(ctx, a)
}

// TestSeedDemoInterruptedLeavesNothingHalfDone interrupts the seed at each
// authenticator it binds, then seeds again as a restarted process would: every
// demo person must end with exactly one password and one demo TOTP. A seed
// that committed person by person left the directory non-empty, so the
// restart skipped it and people without a password (the crash test's "0
// active passwords").
func TestSeedDemoInterruptedLeavesNothingHalfDone(t *testing.T) {
	for _, failAt := range []int{1, 2, 3, 6, 9, 16} {
		t.Run(fmt.Sprint(failAt), func(t *testing.T) {
			ctx := t.Context()
			st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "r.db"), sqlite.Options{Migrate: true})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			clock := &testClock{t: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}
			cfg := DefaultConfig()
			cfg.PasswordParams = testParams
			open := func(s recourse.Store) *Service {
				svc, err := New(Options{Store: s, Clock: clock, Config: cfg, Keys: Keys{Master: []byte(strings.Repeat("k", 32))}})
				if err != nil {
					t.Fatal(err)
				}
				return svc
			}
			if _, err := open(&interruptedStore{Store: st, failAt: failAt}).SeedDemo(ctx); err == nil {
				t.Fatal("the interrupted seed reported success")
			}
			users, err := open(st).SeedDemo(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(users) != 9 {
				t.Fatalf("demo users after the restart = %d", len(users))
			}
			for _, u := range users {
				auths, err := st.Authenticators(ctx, u.Username)
				if err != nil {
					t.Fatal(err)
				}
				counts := map[recourse.AuthenticatorKind]int{}
				for _, au := range auths {
					if au.Status == recourse.AuthActive {
						counts[au.Kind]++
					}
				}
				want := 1
				if u.Username == "svc.payroll" {
					want = 0
				}
				if counts[recourse.AuthPassword] != want || counts[recourse.AuthTOTP] != want || (want == 1 && u.TOTPSecret == "") {
					t.Errorf("%s: %d passwords, %d TOTP (want %d each)", u.Username, counts[recourse.AuthPassword], counts[recourse.AuthTOTP], want)
				}
			}
		})
	}
}
