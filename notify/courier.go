package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Courier makes one delivery attempt of a mail or a webhook call: it is
// what the service's delivery job calls.
type Courier struct {
	smtp       *SMTP
	hooks      *Webhooks
	guard      Guard
	metrics    *Metrics
	issuer     string
	linkPrefix string
}

// Options build a Courier.
type Options struct {
	Config Config
	// Issuer names Recourse in mail (the sender's name and the footer).
	Issuer string
	// PublicURL is where Recourse's own links start; only those become
	// links in HTML mail.
	PublicURL string
	// SMTPTLS, when set, replaces the SMTP TLS settings (tests).
	SMTPTLS *tls.Config
	// Metrics counts deliveries; nil counts nothing.
	Metrics *Metrics
}

// New returns a Courier for the configuration. Without an SMTP host it
// sends no mail (SendEmail fails), and the service keeps mail in the
// outbox instead.
func New(o Options) (*Courier, error) {
	if err := o.Config.Validate(); err != nil {
		return nil, err
	}
	g, err := o.Config.Guard()
	if err != nil {
		return nil, err
	}
	c := &Courier{guard: g, hooks: NewWebhooks(g, o.Config.WebhookTimeout), metrics: o.Metrics, issuer: o.Issuer, linkPrefix: o.PublicURL}
	if o.Config.SMTPEnabled() {
		if c.smtp, err = NewSMTP(o.Config.SMTP, o.Issuer, o.SMTPTLS); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// SendsEmail reports whether mail goes to an SMTP relay.
func (c *Courier) SendsEmail() bool { return c.smtp != nil }

// SendEmail renders and sends one mail.
func (c *Courier) SendEmail(ctx context.Context, m Email) error {
	if c.smtp == nil {
		return &permanentError{errors.New("no SMTP relay is configured")}
	}
	body, err := Render(c.issuer, m.Subject, m.Text, c.linkPrefix)
	if err != nil {
		return &permanentError{err}
	}
	err = c.smtp.Send(ctx, m, body)
	c.metrics.observe("email", err)
	return err
}

// CallWebhook makes one signed call.
func (c *Courier) CallWebhook(ctx context.Context, call Call) error {
	err := c.hooks.Do(ctx, call)
	c.metrics.observe("webhook", err)
	return err
}

// CheckWebhookURL checks an endpoint URL against the guard before it is
// stored.
func (c *Courier) CheckWebhookURL(raw string) error { return c.guard.CheckURL(raw) }

// Metrics counts delivery attempts by kind and outcome.
type Metrics struct {
	sent   *prometheus.CounterVec
	failed *prometheus.CounterVec
}

// NewMetrics registers recourse_notifications_sent_total and
// recourse_notifications_failed_total (by kind), and, when failing is not
// nil, the gauge recourse_webhook_endpoints_failing that it reports.
func NewMetrics(reg prometheus.Registerer, failing func() float64) (*Metrics, error) {
	m := &Metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recourse_notifications_sent_total", Help: "Notifications delivered, by kind (email, webhook).",
		}, []string{"kind"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recourse_notifications_failed_total", Help: "Failed delivery attempts, by kind (email, webhook); most are retried.",
		}, []string{"kind"}),
	}
	cs := []prometheus.Collector{m.sent, m.failed}
	if failing != nil {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "recourse_webhook_endpoints_failing",
			Help: "Enabled webhook endpoints whose recent calls keep failing (notify.failing_after consecutive failures), or disabled by 410 Gone.",
		}, failing))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, k := range []string{"email", "webhook"} {
		m.sent.WithLabelValues(k)
		m.failed.WithLabelValues(k)
	}
	return m, nil
}

func (m *Metrics) observe(kind string, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.failed.WithLabelValues(kind).Inc()
		return
	}
	m.sent.WithLabelValues(kind).Inc()
}

// Retry schedule defaults: 5s, 15s, 45s, … ×3 each time, at most 6h apart,
// each ±20% at random.
const (
	DefaultRetryBase = 5 * time.Second
	DefaultRetryMax  = 6 * time.Hour
)

// Backoff returns how long to wait after the attempt-th failed attempt
// (1-based): base·3^(attempt−1), capped at max, with ±20% jitter so that
// receivers recovering from an outage are not hit by every retry at once.
func Backoff(attempt int, base, max time.Duration) time.Duration {
	if base <= 0 {
		base = DefaultRetryBase
	}
	if max <= 0 {
		max = DefaultRetryMax
	}
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 3
	}
	d = min(d, max)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
