package service

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"weak"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
)

// APIKeyPrefix marks API key secrets, so secret scanners (and people)
// recognise a leaked one.
const APIKeyPrefix = "rcs_"

// Scope is a permission an API key can carry. A key may call an endpoint
// only with the endpoint's scope, and then only as far as its owner's roles
// allow: the key acts with the owner's Recourse roles that one of its
// scopes names, never more.
type Scope struct {
	Name        string
	Description string
	// Roles are the owner's Recourse roles the scope lets the key exercise.
	Roles []string
	// RoleRequired means the scope is useless without one of Roles, so a
	// key carrying it is only issued to an owner who holds one.
	RoleRequired bool
}

// Scopes is the catalogue of API scopes.
var Scopes = []Scope{
	{"accounts:read", "Read accounts, and their authenticators and channels (masked).", []string{recourse.RoleAdmin, recourse.RoleHelpdesk, recourse.RoleSecurity}, true},
	{"accounts:write", "Create, update and import accounts.", []string{recourse.RoleAdmin}, true},
	{"recovery:open", "Open recovery requests on a caller's behalf (help desk).", []string{recourse.RoleHelpdesk}, true},
	{"recovery:read", "Read recovery requests and what they still need.", []string{recourse.RoleAdmin, recourse.RoleHelpdesk, recourse.RoleSecurity}, false},
	{"recovery:cancel", "Cancel recovery requests.", []string{recourse.RoleAdmin, recourse.RoleHelpdesk, recourse.RoleSecurity}, false},
	{"approvals:read", "List and read the requests waiting for the owner's vote.", nil, false},
	{"approvals:vote", "Approve or deny requests as the owner.", nil, false},
	{"helpdesk:verify", "Verify a caller with a code from their own authenticator app.", []string{recourse.RoleHelpdesk}, true},
	{"sessions:read", "List the owner's sessions.", nil, false},
	{"sessions:write", "Sign out one of the owner's sessions.", nil, false},
	{"audit:read", "Read the audit log.", []string{recourse.RoleAdmin, recourse.RoleSecurity}, true},
	{"policy:read", "Show the policy in force and explain its decisions.", []string{recourse.RoleAdmin, recourse.RoleSecurity, recourse.RoleHelpdesk}, true},
	{"api_keys:read", "List and read API keys.", []string{recourse.RoleAdmin}, true},
	{"api_keys:write", "Create, rotate and revoke API keys.", []string{recourse.RoleAdmin}, true},
	{"webhooks:read", "List webhook endpoints.", []string{recourse.RoleAdmin}, true},
	{"webhooks:write", "Create, change and delete webhook endpoints.", []string{recourse.RoleAdmin}, true},
}

func scopeByName(name string) (Scope, bool) {
	i := slices.IndexFunc(Scopes, func(s Scope) bool { return s.Name == name })
	if i < 0 {
		return Scope{}, false
	}
	return Scopes[i], true
}

// APIConfig holds the tunables of the JSON API. Zero values take the
// defaults of DefaultAPIConfig.
type APIConfig struct {
	// MaxKeyLifetime bounds an API key's expiry (OWASP NHI: short-lived
	// credentials); a key without an explicit expiry gets this lifetime.
	MaxKeyLifetime time.Duration
	// RotationOverlap is how long a rotated key keeps working beside its
	// replacement unless the caller asks for less; MaxRotationOverlap
	// bounds what a caller may ask for.
	RotationOverlap    time.Duration
	MaxRotationOverlap time.Duration
	// RatePerMinute and Burst bound calls per API key (and per signed-in
	// account calling the API).
	RatePerMinute int
	Burst         int
	// IdempotencyWindow is how long the answer to a write sent with an
	// Idempotency-Key is kept for retries.
	IdempotencyWindow time.Duration
}

// DefaultAPIConfig returns the defaults: 90-day keys, a day's overlap on
// rotation (at most a week), 600 calls a minute per key with bursts of 100,
// and a 24-hour idempotency window.
func DefaultAPIConfig() APIConfig {
	return APIConfig{
		MaxKeyLifetime:     90 * 24 * time.Hour,
		RotationOverlap:    24 * time.Hour,
		MaxRotationOverlap: 7 * 24 * time.Hour,
		RatePerMinute:      600,
		Burst:              100,
		IdempotencyWindow:  24 * time.Hour,
	}
}

func (c APIConfig) withDefaults() APIConfig {
	d := DefaultAPIConfig()
	if c.MaxKeyLifetime == 0 {
		c.MaxKeyLifetime = d.MaxKeyLifetime
	}
	if c.RotationOverlap == 0 {
		c.RotationOverlap = d.RotationOverlap
	}
	if c.MaxRotationOverlap == 0 {
		c.MaxRotationOverlap = d.MaxRotationOverlap
	}
	if c.RatePerMinute == 0 {
		c.RatePerMinute = d.RatePerMinute
	}
	if c.Burst == 0 {
		c.Burst = d.Burst
	}
	if c.IdempotencyWindow == 0 {
		c.IdempotencyWindow = d.IdempotencyWindow
	}
	return c
}

// Validate checks the configuration; errors name the field.
func (c APIConfig) Validate() error {
	switch {
	case c.MaxKeyLifetime < time.Hour || c.MaxKeyLifetime > 366*24*time.Hour:
		return errors.New("api.max_key_lifetime: must be between 1h and 366 days")
	case c.MaxRotationOverlap < 0 || c.MaxRotationOverlap > 30*24*time.Hour:
		return errors.New("api.max_rotation_overlap: must be between 0 and 30 days")
	case c.RotationOverlap < 0 || c.RotationOverlap > c.MaxRotationOverlap:
		return errors.New("api.rotation_overlap: must be between 0 and api.max_rotation_overlap")
	case c.RatePerMinute < 1 || c.Burst < 1:
		return errors.New("api.rate_per_minute and api.burst: must be positive")
	case c.IdempotencyWindow < time.Hour || c.IdempotencyWindow > 7*24*time.Hour:
		return errors.New("api.idempotency_window: must be between 1h and 7 days")
	}
	return nil
}

// apiState is a Service's API configuration and per-caller rate limits.
type apiState struct {
	mu        sync.Mutex
	cfg       APIConfig
	limiter   *rateLimiter
	lastSweep time.Time
}

func newAPIState(c APIConfig) *apiState {
	return &apiState{cfg: c, limiter: newRateLimiter(float64(c.RatePerMinute)/60, c.Burst, 100_000)}
}

// apiStates holds each Service's apiState. It lives beside the Service
// rather than in it so that the API stays in files of its own; the keys are
// weak, so a Service no longer used is collected with its state.
var apiStates sync.Map // weak.Pointer[Service] → *apiState

func (s *Service) api() *apiState {
	wp := weak.Make(s)
	if v, ok := apiStates.Load(wp); ok {
		return v.(*apiState)
	}
	v, loaded := apiStates.LoadOrStore(wp, newAPIState(DefaultAPIConfig()))
	if !loaded {
		runtime.AddCleanup(s, func(wp weak.Pointer[Service]) { apiStates.Delete(wp) }, wp)
	}
	return v.(*apiState)
}

// SetAPIConfig puts an API configuration in force (at start-up). It resets
// the per-key rate limits.
func (s *Service) SetAPIConfig(c APIConfig) error {
	c = c.withDefaults()
	if err := c.Validate(); err != nil {
		return err
	}
	st := s.api()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.cfg = c
	st.limiter = newRateLimiter(float64(c.RatePerMinute)/60, c.Burst, 100_000)
	return nil
}

// APIConfig returns the API configuration in force.
func (s *Service) APIConfig() APIConfig {
	st := s.api()
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.cfg
}

// APIPrincipal is a caller of the JSON API: a signed-in person (Key nil),
// or an API key acting for its owner. For a key, the embedded Principal is
// the owner with only the roles the key's scopes name, and a session of the
// key's own (never stored) at AAL2: the key is a 256-bit secret that an
// administrator issued to a named owner, and its scopes — not a sign-in —
// bound what it may do.
type APIPrincipal struct {
	*Principal
	Key *recourse.APIKey
}

// Scopes returns the scopes the caller holds: the key's, or every scope
// for a signed-in person (whose roles alone then decide).
func (p *APIPrincipal) Scopes() []string {
	if p.Key != nil {
		return slices.Clone(p.Key.Scopes)
	}
	out := make([]string, len(Scopes))
	for i, sc := range Scopes {
		out[i] = sc.Name
	}
	return out
}

// Require refuses a key that lacks scope (empty: none needed). A signed-in
// person holds every scope; the service's own checks (roles,
// relationships) still apply.
func (p *APIPrincipal) Require(scope string) error {
	if scope == "" || p.Key == nil || slices.Contains(p.Key.Scopes, scope) {
		return nil
	}
	return recourse.Errorf(recourse.EFORBIDDEN, "This API key does not have the %s scope.", scope)
}

// ActorID is who the audit log names for the caller: the key id, or the
// person's account id.
func (p *APIPrincipal) ActorID() string {
	if p.Key != nil {
		return p.Key.ID
	}
	return p.Account.ID
}

// IdempotencyCaller scopes Idempotency-Keys: each key and each person has
// their own.
func (p *APIPrincipal) IdempotencyCaller() string {
	if p.Key != nil {
		return "key:" + p.Key.ID
	}
	return "account:" + p.Account.ID
}

// Meta returns m for a call by p: through the API, and for a key with the
// key as actor (role api_client). Service methods that name their own actor
// (an approver's vote, an agent's action) name the owner; the request's
// api.request event names the key, under the same request id.
func (p *APIPrincipal) Meta(m Meta) Meta {
	m.Channel = recourse.ViaAPI
	if p.Key != nil {
		m.Actor = recourse.AuditActor{AccountID: p.Key.ID, Role: recourse.ActorAPIClient}
	}
	return m
}

// asRole returns the Meta of p acting in role (a person at the console, or
// the key).
func (p *APIPrincipal) asRole(m Meta, role recourse.AuditRole) Meta {
	m = p.Meta(m)
	if p.Key == nil {
		m.Actor = recourse.AuditActor{AccountID: p.Account.ID, Role: role}
	}
	return m
}

var (
	errBadAPIKey     = recourse.Errorf(recourse.EUNAUTHORIZED, "The API key is not valid.")
	errExpiredAPIKey = recourse.Errorf(recourse.EUNAUTHORIZED, "The API key has expired or was revoked.")
	errAPIRateLimit  = recourse.Errorf(recourse.ERATELIMIT, "Too many API calls. Slow down and retry in a few seconds.")
)

func (s *Service) apiKeyHash(token string) []byte { return s.hasher.Sum("api-key", token) }

// AuthenticateAPIKey returns the principal for an API key: an issued,
// unrevoked, unexpired key whose owner is an active, unfrozen account.
// Calls are rate-limited per key, and the key's last use is recorded.
func (s *Service) AuthenticateAPIKey(ctx context.Context, token string, meta Meta) (*APIPrincipal, error) {
	if !credential.ValidToken(APIKeyPrefix, token) {
		return nil, errBadAPIKey
	}
	k, err := s.store.APIKeyByHash(ctx, s.apiKeyHash(token))
	if errors.Is(err, recourse.ErrNotFound) {
		return nil, errBadAPIKey
	}
	if err != nil {
		return nil, internal("read api key", err)
	}
	now := s.now()
	if !k.Usable(now) {
		return nil, errExpiredAPIKey
	}
	owner, err := s.store.Account(ctx, k.OwnerID)
	if err != nil {
		return nil, internal("read key owner", err)
	}
	if owner.Status != recourse.StatusActive || owner.FrozenAt != nil {
		return nil, recourse.Errorf(recourse.EUNAUTHORIZED, "The API key's owner cannot act now; the key does not work.")
	}
	if !s.allowAPI("key:"+k.ID, now) {
		return nil, errAPIRateLimit
	}
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) >= touchEvery {
		if err := s.store.TouchAPIKey(ctx, k.ID, now, meta.IP); err != nil {
			return nil, internal("touch api key", err)
		}
		k.LastUsedAt, k.LastUsedIP = &now, meta.IP
	}
	// The key acts with the owner's roles that its scopes name, no others.
	granted := map[string]bool{}
	for _, name := range k.Scopes {
		if sc, ok := scopeByName(name); ok {
			for _, r := range sc.Roles {
				granted[r] = true
			}
		}
	}
	acting := *owner
	acting.Roles = slices.DeleteFunc(slices.Clone(owner.Roles), func(r string) bool { return !granted[r] })
	ses := &recourse.Session{ID: "key:" + k.ID, AccountID: owner.ID, AAL: recourse.AAL2, Methods: []string{"api_key"},
		AuthTime: now, ReauthAt: now, CreatedAt: k.CreatedAt, LastSeenAt: now, ExpiresAt: k.ExpiresAt, IP: meta.IP}
	return &APIPrincipal{Principal: &Principal{Account: &acting, Session: ses}, Key: k}, nil
}

// APISession returns the API principal of a signed-in person (see
// Authenticate), rate-limited per account like a key.
func (s *Service) APISession(ctx context.Context, token string) (*APIPrincipal, error) {
	p, err := s.Authenticate(ctx, token)
	if err != nil {
		return nil, err
	}
	if !s.allowAPI("account:"+p.Account.ID, s.now()) {
		return nil, errAPIRateLimit
	}
	return &APIPrincipal{Principal: p}, nil
}

func (s *Service) allowAPI(key string, now time.Time) bool {
	st := s.api()
	st.mu.Lock()
	lim := st.limiter
	st.mu.Unlock()
	return lim.allow(key, now)
}

// RecordAPICall audits a call made with an API key before it runs, with
// the key as actor: if the record cannot be written, the call must not
// run. refused, when set, is why the call was refused (a missing scope),
// recorded as a denial.
func (s *Service) RecordAPICall(ctx context.Context, p *APIPrincipal, method, route string, refused error, meta Meta) error {
	if p.Key == nil {
		return nil
	}
	e := recourse.AuditEvent{Action: recourse.ActionAPIRequest, Outcome: recourse.OutcomeSuccess, SubjectID: p.Key.OwnerID,
		Attributes: map[string]string{"method": method, "route": route, "key_id": p.Key.ID, "key_name": p.Key.Name}}
	if refused != nil {
		e.Outcome, e.Reason = recourse.OutcomeDenied, recourse.ErrorMessage(refused)
	}
	return internal("audit api call", s.recordAuditTx(ctx, e, p.Meta(meta)))
}

// NewAPIKey describes a key to issue.
type NewAPIKey struct {
	Name    string
	OwnerID string
	Scopes  []string
	// ExpiresAt defaults to now plus the maximum lifetime, which it may not
	// pass.
	ExpiresAt time.Time
}

// IssuedAPIKey is a key just issued with its secret, shown this once.
type IssuedAPIKey struct {
	Key    *recourse.APIKey
	Secret string
}

// mayManageKeys allows the CLI (by == nil) and administrators; a key
// needs api_keys:write as well.
func mayManageKeys(by *APIPrincipal) error {
	if by == nil {
		return nil
	}
	if err := by.Require("api_keys:write"); err != nil {
		return err
	}
	if !by.Account.HasRole(recourse.RoleAdmin) {
		return recourse.Errorf(recourse.EFORBIDDEN, "Only administrators manage API keys.")
	}
	return requireUnrestricted(by.Principal)
}

// checkKeyScopes validates scopes for an owner. A key caller may only
// issue scopes it holds itself, so a key never mints a stronger key.
func checkKeyScopes(scopes []string, owner *recourse.Account, by *APIPrincipal) error {
	if len(scopes) == 0 {
		return recourse.FieldError("scopes", "name at least one scope")
	}
	seen := map[string]bool{}
	for _, name := range scopes {
		sc, ok := scopeByName(name)
		if !ok {
			return recourse.FieldError("scopes", "%q is not a scope", name)
		}
		if seen[name] {
			return recourse.FieldError("scopes", "lists %q twice", name)
		}
		seen[name] = true
		if sc.RoleRequired && !slices.ContainsFunc(sc.Roles, owner.HasRole) {
			return recourse.FieldError("scopes", "%s needs an owner with the %s role; %s has none of them",
				name, strings.Join(sc.Roles, " or "), owner.ID)
		}
		if by != nil && by.Key != nil && !slices.Contains(by.Key.Scopes, name) {
			return recourse.FieldError("scopes", "an API key can only issue scopes it holds; it lacks %s", name)
		}
	}
	return nil
}

// checkKeyOwner requires an active person.
func checkKeyOwner(owner *recourse.Account) error {
	if owner.Kind != recourse.KindHuman || owner.Status != recourse.StatusActive || owner.FrozenAt != nil {
		return recourse.FieldError("owner", "must be an active person who answers for the key")
	}
	return nil
}

func validKeyName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > 100 || !utf8.ValidString(name) || strings.ContainsAny(name, "\x00\r\n") {
		return "", recourse.FieldError("name", "is required: at most 100 characters on one line")
	}
	return name, nil
}

func keyAttrs(k *recourse.APIKey) map[string]string {
	return map[string]string{"key_id": k.ID, "name": k.Name, "owner": k.OwnerID, "scopes": strings.Join(k.Scopes, ","),
		"expires_at": k.ExpiresAt.UTC().Format(time.RFC3339), "hint": k.Hint}
}

// CreateAPIKey issues a key to an owner. The secret is returned once and
// stored only as an HMAC. by is nil for the CLI operator. The owner is told.
func (s *Service) CreateAPIKey(ctx context.Context, by *APIPrincipal, in NewAPIKey, meta Meta) (*IssuedAPIKey, error) {
	if err := mayManageKeys(by); err != nil {
		return nil, err
	}
	name, err := validKeyName(in.Name)
	if err != nil {
		return nil, err
	}
	if !recourse.ValidID(in.OwnerID) {
		return nil, recourse.FieldError("owner", "is not an account id")
	}
	owner, err := s.store.Account(ctx, in.OwnerID)
	if errors.Is(err, recourse.ErrNotFound) {
		return nil, recourse.FieldError("owner", "no account %q", in.OwnerID)
	}
	if err != nil {
		return nil, internal("read owner", err)
	}
	if err := checkKeyOwner(owner); err != nil {
		return nil, err
	}
	if err := checkKeyScopes(in.Scopes, owner, by); err != nil {
		return nil, err
	}
	now := s.now()
	maxLife := s.APIConfig().MaxKeyLifetime
	exp := in.ExpiresAt
	if exp.IsZero() {
		exp = now.Add(maxLife)
	}
	if !exp.After(now) || exp.Sub(now) > maxLife {
		return nil, recourse.FieldError("expires_at", "must be in the future and at most %s away", humanLifetime(maxLife))
	}
	secret := credential.NewToken(APIKeyPrefix)
	k := &recourse.APIKey{ID: recourse.NewID("ak_"), Name: name, OwnerID: owner.ID, Scopes: slices.Clone(in.Scopes),
		Hash: s.apiKeyHash(secret), Hint: secret[:len(APIKeyPrefix)+4], CreatedBy: creator(by), CreatedAt: now,
		ExpiresAt: exp.UTC().Truncate(time.Second)}
	meta = adminMeta(by, meta)
	err = s.store.InTx(ctx, func(tx recourse.Tx) error {
		if err := tx.CreateAPIKey(ctx, k); err != nil {
			return err
		}
		if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionAPIKeyCreate, Outcome: recourse.OutcomeSuccess,
			SubjectID: owner.ID, After: keyAttrs(k)}, meta); err != nil {
			return err
		}
		return s.notifyAccount(ctx, tx, owner, "An API key was issued in your name", []string{
			"An API key named \"" + k.Name + "\" (" + k.Hint + "…) was issued with you as its owner.",
			"Scopes: " + strings.Join(k.Scopes, ", ") + ". It expires on " + k.ExpiresAt.Format("2006-01-02") + ".",
			"You answer for what it does. If you did not expect it, ask your administrators to revoke it.",
		}, meta)
	})
	if err != nil {
		return nil, internal("create api key", err)
	}
	return &IssuedAPIKey{Key: k, Secret: secret}, nil
}

func creator(by *APIPrincipal) string {
	if by == nil {
		return "cli"
	}
	return by.ActorID()
}

// adminMeta is the Meta of an administrator's action: the CLI operator's
// as given, a person's as admin, a key's as the key.
func adminMeta(by *APIPrincipal, m Meta) Meta {
	if by == nil {
		return m
	}
	return by.asRole(m, recourse.ActorAdmin)
}

func humanLifetime(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

// mayReadKey allows administrators, the owner, and the key itself.
func mayReadKey(by *APIPrincipal, k *recourse.APIKey) bool {
	return by == nil || by.Account.HasRole(recourse.RoleAdmin) || (by.Key == nil && by.Account.ID == k.OwnerID) ||
		(by.Key != nil && by.Key.ID == k.ID)
}

var errNoKey = recourse.Errorf(recourse.ENOTFOUND, "No such API key.")

// APIKey returns one key (never its secret) to an administrator, its owner
// or the key itself.
func (s *Service) APIKey(ctx context.Context, by *APIPrincipal, id string) (*recourse.APIKey, error) {
	k, err := s.store.APIKey(ctx, id)
	if errors.Is(err, recourse.ErrNotFound) || (err == nil && !mayReadKey(by, k)) {
		return nil, errNoKey
	}
	return k, internal("read api key", err)
}

// APIKeys lists keys: every key (or an owner's) for administrators, a
// person's own keys otherwise.
func (s *Service) APIKeys(ctx context.Context, by *APIPrincipal, f recourse.APIKeyFilter) ([]*recourse.APIKey, error) {
	if by != nil && !by.Account.HasRole(recourse.RoleAdmin) {
		if by.Key != nil {
			return nil, recourse.Errorf(recourse.EFORBIDDEN, "Only administrators list API keys.")
		}
		if f.OwnerID != "" && f.OwnerID != by.Account.ID {
			return nil, recourse.Errorf(recourse.EFORBIDDEN, "You can list only your own API keys.")
		}
		f.OwnerID = by.Account.ID
	}
	list, err := s.store.ListAPIKeys(ctx, f)
	return list, internal("list api keys", err)
}

// mayChangeKey allows administrators (a key of theirs with
// api_keys:write) and the key itself (an integration rotating or revoking
// its own key, which needs no scope).
func mayChangeKey(by *APIPrincipal, k *recourse.APIKey) error {
	if by != nil && by.Key != nil && by.Key.ID == k.ID {
		return nil
	}
	err := mayManageKeys(by)
	if err != nil && !mayReadKey(by, k) {
		return errNoKey
	}
	return err
}

// APIKeyState is "active", "expired" or "revoked" as of now.
func (s *Service) APIKeyState(k *recourse.APIKey) string {
	switch {
	case k.RevokedAt != nil:
		return "revoked"
	case !k.Usable(s.now()):
		return "expired"
	}
	return "active"
}

// RevokeAPIKey stops a key at once, for an administrator, the key's owner
// or the key itself. ifVersion, when not 0, must be the
// key's current version (an ETag), so two administrators cannot undo each
// other's view unknowingly. Revoking a revoked key changes nothing.
func (s *Service) RevokeAPIKey(ctx context.Context, by *APIPrincipal, id string, ifVersion int64, meta Meta) (*recourse.APIKey, error) {
	var out *recourse.APIKey
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		k, err := tx.APIKey(ctx, id)
		if errors.Is(err, recourse.ErrNotFound) {
			return errNoKey
		}
		if err != nil {
			return err
		}
		// The owner may stop a key issued in their name; only
		// administrators and the key itself may do more.
		if err := mayChangeKey(by, k); err != nil && !(by != nil && by.Key == nil && by.Account.ID == k.OwnerID) {
			return err
		}
		if ifVersion != 0 && ifVersion != k.Version {
			return errStaleVersion
		}
		out = k
		if k.RevokedAt != nil {
			return nil
		}
		now := s.now()
		k.RevokedAt = &now
		if err := tx.UpdateAPIKey(ctx, k); err != nil {
			return err
		}
		return s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionAPIKeyRevoke, Outcome: recourse.OutcomeSuccess,
			SubjectID: k.OwnerID, Attributes: map[string]string{"key_id": k.ID, "name": k.Name}}, adminMeta(by, meta))
	})
	if errors.Is(err, recourse.ErrConflict) {
		return nil, errStaleVersion
	}
	if err != nil && recourse.ErrorCode(err) == recourse.EINTERNAL {
		return nil, internal("revoke api key", err)
	}
	return out, err
}

var errStaleVersion = recourse.Errorf(recourse.ECONFLICT, "It changed since you read it (its ETag no longer matches). Read it again, then retry.")

// RotateAPIKey issues a replacement for a key with the same name, owner and
// scopes, and cuts the old key's life to the overlap window (overlap < 0
// means the configured default), so an integration can switch without a
// gap. A key is rotated once: its replacement is rotated next.
func (s *Service) RotateAPIKey(ctx context.Context, by *APIPrincipal, id string, overlap time.Duration, ifVersion int64, meta Meta) (*IssuedAPIKey, error) {
	cfg := s.APIConfig()
	if overlap < 0 {
		overlap = cfg.RotationOverlap
	}
	if overlap > cfg.MaxRotationOverlap {
		return nil, recourse.FieldError("overlap", "at most %s", humanLifetime(cfg.MaxRotationOverlap))
	}
	var issued *IssuedAPIKey
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		old, err := tx.APIKey(ctx, id)
		if errors.Is(err, recourse.ErrNotFound) {
			return errNoKey
		}
		if err != nil {
			return err
		}
		if err := mayChangeKey(by, old); err != nil {
			return err
		}
		if ifVersion != 0 && ifVersion != old.Version {
			return errStaleVersion
		}
		now := s.now()
		if !old.Usable(now) {
			return recourse.Errorf(recourse.ECONFLICT, "This key has expired or was revoked; issue a new one instead.")
		}
		if old.ReplacedBy != "" {
			return recourse.Errorf(recourse.ECONFLICT, "This key was already rotated; rotate its replacement %s.", old.ReplacedBy)
		}
		owner, err := tx.Account(ctx, old.OwnerID)
		if err != nil {
			return err
		}
		if err := checkKeyOwner(owner); err != nil {
			return err
		}
		if err := checkKeyScopes(old.Scopes, owner, nil); err != nil {
			return err
		}
		life := min(old.ExpiresAt.Sub(old.CreatedAt), cfg.MaxKeyLifetime)
		secret := credential.NewToken(APIKeyPrefix)
		k := &recourse.APIKey{ID: recourse.NewID("ak_"), Name: old.Name, OwnerID: old.OwnerID, Scopes: old.Scopes,
			Hash: s.apiKeyHash(secret), Hint: secret[:len(APIKeyPrefix)+4], CreatedBy: creator(by), CreatedAt: now,
			ExpiresAt: now.Add(life).Truncate(time.Second), RotatedFrom: old.ID}
		if err := tx.CreateAPIKey(ctx, k); err != nil {
			return err
		}
		before := old.ExpiresAt
		if end := now.Add(overlap); end.Before(old.ExpiresAt) {
			old.ExpiresAt = end
		}
		old.ReplacedBy = k.ID
		if err := tx.UpdateAPIKey(ctx, old); err != nil {
			return err
		}
		after := keyAttrs(k)
		after["old_key_expires_at"] = old.ExpiresAt.UTC().Format(time.RFC3339)
		if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionAPIKeyRotate, Outcome: recourse.OutcomeSuccess,
			SubjectID: old.OwnerID, Before: map[string]string{"key_id": old.ID, "old_key_expires_at": before.UTC().Format(time.RFC3339)},
			After: after}, adminMeta(by, meta)); err != nil {
			return err
		}
		issued = &IssuedAPIKey{Key: k, Secret: secret}
		return nil
	})
	if errors.Is(err, recourse.ErrConflict) {
		return nil, errStaleVersion
	}
	if err != nil && recourse.ErrorCode(err) == recourse.EINTERNAL {
		return nil, internal("rotate api key", err)
	}
	return issued, err
}
