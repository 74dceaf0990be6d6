package service

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/notify"
)

// systemMeta is the Meta of what Recourse does on its own (seeding, policy
// loads, revoking the sessions of an account that became inactive).
var systemMeta = Meta{Channel: recourse.ViaSystem, Actor: recourse.AuditActor{Role: recourse.ActorSystem}}

// recordAudit writes an audit event in tx, the transaction of the change it
// describes: if it cannot be written, the transaction fails and the change
// does not happen. The caller sets what happened (action, outcome, subject,
// reason, changes); the id, time, request id, channel, client address,
// policy digest and, unless set, the actor come from meta and the service.
// e MUST NOT carry a secret in the clear.
func (s *Service) recordAudit(ctx context.Context, tx recourse.Tx, e recourse.AuditEvent, meta Meta) error {
	e.ID = recourse.NewID("ev_")
	e.Time = s.now().Truncate(time.Microsecond)
	if e.Actor.Role == "" {
		e.Actor = meta.Actor
		if e.Actor.Role == "" {
			e.Actor = recourse.AuditActor{AccountID: e.SubjectID, Role: recourse.ActorSubject}
		}
	}
	e.RequestID = meta.RequestID
	e.Channel = meta.Channel
	if e.Channel == "" {
		e.Channel = recourse.ViaSystem
	}
	e.IP, e.UserAgent = meta.IP, truncate(meta.UserAgent, 300)
	if e.PolicyDigest == "" {
		e.PolicyDigest = s.Policy().Digest()
	}
	if err := tx.AddAuditEvent(ctx, &e); err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}

// recordAuditTx records one event in a transaction of its own: for
// outcomes that change nothing else (a refused sign-in).
func (s *Service) recordAuditTx(ctx context.Context, e recourse.AuditEvent, meta Meta) error {
	return s.store.InTx(ctx, func(tx recourse.Tx) error { return s.recordAudit(ctx, tx, e, meta) })
}

// identifierHMAC keys a sign-in identifier that matched no account, so
// analysts can correlate attempts without the log holding what was typed
// (often a password typed into the wrong field).
func (s *Service) identifierHMAC(identifier string) string {
	return "hmac-sha256:" + hex.EncodeToString(s.hasher.Sum("audit-identifier", recourse.NormalizeUsername(identifier)))
}

// accountAttrs is what the audit log records of an account's directory
// facts (no secrets are among them).
func accountAttrs(a *recourse.Account) map[string]string {
	m := map[string]string{
		"username": a.Username, "display_name": a.DisplayName, "kind": string(a.Kind), "status": string(a.Status),
		"employment": string(a.Employment), "manager": a.ManagerID, "sponsor": a.SponsorID, "ial": strconv.Itoa(a.IAL),
		"owners": strings.Join(a.Owners, ","), "groups": strings.Join(a.Groups, ","), "roles": strings.Join(a.Roles, ","),
		"recovery_contacts": strings.Join(a.RecoveryContacts, ","),
	}
	if a.ContractEnd != nil {
		m["contract_end"] = a.ContractEnd.UTC().Format(time.RFC3339)
	}
	var emails, phones []string
	for _, c := range a.Emails {
		emails = append(emails, channelAttr(c))
	}
	for _, c := range a.Phones {
		phones = append(phones, channelAttr(c))
	}
	m["emails"], m["phones"] = strings.Join(emails, ","), strings.Join(phones, ",")
	return m
}

func channelAttr(c recourse.Channel) string {
	if c.Verified {
		return c.Address
	}
	return c.Address + " (unconfirmed)"
}

// diff returns the keys whose values differ, as before and after maps.
func diff(before, after map[string]string) (map[string]string, map[string]string) {
	b, a := map[string]string{}, map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(after)) {
		if before[k] != after[k] {
			b[k], a[k] = before[k], after[k]
		}
	}
	for k, v := range before {
		if _, ok := after[k]; !ok {
			b[k], a[k] = v, ""
		}
	}
	return b, a
}

// RecordPolicyLoad records an attempt to load a policy: its digest, where
// it came from, and, when it was refused, why. The policy loader calls it
// for the policy in force at start and for every reload.
func (s *Service) RecordPolicyLoad(ctx context.Context, digest, source string, ok bool, errText string) error {
	e := recourse.AuditEvent{Action: recourse.ActionPolicyLoad, Outcome: recourse.OutcomeSuccess, PolicyDigest: digest,
		Attributes: map[string]string{"source": source}}
	if ok {
		return internal("record policy load", s.recordAuditTx(ctx, e, systemMeta))
	}
	e.Outcome, e.Reason = recourse.OutcomeFailure, errText
	if e.PolicyDigest == "" {
		e.PolicyDigest = "none"
	}
	// A refused policy is also an alert: someone changed the file, and the
	// policy in force is not the one they meant.
	return internal("record policy load", s.store.InTx(ctx, func(tx recourse.Tx) error {
		if err := s.recordAudit(ctx, tx, e, systemMeta); err != nil {
			return err
		}
		return s.alertSecurity(ctx, tx, securityAlert{Event: notify.EventPolicyReloadFailed, Subject: "A policy file was refused",
			Lines: []string{
				"The policy file " + source + " was refused; the policy in force stays (" + s.Policy().ShortDigest() + ").",
				"Why: " + truncate(errText, 500),
			},
			Data: map[string]any{"source": source, "error": truncate(errText, 500), "in_force": s.Policy().Digest()}}, systemMeta)
	}))
}

// MayReadAudit reports whether the account may read the audit log: the
// security team and administrators.
func MayReadAudit(a *recourse.Account) bool {
	return a.HasRole(recourse.RoleAdmin) || a.HasRole(recourse.RoleSecurity)
}

// AuditEvents returns sequenced audit events matching f, for an
// administrator or a member of the security team (else EFORBIDDEN).
func (s *Service) AuditEvents(ctx context.Context, p *Principal, f recourse.AuditFilter) ([]*recourse.AuditEvent, error) {
	if p == nil || !MayReadAudit(p.Account) {
		return nil, recourse.Errorf(recourse.EFORBIDDEN, "Only administrators and the security team may read the audit log.")
	}
	evs, err := s.store.ListAuditEvents(ctx, f)
	return evs, internal("list audit events", err)
}

// AuditCheckpoint returns the latest signed checkpoint of the audit log;
// anyone may read it, so that others can witness the log. ENOTFOUND before
// the first events are sequenced.
func (s *Service) AuditCheckpoint(ctx context.Context) (*recourse.AuditCheckpoint, error) {
	c, err := s.store.LatestAuditCheckpoint(ctx)
	if errors.Is(err, recourse.ErrNotFound) {
		return nil, recourse.Errorf(recourse.ENOTFOUND, "The audit log has no checkpoint yet.")
	}
	return c, internal("read audit checkpoint", err)
}
