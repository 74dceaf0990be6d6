package web

import (
	"encoding/json"
	"net/http"

	"github.com/recourse/recourse"
)

// statusOf is the one table from domain error codes to HTTP statuses.
var statusOf = map[string]int{
	recourse.EINVALID:      http.StatusBadRequest,
	recourse.EUNAUTHORIZED: http.StatusUnauthorized,
	recourse.EFORBIDDEN:    http.StatusForbidden,
	recourse.ENOTFOUND:     http.StatusNotFound,
	recourse.ECONFLICT:     http.StatusConflict,
	recourse.ERATELIMIT:    http.StatusTooManyRequests,
	recourse.ESTEPUP:       http.StatusUnauthorized,
	recourse.EINTERNAL:     http.StatusInternalServerError,
}

// httpStatus maps an error to its status; unknown codes are internal errors.
func httpStatus(err error) int {
	if st, ok := statusOf[recourse.ErrorCode(err)]; ok {
		return st
	}
	return http.StatusInternalServerError
}

// logIfInternal logs an internal error with the request id; the caller then
// shows only the generic message and the id.
func (s *Server) logIfInternal(r *http.Request, err error) {
	if recourse.ErrorCode(err) == recourse.EINTERNAL {
		s.log.Error("internal error", "err", err, "route", r.Pattern, "request_id", requestIDFrom(r))
	}
}

// errorJSON is the JSON error envelope.
type errorJSON struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		Field     string `json:"field,omitempty"`
		RequestID string `json:"request_id"`
	} `json:"error"`
}

func (s *Server) writeJSONError(w http.ResponseWriter, r *http.Request, err error) {
	s.logIfInternal(r, err)
	var body errorJSON
	body.Error.Code = recourse.ErrorCode(err)
	body.Error.Message = recourse.ErrorMessage(err)
	if e, ok := err.(*recourse.Error); ok {
		body.Error.Field = e.Field
	}
	body.Error.RequestID = requestIDFrom(r)
	writeJSON(w, httpStatus(err), body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}
