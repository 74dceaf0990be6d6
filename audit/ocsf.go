package audit

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/recourse/recourse"
)

// OCSFVersion is the OCSF schema version the export follows.
const OCSFVersion = "1.3.0"

// Product names the software in exported events (OCSF metadata.product).
type Product struct {
	Name    string
	Vendor  string
	Version string
}

type ocsfClass struct {
	uid, category      int
	name, categoryName string
}

var (
	classBase             = ocsfClass{0, 0, "Base Event", "Uncategorized"}
	classDetectionFinding = ocsfClass{2004, 2, "Detection Finding", "Findings"}
	classAccountChange    = ocsfClass{3001, 3, "Account Change", "Identity & Access Management"}
	classAuthentication   = ocsfClass{3002, 3, "Authentication", "Identity & Access Management"}
)

// ocsfActivity is where one action lands in OCSF.
type ocsfActivity struct {
	class ocsfClass
	id    int
	name  string
}

// ocsfActivities maps each action to its OCSF class and activity. Actions
// without an OCSF activity of their own use 99 (Other) with a descriptive
// name; actions of no IAM class (policy loads) are Base Events.
var ocsfActivities = map[string]ocsfActivity{
	recourse.ActionSignInPassword:     {classAuthentication, 1, "Logon"},
	recourse.ActionSignInSecondFactor: {classAuthentication, 1, "Logon"},
	recourse.ActionReauthenticate:     {classAuthentication, 1, "Logon"},
	recourse.ActionSignOut:            {classAuthentication, 2, "Logoff"},
	recourse.ActionSessionRevoke:      {classAuthentication, 2, "Logoff"},
	recourse.ActionSessionRevokeAll:   {classAuthentication, 2, "Logoff"},
	recourse.ActionAccountCreate:      {classAccountChange, 1, "Create"},
	recourse.ActionAccountUpdate:      {classAccountChange, 99, "Update"},
	recourse.ActionPasswordSet:        {classAccountChange, 4, "Password Reset"},
	recourse.ActionAuthenticatorBind:  {classAccountChange, 10, "MFA Factor Enable"},
	recourse.ActionRecoveryCodesIssue: {classAccountChange, 10, "MFA Factor Enable"},
	recourse.ActionAuthenticatorRepl:  {classAccountChange, 11, "MFA Factor Disable"},
	recourse.ActionAuthenticatorBegin: {classAccountChange, 99, "MFA Factor Enrolment Start"},
	recourse.ActionChannelAdd:         {classAccountChange, 99, "Channel Add"},
	recourse.ActionChannelCodeSent:    {classAccountChange, 99, "Channel Code Sent"},
	recourse.ActionChannelConfirm:     {classAccountChange, 99, "Channel Confirm"},
	recourse.ActionRecoveryContacts:   {classAccountChange, 99, "Recovery Contacts Change"},
	recourse.ActionAccountUnlock:      {classAccountChange, 99, "Unlock"},
	recourse.ActionAccountLock:        {classDetectionFinding, 1, "Create"},
	recourse.ActionPolicyLoad:         {classBase, 99, "Policy Load"},
	// The recovery workflow, approvals and the help desk (issue 4).
	recourse.ActionRecoveryStart:      {classAccountChange, 99, "Recovery Start"},
	recourse.ActionRecoveryEvidence:   {classAccountChange, 99, "Recovery Evidence"},
	recourse.ActionRecoveryTransition: {classAccountChange, 99, "Recovery Transition"},
	recourse.ActionRecoveryComplete:   {classAccountChange, 99, "Recovery Complete"},
	recourse.ActionRecoveryCancel:     {classAccountChange, 99, "Recovery Cancel"},
	recourse.ActionApprovalVote:       {classAccountChange, 99, "Approval Vote"},
	recourse.ActionCallerVerify:       {classAuthentication, 99, "Caller Verification"},
	// Credentials of API clients (issue 7).
	recourse.ActionAPIKeyCreate: {classAccountChange, 99, "API Key Create"},
	recourse.ActionAPIKeyRotate: {classAccountChange, 99, "API Key Rotate"},
	recourse.ActionAPIKeyRevoke: {classAccountChange, 99, "API Key Revoke"},
}

// OCSFClassOf returns the OCSF class uid an event is exported as.
func OCSFClassOf(e *recourse.AuditEvent) int { return activityOf(e).class.uid }

// alertTitle names the events that are alerts (exported as Detection
// Findings): a lock-out, and a holder's "this wasn't me" report on a
// recovery they did not start.
func alertTitle(e *recourse.AuditEvent) string {
	switch {
	case e.Action == recourse.ActionAccountLock:
		return "Account locked after repeated failed sign-ins"
	case e.Action == recourse.ActionRecoveryCancel && e.Reason == "this wasn't me":
		return "Account holder reported a recovery they did not start"
	}
	return ""
}

func activityOf(e *recourse.AuditEvent) ocsfActivity {
	if alertTitle(e) != "" {
		return ocsfActivity{classDetectionFinding, 1, "Create"}
	}
	if a, ok := ocsfActivities[e.Action]; ok {
		return a
	}
	return ocsfActivity{classBase, 99, e.Action}
}

// OCSF returns the event as an OCSF 1.x event object: Authentication (3002)
// for sign-in and sign-out, Account Change (3001) for changes to an account
// and its authenticators and channels, Detection Finding (2004) for alerts,
// Base Event (0) otherwise. Every event carries the base event's required
// attributes and its class's required objects; Recourse's own fields
// (position, channel, evidence, approvals, policy digest, before/after)
// are kept under unmapped.recourse.
func OCSF(e *recourse.AuditEvent, p Product) map[string]any {
	act := activityOf(e)
	ms := e.Time.UnixMilli()
	ev := map[string]any{
		"activity_id":   act.id,
		"activity_name": act.name,
		"category_uid":  act.class.category,
		"category_name": act.class.categoryName,
		"class_uid":     act.class.uid,
		"class_name":    act.class.name,
		"type_uid":      act.class.uid*100 + act.id,
		"type_name":     act.class.name + ": " + act.name,
		"time":          ms,
		"message":       ocsfMessage(e),
	}
	meta := map[string]any{
		"version":         OCSFVersion,
		"uid":             e.ID,
		"event_code":      e.Action,
		"log_name":        "audit",
		"product":         map[string]any{"name": p.Name, "vendor_name": p.Vendor, "version": p.Version},
		"original_time":   e.Time.UTC().Format(recourse.AuditTimeLayout),
		"correlation_uid": e.RequestID,
	}
	if e.RequestID == "" {
		delete(meta, "correlation_uid")
	}
	if e.Seq != nil {
		meta["sequence"] = *e.Seq
	}
	ev["metadata"] = meta

	severity, severityName := 1, "Informational"
	switch e.Outcome {
	case recourse.OutcomeFailure:
		severity, severityName = 2, "Low"
	case recourse.OutcomeDenied:
		severity, severityName = 3, "Medium"
	}
	if act.class == classDetectionFinding {
		severity, severityName = 3, "Medium"
	}
	ev["severity_id"], ev["severity"] = severity, severityName

	if act.class == classDetectionFinding {
		// A finding's status is its triage state, not the activity's result.
		ev["status_id"], ev["status"] = 1, "New"
		title := alertTitle(e)
		info := map[string]any{"uid": e.ID, "title": title, "created_time": ms, "types": []string{e.Action}}
		if e.Reason != "" {
			info["desc"] = e.Reason
		}
		ev["finding_info"] = info
		ev["is_alert"] = true
		if e.SubjectID != "" {
			ev["resources"] = []map[string]any{{"uid": e.SubjectID, "type": "User Account"}}
		}
	} else {
		if e.Outcome == recourse.OutcomeSuccess {
			ev["status_id"], ev["status"] = 1, "Success"
		} else {
			ev["status_id"], ev["status"] = 2, "Failure"
		}
		if e.Reason != "" {
			ev["status_detail"] = e.Reason
		}
	}

	ev["actor"] = ocsfActor(e)
	if ip, err := netip.ParseAddr(e.IP); err == nil {
		ev["src_endpoint"] = map[string]any{"ip": ip.String()}
	}
	if e.UserAgent != "" {
		ev["http_request"] = map[string]any{"user_agent": e.UserAgent}
	}
	switch act.class {
	case classAccountChange:
		ev["user"] = ocsfUser(e)
	case classAuthentication:
		ev["user"] = ocsfUser(e)
		ev["service"] = map[string]any{"name": p.Name}
		ev["is_mfa"] = len(e.Evidence) > 1 || e.Action == recourse.ActionSignInSecondFactor
		if id := e.Attributes["session_id"]; id != "" {
			ev["session"] = map[string]any{"uid": id}
		}
		if e.Action == recourse.ActionSignInPassword || e.Action == recourse.ActionSignInSecondFactor {
			ev["is_new_logon"] = true
		}
	}
	ev["unmapped"] = map[string]any{"recourse": ocsfUnmapped(e)}
	return ev
}

func ocsfMessage(e *recourse.AuditEvent) string {
	var b strings.Builder
	b.WriteString(e.Action)
	b.WriteString(" ")
	b.WriteString(string(e.Outcome))
	if e.SubjectID != "" {
		b.WriteString(" for ")
		b.WriteString(e.SubjectID)
	}
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	return b.String()
}

// ocsfUser is the account the event is about (OCSF user, required by 3001
// and 3002). An attempt on an unknown account carries only the HMAC of the
// identifier tried, as uid_alt.
func ocsfUser(e *recourse.AuditEvent) map[string]any {
	u := map[string]any{}
	if e.SubjectID != "" {
		u["uid"], u["name"] = e.SubjectID, e.SubjectID
		u["type_id"], u["type"] = 1, "User"
		return u
	}
	u["type_id"], u["type"] = 0, "Unknown"
	if h := e.Attributes["identifier_hmac"]; h != "" {
		u["uid_alt"] = h
	}
	return u
}

func ocsfActor(e *recourse.AuditEvent) map[string]any {
	if e.Actor.Role == recourse.ActorSystem {
		return map[string]any{"app_name": "Recourse"}
	}
	typeID, typ := 1, "User"
	switch e.Actor.Role {
	case recourse.ActorAdmin:
		typeID, typ = 2, "Admin"
	case recourse.ActorAPIClient:
		typeID, typ = 99, "API Client"
	}
	u := map[string]any{"type_id": typeID, "type": typ}
	if e.Actor.AccountID != "" {
		u["uid"], u["name"] = e.Actor.AccountID, e.Actor.AccountID
	}
	return map[string]any{"user": u}
}

func ocsfUnmapped(e *recourse.AuditEvent) map[string]any {
	m := map[string]any{"actor_role": string(e.Actor.Role), "channel": string(e.Channel), "outcome": string(e.Outcome)}
	if e.Seq != nil {
		m["seq"] = *e.Seq
	}
	for k, v := range map[string]map[string]string{"before": e.Before, "after": e.After, "attributes": e.Attributes} {
		if len(v) > 0 {
			m[k] = v
		}
	}
	for k, v := range map[string][]string{"evidence": e.Evidence, "approvals": e.Approvals} {
		if len(v) > 0 {
			m[k] = slices.Clone(v)
		}
	}
	if e.PolicyDigest != "" {
		m["policy_digest"] = e.PolicyDigest
	}
	return m
}
