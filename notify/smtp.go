package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/mail"
	"os"
	"strings"

	gomail "github.com/wneessen/go-mail"
)

// SMTP sends mail through a relay with go-mail: STARTTLS required (or
// implicit TLS), authentication when a user is set, and a timeout on
// connecting and on every command.
type SMTP struct {
	cfg      SMTPConfig
	tls      *tls.Config
	fromName string
	fromAddr string
	domain   string
}

// NewSMTP prepares a sender; issuer names the sender when From has no
// name. tlsConfig, when not nil, replaces the TLS settings (tests trust
// their own certificate with it); otherwise CAFile or the system roots are
// trusted.
func NewSMTP(c SMTPConfig, issuer string, tlsConfig *tls.Config) (*SMTP, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	if c.Host == "" {
		return nil, errors.New("notify.smtp.host: not set")
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultSMTPTimeout
	}
	from, err := mail.ParseAddress(c.From)
	if err != nil {
		return nil, fmt.Errorf("notify.smtp.from: %w", err)
	}
	name := from.Name
	if name == "" {
		name = issuer
	}
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("notify.smtp.password_file: %w", err)
		}
		c.Password = strings.TrimRight(string(b), "\r\n")
	}
	t := tlsConfig
	if t == nil {
		t = &tls.Config{ServerName: c.Host, MinVersion: tls.VersionTLS12}
		if c.CAFile != "" {
			pem, err := os.ReadFile(c.CAFile)
			if err != nil {
				return nil, fmt.Errorf("notify.smtp.ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("notify.smtp.ca_file: %s holds no PEM certificate", c.CAFile)
			}
			t.RootCAs = pool
		}
	}
	return &SMTP{cfg: c, tls: t, fromName: name, fromAddr: from.Address, domain: hostOf(from.Address)}, nil
}

// From returns the sender as it appears in the From header.
func (s *SMTP) From() string { return (&mail.Address{Name: s.fromName, Address: s.fromAddr}).String() }

func (s *SMTP) client() (*gomail.Client, error) {
	opts := []gomail.Option{
		gomail.WithPort(s.cfg.port()),
		gomail.WithTimeout(s.cfg.Timeout),
		gomail.WithTLSConfig(s.tls),
	}
	switch s.cfg.Security {
	case "tls":
		opts = append(opts, gomail.WithSSL())
	case "none":
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if s.cfg.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.cfg.Username), gomail.WithPassword(s.cfg.Password))
	}
	helo := s.cfg.HELO
	if helo == "" {
		helo = s.domain
	}
	opts = append(opts, gomail.WithHELO(helo))
	return gomail.NewClient(s.cfg.Host, opts...)
}

// Send delivers one message with its plain-text and HTML bodies. Each call
// opens its own connection, so Send is safe for concurrent use. A relay
// refusing the recipient or the content for good (5xx) gives an error for
// which Permanent is true; anything else may succeed on a retry.
func (s *SMTP) Send(ctx context.Context, m Email, body Rendered) error {
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.FromFormat(s.fromName, s.fromAddr); err != nil {
		return &permanentError{fmt.Errorf("smtp: from: %w", err)}
	}
	if err := msg.To(m.To); err != nil {
		return &permanentError{fmt.Errorf("smtp: the address %q is not valid", m.To)}
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(m.ID + "@" + s.domain)
	if !m.At.IsZero() {
		msg.SetDateWithValue(m.At)
	} else {
		msg.SetDate()
	}
	// RFC 3834: an automatic message; out-of-office replies stay away.
	msg.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	msg.SetGenHeader(gomail.Header("X-Auto-Response-Suppress"), "All")
	msg.SetBodyString(gomail.TypeTextPlain, body.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, body.HTML)
	c, err := s.client()
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		var se *gomail.SendError
		if errors.As(err, &se) && !se.IsTemp() && se.ErrorCode() >= 500 {
			switch se.Reason {
			case gomail.ErrSMTPRcptTo, gomail.ErrSMTPData, gomail.ErrSMTPDataClose:
				return &permanentError{fmt.Errorf("smtp: %w", err)}
			}
		}
		return fmt.Errorf("smtp: %w", err)
	}
	return nil
}
