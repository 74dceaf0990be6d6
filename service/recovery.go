package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/policy"
)

// Scheduler runs the workflow's deferred work on the durable job queue.
type Scheduler interface {
	// ScheduleStart queues the processing of a "Can't sign in?" request,
	// which is all that answering it changes: the job MUST be durable when
	// it returns.
	ScheduleStart(ctx context.Context, job StartJob) error
	// ScheduleAdvance queues a re-evaluation of a request at a time (the end
	// of a cooling-off), in tx: the job exists if and only if the change
	// that needs it commits. Expiries are the sweep's (Sweep).
	ScheduleAdvance(ctx context.Context, tx recourse.Tx, requestID string, at time.Time) error
}

// StartJob is a "Can't sign in?" request waiting to be processed. Known and
// unknown identifiers produce the same job, so answering costs the same.
type StartJob struct {
	RequestID   string    `json:"request_id"`
	Identifier  string    `json:"identifier"`
	Lost        string    `json:"lost"`
	BrowserHash []byte    `json:"browser_hash"`
	IP          string    `json:"ip"`
	UserAgent   string    `json:"user_agent"`
	RequestTag  string    `json:"request_tag"`
	At          time.Time `json:"at"`
}

// Recovery workflow limits.
const (
	// BrowserSecretPrefix marks the secret that binds a request to the
	// browser that opened it (kept in a __Host- cookie).
	BrowserSecretPrefix = "rrb_"
	// CompletionTokenPrefix marks completion tokens.
	CompletionTokenPrefix = "rct_"
	// CancelTokenPrefix marks "this wasn't me" tokens.
	CancelTokenPrefix = "rcx_"
	// maxCodeAttempts bounds tries per code; maxRecoveryFailures bounds
	// wrong codes per account between completed recoveries.
	maxCodeAttempts     = 5
	maxRecoveryFailures = 10
	// maxChallenges bounds codes sent per request (resends included).
	maxChallenges = 8
)

// LostActions maps what a person lost to the action that recovers it.
var LostActions = map[string]string{
	"password": "password.reset",
	"device":   "authenticator.recover",
	"phone":    "phone.change",
	"email":    "email.rebind",
}

var (
	errWrongCode      = recourse.Errorf(recourse.EINVALID, "That code is not right, or it has expired.")
	errRecoveryClosed = recourse.Errorf(recourse.ENOTFOUND, "This request is no longer open. Start again if you still need help.")
	errTooManyCodes   = recourse.Errorf(recourse.ERATELIMIT, "Too many wrong codes. Contact your help desk.")
)

// RecoveryStart is what the browser keeps after "Can't sign in?".
type RecoveryStart struct {
	RequestID string
	// BrowserSecret goes into the browser's __Host- cookie; the request only
	// moves for the browser that holds it.
	BrowserSecret string
}

func (s *Service) browserHash(secret string) []byte { return s.hasher.Sum("recovery-browser", secret) }

// StartRecovery answers "Can't sign in?". The answer is the same whether the
// identifier names an account or not, and costs the same: one job inserted.
// The job (ProcessStart) does the rest; for an unknown identifier it does
// nothing.
func (s *Service) StartRecovery(ctx context.Context, identifier, lost string, meta Meta) (*RecoveryStart, error) {
	if _, ok := LostActions[lost]; !ok {
		return nil, recourse.FieldError("lost", "choose what you lost: password, device, phone or email")
	}
	identifier = strings.TrimSpace(identifier)
	if identifier == "" || len(identifier) > 254 {
		return nil, recourse.FieldError("identifier", "enter your username or email address")
	}
	if !s.ipLimit.allow("recover:"+meta.IP, s.now()) {
		return nil, errRateLimited
	}
	if s.scheduler == nil {
		return nil, internal("start recovery", errors.New("no job queue configured"))
	}
	secret := credential.NewToken(BrowserSecretPrefix)
	job := StartJob{RequestID: recourse.NewID("rr_"), Identifier: identifier, Lost: lost, BrowserHash: s.browserHash(secret),
		IP: meta.IP, UserAgent: truncate(meta.UserAgent, 300), RequestTag: meta.RequestID, At: s.now()}
	if err := s.scheduler.ScheduleStart(ctx, job); err != nil {
		return nil, internal("start recovery", err)
	}
	return &RecoveryStart{RequestID: job.RequestID, BrowserSecret: secret}, nil
}

// ProcessStart opens the request a StartJob describes, if its identifier
// names an active account: it asks the policy, sends codes to the account's
// confirmed channels and tells every channel. It is idempotent.
//
// A job runs again when its first run's outcome was not recorded; the
// request it opened then exists already, and inserting it again conflicts
// at the transaction's commit, which is rolled back (errRequestExists): no
// second set of codes and notices, and no read before each start to find
// out.
func (s *Service) ProcessStart(ctx context.Context, job StartJob) error {
	return s.ProcessStartClaimed(ctx, job, nil)
}

// Claim is run first in the transaction that records a job's outcome; an
// error from it rolls the transaction back and is returned as it is.
type Claim func(ctx context.Context, tx recourse.Tx) error

// ProcessStartClaimed is ProcessStart for a run that competes with another
// run of the same job: claim (nil: none) takes the job in the transaction
// that records the outcome — the request opened, or the refusal audited —
// so that exactly one run records one. The job queue's in-process run
// passes a claim that deletes the queued copy of the job (jobs/direct.go).
func (s *Service) ProcessStartClaimed(ctx context.Context, job StartJob, claim Claim) error {
	meta := Meta{IP: job.IP, UserAgent: job.UserAgent, RequestID: job.RequestTag, Channel: recourse.ViaWeb}
	a, auths, err := s.lookupForRecovery(ctx, job.Identifier)
	if errors.Is(err, recourse.ErrNotFound) || (err == nil && a.Kind != recourse.KindHuman) {
		return s.inClaimedTx(ctx, claim, func(tx recourse.Tx) error {
			return s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionRecoveryStart, Outcome: recourse.OutcomeFailure,
				Actor: recourse.AuditActor{Role: recourse.ActorSubject}, Reason: "no such account",
				Attributes: map[string]string{"identifier": s.identifierHMAC(job.Identifier), "lost": job.Lost}}, meta)
		})
	}
	if err != nil {
		return err
	}
	action := LostActions[job.Lost]
	req := policy.Request{Initiator: "self", IP: job.IP, Time: s.now()}
	err = s.openRecovery(ctx, claim, a, authenticatorFacts(auths), action, job.Lost, req, job.RequestID, job.BrowserHash, "", nil, meta)
	if errors.Is(err, errRequestExists) {
		return nil // processed already
	}
	return err
}

// lookupForRecovery is lookupIdentifier with the account's
// authenticators, which the policy's decision needs: by username in one
// read (Store.AccountWithAuthenticators), by a confirmed email address in
// two.
func (s *Service) lookupForRecovery(ctx context.Context, identifier string) (*recourse.Account, []*recourse.Authenticator, error) {
	id := recourse.NormalizeUsername(identifier)
	if id == "" || len(id) > 254 {
		return nil, nil, recourse.ErrNotFound
	}
	a, auths, err := s.store.AccountWithAuthenticators(ctx, id)
	if errors.Is(err, recourse.ErrNotFound) && strings.Contains(id, "@") {
		if a, err = s.store.AccountByVerifiedEmail(ctx, id); err == nil {
			auths, err = s.store.Authenticators(ctx, a.ID)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	return a, auths, nil
}

// inClaimedTx runs fn in a transaction that claim (when not nil) opens.
func (s *Service) inClaimedTx(ctx context.Context, claim Claim, fn func(tx recourse.Tx) error) error {
	return s.store.InTx(ctx, func(tx recourse.Tx) error {
		if claim != nil {
			if err := claim(ctx, tx); err != nil {
				return err
			}
		}
		return fn(tx)
	})
}

// errRequestExists: the request openRecovery was to open exists.
var errRequestExists = errors.New("service: the recovery request exists already")

// createRecovery stores a new request; errRequestExists if its id is taken.
// The store queues the insert with the transaction's other inserts, so a
// taken id may be reported only by the commit (openedRecovery).
func createRecovery(ctx context.Context, tx recourse.Tx, r *recourse.Recovery) error {
	err := tx.CreateRecovery(ctx, r)
	if errors.Is(err, recourse.ErrConflict) {
		return errRequestExists
	}
	return err
}

// openedRecovery is the outcome of the transaction that opened request
// id: errRequestExists when its commit conflicted because the request
// exists already (a job run again), err otherwise.
func (s *Service) openedRecovery(ctx context.Context, id string, err error) error {
	if errors.Is(err, recourse.ErrConflict) {
		if _, rerr := s.store.Recovery(ctx, id); rerr == nil {
			return errRequestExists
		}
	}
	return err
}

// openRecovery asks the policy, given the account's authenticators' facts,
// and stores the request with its first codes and notices, all in one
// transaction, which claim (nil: none) opens.
func (s *Service) openRecovery(ctx context.Context, claim Claim, a *recourse.Account, facts []policy.AuthenticatorFact, action, lost string, req policy.Request, id string,
	browserHash []byte, reason string, attestation *policy.Attestation, meta Meta) error {
	if a.FrozenAt != nil {
		return s.inClaimedTx(ctx, claim, func(tx recourse.Tx) error {
			return s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionRecoveryStart, Outcome: recourse.OutcomeDenied,
				SubjectID: a.ID, Reason: "account frozen", Attributes: map[string]string{"action": action}}, meta)
		})
	}
	d, err := s.Policy().Decide(ctx, action, policy.Input{Account: a, Authenticators: facts, Request: req})
	if err != nil {
		return internal("decide", err)
	}
	now := s.now()
	change := map[string]string{"action": action, "account": a.ID}
	if lost != "" {
		change["lost"] = lost
	}
	r := &recourse.Recovery{ID: id, AccountID: a.ID, Action: action, Tier: string(d.Tier), Lost: lost,
		Initiator: req.Initiator, InitiatorID: req.InitiatorID, Reason: reason, Change: change, ChangeDigest: changeDigest(change),
		PolicyDigest: d.PolicyDigest, Rule: d.Rule, BrowserHash: browserHash, IP: meta.IP, UserAgent: truncate(meta.UserAgent, 300),
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(72 * time.Hour)}
	if d.Outcome == policy.Deny {
		r.State, r.Outcome = recourse.RecoveryDenied, d.Reason
		r.Requirement, r.RequirementDigest = []byte("null"), ""
		return s.openedRecovery(ctx, r.ID, s.inClaimedTx(ctx, claim, func(tx recourse.Tx) error {
			if err := createRecovery(ctx, tx, r); err != nil {
				return err
			}
			if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionRecoveryStart, Outcome: recourse.OutcomeDenied,
				SubjectID: a.ID, Reason: d.Reason, PolicyDigest: d.PolicyDigest, Attributes: map[string]string{"request": r.ID, "action": action, "rule": d.Rule, "initiator": req.Initiator}}, meta); err != nil {
				return err
			}
			// The refusal goes to the account's own confirmed addresses,
			// never to the screen, so it reveals nothing to a stranger.
			if err := s.notifyAccount(ctx, tx, a, "Your account cannot be recovered this way", []string{
				"Someone asked to recover your account (" + action + "). It was refused:",
				d.Reason,
			}, meta); err != nil {
				return err
			}
			return s.reportOpened(ctx, tx, a, r, d, meta)
		}))
	}
	reqJSON, err := json.Marshal(d.Requirement)
	if err != nil {
		return internal("encode requirement", err)
	}
	r.State = recourse.RecoveryCollecting
	r.Requirement, r.RequirementDigest = reqJSON, d.Requirement.Digest()
	r.ExpiresAt = now.Add(d.Requirement.Lifetimes.Request)
	return s.openedRecovery(ctx, r.ID, s.inClaimedTx(ctx, claim, func(tx recourse.Tx) error {
		if err := createRecovery(ctx, tx, r); err != nil {
			return err
		}
		if attestation != nil {
			if err := s.addEvidence(ctx, tx, r, "attestation", attestation, attestation.AgentID); err != nil {
				return err
			}
		}
		if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionRecoveryStart, Outcome: recourse.OutcomeSuccess,
			SubjectID: a.ID, PolicyDigest: d.PolicyDigest, Attributes: map[string]string{"request": r.ID, "action": action,
				"rule": d.Rule, "initiator": req.Initiator, "tier": string(d.Tier), "state": string(r.State)}}, meta); err != nil {
			return err
		}
		if err := s.sendChallenges(ctx, tx, a, r, d.Requirement, meta); err != nil {
			return err
		}
		if err := s.noticeWithCancel(ctx, tx, a, r, "A recovery of your account was started", []string{
			"Someone started a recovery of your account (" + describeAction(action) + ").",
			"If this was you, follow the steps on the page where you started it.",
		}, meta); err != nil {
			return err
		}
		// No job waits for the expiry: the periodic sweep expires the
		// request (Sweep), and until then every read treats it as expired
		// (effectiveState).
		return s.reportOpened(ctx, tx, a, r, d, meta)
	}))
}

func describeAction(action string) string {
	switch action {
	case "password.reset":
		return "reset the password"
	case "authenticator.recover":
		return "replace a lost device"
	case "phone.change":
		return "change the phone number"
	case "email.rebind":
		return "change the email address"
	case "recovery_channel.change":
		return "change a recovery channel"
	case "credential.reissue":
		return "reissue a service credential"
	}
	return action
}

// changeDigest is the digest approvals are bound to.
func changeDigest(change map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(change)) {
		fmt.Fprintf(&b, "%q=%q\n", k, change[k])
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

// codeChannels returns the channel kinds ("email", "sms") the evidence tree
// can use.
func codeChannels(n *policy.Node, out map[string]bool) {
	if n == nil {
		return
	}
	if n.Code != nil {
		out[n.Code.Channel] = true
	}
	for _, c := range n.All {
		codeChannels(c, out)
	}
	for _, c := range n.Any {
		codeChannels(c, out)
	}
	if n.NOf != nil {
		for _, c := range n.NOf.Of {
			codeChannels(c, out)
		}
	}
}

// sendChallenges sends a fresh code to every confirmed, unshared channel the
// requirement can use. Codes go to the channel, never to the screen.
func (s *Service) sendChallenges(ctx context.Context, tx recourse.Tx, a *recourse.Account, r *recourse.Recovery, req *policy.Requirement, meta Meta) error {
	kinds := map[string]bool{}
	codeChannels(req.Evidence, kinds)
	// An email code always goes out, even when the requirement needs none
	// (a key holder's recovery): proving it is how the browser gets to see
	// the request and offer the other ways, without revealing the account to
	// a stranger.
	kinds["email"] = true
	ttl := req.Lifetimes.Code
	for _, c := range append(slices.Clone(a.Emails), a.Phones...) {
		kind := "email"
		lifetime := min(ttl, 15*time.Minute)
		if c.Kind == recourse.ChannelPhone {
			kind, lifetime = "sms", min(ttl, 10*time.Minute)
		}
		if !kinds[kind] || !c.UsableForRecovery() {
			continue
		}
		code := credential.NewNumericCode(6)
		ch := &recourse.Challenge{ID: recourse.NewID("chl_"), RequestID: r.ID, ChannelID: c.ID, Kind: kind, ExpiresAt: s.now().Add(lifetime), CreatedAt: s.now()}
		ch.CodeHash = s.hasher.Sum("challenge:"+ch.ID, code)
		if err := tx.CreateChallenge(ctx, ch); err != nil {
			return err
		}
		subject := "Your recovery code"
		if kind == "sms" {
			subject = "SMS: your recovery code"
		}
		body := fmt.Sprintf("Hello %s,\n\nYour %s recovery code is %s. It expires in %d minutes.\nReference: %s\n\n"+
			"Enter it on the page where you started the recovery. Nobody from %s or the help desk will ever ask you for it.\n"+
			"If you did not start a recovery, ignore this code and tell your security team.\n\n— %s\n",
			a.DisplayName, s.cfg.Issuer, code, int(lifetime.Minutes()), r.ID, s.cfg.Issuer, s.cfg.Issuer)
		if err := s.mailer.Send(ctx, tx, Message{AccountID: a.ID, To: c.Address, Subject: subject, Body: body, At: s.now()}); err != nil {
			return err
		}
	}
	return nil
}

// noticeWithCancel tells every confirmed address about the request, each
// notice with its own "this wasn't me" link. The link opens a confirmation
// page; nothing changes on GET, so mail scanners cannot burn it.
func (s *Service) noticeWithCancel(ctx context.Context, tx recourse.Tx, a *recourse.Account, r *recourse.Recovery, subject string, lines []string, meta Meta) error {
	for _, c := range a.Emails {
		if !c.Verified {
			continue
		}
		token := credential.NewToken(CancelTokenPrefix)
		t := &recourse.Token{Hash: s.hasher.Sum("token", token), Purpose: recourse.TokenCancel, RequestID: r.ID, AccountID: a.ID,
			ExpiresAt: r.ExpiresAt.Add(7 * 24 * time.Hour), CreatedAt: s.now()}
		if err := tx.CreateToken(ctx, t); err != nil {
			return err
		}
		body := s.noticeBody(a, append(slices.Clone(lines),
			"", "This wasn't me: open "+s.publicURL("/recover/cancel?t="+token)+" and confirm; the request stops at once."), meta)
		if err := s.mailer.Send(ctx, tx, Message{AccountID: a.ID, To: c.Address, Subject: subject, Body: body, At: s.now()}); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) publicURL(path string) string {
	return strings.TrimSuffix(s.cfg.PublicURL, "/") + path
}

func (s *Service) addEvidence(ctx context.Context, tx recourse.Tx, r *recourse.Recovery, kind string, detail any, actor string) error {
	b, err := json.Marshal(detail)
	if err != nil {
		return err
	}
	return tx.AddRecoveryEvidence(ctx, &recourse.RecoveryEvidence{RequestID: r.ID, Kind: kind, Detail: b, ActorID: actor, CreatedAt: s.now()})
}

// ---- reading a request ----

// RecoveryView is what the page that drives a request may show.
type RecoveryView struct {
	ID string
	// Revealed is false until the browser has proven something (a code):
	// before that, known and unknown identifiers look the same.
	Revealed     bool
	State        recourse.RecoveryState
	Action       string
	Tier         string
	Outcome      string
	Requirement  string
	Missing      []string
	Evidence     []string
	Approvals    int
	CoolingUntil *time.Time
	ExpiresAt    time.Time
	// Can* say which inputs the page offers.
	CanTOTP, CanRecoveryCode, CanPasskey, CanContinue bool
}

// loadForBrowser returns the request if the browser secret matches, else
// ErrNotFound (the same for a request that does not exist).
func (s *Service) loadForBrowser(ctx context.Context, tx recourse.Tx, id, secret string) (*recourse.Recovery, error) {
	r, _, err := forBrowser(s, ctx, id, secret, func(ctx context.Context, id string) (*recourse.Recovery, struct{}, error) {
		r, err := tx.Recovery(ctx, id)
		return r, struct{}{}, err
	})
	return r, err
}

// loadForBrowserWithAccount is loadForBrowser, outside a transaction, with
// the request's account read in the same statement: a submission needs
// both before its transaction (Store.RecoveryWithAccount).
func (s *Service) loadForBrowserWithAccount(ctx context.Context, id, secret string) (*recourse.Recovery, *recourse.Account, error) {
	return forBrowser(s, ctx, id, secret, s.store.RecoveryWithAccount)
}

// loadForBrowserWithProof is loadForBrowser, outside a transaction, with
// the request's proof read in the same statement (Store.RecoveryWithProof).
func (s *Service) loadForBrowserWithProof(ctx context.Context, id, secret string) (*recourse.Recovery, *recourse.RecoveryProof, error) {
	return forBrowser(s, ctx, id, secret, s.store.RecoveryWithProof)
}

// forBrowser reads request id with read for the browser that holds
// secret: ErrNotFound, before anything is read, for an id or secret that
// cannot name a request, and after it for another browser's secret.
func forBrowser[T any](s *Service, ctx context.Context, id, secret string,
	read func(ctx context.Context, id string) (*recourse.Recovery, T, error)) (*recourse.Recovery, T, error) {
	var none T
	if !validBrowserRef(id, secret) {
		return nil, none, recourse.ErrNotFound
	}
	r, with, err := read(ctx, id)
	if err != nil {
		return nil, none, err
	}
	if !s.heldByBrowser(r, secret) {
		return nil, none, recourse.ErrNotFound
	}
	return r, with, nil
}

// validBrowserRef reports whether id and secret could name a request and
// its browser at all, before anything is read.
func validBrowserRef(id, secret string) bool {
	return credential.ValidToken(BrowserSecretPrefix, secret) && strings.HasPrefix(id, "rr_") && len(id) <= 64
}

// heldByBrowser reports whether secret is r's browser secret.
func (s *Service) heldByBrowser(r *recourse.Recovery, secret string) bool {
	return len(r.BrowserHash) > 0 && credential.Equal(r.BrowserHash, s.browserHash(secret))
}

// requirementOf decodes the requirement a request was opened under. The
// result is shared and MUST NOT be modified (as with policy.Decide's).
func (s *Service) requirementOf(r *recourse.Recovery) (*policy.Requirement, error) {
	return s.requirements.decode(r.Requirement)
}

// requirementCache keeps decoded requirements by their JSON. A policy has
// a handful of distinct requirements, and every step of a recovery — most
// of them inside a write transaction — read one: decoding it each time
// cost as much as some of the transaction's statements
// (docs/benchmarks.md).
type requirementCache struct {
	mu sync.Mutex
	m  map[string]*policy.Requirement
}

// maxCachedRequirements bounds the cache; it starts over when full (a
// policy with more distinct requirements than this still works, slower).
const maxCachedRequirements = 256

func (c *requirementCache) decode(raw []byte) (*policy.Requirement, error) {
	c.mu.Lock()
	req, ok := c.m[string(raw)]
	c.mu.Unlock()
	if ok {
		return req, nil
	}
	req = new(policy.Requirement)
	if err := json.Unmarshal(raw, req); err != nil {
		return nil, internal("decode requirement", err)
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedRequirements {
		c.m = map[string]*policy.Requirement{}
	}
	c.m[string(raw)] = req
	c.mu.Unlock()
	return req, nil
}

// proof is what evidenceOf gathers for a request.
type proof struct {
	ev     policy.Evidence // its evidence and the approving votes on its current change
	labels []string        // ev, as its browser is told
	votes  []*recourse.RecoveryVote
	means  []recourse.AuthenticatorKind // the subject's active authenticators' kinds
	stored *recourse.RecoveryProof      // what it was made of (proofOf)
}

// withVote is p of r once v is stored too: what evidenceOf would read
// after it, in a transaction that holds r's row lock (tx.Recovery), under
// which a request's votes and evidence are added.
func (p proof) withVote(r *recourse.Recovery, v *recourse.RecoveryVote) proof {
	next := *p.stored
	next.Votes = append(slices.Clone(next.Votes), v)
	return proofOf(r, &next)
}

// evidenceOf gathers a request's evidence and the approving votes on its
// current change, in one read with what else its subject could prove.
func (s *Service) evidenceOf(ctx context.Context, tx recourse.Tx, r *recourse.Recovery) (proof, error) {
	p, err := tx.RecoveryProof(ctx, r.ID, r.AccountID)
	if err != nil {
		return proof{}, err
	}
	return proofOf(r, p), nil
}

// proofOf is what the stored proof p of r counts for.
func proofOf(r *recourse.Recovery, p *recourse.RecoveryProof) proof {
	var ev policy.Evidence
	var labels []string
	for _, e := range p.Evidence {
		switch e.Kind {
		case "code":
			var c policy.Code
			if json.Unmarshal(e.Detail, &c) == nil {
				ev.Codes = append(ev.Codes, c)
				labels = append(labels, "code sent by "+c.Channel)
			}
		case "possession":
			var p policy.Possession
			if json.Unmarshal(e.Detail, &p) == nil {
				ev.Possessions = append(ev.Possessions, p)
				labels = append(labels, "proof of "+p.Type)
			}
		case "recovery_code":
			ev.RecoveryCodes++
			labels = append(labels, "saved recovery code")
		case "attestation":
			var a policy.Attestation
			if json.Unmarshal(e.Detail, &a) == nil {
				ev.Attestations = append(ev.Attestations, a)
				labels = append(labels, "help-desk attestation")
			}
		case "identity_verification":
			var v policy.IdentityVerification
			if json.Unmarshal(e.Detail, &v) == nil {
				ev.IdentityVerifications = append(ev.IdentityVerifications, v)
				labels = append(labels, "identity verification")
			}
		}
	}
	for _, v := range p.Votes {
		if v.ChangeDigest == r.ChangeDigest && v.Vote == "approve" {
			ev.Approvals = append(ev.Approvals, policy.Approval{ApproverID: v.ApproverID, Roles: v.Roles})
			labels = append(labels, "approval")
		}
	}
	return proof{ev: ev, labels: labels, votes: p.Votes, means: p.Means, stored: p}
}

// RecoveryStatus returns what the browser that drives the request may see.
// A wrong secret or an unknown id gives the same unrevealed view as a fresh
// request, so the page never confirms that an account exists.
func (s *Service) RecoveryStatus(ctx context.Context, id, secret string) (*RecoveryView, error) {
	view := &RecoveryView{ID: id, State: recourse.RecoveryCollecting}
	// The request and its proof in one read: a status is read after every
	// step.
	r, p, err := s.loadForBrowserWithProof(ctx, id, secret)
	if errors.Is(err, recourse.ErrNotFound) {
		return view, nil
	}
	if err != nil {
		return nil, internal("read recovery", err)
	}
	return s.viewOf(r, proofOf(r, p))
}

// evidenceSeen is what a transaction that recorded evidence saw last: the
// request in its new state and all its evidence. The status the submitting
// browser gets back is built from it (viewOf) instead of read again.
type evidenceSeen struct {
	r *recourse.Recovery
	proof
}

// statusAfter is the status of request id for its browser right after a
// submission that recorded evidence: from what the submission's
// transaction saw, or read afresh when it saw none.
func (s *Service) statusAfter(ctx context.Context, id, secret string, seen *evidenceSeen) (*RecoveryView, error) {
	if seen.r == nil {
		return s.RecoveryStatus(ctx, id, secret)
	}
	return s.viewOf(seen.r, seen.proof)
}

// viewOf is what the browser of r, which holds the evidence in p, may see.
func (s *Service) viewOf(r *recourse.Recovery, p proof) (*RecoveryView, error) {
	ev, labels := p.ev, p.labels
	view := &RecoveryView{ID: r.ID, State: recourse.RecoveryCollecting}
	if len(labels) == 0 && r.Initiator == "self" {
		return view, nil
	}
	view.Revealed = true
	view.State, view.Action, view.Tier, view.Outcome = s.effectiveState(r), r.Action, r.Tier, r.Outcome
	view.CoolingUntil, view.ExpiresAt, view.Evidence = r.CoolingUntil, r.ExpiresAt, labels
	view.Approvals = len(ev.Approvals)
	if r.State.Open() {
		req, err := s.requirementOf(r)
		if err != nil {
			return nil, err
		}
		view.Requirement = policy.Describe(req.Evidence)
		res := policy.Satisfied(req, ev)
		view.Missing = res.Missing
		view.CanTOTP = slices.Contains(p.means, recourse.AuthTOTP)
		view.CanRecoveryCode = slices.Contains(p.means, recourse.AuthRecoveryCodes)
		view.CanPasskey = slices.Contains(p.means, recourse.AuthWebAuthn) && s.webauthn != nil
		view.CanContinue = view.State == recourse.RecoveryReady
	}
	return view, nil
}

// effectiveState is the state as of now, without writing: a cooling-off
// that has run out reads as ready, a request past its expiry as expired.
func (s *Service) effectiveState(r *recourse.Recovery) recourse.RecoveryState {
	now := s.now()
	if r.State.Open() && !now.Before(r.ExpiresAt) {
		return recourse.RecoveryExpired
	}
	if r.State == recourse.RecoveryCoolingOff && r.CoolingUntil != nil && !now.Before(*r.CoolingUntil) {
		return recourse.RecoveryReady
	}
	return r.State
}

// ---- evidence ----

// submitChallengeCode checks a code sent to one of the account's channels.
// Each code allows five tries and every wrong code counts against the
// account, atomically, whatever the resends.
// r is the request as its browser loaded it (SubmitChallengeCode).
func (s *Service) submitChallengeCode(ctx context.Context, r *recourse.Recovery, a *recourse.Account, code string, meta Meta, seen *evidenceSeen) error {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	return s.checkChallenge(ctx, r, a, code, meta, seen)
}

// checkChallenge checks a code for r, whose account a is (read with it:
// Store.RecoveryWithAccount); seen (nil: not wanted) receives what the
// transaction that records the evidence saw.
func (s *Service) checkChallenge(ctx context.Context, r *recourse.Recovery, a *recourse.Account, code string, meta Meta, seen *evidenceSeen) error {
	if s.effectiveState(r) != r.State || !r.State.Open() {
		return errRecoveryClosed
	}
	if a.RecoveryFailures >= maxRecoveryFailures || a.FrozenAt != nil {
		return errTooManyCodes
	}
	subject := s.readSubject(ctx, a, r)
	now := s.now()
	var err error
	// One transaction takes the attempt, compares, and either records the
	// evidence or counts the failure: an attempt is never taken without
	// its outcome being stored, and a right code costs one write.
	var refused error
	err = s.store.InTx(ctx, func(tx recourse.Tx) error {
		refused = nil
		tx = subject.in(tx)
		cands, err := tx.TakeChallengeAttempts(ctx, r.ID, maxCodeAttempts, now)
		if err != nil {
			return err
		}
		var match *recourse.Challenge
		for _, c := range cands {
			if credential.Equal(c.CodeHash, s.hasher.Sum("challenge:"+c.ID, code)) {
				match = c
			}
		}
		if match == nil {
			n, err := s.countRecoveryFailureTx(ctx, tx, r.AccountID, meta)
			if err != nil {
				return err
			}
			if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionRecoveryEvidence, Outcome: recourse.OutcomeFailure, SubjectID: r.AccountID,
				Reason: "wrong code", Attributes: map[string]string{"request": r.ID, "failures": fmt.Sprint(n)}}, meta); err != nil {
				return err
			}
			refused = errWrongCode
			if n >= maxRecoveryFailures {
				refused = errTooManyCodes
			}
			return nil // the attempt and the failure are kept
		}
		return s.recordEvidenceTx(ctx, tx, r.ID, meta, seen, func(tx recourse.Tx, r *recourse.Recovery) error {
			ok, err := tx.UseChallenge(ctx, match.ID, now)
			if err != nil {
				return err
			}
			if !ok {
				return errWrongCode // a racing submission used it first
			}
			ch, err := tx.Channel(ctx, match.ChannelID)
			age := time.Duration(0)
			if err == nil && ch.VerifiedAt != nil {
				age = now.Sub(*ch.VerifiedAt)
			}
			return s.addEvidence(ctx, tx, r, "code", policy.Code{Channel: match.Kind, ChannelAge: age}, "")
		}, "code by "+match.Kind)
	})
	if err != nil && recourse.ErrorCode(err) == recourse.EINTERNAL {
		return internal("check code", err)
	}
	if err != nil {
		return err
	}
	return refused
}

// submitTOTP proves possession of a still-bound authenticator app. A code
// is accepted once only.
func (s *Service) submitTOTP(ctx context.Context, id, secret, code string, meta Meta, seen *evidenceSeen) error {
	r, a, err := s.loadForBrowserWithAccount(ctx, id, secret)
	if errors.Is(err, recourse.ErrNotFound) {
		return errWrongCode
	}
	if err != nil {
		return internal("read recovery", err)
	}
	if !r.State.Open() || s.effectiveState(r) != r.State {
		return errRecoveryClosed
	}
	if a.RecoveryFailures >= maxRecoveryFailures || a.FrozenAt != nil {
		return errTooManyCodes
	}
	au, err := s.matchTOTP(ctx, r.AccountID, code)
	if err != nil {
		return err
	}
	if au == nil {
		if _, err := s.countRecoveryFailure(ctx, r.AccountID, meta); err != nil {
			return internal("count failure", err)
		}
		return errWrongCode
	}
	return s.recordEvidence(ctx, s.readSubject(ctx, a, r), r.ID, meta, seen, func(tx recourse.Tx, r *recourse.Recovery) error {
		if err := s.event(ctx, tx, au, recourse.AuthEventUsed, meta); err != nil {
			return err
		}
		return s.addEvidence(ctx, tx, r, "possession", policy.Possession{Type: "totp", AAL: 2}, "")
	}, "authenticator app")
}

// subjectRead is a transaction that answers a read of one account, the
// subject of a request, and of its channels (and of the accounts in
// others), with the copy read just before the transaction began, instead
// of reading them again: a submission reads the subject to
// refuse a locked-out or frozen account, and the transition its evidence
// may cause reads it for the notices. (A read inside the transaction is
// no fresher on PostgreSQL, where it takes no lock; it costs a round
// trip there and time on SQLite's one writer.)
type subjectRead struct {
	recourse.Tx
	a *recourse.Account
	// others are accounts read with it (readSubject), by id.
	others map[string]*recourse.Account
}

// Unwrap gives the job queue the store's transaction.
func (t subjectRead) Unwrap() recourse.Tx { return t.Tx }

func (t subjectRead) Account(ctx context.Context, id string) (*recourse.Account, error) {
	a := t.others[id]
	if id == t.a.ID {
		a = t.a
	}
	if a == nil {
		return t.Tx.Account(ctx, id)
	}
	c := *a
	return &c, nil
}

// Channel answers a read of one of the subject's channels from the same
// copy: the age of the channel a code went to is evidence.
func (t subjectRead) Channel(ctx context.Context, id string) (*recourse.Channel, error) {
	for _, chs := range [][]recourse.Channel{t.a.Emails, t.a.Phones} {
		for _, c := range chs {
			if c.ID == id {
				return &c, nil
			}
		}
	}
	return t.Tx.Channel(ctx, id)
}

// readSubject returns the copies a submission's transaction answers reads
// from (a subjectRead without its transaction): the subject a, read just
// before, and, for a collecting request — the only kind evidence can move
// to awaiting approval — the people approvers would read to notify
// (approverIDs). An account that cannot be read is left to the transaction.
func (s *Service) readSubject(ctx context.Context, a *recourse.Account, r *recourse.Recovery) *subjectRead {
	c := &subjectRead{a: a}
	if r.State != recourse.RecoveryCollecting {
		return c
	}
	for _, id := range approverIDs(a) {
		if id == a.ID || c.others[id] != nil {
			continue
		}
		if p, err := s.store.Account(ctx, id); err == nil {
			if c.others == nil {
				c.others = map[string]*recourse.Account{}
			}
			c.others[id] = p
		}
	}
	return c
}

// in returns tx answering reads from the copies in c (nil: tx itself).
func (c *subjectRead) in(tx recourse.Tx) recourse.Tx {
	if c == nil {
		return tx
	}
	t := *c
	t.Tx = tx
	return t
}

// submitSavedRecoveryCode uses up one of the account's saved recovery codes.
func (s *Service) submitSavedRecoveryCode(ctx context.Context, id, secret, code string, meta Meta, seen *evidenceSeen) error {
	r, err := s.loadForBrowser(ctx, s.store, id, secret)
	if errors.Is(err, recourse.ErrNotFound) {
		return errWrongCode
	}
	if err != nil {
		return internal("read recovery", err)
	}
	if !r.State.Open() || s.effectiveState(r) != r.State {
		return errRecoveryClosed
	}
	norm, ok := credential.NormalizeRecoveryCode(code)
	if !ok {
		return errWrongCode
	}
	err = s.recordEvidence(ctx, nil, r.ID, meta, seen, func(tx recourse.Tx, r *recourse.Recovery) error {
		setID, err := tx.UseRecoveryCode(ctx, r.AccountID, s.hasher.Sum("recovery-code", norm), s.now())
		if err != nil {
			return err
		}
		set, err := tx.Authenticator(ctx, setID)
		if err != nil {
			return err
		}
		if err := s.event(ctx, tx, set, recourse.AuthEventUsed, meta); err != nil {
			return err
		}
		return s.addEvidence(ctx, tx, r, "recovery_code", map[string]string{"set": setID}, "")
	}, "saved recovery code")
	if errors.Is(err, recourse.ErrNotFound) {
		if _, ferr := s.countRecoveryFailure(ctx, r.AccountID, meta); ferr != nil {
			return internal("count failure", ferr)
		}
		return errWrongCode
	}
	return err
}

// recordEvidence adds evidence in one transaction with the state change it
// causes and its audit event. subject, when not nil, holds what the caller
// read just before (readSubject).
func (s *Service) recordEvidence(ctx context.Context, subject *subjectRead, id string, meta Meta, seen *evidenceSeen, add func(tx recourse.Tx, r *recourse.Recovery) error, label string) error {
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		return s.recordEvidenceTx(ctx, subject.in(tx), id, meta, seen, add, label)
	})
	if err != nil && recourse.ErrorCode(err) == recourse.EINTERNAL {
		return internal("record evidence", err)
	}
	return err
}

// recordEvidenceTx is recordEvidence inside the caller's transaction.
// seen (nil: not wanted) receives what the transaction saw last.
func (s *Service) recordEvidenceTx(ctx context.Context, tx recourse.Tx, id string, meta Meta, seen *evidenceSeen, add func(tx recourse.Tx, r *recourse.Recovery) error, label string) error {
	if seen != nil {
		*seen = evidenceSeen{} // a transaction run again starts afresh
	}
	r, err := tx.Recovery(ctx, id)
	if err != nil {
		return err
	}
	if !r.State.Open() {
		return errRecoveryClosed
	}
	if err := add(tx, r); err != nil {
		return err
	}
	if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionRecoveryEvidence, Outcome: recourse.OutcomeSuccess,
		SubjectID: r.AccountID, PolicyDigest: r.PolicyDigest, Evidence: []string{label},
		Attributes: map[string]string{"request": r.ID}}, meta); err != nil {
		return err
	}
	return s.advanceSeen(ctx, tx, r, meta, seen, nil)
}

// ResendRecoveryCodes sends fresh codes to the channels of a request that
// is still collecting evidence. The answer is the same for an unknown
// request, a wrong browser and a request that has used up its codes, so it
// reveals nothing; at most maxChallenges codes go out per request.
func (s *Service) ResendRecoveryCodes(ctx context.Context, id, secret string, meta Meta) error {
	if !s.ipLimit.allow("recover:"+meta.IP, s.now()) {
		return errRateLimited
	}
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		r, err := s.loadForBrowser(ctx, tx, id, secret)
		if err != nil {
			return err
		}
		if r.State != recourse.RecoveryCollecting && r.State != recourse.RecoveryAwaitingApproval {
			return nil
		}
		sent, err := tx.Challenges(ctx, r.ID)
		if err != nil {
			return err
		}
		if len(sent) >= maxChallenges {
			s.log.Info("recovery code resend refused: limit reached", "request", r.ID)
			return nil
		}
		a, err := tx.Account(ctx, r.AccountID)
		if err != nil {
			return err
		}
		req, err := s.requirementOf(r)
		if err != nil {
			return err
		}
		return s.sendChallenges(ctx, tx, a, r, req, meta)
	})
	if errors.Is(err, recourse.ErrNotFound) {
		return nil
	}
	return internal("resend codes", err)
}

// ---- hygiene ----

// sweepBatch bounds the requests one sweep expires; the next sweep takes
// the rest.
const sweepBatch = 500

// Swept is what one sweep did.
type Swept struct {
	// Expired counts the requests moved to expired.
	Expired int
	// SecretsDeleted counts expired tokens and recovery codes deleted.
	SecretsDeleted int
}

// Sweep is the workflow's hygiene, run periodically by the job queue (and
// safe to run on several replicas at once): it expires every open request
// past its expiry — each in its own transaction with its audit event and
// notices, as AdvanceRecovery does — and deletes the tokens and recovery
// codes that expired (they can never work again; only their HMACs were
// stored).
func (s *Service) Sweep(ctx context.Context) (Swept, error) {
	var out Swept
	now := s.now()
	ids, err := s.store.ExpiredRecoveries(ctx, now, sweepBatch)
	if err != nil {
		return out, internal("sweep", err)
	}
	for _, id := range ids {
		if err := s.AdvanceRecovery(ctx, id); err != nil {
			return out, internal("sweep: expire "+id, err)
		}
		out.Expired++
	}
	if out.SecretsDeleted, err = s.store.DeleteExpiredSecrets(ctx, now); err != nil {
		return out, internal("sweep", err)
	}
	if out.Expired > 0 || out.SecretsDeleted > 0 {
		s.log.Info("sweep", "expired_requests", out.Expired, "deleted_secrets", out.SecretsDeleted)
	}
	return out, nil
}

// ---- state machine ----

// AdvanceRecovery re-evaluates a request (the job queue calls it at the end
// of a cooling-off, the sweep at expiry). It is idempotent.
func (s *Service) AdvanceRecovery(ctx context.Context, id string) error {
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		r, err := tx.Recovery(ctx, id)
		if err != nil {
			return err
		}
		return s.advance(ctx, tx, r, systemMeta)
	})
	if errors.Is(err, recourse.ErrNotFound) {
		return nil
	}
	return err
}

// advance moves r as far as its evidence, votes and the clock allow, within
// tx, writing an audit event and notices for each transition.
func (s *Service) advance(ctx context.Context, tx recourse.Tx, r *recourse.Recovery, meta Meta) error {
	return s.advanceSeen(ctx, tx, r, meta, nil, nil)
}

// advanceSeen is advance; seen (nil: not wanted) receives the request, in
// the state advance leaves it in, and its evidence. It stays empty when
// advance returns before reading the evidence (a closed or expired request).
// known, when not nil, is r's proof as the transaction left it
// (proof.withVote), and is not read again.
func (s *Service) advanceSeen(ctx context.Context, tx recourse.Tx, r *recourse.Recovery, meta Meta, seen *evidenceSeen, known *proof) error {
	if !r.State.Open() {
		return nil
	}
	now := s.now()
	from := r.State
	if !now.Before(r.ExpiresAt) {
		return s.transition(ctx, tx, r, recourse.RecoveryExpired, "The request was not finished in time.", meta)
	}
	req, err := s.requirementOf(r)
	if err != nil {
		return err
	}
	var p proof
	if known != nil {
		p = *known
	} else if p, err = s.evidenceOf(ctx, tx, r); err != nil {
		return err
	}
	ev := p.ev
	if seen != nil {
		*seen = evidenceSeen{r: r, proof: p} // transition below changes r in place
	}
	switch r.State {
	case recourse.RecoveryCollecting, recourse.RecoveryAwaitingApproval:
		res := policy.Satisfied(req, ev)
		if res.Satisfied {
			if res.Delay <= 0 {
				return s.transition(ctx, tx, r, recourse.RecoveryReady, "", meta)
			}
			until := now.Add(res.Delay)
			r.CoolingUntil = &until
			if err := s.transition(ctx, tx, r, recourse.RecoveryCoolingOff, "", meta); err != nil {
				return err
			}
			if s.scheduler != nil {
				return s.scheduler.ScheduleAdvance(ctx, tx, r.ID, until)
			}
			return nil
		}
		if r.State == recourse.RecoveryCollecting && onlyApprovalsMissing(req, ev) {
			return s.transition(ctx, tx, r, recourse.RecoveryAwaitingApproval, "", meta)
		}
	case recourse.RecoveryCoolingOff:
		if r.CoolingUntil != nil && !now.Before(*r.CoolingUntil) {
			return s.transition(ctx, tx, r, recourse.RecoveryReady, "", meta)
		}
	}
	_ = from
	return nil
}

// onlyApprovalsMissing reports whether approvals alone would complete the
// evidence: the requester has done their part.
func onlyApprovalsMissing(req *policy.Requirement, ev policy.Evidence) bool {
	all := []string{"manager", "recovery_contact", "sponsor", "owner"}
	var groups func(n *policy.Node)
	groups = func(n *policy.Node) {
		if n == nil {
			return
		}
		if n.Approval != nil {
			all = append(all, n.Approval.From...)
		}
		for _, c := range append(append(slices.Clone(n.All), n.Any...), nof(n)...) {
			groups(c)
		}
	}
	groups(req.Evidence)
	hyp := ev
	hyp.Approvals = slices.Clone(ev.Approvals)
	for i := range 10 {
		hyp.Approvals = append(hyp.Approvals, policy.Approval{ApproverID: fmt.Sprintf("hypothetical-%d", i), Roles: all})
	}
	return policy.Satisfied(req, hyp).Satisfied
}

func nof(n *policy.Node) []*policy.Node {
	if n.NOf == nil {
		return nil
	}
	return n.NOf.Of
}

// transition stores a new state with its audit event and notices.
func (s *Service) transition(ctx context.Context, tx recourse.Tx, r *recourse.Recovery, to recourse.RecoveryState, outcome string, meta Meta) error {
	from := r.State
	r.State, r.UpdatedAt = to, s.now()
	if outcome != "" {
		r.Outcome = outcome
	}
	if err := tx.UpdateRecovery(ctx, r); err != nil {
		return err
	}
	if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionRecoveryTransition, Outcome: recourse.OutcomeSuccess,
		SubjectID: r.AccountID, PolicyDigest: r.PolicyDigest, Reason: outcome,
		Before: map[string]string{"state": string(from)}, After: map[string]string{"state": string(to)},
		Attributes: map[string]string{"request": r.ID, "action": r.Action}}, meta); err != nil {
		return err
	}
	// The subject's account is read only for the states whose notices go
	// to it or its approvers; completed, cancelled and denied requests are
	// told about by their callers.
	var a *recourse.Account
	switch to {
	case recourse.RecoveryAwaitingApproval, recourse.RecoveryCoolingOff, recourse.RecoveryReady, recourse.RecoveryExpired:
		var err error
		if a, err = tx.Account(ctx, r.AccountID); err != nil {
			return err
		}
	}
	if err := s.reportTransition(ctx, tx, a, r, from, meta); err != nil {
		return err
	}
	switch to {
	case recourse.RecoveryAwaitingApproval:
		return s.notifyApprovers(ctx, tx, a, r, meta)
	case recourse.RecoveryCoolingOff:
		return s.noticeWithCancel(ctx, tx, a, r, "Your account recovery is waiting before it completes", []string{
			"A recovery of your account (" + describeAction(r.Action) + ") has all the evidence it needs.",
			"For your safety it waits until " + r.CoolingUntil.UTC().Format("2006-01-02 15:04 UTC") + " before it can be completed.",
		}, meta)
	case recourse.RecoveryReady:
		return s.notifyAccount(ctx, tx, a, "Your account recovery can be completed", []string{
			"The recovery of your account (" + describeAction(r.Action) + ") can now be completed from the page where it was started.",
		}, meta)
	case recourse.RecoveryExpired:
		return s.notifyAccount(ctx, tx, a, "Your account recovery expired", []string{
			"The recovery of your account (" + describeAction(r.Action) + ") was not finished in time and stopped.",
		}, meta)
	}
	return nil
}

// eligibleRoles returns the approval roles that person holds towards the
// subject, among those the requirement asks for.
func (s *Service) eligibleRoles(ctx context.Context, subject, person *recourse.Account, req *policy.Requirement) []string {
	asked := map[string]bool{}
	var walk func(n *policy.Node)
	walk = func(n *policy.Node) {
		if n == nil {
			return
		}
		if n.Approval != nil {
			for _, r := range n.Approval.From {
				asked[r] = true
			}
		}
		for _, c := range append(append(slices.Clone(n.All), n.Any...), nof(n)...) {
			walk(c)
		}
	}
	walk(req.Evidence)
	var roles []string
	if asked["manager"] && subject.ManagerID == person.ID {
		roles = append(roles, "manager")
	}
	if asked["sponsor"] && subject.SponsorID == person.ID {
		roles = append(roles, "sponsor")
	}
	if asked["recovery_contact"] && slices.Contains(subject.RecoveryContacts, person.ID) {
		roles = append(roles, "recovery_contact")
	}
	if asked["owner"] && slices.Contains(subject.Owners, person.ID) {
		roles = append(roles, "owner")
	}
	for r := range asked {
		if g, ok := strings.CutPrefix(r, "group:"); ok && person.InGroup(g) {
			roles = append(roles, r)
		}
	}
	slices.Sort(roles)
	return roles
}

// approverIDs are the people named on subject who may approve its requests
// (whether they may approve a given one is the policy's): its manager,
// sponsor, recovery contacts and owners.
func approverIDs(subject *recourse.Account) []string {
	ids := append([]string{subject.ManagerID, subject.SponsorID}, subject.RecoveryContacts...)
	return slices.DeleteFunc(append(ids, subject.Owners...), func(id string) bool { return id == "" })
}

// approvers resolves the people who may approve r, from the directory.
func (s *Service) approvers(ctx context.Context, tx recourse.Tx, subject *recourse.Account, r *recourse.Recovery) ([]*recourse.Account, error) {
	req, err := s.requirementOf(r)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{subject.ID: true, r.InitiatorID: true}
	var out []*recourse.Account
	consider := func(a *recourse.Account) {
		if a == nil || seen[a.ID] || a.Kind != recourse.KindHuman || a.Status != recourse.StatusActive {
			return
		}
		seen[a.ID] = true
		if len(s.eligibleRoles(ctx, subject, a, req)) > 0 {
			out = append(out, a)
		}
	}
	for _, id := range approverIDs(subject) {
		if seen[id] {
			continue
		}
		if a, err := tx.Account(ctx, id); err == nil {
			consider(a)
		}
	}
	groups := map[string]bool{}
	var walk func(n *policy.Node)
	walk = func(n *policy.Node) {
		if n == nil {
			return
		}
		if n.Approval != nil {
			for _, r := range n.Approval.From {
				if g, ok := strings.CutPrefix(r, "group:"); ok {
					groups[g] = true
				}
			}
		}
		for _, c := range append(append(slices.Clone(n.All), n.Any...), nof(n)...) {
			walk(c)
		}
	}
	walk(req.Evidence)
	for g := range groups {
		members, err := tx.AccountsInGroup(ctx, g, 100)
		if err != nil {
			return nil, err
		}
		for _, m := range members {
			consider(m)
		}
	}
	return out, nil
}

func (s *Service) notifyApprovers(ctx context.Context, tx recourse.Tx, subject *recourse.Account, r *recourse.Recovery, meta Meta) error {
	people, err := s.approvers(ctx, tx, subject, r)
	if err != nil {
		return err
	}
	for _, p := range people {
		if err := s.notifyAccount(ctx, tx, p, "Your approval is needed: "+subject.DisplayName, []string{
			subject.DisplayName + " (" + subject.Username + ") asks to " + describeAction(r.Action) + ".",
			"Review exactly what would change, and approve or deny, at " + s.publicURL("/approvals/"+r.ID) + " (sign in first).",
			"If you did not expect this, deny it: account takeovers often start with a convincing request.",
		}, meta); err != nil {
			return err
		}
	}
	return nil
}
