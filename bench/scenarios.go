package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	apiv1 "github.com/recourse/recourse/client"
	"github.com/recourse/recourse/credential"
)

const recoveries = "/api/v1/self-service/recoveries"

// mixWeights is the blend of the mixed scenario, in percent: mostly
// sign-ins and routine changes, some "Can't sign in?" traffic, a few
// recoveries carried through.
var mixWeights = []struct {
	kind   string
	weight int
}{{SignIn, 40}, {Routine, 30}, {RecoveryStart, 15}, {RecoveryCode, 10}, {RecoveryFull, 5}}

// env is what every client of a run shares.
type env struct {
	lay  layout
	h    *httpDriver
	mail *mailbox
	// dbKind is "sqlite" or "postgres" (empty without a database).
	dbKind string
	totp   *totpTracker
	// codeTimeout bounds the wait for a mailed code.
	codeTimeout time.Duration
}

// client runs flows one at a time. Its sessions outlive a scenario.
type client struct {
	k   int
	e   *env
	rng *rand.Rand
	// approvers are the sessions of the managers of the client's teams
	// (recovery-full); routines those of its routine accounts.
	approvers, routines []string
	// cursors over the client's share of each pool.
	signinNext, fullNext, routineNext, iter int
}

func newClient(k int, e *env) *client {
	return &client{k: k, e: e, rng: rand.New(rand.NewPCG(uint64(k)+1, 0x5eed))}
}

// needs reports which sessions a scenario's flows use.
func needs(scenario string) (approver, routine bool) {
	switch scenario {
	case RecoveryFull:
		return true, false
	case Routine:
		return false, true
	case Mixed:
		return true, true
	}
	return false, false
}

// setup signs in the sessions the scenario needs (not measured).
func (c *client) setup(ctx context.Context, scenario string) error {
	approver, routine := needs(scenario)
	for j := len(c.approvers); approver && j < perClient; j++ {
		lead := c.e.lay.leader(c.e.lay.team(c.k, j))
		s, err := c.signInWaiting(ctx, lead)
		if err != nil {
			return fmt.Errorf("sign in approver %s: %w", lead, err)
		}
		c.approvers = append(c.approvers, s)
	}
	for j := len(c.routines); routine && j < perClient; j++ {
		a := c.e.lay.routineAccount(c.k, j)
		s, err := c.signInWaiting(ctx, a)
		if err != nil {
			return fmt.Errorf("sign in %s: %w", a, err)
		}
		c.routines = append(c.routines, s)
	}
	return nil
}

// flow runs one flow of the scenario; mixed picks one by weight.
func (c *client) flow(ctx context.Context, scenario string) (string, error) {
	kind := scenario
	if scenario == Mixed {
		n := c.rng.IntN(100)
		for _, m := range mixWeights {
			if n < m.weight {
				kind = m.kind
				break
			}
			n -= m.weight
		}
	}
	switch kind {
	case RecoveryStart:
		return kind, c.recoveryStart(ctx)
	case RecoveryCode:
		return kind, c.recoveryCode(ctx)
	case RecoveryFull:
		return kind, c.recoveryFull(ctx)
	case SignIn:
		return kind, c.signInFlow(ctx)
	case Routine:
		return kind, c.routineFlow(ctx)
	}
	return kind, fmt.Errorf("unknown scenario %q", kind)
}

// ---- recovery ----

// start answers "Can't sign in?" for identifier.
func (c *client) start(ctx context.Context, step, identifier, lost string) (*apiv1.RecoveryHandle, error) {
	r, err := c.e.h.do(ctx, call{step: step, method: http.MethodPost, path: recoveries,
		json: apiv1.StartRecoveryRequest{Identifier: identifier, Lost: lost}, want: http.StatusAccepted})
	if err != nil {
		return nil, err
	}
	var h apiv1.RecoveryHandle
	if err := decode(step, r, &h); err != nil {
		return nil, err
	}
	if h.RequestID == "" || h.Secret == "" {
		return nil, &stepError{step, "answer without a request id or secret"}
	}
	return &h, nil
}

// recoveryStart: "Can't sign in?" for an existing and an unknown
// identifier in turn; the answers must cost the same.
func (c *client) recoveryStart(ctx context.Context) error {
	c.iter++
	if c.iter%2 == 0 {
		_, err := c.start(ctx, "start (known)", c.e.lay.recoveryAccount(c.rng.IntN(c.e.lay.recoveryCount())), "password")
		return err
	}
	_, err := c.start(ctx, "start (unknown)", fmt.Sprintf("nobody%07d", c.rng.IntN(10_000_000)), "password")
	return err
}

// codeStep waits for the code the server mails from its background job
// for the request started at sent.
func (c *client) codeStep(ctx context.Context, account string, h *apiv1.RecoveryHandle, sent time.Time) (string, error) {
	const step = "code mailed (async job)"
	if c.e.mail == nil {
		return "", &stepError{step, "no database to read the mail from (give --database)"}
	}
	t0 := time.Now()
	code, err := c.e.mail.waitCode(ctx, account, h.RequestID, sent, c.e.codeTimeout)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		c.e.h.rec.observe(step, false, time.Since(t0), true)
		return "", &stepError{step, err.Error()}
	}
	c.e.h.rec.observe(step, false, time.Since(t0), false)
	return code, nil
}

// submitCode proves the mailed code and expects the request to wait for
// its approval next.
func (c *client) submitCode(ctx context.Context, h *apiv1.RecoveryHandle, code string) error {
	const step = "submit code"
	r, err := c.e.h.do(ctx, call{step: step, method: http.MethodPost, path: recoveries + "/" + h.RequestID + "/codes",
		json: apiv1.CodeRequest{Code: code}, secret: h.Secret, want: http.StatusOK})
	if err != nil {
		return err
	}
	var st apiv1.RecoveryStatus
	if err := decode(step, r, &st); err != nil {
		return err
	}
	if !st.Revealed || st.State != "awaiting_approval" {
		return &stepError{step, fmt.Sprintf("state %q, want awaiting_approval (is the bench policy in force?)", st.State)}
	}
	return nil
}

// recoveryCode: start, read the mailed code, prove it, read the status.
func (c *client) recoveryCode(ctx context.Context) error {
	account := c.e.lay.recoveryAccount(c.rng.IntN(c.e.lay.recoveryCount()))
	sent := time.Now()
	h, err := c.start(ctx, "start (known)", account, "password")
	if err != nil {
		return err
	}
	code, err := c.codeStep(ctx, account, h, sent)
	if err != nil {
		return err
	}
	if err := c.submitCode(ctx, h, code); err != nil {
		return err
	}
	const step = "status"
	r, err := c.e.h.do(ctx, call{step: step, method: http.MethodGet, path: recoveries + "/" + h.RequestID, secret: h.Secret, want: http.StatusOK})
	if err != nil {
		return err
	}
	var st apiv1.RecoveryStatus
	if err := decode(step, r, &st); err != nil {
		return err
	}
	if !st.Revealed {
		return &stepError{step, "not revealed after a proven code"}
	}
	return nil
}

var (
	reAuthenticatorID = regexp.MustCompile(`name="authenticator_id" value="([^"]+)"`)
	reTOTPSecret      = regexp.MustCompile(`id="totp-secret">([A-Z2-7 ]+)<`)
)

// recoveryFull: a lost device recovered end to end under the bench policy
// (code + the manager's approval + no delay), finished by enrolling a new
// authenticator app with the restricted session the recovery gives.
func (c *client) recoveryFull(ctx context.Context) error {
	j := c.fullNext % perClient
	account := c.e.lay.member(c.e.lay.team(c.k, j), c.fullNext/perClient)
	approver := c.approvers[j]
	c.fullNext++
	sent := time.Now()
	h, err := c.start(ctx, "start (known)", account, "device")
	if err != nil {
		return err
	}
	code, err := c.codeStep(ctx, account, h, sent)
	if err != nil {
		return err
	}
	if err := c.submitCode(ctx, h, code); err != nil {
		return err
	}
	vote := call{step: "vote (manager)", method: http.MethodPost, path: "/api/v1/approvals/" + h.RequestID + "/vote",
		json: apiv1.VoteRequest{Vote: "approve"}, cookie: approver, want: http.StatusOK}
	r, err := c.e.h.do(ctx, vote)
	if stepUpNeeded(r, err) {
		if err := c.reauthenticate(ctx, approver); err != nil {
			return err
		}
		_, err = c.e.h.do(ctx, vote)
	}
	if err != nil {
		return err
	}
	r, err = c.e.h.do(ctx, call{step: "continue", method: http.MethodPost, path: recoveries + "/" + h.RequestID + "/continue",
		secret: h.Secret, want: http.StatusOK})
	if err != nil {
		return err
	}
	var tok apiv1.CompletionToken
	if err := decode("continue", r, &tok); err != nil {
		return err
	}
	r, err = c.e.h.do(ctx, call{step: "complete", method: http.MethodPost, path: recoveries + "/" + h.RequestID + "/complete",
		json: apiv1.CompleteRecoveryRequest{CompletionToken: tok.CompletionToken}, secret: h.Secret, want: http.StatusOK})
	if err != nil {
		return err
	}
	var done apiv1.CompletedRecovery
	if err := decode("complete", r, &done); err != nil {
		return err
	}
	if !done.Restricted || done.SessionToken == "" {
		return &stepError{"complete", "no restricted session after a device recovery"}
	}
	r, err = c.e.h.do(ctx, call{step: "enrol app: begin", method: http.MethodPost, path: "/account/totp",
		form: url.Values{"name": {"New phone"}}, cookie: done.SessionToken, want: http.StatusOK})
	if err != nil {
		return err
	}
	id, secret := reAuthenticatorID.FindSubmatch(r.body), reTOTPSecret.FindSubmatch(r.body)
	if id == nil || secret == nil {
		return &stepError{"enrol app: begin", "no secret on the page"}
	}
	now := time.Now()
	totp, err := credential.TOTPCode(strings.ReplaceAll(string(secret[1]), " ", ""), now)
	if err != nil {
		return &stepError{"enrol app: begin", "unusable secret"}
	}
	_, err = c.e.h.do(ctx, call{step: "enrol app: confirm", method: http.MethodPost, path: "/account/totp/confirm",
		form: url.Values{"authenticator_id": {string(id[1])}, "code": {totp}}, cookie: done.SessionToken,
		want: http.StatusSeeOther, wantLoc: "/account?notice=totp-added"})
	return err
}

// ---- sign-in and routine ----

// totpTracker remembers the last time step used per account: the server
// accepts each code once, so an account signs in at most once per 30 s.
type totpTracker struct {
	mu   sync.Mutex
	last map[string]int64
}

func newTOTPTracker() *totpTracker { return &totpTracker{last: map[string]int64{}} }

// code returns account's current code if its time step is unused.
func (t *totpTracker) code(account string, now time.Time) (string, bool) {
	step := credential.TOTPStep(now)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last[account] >= step {
		return "", false
	}
	code, err := credential.TOTPCode(totpSecret(account), now)
	if err != nil {
		return "", false
	}
	t.last[account] = step
	return code, true
}

// signIn signs account in with its password and authenticator app code
// and returns the session.
func (c *client) signIn(ctx context.Context, account, code string) (string, error) {
	r, err := c.e.h.do(ctx, call{step: "sign in: password", method: http.MethodPost, path: "/signin",
		form: url.Values{"identifier": {account}, "password": {BenchPassword}}, want: http.StatusSeeOther, wantLoc: "/signin/second-factor"})
	if err != nil {
		return "", err
	}
	pending := cookieOf(r)
	if pending == "" {
		return "", &stepError{"sign in: password", "no session cookie"}
	}
	r, err = c.e.h.do(ctx, call{step: "sign in: app code", method: http.MethodPost, path: "/signin/totp",
		form: url.Values{"code": {code}}, cookie: pending, want: http.StatusSeeOther, wantLoc: "/account"})
	if err != nil {
		return "", err
	}
	s := cookieOf(r)
	if s == "" {
		return "", &stepError{"sign in: app code", "no session cookie"}
	}
	return s, nil
}

// signInWaiting signs in, waiting for the next TOTP step if this one was
// used (setup only).
func (c *client) signInWaiting(ctx context.Context, account string) (string, error) {
	for {
		if code, ok := c.e.totp.code(account, time.Now()); ok {
			return c.signIn(ctx, account, code)
		}
		next := time.Unix((credential.TOTPStep(time.Now())+1)*30, 0)
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Until(next) + 50*time.Millisecond):
		}
	}
}

// signInFlow signs in the next account of this client's share of the
// sign-in pool that has not used its current TOTP step.
func (c *client) signInFlow(ctx context.Context) error {
	share := max(1, c.e.lay.signinCount()/c.e.lay.clients)
	for tried := 0; ; tried++ {
		account := c.e.lay.signinAccount(c.k + c.signinNext*c.e.lay.clients)
		c.signinNext++
		if code, ok := c.e.totp.code(account, time.Now()); ok {
			_, err := c.signIn(ctx, account, code)
			return err
		}
		if tried >= share {
			// Every account of the share signed in during this 30 s step.
			next := time.Unix((credential.TOTPStep(time.Now())+1)*30, 0)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Until(next)):
			}
			tried = 0
		}
	}
}

// stepUpNeeded reports whether a failed call asks for a fresher sign-in.
func stepUpNeeded(r *reply, err error) bool {
	if err == nil || r == nil {
		return false
	}
	return strings.HasPrefix(r.header.Get("Location"), "/account/confirm") ||
		(r.status == http.StatusUnauthorized && strings.Contains(string(r.body), `"step_up_needed"`))
}

// reauthenticate confirms it's them with the password (a session older
// than the 15-minute re-authentication window; long runs only).
func (c *client) reauthenticate(ctx context.Context, session string) error {
	_, err := c.e.h.do(ctx, call{step: "re-authenticate", method: http.MethodPost, path: "/account/confirm",
		form: url.Values{"password": {BenchPassword}}, cookie: session, want: http.StatusSeeOther, wantLoc: "/account"})
	return err
}

// routineFlow: signed in, name a recovery contact, list the sessions,
// remove the contact.
func (c *client) routineFlow(ctx context.Context) error {
	j := c.routineNext % perClient
	c.routineNext++
	session := c.routines[j]
	set := func(step, usernames, notice string) error {
		req := call{step: step, method: http.MethodPost, path: "/account/recovery-contacts", form: url.Values{"usernames": {usernames}},
			cookie: session, want: http.StatusSeeOther, wantLoc: "/account?notice=" + notice}
		r, err := c.e.h.do(ctx, req)
		if stepUpNeeded(r, err) {
			if err := c.reauthenticate(ctx, session); err != nil {
				return err
			}
			_, err = c.e.h.do(ctx, req)
		}
		return err
	}
	if err := set("add recovery contact", c.e.lay.routineContact(c.k, j), "contacts-saved"); err != nil {
		return err
	}
	r, err := c.e.h.do(ctx, call{step: "list sessions", method: http.MethodGet, path: "/api/v1/sessions", cookie: session, want: http.StatusOK})
	if err != nil {
		return err
	}
	var list apiv1.SessionList
	if err := decode("list sessions", r, &list); err != nil {
		return err
	}
	if len(list.Sessions) == 0 {
		return &stepError{"list sessions", "no session listed"}
	}
	return set("remove recovery contact", "", "contacts-saved")
}

// errorKind classifies a failed flow for the error table.
func errorKind(err error) string {
	var se *stepError
	if errors.As(err, &se) {
		return se.Error()
	}
	return err.Error()
}
