package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/recourse/recourse"
	apiv1 "github.com/recourse/recourse/client"
)

// allAPIRoutes is every route of the JSON API.
func allAPIRoutes(s *Server) []apiRoute { return append(s.auditAPIRoutes(), s.apiRouteTable()...) }

// TestOpenAPIMatchesRoutes keeps the OpenAPI document true: every route is
// documented with its method, scope and path parameters, every documented
// operation is served, and the mux really routes each one.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newAPIEnv(t)
	var doc openAPI
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	var raw struct {
		OpenAPI string `json:"openapi"`
	}
	_ = json.Unmarshal(openAPIDoc, &raw)
	if raw.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", raw.OpenAPI)
	}
	mux := http.NewServeMux()
	e.srv.auditRoutes(mux)
	e.srv.apiRoutes(mux)
	served := map[string]bool{}
	reParam := regexp.MustCompile(`\{([a-z_]+)\}`)
	for _, rt := range allAPIRoutes(e.srv) {
		key := rt.method + " " + rt.path
		if served[key] {
			t.Errorf("%s is in the route table twice", key)
		}
		served[key] = true
		op, found := doc.Paths[rt.path][strings.ToLower(rt.method)]
		if !found {
			t.Errorf("%s is served but not in openapi.json", key)
			continue
		}
		if op.Scope != rt.scope {
			t.Errorf("%s: x-required-scope %q, route scope %q", key, op.Scope, rt.scope)
		}
		switch rt.auth {
		case apiPublic:
			if len(op.Security) != 0 {
				t.Errorf("%s is public but the document asks for %v", key, op.Security)
			}
		case apiCaller:
			want := []map[string][]string{{"apiKey": {}}, {"session": {}}}
			if rt.scope != "" {
				want[0]["apiKey"] = []string{rt.scope}
			}
			if !reflect.DeepEqual(op.Security, want) {
				t.Errorf("%s: security %v, want %v", key, op.Security, want)
			}
		}
		for _, m := range reParam.FindAllStringSubmatch(rt.path, -1) {
			ok := slices.ContainsFunc(op.Parameters, func(p openAPIParam) bool {
				if p.Ref != "" {
					p = doc.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
				}
				return p.In == "path" && p.Name == m[1] && p.Required
			})
			if !ok {
				t.Errorf("%s: path parameter %s is not documented", key, m[1])
			}
		}
		probe := httptest.NewRequest(rt.method, reParam.ReplaceAllString(rt.path, "x"), nil)
		if _, pattern := mux.Handler(probe); pattern != key {
			t.Errorf("%s is routed to %q", key, pattern)
		}
	}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if key := strings.ToUpper(method) + " " + path; !served[key] {
				t.Errorf("%s (%s) is documented but not served", key, op.OperationID)
			}
		}
	}
}

// TestOpenAPISchemasMatchWireTypes checks each schema against the Go type
// the server encodes: the same fields, and required exactly when the field
// is always present (no omitempty).
func TestOpenAPISchemasMatchWireTypes(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
				Required   []string                   `json:"required"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	types := map[string]any{
		"ErrorBody": apiv1.ErrorBody{}, "ErrorDetail": apiv1.ErrorDetail{}, "AccountSummary": apiv1.AccountSummary{}, "Me": apiv1.Me{},
		"Email": recourse.EmailJSON{}, "Phone": recourse.PhoneJSON{}, "AccountInput": recourse.AccountJSON{}, "Account": apiv1.Account{},
		"AccountList": apiv1.AccountList{}, "ImportResult": apiv1.ImportResult{}, "Authenticator": apiv1.Authenticator{},
		"AuthenticatorList": apiv1.AuthenticatorList{}, "Channel": apiv1.Channel{}, "ChannelList": apiv1.ChannelList{},
		"VerifyCallerRequest": apiv1.VerifyCallerRequest{}, "VerifyCallerResult": apiv1.VerifyCallerResult{},
		"OpenRecoveryRequest": apiv1.OpenRecoveryRequest{}, "Recovery": apiv1.Recovery{}, "RecoveryList": apiv1.RecoveryList{},
		"CancelRecoveryRequest": apiv1.CancelRecoveryRequest{}, "Vote": apiv1.Vote{}, "Approval": apiv1.Approval{},
		"ApprovalList": apiv1.ApprovalList{}, "VoteRequest": apiv1.VoteRequest{}, "Session": apiv1.Session{}, "SessionList": apiv1.SessionList{},
		"APIKey": apiv1.APIKey{}, "APIKeyList": apiv1.APIKeyList{}, "CreateAPIKeyRequest": apiv1.CreateAPIKeyRequest{},
		"RotateAPIKeyRequest": apiv1.RotateAPIKeyRequest{}, "IssuedAPIKey": apiv1.IssuedAPIKey{}, "ScopeInfo": apiv1.ScopeInfo{},
		"ScopeList": apiv1.ScopeList{}, "Policy": apiv1.Policy{}, "Decision": apiv1.Decision{}, "Webhook": apiv1.Webhook{},
		"WebhookList": apiv1.WebhookList{}, "CreateWebhookRequest": apiv1.CreateWebhookRequest{}, "CreatedWebhook": apiv1.CreatedWebhook{},
		"WebhookSecret": apiv1.WebhookSecret{}, "StartRecoveryRequest": apiv1.StartRecoveryRequest{}, "RecoveryHandle": apiv1.RecoveryHandle{},
		"RecoveryStatus": apiv1.RecoveryStatus{}, "CodeRequest": apiv1.CodeRequest{}, "CompletionToken": apiv1.CompletionToken{},
		"CompleteRecoveryRequest": apiv1.CompleteRecoveryRequest{}, "CompletedRecovery": apiv1.CompletedRecovery{},
		"AuditPage": apiv1.AuditPage{}, "Empty": struct{}{},
	}
	for name, sc := range doc.Components.Schemas {
		v, found := types[name]
		if !found {
			t.Errorf("schema %s has no Go wire type in this test", name)
			continue
		}
		fields, always := jsonFields(reflect.TypeOf(v))
		var props []string
		for p := range sc.Properties {
			props = append(props, p)
		}
		slices.Sort(props)
		if !slices.Equal(props, fields) {
			t.Errorf("schema %s has properties %v; %T has %v", name, props, v, fields)
		}
		req := slices.Sorted(slices.Values(sc.Required))
		if !slices.Equal(req, always) {
			t.Errorf("schema %s requires %v; %T always has %v", name, req, v, always)
		}
	}
	for name := range types {
		if _, found := doc.Components.Schemas[name]; !found {
			t.Errorf("wire type %s has no schema", name)
		}
	}
	// Every reference resolves.
	var wrap struct {
		Components map[string]map[string]json.RawMessage `json:"components"`
	}
	if err := json.Unmarshal(openAPIDoc, &wrap); err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`"\$ref": "#/components/(schemas|parameters|responses)/([A-Za-z]+)"`).FindAllSubmatch(openAPIDoc, -1) {
		if _, found := wrap.Components[string(m[1])][string(m[2])]; !found {
			t.Errorf("dangling reference %s/%s", m[1], m[2])
		}
	}
}

// jsonFields returns the JSON names of t's fields (embedded structs
// flattened) and those always encoded (without omitempty), both sorted.
func jsonFields(t reflect.Type) (all, always []string) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if f.Anonymous && tag == "" {
			a, b := jsonFields(f.Type)
			all, always = append(all, a...), append(always, b...)
			continue
		}
		if !f.IsExported() || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		all = append(all, name)
		if !strings.Contains(opts, "omitempty") {
			always = append(always, name)
		}
	}
	slices.Sort(all)
	slices.Sort(always)
	return all, always
}

func TestAPIDocsPage(t *testing.T) {
	e := newAPIEnv(t)
	status, h, body := e.call("GET", "/api/docs", nil)
	if status != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /api/docs = %d %s", status, h.Get("Content-Type"))
	}
	for _, rt := range allAPIRoutes(e.srv) {
		if !strings.Contains(string(body), rt.path) {
			t.Errorf("the reference page does not show %s %s", rt.method, rt.path)
		}
	}
	if strings.Contains(string(body), "<script>") || strings.Contains(string(body), "style=") {
		t.Error("the reference page has inline script or style (the CSP forbids them)")
	}
	status, h, body = e.call("GET", "/api/v1/openapi.json", nil)
	if status != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "application/json") || !json.Valid(body) {
		t.Fatalf("GET /api/v1/openapi.json = %d %s", status, h.Get("Content-Type"))
	}
}
