// Package service holds Recourse's business rules: accounts and their
// directory facts, sign-in and sessions, authenticator enrolment, channels
// and recovery contacts. The web pages, the JSON API and the CLI all call it;
// it is the only writer to the Store.
package service

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/policy"
)

// SessionLifetime is how long a session at one assurance level lasts.
type SessionLifetime struct {
	// Absolute ends the session this long after authentication.
	Absolute time.Duration
	// Idle ends it after this long without activity; 0 means no idle limit.
	Idle time.Duration
}

// Config holds the service's tunables. Zero values take the defaults of
// DefaultConfig.
type Config struct {
	// SignInFailureLimit locks an account after this many consecutive
	// failed sign-ins (NIST SP 800-63B-4 §3.2.2 allows at most 100).
	SignInFailureLimit int
	// SignInRatePerMinute and SignInBurst bound sign-in attempts per client
	// IP address.
	SignInRatePerMinute int
	SignInBurst         int
	PasswordParams      credential.PasswordParams
	PasswordRules       credential.PasswordRules
	// Sessions maps an AAL to its lifetimes.
	Sessions map[int]SessionLifetime
	// PendingSignIn is how long the second-factor step may take.
	PendingSignIn time.Duration
	// ReauthWindow is how recent an authentication must be for sensitive
	// self-service (enrolling an authenticator, replacing recovery codes).
	ReauthWindow time.Duration
	// ChannelCodeTTL and ChannelCodeAttempts bound confirmation codes.
	ChannelCodeTTL      time.Duration
	ChannelCodeAttempts int
	// Issuer names the service in authenticator apps and mail.
	Issuer string
	// PublicURL is where people reach the pages; links in mail start with it.
	PublicURL string
}

// DefaultConfig returns the defaults: NIST SP 800-63B-4 session limits,
// OWASP's Argon2id minimum, ten failures before lock-out.
func DefaultConfig() Config {
	return Config{
		SignInFailureLimit:  10,
		SignInRatePerMinute: 30,
		SignInBurst:         20,
		PasswordParams:      credential.DefaultPasswordParams,
		PasswordRules:       credential.DefaultPasswordRules,
		Sessions: map[int]SessionLifetime{
			recourse.AAL1: {Absolute: 30 * 24 * time.Hour},
			recourse.AAL2: {Absolute: 24 * time.Hour, Idle: time.Hour},
			recourse.AAL3: {Absolute: 12 * time.Hour, Idle: 15 * time.Minute},
		},
		PendingSignIn:       5 * time.Minute,
		ReauthWindow:        15 * time.Minute,
		ChannelCodeTTL:      15 * time.Minute,
		ChannelCodeAttempts: 5,
		Issuer:              "Recourse",
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.SignInFailureLimit == 0 {
		c.SignInFailureLimit = d.SignInFailureLimit
	}
	if c.SignInRatePerMinute == 0 {
		c.SignInRatePerMinute = d.SignInRatePerMinute
	}
	if c.SignInBurst == 0 {
		c.SignInBurst = d.SignInBurst
	}
	if c.PasswordParams == (credential.PasswordParams{}) {
		c.PasswordParams = d.PasswordParams
	}
	if c.PasswordRules == (credential.PasswordRules{}) {
		c.PasswordRules = d.PasswordRules
	}
	if c.Sessions == nil {
		c.Sessions = d.Sessions
	}
	if c.PendingSignIn == 0 {
		c.PendingSignIn = d.PendingSignIn
	}
	if c.ReauthWindow == 0 {
		c.ReauthWindow = d.ReauthWindow
	}
	if c.ChannelCodeTTL == 0 {
		c.ChannelCodeTTL = d.ChannelCodeTTL
	}
	if c.ChannelCodeAttempts == 0 {
		c.ChannelCodeAttempts = d.ChannelCodeAttempts
	}
	if c.Issuer == "" {
		c.Issuer = d.Issuer
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://localhost:8080"
	}
	return c
}

// Validate checks the configuration; errors name the field.
func (c Config) Validate() error {
	if c.SignInFailureLimit < 1 || c.SignInFailureLimit > 100 {
		return fmt.Errorf("sign_in_failure_limit: must be between 1 and 100 (NIST SP 800-63B-4 §3.2.2), got %d", c.SignInFailureLimit)
	}
	if c.SignInRatePerMinute < 1 || c.SignInBurst < 1 {
		return errors.New("sign_in_rate_per_minute and sign_in_burst: must be positive")
	}
	if err := c.PasswordParams.Validate(); err != nil {
		return fmt.Errorf("password_params: %w", err)
	}
	if c.PasswordRules.MinLength < 8 || c.PasswordRules.MaxLength < 64 || c.PasswordRules.MaxLength < c.PasswordRules.MinLength {
		return errors.New("password_rules: the minimum length must be at least 8 and the maximum at least 64 (NIST SP 800-63B-4)")
	}
	for _, aal := range []int{recourse.AAL1, recourse.AAL2, recourse.AAL3} {
		l, ok := c.Sessions[aal]
		if !ok || l.Absolute <= 0 {
			return fmt.Errorf("sessions.aal%d: an absolute lifetime is required", aal)
		}
		if l.Idle < 0 || l.Idle > l.Absolute {
			return fmt.Errorf("sessions.aal%d: the idle timeout must be between 0 and the absolute lifetime", aal)
		}
	}
	if c.ChannelCodeAttempts < 1 || c.ChannelCodeAttempts > 10 {
		return errors.New("channel_code_attempts: must be between 1 and 10")
	}
	return nil
}

// Keys are the server secrets the service derives its keys from.
type Keys struct {
	// Master is at least 32 random bytes; every replica of a deployment
	// MUST share it.
	Master []byte
}

func (k Keys) derive(purpose string) ([]byte, error) {
	return hkdf.Key(sha256.New, k.Master, nil, "recourse "+purpose, 32)
}

// Service is the business layer.
type Service struct {
	store     recourse.Store
	clock     recourse.Clock
	cfg       Config
	log       *slog.Logger
	hasher    *credential.Hasher
	sealer    *credential.Sealer
	webauthn  *webauthn.WebAuthn
	mailer    Mailer
	ipLimit   *rateLimiter
	policy    atomic.Pointer[policy.Policy]
	scheduler Scheduler
	notify    notifier // delivery of mail and webhooks (notify.go)
	// requirements caches decoded request requirements (recovery.go).
	requirements requirementCache
	// routes caches the webhook endpoints events are routed to (notify.go).
	routes webhookRoutes
}

// Options wire the service's dependencies.
type Options struct {
	Store  recourse.Store
	Clock  recourse.Clock
	Config Config
	Keys   Keys
	Logger *slog.Logger
	// WebAuthn is the relying party; nil disables passkeys.
	WebAuthn *webauthn.WebAuthn
	// Mailer delivers mail; nil writes to the store's outbox.
	Mailer Mailer
	// Scheduler queues deferred workflow work; without it, "Can't sign
	// in?" is unavailable (the CLI needs none).
	Scheduler Scheduler
}

// New returns a Service.
func New(o Options) (*Service, error) {
	if o.Store == nil {
		return nil, errors.New("service: a store is required")
	}
	cfg := o.Config.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(o.Keys.Master) < 32 {
		return nil, errors.New("service: the master key must be at least 32 bytes")
	}
	hk, err := o.Keys.derive("hash")
	if err != nil {
		return nil, err
	}
	sk, err := o.Keys.derive("seal")
	if err != nil {
		return nil, err
	}
	hasher, err := credential.NewHasher(hk)
	if err != nil {
		return nil, err
	}
	sealer, err := credential.NewSealer(sk)
	if err != nil {
		return nil, err
	}
	s := &Service{
		store: o.Store, clock: o.Clock, cfg: cfg, log: o.Logger,
		hasher: hasher, sealer: sealer, webauthn: o.WebAuthn, mailer: o.Mailer, scheduler: o.Scheduler,
	}
	if s.clock == nil {
		s.clock = recourse.SystemClock{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.mailer == nil {
		s.mailer = OutboxMailer{}
	}
	s.ipLimit = newRateLimiter(float64(cfg.SignInRatePerMinute)/60, cfg.SignInBurst, 100_000)
	return s, nil
}

// Config returns the effective configuration.
func (s *Service) Config() Config { return s.cfg }

// Store returns the store, for read-only use by the web layer's health check.
func (s *Service) Store() recourse.Store { return s.store }

func (s *Service) now() time.Time { return s.clock.Now().UTC() }

// Meta describes where a request came from; it is recorded with every
// lifecycle event and audit event.
type Meta struct {
	IP        string
	UserAgent string
	// RequestID ties the audit events of one request together (the web
	// layer's X-Request-Id).
	RequestID string
	// Channel is how the request arrived; empty means the system itself.
	Channel recourse.AuditChannel
	// Actor, when set, is who acts (an administrator at the CLI, the
	// system); otherwise the account the action is about acts for itself.
	Actor recourse.AuditActor
}

// internal wraps an unexpected error so it is logged but never shown.
func internal(op string, err error) error {
	if err == nil {
		return nil
	}
	var re *recourse.Error
	if errors.As(err, &re) {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}
