package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix marks a Standard Webhooks signing secret.
const SecretPrefix = "whsec_"

// Secret sizes the Standard Webhooks specification allows.
const (
	minSecretBytes = 24
	maxSecretBytes = 64
)

// NewSecret returns a fresh signing secret: 32 random bytes, "whsec_" and
// base64.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails; see crypto/rand
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// ParseSecret decodes a "whsec_…" secret and checks its size (24–64 bytes).
// Its error never quotes the secret.
func ParseSecret(s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), SecretPrefix)
	if !ok {
		return nil, errors.New("must start with whsec_ (create one with `openssl rand -base64 32` and prefix it)")
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, errors.New("must be whsec_ followed by standard base64")
	}
	if len(b) < minSecretBytes || len(b) > maxSecretBytes {
		return nil, fmt.Errorf("must decode to %d–%d bytes, not %d", minSecretBytes, maxSecretBytes, len(b))
	}
	return b, nil
}

// Sign returns the webhook-signature header for a call: one "v1,<base64
// HMAC-SHA256>" per secret, space-separated, over "id.timestamp.payload".
// During a rotation both the new and the previous secret sign, so a
// receiver holding either verifies the call.
func Sign(id string, at time.Time, payload []byte, secrets ...[]byte) string {
	sigs := make([]string, 0, len(secrets))
	for _, key := range secrets {
		mac := hmac.New(sha256.New, key)
		fmt.Fprintf(mac, "%s.%d.", id, at.Unix())
		mac.Write(payload)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(sigs, " ")
}

// Call is one webhook delivery attempt.
type Call struct {
	URL string
	// ID is the webhook-id: the same on every attempt, so receivers can
	// drop duplicates.
	ID      string
	Payload []byte
	// Secrets sign the call: the current one, then a previous one during
	// a rotation.
	Secrets [][]byte
}

// ErrGone reports that the receiver answered 410 Gone: it wants no more
// calls, and the endpoint is disabled.
var ErrGone = errors.New("the receiver answered 410 Gone")

// StatusError is a call answered with a status other than 2xx.
type StatusError struct{ Code int }

func (e *StatusError) Error() string {
	return fmt.Sprintf("the receiver answered %d %s", e.Code, http.StatusText(e.Code))
}

// Webhooks makes webhook calls through an HTTP client that applies a Guard
// to every address it dials, follows no redirects and uses no proxy from
// the environment (a proxy would dial for it, past the guard).
type Webhooks struct {
	client *http.Client
	now    func() time.Time
}

// NewWebhooks returns a caller with the guard and a per-call timeout.
func NewWebhooks(g Guard, timeout time.Duration) *Webhooks {
	if timeout <= 0 {
		timeout = DefaultWebhookTimeout
	}
	dialer := &net.Dialer{Timeout: timeout, Control: g.control}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          20,
		IdleConnTimeout:       90 * time.Second,
	}
	return &Webhooks{
		client: &http.Client{
			Transport: tr,
			Timeout:   timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		now: time.Now,
	}
}

// maxResponse bounds how much of a receiver's answer is read.
const maxResponse = 64 << 10

// Do makes one call. It returns nil for a 2xx answer, ErrGone for 410,
// a *StatusError for other statuses, an error wrapping ErrRefusedTarget
// when the guard refuses the address, and the transport error otherwise.
// The webhook-timestamp is the wall clock at the call, so receivers can
// enforce their tolerance.
func (w *Webhooks) Do(ctx context.Context, c Call) error {
	if len(c.Secrets) == 0 {
		return errors.New("webhook: no signing secret")
	}
	at := w.now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(c.Payload))
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Recourse-Webhooks/1")
	req.Header.Set("webhook-id", c.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
	req.Header.Set("webhook-signature", Sign(c.ID, at, c.Payload, c.Secrets...))
	resp, err := w.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrRefusedTarget) {
			// The dialer's error names the refused address; keep it, drop
			// the URL (its query may be private to the receiver).
			var oe *net.OpError
			if errors.As(err, &oe) {
				return oe.Err
			}
		}
		return fmt.Errorf("webhook call: %w", stripURL(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusGone:
		return ErrGone
	}
	return &StatusError{Code: resp.StatusCode}
}

// stripURL removes the URL from a client error (it may carry a token in
// its query), keeping the cause.
func stripURL(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// Permanent reports whether retrying a delivery that failed with err is
// pointless: the receiver is gone, the target is refused, or the relay
// refused the recipient for good.
func Permanent(err error) bool {
	var p *permanentError
	return errors.Is(err, ErrGone) || errors.Is(err, ErrRefusedTarget) || errors.As(err, &p)
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }
