package web

import (
	_ "embed"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// openAPIDoc is the hand-written OpenAPI 3.1 document of the API.
// TestOpenAPIMatchesRoutes checks it against the route table both ways,
// and its schemas against the wire types of package client.
//
//go:embed openapi.json
var openAPIDoc []byte

func (s *Server) apiOpenAPI(c *apiCall) (*apiReply, error) {
	return &apiReply{Status: http.StatusOK, Raw: openAPIDoc, ContentType: "application/json"}, nil
}

// openAPI is the part of the document the reference page shows.
type openAPI struct {
	Info struct {
		Title       string `json:"title"`
		Version     string `json:"version"`
		Description string `json:"description"`
	} `json:"info"`
	Tags []struct {
		Name string `json:"name"`
	} `json:"tags"`
	Paths      map[string]map[string]openAPIOp `json:"paths"`
	Components struct {
		Parameters map[string]openAPIParam  `json:"parameters"`
		Schemas    map[string]openAPISchema `json:"schemas"`
	} `json:"components"`
}

type openAPIOp struct {
	OperationID string                `json:"operationId"`
	Tags        []string              `json:"tags"`
	Summary     string                `json:"summary"`
	Description string                `json:"description"`
	Scope       string                `json:"x-required-scope"`
	Security    []map[string][]string `json:"security"`
	Parameters  []openAPIParam        `json:"parameters"`
	RequestBody *struct {
		Required bool `json:"required"`
		Content  map[string]struct {
			Schema openAPISchema `json:"schema"`
		} `json:"content"`
	} `json:"requestBody"`
	Responses map[string]struct {
		Description string `json:"description"`
		Ref         string `json:"$ref"`
		Content     map[string]struct {
			Schema openAPISchema `json:"schema"`
		} `json:"content"`
	} `json:"responses"`
}

type openAPIParam struct {
	Ref         string         `json:"$ref"`
	Name        string         `json:"name"`
	In          string         `json:"in"`
	Required    bool           `json:"required"`
	Description string         `json:"description"`
	Schema      *openAPISchema `json:"schema"`
}

type openAPISchema struct {
	Ref         string                   `json:"$ref"`
	Type        any                      `json:"type"`
	Format      string                   `json:"format"`
	Description string                   `json:"description"`
	Enum        []string                 `json:"enum"`
	Items       *openAPISchema           `json:"items"`
	Properties  map[string]openAPISchema `json:"properties"`
	Required    []string                 `json:"required"`
}

// typeName describes a schema in a few words: "Account", "array of
// string", "string (date-time)".
func (sc openAPISchema) typeName() string {
	if sc.Ref != "" {
		return strings.TrimPrefix(sc.Ref, "#/components/schemas/")
	}
	t, _ := sc.Type.(string)
	switch {
	case t == "array" && sc.Items != nil:
		return "array of " + sc.Items.typeName()
	case len(sc.Enum) > 0:
		return t + ": " + strings.Join(sc.Enum, ", ")
	case sc.Format != "":
		return t + " (" + sc.Format + ")"
	}
	return t
}

// anchor names the component schema a schema is (or is an array of), for
// links; "" for plain types.
func (sc openAPISchema) anchor() string {
	if sc.Ref != "" {
		return strings.TrimPrefix(sc.Ref, "#/components/schemas/")
	}
	if sc.Items != nil {
		return sc.Items.anchor()
	}
	return ""
}

// The reference page's view of the document.
type (
	docPage struct {
		Title, Version, Description string
		Tags                        []docTag
		Schemas                     []docSchema
	}
	docTag struct {
		Name string
		Ops  []docOp
	}
	docOp struct {
		ID, Method, Path, Summary, Description, Scope string
		Public                                        bool
		Params                                        []docParam
		Body                                          []docBody
		BodyOptional                                  bool
		Responses                                     []docResponse
	}
	docParam    struct{ Name, In, Type, Description string }
	docBody     struct{ Type, Anchor, ContentType string }
	docResponse struct{ Status, Description, Type, Anchor string }
	docSchema   struct {
		Name, Description string
		Props             []docParam
	}
)

var docPageOnce = sync.OnceValues(func() (*docPage, error) {
	var d openAPI
	if err := json.Unmarshal(openAPIDoc, &d); err != nil {
		return nil, err
	}
	out := &docPage{Title: d.Info.Title, Version: d.Info.Version, Description: d.Info.Description}
	methods := []string{"get", "post", "put", "patch", "delete"}
	for _, t := range d.Tags {
		tag := docTag{Name: t.Name}
		for _, path := range slices.Sorted(maps.Keys(d.Paths)) {
			for _, m := range methods {
				op, found := d.Paths[path][m]
				if !found || !slices.Contains(op.Tags, t.Name) {
					continue
				}
				o := docOp{ID: op.OperationID, Method: strings.ToUpper(m), Path: path, Summary: op.Summary, Description: op.Description,
					Scope: op.Scope, Public: len(op.Security) == 0}
				for _, p := range op.Parameters {
					if p.Ref != "" {
						p = d.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
					}
					typ := ""
					if p.Schema != nil {
						typ = p.Schema.typeName()
					}
					if p.Required {
						typ += ", required"
					}
					o.Params = append(o.Params, docParam{Name: p.Name, In: p.In, Type: typ, Description: p.Description})
				}
				if op.RequestBody != nil {
					for _, ct := range slices.Sorted(maps.Keys(op.RequestBody.Content)) {
						sc := op.RequestBody.Content[ct].Schema
						o.Body = append(o.Body, docBody{Type: sc.typeName(), Anchor: sc.anchor(), ContentType: ct})
					}
					o.BodyOptional = !op.RequestBody.Required
				}
				for _, code := range slices.Sorted(maps.Keys(op.Responses)) {
					r := op.Responses[code]
					if r.Ref != "" {
						o.Responses = append(o.Responses, docResponse{Status: code, Description: "An error.", Type: "ErrorBody", Anchor: "ErrorBody"})
						continue
					}
					resp := docResponse{Status: code, Description: r.Description}
					for _, c := range r.Content {
						resp.Type, resp.Anchor = c.Schema.typeName(), c.Schema.anchor()
					}
					o.Responses = append(o.Responses, resp)
				}
				tag.Ops = append(tag.Ops, o)
			}
		}
		out.Tags = append(out.Tags, tag)
	}
	for _, name := range slices.Sorted(maps.Keys(d.Components.Schemas)) {
		sc := d.Components.Schemas[name]
		ds := docSchema{Name: name, Description: sc.Description}
		for _, p := range slices.Sorted(maps.Keys(sc.Properties)) {
			prop := sc.Properties[p]
			typ := prop.typeName()
			if slices.Contains(sc.Required, p) {
				typ += ", required"
			}
			ds.Props = append(ds.Props, docParam{Name: p, Type: typ, Description: prop.Description})
		}
		out.Schemas = append(out.Schemas, ds)
	}
	return out, nil
})

// apiDocsPage renders the OpenAPI document for people, server-side (the
// strict CSP allows no documentation UI that runs scripts).
func (s *Server) apiDocsPage(w http.ResponseWriter, r *http.Request) {
	doc, err := docPageOnce()
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "api_docs", page{Title: "API reference", Data: doc})
}
