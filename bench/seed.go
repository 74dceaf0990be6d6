package bench

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/service"
)

// The bench directory: accounts bench0000001 … benchNNNNNNN, each with a
// confirmed email address, the shared bench password and its own
// authenticator app, in teams of teamSize whose first member manages the
// others. The roles a run gives them depend on the number of clients C;
// each client holds perClient sessions of each kind, so that no person
// acts more often than the API's per-account limit (600 calls a minute)
// allows:
//
//   - teams 0 … C·perClient-1: recovery-full; client k recovers the members
//     of teams k, k+C, … and approves as their managers;
//   - the rest is the pool: its first C·perClient accounts sign in for
//     routine changes, each naming the account C·perClient places further
//     as a recovery contact; of what follows, the first half signs in
//     (signin), the second half is asked about (recovery-start,
//     recovery-code).
//
// Seeding does not depend on C, so one database serves runs with any
// number of clients.
const (
	teamSize  = 20
	perClient = 4
	// BenchPassword is every bench account's password.
	BenchPassword = "bench-Load-Generator-2026"
	// seedBatch accounts are created per transaction.
	seedBatch = 1000
)

func minAccounts(clients int) int { return clients*perClient*(teamSize+2) + 20 }

// accountID is the id (and username) of bench account i, from 1.
func accountID(i int) string { return fmt.Sprintf("bench%07d", i) }

// totpSecret derives account id's authenticator secret, so the load
// generator can compute codes without storing 10⁶ secrets.
func totpSecret(id string) string {
	sum := sha256.Sum256([]byte("recourse bench totp " + id))
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:20])
}

// layout assigns the seeded accounts to roles for a run with C clients.
type layout struct {
	n, clients int
}

// teams is how many teams recovery-full uses.
func (l layout) teams() int { return l.clients * perClient }

// team returns client k's j-th team (j wraps at perClient).
func (l layout) team(k, j int) int { return k + (j%perClient)*l.clients }

func (l layout) leader(team int) string { return accountID(team*teamSize + 1) }

// member returns the j-th (wrapping) non-leader of a team.
func (l layout) member(team, j int) string {
	return accountID(team*teamSize + 2 + j%(teamSize-1))
}

// pool returns the i-th account of the pool.
func (l layout) pool(i int) string { return accountID(l.teams()*teamSize + 1 + i) }

func (l layout) poolSize() int { return l.n - l.teams()*teamSize }

// routineAccount is client k's j-th routine account; routineContact the
// person it names as a recovery contact.
func (l layout) routineAccount(k, j int) string { return l.pool(k + (j%perClient)*l.clients) }
func (l layout) routineContact(k, j int) string {
	return l.pool(l.teams() + k + (j%perClient)*l.clients)
}

// signinCount is the size of the sign-in slice; the recovery slice has the
// rest.
func (l layout) signinCount() int { return (l.poolSize() - 2*l.teams()) / 2 }

func (l layout) signinAccount(i int) string { return l.pool(2*l.teams() + i%l.signinCount()) }

func (l layout) recoveryCount() int { return l.poolSize() - 2*l.teams() - l.signinCount() }

func (l layout) recoveryAccount(i int) string {
	return l.pool(2*l.teams() + l.signinCount() + i%l.recoveryCount())
}

// benchAccount is the directory entry of account i.
func benchAccount(i int) *recourse.Account {
	id := accountID(i)
	a := &recourse.Account{ID: id, Username: id, DisplayName: fmt.Sprintf("Bench Person %d", i), Kind: recourse.KindHuman,
		Status: recourse.StatusActive, Employment: recourse.EmploymentEmployee, IAL: 2, Groups: []string{service.BenchGroup},
		Emails: []recourse.Channel{{Kind: recourse.ChannelEmail, Address: id + "@bench.example", Verified: true}}}
	if lead := (i-1)/teamSize*teamSize + 1; lead != i {
		a.ManagerID = accountID(lead)
	}
	return a
}

// seed creates accounts 1…n that do not exist yet, in batches, drawing a
// progress bar on w when there are many.
func seed(ctx context.Context, svc *service.Service, n int, params credential.PasswordParams, w io.Writer, live bool) (created int, err error) {
	start := time.Now()
	have, err := seeded(ctx, svc, n)
	if err != nil || have == n {
		return 0, err
	}
	hash, err := credential.HashPassword(BenchPassword, params)
	if err != nil {
		return 0, err
	}
	creds := service.BenchCredentials{PasswordHash: hash, TOTPSecret: totpSecret}
	bar := newProgressBar(w, live, n-have, "seeding", "accounts")
	meta := service.Meta{Channel: recourse.ViaSystem, Actor: recourse.AuditActor{Role: recourse.ActorSystem}}
	for lo := have + 1; lo <= n; lo += seedBatch {
		hi := min(n, lo+seedBatch-1)
		batch := make([]*recourse.Account, 0, hi-lo+1)
		ids := make([]string, 0, hi-lo+1)
		for i := lo; i <= hi; i++ {
			batch = append(batch, benchAccount(i))
			ids = append(ids, accountID(i))
		}
		if _, err := svc.ImportAccounts(ctx, batch, meta); err != nil {
			return created, fmt.Errorf("seed accounts %d–%d: %w", lo, hi, err)
		}
		if err := svc.SeedBenchCredentials(ctx, ids, creds); err != nil {
			return created, fmt.Errorf("seed credentials %d–%d: %w", lo, hi, err)
		}
		created += len(batch)
		bar.set(created)
	}
	bar.done(time.Since(start))
	return created, nil
}

// seeded counts the bench accounts 1…n that exist already (from an earlier
// run on the same database). Accounts are seeded in order, so existence is
// monotone and a binary search finds the boundary; the last one must have
// its credentials, else a run was interrupted between the two steps of a
// batch.
func seeded(ctx context.Context, svc *service.Service, n int) (int, error) {
	var ferr error
	have := sort.Search(n, func(i int) bool {
		_, err := svc.Store().Account(ctx, accountID(i+1))
		if err != nil && !errors.Is(err, recourse.ErrNotFound) {
			ferr = err
		}
		return err != nil
	})
	if ferr != nil || have == 0 {
		return have, ferr
	}
	auths, err := svc.Store().Authenticators(ctx, accountID(have))
	if err != nil {
		return 0, err
	}
	if len(auths) == 0 {
		return 0, fmt.Errorf("bench account %s has no credentials: an earlier seeding stopped half-way; use a fresh database", accountID(have))
	}
	return have, nil
}

// progressBar draws "seeding [#####     ]  45%  450,000/1,000,000 accounts  12,345/s  ETA 45s".
type progressBar struct {
	w       io.Writer
	live    bool
	total   int
	verb    string
	what    string
	start   time.Time
	last    time.Time
	enabled bool
}

func newProgressBar(w io.Writer, live bool, total int, verb, what string) *progressBar {
	return &progressBar{w: w, live: live, total: total, verb: verb, what: what, start: time.Now(), enabled: total >= 2*seedBatch}
}

func (p *progressBar) set(n int) {
	if !p.enabled {
		return
	}
	now := time.Now()
	every := time.Second
	if !p.live {
		every = 10 * time.Second
	}
	if now.Sub(p.last) < every && n < p.total {
		return
	}
	p.last = now
	const width = 30
	filled := width * n / p.total
	rate := float64(n) / now.Sub(p.start).Seconds()
	eta := time.Duration(float64(p.total-n)/rate) * time.Second
	line := fmt.Sprintf("%s [%s%s] %3d%%  %s/%s %s  %s/s  ETA %s", p.verb, bar('#', filled), bar(' ', width-filled), 100*n/p.total,
		thousands(int64(n)), thousands(int64(p.total)), p.what, thousands(int64(rate)), eta.Round(time.Second))
	if p.live {
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

func (p *progressBar) done(d time.Duration) {
	if p.enabled && p.live {
		fmt.Fprintln(p.w)
	}
}

func bar(c byte, n int) string {
	b := make([]byte, max(n, 0))
	for i := range b {
		b[i] = c
	}
	return string(b)
}
