package web

import (
	"net/http"
	"net/url"

	apiv1 "github.com/recourse/recourse/client"
	"github.com/recourse/recourse/service"
)

func (s *Server) apiWebhookRoutes() []apiRoute {
	return []apiRoute{
		{method: "GET", path: "/api/v1/webhooks", auth: apiCaller, scope: "webhooks:read", handle: s.apiListWebhooks},
		{method: "POST", path: "/api/v1/webhooks", auth: apiCaller, scope: "webhooks:write", handle: s.apiCreateWebhook},
		{method: "POST", path: "/api/v1/webhooks/{id}/rotate-secret", auth: apiCaller, scope: "webhooks:write", handle: s.apiRotateWebhook},
		{method: "DELETE", path: "/api/v1/webhooks/{id}", auth: apiCaller, scope: "webhooks:write", handle: s.apiDeleteWebhook},
	}
}

func webhookJSON(w *service.Webhook) apiv1.Webhook {
	return apiv1.Webhook{ID: w.ID, URL: w.URL, Events: nonNil(w.Events), Source: w.Source, RotatingUntil: w.RotatingUntil,
		Failures: w.Failures, Disabled: w.Disabled, DisabledReason: w.DisabledReason, CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt}
}

// apiListWebhooks lists every endpoint (never a secret), by id.
func (s *Server) apiListWebhooks(c *apiCall) (*apiReply, error) {
	limit, after, err := pageParams(c.r.URL.Query())
	if err != nil {
		return nil, err
	}
	list, err := s.svc.ListWebhooks(c.ctx, c.p.Principal)
	if err != nil {
		return nil, err
	}
	page, next := paginate(list, func(w *service.Webhook) string { return w.ID }, after, limit)
	out := apiv1.WebhookList{Webhooks: []apiv1.Webhook{}, NextCursor: next}
	for _, w := range page {
		out.Webhooks = append(out.Webhooks, webhookJSON(w))
	}
	return okReply(out)
}

// apiCreateWebhook adds an endpoint; its signing secret is in this answer
// only.
func (s *Server) apiCreateWebhook(c *apiCall) (*apiReply, error) {
	var in apiv1.CreateWebhookRequest
	if err := decodeAPIBody(c.body, &in, true); err != nil {
		return nil, err
	}
	w, secret, err := s.svc.CreateWebhook(c.ctx, c.p.Principal, in.URL, in.Events, c.p.Meta(c.meta))
	if err != nil {
		return nil, err
	}
	return &apiReply{Status: http.StatusCreated, Body: apiv1.CreatedWebhook{Webhook: webhookJSON(w), Secret: secret},
		Location: "/api/v1/webhooks/" + url.PathEscape(w.ID)}, nil
}

// apiRotateWebhook gives an endpoint a new signing secret; the old one
// signs on for the overlap.
func (s *Server) apiRotateWebhook(c *apiCall) (*apiReply, error) {
	if err := decodeAPIBody(c.body, &struct{}{}, false); err != nil {
		return nil, err
	}
	secret, err := s.svc.RotateWebhookSecret(c.ctx, c.p.Principal, c.r.PathValue("id"), c.p.Meta(c.meta))
	if err != nil {
		return nil, err
	}
	return okReply(apiv1.WebhookSecret{Secret: secret})
}

func (s *Server) apiDeleteWebhook(c *apiCall) (*apiReply, error) {
	if err := s.svc.DeleteWebhook(c.ctx, c.p.Principal, c.r.PathValue("id"), c.p.Meta(c.meta)); err != nil {
		return nil, err
	}
	return &apiReply{Status: http.StatusNoContent}, nil
}
