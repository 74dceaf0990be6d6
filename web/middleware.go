package web

import (
	"context"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/recourse/recourse"
)

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyPrincipal
)

// requestID tags each request with an id, echoed in X-Request-Id and in
// every log line and error page, so a user's report finds its log lines.
// It is a recourse.NewID: every audit event carries it and the log has an
// index of them (the filter by request), and ids in creation order land
// on that index's last pages, where random ones put each event on a
// random page of an index as large as the log (docs/benchmarks.md,
// change 58). The time in the id is what the response's Date says.
func (s *Server) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := recourse.NewID("req_")
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keyRequestID, id)))
	})
}

func requestIDFrom(r *http.Request) string {
	id, _ := r.Context().Value(keyRequestID).(string)
	return id
}

func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic serving request", "panic", v, "stack", string(debug.Stack()), "request_id", requestIDFrom(r))
				http.Error(w, "Internal error. Request id: "+requestIDFrom(r), http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// contentSecurityPolicy allows no inline script or style, no framing, and
// scripts and styles only from this origin.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func (s *Server) securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
		if s.cfg.SecureTransport {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		next.ServeHTTP(w, r)
	})
}

// statusWriter records the status code for logs and metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument logs each request and feeds the metrics, labelled by route
// pattern (never by raw path, which would let clients create series).
func (s *Server) instrument(mux *http.ServeMux, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		_, pattern := mux.Handler(r)
		if pattern == "" {
			pattern = "unmatched"
		}
		d := time.Since(start)
		s.metrics.observe(pattern, sw.status, d)
		if pattern == "GET /healthz" || pattern == "GET /readyz" || pattern == "GET /metrics" || pattern == "GET /static/" {
			return
		}
		s.log.Info("request", "method", r.Method, "route", pattern, "status", sw.status,
			"duration_ms", d.Milliseconds(), "ip", s.clientIP(r), "request_id", requestIDFrom(r))
	})
}
