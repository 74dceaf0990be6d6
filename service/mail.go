package service

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/recourse/recourse"
)

// Message is a notice to one address.
type Message struct {
	AccountID string
	To        string
	Subject   string
	Body      string
	// At is when the service produced it (its clock, so tests control it).
	At time.Time
}

// kind tells a text message (an E.164 number) from a mail.
func (m Message) kind() recourse.NotificationKind {
	if strings.HasPrefix(m.To, "+") {
		return recourse.NotifySMS
	}
	return recourse.NotifyEmail
}

// notification is the record of m, in state, with a new id; its body is
// set where it is stored.
func (m Message) notification(state recourse.NotificationState) *recourse.Notification {
	return &recourse.Notification{ID: recourse.NewID("msg_"), Kind: m.kind(), AccountID: m.AccountID, To: m.To, Subject: m.Subject,
		State: state, CreatedAt: m.At}
}

// Mailer delivers messages. Send runs inside the transaction of the change the
// message is about, so a notice is recorded if and only if the change commits.
type Mailer interface {
	Send(ctx context.Context, tx recourse.Tx, m Message) error
}

// OutboxMailer keeps messages in the store's outbox, shown at /dev/outbox in
// development and demo mode. It is the mailer when no SMTP server is set.
type OutboxMailer struct{}

// Send implements Mailer.
func (OutboxMailer) Send(ctx context.Context, tx recourse.Tx, m Message) error {
	return tx.AddOutboxMessage(ctx, &recourse.OutboxMessage{
		AccountID: m.AccountID, To: m.To, Subject: m.Subject, Body: m.Body, CreatedAt: m.At,
	})
}

// outboxRecorder is the mailer of a server without SMTP: each message goes
// to the outbox at once, and is listed as a notification delivered there.
type outboxRecorder struct{ s *Service }

func (o outboxRecorder) Send(ctx context.Context, tx recourse.Tx, m Message) error {
	return o.s.deliverToOutbox(ctx, tx, m, recourse.NotificationSent, "")
}

// deliverToOutbox keeps m in the outbox with its notification, in state
// (final) with lastError.
func (s *Service) deliverToOutbox(ctx context.Context, tx recourse.Tx, m Message, state recourse.NotificationState, lastError string) error {
	n := m.notification(state)
	n.LastError = lastError
	if state == recourse.NotificationSent {
		n.SentAt = &n.CreatedAt
	}
	return tx.DeliverToOutbox(ctx, &recourse.OutboxMessage{AccountID: m.AccountID, To: m.To, Subject: m.Subject, Body: m.Body, CreatedAt: m.At}, n)
}

// queuedMailer is the mailer of a server with SMTP: each message is stored
// as a notification and its delivery job queued, both in the caller's
// transaction. Text messages have no gateway yet: they stay in the outbox
// and their notification says so.
type queuedMailer struct{ s *Service }

// errNoSMSGateway is the delivery state of a text message.
const errNoSMSGateway = "no SMS gateway is configured; the message is kept in the outbox"

func (q queuedMailer) Send(ctx context.Context, tx recourse.Tx, m Message) error {
	if m.kind() == recourse.NotifySMS {
		return q.s.deliverToOutbox(ctx, tx, m, recourse.NotificationFailed, errNoSMSGateway)
	}
	return q.s.queueNotification(ctx, tx, m)
}

// notifyAccount sends a security notice to every confirmed address of the
// account (NIST SP 800-63B-4 §4.6: notices go to all of them).
func (s *Service) notifyAccount(ctx context.Context, tx recourse.Tx, a *recourse.Account, subject string, lines []string, meta Meta) error {
	return s.notifyChannels(ctx, tx, a, a.Emails, subject, lines, meta)
}

// notifyEveryChannel sends the notice to every confirmed address and phone
// number of the account: for changes of a trust anchor, which every old
// channel (and the new one) must hear about.
func (s *Service) notifyEveryChannel(ctx context.Context, tx recourse.Tx, a *recourse.Account, subject string, lines []string, meta Meta) error {
	return s.notifyChannels(ctx, tx, a, append(append([]recourse.Channel{}, a.Emails...), a.Phones...), subject, lines, meta)
}

func (s *Service) notifyChannels(ctx context.Context, tx recourse.Tx, a *recourse.Account, chs []recourse.Channel, subject string, lines []string, meta Meta) error {
	body := s.noticeBody(a, lines, meta)
	for _, c := range chs {
		if !c.Verified {
			continue
		}
		subj := subject
		if c.Kind == recourse.ChannelPhone {
			subj = "SMS: " + subject
		}
		if err := s.mailer.Send(ctx, tx, Message{AccountID: a.ID, To: c.Address, Subject: subj, Body: body, At: s.now()}); err != nil {
			return err
		}
	}
	return nil
}

// noticeBody writes a security notice: what, when, from where, and what to
// do if it wasn't them.
func (s *Service) noticeBody(a *recourse.Account, lines []string, meta Meta) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Hello %s,\n\n", a.DisplayName)
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\nWhen: %s\n", s.now().Format("2006-01-02 15:04 MST"))
	if meta.IP != "" {
		fmt.Fprintf(&b, "From: %s\n", meta.IP)
	}
	if meta.UserAgent != "" {
		fmt.Fprintf(&b, "Browser: %s\n", truncate(oneLine(meta.UserAgent), 120))
	}
	fmt.Fprintf(&b, "\nIf this wasn't you, contact your security team at once; if you cannot sign in, use \"Can't sign in?\" at %s.\n\n— %s\n",
		s.publicURL("/recover"), s.cfg.Issuer)
	return b.String()
}

// oneLine keeps a client-supplied string (a user agent) on one line, so it
// cannot forge lines of the notice.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
