package service

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/notify"
)

// Webhook is what administrators see of an endpoint: never its secret.
type Webhook struct {
	ID     string
	URL    string
	Events []string
	// Source is "config" (the configuration file: change it there) or
	// "api".
	Source string
	// RotatingUntil is set while a replaced secret still signs.
	RotatingUntil  *time.Time
	Failures       int
	Disabled       bool
	DisabledReason string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

func webhookView(e *recourse.WebhookEndpoint, now time.Time) *Webhook {
	w := &Webhook{ID: e.ID, URL: e.URL, Events: slices.Clone(e.Events), Source: e.Source, Failures: e.Failures,
		Disabled: e.DisabledAt != nil, DisabledReason: e.DisabledReason, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
	if e.PreviousUntil != nil && now.Before(*e.PreviousUntil) {
		w.RotatingUntil = e.PreviousUntil
	}
	return w
}

func webhookSecretAD(id string) []byte { return []byte("webhook-secret:" + id) }

// webhookSecrets returns the endpoint's signing keys: the current one, and
// the previous one while its overlap lasts.
func (s *Service) webhookSecrets(e *recourse.WebhookEndpoint) ([][]byte, error) {
	cur, err := s.sealer.Open(e.Secret, webhookSecretAD(e.ID))
	if err != nil {
		return nil, errors.New("the signing secret cannot be opened (another master key?)")
	}
	keys := [][]byte{cur}
	if len(e.PreviousSecret) > 0 && e.PreviousUntil != nil && s.now().Before(*e.PreviousUntil) {
		if prev, err := s.sealer.Open(e.PreviousSecret, webhookSecretAD(e.ID)); err == nil {
			keys = append(keys, prev)
		}
	}
	return keys, nil
}

// requireWebhookAdmin allows administrators, unrestricted.
func (s *Service) requireWebhookAdmin(p *Principal) error {
	if p == nil || p.Account == nil || !p.Account.HasRole(recourse.RoleAdmin) {
		return recourse.Errorf(recourse.EFORBIDDEN, "Only administrators manage webhooks.")
	}
	if p.Session != nil && p.Session.Restricted {
		return requireUnrestricted(p)
	}
	return nil
}

// checkWebhookURL applies the server's SSRF guard, or the strictest one
// where notifications are not enabled (the CLI).
func (s *Service) checkWebhookURL(raw string) error {
	if s.notify.courier != nil {
		return s.notify.courier.CheckWebhookURL(raw)
	}
	return notify.Guard{}.CheckURL(raw)
}

func webhookMeta(p *Principal, meta Meta) Meta {
	if meta.Actor.Role == "" {
		meta.Actor = recourse.AuditActor{AccountID: p.Account.ID, Role: recourse.ActorAdmin}
	}
	return meta
}

// webhookAttrs is what the audit log records of an endpoint. Some
// receivers put a bearer token in their URL's path or query, so the log
// keeps the host and a digest of the URL, never the URL itself.
func webhookAttrs(e *recourse.WebhookEndpoint) map[string]string {
	host := ""
	if u, err := url.Parse(e.URL); err == nil {
		host = u.Host
	}
	sum := sha256.Sum256([]byte(e.URL))
	return map[string]string{"endpoint": e.ID, "url_host": host, "url_sha256": hex.EncodeToString(sum[:]),
		"events": strings.Join(e.Events, ","), "source": e.Source}
}

// ListWebhooks lists every endpoint, for an administrator.
func (s *Service) ListWebhooks(ctx context.Context, p *Principal) ([]*Webhook, error) {
	if err := s.requireWebhookAdmin(p); err != nil {
		return nil, err
	}
	eps, err := s.store.WebhookEndpoints(ctx)
	if err != nil {
		return nil, internal("list webhooks", err)
	}
	out := make([]*Webhook, 0, len(eps))
	for _, e := range eps {
		out = append(out, webhookView(e, s.now()))
	}
	return out, nil
}

// CreateWebhook adds an endpoint that receives the events (event types,
// "family.*" or "*"). The URL must pass the SSRF guard. It returns the
// endpoint and its signing secret, shown this once.
func (s *Service) CreateWebhook(ctx context.Context, p *Principal, rawURL string, events []string, meta Meta) (*Webhook, string, error) {
	if err := s.requireWebhookAdmin(p); err != nil {
		return nil, "", err
	}
	rawURL = strings.TrimSpace(rawURL)
	if err := s.checkWebhookURL(rawURL); err != nil {
		return nil, "", recourse.FieldError("url", "%s", strings.TrimPrefix(err.Error(), notify.ErrRefusedTarget.Error()+": "))
	}
	if err := notify.CheckEvents(events); err != nil {
		return nil, "", recourse.FieldError("events", "%s", err.Error())
	}
	secret := notify.NewSecret()
	key, _ := notify.ParseSecret(secret)
	now := s.now()
	e := &recourse.WebhookEndpoint{ID: recourse.NewID("whk_"), URL: rawURL, Events: slices.Clone(events), Source: recourse.WebhookFromAPI,
		CreatedAt: now, UpdatedAt: now}
	e.Secret = s.sealer.Seal(key, webhookSecretAD(e.ID))
	defer s.routes.changed()
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		if err := tx.CreateWebhookEndpoint(ctx, e); err != nil {
			return err
		}
		return s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionWebhookCreate, Outcome: recourse.OutcomeSuccess,
			After: webhookAttrs(e)}, webhookMeta(p, meta))
	})
	if err != nil {
		return nil, "", internal("create webhook", err)
	}
	s.log.Info("webhook endpoint created", "endpoint", e.ID, "by", p.Account.ID)
	return webhookView(e, now), secret, nil
}

// RotateWebhookSecret gives an endpoint a new signing secret, returned
// this once. For the rotation overlap (notify.rotation_overlap) calls
// carry a signature under each secret, so the receiver can switch at its
// own pace.
func (s *Service) RotateWebhookSecret(ctx context.Context, p *Principal, id string, meta Meta) (string, error) {
	if err := s.requireWebhookAdmin(p); err != nil {
		return "", err
	}
	secret := notify.NewSecret()
	key, _ := notify.ParseSecret(secret)
	defer s.routes.changed()
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		e, err := tx.WebhookEndpoint(ctx, id)
		if err != nil {
			return err
		}
		if e.Source == recourse.WebhookFromConfig {
			return errConfigWebhook
		}
		s.rotate(e, key)
		if err := tx.UpdateWebhookEndpoint(ctx, e); err != nil {
			return err
		}
		return s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionWebhookRotate, Outcome: recourse.OutcomeSuccess,
			Attributes: map[string]string{"endpoint": e.ID, "previous_valid_until": e.PreviousUntil.Format(time.RFC3339)}}, webhookMeta(p, meta))
	})
	if errors.Is(err, recourse.ErrNotFound) {
		return "", errNoWebhook
	}
	if err != nil && recourse.ErrorCode(err) == recourse.EINTERNAL {
		return "", internal("rotate webhook secret", err)
	}
	return secret, err
}

// rotate makes key the endpoint's secret; the current one signs on until
// the overlap ends.
func (s *Service) rotate(e *recourse.WebhookEndpoint, key []byte) {
	now := s.now()
	until := now.Add(cmp.Or(s.notify.overlap, notify.DefaultRotationOverlap))
	e.PreviousSecret, e.PreviousUntil = e.Secret, &until
	e.Secret, e.UpdatedAt = s.sealer.Seal(key, webhookSecretAD(e.ID)), now
}

var (
	errNoWebhook     = recourse.Errorf(recourse.ENOTFOUND, "No such webhook endpoint.")
	errConfigWebhook = recourse.Errorf(recourse.ECONFLICT, "This endpoint is set in the configuration file; change it there.")
)

// DeleteWebhook removes an endpoint; its queued calls fail as undeliverable.
func (s *Service) DeleteWebhook(ctx context.Context, p *Principal, id string, meta Meta) error {
	if err := s.requireWebhookAdmin(p); err != nil {
		return err
	}
	defer s.routes.changed()
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		e, err := tx.WebhookEndpoint(ctx, id)
		if err != nil {
			return err
		}
		if e.Source == recourse.WebhookFromConfig {
			return errConfigWebhook
		}
		if err := tx.DeleteWebhookEndpoint(ctx, id); err != nil {
			return err
		}
		return s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionWebhookDelete, Outcome: recourse.OutcomeSuccess,
			Before: webhookAttrs(e)}, webhookMeta(p, meta))
	})
	if errors.Is(err, recourse.ErrNotFound) {
		return errNoWebhook
	}
	if err != nil && recourse.ErrorCode(err) == recourse.EINTERNAL {
		return internal("delete webhook", err)
	}
	return err
}

// configWebhookID names a configuration endpoint by its URL, so it keeps
// its id (and its queued calls) across restarts.
func configWebhookID(rawURL string) string {
	sum := sha256.Sum256([]byte(rawURL))
	return "whc_" + hex.EncodeToString(sum[:10])
}

// syncConfigWebhooks brings the stored configuration endpoints in step with
// the file: new ones are created, removed ones deleted, changed events
// updated, and a changed secret rotated (the old one signs on for the
// overlap, and an endpoint a 410 Gone disabled is enabled again). Each
// change is audited as the system's.
func (s *Service) syncConfigWebhooks(ctx context.Context, hooks []notify.WebhookConfig) error {
	defer s.routes.changed()
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		stored, err := tx.WebhookEndpoints(ctx)
		if err != nil {
			return err
		}
		byID := map[string]*recourse.WebhookEndpoint{}
		for _, e := range stored {
			if e.Source == recourse.WebhookFromConfig {
				byID[e.ID] = e
			}
		}
		now := s.now()
		audit := func(action string, attrs map[string]string) error {
			return s.recordAudit(ctx, tx, recourse.AuditEvent{Action: action, Outcome: recourse.OutcomeSuccess, Reason: "configuration file",
				Attributes: attrs}, systemMeta)
		}
		for _, h := range hooks {
			key, err := notify.ParseSecret(h.Secret)
			if err != nil {
				return recourse.Errorf(recourse.EINVALID, "notify.webhooks: %s: secret %s", h.URL, err)
			}
			id := configWebhookID(h.URL)
			e, ok := byID[id]
			delete(byID, id)
			if !ok {
				e = &recourse.WebhookEndpoint{ID: id, URL: h.URL, Events: slices.Clone(h.Events), Source: recourse.WebhookFromConfig,
					CreatedAt: now, UpdatedAt: now}
				e.Secret = s.sealer.Seal(key, webhookSecretAD(id))
				if err := tx.CreateWebhookEndpoint(ctx, e); err != nil {
					return err
				}
				if err := audit(recourse.ActionWebhookCreate, webhookAttrs(e)); err != nil {
					return err
				}
				continue
			}
			changed := false
			if cur, err := s.sealer.Open(e.Secret, webhookSecretAD(id)); err != nil || !credential.Equal(cur, key) {
				s.rotate(e, key)
				e.DisabledAt, e.DisabledReason = nil, ""
				changed = true
				if err := audit(recourse.ActionWebhookRotate, map[string]string{"endpoint": id}); err != nil {
					return err
				}
			}
			if !slices.Equal(e.Events, h.Events) {
				e.Events, e.UpdatedAt, changed = slices.Clone(h.Events), now, true
			}
			if changed {
				if err := tx.UpdateWebhookEndpoint(ctx, e); err != nil {
					return err
				}
			}
		}
		for _, e := range byID {
			if err := tx.DeleteWebhookEndpoint(ctx, e.ID); err != nil {
				return err
			}
			if err := audit(recourse.ActionWebhookDelete, webhookAttrs(e)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && recourse.ErrorCode(err) == recourse.EINTERNAL {
		return internal("sync configuration webhooks", err)
	}
	return err
}
