package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
)

// maxChannels bounds the channels of one kind an account may hold.
const maxChannels = 5

// AddChannel binds a new, unconfirmed email address or phone number to the
// principal's account and sends it a confirmation code. The channel counts
// for nothing until ConfirmChannel receives that code.
func (s *Service) AddChannel(ctx context.Context, p *Principal, kind recourse.ChannelKind, address string, meta Meta) (*recourse.Channel, error) {
	if err := requireUnrestricted(p); err != nil {
		return nil, err
	}
	if err := s.RequireRecentAuth(p); err != nil {
		return nil, err
	}
	addr := recourse.NormalizeChannelAddress(kind, address)
	if err := recourse.ValidateChannelAddress(kind, addr); err != nil {
		return nil, err
	}
	existing := p.Account.Emails
	if kind == recourse.ChannelPhone {
		existing = p.Account.Phones
	}
	if len(existing) >= maxChannels {
		return nil, recourse.Errorf(recourse.EINVALID, "You already have %d of these. Remove one first.", len(existing))
	}
	c := &recourse.Channel{AccountID: p.Account.ID, Kind: kind, Address: addr, CreatedAt: s.now()}
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		if err := tx.AddChannel(ctx, c); err != nil {
			return err
		}
		if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionChannelAdd, Outcome: recourse.OutcomeSuccess,
			SubjectID: p.Account.ID, After: channelAttrs(c), Attributes: map[string]string{"code_sent": "true"}}, meta); err != nil {
			return err
		}
		return s.sendChannelCode(ctx, tx, p.Account, c)
	})
	if errors.Is(err, recourse.ErrConflict) {
		return nil, recourse.FieldError(string(kind), "is already on your account")
	}
	if err != nil {
		return nil, internal("add channel", err)
	}
	s.log.Info("channel added", "account", p.Account.ID, "channel", c.ID, "kind", kind, "ip", meta.IP)
	return c, nil
}

// sendChannelCode stores a fresh code's HMAC and sends the code to the
// channel itself (never to the screen).
func (s *Service) sendChannelCode(ctx context.Context, tx recourse.Tx, a *recourse.Account, c *recourse.Channel) error {
	code := credential.NewNumericCode(6)
	if err := tx.SetChannelCode(ctx, c.ID, s.hasher.Sum("channel-code:"+c.ID, code), s.now().Add(s.cfg.ChannelCodeTTL)); err != nil {
		return err
	}
	body := fmt.Sprintf("Hello %s,\n\nYour %s confirmation code is %s. It expires in %d minutes.\n\n"+
		"Enter it on your security page. Nobody from %s will ever ask you for it.\n"+
		"If you did not ask for this, ignore this message.\n\n— %s\n",
		a.DisplayName, s.cfg.Issuer, code, int(s.cfg.ChannelCodeTTL.Minutes()), s.cfg.Issuer, s.cfg.Issuer)
	subject := "Your confirmation code"
	if c.Kind == recourse.ChannelPhone {
		subject = "SMS: your confirmation code"
	}
	// Without an SMS gateway, text messages land in the outbox too.
	return s.mailer.Send(ctx, tx, Message{AccountID: a.ID, To: c.Address, Subject: subject, Body: body, At: s.now()})
}

// ResendChannelCode sends a new confirmation code to an unconfirmed channel.
func (s *Service) ResendChannelCode(ctx context.Context, p *Principal, channelID string, meta Meta) error {
	c, err := s.ownChannel(ctx, p, channelID)
	if err != nil {
		return err
	}
	if c.Verified {
		return recourse.Errorf(recourse.ECONFLICT, "This is already confirmed.")
	}
	return internal("resend code", s.store.InTx(ctx, func(tx recourse.Tx) error {
		if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionChannelCodeSent, Outcome: recourse.OutcomeSuccess,
			SubjectID: p.Account.ID, Attributes: map[string]string{"channel_id": c.ID, "kind": string(c.Kind)}}, meta); err != nil {
			return err
		}
		return s.sendChannelCode(ctx, tx, p.Account, c)
	}))
}

func (s *Service) ownChannel(ctx context.Context, p *Principal, channelID string) (*recourse.Channel, error) {
	c, err := s.store.Channel(ctx, channelID)
	if errors.Is(err, recourse.ErrNotFound) || (err == nil && c.AccountID != p.Account.ID) {
		return nil, recourse.Errorf(recourse.ENOTFOUND, "No such email address or phone number on your account.")
	}
	return c, internal("read channel", err)
}

// ConfirmChannel checks a confirmation code. Attempts are counted atomically
// in the database; after the limit, a new code is needed.
func (s *Service) ConfirmChannel(ctx context.Context, p *Principal, channelID, code string, meta Meta) error {
	c, err := s.ownChannel(ctx, p, channelID)
	if err != nil {
		return err
	}
	if c.Verified {
		return nil
	}
	// The attempt, its check and its audit record are one transaction: a
	// wrong code is counted and recorded together, a right one confirms.
	var refused error
	err = s.store.InTx(ctx, func(tx recourse.Tx) error {
		refused = nil
		refuse := func(userErr error, reason string) error {
			refused = userErr
			return s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionChannelConfirm, Outcome: recourse.OutcomeFailure,
				SubjectID: p.Account.ID, Reason: reason, Attributes: map[string]string{"channel_id": c.ID, "kind": string(c.Kind)}}, meta)
		}
		hash, exp, err := tx.TakeChannelCodeAttempt(ctx, c.ID, s.cfg.ChannelCodeAttempts)
		switch {
		case errors.Is(err, recourse.ErrNotFound):
			refused = recourse.Errorf(recourse.EINVALID, "There is no code waiting. Ask for a new one.")
			return nil
		case recourse.ErrorCode(err) == recourse.ERATELIMIT:
			return refuse(err, "too many wrong codes")
		case err != nil:
			return err
		case s.now().After(exp):
			return refuse(recourse.FieldError("code", "That code has expired. Ask for a new one."), "code expired")
		case !credential.Equal(hash, s.hasher.Sum("channel-code:"+c.ID, code)):
			return refuse(recourse.FieldError("code", "That code is not right."), "wrong code")
		}
		if err := tx.MarkChannelVerified(ctx, c.ID, s.now()); err != nil {
			return err
		}
		after := channelAttrs(c)
		after["verified"] = "true"
		if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionChannelConfirm, Outcome: recourse.OutcomeSuccess,
			SubjectID: p.Account.ID, Before: map[string]string{"verified": "false"}, After: after, Evidence: []string{"code"}}, meta); err != nil {
			return err
		}
		fresh, err := tx.Account(ctx, p.Account.ID)
		if err != nil {
			return err
		}
		// A new channel is a new trust anchor: every channel hears of it,
		// the new one and the phones too.
		return s.notifyEveryChannel(ctx, tx, fresh, "A new "+string(c.Kind)+" was confirmed on your account", []string{
			"The " + string(c.Kind) + " " + mask(c) + " was confirmed and can now receive notices and codes for your account.",
		}, meta)
	})
	if err != nil {
		return internal("confirm channel", err)
	}
	if refused != nil {
		return refused
	}
	s.log.Info("channel confirmed", "account", p.Account.ID, "channel", c.ID, "ip", meta.IP)
	return nil
}

// channelAttrs is what the audit log records of a channel. Addresses are
// not secrets, and investigators need the one that was added.
func channelAttrs(c *recourse.Channel) map[string]string {
	return map[string]string{"channel_id": c.ID, "kind": string(c.Kind), "address": c.Address}
}

// mask hides most of an address for notices and agents' screens.
func mask(c *recourse.Channel) string { return MaskAddress(c.Kind, c.Address) }

// MaskAddress shows enough of an address to recognise it, not to use it:
// "j•••@example.com", "+1•••••••4567".
func MaskAddress(kind recourse.ChannelKind, addr string) string {
	switch kind {
	case recourse.ChannelEmail:
		for i := 0; i < len(addr); i++ {
			if addr[i] == '@' && i > 0 {
				return addr[:1] + "•••" + addr[i:]
			}
		}
	case recourse.ChannelPhone:
		if len(addr) > 6 {
			r := []byte(addr)
			out := string(r[:2])
			for range len(r) - 6 {
				out += "•"
			}
			return out + string(r[len(r)-4:])
		}
	}
	return "•••"
}

// SetRecoveryContacts names the people who may vouch for the principal in a
// recovery. They must be active people other than the principal.
func (s *Service) SetRecoveryContacts(ctx context.Context, p *Principal, usernames []string, meta Meta) error {
	if err := requireUnrestricted(p); err != nil {
		return err
	}
	if err := s.RequireRecentAuth(p); err != nil {
		return err
	}
	var ids []string
	for _, u := range usernames {
		u = recourse.NormalizeUsername(u)
		if u == "" {
			continue
		}
		a, err := s.store.AccountByUsername(ctx, u)
		if errors.Is(err, recourse.ErrNotFound) || (err == nil && (a.Kind != recourse.KindHuman || a.Status != recourse.StatusActive)) {
			return recourse.FieldError("recovery_contacts", "%q is not an active person in the directory", u)
		}
		if err != nil {
			return internal("find contact", err)
		}
		if a.ID == p.Account.ID {
			return recourse.FieldError("recovery_contacts", "you cannot be your own recovery contact")
		}
		if !slices.Contains(ids, a.ID) {
			ids = append(ids, a.ID)
		}
	}
	err := s.updateOwnAccount(ctx, p, func(tx recourse.Tx, a *recourse.Account) error {
		before := strings.Join(a.RecoveryContacts, ",")
		a.RecoveryContacts = ids
		a.UpdatedAt = s.now()
		if err := a.Validate(); err != nil {
			return err
		}
		if err := tx.UpdateAccount(ctx, a); err != nil {
			return err
		}
		if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionRecoveryContacts, Outcome: recourse.OutcomeSuccess,
			SubjectID: a.ID, Before: map[string]string{"recovery_contacts": before},
			After: map[string]string{"recovery_contacts": strings.Join(ids, ",")}}, meta); err != nil {
			return err
		}
		return s.notifyAccount(ctx, tx, a, "Your recovery contacts changed", []string{
			"The people who can vouch for you in an account recovery were changed.",
		}, meta)
	})
	if errors.Is(err, recourse.ErrConflict) {
		return recourse.Errorf(recourse.ECONFLICT, "Your account changed meanwhile. Reload and try again.")
	}
	return internal("set recovery contacts", err)
}

// updateOwnAccount runs change, which updates the principal's account
// (UpdateAccount), in a transaction, on a copy of the account that
// Authenticate read for this request rather than on a read of its own:
// on PostgreSQL that read is a round trip, and UpdateAccount stores a
// copy only if its version is still the stored one. If it is not — the
// account changed since it was read — change runs again, once, on the
// account as the transaction reads it, provided the account may still
// act (active, not frozen: what Authenticate checked); a second conflict
// is the caller's ErrConflict. On success p.Account is the account as
// stored.
func (s *Service) updateOwnAccount(ctx context.Context, p *Principal, change func(tx recourse.Tx, a *recourse.Account) error) error {
	for attempt := 0; ; attempt++ {
		var a *recourse.Account
		err := s.store.InTx(ctx, func(tx recourse.Tx) error {
			if attempt == 0 {
				a = copyAccount(p.Account)
			} else {
				var err error
				if a, err = tx.Account(ctx, p.Account.ID); err != nil {
					return err
				}
				if a.Status != recourse.StatusActive || a.FrozenAt != nil {
					return errNoSession
				}
			}
			return change(tx, a)
		})
		if errors.Is(err, recourse.ErrConflict) && attempt == 0 {
			continue
		}
		if err == nil {
			p.Account = a
		}
		return err
	}
}

// copyAccount copies a: a change to the copy, its lists or its channels,
// leaves a as it was.
func copyAccount(a *recourse.Account) *recourse.Account {
	c := *a
	c.Owners, c.Groups, c.Roles = slices.Clone(a.Owners), slices.Clone(a.Groups), slices.Clone(a.Roles)
	c.RecoveryContacts = slices.Clone(a.RecoveryContacts)
	c.Emails, c.Phones = slices.Clone(a.Emails), slices.Clone(a.Phones)
	return &c
}
