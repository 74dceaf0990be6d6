package web

import (
	"bytes"
	"net/http"
	"net/url"

	"github.com/recourse/recourse"
	apiv1 "github.com/recourse/recourse/client"
	"github.com/recourse/recourse/service"
)

func (s *Server) apiAccountRoutes() []apiRoute {
	return []apiRoute{
		{method: "GET", path: "/api/v1/accounts", auth: apiCaller, scope: "accounts:read", handle: s.apiListAccounts},
		{method: "POST", path: "/api/v1/accounts", auth: apiCaller, scope: "accounts:write", handle: s.apiCreateAccount},
		{method: "POST", path: "/api/v1/accounts/import", auth: apiCaller, scope: "accounts:write", maxBody: apiMaxImport, ndjson: true, handle: s.apiImportAccounts},
		{method: "GET", path: "/api/v1/accounts/{id}", auth: apiCaller, scope: "accounts:read", handle: s.apiGetAccount},
		{method: "PUT", path: "/api/v1/accounts/{id}", auth: apiCaller, scope: "accounts:write", handle: s.apiUpdateAccount},
		{method: "GET", path: "/api/v1/accounts/{id}/authenticators", auth: apiCaller, scope: "accounts:read", handle: s.apiAuthenticators},
		{method: "GET", path: "/api/v1/accounts/{id}/channels", auth: apiCaller, scope: "accounts:read", handle: s.apiChannels},
		{method: "POST", path: "/api/v1/accounts/{id}/verify-caller", auth: apiCaller, scope: "helpdesk:verify", handle: s.apiVerifyCaller},
	}
}

// accountJSON renders an account; full shows channel addresses (to
// administrators), otherwise they are masked.
func accountJSON(a *recourse.Account, full bool) apiv1.Account {
	j := a.ToJSON()
	if !full {
		for i := range j.Emails {
			j.Emails[i].Address = service.MaskAddress(recourse.ChannelEmail, j.Emails[i].Address)
		}
		for i := range j.Phones {
			j.Phones[i].Number = service.MaskAddress(recourse.ChannelPhone, j.Phones[i].Number)
		}
	}
	return apiv1.Account{AccountJSON: j, Locked: a.Locked(), Frozen: a.FrozenAt != nil, ChannelsMasked: !full,
		Version: a.Version, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
}

func accountReply(status int, a *recourse.Account, full bool) (*apiReply, error) {
	return &apiReply{Status: status, Body: accountJSON(a, full), ETag: versionETag(a.Version),
		Location: "/api/v1/accounts/" + url.PathEscape(a.ID)}, nil
}

func (s *Server) apiListAccounts(c *apiCall) (*apiReply, error) {
	limit, after, err := pageParams(c.r.URL.Query())
	if err != nil {
		return nil, err
	}
	list, full, err := s.svc.DirectoryAccounts(c.ctx, c.p, recourse.AccountFilter{After: after, Limit: limit + 1, Query: c.r.URL.Query().Get("q")})
	if err != nil {
		return nil, err
	}
	out := apiv1.AccountList{Accounts: []apiv1.Account{}}
	if len(list) > limit {
		list = list[:limit]
		out.NextCursor = pageCursor(list[limit-1].ID)
	}
	for _, a := range list {
		out.Accounts = append(out.Accounts, accountJSON(a, full))
	}
	return okReply(out)
}

// decodeAccount reads one account in the account JSON shape.
func decodeAccount(body []byte) (*recourse.Account, error) {
	var j recourse.AccountJSON
	if err := decodeAPIBody(body, &j, true); err != nil {
		return nil, err
	}
	return j.Account(), nil
}

func (s *Server) apiCreateAccount(c *apiCall) (*apiReply, error) {
	a, err := decodeAccount(c.body)
	if err != nil {
		return nil, err
	}
	if err := s.svc.CreateAccountAs(c.ctx, c.p, a, c.meta); err != nil {
		return nil, err
	}
	fresh, full, err := s.svc.DirectoryAccount(c.ctx, c.p, a.ID)
	if err != nil {
		return nil, err
	}
	return accountReply(http.StatusCreated, fresh, full)
}

// apiImportAccounts creates or updates accounts, all or nothing, from a
// JSON array or JSON lines (the `recourse account import` format).
func (s *Server) apiImportAccounts(c *apiCall) (*apiReply, error) {
	if len(c.body) == 0 {
		return nil, recourse.Errorf(recourse.EINVALID, "A JSON array or JSON lines of accounts is required.")
	}
	accts, err := recourse.ParseAccounts(bytes.NewReader(c.body))
	if err != nil {
		// ParseAccounts names the line and the problem, never more than
		// the caller sent.
		return nil, recourse.Errorf(recourse.EINVALID, "Import refused, nothing changed: %s", clipText(err.Error(), 300))
	}
	res, err := s.svc.ImportAccountsAs(c.ctx, c.p, accts, c.meta)
	if err != nil {
		return nil, err
	}
	return okReply(apiv1.ImportResult{Created: res.Created, Updated: res.Updated})
}

func (s *Server) apiGetAccount(c *apiCall) (*apiReply, error) {
	a, full, err := s.svc.DirectoryAccount(c.ctx, c.p, c.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return accountReply(http.StatusOK, a, full)
}

// apiUpdateAccount replaces an account's directory facts. If-Match is
// required: two administrators editing at once must not overwrite each
// other.
func (s *Server) apiUpdateAccount(c *apiCall) (*apiReply, error) {
	ver, err := ifMatchVersion(c.r)
	if err != nil {
		return nil, err
	}
	if ver == 0 {
		return nil, recourse.FieldError("If-Match", "is required: send the ETag of the account you read")
	}
	a, err := decodeAccount(c.body)
	if err != nil {
		return nil, err
	}
	id := c.r.PathValue("id")
	if a.ID == "" {
		a.ID = id
	}
	if a.ID != id {
		return nil, recourse.FieldError("id", "must match the account in the path; ids never change")
	}
	fresh, err := s.svc.UpdateAccountAs(c.ctx, c.p, a, ver, c.meta)
	if err != nil {
		return nil, err
	}
	return accountReply(http.StatusOK, fresh, true)
}

func (s *Server) apiAuthenticators(c *apiCall) (*apiReply, error) {
	list, unused, err := s.svc.AccountAuthenticators(c.ctx, c.p, c.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	out := apiv1.AuthenticatorList{Authenticators: []apiv1.Authenticator{}}
	for _, au := range list {
		j := apiv1.Authenticator{ID: au.ID, Kind: string(au.Kind), Status: string(au.Status), Name: au.Name, DeviceBound: au.DeviceBound,
			CreatedAt: au.CreatedAt, LastUsedAt: au.LastUsedAt, RevokedAt: au.RevokedAt}
		if n, found := unused[au.ID]; found {
			j.UnusedCodes = &n
		}
		out.Authenticators = append(out.Authenticators, j)
	}
	return okReply(out)
}

func (s *Server) apiChannels(c *apiCall) (*apiReply, error) {
	list, err := s.svc.AccountChannels(c.ctx, c.p, c.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	out := apiv1.ChannelList{Channels: []apiv1.Channel{}}
	for _, ch := range list {
		out.Channels = append(out.Channels, apiv1.Channel{ID: ch.ID, Kind: string(ch.Kind), Address: ch.Address, Verified: ch.Verified,
			VerifiedAt: ch.VerifiedAt, Shared: ch.Shared, UsableForRecovery: ch.UsableForRecovery()})
	}
	return okReply(out)
}

// apiVerifyCaller checks a code the caller reads from their own
// authenticator app (the help desk's caller verification).
func (s *Server) apiVerifyCaller(c *apiCall) (*apiReply, error) {
	var in apiv1.VerifyCallerRequest
	if err := decodeAPIBody(c.body, &in, true); err != nil {
		return nil, err
	}
	ok, err := s.svc.VerifyCaller(c.ctx, c.p.Principal, c.r.PathValue("id"), in.Code, c.p.Meta(c.meta))
	if err != nil {
		return nil, err
	}
	return okReply(apiv1.VerifyCallerResult{Verified: ok})
}
