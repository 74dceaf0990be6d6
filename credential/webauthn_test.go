package credential

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

func TestWebAuthnUser(t *testing.T) {
	creds := []webauthn.Credential{{ID: []byte("cred-1")}, {ID: []byte("cred-2")}}
	u := WebAuthnUser{ID: []byte{1, 2, 3}, Name: "ada@example.org", DisplayName: "Ada Lovelace", Credentials: creds}
	var wu webauthn.User = &u // both the value and the pointer satisfy the interface
	if !bytes.Equal(wu.WebAuthnID(), []byte{1, 2, 3}) || wu.WebAuthnName() != "ada@example.org" ||
		wu.WebAuthnDisplayName() != "Ada Lovelace" || len(wu.WebAuthnCredentials()) != 2 {
		t.Fatalf("adapter returned %x, %q, %q, %d credentials", wu.WebAuthnID(), wu.WebAuthnName(), wu.WebAuthnDisplayName(), len(wu.WebAuthnCredentials()))
	}
	if got := (WebAuthnUser{Name: "ada@example.org"}).WebAuthnDisplayName(); got != "ada@example.org" {
		t.Errorf("display name fallback = %q; want the name", got)
	}
}

func TestNewWebAuthnRefuses(t *testing.T) {
	tests := []struct {
		name        string
		rpID        string
		displayName string
		origins     []string
		wantErr     string
	}{
		{"empty rp id", "", "Recourse", []string{"https://example.org"}, "relying party id"},
		{"rp id is a URL", "https://example.org", "Recourse", []string{"https://example.org"}, "not a domain"},
		{"rp id with port", "example.org:443", "Recourse", []string{"https://example.org"}, "not a domain"},
		{"rp id is an IP", "192.0.2.1", "Recourse", []string{"https://192.0.2.1"}, "not a domain"},
		{"empty display name", "example.org", " ", []string{"https://example.org"}, "display name"},
		{"no origins", "example.org", "Recourse", nil, "at least one origin"},
		{"plain http", "example.org", "Recourse", []string{"http://example.org"}, "https"},
		{"other scheme", "example.org", "Recourse", []string{"ftp://example.org"}, "https"},
		{"other domain", "example.org", "Recourse", []string{"https://example.com"}, "not on the relying party domain"},
		{"suffix but not subdomain", "example.org", "Recourse", []string{"https://badexample.org"}, "not on the relying party domain"},
		{"parent of rp id", "id.example.org", "Recourse", []string{"https://example.org"}, "not on the relying party domain"},
		{"one bad among good", "example.org", "Recourse", []string{"https://example.org", "https://evil.test"}, "evil.test"},
		{"path", "example.org", "Recourse", []string{"https://example.org/login"}, "form"},
		{"query", "example.org", "Recourse", []string{"https://example.org?x=1"}, "form"},
		{"no scheme", "example.org", "Recourse", []string{"example.org"}, "form"},
		{"user info", "example.org", "Recourse", []string{"https://ada@example.org"}, "form"},
		{"IP origin", "localhost", "Recourse", []string{"http://127.0.0.1:8080"}, "https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := NewWebAuthn(tt.rpID, tt.displayName, tt.origins)
			if err == nil || w != nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewWebAuthn = %v, %v; want an error containing %q", w, err, tt.wantErr)
			}
		})
	}
}

func TestNewWebAuthnAccepts(t *testing.T) {
	tests := []struct {
		name    string
		rpID    string
		origins []string
	}{
		{"apex", "example.org", []string{"https://example.org"}},
		{"subdomain and port", "example.org", []string{"https://id.example.org:8443", "https://example.org/"}},
		{"mixed case", "Example.org", []string{"https://ID.example.ORG"}},
		{"localhost over http", "localhost", []string{"http://localhost:8080"}},
		{"localhost over https", "localhost", []string{"https://localhost"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewWebAuthn(tt.rpID, "Recourse", tt.origins); err != nil {
				t.Fatalf("NewWebAuthn = %v; want nil", err)
			}
		})
	}
}

func TestNewWebAuthnSettings(t *testing.T) {
	origins := []string{"https://id.example.org"}
	w, err := NewWebAuthn("example.org", "Recourse", origins)
	if err != nil {
		t.Fatal(err)
	}
	origins[0] = "https://changed.example.org" // the config holds its own copy
	c := w.Config
	if c.RPID != "example.org" || c.RPDisplayName != "Recourse" || len(c.RPOrigins) != 1 || c.RPOrigins[0] != "https://id.example.org" {
		t.Errorf("relying party = %q, %q, %q", c.RPID, c.RPDisplayName, c.RPOrigins)
	}
	if c.AttestationPreference != protocol.PreferNoAttestation {
		t.Errorf("attestation = %q; want none", c.AttestationPreference)
	}
	sel := c.AuthenticatorSelection
	if sel.ResidentKey != protocol.ResidentKeyRequirementPreferred || sel.UserVerification != protocol.VerificationPreferred ||
		sel.RequireResidentKey == nil || *sel.RequireResidentKey || sel.AuthenticatorAttachment != "" {
		t.Errorf("authenticator selection = %+v", sel)
	}
	for name, tc := range map[string]webauthn.TimeoutConfig{"login": c.Timeouts.Login, "registration": c.Timeouts.Registration} {
		if !tc.Enforce || tc.Timeout != 5*time.Minute || tc.TimeoutUVD != 5*time.Minute {
			t.Errorf("%s timeout = %+v; want 5 minutes, enforced", name, tc)
		}
	}
}

func TestWebAuthnBeginCeremonies(t *testing.T) {
	w, err := NewWebAuthn("example.org", "Recourse", []string{"https://id.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	u := WebAuthnUser{
		ID:          bytes.Repeat([]byte{0x5a}, 64),
		Name:        "ada@example.org",
		DisplayName: "Ada Lovelace",
		Credentials: []webauthn.Credential{{ID: []byte("cred-1")}},
	}

	creation, session, err := w.BeginRegistration(u,
		webauthn.WithExclusions(webauthn.Credentials(u.Credentials).CredentialDescriptors()))
	if err != nil {
		t.Fatalf("BeginRegistration: %v", err)
	}
	opts := creation.Response
	if id, ok := opts.User.ID.(protocol.URLEncodedBase64); !ok || !bytes.Equal(id, u.ID) {
		t.Errorf("user id = %#v; want %x", opts.User.ID, u.ID)
	}
	if opts.User.Name != u.Name || opts.User.DisplayName != u.DisplayName || opts.RelyingParty.ID != "example.org" {
		t.Errorf("entities = %+v, %+v", opts.User, opts.RelyingParty)
	}
	if opts.Timeout != 300000 || opts.Attestation != protocol.PreferNoAttestation {
		t.Errorf("timeout %d, attestation %q; want 300000, none", opts.Timeout, opts.Attestation)
	}
	if len(opts.CredentialExcludeList) != 1 || !bytes.Equal(opts.CredentialExcludeList[0].CredentialID, []byte("cred-1")) {
		t.Errorf("exclude list = %+v; want cred-1", opts.CredentialExcludeList)
	}
	if !bytes.Equal(session.UserID, u.ID) || session.Expires.IsZero() {
		t.Errorf("session = %+v; want the user id and an expiry", session)
	}

	assertion, session, err := w.BeginLogin(u)
	if err != nil {
		t.Fatalf("BeginLogin: %v", err)
	}
	if got := assertion.Response.AllowedCredentials; len(got) != 1 || !bytes.Equal(got[0].CredentialID, []byte("cred-1")) {
		t.Errorf("allowed credentials = %+v; want cred-1", got)
	}
	if assertion.Response.UserVerification != protocol.VerificationPreferred || session.Expires.IsZero() {
		t.Errorf("login options = %+v", assertion.Response)
	}

	if _, _, err := w.BeginRegistration(WebAuthnUser{Name: "no id"}); err == nil {
		t.Error("BeginRegistration accepted a user without an id")
	}
}

func TestCredentialIsDeviceBound(t *testing.T) {
	tests := []struct {
		name  string
		flags webauthn.CredentialFlags
		want  bool
	}{
		{"security key", webauthn.CredentialFlags{UserPresent: true, UserVerified: true}, true},
		{"synced passkey", webauthn.CredentialFlags{UserPresent: true, UserVerified: true, BackupEligible: true, BackupState: true}, false},
		{"backup eligible, not yet backed up", webauthn.CredentialFlags{UserPresent: true, BackupEligible: true}, false},
	}
	for _, tt := range tests {
		if got := CredentialIsDeviceBound(webauthn.Credential{Flags: tt.flags}); got != tt.want {
			t.Errorf("%s: CredentialIsDeviceBound = %v; want %v", tt.name, got, tt.want)
		}
	}
}
