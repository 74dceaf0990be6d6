// Package client is the Go client of Recourse's JSON API (/api/v1,
// docs/api.md). The end-to-end tests and the CLI's remote mode use it.
//
//	c, err := client.New("https://recourse.example.com", client.WithAPIKey(os.Getenv("RECOURSE_API_KEY")))
//	r, err := c.OpenRecovery(ctx, client.OpenRecoveryRequest{Account: "d.chen", Action: "password.reset", Reason: "forgot_password"})
//
// Errors from the server are *Error values carrying the API's error code;
// test them with IsCode. The package depends only on the standard library
// and the domain's account JSON shape.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/recourse/recourse"
)

// Error is an error answer of the API.
type Error struct {
	// Status is the HTTP status.
	Status int
	ErrorDetail
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("recourse api: %d %s: %s", e.Status, e.Code, e.Message)
	if e.Field != "" {
		msg += " (" + e.Field + ")"
	}
	if e.RequestID != "" {
		msg += " [request " + e.RequestID + "]"
	}
	return msg
}

// IsCode reports whether err is an API error with the code ("not_found",
// "forbidden", "conflict", …).
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// Client calls one Recourse server. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	hc        *http.Client
	apiKey    string
	session   string
	userAgent string
	retries   int
	backoff   time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithAPIKey authenticates with an API key (Authorization: Bearer rcs_…).
func WithAPIKey(key string) Option { return func(c *Client) { c.apiKey = key } }

// WithSession authenticates as a signed-in person: the token of their
// session cookie.
func WithSession(token string) Option { return func(c *Client) { c.session = token } }

// WithHTTPClient sets the HTTP client (timeouts, TLS, proxies). The default
// has a 30-second timeout.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithUserAgent names the integration in the server's audit log.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// WithRetries retries a call up to n times after a network error, a 5xx or
// a 429 answer, waiting backoff, then twice as long each time. Writes are
// retried with the same Idempotency-Key, so a retry never applies a change
// twice.
func WithRetries(n int, backoff time.Duration) Option {
	return func(c *Client) { c.retries, c.backoff = n, backoff }
}

// New returns a client for the server at baseURL (scheme and host, e.g.
// https://recourse.example.com).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: %q is not an http(s) URL", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	c := &Client{base: u, hc: &http.Client{Timeout: 30 * time.Second}, userAgent: "recourse-go-client"}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// CallOption adjusts one call.
type CallOption func(*call)

type call struct {
	idempotencyKey string
	ifMatch        string
	secret         string
	replayed       *bool
	etag           *string
}

// IdempotencyKey sends the write with this Idempotency-Key: retried with
// the same key within 24 hours, it answers what the first call answered.
func IdempotencyKey(key string) CallOption { return func(c *call) { c.idempotencyKey = key } }

// IfMatch makes the write conditional on the resource's ETag.
func IfMatch(etag string) CallOption { return func(c *call) { c.ifMatch = etag } }

// IfVersion makes the write conditional on the resource's version (the
// Version field of an Account, Recovery or APIKey).
func IfVersion(v int64) CallOption { return IfMatch(`"v` + strconv.FormatInt(v, 10) + `"`) }

// IfChange makes a vote conditional on the change digest the voter read.
func IfChange(digest string) CallOption { return IfMatch(`"` + digest + `"`) }

// Replayed reports, after the call, whether the server answered from its
// idempotency record (the write had already been done).
func Replayed(out *bool) CallOption { return func(c *call) { c.replayed = out } }

// ETag stores the answer's ETag.
func ETag(out *string) CallOption { return func(c *call) { c.etag = out } }

func withSecret(secret string) CallOption { return func(c *call) { c.secret = secret } }

func newIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// do sends one request and decodes the answer into out (unless nil).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any, opts ...CallOption) error {
	var o call
	for _, f := range opts {
		f(&o)
	}
	var body []byte
	contentType := ""
	switch v := in.(type) {
	case nil:
	case rawBody:
		body, contentType = v.data, v.contentType
	default:
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("client: encode request: %w", err)
		}
		contentType = "application/json"
	}
	write := method != http.MethodGet && method != http.MethodHead
	if write && o.idempotencyKey == "" && c.retries > 0 {
		o.idempotencyKey = newIdempotencyKey()
	}
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	wait := c.backoff
	for attempt := 0; ; attempt++ {
		err := c.once(ctx, method, u.String(), body, contentType, out, &o)
		if err == nil || attempt >= c.retries || !retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func retryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Status >= 500 || e.Status == http.StatusTooManyRequests
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, errDecode)
}

var errDecode = errors.New("client: undecodable answer")

func (c *Client) once(ctx context.Context, method, target string, body []byte, contentType string, out any, o *call) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	} else if c.session != "" {
		req.AddCookie(&http.Cookie{Name: "__Host-recourse_session", Value: c.session})
	}
	if o.idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", o.idempotencyKey)
	}
	if o.ifMatch != "" {
		req.Header.Set("If-Match", o.ifMatch)
	}
	if o.secret != "" {
		req.Header.Set("Recourse-Recovery-Secret", o.secret)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("client: read answer: %w", err)
	}
	if o.replayed != nil {
		*o.replayed = resp.Header.Get("Idempotent-Replayed") == "true"
	}
	if o.etag != nil {
		*o.etag = resp.Header.Get("ETag")
	}
	if resp.StatusCode >= 400 {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error.Code == "" {
			return &Error{Status: resp.StatusCode, ErrorDetail: ErrorDetail{Code: "http_" + strconv.Itoa(resp.StatusCode),
				Message: http.StatusText(resp.StatusCode), RequestID: resp.Header.Get("X-Request-Id")}}
		}
		return &Error{Status: resp.StatusCode, ErrorDetail: eb.Error}
	}
	switch v := out.(type) {
	case nil:
		return nil
	case *[]byte:
		*v = data
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%w: %s %s: %v", errDecode, method, req.URL.Path, err)
	}
	return nil
}

// rawBody is a body sent as is.
type rawBody struct {
	data        []byte
	contentType string
}

func esc(s string) string { return url.PathEscape(s) }

// Page selects a page of a list.
type Page struct {
	Limit  int
	Cursor string
}

func (p Page) query() url.Values {
	q := url.Values{}
	if p.Limit > 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.Cursor != "" {
		q.Set("cursor", p.Cursor)
	}
	return q
}

// all walks every page of a list.
func all[T any](ctx context.Context, list func(ctx context.Context, p Page) ([]T, string, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		p := Page{Limit: 200}
		for {
			items, next, err := list(ctx, p)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			p.Cursor = next
		}
	}
}

// ---- the caller ----

// Me describes the caller.
func (c *Client) Me(ctx context.Context) (*Me, error) {
	var out Me
	return &out, c.do(ctx, "GET", "/api/v1/me", nil, nil, &out)
}

// Scopes lists every scope a key can carry.
func (c *Client) Scopes(ctx context.Context) ([]ScopeInfo, error) {
	var out ScopeList
	err := c.do(ctx, "GET", "/api/v1/scopes", nil, nil, &out)
	return out.Scopes, err
}

// OpenAPI returns the server's OpenAPI document.
func (c *Client) OpenAPI(ctx context.Context) ([]byte, error) {
	var out []byte
	return out, c.do(ctx, "GET", "/api/v1/openapi.json", nil, nil, &out)
}

// ---- accounts ----

// ListAccounts returns a page of accounts whose id, username or display
// name starts with query (empty: all).
func (c *Client) ListAccounts(ctx context.Context, query string, p Page) (*AccountList, error) {
	q := p.query()
	if query != "" {
		q.Set("q", query)
	}
	var out AccountList
	return &out, c.do(ctx, "GET", "/api/v1/accounts", q, nil, &out)
}

// Accounts walks every account matching query.
func (c *Client) Accounts(ctx context.Context, query string) iter.Seq2[Account, error] {
	return all(ctx, func(ctx context.Context, p Page) ([]Account, string, error) {
		l, err := c.ListAccounts(ctx, query, p)
		if err != nil {
			return nil, "", err
		}
		return l.Accounts, l.NextCursor, nil
	})
}

// Account reads one account.
func (c *Client) Account(ctx context.Context, id string, opts ...CallOption) (*Account, error) {
	var out Account
	return &out, c.do(ctx, "GET", "/api/v1/accounts/"+esc(id), nil, nil, &out, opts...)
}

// CreateAccount creates an account.
func (c *Client) CreateAccount(ctx context.Context, a recourse.AccountJSON, opts ...CallOption) (*Account, error) {
	var out Account
	return &out, c.do(ctx, "POST", "/api/v1/accounts", nil, a, &out, opts...)
}

// UpdateAccount replaces an account's facts, provided it is still at
// version (the Version of the account read).
func (c *Client) UpdateAccount(ctx context.Context, a recourse.AccountJSON, version int64, opts ...CallOption) (*Account, error) {
	var out Account
	return &out, c.do(ctx, "PUT", "/api/v1/accounts/"+esc(a.ID), nil, a, &out, append(opts, IfVersion(version))...)
}

// ImportAccounts creates or updates accounts, all or nothing.
func (c *Client) ImportAccounts(ctx context.Context, accounts []recourse.AccountJSON, opts ...CallOption) (*ImportResult, error) {
	var out ImportResult
	return &out, c.do(ctx, "POST", "/api/v1/accounts/import", nil, accounts, &out, opts...)
}

// ImportAccountsJSONL imports accounts from JSON lines or a JSON array as
// read from a file.
func (c *Client) ImportAccountsJSONL(ctx context.Context, data []byte, opts ...CallOption) (*ImportResult, error) {
	var out ImportResult
	return &out, c.do(ctx, "POST", "/api/v1/accounts/import", nil, rawBody{data, "application/x-ndjson"}, &out, opts...)
}

// Authenticators lists an account's authenticators (no secrets).
func (c *Client) Authenticators(ctx context.Context, accountID string) ([]Authenticator, error) {
	var out AuthenticatorList
	err := c.do(ctx, "GET", "/api/v1/accounts/"+esc(accountID)+"/authenticators", nil, nil, &out)
	return out.Authenticators, err
}

// Channels lists an account's channels, masked.
func (c *Client) Channels(ctx context.Context, accountID string) ([]Channel, error) {
	var out ChannelList
	err := c.do(ctx, "GET", "/api/v1/accounts/"+esc(accountID)+"/channels", nil, nil, &out)
	return out.Channels, err
}

// VerifyCaller checks a code the caller reads from their own authenticator
// app.
func (c *Client) VerifyCaller(ctx context.Context, accountID, code string, opts ...CallOption) (bool, error) {
	var out VerifyCallerResult
	err := c.do(ctx, "POST", "/api/v1/accounts/"+esc(accountID)+"/verify-caller", nil, VerifyCallerRequest{Code: code}, &out, opts...)
	return out.Verified, err
}

// ---- recoveries ----

// OpenRecovery opens a request on a caller's behalf (help desk).
func (c *Client) OpenRecovery(ctx context.Context, in OpenRecoveryRequest, opts ...CallOption) (*Recovery, error) {
	var out Recovery
	return &out, c.do(ctx, "POST", "/api/v1/recoveries", nil, in, &out, opts...)
}

// Recovery reads a request and what it still needs.
func (c *Client) Recovery(ctx context.Context, id string) (*Recovery, error) {
	var out Recovery
	return &out, c.do(ctx, "GET", "/api/v1/recoveries/"+esc(id), nil, nil, &out)
}

// RecoveryQuery selects requests: one account's (empty: the caller's own,
// or for staff every open request), open ones unless All.
type RecoveryQuery struct {
	Account string
	All     bool
}

// ListRecoveries returns a page of requests, newest first.
func (c *Client) ListRecoveries(ctx context.Context, rq RecoveryQuery, p Page) (*RecoveryList, error) {
	q := p.query()
	if rq.Account != "" {
		q.Set("account", rq.Account)
	}
	if rq.All {
		q.Set("state", "all")
	}
	var out RecoveryList
	return &out, c.do(ctx, "GET", "/api/v1/recoveries", q, nil, &out)
}

// CancelRecovery stops an open request.
func (c *Client) CancelRecovery(ctx context.Context, id, reason string, opts ...CallOption) (*Recovery, error) {
	var out Recovery
	return &out, c.do(ctx, "POST", "/api/v1/recoveries/"+esc(id)+"/cancel", nil, CancelRecoveryRequest{Reason: reason}, &out, opts...)
}

// ---- approvals ----

// Approvals returns a page of the requests waiting for the caller's vote.
func (c *Client) Approvals(ctx context.Context, p Page) (*ApprovalList, error) {
	var out ApprovalList
	return &out, c.do(ctx, "GET", "/api/v1/approvals", p.query(), nil, &out)
}

// Approval reads one request to decide on.
func (c *Client) Approval(ctx context.Context, requestID string) (*Approval, error) {
	var out Approval
	return &out, c.do(ctx, "GET", "/api/v1/approvals/"+esc(requestID), nil, nil, &out)
}

// Vote approves ("approve") or denies ("deny") a request's current change.
// Pass IfChange(approval.ChangeDigest) to vote only on what was read.
func (c *Client) Vote(ctx context.Context, requestID, vote, comment string, opts ...CallOption) (*Approval, error) {
	var out Approval
	return &out, c.do(ctx, "POST", "/api/v1/approvals/"+esc(requestID)+"/vote", nil, VoteRequest{Vote: vote, Comment: comment}, &out, opts...)
}

// ---- sessions ----

// Sessions lists the caller's sessions.
func (c *Client) Sessions(ctx context.Context) ([]Session, error) {
	var out SessionList
	err := c.do(ctx, "GET", "/api/v1/sessions", nil, nil, &out)
	return out.Sessions, err
}

// RevokeSession signs out one of the caller's sessions.
func (c *Client) RevokeSession(ctx context.Context, id string, opts ...CallOption) error {
	return c.do(ctx, "DELETE", "/api/v1/sessions/"+esc(id), nil, nil, nil, opts...)
}

// ---- audit ----

// AuditQuery filters audit events; zero fields do not filter.
type AuditQuery struct {
	Account, Actor, Action, Request string
	Since, Until                    time.Time
	Ascending                       bool
}

// AuditEvents returns a page of audit events in their canonical encoding
// (recourse.ParseAuditEvent decodes them).
func (c *Client) AuditEvents(ctx context.Context, aq AuditQuery, p Page) (*AuditPage, error) {
	q := p.query()
	for k, v := range map[string]string{"account": aq.Account, "actor": aq.Actor, "action": aq.Action, "request": aq.Request} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !aq.Since.IsZero() {
		q.Set("since", aq.Since.UTC().Format(time.RFC3339))
	}
	if !aq.Until.IsZero() {
		q.Set("until", aq.Until.UTC().Format(time.RFC3339))
	}
	if aq.Ascending {
		q.Set("order", "asc")
	}
	var out AuditPage
	return &out, c.do(ctx, "GET", "/api/v1/audit", q, nil, &out)
}

// AuditCheckpoint returns the latest signed checkpoint (a C2SP signed note).
func (c *Client) AuditCheckpoint(ctx context.Context) ([]byte, error) {
	var out []byte
	return out, c.do(ctx, "GET", "/api/v1/audit/checkpoint", nil, nil, &out)
}

// ---- API keys ----

// ListAPIKeys returns a page of keys, optionally one owner's.
func (c *Client) ListAPIKeys(ctx context.Context, owner string, p Page) (*APIKeyList, error) {
	q := p.query()
	if owner != "" {
		q.Set("owner", owner)
	}
	var out APIKeyList
	return &out, c.do(ctx, "GET", "/api/v1/api-keys", q, nil, &out)
}

// APIKeys walks every key, optionally one owner's.
func (c *Client) APIKeys(ctx context.Context, owner string) iter.Seq2[APIKey, error] {
	return all(ctx, func(ctx context.Context, p Page) ([]APIKey, string, error) {
		l, err := c.ListAPIKeys(ctx, owner, p)
		if err != nil {
			return nil, "", err
		}
		return l.APIKeys, l.NextCursor, nil
	})
}

// APIKey reads one key.
func (c *Client) APIKey(ctx context.Context, id string) (*APIKey, error) {
	var out APIKey
	return &out, c.do(ctx, "GET", "/api/v1/api-keys/"+esc(id), nil, nil, &out)
}

// CreateAPIKey issues a key; the answer's Secret is shown this once.
func (c *Client) CreateAPIKey(ctx context.Context, in CreateAPIKeyRequest, opts ...CallOption) (*IssuedAPIKey, error) {
	var out IssuedAPIKey
	return &out, c.do(ctx, "POST", "/api/v1/api-keys", nil, in, &out, opts...)
}

// RevokeAPIKey stops a key at once.
func (c *Client) RevokeAPIKey(ctx context.Context, id string, opts ...CallOption) (*APIKey, error) {
	var out APIKey
	return &out, c.do(ctx, "DELETE", "/api/v1/api-keys/"+esc(id), nil, nil, &out, opts...)
}

// RotateAPIKey issues a key's replacement; the old key works on for the
// overlap (negative: the server's default).
func (c *Client) RotateAPIKey(ctx context.Context, id string, overlap time.Duration, opts ...CallOption) (*IssuedAPIKey, error) {
	in := RotateAPIKeyRequest{}
	if overlap >= 0 {
		in.Overlap = overlap.String()
	}
	var out IssuedAPIKey
	return &out, c.do(ctx, "POST", "/api/v1/api-keys/"+esc(id)+"/rotate", nil, in, &out, opts...)
}

// ---- webhooks ----

// Webhooks lists the webhook endpoints.
func (c *Client) Webhooks(ctx context.Context, p Page) (*WebhookList, error) {
	var out WebhookList
	return &out, c.do(ctx, "GET", "/api/v1/webhooks", p.query(), nil, &out)
}

// CreateWebhook adds an endpoint; the answer's Secret is shown this once.
func (c *Client) CreateWebhook(ctx context.Context, in CreateWebhookRequest, opts ...CallOption) (*CreatedWebhook, error) {
	var out CreatedWebhook
	return &out, c.do(ctx, "POST", "/api/v1/webhooks", nil, in, &out, opts...)
}

// RotateWebhookSecret gives an endpoint a new signing secret.
func (c *Client) RotateWebhookSecret(ctx context.Context, id string, opts ...CallOption) (string, error) {
	var out WebhookSecret
	err := c.do(ctx, "POST", "/api/v1/webhooks/"+esc(id)+"/rotate-secret", nil, nil, &out, opts...)
	return out.Secret, err
}

// DeleteWebhook removes an endpoint.
func (c *Client) DeleteWebhook(ctx context.Context, id string, opts ...CallOption) error {
	return c.do(ctx, "DELETE", "/api/v1/webhooks/"+esc(id), nil, nil, nil, opts...)
}

// ---- policy ----

// Policy describes the policy in force.
func (c *Client) Policy(ctx context.Context) (*Policy, error) {
	var out Policy
	return &out, c.do(ctx, "GET", "/api/v1/policy", nil, nil, &out)
}

// ExplainDecision asks what the policy decides for an action and account
// (initiator: self, help_desk, api or admin; empty means self).
func (c *Client) ExplainDecision(ctx context.Context, account, action, initiator string) (*Decision, error) {
	q := url.Values{"account": {account}, "action": {action}}
	if initiator != "" {
		q.Set("initiator", initiator)
	}
	var out Decision
	return &out, c.do(ctx, "GET", "/api/v1/policy/decisions", q, nil, &out)
}

// ---- self-service ----

const selfBase = "/api/v1/self-service/recoveries/"

// StartRecovery is "Can't sign in?". The handle looks the same whether or
// not the identifier names an account; keep its Secret for the next calls.
func (c *Client) StartRecovery(ctx context.Context, identifier, lost string, opts ...CallOption) (*RecoveryHandle, error) {
	var out RecoveryHandle
	return &out, c.do(ctx, "POST", strings.TrimSuffix(selfBase, "/"), nil, StartRecoveryRequest{Identifier: identifier, Lost: lost}, &out, opts...)
}

// ClaimRecovery binds a request the help desk opened to this client, with
// the reference the agent gave and a code sent to the caller's channel.
func (c *Client) ClaimRecovery(ctx context.Context, reference, code string, opts ...CallOption) (*RecoveryHandle, error) {
	var out RecoveryHandle
	return &out, c.do(ctx, "POST", selfBase+esc(reference)+"/claim", nil, CodeRequest{Code: code}, &out, opts...)
}

// RecoveryStatus reads what the client driving the request may see.
func (c *Client) RecoveryStatus(ctx context.Context, h *RecoveryHandle) (*RecoveryStatus, error) {
	var out RecoveryStatus
	return &out, c.do(ctx, "GET", selfBase+esc(h.RequestID), nil, nil, &out, withSecret(h.Secret))
}

// SubmitCode enters a code sent to one of the account's channels.
func (c *Client) SubmitCode(ctx context.Context, h *RecoveryHandle, code string, opts ...CallOption) (*RecoveryStatus, error) {
	return c.evidence(ctx, h, "/codes", code, opts)
}

// SubmitTOTP enters a code from the account's authenticator app.
func (c *Client) SubmitTOTP(ctx context.Context, h *RecoveryHandle, code string, opts ...CallOption) (*RecoveryStatus, error) {
	return c.evidence(ctx, h, "/totp", code, opts)
}

// SubmitRecoveryCode enters one of the account's saved recovery codes.
func (c *Client) SubmitRecoveryCode(ctx context.Context, h *RecoveryHandle, code string, opts ...CallOption) (*RecoveryStatus, error) {
	return c.evidence(ctx, h, "/recovery-codes", code, opts)
}

func (c *Client) evidence(ctx context.Context, h *RecoveryHandle, path, code string, opts []CallOption) (*RecoveryStatus, error) {
	var out RecoveryStatus
	return &out, c.do(ctx, "POST", selfBase+esc(h.RequestID)+path, nil, CodeRequest{Code: code}, &out, append(opts, withSecret(h.Secret))...)
}

// ContinueRecovery gets the single-use completion token of a ready request.
func (c *Client) ContinueRecovery(ctx context.Context, h *RecoveryHandle, opts ...CallOption) (string, error) {
	var out CompletionToken
	err := c.do(ctx, "POST", selfBase+esc(h.RequestID)+"/continue", nil, nil, &out, append(opts, withSecret(h.Secret))...)
	return out.CompletionToken, err
}

// CompleteRecovery finishes a ready request; newPassword is needed for a
// password reset. The answer carries the person's new session.
func (c *Client) CompleteRecovery(ctx context.Context, h *RecoveryHandle, completionToken, newPassword string, opts ...CallOption) (*CompletedRecovery, error) {
	return c.complete(ctx, h, CompleteRecoveryRequest{CompletionToken: completionToken, NewPassword: newPassword}, opts)
}

// CompleteRecoveryWithAccessPass finishes a ready lost-device request
// (authenticator.recover) with a temporary access pass for the new device
// instead of a session: the answer's AccessPass, shown only this once.
// Any other action is refused (code invalid) and the token stays good.
func (c *Client) CompleteRecoveryWithAccessPass(ctx context.Context, h *RecoveryHandle, completionToken string, opts ...CallOption) (*CompletedRecovery, error) {
	return c.complete(ctx, h, CompleteRecoveryRequest{CompletionToken: completionToken, AccessPass: true}, opts)
}

func (c *Client) complete(ctx context.Context, h *RecoveryHandle, in CompleteRecoveryRequest, opts []CallOption) (*CompletedRecovery, error) {
	var out CompletedRecovery
	return &out, c.do(ctx, "POST", selfBase+esc(h.RequestID)+"/complete", nil, in, &out, append(opts, withSecret(h.Secret))...)
}
