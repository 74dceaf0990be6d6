package recourse

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleAuditEvent() *AuditEvent {
	return &AuditEvent{
		ID: "ev_abc", Time: time.Date(2026, 11, 26, 9, 0, 0, 123456789, time.UTC),
		Actor: AuditActor{AccountID: "alice", Role: ActorSubject}, SubjectID: "alice", RequestID: "r1",
		Action: ActionChannelAdd, Outcome: OutcomeSuccess, Channel: ViaWeb, IP: "192.0.2.1", UserAgent: "ua",
		After: map[string]string{"address": "a@example.com", "kind": "email"}, Evidence: []string{"pwd", "otp"},
	}
}

func TestAuditCanonicalEncoding(t *testing.T) {
	tests := []struct {
		name string
		edit func(e *AuditEvent)
	}{
		{"plain", func(e *AuditEvent) {}},
		{"line breaks", func(e *AuditEvent) { e.Reason = "first\nsecond\r\nthird\u2028fourth" }},
		{"forged structure", func(e *AuditEvent) { e.UserAgent = `x","outcome":"success","seq":7,"evil":"` }},
		{"control characters", func(e *AuditEvent) { e.After["k\x00ey"] = "v\x1b[31m\ttab" }},
		{"html", func(e *AuditEvent) { e.Reason = "<script>alert(1)</script> & more" }},
		{"invalid utf-8", func(e *AuditEvent) { e.UserAgent = "bad \xff\xfe bytes" }},
		{"long", func(e *AuditEvent) { e.UserAgent = strings.Repeat("é", 1000) }},
		{"empty maps", func(e *AuditEvent) { e.After = map[string]string{} }},
		{"system actor", func(e *AuditEvent) { e.Actor = AuditActor{Role: ActorSystem}; e.SubjectID = "" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := sampleAuditEvent()
			tc.edit(e)
			if err := e.Validate(); err != nil {
				t.Fatal(err)
			}
			data, err := e.MarshalCanonical()
			if err != nil {
				t.Fatal(err)
			}
			if bytes.ContainsAny(data, "\n\r") || bytes.Contains(data, []byte("\u2028")) || bytes.ContainsFunc(data, func(r rune) bool { return r < 0x20 }) {
				t.Errorf("encoding is not one clean line: %q", data)
			}
			back, err := ParseAuditEvent(data)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := back.MarshalCanonical()
			if !bytes.Equal(again, data) {
				t.Errorf("round trip changed the encoding:\n%s\n%s", data, again)
			}
			if back.Outcome != OutcomeSuccess || back.Seq != nil {
				t.Errorf("a field forged structure: outcome %q, seq %v", back.Outcome, back.Seq)
			}
			// The leaf at a position is the encoding of the event with its
			// position, built without decoding.
			for _, seq := range []int64{0, 1, 41, 1 << 40} {
				withSeq := *e
				withSeq.Seq = &seq
				want, _ := withSeq.MarshalCanonical()
				if got := AuditLeaf(data, seq); !bytes.Equal(got, want) {
					t.Fatalf("AuditLeaf(%d):\n%s\nwant\n%s", seq, got, want)
				}
				parsed, err := ParseAuditEvent(want)
				if err != nil || parsed.Seq == nil || *parsed.Seq != seq {
					t.Fatalf("leaf does not decode to position %d: %v", seq, err)
				}
			}
		})
	}
}

func TestAuditEventTimeAndFields(t *testing.T) {
	e := sampleAuditEvent()
	data, _ := e.MarshalCanonical()
	if !bytes.Contains(data, []byte(`"time":"2026-11-26T09:00:00.123456Z"`)) {
		t.Errorf("time not at microseconds in UTC: %s", data)
	}
	back, _ := ParseAuditEvent(data)
	e.Time = e.Time.Truncate(time.Microsecond)
	if !reflect.DeepEqual(back, e) {
		t.Errorf("ParseAuditEvent =\n%+v\nwant\n%+v", back, e)
	}
	if _, err := ParseAuditEvent([]byte(`{"id":"ev_x","time":"2026-11-26T09:00:00.000000Z","hidden":"field"}`)); err == nil {
		t.Error("an unknown field was accepted")
	}
	if _, err := ParseAuditEvent(append(data, []byte(`{}`)...)); err == nil {
		t.Error("trailing data was accepted")
	}
}

func TestAuditEventValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(e *AuditEvent)
	}{
		{"no id prefix", func(e *AuditEvent) { e.ID = "x" }},
		{"no time", func(e *AuditEvent) { e.Time = time.Time{} }},
		{"bad action", func(e *AuditEvent) { e.Action = "Sign In" }},
		{"bad outcome", func(e *AuditEvent) { e.Outcome = "maybe" }},
		{"bad channel", func(e *AuditEvent) { e.Channel = "carrier pigeon" }},
		{"bad role", func(e *AuditEvent) { e.Actor.Role = "god" }},
		{"huge map", func(e *AuditEvent) {
			for i := range 100 {
				e.After[strings.Repeat("k", i+1)] = "v"
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := sampleAuditEvent()
			tc.edit(e)
			if err := e.Validate(); err == nil {
				t.Error("Validate accepted it")
			}
		})
	}
}

// TestMarshalCanonicalFilters: the filter fields are what a JSON decoder
// reads back from the encoding returned with them, for awkward values too.
func TestMarshalCanonicalFilters(t *testing.T) {
	for name, f := range map[string]func(e *AuditEvent){
		"plain":     func(e *AuditEvent) {},
		"escaped":   func(e *AuditEvent) { e.SubjectID = `<a>&"Zoë"\` + "\u2028\t" },
		"clipped":   func(e *AuditEvent) { e.SubjectID = strings.Repeat("é", 200) },
		"not utf-8": func(e *AuditEvent) { e.Actor.AccountID = "a\xffb" },
		"empty":     func(e *AuditEvent) { e.RequestID, e.SubjectID = "", "" },
		"zone":      func(e *AuditEvent) { e.Time = time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600)) },
	} {
		e := &AuditEvent{ID: "ev_x", Time: time.Unix(0, 0), Actor: AuditActor{AccountID: "acc", Role: ActorSubject},
			SubjectID: "acc", RequestID: "rr_1", Action: "session.revoke", Outcome: OutcomeSuccess, Channel: ViaWeb}
		f(e)
		data, got, err := e.MarshalCanonicalFilters()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if plain, _ := e.MarshalCanonical(); string(plain) != string(data) {
			t.Errorf("%s: encoding differs from MarshalCanonical", name)
		}
		var j struct {
			ID, Time string
			Actor    struct {
				AccountID string `json:"account_id"`
			}
			SubjectID string `json:"subject_id"`
			RequestID string `json:"request_id"`
			Action    string
		}
		if err := json.Unmarshal(data, &j); err != nil {
			t.Fatal(err)
		}
		want := AuditFilters{EventID: j.ID, Time: j.Time, ActorID: j.Actor.AccountID, SubjectID: j.SubjectID, Action: j.Action, RequestID: j.RequestID}
		if got != want {
			t.Errorf("%s: filters %+v, want %+v", name, got, want)
		}
	}
	bad := &AuditEvent{ID: "ev_\xff", Time: time.Unix(0, 0), Action: "session.revoke", Outcome: OutcomeSuccess, Channel: ViaWeb, Actor: AuditActor{Role: ActorSubject}}
	if err := bad.Validate(); err == nil {
		t.Error("an id that is not UTF-8 was accepted")
	}
}
