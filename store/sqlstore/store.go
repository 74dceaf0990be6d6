package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/recourse/recourse"
)

// querier runs the store's statements: outside a transaction on the
// *sql.DB (dbQuerier), inside one on its TxConn (txQuerier).
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) Row
}

// Store is a recourse.Store over a *sql.DB.
type Store struct {
	queries
	db *sql.DB
}

var _ recourse.Store = (*Store)(nil)

// New wraps an open, migrated database.
func New(db *sql.DB, d Dialect) *Store {
	st := &Store{db: db}
	st.queries = queries{q: dbQuerier{db}, d: d, db: db}
	return st
}

// DB returns the underlying database handle.
func (s *Store) DB() *sql.DB { return s.db }

// InTx implements recourse.Store.
func (s *Store) InTx(ctx context.Context, fn func(tx recourse.Tx) error) error {
	return s.queries.inTransaction(ctx, func(q queries) error { return fn(q) })
}

// Ping implements recourse.Store.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
}

// Close implements recourse.Store.
func (s *Store) Close() error { return s.db.Close() }

// queries implements recourse.Tx over a database or a transaction.
type queries struct {
	q    querier
	d    Dialect
	inTx bool
	// db begins the transaction of a multi-statement write made outside
	// InTx. (On SQLite writers queue in the driver:
	// store/sqlite/writer.go.)
	db *sql.DB
	// committed collects what AfterCommit asked to run once the
	// transaction has committed; nil outside a transaction.
	committed *[]func()
	// queue holds the transaction's queued inserts (queue.go: its new
	// requests, audit events, codes, tokens and outbox deliveries) until
	// a statement touches them or the commit; nil outside a transaction.
	queue *writeQueue
}

// AfterCommit runs fn once the current transaction has committed, and never
// if it rolls back; outside a transaction it runs fn at once. fn must not
// block: the job queue uses it to wake its workers for the jobs the
// transaction inserted.
func (s queries) AfterCommit(fn func()) {
	if s.committed == nil {
		fn()
		return
	}
	*s.committed = append(*s.committed, fn)
}

// inTransaction runs fn in a transaction, or directly when already in one.
func (s queries) inTransaction(ctx context.Context, fn func(q queries) error) error {
	if s.inTx || s.db == nil {
		return fn(s)
	}
	begin := s.d.Begin
	if begin == nil {
		begin = beginSQL
	}
	tx, err := begin(ctx, s.db)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	var committed []func()
	queue := &writeQueue{}
	tq := txQuerier{tx: tx, queue: queue, d: s.d}
	q := queries{q: tq, d: s.d, inTx: true, db: s.db, committed: &committed, queue: queue}
	if err := fn(q); err != nil {
		return err
	}
	// The queued inserts go with the commit; a queued insert that failed
	// earlier (also when fn ignored the failed statement) fails it.
	if err := tq.commit(ctx); err != nil {
		return s.wrap("commit", err)
	}
	for _, f := range committed {
		f()
	}
	return nil
}

func (s queries) wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return recourse.ErrNotFound
	case s.d.IsUniqueViolation(err):
		return recourse.ErrConflict
	}
	var re *recourse.Error
	if errors.As(err, &re) {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}

func utc(t time.Time) time.Time { return t.UTC() }

func nullTime(t *time.Time) sql.NullTime {
	if t == nil {
		return sql.NullTime{}
	}
	return sql.NullTime{Time: t.UTC(), Valid: true}
}

func timePtr(n sql.NullTime) *time.Time {
	if !n.Valid {
		return nil
	}
	t := n.Time.UTC()
	return &t
}

func jsonList(v []string) string {
	if v == nil {
		v = []string{}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func parseList(s string) ([]string, error) {
	var v []string
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("decode list: %w", err)
	}
	if len(v) == 0 {
		return nil, nil
	}
	return v, nil
}

func affected(res sql.Result, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// ---- accounts ----

const accountColumns = `id, username, display_name, kind, status, employment, contract_end, manager_id, sponsor_id,
    owners, group_names, roles, recovery_contacts, ial, failed_signins, locked_at, created_at, updated_at, version,
    recovery_failures, frozen_at`

type scanner interface{ Scan(dest ...any) error }

func scanAccount(r scanner) (*recourse.Account, error) {
	var row accountRow
	if err := r.Scan(row.dest()...); err != nil {
		return nil, err
	}
	return row.account()
}

// accountRow holds the columns of accountColumns as they are scanned.
type accountRow struct {
	a                               recourse.Account
	contractEnd, lockedAt, frozenAt sql.NullTime
	owners, groups, roles, contacts string
}

func (r *accountRow) dest() []any {
	a := &r.a
	return []any{&a.ID, &a.Username, &a.DisplayName, &a.Kind, &a.Status, &a.Employment, &r.contractEnd,
		&a.ManagerID, &a.SponsorID, &r.owners, &r.groups, &r.roles, &r.contacts, &a.IAL, &a.FailedSignIns, &r.lockedAt,
		&a.CreatedAt, &a.UpdatedAt, &a.Version, &a.RecoveryFailures, &r.frozenAt}
}

func (r *accountRow) account() (*recourse.Account, error) {
	a := r.a
	var err error
	if a.Owners, err = parseList(r.owners); err != nil {
		return nil, err
	}
	if a.Groups, err = parseList(r.groups); err != nil {
		return nil, err
	}
	if a.Roles, err = parseList(r.roles); err != nil {
		return nil, err
	}
	if a.RecoveryContacts, err = parseList(r.contacts); err != nil {
		return nil, err
	}
	a.ContractEnd = timePtr(r.contractEnd)
	a.LockedAt = timePtr(r.lockedAt)
	a.FrozenAt = timePtr(r.frozenAt)
	a.CreatedAt, a.UpdatedAt = utc(a.CreatedAt), utc(a.UpdatedAt)
	return &a, nil
}

// accountColumnsOfA are accountColumns of the table aliased a.
var accountColumnsOfA = prefixColumns(accountColumns, "a.")

// prefixColumns qualifies each of a comma-separated list of columns.
func prefixColumns(columns, prefix string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = prefix + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

func (s queries) loadChannels(ctx context.Context, a *recourse.Account) error {
	chs, err := s.channels(ctx, `c.account_id = $1`, a.ID)
	if err != nil {
		return err
	}
	a.Emails, a.Phones = nil, nil
	for _, c := range chs {
		addChannel(a, c)
	}
	return nil
}

// addChannel files c under the account's addresses or phone numbers.
func addChannel(a *recourse.Account, c recourse.Channel) {
	if c.Kind == recourse.ChannelEmail {
		a.Emails = append(a.Emails, c)
	} else {
		a.Phones = append(a.Phones, c)
	}
}

// account reads the account where says (of the table aliased a) with its
// channels, in one statement: a row per channel, or one row without a
// channel. An account is read several times in every recovery, and on
// PostgreSQL each statement is a round trip.
func (s queries) account(ctx context.Context, where string, arg any) (*recourse.Account, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT `+accountColumnsOfA+`, `+channelColumns+`
		FROM accounts a LEFT JOIN channels c ON c.account_id = a.id WHERE `+where, arg)
	if err != nil {
		return nil, s.wrap("read account", err)
	}
	return s.accountRows(rows, nil)
}

// accountRows reads an account and its channels from rows whose columns
// are lead's (the same in every row; scanned into lead's destinations),
// then accountColumnsOfA, then channelColumns: one row per channel, or
// one row without a channel. It closes rows; ErrNotFound when there is
// none.
func (s queries) accountRows(rows Rows, lead []any) (*recourse.Account, error) {
	return s.accountRowsThen(rows, lead, nil, nil)
}

// accountRowsThen is accountRows for rows with more columns after the
// channel's, scanned into trail's destinations; each is called after each
// row is scanned.
func (s queries) accountRowsThen(rows Rows, lead, trail []any, each func() error) (*recourse.Account, error) {
	defer rows.Close()
	var a *recourse.Account
	for rows.Next() {
		var row accountRow
		var ch channelRow
		if err := rows.Scan(slices.Concat(lead, row.dest(), ch.dest(), trail)...); err != nil {
			return nil, s.wrap("read account", err)
		}
		if each != nil {
			if err := each(); err != nil {
				return nil, s.wrap("read account", err)
			}
		}
		if a == nil {
			var err error
			if a, err = row.account(); err != nil {
				return nil, s.wrap("read account", err)
			}
		}
		if c, ok := ch.channel(); ok {
			addChannel(a, c)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("read account", err)
	}
	if a == nil {
		return nil, recourse.ErrNotFound
	}
	// Channels in the order they were added, sorted here rather than by
	// the statement (a sort node costs PostgreSQL its set-up on every
	// execution, and an account is read several times a recovery).
	sortChannels(a.Emails)
	sortChannels(a.Phones)
	return a, nil
}

// sortChannels orders an account's channels of one kind as they were
// added: by creation time, then id.
func sortChannels(cs []recourse.Channel) {
	slices.SortFunc(cs, func(a, b recourse.Channel) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
}

func (s queries) Account(ctx context.Context, id string) (*recourse.Account, error) {
	return s.account(ctx, `a.id = $1`, id)
}

func (s queries) AccountByUsername(ctx context.Context, username string) (*recourse.Account, error) {
	return s.account(ctx, `a.username = $1`, username)
}

// accountWithAuthenticatorsSQL is AccountWithAuthenticators' statement:
// the account twice, once with each of its channels (as AccountByUsername
// reads them) and once with each of its authenticators, so that neither
// multiplies the other. The parts are joined rather than a UNION so that
// every column stays a table's column (SQLite's driver types a column by
// its declaration, and a NULL in a UNION's first branch has none). Built
// once.
var accountWithAuthenticatorsSQL = `SELECT ` + accountColumnsOfA + `, ` + channelColumns + `, ` + prefixColumns(authenticatorColumns, "au.") + `
		FROM accounts a CROSS JOIN (SELECT 1 AS n UNION ALL SELECT 2) part
		LEFT JOIN channels c ON part.n = 1 AND c.account_id = a.id
		LEFT JOIN authenticators au ON part.n = 2 AND au.account_id = a.id
		WHERE a.username = $1`

func (s queries) AccountWithAuthenticators(ctx context.Context, username string) (*recourse.Account, []*recourse.Authenticator, error) {
	rows, err := s.q.QueryContext(ctx, accountWithAuthenticatorsSQL, username)
	if err != nil {
		return nil, nil, s.wrap("read account", err)
	}
	var auths []*recourse.Authenticator
	var au authenticatorRow
	a, err := s.accountRowsThen(rows, nil, au.dest(), func() error {
		x, ok, err := au.authenticator()
		if ok {
			auths = append(auths, x)
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	slices.SortFunc(auths, func(x, y *recourse.Authenticator) int {
		if c := x.CreatedAt.Compare(y.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	return a, auths, nil
}

func (s queries) AccountByVerifiedEmail(ctx context.Context, address string) (*recourse.Account, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT account_id FROM channels WHERE kind = 'email' AND address = $1 AND verified_at IS NOT NULL`, address)
	if err != nil {
		return nil, s.wrap("find email", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, s.wrap("find email", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.wrap("find email", err)
	}
	if len(ids) != 1 {
		// An address held by several accounts identifies none of them.
		return nil, recourse.ErrNotFound
	}
	var n int
	if err := s.q.QueryRowContext(ctx, `SELECT count(*) FROM channels WHERE kind = 'email' AND address = $1`, address).Scan(&n); err != nil {
		return nil, s.wrap("find email", err)
	}
	if n != 1 {
		return nil, recourse.ErrNotFound
	}
	return s.Account(ctx, ids[0])
}

func (s queries) ListAccounts(ctx context.Context, f recourse.AccountFilter) ([]*recourse.Account, error) {
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	q := `SELECT ` + accountColumns + ` FROM accounts WHERE id > $1`
	args := []any{f.After}
	if f.Query != "" {
		pat := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(strings.ToLower(f.Query)) + "%"
		q += ` AND (lower(id) LIKE $2 ESCAPE '\' OR username LIKE $2 ESCAPE '\' OR lower(display_name) LIKE $2 ESCAPE '\')`
		args = append(args, pat)
	}
	q += fmt.Sprintf(` ORDER BY id LIMIT %d`, limit)
	rows, err := s.q.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.wrap("list accounts", err)
	}
	var out []*recourse.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			rows.Close()
			return nil, s.wrap("list accounts", err)
		}
		out = append(out, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.wrap("list accounts", err)
	}
	for _, a := range out {
		if err := s.loadChannels(ctx, a); err != nil {
			return nil, s.wrap("list accounts", err)
		}
	}
	return out, nil
}

func (s queries) CreateAccount(ctx context.Context, a *recourse.Account) error {
	return s.inTransaction(ctx, func(s queries) error {
		if a.Version == 0 {
			a.Version = 1
		}
		_, err := s.q.ExecContext(ctx, `INSERT INTO accounts (`+accountColumns+`)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)`,
			a.ID, a.Username, a.DisplayName, a.Kind, a.Status, a.Employment, nullTime(a.ContractEnd), a.ManagerID, a.SponsorID,
			jsonList(a.Owners), jsonList(a.Groups), jsonList(a.Roles), jsonList(a.RecoveryContacts), a.IAL,
			a.FailedSignIns, nullTime(a.LockedAt), utc(a.CreatedAt), utc(a.UpdatedAt), a.Version, a.RecoveryFailures, nullTime(a.FrozenAt))
		if err != nil {
			return s.wrap("create account", err)
		}
		return s.insertChannels(ctx, a)
	})
}

func (s queries) insertChannels(ctx context.Context, a *recourse.Account) error {
	for _, list := range [][]recourse.Channel{a.Emails, a.Phones} {
		for i := range list {
			c := &list[i]
			c.AccountID = a.ID
			if c.ID == "" {
				c.ID = recourse.NewID("ch_")
			}
			if c.CreatedAt.IsZero() {
				c.CreatedAt = a.UpdatedAt
			}
			if err := s.AddChannel(ctx, c); err != nil {
				return err
			}
			if c.Verified {
				at := c.CreatedAt
				if c.VerifiedAt != nil {
					at = *c.VerifiedAt
				}
				if err := s.MarkChannelVerified(ctx, c.ID, at); err != nil {
					return err
				}
				c.VerifiedAt = &at
			}
		}
	}
	return nil
}

func (s queries) UpdateAccount(ctx context.Context, a *recourse.Account) error {
	return s.inTransaction(ctx, func(s queries) error {
		args := []any{a.ID, a.Username, a.DisplayName, a.Kind, a.Status, a.Employment, nullTime(a.ContractEnd), a.ManagerID, a.SponsorID,
			jsonList(a.Owners), jsonList(a.Groups), jsonList(a.Roles), jsonList(a.RecoveryContacts), a.IAL, utc(a.UpdatedAt), a.Version}
		var updated bool
		var old []recourse.Channel
		var err error
		if s.d.InsertInWith {
			// The update and the channels it reconciles below in one
			// statement: a row (its channel's columns NULL for an account
			// without channels) for each channel of an updated account,
			// none when nothing was updated.
			updated, old, err = s.updateAccountWithChannels(ctx, args)
		} else {
			var n int
			if n, err = affected(s.q.ExecContext(ctx, updateAccountSQL, args...)); err == nil && n > 0 {
				updated = true
				old, err = s.channels(ctx, `c.account_id = $1`, a.ID)
			}
		}
		if err != nil {
			return s.wrap("update account", err)
		}
		if !updated {
			var exists int
			if err := s.q.QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE id = $1`, a.ID).Scan(&exists); err != nil {
				return s.wrap("update account", err)
			}
			if exists == 0 {
				return recourse.ErrNotFound
			}
			return recourse.ErrConflict
		}
		a.Version++
		// Replace the channel set, keeping rows (and their confirmation)
		// for addresses that stay.
		keep := map[string]recourse.Channel{}
		for _, c := range old {
			keep[string(c.Kind)+"\x00"+c.Address] = c
		}
		var fresh recourse.Account
		fresh.ID, fresh.UpdatedAt = a.ID, a.UpdatedAt
		for _, list := range []*[]recourse.Channel{&a.Emails, &a.Phones} {
			for i := range *list {
				c := &(*list)[i]
				k := string(c.Kind) + "\x00" + c.Address
				if o, ok := keep[k]; ok {
					delete(keep, k)
					c.ID, c.AccountID, c.CreatedAt = o.ID, a.ID, o.CreatedAt
					if c.Verified && !o.Verified {
						at := a.UpdatedAt
						if c.VerifiedAt != nil {
							at = *c.VerifiedAt
						}
						if err := s.MarkChannelVerified(ctx, c.ID, at); err != nil {
							return err
						}
					} else {
						c.Verified, c.VerifiedAt = o.Verified, o.VerifiedAt
					}
					continue
				}
				c.ID = ""
				if c.Kind == recourse.ChannelEmail {
					fresh.Emails = append(fresh.Emails, *c)
				} else {
					fresh.Phones = append(fresh.Phones, *c)
				}
			}
		}
		for _, c := range keep {
			if err := s.DeleteChannel(ctx, c.ID); err != nil {
				return err
			}
		}
		return s.insertChannels(ctx, &fresh)
	})
}

// updateAccountSQL updates an account's own columns if its version is $16.
const updateAccountSQL = `UPDATE accounts SET username = $2, display_name = $3, kind = $4, status = $5,
        employment = $6, contract_end = $7, manager_id = $8, sponsor_id = $9, owners = $10, group_names = $11, roles = $12,
        recovery_contacts = $13, ial = $14, updated_at = $15, version = version + 1
        WHERE id = $1 AND version = $16`

// updateAccountWithChannelsSQL is updateAccountSQL with the updated
// account's channels, where an UPDATE may run in a WITH clause.
const updateAccountWithChannelsSQL = `WITH u AS (` + updateAccountSQL + ` RETURNING id)
        SELECT ` + channelColumns + ` FROM u LEFT JOIN channels c ON c.account_id = u.id`

// updateAccountWithChannels runs updateAccountWithChannelsSQL: whether the
// account was updated, and its channels before the update.
func (s queries) updateAccountWithChannels(ctx context.Context, args []any) (bool, []recourse.Channel, error) {
	rows, err := s.q.QueryContext(ctx, updateAccountWithChannelsSQL, args...)
	if err != nil {
		return false, nil, err
	}
	defer rows.Close()
	var updated bool
	var out []recourse.Channel
	for rows.Next() {
		updated = true
		var ch channelRow
		if err := rows.Scan(ch.dest()...); err != nil {
			return false, nil, err
		}
		if c, ok := ch.channel(); ok {
			out = append(out, c)
		}
	}
	return updated, out, rows.Err()
}

// channelRow is channelColumns of a left join: NULL when the row has no
// channel.
type channelRow struct {
	id, account, kind, address sql.NullString
	verified, created          sql.NullTime
	shared                     sql.NullBool
}

func (r *channelRow) dest() []any {
	return []any{&r.id, &r.account, &r.kind, &r.address, &r.verified, &r.created, &r.shared}
}

// channel is the row's channel; false for a row without one.
func (r *channelRow) channel() (recourse.Channel, bool) {
	if !r.id.Valid {
		return recourse.Channel{}, false
	}
	return channelOf(r.id.String, r.account.String, r.kind.String, r.address.String, r.verified, r.created.Time, r.shared.Bool), true
}

func (s queries) RecordSignInFailure(ctx context.Context, accountID string, limit int, at time.Time) (int, bool, error) {
	var n int
	var locked sql.NullTime
	err := s.q.QueryRowContext(ctx, `UPDATE accounts SET failed_signins = failed_signins + 1,
        locked_at = CASE WHEN locked_at IS NULL AND failed_signins + 1 >= $2 THEN $3 ELSE locked_at END
        WHERE id = $1 RETURNING failed_signins, locked_at`, accountID, limit, utc(at)).Scan(&n, &locked)
	if err != nil {
		return 0, false, s.wrap("record sign-in failure", err)
	}
	return n, locked.Valid, nil
}

func (s queries) ResetSignInFailures(ctx context.Context, accountID string) error {
	_, err := s.q.ExecContext(ctx, `UPDATE accounts SET failed_signins = 0 WHERE id = $1 AND failed_signins <> 0 AND locked_at IS NULL`, accountID)
	return s.wrap("reset sign-in failures", err)
}

func (s queries) UnlockAccount(ctx context.Context, accountID string) error {
	n, err := affected(s.q.ExecContext(ctx, `UPDATE accounts SET failed_signins = 0, locked_at = NULL WHERE id = $1`, accountID))
	if err != nil {
		return s.wrap("unlock account", err)
	}
	if n == 0 {
		return recourse.ErrNotFound
	}
	return nil
}

// ---- channels ----

const channelColumns = `c.id, c.account_id, c.kind, c.address, c.verified_at, c.created_at,
    EXISTS (SELECT 1 FROM channels o WHERE o.kind = c.kind AND o.address = c.address AND o.account_id <> c.account_id)`

func (s queries) channels(ctx context.Context, where string, arg any) ([]recourse.Channel, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT `+channelColumns+` FROM channels c WHERE `+where+` ORDER BY c.created_at, c.id`, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []recourse.Channel
	for rows.Next() {
		var id, account, kind, address string
		var verified sql.NullTime
		var created time.Time
		var shared bool
		if err := rows.Scan(&id, &account, &kind, &address, &verified, &created, &shared); err != nil {
			return nil, err
		}
		out = append(out, channelOf(id, account, kind, address, verified, created, shared))
	}
	return out, rows.Err()
}

// channelOf makes a Channel of the columns of channelColumns.
func channelOf(id, account, kind, address string, verified sql.NullTime, created time.Time, shared bool) recourse.Channel {
	return recourse.Channel{ID: id, AccountID: account, Kind: recourse.ChannelKind(kind), Address: address,
		Verified: verified.Valid, VerifiedAt: timePtr(verified), CreatedAt: utc(created), Shared: shared}
}

func (s queries) AddChannel(ctx context.Context, c *recourse.Channel) error {
	if c.ID == "" {
		c.ID = recourse.NewID("ch_")
	}
	_, err := s.q.ExecContext(ctx, `INSERT INTO channels (id, account_id, kind, address, created_at) VALUES ($1, $2, $3, $4, $5)`,
		c.ID, c.AccountID, c.Kind, c.Address, utc(c.CreatedAt))
	if err != nil {
		if s.d.IsUniqueViolation(err) {
			return recourse.ErrConflict
		}
		return s.wrap("add channel", err)
	}
	return nil
}

func (s queries) Channel(ctx context.Context, id string) (*recourse.Channel, error) {
	chs, err := s.channels(ctx, `c.id = $1`, id)
	if err != nil {
		return nil, s.wrap("read channel", err)
	}
	if len(chs) == 0 {
		return nil, recourse.ErrNotFound
	}
	return &chs[0], nil
}

func (s queries) DeleteChannel(ctx context.Context, id string) error {
	n, err := affected(s.q.ExecContext(ctx, `DELETE FROM channels WHERE id = $1`, id))
	if err != nil {
		return s.wrap("delete channel", err)
	}
	if n == 0 {
		return recourse.ErrNotFound
	}
	return nil
}

func (s queries) SetChannelCode(ctx context.Context, channelID string, hash []byte, expiresAt time.Time) error {
	n, err := affected(s.q.ExecContext(ctx, `UPDATE channels SET code_hash = $2, code_expires_at = $3, code_attempts = 0 WHERE id = $1`,
		channelID, hash, utc(expiresAt)))
	if err != nil {
		return s.wrap("set channel code", err)
	}
	if n == 0 {
		return recourse.ErrNotFound
	}
	return nil
}

func (s queries) TakeChannelCodeAttempt(ctx context.Context, channelID string, maxAttempts int) ([]byte, time.Time, error) {
	var hash []byte
	var exp sql.NullTime
	err := s.q.QueryRowContext(ctx, `UPDATE channels SET code_attempts = code_attempts + 1
        WHERE id = $1 AND code_hash IS NOT NULL AND code_attempts < $2 RETURNING code_hash, code_expires_at`,
		channelID, maxAttempts).Scan(&hash, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		var outstanding int
		if err := s.q.QueryRowContext(ctx, `SELECT count(*) FROM channels WHERE id = $1 AND code_hash IS NOT NULL`, channelID).Scan(&outstanding); err != nil {
			return nil, time.Time{}, s.wrap("take code attempt", err)
		}
		if outstanding > 0 {
			return nil, time.Time{}, recourse.Errorf(recourse.ERATELIMIT, "Too many wrong codes. Ask for a new code.")
		}
		return nil, time.Time{}, recourse.ErrNotFound
	}
	if err != nil {
		return nil, time.Time{}, s.wrap("take code attempt", err)
	}
	return hash, utc(exp.Time), nil
}

func (s queries) MarkChannelVerified(ctx context.Context, channelID string, at time.Time) error {
	n, err := affected(s.q.ExecContext(ctx, `UPDATE channels SET verified_at = $2, code_hash = NULL, code_expires_at = NULL, code_attempts = 0 WHERE id = $1`,
		channelID, utc(at)))
	if err != nil {
		return s.wrap("verify channel", err)
	}
	if n == 0 {
		return recourse.ErrNotFound
	}
	return nil
}

// ---- authenticators ----

const authenticatorColumns = `id, account_id, kind, status, name, secret, credential_id, device_bound, last_step, created_at, last_used_at, revoked_at`

// authenticatorRow is an authenticator's columns (authenticatorColumns),
// each of which may be NULL in a row of AccountWithAuthenticators without
// one.
type authenticatorRow struct {
	id, account, kind, status, name sql.NullString
	secret, credential              []byte
	deviceBound                     sql.NullBool
	lastStep                        sql.NullInt64
	created, used, revoked          sql.NullTime
}

func (r *authenticatorRow) dest() []any {
	return []any{&r.id, &r.account, &r.kind, &r.status, &r.name, &r.secret, &r.credential, &r.deviceBound,
		&r.lastStep, &r.created, &r.used, &r.revoked}
}

// authenticator is the row's authenticator; false for a row without one.
func (r *authenticatorRow) authenticator() (*recourse.Authenticator, bool, error) {
	if !r.id.Valid {
		return nil, false, nil
	}
	if !r.created.Valid {
		return nil, false, fmt.Errorf("authenticator %s has no creation time", r.id.String)
	}
	return &recourse.Authenticator{ID: r.id.String, AccountID: r.account.String, Kind: recourse.AuthenticatorKind(r.kind.String),
		Status: recourse.AuthenticatorStatus(r.status.String), Name: r.name.String, Secret: r.secret, CredentialID: r.credential,
		DeviceBound: r.deviceBound.Bool, LastStep: r.lastStep.Int64, CreatedAt: utc(r.created.Time),
		LastUsedAt: timePtr(r.used), RevokedAt: timePtr(r.revoked)}, true, nil
}

func scanAuthenticator(r scanner) (*recourse.Authenticator, error) {
	var row authenticatorRow
	if err := r.Scan(row.dest()...); err != nil {
		return nil, err
	}
	a, ok, err := row.authenticator()
	if err == nil && !ok {
		err = errors.New("an authenticator row without an id")
	}
	return a, err
}

func nilIfEmpty(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func (s queries) CreateAuthenticator(ctx context.Context, a *recourse.Authenticator) error {
	if a.ID == "" {
		a.ID = recourse.NewID("au_")
	}
	_, err := s.q.ExecContext(ctx, `INSERT INTO authenticators (`+authenticatorColumns+`)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		a.ID, a.AccountID, a.Kind, a.Status, a.Name, nilIfEmpty(a.Secret), nilIfEmpty(a.CredentialID), a.DeviceBound, a.LastStep,
		utc(a.CreatedAt), nullTime(a.LastUsedAt), nullTime(a.RevokedAt))
	return s.wrap("create authenticator", err)
}

func (s queries) Authenticator(ctx context.Context, id string) (*recourse.Authenticator, error) {
	a, err := scanAuthenticator(s.q.QueryRowContext(ctx, `SELECT `+authenticatorColumns+` FROM authenticators WHERE id = $1`+s.d.ForUpdate, id))
	return a, s.wrap("read authenticator", err)
}

func (s queries) AuthenticatorByCredentialID(ctx context.Context, credentialID []byte) (*recourse.Authenticator, error) {
	a, err := scanAuthenticator(s.q.QueryRowContext(ctx, `SELECT `+authenticatorColumns+` FROM authenticators WHERE credential_id = $1`, credentialID))
	return a, s.wrap("read authenticator", err)
}

func (s queries) Authenticators(ctx context.Context, accountID string) ([]*recourse.Authenticator, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT `+authenticatorColumns+` FROM authenticators WHERE account_id = $1 ORDER BY created_at, id`, accountID)
	if err != nil {
		return nil, s.wrap("list authenticators", err)
	}
	defer rows.Close()
	var out []*recourse.Authenticator
	for rows.Next() {
		a, err := scanAuthenticator(rows)
		if err != nil {
			return nil, s.wrap("list authenticators", err)
		}
		out = append(out, a)
	}
	return out, s.wrap("list authenticators", rows.Err())
}

func (s queries) UpdateAuthenticator(ctx context.Context, a *recourse.Authenticator) error {
	n, err := affected(s.q.ExecContext(ctx, `UPDATE authenticators SET status = $2, name = $3, secret = $4, device_bound = $5,
        last_used_at = $6, revoked_at = $7 WHERE id = $1`,
		a.ID, a.Status, a.Name, nilIfEmpty(a.Secret), a.DeviceBound, nullTime(a.LastUsedAt), nullTime(a.RevokedAt)))
	if err != nil {
		return s.wrap("update authenticator", err)
	}
	if n == 0 {
		return recourse.ErrNotFound
	}
	return nil
}

func (s queries) AdvanceTOTPStep(ctx context.Context, id string, step int64, at time.Time) (bool, error) {
	n, err := affected(s.q.ExecContext(ctx, `UPDATE authenticators SET last_step = $2, last_used_at = $3
        WHERE id = $1 AND last_step < $2 AND kind = 'totp'`, id, step, utc(at)))
	if err != nil {
		return false, s.wrap("advance totp step", err)
	}
	return n == 1, nil
}

// AddAuthenticatorEvent implements recourse.Store; in a transaction the
// event waits in the write queue (queue.go) and its ID stays zero.
func (s queries) AddAuthenticatorEvent(ctx context.Context, e *recourse.AuthenticatorEvent) error {
	if s.queue != nil {
		s.queue.add(tableAuthEvents, authEventArgs(e))
		return nil
	}
	var err error
	e.ID, err = s.insertID(ctx, "id", authEventInsert+values(1, authEventWidth, 1), authEventArgs(e)...)
	return s.wrap("add authenticator event", err)
}

const (
	authEventInsert = `INSERT INTO authenticator_events (authenticator_id, account_id, kind, type, at, ip, user_agent) VALUES `
	authEventWidth  = 7
)

func authEventArgs(e *recourse.AuthenticatorEvent) []any {
	return []any{e.AuthenticatorID, e.AccountID, e.Kind, e.Type, utc(e.At), e.IP, e.UserAgent}
}

func (s queries) AuthenticatorEvents(ctx context.Context, accountID string, limit int) ([]*recourse.AuthenticatorEvent, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	rows, err := s.q.QueryContext(ctx, fmt.Sprintf(`SELECT id, authenticator_id, account_id, kind, type, at, ip, user_agent
        FROM authenticator_events WHERE account_id = $1 ORDER BY id DESC LIMIT %d`, limit), accountID)
	if err != nil {
		return nil, s.wrap("list authenticator events", err)
	}
	defer rows.Close()
	var out []*recourse.AuthenticatorEvent
	for rows.Next() {
		var e recourse.AuthenticatorEvent
		if err := rows.Scan(&e.ID, &e.AuthenticatorID, &e.AccountID, &e.Kind, &e.Type, &e.At, &e.IP, &e.UserAgent); err != nil {
			return nil, s.wrap("list authenticator events", err)
		}
		e.At = utc(e.At)
		out = append(out, &e)
	}
	return out, s.wrap("list authenticator events", rows.Err())
}

// ---- recovery codes ----

func (s queries) ReplaceRecoveryCodes(ctx context.Context, authenticatorID string, hashes [][]byte) error {
	return s.inTransaction(ctx, func(s queries) error {
		if _, err := s.q.ExecContext(ctx, `DELETE FROM recovery_codes WHERE authenticator_id = $1`, authenticatorID); err != nil {
			return s.wrap("replace recovery codes", err)
		}
		for _, h := range hashes {
			if _, err := s.q.ExecContext(ctx, `INSERT INTO recovery_codes (authenticator_id, hash) VALUES ($1, $2)`, authenticatorID, h); err != nil {
				return s.wrap("replace recovery codes", err)
			}
		}
		return nil
	})
}

func (s queries) UseRecoveryCode(ctx context.Context, accountID string, hash []byte, at time.Time) (string, error) {
	var id string
	err := s.q.QueryRowContext(ctx, `UPDATE recovery_codes SET used_at = $3
        WHERE hash = $2 AND used_at IS NULL AND authenticator_id IN (
            SELECT id FROM authenticators WHERE account_id = $1 AND kind = 'recovery_codes' AND status = 'active')
        RETURNING authenticator_id`, accountID, hash, utc(at)).Scan(&id)
	if err != nil {
		return "", s.wrap("use recovery code", err)
	}
	return id, nil
}

func (s queries) UnusedRecoveryCodes(ctx context.Context, authenticatorID string) (int, error) {
	var n int
	err := s.q.QueryRowContext(ctx, `SELECT count(*) FROM recovery_codes WHERE authenticator_id = $1 AND used_at IS NULL`, authenticatorID).Scan(&n)
	return n, s.wrap("count recovery codes", err)
}

// ---- sessions ----

const sessionColumns = `id, account_id, token_hash, aal, methods, auth_time, reauth_at, created_at, last_seen_at, expires_at,
    idle_timeout_ms, ip, user_agent, revoked_at, restricted, ceremony`

// sessionRow holds the columns of sessionColumns as they are scanned.
type sessionRow struct {
	s       recourse.Session
	methods string
	idleMS  int64
	revoked sql.NullTime
}

func (r *sessionRow) dest() []any {
	s := &r.s
	return []any{&s.ID, &s.AccountID, &s.TokenHash, &s.AAL, &r.methods, &s.AuthTime, &s.ReauthAt, &s.CreatedAt, &s.LastSeenAt,
		&s.ExpiresAt, &r.idleMS, &s.IP, &s.UserAgent, &r.revoked, &s.Restricted, &s.Ceremony}
}

func (r *sessionRow) session() (*recourse.Session, error) {
	s := r.s
	var err error
	if s.Methods, err = parseList(r.methods); err != nil {
		return nil, err
	}
	s.IdleTimeout = time.Duration(r.idleMS) * time.Millisecond
	s.RevokedAt = timePtr(r.revoked)
	s.AuthTime, s.ReauthAt, s.CreatedAt = utc(s.AuthTime), utc(s.ReauthAt), utc(s.CreatedAt)
	s.LastSeenAt, s.ExpiresAt = utc(s.LastSeenAt), utc(s.ExpiresAt)
	return &s, nil
}

func scanSession(r scanner) (*recourse.Session, error) {
	var row sessionRow
	if err := r.Scan(row.dest()...); err != nil {
		return nil, err
	}
	return row.session()
}

// sessionColumnsOfS are sessionColumns of the table aliased s.
var sessionColumnsOfS = prefixColumns(sessionColumns, "s.")

// sessionWithAccountSQL is SessionWithAccount's statement, built once.
var sessionWithAccountSQL = `SELECT ` + sessionColumnsOfS + `, ` + accountColumnsOfA + `, ` + channelColumns + `
		FROM sessions s JOIN accounts a ON a.id = s.account_id LEFT JOIN channels c ON c.account_id = a.id
		WHERE s.token_hash = $1`

// SessionWithAccount reads a session by its token's hash with its account
// and the account's channels, in one statement: every signed-in request
// needs both, and on PostgreSQL a statement is a round trip.
func (s queries) SessionWithAccount(ctx context.Context, hash []byte) (*recourse.Session, *recourse.Account, error) {
	var row sessionRow
	a, err := s.queryWithAccount(ctx, "read session", sessionWithAccountSQL, hash, row.dest())
	if err != nil {
		return nil, nil, err
	}
	ses, err := row.session()
	if err != nil {
		return nil, nil, s.wrap("read session", err)
	}
	return ses, a, nil
}

// queryWithAccount runs a statement whose rows are lead's columns, then an
// account's and one of its channels' (accountRows), and returns the
// account; lead holds the first row's leading columns.
func (s queries) queryWithAccount(ctx context.Context, op, query string, arg any, lead []any) (*recourse.Account, error) {
	rows, err := s.q.QueryContext(ctx, query, arg)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return s.accountRows(rows, lead)
}

func (s queries) CreateSession(ctx context.Context, ses *recourse.Session) error {
	if ses.ID == "" {
		ses.ID = recourse.NewID("ses_")
	}
	_, err := s.q.ExecContext(ctx, `INSERT INTO sessions (`+sessionColumns+`)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		ses.ID, ses.AccountID, ses.TokenHash, ses.AAL, jsonList(ses.Methods), utc(ses.AuthTime), utc(ses.ReauthAt), utc(ses.CreatedAt),
		utc(ses.LastSeenAt), utc(ses.ExpiresAt), ses.IdleTimeout.Milliseconds(), ses.IP, ses.UserAgent, nullTime(ses.RevokedAt),
		ses.Restricted, nilIfEmpty(ses.Ceremony))
	return s.wrap("create session", err)
}

func (s queries) SessionByTokenHash(ctx context.Context, hash []byte) (*recourse.Session, error) {
	ses, err := scanSession(s.q.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE token_hash = $1`, hash))
	return ses, s.wrap("read session", err)
}

func (s queries) Session(ctx context.Context, id string) (*recourse.Session, error) {
	ses, err := scanSession(s.q.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = $1`, id))
	return ses, s.wrap("read session", err)
}

func (s queries) Sessions(ctx context.Context, accountID string, now time.Time) ([]*recourse.Session, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT `+sessionColumns+` FROM sessions
        WHERE account_id = $1 AND revoked_at IS NULL AND `+filterOnly("expires_at")+` > $2 ORDER BY created_at DESC, id`, accountID, utc(now))
	if err != nil {
		return nil, s.wrap("list sessions", err)
	}
	defer rows.Close()
	var out []*recourse.Session
	for rows.Next() {
		ses, err := scanSession(rows)
		if err != nil {
			return nil, s.wrap("list sessions", err)
		}
		if ses.Active(now) {
			out = append(out, ses)
		}
	}
	return out, s.wrap("list sessions", rows.Err())
}

func (s queries) UpdateSession(ctx context.Context, ses *recourse.Session) error {
	n, err := affected(s.q.ExecContext(ctx, `UPDATE sessions SET token_hash = $2, aal = $3, methods = $4, auth_time = $5, reauth_at = $6,
        last_seen_at = $7, expires_at = $8, idle_timeout_ms = $9, restricted = $10, ceremony = $11
        WHERE id = $1 AND revoked_at IS NULL`,
		ses.ID, ses.TokenHash, ses.AAL, jsonList(ses.Methods), utc(ses.AuthTime), utc(ses.ReauthAt), utc(ses.LastSeenAt),
		utc(ses.ExpiresAt), ses.IdleTimeout.Milliseconds(), ses.Restricted, nilIfEmpty(ses.Ceremony)))
	if err != nil {
		return s.wrap("update session", err)
	}
	if n == 0 {
		return recourse.ErrNotFound
	}
	return nil
}

func (s queries) TouchSession(ctx context.Context, id string, at time.Time) error {
	_, err := s.q.ExecContext(ctx, `UPDATE sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2 AND revoked_at IS NULL`, id, utc(at))
	return s.wrap("touch session", err)
}

func (s queries) RevokeSession(ctx context.Context, id string, at time.Time) error {
	n, err := affected(s.q.ExecContext(ctx, `UPDATE sessions SET revoked_at = $2, ceremony = NULL WHERE id = $1 AND revoked_at IS NULL`, id, utc(at)))
	if err != nil {
		return s.wrap("revoke session", err)
	}
	if n == 0 {
		return recourse.ErrNotFound
	}
	return nil
}

func (s queries) RevokeSessions(ctx context.Context, accountID, exceptID string, at time.Time) (int, error) {
	n, err := affected(s.q.ExecContext(ctx, `UPDATE sessions SET revoked_at = $3, ceremony = NULL
        WHERE account_id = $1 AND id <> $2 AND revoked_at IS NULL`, accountID, exceptID, utc(at)))
	return n, s.wrap("revoke sessions", err)
}

func (s queries) DeleteExpiredSessions(ctx context.Context, before time.Time) (int, error) {
	n, err := affected(s.q.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $1`, utc(before)))
	return n, s.wrap("delete expired sessions", err)
}

// ---- outbox ----

var outboxSeq atomic.Int64

// outboxID orders messages by insertion within a process even when the
// (injected) clock gives several the same time: a wall-clock nanosecond
// stamp made strictly increasing, then randomness.
func outboxID() string {
	for {
		last, now := outboxSeq.Load(), time.Now().UnixNano()
		if now <= last {
			now = last + 1
		}
		if outboxSeq.CompareAndSwap(last, now) {
			return fmt.Sprintf("msg_%020d", now) + recourse.NewID("_")
		}
	}
}

func (s queries) AddOutboxMessage(ctx context.Context, m *recourse.OutboxMessage) error {
	if m.ID == "" {
		m.ID = outboxID()
	}
	_, err := s.q.ExecContext(ctx, outboxInsertOne, outboxArgs(m)...)
	return s.wrap("add outbox message", err)
}

func (s queries) OutboxMessages(ctx context.Context, limit int) ([]*recourse.OutboxMessage, error) {
	if err := s.flushQueued(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	rows, err := s.q.QueryContext(ctx, fmt.Sprintf(`SELECT id, account_id, to_address, subject, body, created_at FROM outbox
        ORDER BY created_at DESC, id DESC LIMIT %d`, limit))
	if err != nil {
		return nil, s.wrap("list outbox", err)
	}
	defer rows.Close()
	var out []*recourse.OutboxMessage
	for rows.Next() {
		var m recourse.OutboxMessage
		if err := rows.Scan(&m.ID, &m.AccountID, &m.To, &m.Subject, &m.Body, &m.CreatedAt); err != nil {
			return nil, s.wrap("list outbox", err)
		}
		m.CreatedAt = utc(m.CreatedAt)
		out = append(out, &m)
	}
	return out, s.wrap("list outbox", rows.Err())
}
