package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/service"
)

// decodeStrict decodes JSON, refusing unknown fields and trailing data.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil || dec.More() {
		return recourse.Errorf(recourse.EINVALID, "The request body is not the expected JSON.")
	}
	return nil
}

// outboxPage shows mail kept instead of sent. Development and demo only.
func (s *Server) outboxPage(w http.ResponseWriter, r *http.Request) {
	msgs, err := s.svc.Store().OutboxMessages(r.Context(), 100)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "outbox", page{Title: "Outbox", Data: msgs})
}

type demoRow struct {
	Username    string
	DisplayName string
	Role        string
	Code        string
	Secret      string
}

// demoPage lists the demo accounts with the current code of each one's demo
// authenticator app, so the demo works without a phone. Demo only.
func (s *Server) demoPage(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.Demo {
		http.NotFound(w, r)
		return
	}
	users, err := s.svc.DemoUsers(r.Context())
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	var rows []demoRow
	for _, u := range users {
		row := demoRow{Username: u.Username, DisplayName: u.DisplayName, Role: u.Role, Secret: u.TOTPSecret}
		if u.TOTPSecret != "" {
			row.Code, _ = credential.TOTPCode(u.TOTPSecret, time.Now())
		}
		rows = append(rows, row)
	}
	s.render(w, r, http.StatusOK, "demo", page{Title: "Demo accounts", Data: map[string]any{"Rows": rows, "Password": service.DemoPassword}})
}
