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
	"time"

	"github.com/recourse/recourse"
)

const recoveryColumns = `id, account_id, action, tier, state, lost, initiator, initiator_id, reason, change_json, change_digest,
    policy_digest, rule, requirement, requirement_digest, browser_hash, cooling_until, expires_at, outcome, ip, user_agent,
    created_at, updated_at, completed_at, version, ceremony`

// recoveryRow is a request as scanned, before its fields are decoded.
type recoveryRow struct {
	x                  recourse.Recovery
	change             string
	cooling, completed sql.NullTime
}

func (r *recoveryRow) dest() []any {
	x := &r.x
	return []any{&x.ID, &x.AccountID, &x.Action, &x.Tier, &x.State, &x.Lost, &x.Initiator, &x.InitiatorID, &x.Reason,
		&r.change, &x.ChangeDigest, &x.PolicyDigest, &x.Rule, &x.Requirement, &x.RequirementDigest, &x.BrowserHash,
		&r.cooling, &x.ExpiresAt, &x.Outcome, &x.IP, &x.UserAgent, &x.CreatedAt, &x.UpdatedAt, &r.completed, &x.Version, &x.Ceremony}
}

func (r *recoveryRow) recovery() (*recourse.Recovery, error) {
	x := r.x
	if err := json.Unmarshal([]byte(r.change), &x.Change); err != nil {
		return nil, fmt.Errorf("decode change: %w", err)
	}
	x.CoolingUntil, x.CompletedAt = timePtr(r.cooling), timePtr(r.completed)
	x.ExpiresAt, x.CreatedAt, x.UpdatedAt = utc(x.ExpiresAt), utc(x.CreatedAt), utc(x.UpdatedAt)
	return &x, nil
}

func scanRecovery(r scanner) (*recourse.Recovery, error) {
	var row recoveryRow
	if err := r.Scan(row.dest()...); err != nil {
		return nil, err
	}
	return row.recovery()
}

func jsonMap(m map[string]string) string {
	if m == nil {
		m = map[string]string{}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// CreateRecovery implements recourse.Tx. In a transaction the request
// waits in the write queue (queue.go) like its audit event, its codes and
// its notices, and goes with them; a taken id then fails the commit with
// ErrConflict, as every queued insert's conflict does.
func (s queries) CreateRecovery(ctx context.Context, r *recourse.Recovery) error {
	if r.Version == 0 {
		r.Version = 1
	}
	if s.queue != nil {
		s.queue.add(tableRecoveries, recoveryArgs(r))
		return nil
	}
	_, err := s.q.ExecContext(ctx, recoveryInsert+values(1, recoveryWidth, 1), recoveryArgs(r)...)
	return s.wrap("create recovery", err)
}

const (
	recoveryInsert = `INSERT INTO recovery_requests (` + recoveryColumns + `) VALUES `
	recoveryWidth  = 26
)

func recoveryArgs(r *recourse.Recovery) []any {
	return []any{r.ID, r.AccountID, r.Action, r.Tier, r.State, r.Lost, r.Initiator, r.InitiatorID, r.Reason, jsonMap(r.Change), r.ChangeDigest,
		r.PolicyDigest, r.Rule, r.Requirement, r.RequirementDigest, nilIfEmpty(r.BrowserHash), nullTime(r.CoolingUntil), utc(r.ExpiresAt),
		r.Outcome, r.IP, r.UserAgent, utc(r.CreatedAt), utc(r.UpdatedAt), nullTime(r.CompletedAt), r.Version, nilIfEmpty(r.Ceremony)}
}

func (s queries) Recovery(ctx context.Context, id string) (*recourse.Recovery, error) {
	forUpdate := ""
	if s.inTx {
		forUpdate = s.d.ForUpdate
	}
	r, err := scanRecovery(s.q.QueryRowContext(ctx, `SELECT `+recoveryColumns+` FROM recovery_requests WHERE id = $1`+forUpdate, id))
	return r, s.wrap("read recovery", err)
}

// recoveryColumnsOfR are recoveryColumns of the table aliased r.
var recoveryColumnsOfR = prefixColumns(recoveryColumns, "r.")

// recoveryWithAccountSQL is RecoveryWithAccount's statement, built once.
var recoveryWithAccountSQL = `SELECT ` + recoveryColumnsOfR + `, ` + accountColumnsOfA + `, ` + channelColumns + `
		FROM recovery_requests r JOIN accounts a ON a.id = r.account_id LEFT JOIN channels c ON c.account_id = a.id
		WHERE r.id = $1`

// RecoveryWithAccount reads a request with its account and the account's
// channels in one statement: a submission needs both before its
// transaction, and on PostgreSQL a statement is a round trip.
func (s queries) RecoveryWithAccount(ctx context.Context, id string) (*recourse.Recovery, *recourse.Account, error) {
	var row recoveryRow
	a, err := s.queryWithAccount(ctx, "read recovery", recoveryWithAccountSQL, id, row.dest())
	if err != nil {
		return nil, nil, err
	}
	r, err := row.recovery()
	if err != nil {
		return nil, nil, s.wrap("read recovery", err)
	}
	return r, a, nil
}

func (s queries) UpdateRecovery(ctx context.Context, r *recourse.Recovery) error {
	n, err := affected(s.q.ExecContext(ctx, `UPDATE recovery_requests SET state = $2, change_json = $3, change_digest = $4,
        policy_digest = $5, rule = $6, requirement = $7, requirement_digest = $8, browser_hash = $9, cooling_until = $10,
        expires_at = $11, outcome = $12, updated_at = $13, completed_at = $14, reason = $15, ceremony = $17, version = version + 1
        WHERE id = $1 AND version = $16`,
		r.ID, r.State, jsonMap(r.Change), r.ChangeDigest, r.PolicyDigest, r.Rule, r.Requirement, r.RequirementDigest,
		nilIfEmpty(r.BrowserHash), nullTime(r.CoolingUntil), utc(r.ExpiresAt), r.Outcome, utc(r.UpdatedAt), nullTime(r.CompletedAt),
		r.Reason, r.Version, nilIfEmpty(r.Ceremony)))
	if err != nil {
		return s.wrap("update recovery", err)
	}
	if n == 0 {
		return recourse.ErrConflict
	}
	r.Version++
	return nil
}

func (s queries) listRecoveries(ctx context.Context, q string, args ...any) ([]*recourse.Recovery, error) {
	rows, err := s.q.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.wrap("list recoveries", err)
	}
	defer rows.Close()
	var out []*recourse.Recovery
	for rows.Next() {
		r, err := scanRecovery(rows)
		if err != nil {
			return nil, s.wrap("list recoveries", err)
		}
		out = append(out, r)
	}
	return out, s.wrap("list recoveries", rows.Err())
}

var openStates = []recourse.RecoveryState{recourse.RecoveryCollecting, recourse.RecoveryAwaitingApproval, recourse.RecoveryCoolingOff, recourse.RecoveryReady}

func stateList(states []recourse.RecoveryState) string {
	parts := make([]string, len(states))
	for i, st := range states {
		// States are constants of the domain, never user input.
		parts[i] = "'" + strings.ReplaceAll(string(st), "'", "") + "'"
	}
	return strings.Join(parts, ", ")
}

func (s queries) Recoveries(ctx context.Context, accountID string, openOnly bool) ([]*recourse.Recovery, error) {
	q := `SELECT ` + recoveryColumns + ` FROM recovery_requests WHERE account_id = $1`
	if openOnly {
		// The account's index finds its few requests; the state index
		// would add every open request of every account (filterOnly).
		q += ` AND ` + filterOnly("state") + ` IN (` + stateList(openStates) + `)`
	}
	return s.listRecoveries(ctx, q+` ORDER BY created_at DESC, id LIMIT 200`, accountID)
}

func (s queries) OpenRecoveries(ctx context.Context, states []recourse.RecoveryState, limit int) ([]*recourse.Recovery, error) {
	if len(states) == 0 {
		states = openStates
	}
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	return s.listRecoveries(ctx, fmt.Sprintf(`SELECT `+recoveryColumns+` FROM recovery_requests WHERE state IN (`+stateList(states)+`)
        ORDER BY created_at, id LIMIT %d`, limit))
}

func (s queries) ExpiredRecoveries(ctx context.Context, now time.Time, limit int) ([]string, error) {
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	rows, err := s.q.QueryContext(ctx, fmt.Sprintf(`SELECT id FROM recovery_requests WHERE state IN (`+stateList(openStates)+`)
        AND expires_at <= $1 ORDER BY expires_at, id LIMIT %d`, limit), utc(now))
	if err != nil {
		return nil, s.wrap("expired recoveries", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, s.wrap("expired recoveries", err)
		}
		ids = append(ids, id)
	}
	return ids, s.wrap("expired recoveries", rows.Err())
}

func (s queries) DeleteExpiredSecrets(ctx context.Context, before time.Time) (int, error) {
	var total int
	err := s.inTransaction(ctx, func(q queries) error {
		for _, stmt := range []string{`DELETE FROM tokens WHERE expires_at < $1`, `DELETE FROM challenges WHERE expires_at < $1`} {
			n, err := affected(q.q.ExecContext(ctx, stmt, utc(before)))
			if err != nil {
				return err
			}
			total += n
		}
		return nil
	})
	return total, s.wrap("delete expired secrets", err)
}

func (s queries) AddRecoveryEvidence(ctx context.Context, e *recourse.RecoveryEvidence) error {
	var err error
	e.ID, err = s.insertID(ctx, "id", `INSERT INTO recovery_evidence (request_id, kind, detail, actor_id, created_at)
        VALUES ($1, $2, $3, $4, $5)`, e.RequestID, e.Kind, e.Detail, e.ActorID, utc(e.CreatedAt))
	return s.wrap("add evidence", err)
}

func (s queries) RecoveryEvidence(ctx context.Context, requestID string) ([]*recourse.RecoveryEvidence, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT id, request_id, kind, detail, actor_id, created_at FROM recovery_evidence
        WHERE request_id = $1 ORDER BY id`, requestID)
	if err != nil {
		return nil, s.wrap("list evidence", err)
	}
	defer rows.Close()
	var out []*recourse.RecoveryEvidence
	for rows.Next() {
		var e recourse.RecoveryEvidence
		if err := rows.Scan(&e.ID, &e.RequestID, &e.Kind, &e.Detail, &e.ActorID, &e.CreatedAt); err != nil {
			return nil, s.wrap("list evidence", err)
		}
		e.CreatedAt = utc(e.CreatedAt)
		out = append(out, &e)
	}
	return out, s.wrap("list evidence", rows.Err())
}

func (s queries) AddRecoveryVote(ctx context.Context, v *recourse.RecoveryVote) error {
	_, err := s.q.ExecContext(ctx, `INSERT INTO recovery_votes (request_id, approver_id, change_digest, vote, roles, comment, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7)`, v.RequestID, v.ApproverID, v.ChangeDigest, v.Vote, jsonList(v.Roles), v.Comment, utc(v.CreatedAt))
	return s.wrap("add vote", err)
}

func (s queries) RecoveryVotes(ctx context.Context, requestID string) ([]*recourse.RecoveryVote, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT request_id, approver_id, change_digest, vote, roles, comment, created_at
        FROM recovery_votes WHERE request_id = $1 ORDER BY created_at, approver_id`, requestID)
	if err != nil {
		return nil, s.wrap("list votes", err)
	}
	defer rows.Close()
	var out []*recourse.RecoveryVote
	for rows.Next() {
		var v recourse.RecoveryVote
		var roles string
		if err := rows.Scan(&v.RequestID, &v.ApproverID, &v.ChangeDigest, &v.Vote, &roles, &v.Comment, &v.CreatedAt); err != nil {
			return nil, s.wrap("list votes", err)
		}
		if v.Roles, err = parseList(roles); err != nil {
			return nil, err
		}
		v.CreatedAt = utc(v.CreatedAt)
		out = append(out, &v)
	}
	return out, s.wrap("list votes", rows.Err())
}

// RecoveryProof reads the evidence, the votes and the subject's active
// authenticators in one statement (on PostgreSQL a statement is a round
// trip, and every submission and status read needs them): the three
// tables' rows in common columns, told apart by the first. An account has
// a handful of authenticators; Means keeps each kind once.
func (s queries) RecoveryProof(ctx context.Context, requestID, accountID string) (*recourse.RecoveryProof, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT `+proofColumns+` FROM (`+proofUnion+`) p`, requestID, accountID)
	if err != nil {
		return nil, s.wrap("read evidence and votes", err)
	}
	defer rows.Close()
	p := &recourse.RecoveryProof{}
	for rows.Next() {
		var row proofRow
		if err := rows.Scan(row.dest()...); err != nil {
			return nil, s.wrap("read evidence and votes", err)
		}
		if err := row.addTo(p, requestID); err != nil {
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("read evidence and votes", err)
	}
	sortProof(p)
	return p, nil
}

// proofUnion is the three tables' rows of a proof in common columns, told
// apart by the first; $1 is the request, $2 its account.
const proofUnion = `SELECT 0 AS k, id, kind AS what, detail, actor_id AS who, '' AS digest, '' AS roles, '' AS comment, created_at AS at
        FROM recovery_evidence WHERE request_id = $1
        UNION ALL
        SELECT 1, 0, vote, NULL, approver_id, change_digest, CAST(roles AS TEXT), comment, created_at
        FROM recovery_votes WHERE request_id = $1
        UNION ALL
        SELECT 2, 0, kind, NULL, '', '', '', '', created_at
        FROM authenticators WHERE account_id = $2 AND status = 'active'`

const proofColumns = `p.k, p.id, p.what, p.detail, p.who, p.digest, p.roles, p.comment, p.at`

// proofRow is one row of proofUnion, every column nullable: in
// RecoveryWithProof a request without proof has a row of NULLs.
type proofRow struct {
	k, id                             sql.NullInt64
	what, who, digest, roles, comment sql.NullString
	detail                            []byte
	at                                sql.NullTime
}

func (r *proofRow) dest() []any {
	return []any{&r.k, &r.id, &r.what, &r.detail, &r.who, &r.digest, &r.roles, &r.comment, &r.at}
}

// addTo adds the row to p; a row of NULLs adds nothing.
func (r *proofRow) addTo(p *recourse.RecoveryProof, requestID string) error {
	if !r.k.Valid {
		return nil
	}
	at := utc(r.at.Time)
	switch r.k.Int64 {
	case 0:
		p.Evidence = append(p.Evidence, &recourse.RecoveryEvidence{ID: r.id.Int64, RequestID: requestID, Kind: r.what.String, Detail: r.detail,
			ActorID: r.who.String, CreatedAt: at})
	case 1:
		v := &recourse.RecoveryVote{RequestID: requestID, ApproverID: r.who.String, ChangeDigest: r.digest.String, Vote: r.what.String,
			Comment: r.comment.String, CreatedAt: at}
		var err error
		if v.Roles, err = parseList(r.roles.String); err != nil {
			return err
		}
		p.Votes = append(p.Votes, v)
	default:
		if kind := recourse.AuthenticatorKind(r.what.String); !slices.Contains(p.Means, kind) {
			p.Means = append(p.Means, kind)
		}
	}
	return nil
}

// sortProof orders a proof here, not by the statement: a sort is a plan
// node that PostgreSQL sets up for every execution, and this read is in
// every submission and status read (docs/benchmarks.md, change 39).
func sortProof(p *recourse.RecoveryProof) {
	slices.SortFunc(p.Evidence, func(a, b *recourse.RecoveryEvidence) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(p.Votes, func(a, b *recourse.RecoveryVote) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ApproverID, b.ApproverID))
	})
	slices.Sort(p.Means)
}

// recoveryWithProofSQL is RecoveryWithProof's statement: the proof's
// account is the request's.
var recoveryWithProofSQL = `SELECT ` + recoveryColumnsOfR + `, ` + proofColumns + `
		FROM recovery_requests r LEFT JOIN (` + strings.ReplaceAll(proofUnion, "$2", "(SELECT account_id FROM recovery_requests WHERE id = $1)") + `) p ON 1 = 1
		WHERE r.id = $1`

// RecoveryWithProof reads a request with its proof (as RecoveryProof reads
// it) in one statement, for a status read outside a transaction: on
// PostgreSQL a statement is a round trip. Each row carries the request's
// columns beside one row of the proof.
func (s queries) RecoveryWithProof(ctx context.Context, id string) (*recourse.Recovery, *recourse.RecoveryProof, error) {
	rows, err := s.q.QueryContext(ctx, recoveryWithProofSQL, id)
	if err != nil {
		return nil, nil, s.wrap("read recovery", err)
	}
	defer rows.Close()
	var r *recourse.Recovery
	p := &recourse.RecoveryProof{}
	for rows.Next() {
		var rr recoveryRow
		var pr proofRow
		if err := rows.Scan(slices.Concat(rr.dest(), pr.dest())...); err != nil {
			return nil, nil, s.wrap("read recovery", err)
		}
		if r == nil {
			if r, err = rr.recovery(); err != nil {
				return nil, nil, s.wrap("read recovery", err)
			}
		}
		if err := pr.addTo(p, id); err != nil {
			return nil, nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, s.wrap("read recovery", err)
	}
	if r == nil {
		return nil, nil, recourse.ErrNotFound
	}
	sortProof(p)
	return r, p, nil
}

const challengeColumns = `id, request_id, channel_id, kind, code_hash, attempts, expires_at, used_at, created_at`

func scanChallenge(r scanner) (*recourse.Challenge, error) {
	var c recourse.Challenge
	var used sql.NullTime
	if err := r.Scan(&c.ID, &c.RequestID, &c.ChannelID, &c.Kind, &c.CodeHash, &c.Attempts, &c.ExpiresAt, &used, &c.CreatedAt); err != nil {
		return nil, err
	}
	c.UsedAt = timePtr(used)
	c.ExpiresAt, c.CreatedAt = utc(c.ExpiresAt), utc(c.CreatedAt)
	return &c, nil
}

func (s queries) CreateChallenge(ctx context.Context, c *recourse.Challenge) error {
	if c.ID == "" {
		c.ID = recourse.NewID("chl_")
	}
	if s.queue != nil {
		// Written with the transaction's next statement (writeQueue).
		s.queue.add(tableChallenges, challengeArgs(c))
		return nil
	}
	_, err := s.q.ExecContext(ctx, challengeInsert+values(1, challengeWidth, 1), challengeArgs(c)...)
	return s.wrap("create challenge", err)
}

func (s queries) challenges(ctx context.Context, q string, args ...any) ([]*recourse.Challenge, error) {
	rows, err := s.q.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.wrap("challenges", err)
	}
	defer rows.Close()
	var out []*recourse.Challenge
	for rows.Next() {
		c, err := scanChallenge(rows)
		if err != nil {
			return nil, s.wrap("challenges", err)
		}
		out = append(out, c)
	}
	return out, s.wrap("challenges", rows.Err())
}

func (s queries) TakeChallengeAttempts(ctx context.Context, requestID string, maxAttempts int, now time.Time) ([]*recourse.Challenge, error) {
	return s.challenges(ctx, `UPDATE challenges SET attempts = attempts + 1
        WHERE request_id = $1 AND used_at IS NULL AND `+filterOnly("expires_at")+` > $2 AND attempts < $3
        RETURNING `+challengeColumns, requestID, utc(now), maxAttempts)
}

func (s queries) UseChallenge(ctx context.Context, id string, now time.Time) (bool, error) {
	n, err := affected(s.q.ExecContext(ctx, `UPDATE challenges SET used_at = $2 WHERE id = $1 AND used_at IS NULL`, id, utc(now)))
	return n == 1, s.wrap("use challenge", err)
}

func (s queries) Challenges(ctx context.Context, requestID string) ([]*recourse.Challenge, error) {
	return s.challenges(ctx, `SELECT `+challengeColumns+` FROM challenges WHERE request_id = $1 ORDER BY created_at, id`, requestID)
}

const tokenColumns = `hash, id, purpose, request_id, account_id, browser_hash, expires_at, used_at, revoked_at, created_at`

func (s queries) CreateToken(ctx context.Context, t *recourse.Token) error {
	if t.ID == "" {
		t.ID = recourse.NewID("tok_")
	}
	// An access pass is written at once: at most one is outstanding per
	// account (tokens_one_access_pass), and its issuer acts on the
	// conflict. Other tokens are written with the transaction's next
	// statement (writeQueue).
	if s.queue != nil && t.Purpose != recourse.TokenAccessPass {
		s.queue.add(tableTokens, tokenArgs(t))
		return nil
	}
	_, err := s.q.ExecContext(ctx, tokenInsert+values(1, tokenWidth, 1), tokenArgs(t)...)
	return s.wrap("create token", err)
}

func (s queries) UseToken(ctx context.Context, hash []byte, purpose string, now time.Time) (*recourse.Token, error) {
	var t recourse.Token
	var used, revoked sql.NullTime
	err := s.q.QueryRowContext(ctx, `UPDATE tokens SET used_at = $3
        WHERE hash = $1 AND purpose = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $3
        RETURNING `+tokenColumns, hash, purpose, utc(now)).Scan(&t.Hash, &t.ID, &t.Purpose, &t.RequestID, &t.AccountID,
		&t.BrowserHash, &t.ExpiresAt, &used, &revoked, &t.CreatedAt)
	if err != nil {
		return nil, s.wrap("use token", err)
	}
	t.UsedAt, t.RevokedAt = timePtr(used), timePtr(revoked)
	t.ExpiresAt, t.CreatedAt = utc(t.ExpiresAt), utc(t.CreatedAt)
	return &t, nil
}

func (s queries) RevokeTokens(ctx context.Context, accountID, exceptID string, now time.Time) (int, error) {
	n, err := affected(s.q.ExecContext(ctx, `UPDATE tokens SET revoked_at = $3
        WHERE account_id = $1 AND id <> $2 AND used_at IS NULL AND revoked_at IS NULL AND `+filterOnly("expires_at")+` > $3`, accountID, exceptID, utc(now)))
	return n, s.wrap("revoke tokens", err)
}

func (s queries) RevokeAccessPasses(ctx context.Context, accountID string, now time.Time) (int, error) {
	n, err := affected(s.q.ExecContext(ctx, `UPDATE tokens SET revoked_at = $2
        WHERE account_id = $1 AND purpose = 'access_pass' AND used_at IS NULL AND revoked_at IS NULL`, accountID, utc(now)))
	return n, s.wrap("revoke access passes", err)
}

func (s queries) RecordRecoveryFailure(ctx context.Context, accountID string) (int, error) {
	var n int
	err := s.q.QueryRowContext(ctx, `UPDATE accounts SET recovery_failures = recovery_failures + 1 WHERE id = $1 RETURNING recovery_failures`, accountID).Scan(&n)
	return n, s.wrap("record recovery failure", err)
}

func (s queries) ResetRecoveryFailures(ctx context.Context, accountID string) error {
	_, err := s.q.ExecContext(ctx, `UPDATE accounts SET recovery_failures = 0 WHERE id = $1 AND recovery_failures <> 0`, accountID)
	return s.wrap("reset recovery failures", err)
}

func (s queries) SetAccountFrozen(ctx context.Context, accountID string, at *time.Time) error {
	n, err := affected(s.q.ExecContext(ctx, `UPDATE accounts SET frozen_at = $2 WHERE id = $1`, accountID, nullTime(at)))
	if err != nil {
		return s.wrap("freeze account", err)
	}
	if n == 0 {
		return recourse.ErrNotFound
	}
	return nil
}

func (s queries) AccountsInGroup(ctx context.Context, group string, limit int) ([]*recourse.Account, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	rows, err := s.q.QueryContext(ctx, fmt.Sprintf(`SELECT `+accountColumns+` FROM accounts WHERE `+s.d.ListContains("group_names", "$1")+
		` ORDER BY id LIMIT %d`, limit), group)
	if err != nil {
		return nil, s.wrap("accounts in group", err)
	}
	var out []*recourse.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			rows.Close()
			return nil, s.wrap("accounts in group", err)
		}
		out = append(out, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.wrap("accounts in group", err)
	}
	for _, a := range out {
		if err := s.loadChannels(ctx, a); err != nil {
			return nil, s.wrap("accounts in group", err)
		}
	}
	return out, nil
}

// ExecSQL runs a statement of a component's own in the transaction (the
// job queue's claim of a pending start), through the same connection and
// queue as the store's statements; outside a transaction, on its own.
func (s queries) ExecSQL(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return s.q.ExecContext(ctx, query, args...)
}

// ExecAtCommit runs a statement of a component's own with the
// transaction's commit, before its queued inserts, instead of at once: on
// PostgreSQL it then costs no round trip of its own (TxConn.Commit). Its
// failure fails the commit, and nothing is committed; the statement must
// therefore fail by itself when its condition does not hold (the job
// queue's claim of a pending start raises an error when the start is
// gone), and the transaction's own statements do not see its effects.
// Outside a transaction it runs at once.
func (s queries) ExecAtCommit(ctx context.Context, query string, args ...any) error {
	if s.queue == nil {
		_, err := s.q.ExecContext(ctx, query, args...)
		return err
	}
	s.queue.atCommit = append(s.queue.atCommit, Statement{query, args})
	return nil
}

// SQLTx exposes the transaction to components that must write in it (the
// job queue's transactional inserts); an error outside a transaction. The
// inserts queued so far are written first, as before any statement of the
// store's own (writeQueue); a failure fails the commit too.
func (s queries) SQLTx(ctx context.Context) (*sql.Tx, error) {
	t, ok := s.q.(txQuerier)
	if !ok {
		return nil, errors.New("not in a transaction")
	}
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return t.tx.SQLTx(ctx)
}
