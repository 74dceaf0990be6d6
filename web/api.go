package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/recourse/recourse"
	apiv1 "github.com/recourse/recourse/client"
	"github.com/recourse/recourse/service"
)

// The JSON API under /api/v1 (docs/api.md). Every endpoint is one entry of
// a route table: its method and path, who may call it, the scope an API key
// needs, and a handler that turns the request into a service call and the
// result into one of the wire types of package client. The OpenAPI document
// (openapi.json) lists exactly these routes; TestOpenAPIMatchesRoutes keeps
// both in step.

const (
	apiPrefix = "/api/v1"
	// apiTimeout bounds one call's work; the server's write timeout bounds
	// the answer.
	apiTimeout = 20 * time.Second
	// apiMaxBody bounds request bodies; an account import may be larger.
	apiMaxBody   = 64 << 10
	apiMaxImport = 8 << 20
	// recoverySecretHeader carries a self-service request's secret on every
	// follow-up call (the API's twin of the browser's cookie).
	recoverySecretHeader = "Recourse-Recovery-Secret"
	// idempotencyHeader makes a write safe to retry.
	idempotencyHeader = "Idempotency-Key"
)

// apiAuth says who may call a route.
type apiAuth int

const (
	// apiPublic routes take no credentials (self-service, the checkpoint,
	// the OpenAPI document).
	apiPublic apiAuth = iota
	// apiCaller routes need an API key or a signed-in session.
	apiCaller
)

// apiRoute is one endpoint of the JSON API.
type apiRoute struct {
	method string
	// path is a net/http pattern path, e.g. /api/v1/accounts/{id}.
	path string
	auth apiAuth
	// scope is what an API key needs (signed-in people hold every scope;
	// the service's own rules still apply to them). Empty on public routes
	// and where the service alone decides (rotating one's own key).
	scope string
	// maxBody overrides apiMaxBody; ndjson also accepts JSON lines.
	maxBody int64
	ndjson  bool
	handle  func(c *apiCall) (*apiReply, error)
}

// apiCall is one request as a handler sees it.
type apiCall struct {
	r    *http.Request
	ctx  context.Context
	p    *service.APIPrincipal // nil on public routes
	meta service.Meta
	body []byte
}

// apiReply is a handler's answer: Body is encoded as JSON unless Raw is
// set.
type apiReply struct {
	Status      int
	Body        any
	ETag        string
	Location    string
	Raw         []byte
	ContentType string
}

func okReply(body any) (*apiReply, error) { return &apiReply{Status: http.StatusOK, Body: body}, nil }

// apiRouteTable is every route of the API but the audit log's (see
// auditAPIRoutes).
func (s *Server) apiRouteTable() []apiRoute {
	return slices.Concat(
		[]apiRoute{
			{method: "GET", path: "/api/v1/openapi.json", auth: apiPublic, handle: s.apiOpenAPI},
			{method: "GET", path: "/api/v1/me", auth: apiCaller, handle: s.apiMe},
			{method: "GET", path: "/api/v1/scopes", auth: apiPublic, handle: s.apiScopes},
		},
		s.apiAccountRoutes(),
		s.apiRecoveryRoutes(),
		s.apiApprovalRoutes(),
		s.apiSessionRoutes(),
		s.apiKeyRoutes(),
		s.apiPolicyRoutes(),
		s.apiWebhookRoutes(),
		s.apiSelfServiceRoutes(),
	)
}

// apiRoutes registers the API, its catch-all (JSON 404 and 405 answers)
// and the API reference page.
func (s *Server) apiRoutes(mux *http.ServeMux) {
	s.registerAPI(mux, s.apiRouteTable())
	mux.HandleFunc(apiPrefix+"/", s.apiUnmatched(mux))
	mux.HandleFunc("GET /api/docs", s.apiDocsPage)
}

func (s *Server) registerAPI(mux *http.ServeMux, routes []apiRoute) {
	for _, rt := range routes {
		mux.Handle(rt.method+" "+rt.path, s.apiHandler(rt))
	}
}

// apiUnmatched answers paths under /api/v1 that no route serves: 405 with
// Allow when another method would match, 404 otherwise. CORS stays closed:
// a preflight (OPTIONS) gets 405 and no Access-Control-* header.
func (s *Server) apiUnmatched(mux *http.ServeMux) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != "" && pattern != apiPrefix+"/" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			var body apiv1.ErrorBody
			body.Error = apiv1.ErrorDetail{Code: "method_not_allowed", Message: "This path does not accept " + r.Method + ".", RequestID: requestIDFrom(r)}
			writeJSON(w, http.StatusMethodNotAllowed, body)
			return
		}
		s.writeJSONError(w, r, recourse.Errorf(recourse.ENOTFOUND, "No such API endpoint."))
	}
}

// apiHandler wraps a route: timeout, body limits and content type, the
// caller and its scope, the audit record of a key's call, idempotency, and
// the JSON answer.
func (s *Server) apiHandler(rt apiRoute) http.Handler {
	maxBody := rt.maxBody
	if maxBody == 0 {
		maxBody = apiMaxBody
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
		defer cancel()
		r = r.WithContext(ctx)
		c := &apiCall{r: r, ctx: ctx, meta: s.meta(r)}
		c.meta.Channel = recourse.ViaAPI
		fail := func(err error) { s.writeAPIReply(w, r, nil, err) }
		body, err := readAPIBody(w, r, maxBody, rt.ndjson)
		if err != nil {
			fail(err)
			return
		}
		c.body = body
		if rt.auth == apiCaller {
			p, err := s.apiPrincipal(r, c.meta)
			if err != nil {
				fail(err)
				return
			}
			refused := p.Require(rt.scope)
			if err := s.svc.RecordAPICall(ctx, p, r.Method, rt.path, refused, c.meta); err != nil {
				fail(err)
				return
			}
			if refused != nil {
				fail(refused)
				return
			}
			c.p = p
		}
		key := r.Header.Get(idempotencyHeader)
		if key == "" || r.Method == http.MethodGet || r.Method == http.MethodHead {
			reply, err := rt.handle(c)
			s.writeAPIReply(w, r, reply, err)
			return
		}
		caller, hash := s.idempotencyScope(c)
		replay, err := s.svc.BeginIdempotent(ctx, caller, key, hash)
		if err != nil {
			fail(err)
			return
		}
		if replay != nil {
			w.Header().Set("Idempotent-Replayed", "true")
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(replay.Status)
			_, _ = w.Write(replay.Body)
			return
		}
		rec := newBufferedResponse()
		reply, err := rt.handle(c)
		s.writeAPIReply(rec, r, reply, err)
		// A server error or a rate limit may clear on retry: forget the key
		// so the retry runs. Anything else is the answer for good.
		if rec.status >= 500 || rec.status == http.StatusTooManyRequests {
			if err := s.svc.ReleaseIdempotent(context.WithoutCancel(ctx), caller, key); err != nil {
				s.log.Error("release idempotency key", "err", err, "request_id", requestIDFrom(r))
			}
		} else if err := s.svc.FinishIdempotent(context.WithoutCancel(ctx), caller, key, rec.status, rec.body.Bytes()); err != nil {
			s.log.Error("store idempotent response", "err", err, "request_id", requestIDFrom(r))
		}
		rec.copyTo(w)
	})
}

func (s *Server) writeAPIReply(w http.ResponseWriter, r *http.Request, reply *apiReply, err error) {
	if err != nil {
		if recourse.ErrorCode(err) == recourse.EUNAUTHORIZED {
			w.Header().Set("WWW-Authenticate", `Bearer realm="recourse"`)
		}
		s.writeJSONError(w, r, err)
		return
	}
	if reply.ETag != "" {
		w.Header().Set("ETag", reply.ETag)
	}
	if reply.Location != "" {
		w.Header().Set("Location", reply.Location)
	}
	if reply.Raw != nil {
		w.Header().Set("Content-Type", reply.ContentType)
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(reply.Status)
		_, _ = w.Write(reply.Raw)
		return
	}
	if reply.Body == nil {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(reply.Status)
		return
	}
	writeJSON(w, reply.Status, reply.Body)
}

// apiPrincipal authenticates the caller: an API key in Authorization:
// Bearer, else the session cookie.
func (s *Server) apiPrincipal(r *http.Request, meta service.Meta) (*service.APIPrincipal, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, found := strings.Cut(h, " ")
		if !found || !strings.EqualFold(scheme, "Bearer") {
			return nil, recourse.Errorf(recourse.EUNAUTHORIZED, "Send the API key as Authorization: Bearer rcs_….")
		}
		return s.svc.AuthenticateAPIKey(r.Context(), strings.TrimSpace(token), meta)
	}
	if tok := sessionToken(r); tok != "" {
		return s.svc.APISession(r.Context(), tok)
	}
	return nil, recourse.Errorf(recourse.EUNAUTHORIZED, "Authenticate with an API key (Authorization: Bearer rcs_…) or a signed-in session.")
}

// idempotencyScope names whose key space an Idempotency-Key lives in and
// hashes what the request asks, so a key reused for another request is
// refused. Public calls are scoped to the client address and the recovery
// secret they carry.
func (s *Server) idempotencyScope(c *apiCall) (caller string, hash []byte) {
	if c.p != nil {
		caller = c.p.IdempotencyCaller()
	} else {
		sum := sha256.Sum256([]byte(c.meta.IP + "\x00" + c.r.Header.Get(recoverySecretHeader)))
		caller = "public:" + hex.EncodeToString(sum[:16])
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", c.r.Method, c.r.URL.Path, c.r.URL.RawQuery, c.r.Header.Get("If-Match"))
	h.Write(c.body)
	return caller, h.Sum(nil)
}

// readAPIBody reads a bounded body, which must be JSON (or JSON lines where
// the route allows) when present.
func readAPIBody(w http.ResponseWriter, r *http.Request, max int64, ndjson bool) ([]byte, error) {
	if r.Body == nil || r.Method == http.MethodGet || r.Method == http.MethodHead {
		return nil, nil
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, recourse.Errorf(recourse.EINVALID, "The request body is larger than %d bytes.", max)
		}
		return nil, recourse.Errorf(recourse.EINVALID, "The request body could not be read.")
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !(mt == "application/json" || (ndjson && mt == "application/x-ndjson")) {
		return nil, recourse.Errorf(recourse.EINVALID, "Send the body as JSON with Content-Type: application/json.")
	}
	return b, nil
}

// decodeStrict decodes one JSON object into v, refusing unknown fields,
// wrong types and trailing data. An empty body is an error when required,
// else leaves v as it is.
func decodeAPIBody(body []byte, v any, required bool) error {
	if len(bytes.TrimSpace(body)) == 0 || string(bytes.TrimSpace(body)) == "null" {
		if required {
			return recourse.Errorf(recourse.EINVALID, "A JSON body is required.")
		}
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return recourse.Errorf(recourse.EINVALID, "The request body holds more than one JSON value.")
	}
	return nil
}

// jsonError turns a decoding error into a safe, useful message.
func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return recourse.Errorf(recourse.EINVALID, "The request body must be a JSON object.")
		}
		return recourse.FieldError(clipText(field, 64), "has the wrong type")
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return recourse.Errorf(recourse.EINVALID, "The request body is not valid JSON.")
	}
	if name, found := strings.CutPrefix(err.Error(), "json: unknown field "); found {
		if f, err := strconv.Unquote(name); err == nil {
			return recourse.FieldError(clipText(f, 64), "is not a field of this request")
		}
	}
	var timeErr *time.ParseError
	if errors.As(err, &timeErr) {
		return recourse.Errorf(recourse.EINVALID, "A time in the request body is not in RFC 3339 form like 2026-11-26T09:00:00Z.")
	}
	return recourse.Errorf(recourse.EINVALID, "The request body could not be decoded.")
}

func clipText(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "?")
	}
	if len(s) > n {
		s = s[:n]
	}
	return s
}

// ---- pagination ----

const (
	pageDefault = 50
	pageMax     = 500
)

// pageParams reads limit and cursor. A cursor is opaque to clients: the
// base64 of a sort key this API returned.
func pageParams(q url.Values) (limit int, after string, err error) {
	limit = pageDefault
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > pageMax {
			return 0, "", recourse.FieldError("limit", "must be between 1 and %d", pageMax)
		}
		limit = n
	}
	if v := q.Get("cursor"); v != "" {
		b, err := base64.RawURLEncoding.Strict().DecodeString(v)
		if err != nil || len(b) == 0 || len(b) > 512 || !utf8.Valid(b) || pageCursor(string(b)) != v {
			return 0, "", recourse.FieldError("cursor", "is not a cursor this API returned")
		}
		after = string(b)
	}
	return limit, after, nil
}

func pageCursor(key string) string { return base64.RawURLEncoding.EncodeToString([]byte(key)) }

// paginate returns the page of items after the cursor key, in the order of
// their keys (which must be unique), and the next cursor when more remain.
func paginate[T any](items []T, key func(T) string, after string, limit int) ([]T, string) {
	slices.SortStableFunc(items, func(a, b T) int { return strings.Compare(key(a), key(b)) })
	start, _ := slices.BinarySearchFunc(items, after, func(it T, k string) int { return strings.Compare(key(it), k) })
	if after != "" && start < len(items) && key(items[start]) == after {
		start++
	}
	items = items[start:]
	if len(items) <= limit {
		return items, ""
	}
	return items[:limit], pageCursor(key(items[limit-1]))
}

// newestFirst is a sort key that orders by time descending, then id.
func newestFirst(t time.Time, id string) string {
	return fmt.Sprintf("%019d|%s", int64(1<<62)-t.UnixNano(), id)
}

// oldestFirst is a sort key that orders by time ascending, then id.
func oldestFirst(t time.Time, id string) string {
	return fmt.Sprintf("%019d|%s", t.UnixNano()+int64(1<<62), id)
}

// ---- ETags ----

// versionETag is the strong ETag of a versioned resource.
func versionETag(version int64) string { return `"v` + strconv.FormatInt(version, 10) + `"` }

// ifMatchVersion reads If-Match for a versioned resource: 0 when absent or
// "*", else the version it names.
func ifMatchVersion(r *http.Request) (int64, error) {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	if v == "" || v == "*" {
		return 0, nil
	}
	if n, found := strings.CutPrefix(v, `"v`); found && strings.HasSuffix(n, `"`) {
		if ver, err := strconv.ParseInt(strings.TrimSuffix(n, `"`), 10, 64); err == nil && ver > 0 {
			return ver, nil
		}
	}
	return 0, recourse.FieldError("If-Match", "must be an ETag this API returned, like \"v3\"")
}

// ---- small endpoints ----

func (s *Server) apiMe(c *apiCall) (*apiReply, error) {
	me := apiv1.Me{Via: "session", Account: summary(c.p.Account), Roles: nonNil(c.p.Account.Roles), Scopes: c.p.Scopes()}
	if c.p.Key != nil {
		me.Via = "api_key"
		k := apiKeyJSON(c.p.Key, s.svc)
		me.Key = &k
	}
	return okReply(me)
}

func (s *Server) apiScopes(c *apiCall) (*apiReply, error) {
	out := apiv1.ScopeList{Scopes: make([]apiv1.ScopeInfo, 0, len(service.Scopes))}
	for _, sc := range service.Scopes {
		out.Scopes = append(out.Scopes, apiv1.ScopeInfo{Name: sc.Name, Description: sc.Description, Roles: sc.Roles})
	}
	return okReply(out)
}

func summary(a *recourse.Account) apiv1.AccountSummary {
	return apiv1.AccountSummary{ID: a.ID, Username: a.Username, DisplayName: a.DisplayName}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// bufferedResponse keeps an answer so it can be stored for idempotent
// retries before it is sent.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newBufferedResponse() *bufferedResponse { return &bufferedResponse{header: http.Header{}} }

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *bufferedResponse) copyTo(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	if b.status == 0 {
		b.status = http.StatusOK
	}
	w.WriteHeader(b.status)
	_, _ = w.Write(b.body.Bytes())
}
