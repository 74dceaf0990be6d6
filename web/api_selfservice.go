package web

import (
	"net/http"
	"net/url"

	apiv1 "github.com/recourse/recourse/client"
	"github.com/recourse/recourse/service"
)

// The self-service recovery API is the twin of the /recover pages for
// clients that are not browsers (a kiosk, a chat bot, a mobile app). It
// calls the same service methods. Starting answers 202 with the same shape
// for known and unknown identifiers; the answer's secret binds the request
// to the client, which sends it in the Recourse-Recovery-Secret header of
// every follow-up call, as a browser sends its cookie.
func (s *Server) apiSelfServiceRoutes() []apiRoute {
	const base = "/api/v1/self-service/recoveries"
	return []apiRoute{
		{method: "POST", path: base, auth: apiPublic, handle: s.apiSelfStart},
		{method: "GET", path: base + "/{id}", auth: apiPublic, handle: s.apiSelfStatus},
		{method: "POST", path: base + "/{id}/claim", auth: apiPublic, handle: s.apiSelfClaim},
		{method: "POST", path: base + "/{id}/codes", auth: apiPublic, handle: s.apiSelfCode},
		{method: "POST", path: base + "/{id}/totp", auth: apiPublic, handle: s.apiSelfTOTP},
		{method: "POST", path: base + "/{id}/recovery-codes", auth: apiPublic, handle: s.apiSelfSavedCode},
		{method: "POST", path: base + "/{id}/continue", auth: apiPublic, handle: s.apiSelfContinue},
		{method: "POST", path: base + "/{id}/complete", auth: apiPublic, handle: s.apiSelfComplete},
	}
}

func handleReply(status int, rs *service.RecoveryStart) (*apiReply, error) {
	return &apiReply{Status: status, Body: apiv1.RecoveryHandle{RequestID: rs.RequestID, Secret: rs.BrowserSecret},
		Location: "/api/v1/self-service/recoveries/" + url.PathEscape(rs.RequestID)}, nil
}

// apiSelfStart is "Can't sign in?": 202 Accepted whatever the identifier.
func (s *Server) apiSelfStart(c *apiCall) (*apiReply, error) {
	var in apiv1.StartRecoveryRequest
	if err := decodeAPIBody(c.body, &in, true); err != nil {
		return nil, err
	}
	rs, err := s.svc.StartRecovery(c.ctx, in.Identifier, in.Lost, c.meta)
	if err != nil {
		return nil, err
	}
	return handleReply(http.StatusAccepted, rs)
}

func (s *Server) selfStatus(c *apiCall) (*apiReply, error) {
	v, err := s.svc.RecoveryStatus(c.ctx, c.r.PathValue("id"), c.r.Header.Get(recoverySecretHeader))
	if err != nil {
		return nil, err
	}
	return statusReply(v)
}

func statusReply(v *service.RecoveryView) (*apiReply, error) {
	out := apiv1.RecoveryStatus{ID: v.ID, Revealed: v.Revealed, State: string(v.State), Action: v.Action, Tier: v.Tier, Outcome: v.Outcome,
		Requirement: v.Requirement, Missing: nonNil(v.Missing), Evidence: nonNil(v.Evidence), Approvals: v.Approvals,
		CoolingUntil: v.CoolingUntil, CanTOTP: v.CanTOTP, CanRecoveryCode: v.CanRecoveryCode, CanContinue: v.CanContinue}
	if v.Revealed {
		exp := v.ExpiresAt
		out.ExpiresAt = &exp
	}
	return okReply(out)
}

func (s *Server) apiSelfStatus(c *apiCall) (*apiReply, error) { return s.selfStatus(c) }

// apiSelfClaim binds a request the help desk opened to this client, with a
// code sent to the caller's own channel; the answer holds the secret.
func (s *Server) apiSelfClaim(c *apiCall) (*apiReply, error) {
	var in apiv1.CodeRequest
	if err := decodeAPIBody(c.body, &in, true); err != nil {
		return nil, err
	}
	rs, err := s.svc.ClaimRecovery(c.ctx, c.r.PathValue("id"), in.Code, c.meta)
	if err != nil {
		return nil, err
	}
	return handleReply(http.StatusOK, rs)
}

// selfEvidence answers a submission with the request's status as the
// submission left it.
func (s *Server) selfEvidence(c *apiCall, submit func(id, secret, code string) (*service.RecoveryView, error)) (*apiReply, error) {
	var in apiv1.CodeRequest
	if err := decodeAPIBody(c.body, &in, true); err != nil {
		return nil, err
	}
	v, err := submit(c.r.PathValue("id"), c.r.Header.Get(recoverySecretHeader), in.Code)
	if err != nil {
		return nil, err
	}
	return statusReply(v)
}

func (s *Server) apiSelfCode(c *apiCall) (*apiReply, error) {
	return s.selfEvidence(c, func(id, secret, code string) (*service.RecoveryView, error) {
		return s.svc.SubmitChallengeCode(c.ctx, id, secret, code, c.meta)
	})
}

func (s *Server) apiSelfTOTP(c *apiCall) (*apiReply, error) {
	return s.selfEvidence(c, func(id, secret, code string) (*service.RecoveryView, error) {
		return s.svc.SubmitTOTP(c.ctx, id, secret, code, c.meta)
	})
}

func (s *Server) apiSelfSavedCode(c *apiCall) (*apiReply, error) {
	return s.selfEvidence(c, func(id, secret, code string) (*service.RecoveryView, error) {
		return s.svc.SubmitSavedRecoveryCode(c.ctx, id, secret, code, c.meta)
	})
}

// apiSelfContinue mints the single-use completion token of a ready
// request.
func (s *Server) apiSelfContinue(c *apiCall) (*apiReply, error) {
	if err := decodeAPIBody(c.body, &struct{}{}, false); err != nil {
		return nil, err
	}
	tok, err := s.svc.ContinueRecovery(c.ctx, c.r.PathValue("id"), c.r.Header.Get(recoverySecretHeader), c.meta)
	if err != nil {
		return nil, err
	}
	return okReply(apiv1.CompletionToken{CompletionToken: tok})
}

// apiSelfComplete applies the change and answers the person's new session,
// or the temporary access pass they asked for instead.
func (s *Server) apiSelfComplete(c *apiCall) (*apiReply, error) {
	var in apiv1.CompleteRecoveryRequest
	if err := decodeAPIBody(c.body, &in, true); err != nil {
		return nil, err
	}
	done, err := s.svc.CompleteRecovery(c.ctx, c.r.PathValue("id"), c.r.Header.Get(recoverySecretHeader), in.CompletionToken,
		service.Completion{NewPassword: in.NewPassword, AccessPass: in.AccessPass}, c.meta)
	if err != nil {
		return nil, err
	}
	if done.SignIn == nil {
		exp := done.AccessPassExpires.UTC()
		return okReply(apiv1.CompletedRecovery{Restricted: true, AccessPass: done.AccessPass, AccessPassExpiresAt: &exp})
	}
	return okReply(apiv1.CompletedRecovery{SessionToken: done.SignIn.Token, Restricted: done.SignIn.Session.Restricted})
}
