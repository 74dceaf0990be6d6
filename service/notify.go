package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/notify"
	"github.com/recourse/recourse/policy"
)

// DeliveryScheduler queues the delivery of a stored notification. It
// inserts in tx, so the job exists if and only if the notification does.
type DeliveryScheduler interface {
	ScheduleDelivery(ctx context.Context, tx recourse.Tx, n *recourse.Notification) error
}

// Courier makes one delivery attempt (package notify implements it).
type Courier interface {
	SendEmail(ctx context.Context, m notify.Email) error
	CallWebhook(ctx context.Context, c notify.Call) error
	// CheckWebhookURL refuses URLs the SSRF guard would refuse.
	CheckWebhookURL(raw string) error
}

// Notifications configures delivery beyond the outbox.
type Notifications struct {
	// Courier delivers; Scheduler queues deliveries on the job queue. Both
	// are required.
	Courier   Courier
	Scheduler DeliveryScheduler
	// Email sends mail through the Courier (an SMTP relay is configured);
	// otherwise mail stays in the outbox.
	Email bool
	// SecurityMailbox receives every security alert.
	SecurityMailbox string
	// Webhooks are the endpoints of the configuration file; the stored
	// configuration endpoints are brought in step with them.
	Webhooks []notify.WebhookConfig
	// RotationOverlap is how long a replaced secret keeps signing.
	RotationOverlap time.Duration
	// FailingAfter flags an endpoint after this many consecutive failures.
	FailingAfter int
}

// notifier is the service's delivery state, set by EnableNotifications.
type notifier struct {
	courier      Courier
	deliveries   DeliveryScheduler
	mailbox      string
	overlap      time.Duration
	failingAfter int

	// The audit sequencer's progress, as CheckAuditSequencer last saw it.
	mu           sync.Mutex
	auditSeen    int64
	auditBacklog int64
	auditSince   time.Time
	auditAlerted bool
}

// ErrUndeliverable marks a delivery that failed for good: retrying it is
// pointless (the job queue cancels the job).
var ErrUndeliverable = errors.New("notification undeliverable")

// EnableNotifications turns on delivery: webhooks always, mail through the
// Courier when n.Email is set (else it stays in the outbox, each message
// listed as a notification delivered there). It brings the stored
// configuration endpoints in step with n.Webhooks. Call it once, before
// serving.
func (s *Service) EnableNotifications(ctx context.Context, n Notifications) error {
	if n.Courier == nil || n.Scheduler == nil {
		return errors.New("service: notifications need a courier and a job queue")
	}
	if n.RotationOverlap == 0 {
		n.RotationOverlap = notify.DefaultRotationOverlap
	}
	if n.FailingAfter <= 0 {
		n.FailingAfter = notify.DefaultFailingAfter
	}
	s.notify.courier, s.notify.deliveries = n.Courier, n.Scheduler
	s.notify.mailbox, s.notify.overlap, s.notify.failingAfter = n.SecurityMailbox, n.RotationOverlap, n.FailingAfter
	if n.Email {
		s.mailer = queuedMailer{s}
	} else if _, ok := s.mailer.(OutboxMailer); ok {
		s.mailer = outboxRecorder{s}
	}
	return s.syncConfigWebhooks(ctx, n.Webhooks)
}

func notificationAD(id string) []byte { return []byte("notification:" + id) }

// queueNotification stores a message as a notification, sealed, and queues
// its delivery.
func (s *Service) queueNotification(ctx context.Context, tx recourse.Tx, m Message) error {
	return s.storeNotification(ctx, tx, m.notification(recourse.NotificationQueued), []byte(m.Body))
}

// storeNotification stores n; only a notification still to be delivered
// keeps its body (sealed), since only its delivery reads it. One final when
// stored — put in the outbox, which holds the message — keeps none: each
// message is written once (docs/benchmarks.md).
func (s *Service) storeNotification(ctx context.Context, tx recourse.Tx, n *recourse.Notification, body []byte) error {
	if n.State != recourse.NotificationQueued {
		n.Body = []byte{}
		return tx.AddNotification(ctx, n)
	}
	n.Body = s.sealer.Seal(body, notificationAD(n.ID))
	if err := tx.AddNotification(ctx, n); err != nil {
		return err
	}
	if s.notify.deliveries == nil {
		return errors.New("service: a notification was queued without a job queue")
	}
	return s.notify.deliveries.ScheduleDelivery(ctx, tx, n)
}

// emit queues a call of event to every enabled webhook endpoint subscribed
// to it, in tx: the calls exist if and only if the change they report
// commits. data MUST NOT carry a secret. Without notifications enabled (the
// CLI), it does nothing.
func (s *Service) emit(ctx context.Context, tx recourse.Tx, event string, data map[string]any) error {
	if s.notify.deliveries == nil {
		return nil
	}
	eps, err := s.routes.endpoints(ctx, tx, s.now())
	if err != nil {
		return err
	}
	var payload []byte
	now := s.now()
	accountID, _ := data["account_id"].(string)
	for _, ep := range eps {
		if ep.DisabledAt != nil || !notify.Matches(ep.Events, event) {
			continue
		}
		if payload == nil {
			if payload, err = notify.EncodePayload(event, now, data); err != nil {
				return err
			}
		}
		n := &recourse.Notification{ID: recourse.NewID("msg_"), Kind: recourse.NotifyWebhook, AccountID: accountID, To: ep.ID,
			Subject: event, State: recourse.NotificationQueued, CreatedAt: now}
		if err := s.storeNotification(ctx, tx, n, payload); err != nil {
			return err
		}
	}
	return nil
}

// webhookRoutesTTL bounds how long a change to the endpoints made by
// another replica may go unseen by this one's emit.
const webhookRoutesTTL = 2 * time.Second

// webhookRoutes keeps the endpoint list emit routes events by. Nearly every
// transaction of a recovery emits an event, and the list changes seldom:
// reading it each time was a statement in every such transaction, on
// SQLite's one writer (docs/benchmarks.md, change 34). A change made
// through this service is seen by the next emit (the generation moves once
// the change is committed); one made by another replica within
// webhookRoutesTTL. Whom a call goes to is decided again at delivery, so a
// deleted or disabled endpoint is never called.
type webhookRoutes struct {
	mu       sync.Mutex
	gen      uint64 // moved after every change to the endpoints made here
	eps      []*recourse.WebhookEndpoint
	epsGen   uint64
	loadedAt time.Time // zero: nothing loaded
}

// endpoints returns the endpoint list, read through tx when the copy kept
// is stale at now (a clock set back makes it stale too). The list is
// shared: callers MUST NOT modify it.
func (w *webhookRoutes) endpoints(ctx context.Context, tx recourse.Tx, now time.Time) ([]*recourse.WebhookEndpoint, error) {
	w.mu.Lock()
	gen := w.gen
	if age := now.Sub(w.loadedAt); !w.loadedAt.IsZero() && w.epsGen == gen && age >= 0 && age < webhookRoutesTTL {
		eps := w.eps
		w.mu.Unlock()
		return eps, nil
	}
	w.mu.Unlock()
	eps, err := tx.WebhookEndpoints(ctx)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	if w.gen == gen { // no change was committed while it was read
		w.eps, w.epsGen, w.loadedAt = eps, gen, now
	}
	w.mu.Unlock()
	return eps, nil
}

// changed makes the next emit read the endpoints again. Call it after the
// transaction that changed them has ended, whatever its outcome.
func (w *webhookRoutes) changed() {
	w.mu.Lock()
	w.gen++
	w.mu.Unlock()
}

// recoveryData is what webhook events say about a request.
func recoveryData(r *recourse.Recovery) map[string]any {
	d := map[string]any{"request_id": r.ID, "account_id": r.AccountID, "action": r.Action, "tier": r.Tier,
		"state": string(r.State), "initiator": r.Initiator}
	if r.InitiatorID != "" {
		d["initiator_id"] = r.InitiatorID
	}
	if r.Outcome != "" {
		d["outcome"] = r.Outcome
	}
	if r.CoolingUntil != nil {
		d["cooling_until"] = r.CoolingUntil.UTC()
	}
	return d
}

// withMeta adds where a request came from to event data.
func withMeta(d map[string]any, meta Meta) map[string]any {
	if meta.IP != "" {
		d["ip"] = meta.IP
	}
	if meta.UserAgent != "" {
		d["user_agent"] = truncate(oneLine(meta.UserAgent), 300)
	}
	if meta.RequestID != "" {
		d["request_tag"] = meta.RequestID
	}
	return d
}

// securityAlert is an alert for the security team.
type securityAlert struct {
	// Event is the webhook event type.
	Event   string
	Subject string
	Lines   []string
	Data    map[string]any
	// SkipGroup does not mail the members of the security group (they are
	// already asked to act); the mailbox and the webhooks still get it.
	SkipGroup bool
}

// alertSecurity tells the security team, in tx: the webhooks subscribed to
// the event, the configured security mailbox, and (unless SkipGroup) every
// member of the "security" group with a confirmed address.
func (s *Service) alertSecurity(ctx context.Context, tx recourse.Tx, al securityAlert, meta Meta) error {
	if err := s.emit(ctx, tx, al.Event, withMeta(al.Data, meta)); err != nil {
		return err
	}
	subject := "[security] " + al.Subject
	if !al.SkipGroup {
		team, err := tx.AccountsInGroup(ctx, "security", 50)
		if err != nil {
			return err
		}
		for _, m := range team {
			if err := s.notifyAccount(ctx, tx, m, subject, al.Lines, meta); err != nil {
				return err
			}
		}
	}
	if s.notify.mailbox != "" {
		body := s.noticeBody(&recourse.Account{DisplayName: "security team"}, slices.Concat(al.Lines, []string{"", "Event: " + al.Event}), meta)
		return s.mailer.Send(ctx, tx, Message{To: s.notify.mailbox, Subject: subject, Body: body, At: s.now()})
	}
	return nil
}

// DeliverNotification makes one delivery attempt of a queued notification;
// the job queue calls it, final on the last attempt. It records the
// outcome (sent; still queued with the error; failed) and, for a webhook,
// the endpoint's run of failures; a 410 Gone disables the endpoint. It is
// idempotent: a notification no longer queued is left alone. Errors wrap
// ErrUndeliverable when retrying is pointless.
func (s *Service) DeliverNotification(ctx context.Context, id string, final bool) error {
	if s.notify.courier == nil {
		return errors.New("service: notifications are not enabled")
	}
	n, err := s.store.Notification(ctx, id)
	if errors.Is(err, recourse.ErrNotFound) {
		return nil
	}
	if err != nil {
		return internal("read notification", err)
	}
	if n.State != recourse.NotificationQueued {
		return nil
	}
	body, err := s.sealer.Open(n.Body, notificationAD(n.ID))
	if err != nil {
		return s.finishDelivery(ctx, n, nil, fmt.Errorf("%w: the body cannot be opened (another master key?)", ErrUndeliverable), final)
	}
	var ep *recourse.WebhookEndpoint
	var sendErr error
	switch n.Kind {
	case recourse.NotifyEmail:
		sendErr = s.notify.courier.SendEmail(ctx, notify.Email{ID: n.ID, To: n.To, Subject: n.Subject, Text: string(body), At: n.CreatedAt})
	case recourse.NotifyWebhook:
		ep, err = s.store.WebhookEndpoint(ctx, n.To)
		switch {
		case errors.Is(err, recourse.ErrNotFound):
			ep, sendErr = nil, fmt.Errorf("%w: the endpoint was deleted", ErrUndeliverable)
		case err != nil:
			return internal("read webhook endpoint", err)
		case ep.DisabledAt != nil:
			ep, sendErr = nil, fmt.Errorf("%w: the endpoint is disabled (%s)", ErrUndeliverable, ep.DisabledReason)
		default:
			secrets, err := s.webhookSecrets(ep)
			if err != nil {
				sendErr = fmt.Errorf("%w: %v", ErrUndeliverable, err)
				break
			}
			sendErr = s.notify.courier.CallWebhook(ctx, notify.Call{URL: ep.URL, ID: n.ID, Payload: body, Secrets: secrets})
		}
	default:
		sendErr = fmt.Errorf("%w: no gateway delivers %s", ErrUndeliverable, n.Kind)
	}
	return s.finishDelivery(ctx, n, ep, sendErr, final)
}

// finishDelivery records an attempt's outcome and returns what the job
// queue should see.
func (s *Service) finishDelivery(ctx context.Context, n *recourse.Notification, ep *recourse.WebhookEndpoint, sendErr error, final bool) error {
	now := s.now()
	permanent := sendErr != nil && (errors.Is(sendErr, ErrUndeliverable) || notify.Permanent(sendErr))
	state, errText := recourse.NotificationSent, ""
	if sendErr != nil {
		errText = truncate(sendErr.Error(), 500)
		state = recourse.NotificationQueued
		if permanent || final {
			state = recourse.NotificationFailed
		}
	}
	attempts, failures, done := 0, 0, false
	if errors.Is(sendErr, notify.ErrGone) {
		defer s.routes.changed() // the endpoint is disabled below
	}
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		var err error
		attempts, err = tx.RecordDeliveryAttempt(ctx, n.ID, state, errText, now)
		if errors.Is(err, recourse.ErrNotFound) {
			done = true // another attempt finished it meanwhile
			return nil
		}
		if err != nil || ep == nil {
			return err
		}
		failures, err = tx.RecordWebhookOutcome(ctx, ep.ID, sendErr == nil, now)
		if errors.Is(err, recourse.ErrNotFound) {
			return nil // deleted meanwhile
		}
		if err != nil || !errors.Is(sendErr, notify.ErrGone) {
			return err
		}
		cur, err := tx.WebhookEndpoint(ctx, ep.ID)
		if err != nil {
			return err
		}
		cur.DisabledAt, cur.DisabledReason, cur.UpdatedAt = &now, "the receiver answered 410 Gone", now
		if err := tx.UpdateWebhookEndpoint(ctx, cur); err != nil {
			return err
		}
		return s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionWebhookDisable, Outcome: recourse.OutcomeSuccess,
			Reason: cur.DisabledReason, Before: map[string]string{"enabled": "true"}, After: map[string]string{"enabled": "false"},
			Attributes: map[string]string{"endpoint": cur.ID, "notification": n.ID}}, systemMeta)
	})
	if err != nil {
		return internal("record delivery", err)
	}
	if done {
		return nil
	}
	log := s.log.With("notification", n.ID, "kind", string(n.Kind), "attempt", attempts)
	if ep != nil {
		log = log.With("endpoint", ep.ID)
	}
	if sendErr == nil {
		log.Info("notification delivered")
		return nil
	}
	log.Warn("notification delivery failed", "state", string(state), "err", errText)
	if ep != nil && failures >= s.notify.failingAfter {
		log.Error("webhook endpoint keeps failing", "failures", failures)
	}
	if errors.Is(sendErr, notify.ErrGone) {
		log.Error("webhook endpoint disabled: the receiver answered 410 Gone")
	}
	if permanent {
		return fmt.Errorf("%w: %v", ErrUndeliverable, sendErr)
	}
	return sendErr
}

// ListNotifications lists notifications and their delivery state (never
// their bodies: mail carries codes), newest first, for an administrator or
// a member of the security team.
func (s *Service) ListNotifications(ctx context.Context, p *Principal, f recourse.NotificationFilter) ([]*recourse.Notification, error) {
	if p == nil || !MayReadAudit(p.Account) {
		return nil, recourse.Errorf(recourse.EFORBIDDEN, "Only administrators and the security team may see notifications.")
	}
	list, err := s.store.ListNotifications(ctx, f)
	for _, n := range list {
		n.Body = nil
	}
	return list, internal("list notifications", err)
}

// FailingWebhooks counts the endpoints flagged as failing: enabled ones
// whose last FailingAfter calls failed, and those a 410 Gone disabled.
func (s *Service) FailingWebhooks(ctx context.Context) (int, error) {
	eps, err := s.store.WebhookEndpoints(ctx)
	if err != nil {
		return 0, internal("list webhook endpoints", err)
	}
	threshold := max(s.notify.failingAfter, 1)
	n := 0
	for _, ep := range eps {
		if ep.DisabledAt != nil || ep.Failures >= threshold {
			n++
		}
	}
	return n, nil
}

// CheckAuditSequencer alerts the security team, once per stall, when the
// audit sequencer has made no progress for stallAfter while events wait:
// the backlog (events committed but not yet in the signed log) is not
// empty, and neither the sequenced count nor the backlog went down. The
// server calls it periodically with its sequencer's figures.
func (s *Service) CheckAuditSequencer(ctx context.Context, backlog, sequenced int64, stallAfter time.Duration) error {
	n := &s.notify
	n.mu.Lock()
	now := s.now()
	progress := backlog == 0 || sequenced != n.auditSeen || backlog < n.auditBacklog || n.auditSince.IsZero()
	n.auditSeen, n.auditBacklog = sequenced, backlog
	if progress {
		n.auditSince, n.auditAlerted = now, false
		n.mu.Unlock()
		return nil
	}
	stalled := !n.auditAlerted && now.Sub(n.auditSince) >= stallAfter
	since := n.auditSince
	if stalled {
		n.auditAlerted = true
	}
	n.mu.Unlock()
	if !stalled {
		return nil
	}
	s.log.Error("the audit sequencer is stalled: committed events are not being signed into the log", "backlog", backlog, "since", since)
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		return s.alertSecurity(ctx, tx, securityAlert{Event: notify.EventAuditStalled, Subject: "The audit log is not being sealed",
			Lines: []string{
				fmt.Sprintf("%d audit events are committed but not yet in the signed log, and none was sequenced since %s.", backlog, since.Format(time.RFC3339)),
				"Check the server logs for \"audit sequencing failed\", and the database.",
			},
			Data: map[string]any{"backlog": backlog, "stalled_since": since}}, systemMeta)
	})
	if err != nil {
		n.mu.Lock()
		n.auditAlerted = false // try again next time
		n.mu.Unlock()
	}
	return internal("alert audit stall", err)
}

// transitionEvents maps the states a request moves into to their events.
var transitionEvents = map[recourse.RecoveryState]string{
	recourse.RecoveryAwaitingApproval: notify.EventRecoveryAwaitingApproval,
	recourse.RecoveryCoolingOff:       notify.EventRecoveryCoolingOff,
	recourse.RecoveryReady:            notify.EventRecoveryReady,
	recourse.RecoveryCompleted:        notify.EventRecoveryCompleted,
	recourse.RecoveryCancelled:        notify.EventRecoveryCancelled,
	recourse.RecoveryDenied:           notify.EventRecoveryDenied,
	recourse.RecoveryExpired:          notify.EventRecoveryExpired,
}

// reportOpened reports a new request (or one refused at once) to the
// webhooks, and a help-desk request for a privileged account, or for a
// critical action, to the security team.
func (s *Service) reportOpened(ctx context.Context, tx recourse.Tx, a *recourse.Account, r *recourse.Recovery, d *policy.Decision, meta Meta) error {
	event := notify.EventRecoveryOpened
	if r.State == recourse.RecoveryDenied {
		event = notify.EventRecoveryDenied
	}
	if err := s.emit(ctx, tx, event, withMeta(recoveryData(r), meta)); err != nil {
		return err
	}
	if r.Initiator != "help_desk" || !(slices.Contains(d.Classes, "privileged") || d.Tier == policy.TierCritical) {
		return nil
	}
	lines := []string{
		"Agent " + r.InitiatorID + " opened " + r.ID + " (" + r.Action + ") for " + a.DisplayName + " (" + a.ID + ").",
		"Reason: " + r.Reason,
	}
	if r.State == recourse.RecoveryDenied {
		lines = append(lines, "The policy refused it: "+r.Outcome)
	}
	return s.alertSecurity(ctx, tx, securityAlert{Event: notify.EventHelpdeskPrivileged, Subject: "Help desk opened a recovery for " + a.ID,
		Lines: lines, Data: recoveryData(r)}, meta)
}

// reportTransition reports a request's new state to the webhooks; a
// request that waits for the security team's approval is an escalation.
func (s *Service) reportTransition(ctx context.Context, tx recourse.Tx, a *recourse.Account, r *recourse.Recovery, from recourse.RecoveryState, meta Meta) error {
	event, ok := transitionEvents[r.State]
	if !ok {
		return nil
	}
	data := withMeta(recoveryData(r), meta)
	data["from_state"] = string(from)
	if err := s.emit(ctx, tx, event, data); err != nil {
		return err
	}
	if r.State != recourse.RecoveryAwaitingApproval {
		return nil
	}
	req, err := s.requirementOf(r)
	if err != nil || !asksGroup(req.Evidence, "security") {
		return err
	}
	return s.alertSecurity(ctx, tx, securityAlert{Event: notify.EventEscalation, Subject: "A recovery for " + a.ID + " needs the security team",
		Lines: []string{
			a.DisplayName + " (" + a.ID + ") asks to " + describeAction(r.Action) + " (" + r.ID + "); the policy requires the security team's approval.",
			"Review it at " + s.publicURL("/approvals/"+r.ID) + ".",
		}, Data: recoveryData(r), SkipGroup: true}, meta)
}

// asksGroup reports whether the evidence tree asks for an approval from a
// member of the group.
func asksGroup(n *policy.Node, group string) bool {
	if n == nil {
		return false
	}
	if n.Approval != nil && slices.Contains(n.Approval.From, "group:"+group) {
		return true
	}
	for _, c := range slices.Concat(n.All, n.Any, nof(n)) {
		if asksGroup(c, group) {
			return true
		}
	}
	return false
}

// alertTrustAnchorChange tells the security team of a completed recovery
// that replaced a device or re-bound a channel.
// passExpires is set when the completion issued a temporary access pass
// instead of a session: the security team hears that a bearer credential
// for the account is outstanding, and until when.
func (s *Service) alertTrustAnchorChange(ctx context.Context, tx recourse.Tx, a *recourse.Account, r *recourse.Recovery, passExpires *time.Time, meta Meta) error {
	var event, what string
	switch r.Action {
	case "authenticator.recover":
		event, what = notify.EventDeviceReplaced, "Device replaced"
	case "email.rebind", "phone.change", "recovery_channel.change":
		event, what = notify.EventRebinding, "Channel re-bound"
	default:
		return nil
	}
	lines := []string{
		"A recovery of " + a.DisplayName + " (" + a.ID + ") completed: " + describeAction(r.Action) + " (" + r.ID + ", initiated by " + r.Initiator + ").",
	}
	data := recoveryData(r)
	if passExpires != nil {
		lines = append(lines, "It ended with a temporary access pass instead of a session: the pass signs in once, until "+
			passExpires.UTC().Format("2006-01-02 15:04 UTC")+", to enrol a new authenticator.")
		data["access_pass_expires_at"] = passExpires.UTC().Format(time.RFC3339)
	}
	return s.alertSecurity(ctx, tx, securityAlert{Event: event, Subject: what + " for " + a.ID, Lines: lines, Data: data, SkipGroup: true}, meta)
}

// reportApproval tells the account holder (with a "this wasn't me" link)
// and the webhooks that an approver approved their request.
func (s *Service) reportApproval(ctx context.Context, tx recourse.Tx, subject *recourse.Account, r *recourse.Recovery, approver *recourse.Account, roles []string, meta Meta) error {
	data := withMeta(recoveryData(r), meta)
	data["approver_id"], data["roles"] = approver.ID, roles
	if err := s.emit(ctx, tx, notify.EventRecoveryApproved, data); err != nil {
		return err
	}
	return s.noticeWithCancel(ctx, tx, subject, r, "Your account recovery was approved", []string{
		approver.DisplayName + " (" + strings.Join(roles, ", ") + ") approved the recovery of your account (" + describeAction(r.Action) + ").",
	}, meta)
}

// countRecoveryFailure counts a wrong recovery code against the account,
// atomically. The one failure that reaches the limit stops recovery for
// the account until the help desk steps in: a lock-out the security team
// hears of.
func (s *Service) countRecoveryFailure(ctx context.Context, accountID string, meta Meta) (int, error) {
	var n int
	err := s.store.InTx(ctx, func(tx recourse.Tx) (err error) {
		n, err = s.countRecoveryFailureTx(ctx, tx, accountID, meta)
		return err
	})
	return n, err
}

// countRecoveryFailureTx is countRecoveryFailure in the caller's
// transaction.
func (s *Service) countRecoveryFailureTx(ctx context.Context, tx recourse.Tx, accountID string, meta Meta) (int, error) {
	n, err := tx.RecordRecoveryFailure(ctx, accountID)
	if err != nil || n != maxRecoveryFailures {
		return n, err
	}
	s.log.Warn("recovery stopped after too many wrong codes", "account", accountID, "failures", n)
	return n, s.alertSecurity(ctx, tx, securityAlert{Event: notify.EventLockout, Subject: "Recovery of " + accountID + " stopped",
		Lines: []string{fmt.Sprintf("Account %s reached %d wrong recovery codes; it cannot recover until the help desk steps in.", accountID, n)},
		Data:  map[string]any{"account_id": accountID, "reason": "recovery_code_failures", "failures": n}, SkipGroup: true}, meta)
}

// noticeCancelled tells every confirmed address that the holder's request
// was cancelled (by the holder, or by a "this wasn't me" report).
func (s *Service) noticeCancelled(ctx context.Context, tx recourse.Tx, r *recourse.Recovery, meta Meta) error {
	a, err := tx.Account(ctx, r.AccountID)
	if err != nil {
		return err
	}
	return s.notifyAccount(ctx, tx, a, "Your account recovery was cancelled", []string{
		"The recovery of your account (" + describeAction(r.Action) + ", reference " + r.ID + ") was cancelled: " + r.Outcome,
	}, meta)
}
