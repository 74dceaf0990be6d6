package service

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/audit"
	"github.com/recourse/recourse/policy"
)

// This file holds what the admin pages read: who may open them, the audit
// log's status and an on-demand verification, the policy as a table, and
// the numbers of the metrics dashboard. Everything here only reads.

// AdminConsole returns EFORBIDDEN unless p may open the admin pages:
// administrators, in a session that is not restricted.
func (s *Service) AdminConsole(p *Principal) error {
	if p == nil || p.Account == nil || !p.Account.HasRole(recourse.RoleAdmin) {
		return recourse.Errorf(recourse.EFORBIDDEN, "This page is for administrators.")
	}
	if p.Session != nil && p.Session.Restricted {
		return requireUnrestricted(p)
	}
	return nil
}

// AuditConsole returns EFORBIDDEN unless p may browse the audit log: the
// people GET /api/v1/audit allows (administrators and the security team),
// in a session that is not restricted.
func (s *Service) AuditConsole(p *Principal) error {
	if p == nil || p.Account == nil || !MayReadAudit(p.Account) {
		return recourse.Errorf(recourse.EFORBIDDEN, "This page is for administrators and the security team.")
	}
	if p.Session != nil && p.Session.Restricted {
		return requireUnrestricted(p)
	}
	return nil
}

// AuditStatus is the audit log's state as the database holds it.
type AuditStatus struct {
	// Checkpoint is the latest signed checkpoint; nil before the first.
	Checkpoint *recourse.AuditCheckpoint
	// Root is the checkpoint's root hash in base64, as the note shows it.
	Root string
	// Unsequenced counts events committed but not yet in the tree.
	Unsequenced int64
}

// AuditStatus returns the latest checkpoint and the sequencer's backlog,
// for an administrator or the security team.
func (s *Service) AuditStatus(ctx context.Context, p *Principal) (*AuditStatus, error) {
	if err := s.AuditConsole(p); err != nil {
		return nil, err
	}
	st := &AuditStatus{}
	c, err := s.store.LatestAuditCheckpoint(ctx)
	switch {
	case errors.Is(err, recourse.ErrNotFound):
	case err != nil:
		return nil, internal("read audit checkpoint", err)
	default:
		st.Checkpoint, st.Root = c, base64.StdEncoding.EncodeToString(c.Root[:])
	}
	if st.Unsequenced, err = s.store.AuditBacklog(ctx); err != nil {
		return nil, internal("count unsequenced events", err)
	}
	return st, nil
}

// AuditVerification is the outcome of VerifyAudit.
type AuditVerification struct {
	// OK is true when every stored event and checkpoint verified.
	OK     bool
	Report *audit.Report
	// Problem says where the log first differs from what was signed.
	Problem string
}

// VerifyAudit recomputes the log from the stored events and checks every
// checkpoint against the verifier key the caller supplies (the log's public
// key, which they hold independently of this server; the server never
// trusts a key of its own choosing here). It reads the whole log, so it
// runs only when asked.
func (s *Service) VerifyAudit(ctx context.Context, p *Principal, verifierKey string) (*AuditVerification, error) {
	if err := s.AuditConsole(p); err != nil {
		return nil, err
	}
	v, err := audit.NewVerifier(strings.TrimSpace(verifierKey))
	if err != nil {
		return nil, recourse.FieldError("key", "That is not a verifier key: print the log's key with recourse audit key.")
	}
	rep, err := audit.Verify(ctx, s.store, audit.VerifyOptions{Verifier: v})
	var inc *audit.Inconsistency
	switch {
	case errors.As(err, &inc):
		return &AuditVerification{Problem: inc.Error()}, nil
	case err != nil:
		return nil, internal("verify audit log", err)
	}
	return &AuditVerification{OK: true, Report: rep}, nil
}

// PolicyMatrix is the policy in force as a table: for each action, what it
// needs for each representative subject (policy.Personas), when the
// subject asks for themselves.
type PolicyMatrix struct {
	Name, Source, Digest string
	Personas             []string
	Rows                 []PolicyRow
	Classes              []PolicyClass
}

// PolicyRow is one action.
type PolicyRow struct {
	Action string
	Tier   string
	Cells  []PolicyCell
}

// PolicyCell is what an action needs for one persona.
type PolicyCell struct {
	Classes []string
	Summary string
	Deny    bool
}

// PolicyClass is a subject class and its condition.
type PolicyClass struct{ Name, When string }

// PolicyMatrix returns the policy in force as a table, for an
// administrator.
func (s *Service) PolicyMatrix(ctx context.Context, p *Principal) (*PolicyMatrix, error) {
	if err := s.AdminConsole(p); err != nil {
		return nil, err
	}
	pol := s.Policy()
	now := s.now().UTC()
	personas := policy.Personas(now)
	m := &PolicyMatrix{Name: pol.Name, Source: pol.Source, Digest: pol.Digest()}
	for _, ps := range personas {
		m.Personas = append(m.Personas, ps.Name)
	}
	for _, c := range pol.Classes {
		m.Classes = append(m.Classes, PolicyClass{Name: c.Name, When: c.When})
	}
	for _, action := range policy.Actions() {
		a, ok := pol.Actions[action]
		if !ok {
			continue
		}
		row := PolicyRow{Action: action, Tier: string(a.Tier)}
		for _, ps := range personas {
			d, err := pol.Decide(ctx, action, policy.Input{Account: ps.Account, Authenticators: ps.Authenticators,
				Request: policy.Request{Initiator: "self", Time: now}})
			if err != nil {
				return nil, internal("decide "+action, err)
			}
			row.Cells = append(row.Cells, PolicyCell{Classes: d.Classes, Summary: policy.Summary(d), Deny: d.Outcome == policy.Deny})
		}
		m.Rows = append(m.Rows, row)
	}
	return m, nil
}

// Bounds of what RecoveryStats reads.
const (
	statsMaxRequests = 10000
	statsAccountPage = 500
	statsMaxAccounts = 50000
)

// RecoveryStats are the numbers of the metrics dashboard.
type RecoveryStats struct {
	// Requests counts the requests read; Truncated is set when there were
	// more than the bound (the oldest are counted).
	Requests  int
	Truncated bool
	Tiers     []TierStats
	// Completed requests by who started them: the person themselves, the
	// help desk, or someone else (the API, an administrator).
	Completed, CompletedSelf, CompletedHelpDesk, CompletedOther int
	Cancelled, NotMe, Denied, Expired, Open                     int
	// Locked and Frozen count accounts now locked (too many failed
	// sign-ins) or frozen (after "this wasn't me").
	Locked, Frozen    int
	Accounts          int
	AccountsTruncated bool
}

// TierStats are one tier's requests.
type TierStats struct {
	Tier                                               string
	Total, Completed, Cancelled, Denied, Expired, Open int
	// Median is the median time from creation to completion of the
	// completed requests; zero when none completed.
	Median time.Duration
}

// StatsTiers are the tiers in the order the dashboard shows them.
var StatsTiers = []string{string(policy.TierRoutine), string(policy.TierRecovery), string(policy.TierCritical)}

var allRecoveryStates = []recourse.RecoveryState{
	recourse.RecoveryCollecting, recourse.RecoveryAwaitingApproval, recourse.RecoveryCoolingOff, recourse.RecoveryReady,
	recourse.RecoveryCompleted, recourse.RecoveryCancelled, recourse.RecoveryDenied, recourse.RecoveryExpired,
}

// RecoveryStats counts requests by tier and outcome, how many completed
// without the help desk, the median time to complete per tier,
// cancellations and "this wasn't me" reports, and locked and frozen
// accounts. For an administrator.
func (s *Service) RecoveryStats(ctx context.Context, p *Principal) (*RecoveryStats, error) {
	if err := s.AdminConsole(p); err != nil {
		return nil, err
	}
	list, err := s.store.OpenRecoveries(ctx, allRecoveryStates, statsMaxRequests)
	if err != nil {
		return nil, internal("list requests", err)
	}
	st := &RecoveryStats{Requests: len(list), Truncated: len(list) >= statsMaxRequests}
	byTier := map[string]*TierStats{}
	durations := map[string][]time.Duration{}
	tier := func(name string) *TierStats {
		if t, ok := byTier[name]; ok {
			return t
		}
		t := &TierStats{Tier: name}
		byTier[name] = t
		return t
	}
	for _, name := range StatsTiers {
		tier(name)
	}
	for _, r := range list {
		t := tier(r.Tier)
		t.Total++
		switch r.State {
		case recourse.RecoveryCompleted:
			t.Completed++
			st.Completed++
			switch r.Initiator {
			case "self":
				st.CompletedSelf++
			case "help_desk":
				st.CompletedHelpDesk++
			default:
				st.CompletedOther++
			}
			if r.CompletedAt != nil {
				durations[r.Tier] = append(durations[r.Tier], r.CompletedAt.Sub(r.CreatedAt))
			}
		case recourse.RecoveryCancelled:
			t.Cancelled++
			st.Cancelled++
			if strings.Contains(strings.ToLower(r.Outcome), "this wasn't me") {
				st.NotMe++
			}
		case recourse.RecoveryDenied:
			t.Denied++
			st.Denied++
		case recourse.RecoveryExpired:
			t.Expired++
			st.Expired++
		default:
			t.Open++
			st.Open++
		}
	}
	names := slices.Clone(StatsTiers)
	for name := range byTier {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names[len(StatsTiers):])
	for _, name := range names {
		t := byTier[name]
		t.Median = median(durations[name])
		st.Tiers = append(st.Tiers, *t)
	}

	after := ""
	for {
		page, err := s.store.ListAccounts(ctx, recourse.AccountFilter{After: after, Limit: statsAccountPage})
		if err != nil {
			return nil, internal("list accounts", err)
		}
		for _, a := range page {
			st.Accounts++
			if a.LockedAt != nil {
				st.Locked++
			}
			if a.FrozenAt != nil {
				st.Frozen++
			}
		}
		if len(page) < statsAccountPage {
			break
		}
		if st.Accounts >= statsMaxAccounts {
			st.AccountsTruncated = true
			break
		}
		after = page[len(page)-1].ID
	}
	return st, nil
}

// median returns the median of ds (the mean of the middle two for an even
// count), or 0 for none.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	n := len(ds)
	if n%2 == 1 {
		return ds[n/2]
	}
	return ds[n/2-1] + (ds[n/2]-ds[n/2-1])/2
}
