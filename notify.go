package recourse

import (
	"context"
	"time"
)

// NotificationKind is how a notification travels.
type NotificationKind string

const (
	NotifyEmail   NotificationKind = "email"
	NotifySMS     NotificationKind = "sms"
	NotifyWebhook NotificationKind = "webhook"
)

// NotificationState is where a notification is in its delivery.
//
//	queued → sent
//	queued → failed (after the last attempt, or a permanent refusal)
type NotificationState string

const (
	NotificationQueued NotificationState = "queued"
	NotificationSent   NotificationState = "sent"
	NotificationFailed NotificationState = "failed"
)

// Notification is one message to deliver: a mail, a text message or a
// webhook call. It is stored in the transaction of the change it reports,
// together with the job that delivers it, so it exists if and only if the
// change committed.
type Notification struct {
	ID string
	// Seq orders notifications by insertion; it is set by the store.
	Seq       int64
	Kind      NotificationKind
	AccountID string
	// To is the address or number, or for a webhook the endpoint's id.
	To string
	// Subject is the mail's subject, or for a webhook the event type.
	Subject string
	// Body is the message (a webhook's JSON payload) sealed by the service:
	// mail carries codes, so the store never holds it in the clear. Lists
	// for administrators leave it out. It is empty for a notification that
	// was final when stored (delivered to the outbox, which holds the
	// message): only a delivery attempt reads it.
	Body      []byte
	State     NotificationState
	Attempts  int
	LastError string
	CreatedAt time.Time
	UpdatedAt time.Time
	SentAt    *time.Time
}

// NotificationFilter selects notifications, newest first. Before is the Seq
// to continue before (cursor pagination); 0 starts at the newest.
type NotificationFilter struct {
	AccountID string
	Kind      NotificationKind
	State     NotificationState
	// To selects one address or webhook endpoint.
	To     string
	Before int64
	Limit  int
}

// Webhook endpoint sources: the configuration file, or the API.
const (
	WebhookFromConfig = "config"
	WebhookFromAPI    = "api"
)

// WebhookEndpoint is a receiver of signed event calls (Standard Webhooks).
type WebhookEndpoint struct {
	ID  string
	URL string
	// Events are the event types it receives: exact names, "prefix.*", or
	// "*" for all.
	Events []string
	// Secret is the signing secret sealed by the service. PreviousSecret,
	// until PreviousUntil, is the secret it replaced: during a rotation
	// calls carry a signature under each.
	Secret         []byte
	PreviousSecret []byte
	PreviousUntil  *time.Time
	// Source is WebhookFromConfig or WebhookFromAPI.
	Source string
	// Failures counts consecutive failed calls; a success resets it.
	Failures int
	// DisabledAt is set when the receiver answered 410 Gone: no more calls.
	DisabledAt     *time.Time
	DisabledReason string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// NotifyTx is the persistence of notifications and webhook endpoints.
type NotifyTx interface {
	// AddNotification stores n and sets n.Seq. ErrConflict when n.ID exists.
	AddNotification(ctx context.Context, n *Notification) error
	Notification(ctx context.Context, id string) (*Notification, error)
	// ListNotifications returns notifications matching f, newest first,
	// without their bodies.
	ListNotifications(ctx context.Context, f NotificationFilter) ([]*Notification, error)
	// RecordDeliveryAttempt atomically counts one attempt at a queued
	// notification and stores its outcome: state (queued while retries
	// remain, sent or failed) and lastError. It returns the attempts so
	// far; ErrNotFound when the notification is not queued any more.
	RecordDeliveryAttempt(ctx context.Context, id string, state NotificationState, lastError string, at time.Time) (int, error)

	// CreateWebhookEndpoint stores e; ErrConflict when its id exists.
	CreateWebhookEndpoint(ctx context.Context, e *WebhookEndpoint) error
	WebhookEndpoint(ctx context.Context, id string) (*WebhookEndpoint, error)
	// WebhookEndpoints lists every endpoint, disabled ones too, by id.
	WebhookEndpoints(ctx context.Context) ([]*WebhookEndpoint, error)
	// UpdateWebhookEndpoint stores URL, Events, the secrets, DisabledAt,
	// DisabledReason and UpdatedAt.
	UpdateWebhookEndpoint(ctx context.Context, e *WebhookEndpoint) error
	DeleteWebhookEndpoint(ctx context.Context, id string) error
	// RecordWebhookOutcome atomically resets (ok) or increments the
	// endpoint's consecutive failures and returns the new count.
	RecordWebhookOutcome(ctx context.Context, id string, ok bool, at time.Time) (int, error)
}

// Audit actions of notifications.
const (
	ActionWebhookCreate  = "webhook.create"
	ActionWebhookRotate  = "webhook.rotate"
	ActionWebhookDelete  = "webhook.delete"
	ActionWebhookDisable = "webhook.disable"
)
