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

// notifyAccount sends a security notice to every confirmed address of the
// account (NIST SP 800-63B-4 §4.6: notices go to all of them).
func (s *Service) notifyAccount(ctx context.Context, tx recourse.Tx, a *recourse.Account, subject string, lines []string, meta Meta) error {
	body := s.noticeBody(a, lines, meta)
	for _, c := range a.Emails {
		if !c.Verified {
			continue
		}
		if err := s.mailer.Send(ctx, tx, Message{AccountID: a.ID, To: c.Address, Subject: subject, Body: body, At: s.now()}); err != nil {
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
		fmt.Fprintf(&b, "Browser: %s\n", truncate(meta.UserAgent, 120))
	}
	b.WriteString("\nIf this wasn't you, contact your security team at once.\n\n— " + s.cfg.Issuer + "\n")
	return b.String()
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
