package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
)

// maxAuthenticators bounds how many TOTP or WebAuthn authenticators one
// account may hold.
const maxAuthenticators = 10

// TOTPEnrolment is a TOTP secret shown to its holder once, to scan.
type TOTPEnrolment struct {
	AuthenticatorID string
	Secret          string
	URL             string
	QRCodePNG       []byte
}

func authenticatorName(name, fallback string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return fallback, nil
	}
	if utf8.RuneCountInString(name) > 60 || strings.ContainsAny(name, "\x00\r\n<>") {
		return "", recourse.FieldError("name", "must be at most 60 characters, on one line, without < or >")
	}
	return name, nil
}

func (s *Service) countActive(ctx context.Context, accountID string, kind recourse.AuthenticatorKind) (int, error) {
	auths, err := s.store.Authenticators(ctx, accountID)
	if err != nil {
		return 0, internal("list authenticators", err)
	}
	n := 0
	for _, au := range auths {
		if au.Kind == kind && au.Status == recourse.AuthActive {
			n++
		}
	}
	return n, nil
}

// BeginTOTP creates a pending TOTP authenticator with a fresh secret. It
// proves nothing until ConfirmTOTP receives a code from it. It needs a recent
// authentication.
func (s *Service) BeginTOTP(ctx context.Context, p *Principal, name string, meta Meta) (*TOTPEnrolment, error) {
	if err := s.RequireRecentAuth(p); err != nil {
		return nil, err
	}
	name, err := authenticatorName(name, "Authenticator app")
	if err != nil {
		return nil, err
	}
	if n, err := s.countActive(ctx, p.Account.ID, recourse.AuthTOTP); err != nil {
		return nil, err
	} else if n >= maxAuthenticators {
		return nil, recourse.Errorf(recourse.EINVALID, "You already have %d authenticator apps. Remove one first.", n)
	}
	key, err := credential.NewTOTPKey(s.cfg.Issuer, p.Account.Username)
	if err != nil {
		return nil, internal("new TOTP key", err)
	}
	png, err := credential.TOTPQRCodePNG(key.URL, 240)
	if err != nil {
		return nil, internal("TOTP QR code", err)
	}
	au := &recourse.Authenticator{ID: recourse.NewID("au_"), AccountID: p.Account.ID, Kind: recourse.AuthTOTP,
		Status: recourse.AuthPending, Name: name, CreatedAt: s.now()}
	au.Secret = s.sealer.Seal([]byte(key.Secret), []byte(au.ID))
	err = s.store.InTx(ctx, func(tx recourse.Tx) error {
		if err := tx.CreateAuthenticator(ctx, au); err != nil {
			return err
		}
		// The secret itself is never recorded.
		return s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionAuthenticatorBegin, Outcome: recourse.OutcomeSuccess,
			SubjectID: p.Account.ID, After: authenticatorAttrs(au)}, meta)
	})
	if err != nil {
		return nil, internal("create authenticator", err)
	}
	return &TOTPEnrolment{AuthenticatorID: au.ID, Secret: key.Secret, URL: key.URL, QRCodePNG: png}, nil
}

// ConfirmTOTP activates a pending TOTP authenticator when the code matches,
// records the binding and notifies the account.
func (s *Service) ConfirmTOTP(ctx context.Context, p *Principal, authenticatorID, code string, meta Meta) error {
	if err := s.RequireRecentAuth(p); err != nil {
		return err
	}
	au, err := s.store.Authenticator(ctx, authenticatorID)
	if err != nil || au.AccountID != p.Account.ID || au.Kind != recourse.AuthTOTP || au.Status != recourse.AuthPending {
		if err != nil && !errors.Is(err, recourse.ErrNotFound) {
			return internal("read authenticator", err)
		}
		return recourse.Errorf(recourse.ENOTFOUND, "That enrolment has expired. Start again.")
	}
	if s.now().Sub(au.CreatedAt) > s.cfg.ReauthWindow {
		return recourse.Errorf(recourse.ENOTFOUND, "That enrolment has expired. Start again.")
	}
	secret, err := s.sealer.Open(au.Secret, []byte(au.ID))
	if err != nil {
		return internal("open TOTP secret", err)
	}
	now := s.now()
	step, ok := credential.MatchTOTP(string(secret), code, now, 1)
	if !ok {
		if err := s.recordAuditTx(ctx, recourse.AuditEvent{Action: recourse.ActionAuthenticatorBind, Outcome: recourse.OutcomeFailure,
			SubjectID: p.Account.ID, Reason: "wrong code", Attributes: map[string]string{"authenticator_id": au.ID, "kind": string(au.Kind)}}, meta); err != nil {
			return internal("confirm TOTP", err)
		}
		return recourse.FieldError("code", "That code is not right. Enter the 6-digit code your app shows now.")
	}
	au.Status, au.LastUsedAt = recourse.AuthActive, &now
	err = s.store.InTx(ctx, func(tx recourse.Tx) error {
		if err := tx.UpdateAuthenticator(ctx, au); err != nil {
			return err
		}
		if err := s.liftRestriction(ctx, tx, p); err != nil {
			return err
		}
		if _, err := tx.AdvanceTOTPStep(ctx, au.ID, step, now); err != nil {
			return err
		}
		if err := s.event(ctx, tx, au, recourse.AuthEventBound, meta); err != nil {
			return err
		}
		if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionAuthenticatorBind, Outcome: recourse.OutcomeSuccess,
			SubjectID: p.Account.ID, Before: map[string]string{"status": string(recourse.AuthPending)}, After: authenticatorAttrs(au),
			Evidence: []string{"otp"}}, meta); err != nil {
			return err
		}
		return s.notifyAccount(ctx, tx, p.Account, "An authenticator app was added to your account", []string{
			"The authenticator app \"" + au.Name + "\" can now be used to sign in to your account.",
		}, meta)
	})
	if err != nil {
		return internal("confirm TOTP", err)
	}
	s.log.Info("authenticator bound", "account", p.Account.ID, "authenticator", au.ID, "kind", au.Kind, "ip", meta.IP)
	return nil
}

// RecoveryCodes replaces the account's saved recovery codes with a fresh set
// of ten and returns them; this is the only time they are shown.
func (s *Service) RecoveryCodes(ctx context.Context, p *Principal, meta Meta) ([]string, error) {
	if err := s.RequireRecentAuth(p); err != nil {
		return nil, err
	}
	codes := credential.NewRecoveryCodes(recourse.RecoveryCodeSetSize)
	hashes := make([][]byte, len(codes))
	for i, c := range codes {
		norm, ok := credential.NormalizeRecoveryCode(c)
		if !ok {
			return nil, internal("recovery codes", errors.New("generated code does not normalise"))
		}
		hashes[i] = s.hasher.Sum("recovery-code", norm)
	}
	now := s.now()
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		auths, err := tx.Authenticators(ctx, p.Account.ID)
		if err != nil {
			return err
		}
		replaced := false
		before := map[string]string{}
		for _, au := range auths {
			if au.Kind == recourse.AuthRecoveryCodes && au.Status == recourse.AuthActive {
				au.Status, au.RevokedAt = recourse.AuthReplaced, &now
				if err := tx.UpdateAuthenticator(ctx, au); err != nil {
					return err
				}
				if err := s.event(ctx, tx, au, recourse.AuthEventReplaced, meta); err != nil {
					return err
				}
				replaced = true
				before["authenticator_id"] = au.ID
			}
		}
		set := &recourse.Authenticator{AccountID: p.Account.ID, Kind: recourse.AuthRecoveryCodes, Status: recourse.AuthActive,
			Name: "Recovery codes", CreatedAt: now}
		if err := tx.CreateAuthenticator(ctx, set); err != nil {
			return err
		}
		if err := tx.ReplaceRecoveryCodes(ctx, set.ID, hashes); err != nil {
			return err
		}
		if err := s.event(ctx, tx, set, recourse.AuthEventBound, meta); err != nil {
			return err
		}
		// The codes are never recorded: only the set and its size.
		after := map[string]string{"authenticator_id": set.ID, "codes": strconv.Itoa(len(hashes))}
		if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionRecoveryCodesIssue, Outcome: recourse.OutcomeSuccess,
			SubjectID: p.Account.ID, Before: before, After: after}, meta); err != nil {
			return err
		}
		line := "A set of saved recovery codes was created for your account."
		if replaced {
			line = "Your saved recovery codes were replaced by a new set. The old codes no longer work."
		}
		return s.notifyAccount(ctx, tx, p.Account, "Your recovery codes changed", []string{line}, meta)
	})
	if err != nil {
		return nil, internal("recovery codes", err)
	}
	s.log.Info("recovery codes generated", "account", p.Account.ID, "ip", meta.IP)
	return codes, nil
}

// authenticatorAttrs is what the audit log records of an authenticator:
// never its secret.
func authenticatorAttrs(au *recourse.Authenticator) map[string]string {
	m := map[string]string{"authenticator_id": au.ID, "kind": string(au.Kind), "name": au.Name, "status": string(au.Status)}
	if au.Kind == recourse.AuthWebAuthn {
		m["device_bound"] = strconv.FormatBool(au.DeviceBound)
	}
	return m
}

// ---- WebAuthn ----

var errNoWebAuthn = recourse.Errorf(recourse.EINVALID, "Passkeys are not enabled on this server.")

// ceremony is the state kept on the session between the two halves of a
// WebAuthn ceremony.
type ceremony struct {
	Kind string               `json:"kind"` // "register" or "login"
	Name string               `json:"name,omitempty"`
	Data webauthn.SessionData `json:"data"`
}

// webAuthnUser builds the library's view of an account. The user handle is
// an HMAC of the account id, so it carries no personal data.
func (s *Service) webAuthnUser(ctx context.Context, a *recourse.Account) (credential.WebAuthnUser, error) {
	u := credential.WebAuthnUser{ID: s.hasher.Sum("webauthn-user", a.ID), Name: a.Username, DisplayName: a.DisplayName}
	auths, err := s.store.Authenticators(ctx, a.ID)
	if err != nil {
		return u, internal("list authenticators", err)
	}
	for _, au := range auths {
		if au.Kind != recourse.AuthWebAuthn || au.Status != recourse.AuthActive {
			continue
		}
		var c webauthn.Credential
		if err := json.Unmarshal(au.Secret, &c); err != nil {
			s.log.Error("stored WebAuthn credential unreadable", "authenticator", au.ID, "err", err)
			continue
		}
		u.Credentials = append(u.Credentials, c)
	}
	return u, nil
}

func (s *Service) saveCeremony(ctx context.Context, ses *recourse.Session, c ceremony) error {
	b, err := json.Marshal(c)
	if err != nil {
		return internal("save ceremony", err)
	}
	ses.Ceremony = b
	return internal("save ceremony", s.store.UpdateSession(ctx, ses))
}

// takeCeremony reads and clears the session's ceremony: each challenge is
// usable once.
func (s *Service) takeCeremony(ctx context.Context, ses *recourse.Session, kind string) (*ceremony, error) {
	if len(ses.Ceremony) == 0 {
		return nil, recourse.Errorf(recourse.EINVALID, "The passkey request expired. Try again.")
	}
	var c ceremony
	err := json.Unmarshal(ses.Ceremony, &c)
	ses.Ceremony = nil
	if uerr := s.store.UpdateSession(ctx, ses); uerr != nil {
		return nil, internal("clear ceremony", uerr)
	}
	if err != nil || c.Kind != kind {
		return nil, recourse.Errorf(recourse.EINVALID, "The passkey request expired. Try again.")
	}
	// The WebAuthn library stamps Expires with the wall clock and checks it
	// the same way; compare on the same clock.
	if !c.Data.Expires.IsZero() && time.Now().After(c.Data.Expires) {
		return nil, recourse.Errorf(recourse.EINVALID, "The passkey request expired. Try again.")
	}
	return &c, nil
}

// BeginPasskey starts registering a passkey or security key and returns the
// options for navigator.credentials.create as JSON.
func (s *Service) BeginPasskey(ctx context.Context, p *Principal, name string) ([]byte, error) {
	if s.webauthn == nil {
		return nil, errNoWebAuthn
	}
	if err := s.RequireRecentAuth(p); err != nil {
		return nil, err
	}
	name, err := authenticatorName(name, "Passkey")
	if err != nil {
		return nil, err
	}
	if n, err := s.countActive(ctx, p.Account.ID, recourse.AuthWebAuthn); err != nil {
		return nil, err
	} else if n >= maxAuthenticators {
		return nil, recourse.Errorf(recourse.EINVALID, "You already have %d passkeys. Remove one first.", n)
	}
	user, err := s.webAuthnUser(ctx, p.Account)
	if err != nil {
		return nil, err
	}
	creation, data, err := s.webauthn.BeginRegistration(user, webauthn.WithExclusions(webauthn.Credentials(user.Credentials).CredentialDescriptors()))
	if err != nil {
		return nil, internal("begin registration", err)
	}
	if err := s.saveCeremony(ctx, p.Session, ceremony{Kind: "register", Name: name, Data: *data}); err != nil {
		return nil, err
	}
	return json.Marshal(creation)
}

// FinishPasskey verifies the browser's attestation response and binds the
// new credential.
func (s *Service) FinishPasskey(ctx context.Context, p *Principal, body []byte, meta Meta) error {
	if s.webauthn == nil {
		return errNoWebAuthn
	}
	c, err := s.takeCeremony(ctx, p.Session, "register")
	if err != nil {
		return err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBody(bytes.NewReader(body))
	if err != nil {
		return recourse.Errorf(recourse.EINVALID, "The passkey response could not be read. Try again.")
	}
	user, err := s.webAuthnUser(ctx, p.Account)
	if err != nil {
		return err
	}
	cred, err := s.webauthn.CreateCredential(user, c.Data, parsed)
	if err != nil {
		s.log.Info("passkey registration refused", "account", p.Account.ID, "err", err)
		if err := s.recordAuditTx(ctx, recourse.AuditEvent{Action: recourse.ActionAuthenticatorBind, Outcome: recourse.OutcomeFailure,
			SubjectID: p.Account.ID, Reason: "attestation refused: " + err.Error(), Attributes: map[string]string{"kind": string(recourse.AuthWebAuthn)}}, meta); err != nil {
			return internal("bind passkey", err)
		}
		return recourse.Errorf(recourse.EINVALID, "The passkey could not be verified. Try again.")
	}
	secret, err := json.Marshal(cred)
	if err != nil {
		return internal("encode credential", err)
	}
	now := s.now()
	au := &recourse.Authenticator{AccountID: p.Account.ID, Kind: recourse.AuthWebAuthn, Status: recourse.AuthActive, Name: c.Name,
		Secret: secret, CredentialID: cred.ID, DeviceBound: credential.CredentialIsDeviceBound(*cred), CreatedAt: now}
	err = s.store.InTx(ctx, func(tx recourse.Tx) error {
		if err := tx.CreateAuthenticator(ctx, au); err != nil {
			return err
		}
		if err := s.liftRestriction(ctx, tx, p); err != nil {
			return err
		}
		if err := s.event(ctx, tx, au, recourse.AuthEventBound, meta); err != nil {
			return err
		}
		if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionAuthenticatorBind, Outcome: recourse.OutcomeSuccess,
			SubjectID: p.Account.ID, After: authenticatorAttrs(au)}, meta); err != nil {
			return err
		}
		return s.notifyAccount(ctx, tx, p.Account, "A passkey was added to your account", []string{
			"The passkey \"" + au.Name + "\" can now be used to sign in to your account.",
		}, meta)
	})
	if errors.Is(err, recourse.ErrConflict) {
		return recourse.Errorf(recourse.ECONFLICT, "This passkey is already registered.")
	}
	if err != nil {
		return internal("bind passkey", err)
	}
	s.log.Info("authenticator bound", "account", p.Account.ID, "authenticator", au.ID, "kind", au.Kind, "device_bound", au.DeviceBound, "ip", meta.IP)
	return nil
}

// BeginSignInWebAuthn starts the passkey step of a pending sign-in and
// returns the options for navigator.credentials.get as JSON.
func (s *Service) BeginSignInWebAuthn(ctx context.Context, token string) ([]byte, error) {
	if s.webauthn == nil {
		return nil, errNoWebAuthn
	}
	ses, a, err := s.pending(ctx, token)
	if err != nil {
		return nil, err
	}
	user, err := s.webAuthnUser(ctx, a)
	if err != nil {
		return nil, err
	}
	if len(user.Credentials) == 0 {
		return nil, errSignIn
	}
	assertion, data, err := s.webauthn.BeginLogin(user)
	if err != nil {
		return nil, internal("begin login", err)
	}
	if err := s.saveCeremony(ctx, ses, ceremony{Kind: "login", Data: *data}); err != nil {
		return nil, err
	}
	return json.Marshal(assertion)
}

// FinishSignInWebAuthn completes a pending sign-in with a passkey assertion.
// A device-bound credential (a security key) with the password reaches AAL3;
// a synced passkey AAL2.
func (s *Service) FinishSignInWebAuthn(ctx context.Context, token string, body []byte, meta Meta) (*SignIn, error) {
	if s.webauthn == nil {
		return nil, errNoWebAuthn
	}
	if !s.ipLimit.allow(meta.IP, s.now()) {
		return nil, errRateLimited
	}
	ses, a, err := s.pending(ctx, token)
	if err != nil {
		return nil, err
	}
	c, err := s.takeCeremony(ctx, ses, "login")
	if err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBody(bytes.NewReader(body))
	if err != nil {
		return nil, s.signInFailed(ctx, a, meta, recourse.ActionSignInSecondFactor, "webauthn", "unreadable WebAuthn assertion")
	}
	user, err := s.webAuthnUser(ctx, a)
	if err != nil {
		return nil, err
	}
	cred, err := s.webauthn.ValidateLogin(user, c.Data, parsed)
	if err != nil {
		return nil, s.signInFailed(ctx, a, meta, recourse.ActionSignInSecondFactor, "webauthn", "WebAuthn assertion refused: "+err.Error())
	}
	au, err := s.store.AuthenticatorByCredentialID(ctx, cred.ID)
	if err != nil || au.AccountID != a.ID || au.Status != recourse.AuthActive {
		return nil, s.signInFailed(ctx, a, meta, recourse.ActionSignInSecondFactor, "webauthn", "WebAuthn credential not bound")
	}
	if cred.Authenticator.CloneWarning {
		s.log.Warn("WebAuthn signature counter went backwards: the authenticator may be cloned", "account", a.ID, "authenticator", au.ID)
		return nil, s.signInFailed(ctx, a, meta, recourse.ActionSignInSecondFactor, "webauthn", "WebAuthn clone warning")
	}
	now := s.now()
	if au.Secret, err = json.Marshal(cred); err != nil {
		return nil, internal("encode credential", err)
	}
	au.LastUsedAt = &now
	aal, method := recourse.AAL2, "swk"
	if au.DeviceBound {
		aal, method = recourse.AAL3, "hwk"
	}
	var res *SignIn
	err = s.store.InTx(ctx, func(tx recourse.Tx) error {
		if err := tx.UpdateAuthenticator(ctx, au); err != nil {
			return err
		}
		if err := s.event(ctx, tx, au, recourse.AuthEventUsed, meta); err != nil {
			return err
		}
		res, err = s.completeSignIn(ctx, tx, ses, aal, method, meta)
		return err
	})
	if err != nil {
		return nil, internal("sign in", err)
	}
	s.log.Info("signed in", "account", a.ID, "session", ses.ID, "aal", aal, "method", method, "ip", meta.IP)
	return res, nil
}

// PasskeysEnabled reports whether a WebAuthn relying party is configured.
func (s *Service) PasskeysEnabled() bool { return s.webauthn != nil }
