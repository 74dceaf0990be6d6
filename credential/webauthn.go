package credential

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// WebAuthnUser adapts a Recourse account to the [webauthn.User] interface for
// one ceremony. ID is the WebAuthn user handle: 1 to 64 random bytes that
// never change for the account and reveal nothing about it (not the email
// address, not a sequential id). Credentials are the account's passkeys and
// security keys, used to exclude re-registration and to allow sign-in.
type WebAuthnUser struct {
	ID          []byte
	Name        string // the username or email address, shown by the authenticator
	DisplayName string // the person's name, shown by the authenticator
	Credentials []webauthn.Credential
}

var _ webauthn.User = WebAuthnUser{}

// WebAuthnID returns u.ID, the user handle.
func (u WebAuthnUser) WebAuthnID() []byte { return u.ID }

// WebAuthnName returns u.Name.
func (u WebAuthnUser) WebAuthnName() string { return u.Name }

// WebAuthnDisplayName returns u.DisplayName, or u.Name when it is empty,
// since authenticators show it and an empty label helps no one.
func (u WebAuthnUser) WebAuthnDisplayName() string {
	if u.DisplayName == "" {
		return u.Name
	}
	return u.DisplayName
}

// WebAuthnCredentials returns u.Credentials.
func (u WebAuthnUser) WebAuthnCredentials() []webauthn.Credential { return u.Credentials }

// webAuthnTimeout is how long the browser (and, enforced, the server) gives a
// person to complete a ceremony.
const webAuthnTimeout = 5 * time.Minute

// NewWebAuthn returns the relying party for Recourse. rpID is the domain
// passkeys are bound to (e.g. "example.org"; never changeable without
// losing every passkey); rpDisplayName is shown by authenticators; origins
// are the exact origins the pages are served from ("https://id.example.org").
// Each origin must be https (or http on localhost) and its host must be rpID
// or a subdomain of it, as browsers require; a mismatch is refused here
// rather than failing every ceremony later.
//
// Settings: user verification and resident (discoverable) keys preferred,
// so passkeys work where available and plain security keys still do;
// attestation "none", since Recourse does not restrict authenticator
// models; a 5-minute timeout, enforced by the server too.
func NewWebAuthn(rpID, rpDisplayName string, origins []string) (*webauthn.WebAuthn, error) {
	if rpID == "" {
		return nil, errors.New("credential: webauthn: the relying party id is empty")
	}
	if err := protocol.ValidateRPID(rpID); err != nil || strings.ContainsAny(rpID, ":/") {
		return nil, fmt.Errorf("credential: webauthn: relying party id %q is not a domain name", rpID)
	}
	if strings.TrimSpace(rpDisplayName) == "" {
		return nil, errors.New("credential: webauthn: the relying party display name is empty")
	}
	if len(origins) == 0 {
		return nil, errors.New("credential: webauthn: at least one origin is needed")
	}
	for _, o := range origins {
		if err := checkOrigin(o, rpID); err != nil {
			return nil, err
		}
	}
	timeout := webauthn.TimeoutConfig{Enforce: true, Timeout: webAuthnTimeout, TimeoutUVD: webAuthnTimeout}
	no := false
	w, err := webauthn.New(&webauthn.Config{
		RPID:                  rpID,
		RPDisplayName:         rpDisplayName,
		RPOrigins:             append([]string(nil), origins...),
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			RequireResidentKey: &no,
			ResidentKey:        protocol.ResidentKeyRequirementPreferred,
			UserVerification:   protocol.VerificationPreferred,
		},
		Timeouts: webauthn.TimeoutsConfig{Login: timeout, Registration: timeout},
	})
	if err != nil {
		return nil, fmt.Errorf("credential: webauthn: %w", err)
	}
	return w, nil
}

// checkOrigin refuses an origin that is not scheme://host[:port], is not
// https (http is allowed on localhost for development), or whose host is not
// rpID or one of its subdomains.
func checkOrigin(origin, rpID string) error {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("credential: webauthn: origin %q is not of the form https://host[:port]", origin)
	}
	host := strings.ToLower(u.Hostname())
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && (host == "localhost" || strings.HasSuffix(host, ".localhost")):
	default:
		return fmt.Errorf("credential: webauthn: origin %q must use https (http only on localhost)", origin)
	}
	if net.ParseIP(host) != nil {
		return fmt.Errorf("credential: webauthn: origin %q has an IP address; WebAuthn needs a domain name", origin)
	}
	rp := strings.ToLower(rpID)
	if host != rp && !strings.HasSuffix(host, "."+rp) {
		return fmt.Errorf("credential: webauthn: origin %q is not on the relying party domain %q", origin, rpID)
	}
	return nil
}

// CredentialIsDeviceBound reports whether c can never leave the
// authenticator that made it: its backup-eligible (BE) flag is clear, as for
// a hardware security key or a device-bound passkey. Such a credential with
// a password can earn AAL3; a synced passkey (BE set), whose key is copied
// through a cloud account, cannot. The BE flag is fixed at registration.
func CredentialIsDeviceBound(c webauthn.Credential) bool {
	return !c.Flags.BackupEligible
}
