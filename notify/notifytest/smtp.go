// Package notifytest runs real receivers for tests, on loopback only: an
// SMTP server (emersion/go-smtp) with STARTTLS or implicit TLS and
// authentication, and a webhook receiver that verifies every call with
// the Standard Webhooks reference library and drops duplicates by
// webhook-id, as a receiver should.
package notifytest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Mail is a message the server accepted.
type Mail struct {
	From      string
	To        []string
	Header    mail.Header
	MessageID string
	Subject   string
	Text      string
	HTML      string
	Raw       []byte
	// User is who authenticated, if anyone.
	User string
	// TLS reports whether the session was encrypted.
	TLS bool
}

// SMTPServer is a real SMTP server on 127.0.0.1.
type SMTPServer struct {
	Host string
	Port int
	// ClientTLS trusts the server's self-signed certificate.
	ClientTLS *tls.Config
	// Username and Password are the credentials it accepts (when auth is on).
	Username, Password string

	mu       sync.Mutex
	mails    []*Mail
	tempFail int
	reject   map[string]bool
	changed  chan struct{}
}

// SMTPMode is how the server offers TLS.
type SMTPMode string

const (
	STARTTLS SMTPMode = "starttls"
	Implicit SMTPMode = "tls"
	Plain    SMTPMode = "none"
)

// NewSMTPServer starts a server; with auth it requires the PLAIN
// mechanism with Username and Password before MAIL. It stops with the test.
func NewSMTPServer(t testing.TB, mode SMTPMode, auth bool) *SMTPServer {
	t.Helper()
	cert, pool := selfSigned(t)
	s := &SMTPServer{Host: "127.0.0.1", Username: "recourse", Password: "relay-password-1", reject: map[string]bool{},
		changed: make(chan struct{}, 1), ClientTLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{srv: s, auth: auth, conn: c}, nil
	}))
	srv.Domain = "mx.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.MaxMessageBytes = 1 << 20
	srv.AllowInsecureAuth = mode == Plain
	srv.ErrorLog = discardLogger{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	switch mode {
	case STARTTLS:
		srv.TLSConfig = tlsCfg
	case Implicit:
		ln = tls.NewListener(ln, tlsCfg)
	}
	s.Port = ln.Addr().(*net.TCPAddr).Port
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return s
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}

// TempFail makes the server answer the next n messages with 451.
func (s *SMTPServer) TempFail(n int) {
	s.mu.Lock()
	s.tempFail = n
	s.mu.Unlock()
}

// Reject makes the server refuse a recipient for good (550).
func (s *SMTPServer) Reject(addr string) {
	s.mu.Lock()
	s.reject[strings.ToLower(addr)] = true
	s.mu.Unlock()
}

// Mails returns the accepted messages in arrival order.
func (s *SMTPServer) Mails() []*Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Mail(nil), s.mails...)
}

// MailsTo returns the accepted messages to an address, deduplicated by
// Message-ID as a mail client would show them.
func (s *SMTPServer) MailsTo(addr string) []*Mail {
	seen := map[string]bool{}
	var out []*Mail
	for _, m := range s.Mails() {
		for _, to := range m.To {
			if strings.EqualFold(to, addr) && !seen[m.MessageID] {
				seen[m.MessageID] = true
				out = append(out, m)
			}
		}
	}
	return out
}

// WaitFor polls until cond holds on the accepted messages, failing the
// test after timeout.
func (s *SMTPServer) WaitFor(t testing.TB, timeout time.Duration, what string, cond func([]*Mail) bool) []*Mail {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if ms := s.Mails(); cond(ms) {
			return ms
		}
		select {
		case <-s.changed:
		case <-deadline.C:
			t.Fatalf("SMTP server: %s: not within %s (%d messages)", what, timeout, len(s.Mails()))
		}
	}
}

type session struct {
	srv  *SMTPServer
	auth bool
	conn *smtp.Conn
	user string
	from string
	to   []string
}

func (s *session) AuthMechanisms() []string {
	if !s.auth {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != s.srv.Username || password != s.srv.Password {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.user = username
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.auth && s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.srv.mu.Lock()
	rejected := s.srv.reject[strings.ToLower(to)]
	s.srv.mu.Unlock()
	if rejected {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	if s.srv.tempFail > 0 {
		s.srv.tempFail--
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	m, err := parseMail(raw)
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: err.Error()}
	}
	_, m.TLS = s.conn.TLSConnectionState()
	m.From, m.To, m.User = s.from, append([]string(nil), s.to...), s.user
	s.srv.mails = append(s.srv.mails, m)
	select {
	case s.srv.changed <- struct{}{}:
	default:
	}
	return nil
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

// parseMail reads the headers and the text and HTML parts.
func parseMail(raw []byte) (*Mail, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	m := &Mail{Header: msg.Header, Raw: raw, MessageID: msg.Header.Get("Message-Id")}
	dec := new(mime.WordDecoder)
	if m.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		return nil, err
	}
	err = readPart(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, m)
	return m, err
}

func readPart(ctype, encoding string, body io.Reader, m *Mail) error {
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		return err
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := readPart(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, m); err != nil {
				return err
			}
		}
	}
	if strings.EqualFold(encoding, "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	switch mt {
	case "text/plain":
		m.Text = strings.ReplaceAll(string(b), "\r\n", "\n")
	case "text/html":
		m.HTML = string(b)
	}
	return nil
}

// selfSigned makes a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "notifytest"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// Addr returns host:port.
func (s *SMTPServer) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }
