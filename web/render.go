package web

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/service"
)

var funcs = template.FuncMap{
	"when": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return "—"
			}
			return v.UTC().Format("2 Jan 2006 15:04 UTC")
		case *time.Time:
			if v == nil {
				return "never"
			}
			return v.UTC().Format("2 Jan 2006 15:04 UTC")
		}
		return ""
	},
	"iso":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"mask": func(c recourse.Channel) string { return service.MaskAddress(c.Kind, c.Address) },
	"kindName": func(k recourse.AuthenticatorKind) string {
		switch k {
		case recourse.AuthPassword:
			return "Password"
		case recourse.AuthTOTP:
			return "Authenticator app"
		case recourse.AuthWebAuthn:
			return "Passkey or security key"
		case recourse.AuthRecoveryCodes:
			return "Saved recovery codes"
		}
		return string(k)
	},
	"eventName": func(t recourse.AuthenticatorEventType) string {
		switch t {
		case recourse.AuthEventBound:
			return "added"
		case recourse.AuthEventUsed:
			return "used"
		case recourse.AuthEventReplaced:
			return "replaced"
		case recourse.AuthEventRevoked:
			return "removed"
		}
		return string(t)
	},
	"short": func(s string, n int) string {
		r := []rune(s)
		if len(r) <= n {
			return s
		}
		return string(r[:n]) + "…"
	},
}

// parsePages parses each page with the shared layout.
func parsePages() (map[string]*template.Template, error) {
	layout, err := fs.ReadFile(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "layout" {
			continue
		}
		body, err := fs.ReadFile(templateFS, f)
		if err != nil {
			return nil, err
		}
		t, err := template.New("layout").Funcs(funcs).Parse(string(layout))
		if err != nil {
			return nil, fmt.Errorf("layout: %w", err)
		}
		if _, err := t.Parse(string(body)); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// page is what every template receives.
type page struct {
	Title     string
	Principal *service.Principal
	Notice    string
	Error     string
	// Field names the input the error is about (for aria-invalid).
	Field     string
	RequestID string
	DevMode   bool
	Demo      bool
	Data      any
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	t, ok := s.pages[name]
	if !ok {
		s.log.Error("no such template", "name", name)
		http.Error(w, "Internal error", http.StatusInternalServerError)
		return
	}
	p.RequestID = requestIDFrom(r)
	p.DevMode, p.Demo = s.cfg.DevMode, s.cfg.Demo
	if p.Principal == nil {
		p.Principal = principalFrom(r)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		s.log.Error("render failed", "template", name, "err", err, "request_id", p.RequestID)
		http.Error(w, "Internal error. Request id: "+p.RequestID, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// renderError shows an error page with a safe message.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, err error) {
	s.logIfInternal(r, err)
	s.render(w, r, httpStatus(err), "error", page{Title: "Something went wrong", Error: recourse.ErrorMessage(err)})
}

// notices are the only messages a redirect can ask a page to show; the query
// carries a key, never text, so nothing can be injected.
var notices = map[string]string{
	"totp-added":          "Your authenticator app was added.",
	"passkey-added":       "Your passkey was added.",
	"channel-added":       "We sent a confirmation code. Enter it below to confirm.",
	"channel-confirmed":   "Confirmed. It can now receive notices and codes.",
	"code-sent":           "We sent a new code.",
	"contacts-saved":      "Your recovery contacts were saved.",
	"session-revoked":     "That session was signed out.",
	"signed-out":          "You are signed out.",
	"signed-out-all":      "All your sessions were signed out.",
	"confirmed":           "Thanks — you can make the change now.",
	"session-expired":     "Your session ended. Please sign in again.",
	"second-factor-ended": "That sign-in took too long. Please start again.",
}

func noticeFrom(r *http.Request) string { return notices[r.URL.Query().Get("notice")] }

func redirect(w http.ResponseWriter, r *http.Request, to string) {
	http.Redirect(w, r, to, http.StatusSeeOther)
}
