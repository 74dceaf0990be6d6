// Package web serves Recourse over HTTP: the server-rendered pages, health
// and readiness, Prometheus metrics, and (in development and demo mode) the
// mail outbox. Handlers translate HTTP to service calls and back; they hold
// no business rules.
package web

import (
	"context"
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/service"
)

//go:embed static
var staticFS embed.FS

//go:embed templates
var templateFS embed.FS

// Config controls the web layer.
type Config struct {
	// DevMode exposes /dev/outbox and /dev/demo and marks pages as a
	// development instance.
	DevMode bool
	// Demo adds the demo banner and page.
	Demo bool
	// SecureTransport is true when clients reach the server over HTTPS
	// (directly or through a TLS-terminating proxy); it enables HSTS.
	SecureTransport bool
	// TrustedProxies are the addresses whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// Version is shown in /healthz and metrics.
	Version string
}

// Server is the HTTP face of the service.
type Server struct {
	svc     *service.Service
	cfg     Config
	log     *slog.Logger
	reg     *prometheus.Registry
	metrics *metrics
	pages   map[string]*template.Template
	handler http.Handler
	// now is the clock used for display (countdowns, "ago").
	now func() time.Time
}

// New builds the server and its routes.
func New(svc *service.Service, cfg Config, log *slog.Logger, reg *prometheus.Registry) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s := &Server{svc: svc, cfg: cfg, log: log, reg: reg, now: time.Now}
	m, err := newMetrics(reg, cfg.Version)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	if s.pages, err = parsePages(); err != nil {
		return nil, err
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the root handler with all middleware applied.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheStatic(http.FileServerFS(static))))
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/static/favicon.svg", http.StatusMovedPermanently)
	})

	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", s.metricsHandler())

	mux.HandleFunc("GET /{$}", s.home)
	mux.HandleFunc("GET /signin", s.signinPage)
	mux.HandleFunc("POST /signin", s.signinSubmit)
	mux.HandleFunc("GET /signin/second-factor", s.secondFactorPage)
	mux.HandleFunc("POST /signin/totp", s.secondFactorTOTP)
	mux.HandleFunc("POST /signin/recovery-code", s.secondFactorRecoveryCode)
	mux.HandleFunc("POST /signin/webauthn/begin", s.secondFactorWebAuthnBegin)
	mux.HandleFunc("POST /signin/webauthn/finish", s.secondFactorWebAuthnFinish)
	mux.HandleFunc("POST /signout", s.signout)

	mux.HandleFunc("GET /account", s.requireSignIn(s.accountPage))
	mux.HandleFunc("GET /account/confirm", s.requireSignIn(s.confirmPage))
	mux.HandleFunc("POST /account/confirm", s.requireSignIn(s.confirmSubmit))
	mux.HandleFunc("POST /account/totp", s.requireSignIn(s.totpBegin))
	mux.HandleFunc("POST /account/totp/confirm", s.requireSignIn(s.totpConfirm))
	mux.HandleFunc("POST /account/passkeys/begin", s.requireSignIn(s.passkeyBegin))
	mux.HandleFunc("POST /account/passkeys/finish", s.requireSignIn(s.passkeyFinish))
	mux.HandleFunc("POST /account/recovery-codes", s.requireSignIn(s.recoveryCodes))
	mux.HandleFunc("POST /account/channels", s.requireSignIn(s.channelAdd))
	mux.HandleFunc("POST /account/channels/{id}/confirm", s.requireSignIn(s.channelConfirm))
	mux.HandleFunc("POST /account/channels/{id}/resend", s.requireSignIn(s.channelResend))
	mux.HandleFunc("POST /account/recovery-contacts", s.requireSignIn(s.recoveryContacts))
	mux.HandleFunc("POST /account/sessions/{id}/revoke", s.requireSignIn(s.sessionRevoke))
	mux.HandleFunc("POST /account/sessions/revoke-all", s.requireSignIn(s.sessionRevokeAll))

	s.auditRoutes(mux)
	s.workflowRoutes(mux)
	s.extraRoutes(mux)
	s.adminRoutes(mux)
	s.apiRoutes(mux)

	if s.cfg.DevMode || s.cfg.Demo {
		mux.HandleFunc("GET /dev/outbox", s.outboxPage)
		mux.HandleFunc("GET /dev/demo", s.demoPage)
	}

	var h http.Handler = mux
	h = http.NewCrossOriginProtection().Handler(h)
	h = s.securityHeaders(h)
	h = s.instrument(mux, h)
	h = s.recoverPanics(h)
	h = s.requestID(h)
	return h
}

// cacheStatic lets browsers keep assets briefly; they change with releases.
func cacheStatic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": s.cfg.Version})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.svc.Store().Ping(ctx); err != nil {
		s.log.Error("readiness check failed", "err", err, "request_id", requestIDFrom(r))
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "database": "unreachable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "database": "ok"})
}

// clientIP is the caller's address: the peer, or, behind a trusted proxy,
// the nearest untrusted address in X-Forwarded-For.
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	peer = peer.Unmap()
	if !s.trusted(peer) {
		return peer.String()
	}
	hops := r.Header.Values("X-Forwarded-For")
	var addrs []string
	for _, h := range hops {
		for _, a := range strings.Split(h, ",") {
			if a = strings.TrimSpace(a); a != "" {
				addrs = append(addrs, a)
			}
		}
	}
	for i := len(addrs) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(addrs[i])
		if err != nil {
			break
		}
		a = a.Unmap()
		if !s.trusted(a) {
			return a.String()
		}
	}
	return peer.String()
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (s *Server) meta(r *http.Request) service.Meta {
	return service.Meta{IP: s.clientIP(r), UserAgent: r.UserAgent(), RequestID: requestIDFrom(r), Channel: recourse.ViaWeb}
}
