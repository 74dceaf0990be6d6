package web

import (
	"net/http"
	"net/url"
	"time"

	"github.com/recourse/recourse"
	apiv1 "github.com/recourse/recourse/client"
	"github.com/recourse/recourse/service"
)

// API key routes. Revoking and rotating take no scope at the route: a key
// may always revoke or rotate itself, and the service asks api_keys:write
// of a key that acts on another.
func (s *Server) apiKeyRoutes() []apiRoute {
	return []apiRoute{
		{method: "GET", path: "/api/v1/api-keys", auth: apiCaller, scope: "api_keys:read", handle: s.apiListKeys},
		{method: "POST", path: "/api/v1/api-keys", auth: apiCaller, scope: "api_keys:write", handle: s.apiCreateKey},
		{method: "GET", path: "/api/v1/api-keys/{id}", auth: apiCaller, scope: "api_keys:read", handle: s.apiGetKey},
		{method: "DELETE", path: "/api/v1/api-keys/{id}", auth: apiCaller, handle: s.apiRevokeKey},
		{method: "POST", path: "/api/v1/api-keys/{id}/rotate", auth: apiCaller, handle: s.apiRotateKey},
	}
}

func apiKeyJSON(k *recourse.APIKey, svc *service.Service) apiv1.APIKey {
	return apiv1.APIKey{ID: k.ID, Name: k.Name, Owner: k.OwnerID, Scopes: nonNil(k.Scopes), Hint: k.Hint, State: svc.APIKeyState(k),
		CreatedBy: k.CreatedBy, CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, LastUsedAt: k.LastUsedAt, LastUsedIP: k.LastUsedIP,
		RevokedAt: k.RevokedAt, RotatedFrom: k.RotatedFrom, ReplacedBy: k.ReplacedBy, Version: k.Version}
}

func (s *Server) keyReply(status int, k *recourse.APIKey) (*apiReply, error) {
	return &apiReply{Status: status, Body: apiKeyJSON(k, s.svc), ETag: versionETag(k.Version), Location: "/api/v1/api-keys/" + url.PathEscape(k.ID)}, nil
}

func (s *Server) issuedReply(k *service.IssuedAPIKey) (*apiReply, error) {
	return &apiReply{Status: http.StatusCreated, Body: apiv1.IssuedAPIKey{APIKey: apiKeyJSON(k.Key, s.svc), Secret: k.Secret},
		ETag: versionETag(k.Key.Version), Location: "/api/v1/api-keys/" + url.PathEscape(k.Key.ID)}, nil
}

// apiListKeys lists keys by id; ?owner= selects one owner's.
func (s *Server) apiListKeys(c *apiCall) (*apiReply, error) {
	q := c.r.URL.Query()
	limit, after, err := pageParams(q)
	if err != nil {
		return nil, err
	}
	list, err := s.svc.APIKeys(c.ctx, c.p, recourse.APIKeyFilter{OwnerID: q.Get("owner"), After: after, Limit: limit + 1})
	if err != nil {
		return nil, err
	}
	out := apiv1.APIKeyList{APIKeys: []apiv1.APIKey{}}
	if len(list) > limit {
		list = list[:limit]
		out.NextCursor = pageCursor(list[limit-1].ID)
	}
	for _, k := range list {
		out.APIKeys = append(out.APIKeys, apiKeyJSON(k, s.svc))
	}
	return okReply(out)
}

// apiCreateKey issues a key; its secret is in this answer only.
func (s *Server) apiCreateKey(c *apiCall) (*apiReply, error) {
	var in apiv1.CreateAPIKeyRequest
	if err := decodeAPIBody(c.body, &in, true); err != nil {
		return nil, err
	}
	nk := service.NewAPIKey{Name: in.Name, OwnerID: in.Owner, Scopes: in.Scopes}
	if in.ExpiresAt != nil {
		nk.ExpiresAt = *in.ExpiresAt
	}
	k, err := s.svc.CreateAPIKey(c.ctx, c.p, nk, c.meta)
	if err != nil {
		return nil, err
	}
	return s.issuedReply(k)
}

func (s *Server) apiGetKey(c *apiCall) (*apiReply, error) {
	k, err := s.svc.APIKey(c.ctx, c.p, c.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return s.keyReply(http.StatusOK, k)
}

// apiRevokeKey stops a key at once; If-Match (optional) refuses a key
// changed since it was read.
func (s *Server) apiRevokeKey(c *apiCall) (*apiReply, error) {
	ver, err := ifMatchVersion(c.r)
	if err != nil {
		return nil, err
	}
	k, err := s.svc.RevokeAPIKey(c.ctx, c.p, c.r.PathValue("id"), ver, c.meta)
	if err != nil {
		return nil, err
	}
	return s.keyReply(http.StatusOK, k)
}

// apiRotateKey issues the key's replacement; the old key keeps working for
// the overlap.
func (s *Server) apiRotateKey(c *apiCall) (*apiReply, error) {
	ver, err := ifMatchVersion(c.r)
	if err != nil {
		return nil, err
	}
	var in apiv1.RotateAPIKeyRequest
	if err := decodeAPIBody(c.body, &in, false); err != nil {
		return nil, err
	}
	overlap := time.Duration(-1)
	if in.Overlap != "" {
		d, err := time.ParseDuration(in.Overlap)
		if err != nil || d < 0 {
			return nil, recourse.FieldError("overlap", "must be a duration like 24h or 30m")
		}
		overlap = d
	}
	k, err := s.svc.RotateAPIKey(c.ctx, c.p, c.r.PathValue("id"), overlap, ver, c.meta)
	if err != nil {
		return nil, err
	}
	return s.issuedReply(k)
}
