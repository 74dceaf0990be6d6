package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	apiv1 "github.com/recourse/recourse/client"
)

// sessionCookie is the server's session cookie. It is __Host- and Secure,
// which a cookie jar would refuse to send over plain HTTP; the clients set
// the Cookie header themselves, as a browser on loopback does.
const sessionCookie = "__Host-recourse_session"

// recoverySecretHeader carries a self-service request's secret.
const recoverySecretHeader = "Recourse-Recovery-Secret"

// httpDriver sends the scenarios' requests and times each one.
type httpDriver struct {
	base string
	c    *http.Client
	rec  *recorder
}

func newHTTPDriver(base string, clients int) *httpDriver {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4 * clients,
		MaxIdleConnsPerHost: 4 * clients,
		IdleConnTimeout:     60 * time.Second,
		DisableCompression:  true,
	}
	c := &http.Client{Transport: tr, Timeout: 60 * time.Second,
		// Redirects are answers to check (303 after a form), not to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &httpDriver{base: strings.TrimSuffix(base, "/"), c: c}
}

// call is one request of a flow.
type call struct {
	step    string
	method  string
	path    string
	json    any        // a JSON body
	form    url.Values // or a form body
	cookie  string     // the session cookie's value
	secret  string     // the recovery secret header
	want    int        // the expected status
	wantLoc string     // with a redirect, the expected Location prefix
}

// reply is a response, read in full.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// stepError is a failed step, classified for the error table.
type stepError struct {
	step, kind string
}

func (e *stepError) Error() string { return e.step + ": " + e.kind }

// do sends c, records its latency under c.step and checks the answer.
func (h *httpDriver) do(ctx context.Context, c call) (*reply, error) {
	var body io.Reader
	ctype := ""
	switch {
	case c.json != nil:
		b, err := json.Marshal(c.json)
		if err != nil {
			return nil, err
		}
		body, ctype = bytes.NewReader(b), "application/json"
	case c.form != nil:
		body, ctype = strings.NewReader(c.form.Encode()), "application/x-www-form-urlencoded"
	}
	req, err := http.NewRequestWithContext(ctx, c.method, h.base+c.path, body)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("User-Agent", "recourse-bench")
	if c.cookie != "" {
		req.Header.Set("Cookie", sessionCookie+"="+c.cookie)
	}
	if c.secret != "" {
		req.Header.Set(recoverySecretHeader, c.secret)
	}
	start := time.Now()
	resp, err := h.c.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		h.rec.observe(c.step, true, time.Since(start), true)
		return nil, &stepError{c.step, "transport: " + transportKind(err)}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	resp.Body.Close()
	d := time.Since(start)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		h.rec.observe(c.step, true, d, true)
		return nil, &stepError{c.step, "reading the answer: " + transportKind(err)}
	}
	r := &reply{status: resp.StatusCode, header: resp.Header, body: b}
	if r.status != c.want || (c.wantLoc != "" && !strings.HasPrefix(r.header.Get("Location"), c.wantLoc)) {
		h.rec.observe(c.step, true, d, true)
		return r, &stepError{c.step, describeAnswer(r)}
	}
	h.rec.observe(c.step, true, d, false)
	return r, nil
}

// describeAnswer names an unexpected answer: the status and the API's
// error code, or where a redirect went.
func describeAnswer(r *reply) string {
	kind := fmt.Sprintf("HTTP %d", r.status)
	var e apiv1.ErrorBody
	if json.Unmarshal(r.body, &e) == nil && e.Error.Code != "" {
		kind += " " + e.Error.Code
	}
	if loc := r.header.Get("Location"); loc != "" {
		if i := strings.IndexAny(loc, "?#"); i > 0 && !strings.Contains(loc, "notice=") {
			loc = loc[:i]
		}
		kind += " → " + loc
	}
	return kind
}

func transportKind(err error) string {
	var ne net.Error
	switch {
	case strings.Contains(err.Error(), "connection refused"):
		return "connection refused"
	case strings.Contains(err.Error(), "connection reset"):
		return "connection reset"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "error"
}

// cookieOf returns the session cookie a reply sets.
func cookieOf(r *reply) string {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == sessionCookie && c.Value != "" {
			return c.Value
		}
	}
	return ""
}

// decode reads a JSON answer into v.
func decode(step string, r *reply, v any) error {
	if err := json.Unmarshal(r.body, v); err != nil {
		return &stepError{step, "unreadable JSON answer"}
	}
	return nil
}
