package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/service"
)

// The admin pages: the audit log browser with the log's verification
// status, the policy in force as a table, webhooks and API keys (read-only),
// and the metrics dashboard. Administrators see all of them; the security
// team sees the audit log, as GET /api/v1/audit allows. The rules (who may
// see what, the numbers) are in service/stats.go.

func (s *Server) adminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /admin", s.requireAdmin(s.adminHome))
	mux.HandleFunc("GET /admin/audit", s.requireAuditReader(s.adminAudit))
	mux.HandleFunc("GET /admin/audit/verify", s.requireAuditReader(s.adminAuditVerify))
	mux.HandleFunc("GET /admin/policy", s.requireAdmin(s.adminPolicy))
	mux.HandleFunc("GET /admin/integrations", s.requireAdmin(s.adminIntegrations))
	mux.HandleFunc("GET /admin/metrics", s.requireAdmin(s.adminMetrics))
}

// requireRole runs h for a signed-in caller that allow accepts: anonymous
// callers go to /signin, anyone else gets a 403 page.
func (s *Server) requireRole(allow func(*service.Principal) error, h http.HandlerFunc) http.HandlerFunc {
	return s.requireSignIn(func(w http.ResponseWriter, r *http.Request) {
		if err := allow(principalFrom(r)); err != nil {
			s.render(w, r, httpStatus(err), "forbidden", page{Title: "Not available", Error: recourse.ErrorMessage(err)})
			return
		}
		h(w, r)
	})
}

func (s *Server) requireAdmin(h http.HandlerFunc) http.HandlerFunc {
	return s.requireRole(s.svc.AdminConsole, h)
}

func (s *Server) requireAuditReader(h http.HandlerFunc) http.HandlerFunc {
	return s.requireRole(s.svc.AuditConsole, h)
}

// adminTab names the admin pages for the sub-navigation.
type adminTab struct {
	Href, Label string
	Current     bool
}

func adminTabs(current string) []adminTab {
	tabs := []adminTab{{"/admin", "Overview", false}, {"/admin/audit", "Audit log", false}, {"/admin/policy", "Policy", false},
		{"/admin/metrics", "Metrics", false}, {"/admin/integrations", "Webhooks and API keys", false}}
	for i := range tabs {
		tabs[i].Current = tabs[i].Href == current
	}
	return tabs
}

type adminHomeData struct {
	Tabs         []adminTab
	Status       *service.AuditStatus
	PolicyName   string
	PolicyDigest string
	PolicySource string
}

func (s *Server) adminHome(w http.ResponseWriter, r *http.Request) {
	st, err := s.svc.AuditStatus(r.Context(), principalFrom(r))
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	pol := s.svc.Policy()
	s.render(w, r, http.StatusOK, "admin", page{Title: "Administration", Data: adminHomeData{
		Tabs: adminTabs("/admin"), Status: st, PolicyName: pol.Name, PolicyDigest: pol.Digest(), PolicySource: pol.Source}})
}

// ---------- Audit log ----------

const adminAuditPage = 50

// auditQuery is the audit browser's filter form as submitted.
type auditQuery struct {
	Account, Actor, Action, Request, From, Until, Cursor string
}

// values returns the query's filters (without the cursor) as URL values.
func (q auditQuery) values() url.Values {
	v := url.Values{}
	for _, kv := range [][2]string{{"account", q.Account}, {"actor", q.Actor}, {"action", q.Action}, {"request", q.Request},
		{"from", q.From}, {"until", q.Until}} {
		if kv[1] != "" {
			v.Set(kv[0], kv[1])
		}
	}
	return v
}

// Filtered reports whether any filter is set.
func (q auditQuery) Filtered() bool { return len(q.values()) > 0 }

// adminTimeLayouts are the time forms the filters accept: what a
// datetime-local input sends (read as UTC), a date, and RFC 3339.
var adminTimeLayouts = []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02", time.RFC3339}

func parseAdminTime(v string) (time.Time, bool) {
	for _, l := range adminTimeLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// clip bounds a filter value so a long query cannot make a long page.
func clipFilter(v string) string {
	v = strings.TrimSpace(v)
	if len(v) > 128 {
		v = v[:128]
	}
	return v
}

// parseAuditQuery reads the filters; the error names the field at fault.
func parseAuditQuery(r *http.Request) (auditQuery, recourse.AuditFilter, error) {
	u := r.URL.Query()
	q := auditQuery{Account: clipFilter(u.Get("account")), Actor: clipFilter(u.Get("actor")), Action: clipFilter(u.Get("action")),
		Request: clipFilter(u.Get("request")), From: clipFilter(u.Get("from")), Until: clipFilter(u.Get("until")), Cursor: clipFilter(u.Get("cursor"))}
	f := recourse.AuditFilter{AccountID: q.Account, ActorID: q.Actor, Action: q.Action, RequestID: q.Request,
		Descending: true, Limit: adminAuditPage + 1}
	for _, p := range []struct {
		name, label, v string
		dst            *time.Time
	}{{"from", "From", q.From, &f.Since}, {"until", "Until", q.Until, &f.Until}} {
		if p.v == "" {
			continue
		}
		t, ok := parseAdminTime(p.v)
		if !ok {
			return q, f, recourse.FieldError(p.name, "%s must be a time like 2026-11-26T09:00 (UTC).", p.label)
		}
		*p.dst = t
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return q, f, recourse.FieldError("until", "Until must be later than From.")
	}
	if q.Cursor != "" {
		seq, ok := decodeCursor(q.Cursor)
		if !ok || seq == 0 {
			return q, f, recourse.FieldError("cursor", "That page link is not one this page made; start again from the first page.")
		}
		f.BeforeSeq = seq
	}
	return q, f, nil
}

// auditRow is one event as the browser shows it.
type auditRow struct {
	Seq          int64
	ID           string
	Time         time.Time
	Action       string
	Outcome      string
	OutcomeClass string
	ActorRole    string
	ActorID      string
	SubjectID    string
	RequestID    string
	Channel      string
	IP           string
	Reason       string
	// JSON is the event's canonical encoding, indented.
	JSON string
}

type adminAuditData struct {
	Tabs   []adminTab
	Status *service.AuditStatus
	Query  auditQuery
	Events []auditRow
	// Next is the link to the next (older) page; empty on the last.
	Next string
	// First links back to the newest events when this is a later page.
	First string
}

func auditRowOf(e *recourse.AuditEvent) (auditRow, error) {
	row := auditRow{ID: e.ID, Time: e.Time, Action: e.Action, Outcome: string(e.Outcome), ActorRole: string(e.Actor.Role),
		ActorID: e.Actor.AccountID, SubjectID: e.SubjectID, RequestID: e.RequestID, Channel: string(e.Channel), IP: e.IP, Reason: e.Reason}
	if e.Seq != nil {
		row.Seq = *e.Seq
	}
	switch e.Outcome {
	case recourse.OutcomeSuccess:
		row.OutcomeClass = "badge-ok"
	case recourse.OutcomeFailure, recourse.OutcomeDenied:
		row.OutcomeClass = "badge-warn"
	default:
		row.OutcomeClass = "badge-muted"
	}
	raw, err := e.MarshalCanonical()
	if err != nil {
		return row, err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return row, err
	}
	row.JSON = buf.String()
	return row, nil
}

func (s *Server) adminAudit(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r)
	st, err := s.svc.AuditStatus(r.Context(), p)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	q, f, err := parseAuditQuery(r)
	d := adminAuditData{Tabs: adminTabs("/admin/audit"), Status: st, Query: q}
	if err != nil {
		s.render(w, r, httpStatus(err), "admin_audit", page{Title: "Audit log", Error: recourse.ErrorMessage(err), Field: errorField(err, ""), Data: d})
		return
	}
	evs, err := s.svc.AuditEvents(r.Context(), p, f)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	more := len(evs) > adminAuditPage
	if more {
		evs = evs[:adminAuditPage]
	}
	for _, e := range evs {
		row, err := auditRowOf(e)
		if err != nil {
			s.renderError(w, r, err)
			return
		}
		d.Events = append(d.Events, row)
	}
	if more && len(d.Events) > 0 {
		v := q.values()
		v.Set("cursor", encodeCursor(d.Events[len(d.Events)-1].Seq))
		d.Next = "/admin/audit?" + v.Encode()
	}
	if q.Cursor != "" {
		d.First = "/admin/audit"
		if v := q.values(); len(v) > 0 {
			d.First += "?" + v.Encode()
		}
	}
	s.render(w, r, http.StatusOK, "admin_audit", page{Title: "Audit log", Data: d})
}

type adminVerifyData struct {
	Tabs   []adminTab
	Status *service.AuditStatus
	Key    string
	Result *service.AuditVerification
}

// adminAuditVerify recomputes the log against a verifier key the visitor
// brings. The server holds only the signing key's private half in its
// configuration, which the web layer never sees; a key typed here is the
// visitor's own copy of the public key.
func (s *Server) adminAuditVerify(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r)
	st, err := s.svc.AuditStatus(r.Context(), p)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	d := adminVerifyData{Tabs: adminTabs("/admin/audit"), Status: st, Key: clipKey(r.URL.Query().Get("key"))}
	if d.Key == "" {
		redirect(w, r, "/admin/audit")
		return
	}
	res, err := s.svc.VerifyAudit(r.Context(), p, d.Key)
	if err != nil {
		s.logIfInternal(r, err)
		s.render(w, r, httpStatus(err), "admin_audit_verify", page{Title: "Verify the audit log", Error: recourse.ErrorMessage(err), Field: "key", Data: d})
		return
	}
	d.Result = res
	s.render(w, r, http.StatusOK, "admin_audit_verify", page{Title: "Verify the audit log", Data: d})
}

func clipKey(v string) string {
	v = strings.TrimSpace(v)
	if len(v) > 512 {
		v = v[:512]
	}
	return v
}

// ---------- Policy ----------

type adminPolicyData struct {
	Tabs   []adminTab
	Matrix *service.PolicyMatrix
}

func (s *Server) adminPolicy(w http.ResponseWriter, r *http.Request) {
	m, err := s.svc.PolicyMatrix(r.Context(), principalFrom(r))
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "admin_policy", page{Title: "Policy", Data: adminPolicyData{Tabs: adminTabs("/admin/policy"), Matrix: m}})
}

// ---------- Webhooks and API keys ----------

type keyRow struct {
	ID, Name, Owner, Hint, State, CreatedBy string
	Scopes                                  []string
	CreatedAt, ExpiresAt                    time.Time
	LastUsedAt                              *time.Time
}

type adminIntegrationsData struct {
	Tabs     []adminTab
	Webhooks []*service.Webhook
	Keys     []keyRow
	// MoreKeys is set when there are more keys than the page lists.
	MoreKeys bool
}

const adminKeysPage = 200

func (s *Server) adminIntegrations(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r)
	hooks, err := s.svc.ListWebhooks(r.Context(), p)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	keys, err := s.svc.APIKeys(r.Context(), &service.APIPrincipal{Principal: p}, recourse.APIKeyFilter{Limit: adminKeysPage + 1})
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	d := adminIntegrationsData{Tabs: adminTabs("/admin/integrations"), Webhooks: hooks}
	if len(keys) > adminKeysPage {
		keys, d.MoreKeys = keys[:adminKeysPage], true
	}
	for _, k := range keys {
		d.Keys = append(d.Keys, keyRow{ID: k.ID, Name: k.Name, Owner: k.OwnerID, Hint: k.Hint, State: s.svc.APIKeyState(k),
			CreatedBy: k.CreatedBy, Scopes: k.Scopes, CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, LastUsedAt: k.LastUsedAt})
	}
	s.render(w, r, http.StatusOK, "admin_integrations", page{Title: "Webhooks and API keys", Data: d})
}

// ---------- Metrics ----------

type statTile struct {
	Label, Value, Hint string
}

type tierRow struct {
	Tier                                               string
	Total, Completed, Cancelled, Denied, Expired, Open int
	Median                                             string
}

type adminMetricsData struct {
	Tabs      []adminTab
	Stats     *service.RecoveryStats
	Tiles     []statTile
	Tiers     []tierRow
	Outcomes  *barChart
	Share     *barChart
	Medians   *barChart
	Incidents *barChart
	Legend    []legendItem
	// SelfShare and HelpDeskShare are percentages of completed requests.
	SelfShare, HelpDeskShare, OtherShare string
}

func percent(n, of int) string {
	if of == 0 {
		return "—"
	}
	return strconv.FormatFloat(100*float64(n)/float64(of), 'f', 0, 64) + "%"
}

// humanSpan writes a duration for people: "3 days 4 h", "2 h 5 min",
// "45 s".
func humanSpan(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d >= 48*time.Hour:
		days := int(d / (24 * time.Hour))
		h := int((d % (24 * time.Hour)) / time.Hour)
		if h == 0 {
			return fmt.Sprintf("%d days", days)
		}
		return fmt.Sprintf("%d days %d h", days, h)
	case d >= time.Hour:
		h, m := int(d/time.Hour), int((d%time.Hour)/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%d h", h)
		}
		return fmt.Sprintf("%d h %d min", h, m)
	case d >= time.Minute:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	}
	return fmt.Sprintf("%d s", int(d/time.Second))
}

func (s *Server) adminMetrics(w http.ResponseWriter, r *http.Request) {
	st, err := s.svc.RecoveryStats(r.Context(), principalFrom(r))
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	d := adminMetricsData{Tabs: adminTabs("/admin/metrics"), Stats: st,
		SelfShare: percent(st.CompletedSelf, st.Completed), HelpDeskShare: percent(st.CompletedHelpDesk, st.Completed),
		OtherShare: percent(st.CompletedOther, st.Completed), Legend: outcomeLegend}
	d.Tiles = []statTile{
		{"Requests", strconv.Itoa(st.Requests), "all recovery and self-service requests"},
		{"Completed without the help desk", d.SelfShare, fmt.Sprintf("%d of %d completed", st.CompletedSelf, st.Completed)},
		{"Cancelled", strconv.Itoa(st.Cancelled), fmt.Sprintf("%d by “this wasn't me”", st.NotMe)},
		{"“This wasn't me” reports", strconv.Itoa(st.NotMe), "each one alerted the security team"},
		{"Locked accounts", strconv.Itoa(st.Locked), "too many failed sign-ins"},
		{"Frozen accounts", strconv.Itoa(st.Frozen), "after a “this wasn't me” report"},
	}
	var outcomeRows []chartRow
	var medianRows []chartRow
	var longest time.Duration
	for _, t := range st.Tiers {
		d.Tiers = append(d.Tiers, tierRow{Tier: t.Tier, Total: t.Total, Completed: t.Completed, Cancelled: t.Cancelled,
			Denied: t.Denied, Expired: t.Expired, Open: t.Open, Median: humanSpan(t.Median)})
		outcomeRows = append(outcomeRows, chartRow{Label: t.Tier, Values: []int{t.Completed, t.Cancelled, t.Denied, t.Expired, t.Open},
			Text: strconv.Itoa(t.Total)})
		longest = max(longest, t.Median)
	}
	for _, t := range st.Tiers {
		medianRows = append(medianRows, chartRow{Label: t.Tier, Values: []int{scaleDuration(t.Median, longest)}, Text: humanSpan(t.Median)})
	}
	d.Outcomes = newBarChart("chart-outcomes", "Requests by tier and outcome",
		"Stacked bars: for each tier, completed, cancelled, denied, expired and open requests. The table below has the same numbers.",
		outcomeClasses, outcomeRows)
	d.Share = newBarChart("chart-share", "Completed requests by who started them",
		"Bars: completed requests started by the person themselves, by the help desk, and by an administrator or the API.",
		[]string{"seg-self"}, []chartRow{
			{Label: "self-service", Values: []int{st.CompletedSelf}, Text: fmt.Sprintf("%d (%s)", st.CompletedSelf, d.SelfShare)},
			{Label: "help desk", Values: []int{st.CompletedHelpDesk}, Text: fmt.Sprintf("%d (%s)", st.CompletedHelpDesk, d.HelpDeskShare)},
			{Label: "other", Values: []int{st.CompletedOther}, Text: fmt.Sprintf("%d (%s)", st.CompletedOther, d.OtherShare)},
		})
	d.Medians = newBarChart("chart-medians", "Median time to complete, per tier",
		"Bars: the median time from a request's start to its completion, for each tier.", []string{"seg-time"}, medianRows)
	d.Incidents = newBarChart("chart-incidents", "Cancellations, “this wasn't me” reports and lockouts",
		"Bars: cancelled requests, “this wasn't me” reports, locked accounts and frozen accounts.", []string{"seg-alert"}, []chartRow{
			{Label: "cancelled", Values: []int{st.Cancelled}, Text: strconv.Itoa(st.Cancelled)},
			{Label: "this wasn't me", Values: []int{st.NotMe}, Text: strconv.Itoa(st.NotMe)},
			{Label: "locked", Values: []int{st.Locked}, Text: strconv.Itoa(st.Locked)},
			{Label: "frozen", Values: []int{st.Frozen}, Text: strconv.Itoa(st.Frozen)},
		})
	s.render(w, r, http.StatusOK, "admin_metrics", page{Title: "Metrics", Data: d})
}

// scaleDuration maps d onto 0…1000 relative to the longest, so durations
// fit the integer bar chart.
func scaleDuration(d, longest time.Duration) int {
	if longest <= 0 || d <= 0 {
		return 0
	}
	return max(1, int(1000*float64(d)/float64(longest)))
}

var outcomeClasses = []string{"seg-completed", "seg-cancelled", "seg-denied", "seg-expired", "seg-open"}

type legendItem struct{ Class, Label string }

var outcomeLegend = []legendItem{{"seg-completed", "completed"}, {"seg-cancelled", "cancelled"}, {"seg-denied", "denied"},
	{"seg-expired", "expired"}, {"seg-open", "still open"}}

// ---------- Server-side SVG bar charts ----------

// A barChart is drawn by the template as an inline <svg>: every position
// and size is computed here, every colour comes from a CSS class (the CSP
// allows no style attribute, in SVG either).
type barChart struct {
	ID, Title, Desc string
	Width, Height   int
	Rows            []barRow
}

type barRow struct {
	Label          string
	LabelX, Y      int
	TextY          int
	Segments       []barSeg
	Text           string
	TextX          int
	BarY, BarH     int
	TrackX, TrackW int
}

type barSeg struct {
	X, Width int
	Class    string
}

type chartRow struct {
	Label  string
	Values []int
	Text   string
}

const (
	chartWidth  = 640
	chartLabelW = 130
	chartBarW   = 380
	chartRowH   = 32
	chartBarH   = 20
	chartPad    = 8
)

// newBarChart lays out horizontal bars, stacked when a row has several
// values (classes[i] colours the i-th), scaled to the largest row total.
func newBarChart(id, title, desc string, classes []string, rows []chartRow) *barChart {
	c := &barChart{ID: id, Title: title, Desc: desc, Width: chartWidth, Height: 2*chartPad + len(rows)*chartRowH}
	largest := 0
	for _, r := range rows {
		total := 0
		for _, v := range r.Values {
			total += v
		}
		largest = max(largest, total)
	}
	for i, r := range rows {
		y := chartPad + i*chartRowH
		br := barRow{Label: r.Label, LabelX: chartLabelW - chartPad, Y: y, BarY: y + (chartRowH-chartBarH)/2, BarH: chartBarH,
			TextY: y + chartRowH/2 + 5, TrackX: chartLabelW, TrackW: chartBarW, Text: r.Text}
		x := chartLabelW
		for j, v := range r.Values {
			if v <= 0 || largest == 0 {
				continue
			}
			w := max(2, v*chartBarW/largest)
			br.Segments = append(br.Segments, barSeg{X: x, Width: w, Class: classes[min(j, len(classes)-1)]})
			x += w
		}
		br.TextX = x + chartPad
		c.Rows = append(c.Rows, br)
	}
	return c
}
