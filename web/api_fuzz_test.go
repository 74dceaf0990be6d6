package web

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"reflect"
	"testing"

	"github.com/recourse/recourse"
	apiv1 "github.com/recourse/recourse/client"
	"github.com/recourse/recourse/service"
)

// fuzzDecoder checks a request decoder: it never panics, it refuses
// without a non-domain error, and what it accepts survives a round trip
// (it decoded a JSON object into T and nothing else).
func fuzzDecoder[T any](f *testing.F, seeds ...string) {
	for _, s := range append(seeds, ``, `null`, `{}`, `[]`, `{"a":1}`, `{} {}`, `"x"`, `{"code":`) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v T
		err := decodeAPIBody(body, &v, true)
		if err != nil {
			var e *recourse.Error
			if code := recourse.ErrorCode(err); code != recourse.EINVALID {
				t.Fatalf("decode error code %q: %v", code, err)
			}
			if !errorsAs(err, &e) {
				t.Fatalf("decode error is not a domain error: %v", err)
			}
			return
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		var w T
		if err := decodeAPIBody(again, &w, true); err != nil {
			t.Fatalf("round trip refused %s: %v", again, err)
		}
		if !reflect.DeepEqual(normalise(t, v), normalise(t, w)) {
			t.Fatalf("round trip changed %+v into %+v", v, w)
		}
	})
}

func errorsAs(err error, target **recourse.Error) bool {
	e, ok := err.(*recourse.Error)
	*target = e
	return ok
}

// normalise compares through JSON, so equal times in other zones and nil
// versus empty slices do not count as differences.
func normalise(t *testing.T, v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

func FuzzDecodeAccount(f *testing.F) {
	fuzzDecoder[recourse.AccountJSON](f, `{"id":"a","username":"a","display_name":"A","emails":[{"address":"a@example.com","verified":true}]}`,
		`{"id":"a","contract_end":"2026-01-02T03:04:05Z","ial":3}`, `{"id":"a","contract_end":"nope"}`, `{"roles":"admin"}`)
}

func FuzzDecodeCreateAPIKey(f *testing.F) {
	fuzzDecoder[apiv1.CreateAPIKeyRequest](f, `{"name":"n","owner":"o","scopes":["audit:read"],"expires_at":"2026-12-01T00:00:00Z"}`,
		`{"name":"n","scopes":"audit:read"}`)
}

func FuzzDecodeRotateAPIKey(f *testing.F) {
	fuzzDecoder[apiv1.RotateAPIKeyRequest](f, `{"overlap":"24h"}`, `{"overlap":5}`)
}

func FuzzDecodeOpenRecovery(f *testing.F) {
	fuzzDecoder[apiv1.OpenRecoveryRequest](f, `{"account":"d.chen","action":"password.reset","reason":"other","checks":["caller_verified_totp"]}`)
}

func FuzzDecodeCancelRecovery(f *testing.F) {
	fuzzDecoder[apiv1.CancelRecoveryRequest](f, `{"reason":"duplicate"}`)
}

func FuzzDecodeVote(f *testing.F) {
	fuzzDecoder[apiv1.VoteRequest](f, `{"vote":"approve","comment":"ok"}`, `{"vote":true}`)
}

func FuzzDecodeVerifyCaller(f *testing.F) {
	fuzzDecoder[apiv1.VerifyCallerRequest](f, `{"code":"123456"}`)
}

func FuzzDecodeCreateWebhook(f *testing.F) {
	fuzzDecoder[apiv1.CreateWebhookRequest](f, `{"url":"https://h.example.com/x","events":["recovery.*"]}`)
}

func FuzzDecodeStartRecovery(f *testing.F) {
	fuzzDecoder[apiv1.StartRecoveryRequest](f, `{"identifier":"d.chen","lost":"password"}`, "{\"identifier\":\"\\u0000\"}")
}

func FuzzDecodeCode(f *testing.F) {
	fuzzDecoder[apiv1.CodeRequest](f, `{"code":"123456"}`, `{"code":123456}`)
}

func FuzzDecodeCompleteRecovery(f *testing.F) {
	fuzzDecoder[apiv1.CompleteRecoveryRequest](f, `{"completion_token":"rct_x","new_password":"p"}`)
}

// FuzzPageParams: limits and cursors from the query never panic, and an
// accepted cursor is one pageCursor could have made.
func FuzzPageParams(f *testing.F) {
	for _, s := range []string{"", "limit=10", "limit=0", "limit=-1", "limit=99999999999999999999", "cursor=" + pageCursor("ak_x"), "cursor=!!", "cursor=%ff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		limit, after, err := pageParams(q)
		if err != nil {
			if recourse.ErrorCode(err) != recourse.EINVALID {
				t.Fatalf("error code %v", err)
			}
			return
		}
		if limit < 1 || limit > pageMax {
			t.Fatalf("limit %d accepted", limit)
		}
		if after != "" && q.Get("cursor") != pageCursor(after) {
			t.Fatalf("cursor %q decoded to %q, which encodes differently", q.Get("cursor"), after)
		}
	})
}

// FuzzRequestHeaders: If-Match and Idempotency-Key parsing never panic and
// accept only what they document.
func FuzzRequestHeaders(f *testing.F) {
	for _, s := range []string{"", "*", `"v1"`, `"v0"`, `W/"v1"`, `"v-1"`, `"v99999999999999999999"`, "k-1", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		r := httptest.NewRequest("PUT", "/", nil)
		r.Header["If-Match"] = []string{h}
		if v, err := ifMatchVersion(r); err == nil && v != 0 && versionETag(v) != trimSpace(h) {
			t.Fatalf("If-Match %q read as version %d", h, v)
		}
		if service.ValidIdempotencyKey(h) && !bytes.Equal([]byte(h), bytes.Map(func(r rune) rune {
			if r < 0x20 || r > 0x7e {
				return -1
			}
			return r
		}, []byte(h))) {
			t.Fatalf("Idempotency-Key %q with non-printable bytes accepted", h)
		}
	})
}

func trimSpace(s string) string { return string(bytes.TrimSpace([]byte(s))) }
