package notify

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Event types sent to webhooks. They are part of Recourse's contract with
// receivers (docs/notifications.md): names are only ever added.
const (
	// A recovery request's lifecycle.
	EventRecoveryOpened           = "recovery.opened"
	EventRecoveryAwaitingApproval = "recovery.awaiting_approval"
	EventRecoveryApproved         = "recovery.approved"
	EventRecoveryCoolingOff       = "recovery.cooling_off"
	EventRecoveryReady            = "recovery.ready"
	EventRecoveryCompleted        = "recovery.completed"
	EventRecoveryCancelled        = "recovery.cancelled"
	EventRecoveryDenied           = "recovery.denied"
	EventRecoveryExpired          = "recovery.expired"

	// Security alerts.
	EventThisWasntMe        = "security.this_wasnt_me"
	EventHelpdeskPrivileged = "security.helpdesk_privileged"
	EventLockout            = "security.lockout"
	EventEscalation         = "security.escalation"
	EventDeviceReplaced     = "security.device_replaced"
	EventRebinding          = "security.rebinding"
	EventPolicyReloadFailed = "security.policy_reload_failed"
	EventAuditStalled       = "security.audit_stalled"
)

// Events lists every event type.
var Events = []string{
	EventRecoveryOpened, EventRecoveryAwaitingApproval, EventRecoveryApproved, EventRecoveryCoolingOff, EventRecoveryReady,
	EventRecoveryCompleted, EventRecoveryCancelled, EventRecoveryDenied, EventRecoveryExpired,
	EventThisWasntMe, EventHelpdeskPrivileged, EventLockout, EventEscalation, EventDeviceReplaced, EventRebinding,
	EventPolicyReloadFailed, EventAuditStalled,
}

// CheckEvents checks an endpoint's subscription: at least one pattern,
// each an event type, "prefix.*" naming a known family, or "*".
func CheckEvents(patterns []string) error {
	if len(patterns) == 0 {
		return fmt.Errorf("name at least one event type, or \"*\"")
	}
	if len(patterns) > 50 {
		return fmt.Errorf("at most 50 event types")
	}
	for _, p := range patterns {
		if !validPattern(p) {
			return fmt.Errorf("%q is not an event type (%s), a family like \"security.*\", or \"*\"", p, strings.Join(Events, ", "))
		}
	}
	return nil
}

func validPattern(p string) bool {
	if p == "*" || slices.Contains(Events, p) {
		return true
	}
	if family, ok := strings.CutSuffix(p, ".*"); ok {
		return slices.ContainsFunc(Events, func(e string) bool { return strings.HasPrefix(e, family+".") })
	}
	return false
}

// Matches reports whether an endpoint subscribed with patterns receives
// the event.
func Matches(patterns []string, event string) bool {
	for _, p := range patterns {
		if p == "*" || p == event {
			return true
		}
		if family, ok := strings.CutSuffix(p, ".*"); ok && strings.HasPrefix(event, family+".") {
			return true
		}
	}
	return false
}

// Payload is the JSON body of a webhook call, as the Standard Webhooks
// specification shapes it.
type Payload struct {
	Type      string         `json:"type"`
	Timestamp time.Time      `json:"timestamp"`
	Data      map[string]any `json:"data"`
}

// EncodePayload returns the body of a call reporting event at a time.
func EncodePayload(event string, at time.Time, data map[string]any) ([]byte, error) {
	if data == nil {
		data = map[string]any{}
	}
	return json.Marshal(Payload{Type: event, Timestamp: at.UTC(), Data: data})
}
