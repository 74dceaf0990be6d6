package recourse

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// AuditRole is the capacity in which an actor acted.
type AuditRole string

const (
	ActorSubject   AuditRole = "subject"    // the account holder, for their own account
	ActorApprover  AuditRole = "approver"   // a manager, recovery contact, sponsor or security member voting
	ActorHelpdesk  AuditRole = "helpdesk"   // a help-desk agent
	ActorAdmin     AuditRole = "admin"      // an administrator (console or CLI)
	ActorSystem    AuditRole = "system"     // Recourse itself (seeding, policy loads, automatic revocations)
	ActorAPIClient AuditRole = "api_client" // an integration calling the API
)

// AuditOutcome says how the action ended.
type AuditOutcome string

const (
	OutcomeSuccess AuditOutcome = "success"
	OutcomeFailure AuditOutcome = "failure" // the caller failed a check (wrong password, wrong code)
	OutcomeDenied  AuditOutcome = "denied"  // a rule refused it (locked, suspended, forbidden)
)

// AuditChannel is the way the request reached Recourse.
type AuditChannel string

const (
	ViaWeb       AuditChannel = "web"
	ViaAPI       AuditChannel = "api"
	ViaCLI       AuditChannel = "cli"
	ViaHelpdesk  AuditChannel = "helpdesk"
	ViaEmailCode AuditChannel = "email_code"
	ViaSCIM      AuditChannel = "scim"
	ViaSystem    AuditChannel = "system"
)

// Audit actions recorded today. The vocabulary is "object.verb"; exporters
// map it to OCSF classes (audit/ocsf.go). Actions for recovery requests,
// approvals and the help desk are reserved for those features.
const (
	ActionSignInPassword     = "signin.password"      // password step (complete, or pending a second factor)
	ActionSignInSecondFactor = "signin.second_factor" // TOTP, passkey or recovery code step
	ActionReauthenticate     = "session.reauthenticate"
	ActionSignOut            = "session.signout"
	ActionSessionRevoke      = "session.revoke"
	ActionSessionRevokeAll   = "session.revoke_all"
	ActionAccountCreate      = "account.create"
	ActionAccountUpdate      = "account.update"
	ActionAccountLock        = "account.lock" // an alert: exported as an OCSF Detection Finding
	ActionAccountUnlock      = "account.unlock"
	ActionPasswordSet        = "password.set"
	ActionAuthenticatorBegin = "authenticator.enroll" // a TOTP secret issued, pending confirmation
	ActionAuthenticatorBind  = "authenticator.bind"
	ActionAuthenticatorRepl  = "authenticator.replace"
	ActionRecoveryCodesIssue = "recovery_codes.issue"
	ActionChannelAdd         = "channel.add"
	ActionChannelCodeSent    = "channel.code_sent"
	ActionChannelConfirm     = "channel.confirm"
	ActionRecoveryContacts   = "recovery_contacts.change"
	ActionPolicyLoad         = "policy.load"
	ActionRecoveryTransition = "recovery.transition" // reserved (issue 4)
	ActionApprovalVote       = "approval.vote"       // reserved (issue 4)
	ActionHelpdeskAction     = "helpdesk.action"     // reserved (issue 4)
)

// AuditActor is who performed an audited action. AccountID is empty for an
// anonymous caller (a sign-in attempt for an unknown account), the CLI, and
// the system.
type AuditActor struct {
	AccountID string
	Role      AuditRole
}

// AuditEvent is one entry of the tamper-evident audit log. It MUST NOT hold a
// secret in the clear (a password, code, token or TOTP key): such values are
// omitted or HMAC'd before they reach an event.
//
// Events are written in the transaction of the change they describe
// (Tx.AddAuditEvent), unsequenced; the sequencer (package audit) later
// assigns Seq, the event's position in the Merkle tree, and signs a
// checkpoint over it.
type AuditEvent struct {
	// ID is "ev_" and 24 random characters (NewID).
	ID string
	// Seq is the position in the log; nil until sequenced.
	Seq *int64
	// Time is UTC, kept to the microsecond.
	Time      time.Time
	Actor     AuditActor
	SubjectID string
	RequestID string
	Action    string
	Outcome   AuditOutcome
	// Reason says why, for failures and denials, in a short phrase.
	Reason string
	// Before and After hold what changed, as strings; only changed keys.
	Before map[string]string
	After  map[string]string
	// Attributes hold context that is not a change: the session id, the
	// method, an HMAC of an identifier tried for an unknown account.
	Attributes map[string]string
	Channel    AuditChannel
	IP         string
	UserAgent  string
	// Evidence lists the evidence types used (RFC 8176 AMR values for
	// sign-in: "pwd", "otp", "hwk", "swk", "rcode").
	Evidence []string
	// Approvals lists the ids of the approvals the action rests on.
	Approvals []string
	// PolicyDigest is the digest of the policy in force.
	PolicyDigest string
}

// AuditTimeLayout is how event times are written: UTC, fixed width, to the
// microsecond, so text order is time order.
const AuditTimeLayout = "2006-01-02T15:04:05.000000Z"

// Bounds on event fields, so one event stays small whatever the input.
const (
	maxAuditText  = 512
	maxAuditMap   = 64
	maxAuditList  = 64
	maxAuditField = 2048
)

// auditJSON is the canonical encoding of an event. The field order is part
// of the format: Seq comes first, so the leaf of a sequenced event is the
// unsequenced encoding with `"seq":N,` inserted after the opening brace
// (see AuditLeaf). encoding/json escapes control characters, U+2028/2029
// and HTML metacharacters and sorts map keys, so the encoding is one line,
// deterministic, and no field can inject lines or forge structure.
type auditJSON struct {
	Seq          *int64            `json:"seq,omitempty"`
	ID           string            `json:"id"`
	Time         string            `json:"time"`
	Actor        auditActorJSON    `json:"actor"`
	SubjectID    string            `json:"subject_id"`
	RequestID    string            `json:"request_id"`
	Action       string            `json:"action"`
	Outcome      AuditOutcome      `json:"outcome"`
	Reason       string            `json:"reason,omitempty"`
	Before       map[string]string `json:"before,omitempty"`
	After        map[string]string `json:"after,omitempty"`
	Attributes   map[string]string `json:"attributes,omitempty"`
	Channel      AuditChannel      `json:"channel"`
	IP           string            `json:"ip,omitempty"`
	UserAgent    string            `json:"user_agent,omitempty"`
	Evidence     []string          `json:"evidence,omitempty"`
	Approvals    []string          `json:"approvals,omitempty"`
	PolicyDigest string            `json:"policy_digest,omitempty"`
}

type auditActorJSON struct {
	AccountID string    `json:"account_id"`
	Role      AuditRole `json:"role"`
}

// Validate checks the event is well formed before it is stored.
func (e *AuditEvent) Validate() error {
	if !strings.HasPrefix(e.ID, "ev_") || len(e.ID) > 64 || !utf8.ValidString(e.ID) {
		return fmt.Errorf("audit event: id %q must start with ev_, be valid UTF-8 and at most 64 bytes", e.ID)
	}
	if e.Time.IsZero() {
		return fmt.Errorf("audit event %s: time is required", e.ID)
	}
	if e.Action == "" || len(e.Action) > 64 || strings.ContainsFunc(e.Action, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r == '.' || r == '_')
	}) {
		return fmt.Errorf("audit event %s: action %q must be lowercase object.verb", e.ID, e.Action)
	}
	switch e.Outcome {
	case OutcomeSuccess, OutcomeFailure, OutcomeDenied:
	default:
		return fmt.Errorf("audit event %s: outcome %q must be success, failure or denied", e.ID, e.Outcome)
	}
	switch e.Channel {
	case ViaWeb, ViaAPI, ViaCLI, ViaHelpdesk, ViaEmailCode, ViaSCIM, ViaSystem:
	default:
		return fmt.Errorf("audit event %s: channel %q is not known", e.ID, e.Channel)
	}
	switch e.Actor.Role {
	case ActorSubject, ActorApprover, ActorHelpdesk, ActorAdmin, ActorSystem, ActorAPIClient:
	default:
		return fmt.Errorf("audit event %s: actor role %q is not known", e.ID, e.Actor.Role)
	}
	for _, m := range []map[string]string{e.Before, e.After, e.Attributes} {
		if len(m) > maxAuditMap {
			return fmt.Errorf("audit event %s: more than %d keys in a map", e.ID, maxAuditMap)
		}
	}
	if len(e.Evidence) > maxAuditList || len(e.Approvals) > maxAuditList {
		return fmt.Errorf("audit event %s: more than %d evidence types or approvals", e.ID, maxAuditList)
	}
	return nil
}

// clip bounds a string and makes it valid UTF-8 (invalid bytes would be
// rewritten by encoding/json anyway; doing it here keeps the event equal to
// its decoding).
func clip(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= n {
		return s
	}
	// Cut so that the result, ellipsis included, fits in n bytes: clipping
	// a clipped string changes nothing, so an event survives a round trip.
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func clipMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[clip(k, 64)] = clip(v, maxAuditField)
	}
	return out
}

func clipList(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	out := make([]string, len(l))
	for i, v := range l {
		out[i] = clip(v, 128)
	}
	return out
}

func (e *AuditEvent) toJSON() auditJSON {
	return auditJSON{
		Seq:          e.Seq,
		ID:           e.ID,
		Time:         e.Time.UTC().Format(AuditTimeLayout),
		Actor:        auditActorJSON{AccountID: clip(e.Actor.AccountID, 128), Role: e.Actor.Role},
		SubjectID:    clip(e.SubjectID, 128),
		RequestID:    clip(e.RequestID, 128),
		Action:       e.Action,
		Outcome:      e.Outcome,
		Reason:       clip(e.Reason, maxAuditText),
		Before:       clipMap(e.Before),
		After:        clipMap(e.After),
		Attributes:   clipMap(e.Attributes),
		Channel:      e.Channel,
		IP:           clip(e.IP, 64),
		UserAgent:    clip(e.UserAgent, maxAuditText),
		Evidence:     clipList(e.Evidence),
		Approvals:    clipList(e.Approvals),
		PolicyDigest: clip(e.PolicyDigest, 128),
	}
}

// MarshalCanonical returns the event's canonical encoding: one line of JSON
// (no trailing newline) with the fields in a fixed order, including "seq"
// when the event is sequenced. The leaf of the Merkle tree is this encoding
// of the sequenced event, so changing any field, or moving the event to
// another position, changes the leaf. Over-long strings are clipped.
func (e *AuditEvent) MarshalCanonical() ([]byte, error) {
	return marshalCanonical(e.toJSON())
}

func marshalCanonical(j auditJSON) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	if err := enc.Encode(j); err != nil {
		return nil, fmt.Errorf("encode audit event: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// AuditFilters are the fields of an event by which the audit log is
// searched, each exactly as the event's canonical encoding holds it
// (clipped, valid UTF-8; what a JSON decoder reads back from it).
type AuditFilters struct {
	EventID, Time, ActorID, SubjectID, Action, RequestID string
}

// MarshalCanonicalFilters returns MarshalCanonical's encoding with the
// event's filter fields as that encoding holds them. A store that keeps
// the fields in columns of their own writes these, taken from the same
// values as the encoding, so the columns cannot disagree with it
// (docs/audit.md).
func (e *AuditEvent) MarshalCanonicalFilters() ([]byte, AuditFilters, error) {
	j := e.toJSON()
	data, err := marshalCanonical(j)
	if err != nil {
		return nil, AuditFilters{}, err
	}
	return data, AuditFilters{EventID: j.ID, Time: j.Time, ActorID: j.Actor.AccountID, SubjectID: j.SubjectID, Action: j.Action, RequestID: j.RequestID}, nil
}

// AuditLeaf returns the canonical encoding of the event stored as data
// (its unsequenced canonical encoding) placed at position seq. It equals
// MarshalCanonical of the event with Seq set, without decoding it.
func AuditLeaf(data []byte, seq int64) []byte {
	return AppendAuditLeaf(nil, data, seq)
}

// AppendAuditLeaf appends AuditLeaf(data, seq) to dst.
func AppendAuditLeaf(dst, data []byte, seq int64) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendInt(dst, seq, 10)
	if len(data) > 0 {
		dst = append(dst, ',')
		dst = append(dst, data[1:]...)
	}
	return dst
}

// ParseAuditEvent decodes a canonical encoding (sequenced or not). Unknown
// fields are refused, so a stored event cannot carry hidden content.
func ParseAuditEvent(data []byte) (*AuditEvent, error) {
	var j auditJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("decode audit event: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("decode audit event: trailing data")
	}
	t, err := time.Parse(AuditTimeLayout, j.Time)
	if err != nil {
		return nil, fmt.Errorf("decode audit event %s: time: %w", j.ID, err)
	}
	return &AuditEvent{
		ID: j.ID, Seq: j.Seq, Time: t.UTC(), Actor: AuditActor{AccountID: j.Actor.AccountID, Role: j.Actor.Role},
		SubjectID: j.SubjectID, RequestID: j.RequestID, Action: j.Action, Outcome: j.Outcome, Reason: j.Reason,
		Before: j.Before, After: j.After, Attributes: j.Attributes, Channel: j.Channel, IP: j.IP, UserAgent: j.UserAgent,
		Evidence: j.Evidence, Approvals: j.Approvals, PolicyDigest: j.PolicyDigest,
	}, nil
}

// AuditRecord is an event as stored: its canonical unsequenced encoding and,
// once sequenced, its position. Row is the insertion order, which the
// sequencer follows.
type AuditRecord struct {
	Row  int64
	Seq  *int64
	Data []byte
}

// EventID reads the event's id from its encoding, which starts
// {"id":"ev_… (ids hold no character JSON escapes), without decoding the
// rest. It returns "" for anything else, such as a row rewritten by hand.
func (r AuditRecord) EventID() string {
	const prefix = `{"id":"`
	if !bytes.HasPrefix(r.Data, []byte(prefix)) {
		return ""
	}
	rest := r.Data[len(prefix):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 || end > 64 {
		return ""
	}
	return string(rest[:end])
}

// AuditCheckpoint is a signed statement of the log's size and Merkle root:
// Note is a C2SP signed note whose text is a tlog checkpoint
// ("origin\nsize\nbase64(root)\n"). Size and Root repeat what the note says,
// for queries; the note is what verification trusts.
type AuditCheckpoint struct {
	Size      int64
	Root      [32]byte
	Note      []byte
	CreatedAt time.Time
}

// AuditFilter selects sequenced events. Zero fields do not filter. Events
// come in position order: ascending from position FromSeq, or, with
// Descending, downwards from just below BeforeSeq (0 means from the end).
type AuditFilter struct {
	// AccountID matches events whose subject or actor is the account.
	AccountID string
	ActorID   string
	Action    string
	RequestID string
	// Since and Until bound the event time: Since <= time < Until.
	Since, Until time.Time
	FromSeq      int64
	BeforeSeq    int64
	Descending   bool
	Limit        int
}
