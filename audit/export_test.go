package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/store/storetest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var testProduct = Product{Name: "Recourse", Vendor: "Recourse", Version: "test"}

// sampleEvents is one event of each kind, with fixed ids and times.
func sampleEvents() []*recourse.AuditEvent {
	at := func(s int) time.Time { return storetest.T0.Add(time.Duration(s) * time.Second) }
	web := func(e recourse.AuditEvent) *recourse.AuditEvent {
		e.Channel, e.IP, e.UserAgent = recourse.ViaWeb, "192.0.2.10", "Mozilla/5.0 (X11; Linux x86_64)"
		if e.Actor.Role == "" {
			e.Actor = recourse.AuditActor{AccountID: e.SubjectID, Role: recourse.ActorSubject}
		}
		return &e
	}
	cli := func(e recourse.AuditEvent) *recourse.AuditEvent {
		e.Channel, e.Actor = recourse.ViaCLI, recourse.AuditActor{Role: recourse.ActorAdmin}
		return &e
	}
	return []*recourse.AuditEvent{
		cli(recourse.AuditEvent{ID: "ev_sample00000000000000001", Time: at(0), SubjectID: "d.chen", Action: recourse.ActionAccountCreate,
			Outcome: recourse.OutcomeSuccess, After: map[string]string{"display_name": "Daniel Chen", "roles": "", "status": "active"}}),
		cli(recourse.AuditEvent{ID: "ev_sample00000000000000002", Time: at(1), SubjectID: "d.chen", Action: recourse.ActionPasswordSet,
			Outcome: recourse.OutcomeSuccess, After: map[string]string{"password": "au_new"}}),
		web(recourse.AuditEvent{ID: "ev_sample00000000000000003", Time: at(2), RequestID: "r3", Action: recourse.ActionSignInPassword,
			Outcome: recourse.OutcomeFailure, Reason: "unknown account or no password",
			Actor:      recourse.AuditActor{Role: recourse.ActorSubject},
			Attributes: map[string]string{"identifier_hmac": "hmac-sha256:3f1c…"}, Evidence: []string{"pwd"}}),
		web(recourse.AuditEvent{ID: "ev_sample00000000000000004", Time: at(3), RequestID: "r4", SubjectID: "d.chen", Action: recourse.ActionSignInPassword,
			Outcome: recourse.OutcomeFailure, Reason: "wrong password", Attributes: map[string]string{"failures": "10"}, Evidence: []string{"pwd"}}),
		web(recourse.AuditEvent{ID: "ev_sample00000000000000005", Time: at(3), RequestID: "r4", SubjectID: "d.chen", Action: recourse.ActionAccountLock,
			Outcome: recourse.OutcomeSuccess, Reason: "10 consecutive failed sign-ins", Actor: recourse.AuditActor{Role: recourse.ActorSystem},
			Before: map[string]string{"locked": "false"}, After: map[string]string{"locked": "true"}}),
		cli(recourse.AuditEvent{ID: "ev_sample00000000000000006", Time: at(4), SubjectID: "d.chen", Action: recourse.ActionAccountUnlock,
			Outcome: recourse.OutcomeSuccess, Before: map[string]string{"locked": "true"}, After: map[string]string{"locked": "false"}}),
		web(recourse.AuditEvent{ID: "ev_sample00000000000000007", Time: at(5), RequestID: "r7", SubjectID: "d.chen", Action: recourse.ActionSignInPassword,
			Outcome: recourse.OutcomeSuccess, Attributes: map[string]string{"session_id": "ses_1", "second_factor": "pending"}, Evidence: []string{"pwd"}}),
		web(recourse.AuditEvent{ID: "ev_sample00000000000000008", Time: at(6), RequestID: "r8", SubjectID: "d.chen", Action: recourse.ActionSignInSecondFactor,
			Outcome: recourse.OutcomeSuccess, Attributes: map[string]string{"session_id": "ses_1", "aal": "2", "method": "otp"}, Evidence: []string{"pwd", "otp"}}),
		web(recourse.AuditEvent{ID: "ev_sample00000000000000009", Time: at(7), RequestID: "r9", SubjectID: "d.chen", Action: recourse.ActionAuthenticatorBind,
			Outcome: recourse.OutcomeSuccess, After: map[string]string{"authenticator_id": "au_2", "kind": "webauthn", "name": "YubiKey\n<script>"}}),
		web(recourse.AuditEvent{ID: "ev_sample00000000000000010", Time: at(8), RequestID: "r10", SubjectID: "d.chen", Action: recourse.ActionChannelAdd,
			Outcome: recourse.OutcomeSuccess, After: map[string]string{"channel_id": "ch_1", "kind": "phone", "address": "+15550100002"}}),
		web(recourse.AuditEvent{ID: "ev_sample00000000000000011", Time: at(9), RequestID: "r11", SubjectID: "d.chen", Action: recourse.ActionRecoveryContacts,
			Outcome: recourse.OutcomeSuccess, Before: map[string]string{"recovery_contacts": "a.silva"}, After: map[string]string{"recovery_contacts": "a.silva,m.okafor"}}),
		web(recourse.AuditEvent{ID: "ev_sample00000000000000012", Time: at(10), RequestID: "r12", SubjectID: "d.chen", Action: recourse.ActionSessionRevokeAll,
			Outcome: recourse.OutcomeSuccess, Attributes: map[string]string{"revoked": "2"}}),
		{ID: "ev_sample00000000000000013", Time: at(11), Actor: recourse.AuditActor{Role: recourse.ActorSystem}, Channel: recourse.ViaSystem,
			Action: recourse.ActionPolicyLoad, Outcome: recourse.OutcomeFailure, Reason: "line 3: unknown action", PolicyDigest: "sha256:abc",
			Attributes: map[string]string{"source": "policy.yaml"}},
		{ID: "ev_sample00000000000000014", Time: at(12), Actor: recourse.AuditActor{AccountID: "h.berg", Role: recourse.ActorHelpdesk}, Channel: recourse.ViaHelpdesk,
			SubjectID: "d.chen", Action: "helpdesk.future_action", Outcome: recourse.OutcomeDenied, Reason: "policy", Approvals: []string{"ap_1"}},
		{ID: "ev_sample00000000000000015", Time: at(13), Actor: recourse.AuditActor{AccountID: "h.berg", Role: recourse.ActorHelpdesk}, Channel: recourse.ViaHelpdesk,
			SubjectID: "a.silva", Action: recourse.ActionCallerVerify, Outcome: recourse.OutcomeSuccess, Evidence: []string{"otp"}},
		web(recourse.AuditEvent{ID: "ev_sample00000000000000016", Time: at(14), RequestID: "r16", SubjectID: "d.chen", Action: recourse.ActionApprovalVote,
			Outcome: recourse.OutcomeSuccess, Actor: recourse.AuditActor{AccountID: "m.okafor", Role: recourse.ActorApprover},
			Attributes: map[string]string{"request": "rr_1", "vote": "approve"}, Approvals: []string{"ap_2"}}),
		web(recourse.AuditEvent{ID: "ev_sample00000000000000017", Time: at(15), RequestID: "r17", SubjectID: "d.chen", Action: recourse.ActionRecoveryCancel,
			Outcome: recourse.OutcomeSuccess, Reason: "this wasn't me", Attributes: map[string]string{"request": "rr_1", "frozen": "true"}}),
		web(recourse.AuditEvent{ID: "ev_sample00000000000000018", Time: at(16), RequestID: "r18", SubjectID: "d.chen", Action: recourse.ActionRecoveryComplete,
			Outcome: recourse.OutcomeSuccess, Approvals: []string{"ap_2"}, Evidence: []string{"code", "approval"}, PolicyDigest: "9f2c",
			Before: map[string]string{"authenticators": "au_1"}, After: map[string]string{"authenticators": ""}}),
		{ID: "ev_sample00000000000000019", Time: at(17), Actor: recourse.AuditActor{AccountID: "r.patel", Role: recourse.ActorAdmin}, Channel: recourse.ViaAPI,
			SubjectID: "svc.payroll", Action: recourse.ActionAPIKeyCreate, Outcome: recourse.OutcomeSuccess, After: map[string]string{"key_id": "ak_1"}},
	}
}

// sampleStore holds the sample events, sequenced in order.
func sampleStore(t *testing.T) recourse.Store {
	t.Helper()
	st := openSQLite(t).st
	for _, e := range sampleEvents() {
		if err := st.AddAuditEvent(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := newTestSequencer(t, st, 100).Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	return st
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test -update if the change is intended):\n%s", name, got)
	}
}

func TestExportJSONL(t *testing.T) {
	ctx := t.Context()
	st := sampleStore(t)
	var buf bytes.Buffer
	n, next, err := Export(ctx, st, &buf, ExportOptions{})
	if err != nil || n != 19 || next != 19 {
		t.Fatalf("Export = %d, %d, %v", n, next, err)
	}
	golden(t, "export.jsonl", buf.Bytes())
	// Each line is exactly the Merkle leaf of its event.
	recs, _ := st.AuditRecords(ctx, 0, 100)
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	for i, line := range lines {
		if want := string(recourse.AuditLeaf(recs[i].Data, int64(i))); line != want {
			t.Errorf("line %d is not the leaf:\n%s\n%s", i, line, want)
		}
	}
	// Since/Until select by event time.
	buf.Reset()
	n, _, err = Export(ctx, st, &buf, ExportOptions{Since: storetest.T0.Add(3 * time.Second), Until: storetest.T0.Add(5 * time.Second)})
	if err != nil || n != 3 {
		t.Errorf("Export since/until = %d, %v:\n%s", n, err, buf.String())
	}
	if _, _, err := Export(ctx, st, io.Discard, ExportOptions{Format: "xml"}); recourse.ErrorCode(err) != recourse.EINVALID {
		t.Errorf("unknown format: %v", err)
	}
}

// ocsfRequired lists, per OCSF 1.3.0 class, the attributes the schema marks
// required (the base event's, and the class's own), as dotted paths.
var ocsfRequired = map[int][]string{
	0:    nil,
	2004: {"finding_info", "finding_info.uid", "finding_info.title"},
	3001: {"user"},
	3002: {"user"},
}

var ocsfBaseRequired = []string{"activity_id", "category_uid", "class_uid", "severity_id", "time", "type_uid",
	"metadata", "metadata.version", "metadata.product", "metadata.product.name", "metadata.product.vendor_name"}

func lookup(m map[string]any, path string) (any, bool) {
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func TestExportOCSF(t *testing.T) {
	st := sampleStore(t)
	var buf bytes.Buffer
	if _, _, err := Export(t.Context(), st, &buf, ExportOptions{Format: FormatOCSF, Product: testProduct}); err != nil {
		t.Fatal(err)
	}
	golden(t, "export.ocsf.jsonl", buf.Bytes())
	classes := map[int]int{}
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		class := int(ev["class_uid"].(float64))
		classes[class]++
		required, known := ocsfRequired[class]
		if !known {
			t.Errorf("class %d is not one Recourse exports", class)
		}
		for _, path := range append(append([]string{}, ocsfBaseRequired...), required...) {
			if v, ok := lookup(ev, path); !ok || v == nil || v == "" {
				t.Errorf("class %d event %v lacks required %s", class, ev["metadata"], path)
			}
		}
		activity := int(ev["activity_id"].(float64))
		if ev["type_uid"].(float64) != float64(class*100+activity) {
			t.Errorf("type_uid %v is not class_uid*100+activity_id", ev["type_uid"])
		}
		if ev["category_uid"].(float64) != float64(class/1000) {
			t.Errorf("category_uid %v does not match class %d", ev["category_uid"], class)
		}
		if class == 3002 {
			// The class constrains: at least one of service, dst_endpoint.
			if _, ok := ev["service"]; !ok {
				t.Errorf("authentication event without service")
			}
		}
		if time.UnixMilli(int64(ev["time"].(float64))).Before(storetest.T0) {
			t.Errorf("time %v is not in milliseconds", ev["time"])
		}
	}
	for _, c := range []int{0, 2004, 3001, 3002} {
		if classes[c] == 0 {
			t.Errorf("the samples exercise no class %d event", c)
		}
	}
}

func TestTail(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	st := openSQLite(t).st
	seq := newTestSequencer(t, st, 100)
	appendEvents(t, st, 3, 0)
	if _, err := seq.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- Tail(ctx, st, pw, 1, time.Millisecond, ExportOptions{}); pw.Close() }()
	lines := bufio.NewScanner(pr)
	read := func(wantSeq int64) {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("tail ended: %v", lines.Err())
		}
		e, err := recourse.ParseAuditEvent(lines.Bytes())
		if err != nil || e.Seq == nil || *e.Seq != wantSeq {
			t.Fatalf("tail line %s: %v, want position %d", lines.Bytes(), err, wantSeq)
		}
	}
	read(1)
	read(2)
	appendEvents(t, st, 2, 3)
	if _, err := seq.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	read(3)
	read(4)
	cancel()
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if err := <-done; err != nil {
		t.Fatalf("Tail = %v", err)
	}
}
