package sqlite_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/store/sqlite"
	"github.com/recourse/recourse/store/sqlstore"
)

// TestAuditListPlans: every filter of the audit log by account, actor,
// request or action is answered from the filters' indexes, never by walking the log
// by position (which took 30 s for an account at 10,000,000 events). The
// plans are SQLite's heuristics, the same for an empty log as for a large
// one that was never analysed.
func TestAuditListPlans(t *testing.T) {
	ctx := t.Context()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "recourse.db"), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		f    recourse.AuditFilter
		want []string // indexes the plan must search
	}{
		{"account", recourse.AuditFilter{AccountID: "ac_x"}, []string{"audit_events_subject", "audit_events_actor"}},
		{"account, newest first", recourse.AuditFilter{AccountID: "ac_x", Descending: true, Limit: 50}, []string{"audit_events_subject", "audit_events_actor"}},
		{"account, a page further", recourse.AuditFilter{AccountID: "ac_x", Descending: true, BeforeSeq: 9_000_000, Limit: 50}, []string{"audit_events_subject", "audit_events_actor"}},
		{"account and action", recourse.AuditFilter{AccountID: "ac_x", Action: recourse.ActionRecoveryStart}, []string{"audit_events_subject", "audit_events_actor"}},
		{"account since", recourse.AuditFilter{AccountID: "ac_x", Since: since}, []string{"audit_events_subject", "audit_events_actor"}},
		{"actor", recourse.AuditFilter{ActorID: "ac_x"}, []string{"audit_events_subject", "audit_events_actor"}},
		{"actor, newest first", recourse.AuditFilter{ActorID: "ac_x", Descending: true, Limit: 50}, []string{"audit_events_subject", "audit_events_actor"}},
		{"request", recourse.AuditFilter{RequestID: "0123456789abcdef01234567", Descending: true}, []string{"audit_events_request"}},
		{"action", recourse.AuditFilter{Action: recourse.ActionAccountUnlock}, []string{"audit_events_action"}},
		{"action, newest first", recourse.AuditFilter{Action: recourse.ActionAccountUnlock, Descending: true, Limit: 50}, []string{"audit_events_action"}},
		{"action, a page further", recourse.AuditFilter{Action: recourse.ActionAccountUnlock, Descending: true, BeforeSeq: 9_000_000, Limit: 50}, []string{"audit_events_action"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, args := sqlstore.AuditListQuery(tt.f)
			rows, err := s.DB().QueryContext(ctx, "EXPLAIN QUERY PLAN "+q, args...)
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			text := strings.Join(plan, "\n")
			for _, idx := range tt.want {
				if !strings.Contains(text, "USING INDEX "+idx+" ") {
					t.Errorf("the plan does not search %s:\n%s", idx, text)
				}
			}
			if strings.Contains(text, "sqlite_autoindex_audit_events_1") || strings.Contains(text, "SCAN audit_events") {
				t.Errorf("the plan walks the log:\n%s", text)
			}
		})
	}
}
