package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/go-webauthn/webauthn/protocol"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/policy"
)

// beginRecoveryWebAuthn starts a passkey or security-key assertion as
// possession evidence for a request (a privileged person who still holds
// their key). It returns the options for navigator.credentials.get as JSON.
// Like every step before the request is revealed, an unknown request or a
// wrong browser gets the same answer as a request whose account has no
// passkey.
func (s *Service) beginRecoveryWebAuthn(ctx context.Context, id, secret string) ([]byte, error) {
	if s.webauthn == nil {
		return nil, errNoWebAuthn
	}
	var out []byte
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		r, err := s.loadForBrowser(ctx, tx, id, secret)
		if err != nil {
			return err
		}
		if !r.State.Open() {
			return errRecoveryClosed
		}
		a, err := tx.Account(ctx, r.AccountID)
		if err != nil {
			return err
		}
		user, err := s.webAuthnUser(ctx, a)
		if err != nil {
			return err
		}
		if len(user.Credentials) == 0 {
			return recourse.ErrNotFound
		}
		assertion, data, err := s.webauthn.BeginLogin(user)
		if err != nil {
			return err
		}
		if r.Ceremony, err = json.Marshal(ceremony{Kind: "recovery", Data: *data}); err != nil {
			return err
		}
		r.UpdatedAt = s.now()
		if err := tx.UpdateRecovery(ctx, r); err != nil {
			return err
		}
		out, err = json.Marshal(assertion)
		return err
	})
	if errors.Is(err, recourse.ErrNotFound) {
		return nil, recourse.Errorf(recourse.EINVALID, "No passkey can be used here. Use a code instead.")
	}
	if err != nil && recourse.ErrorCode(err) == recourse.EINTERNAL {
		return nil, internal("begin assertion", err)
	}
	return out, err
}

// finishRecoveryWebAuthn verifies the assertion against the account's
// still-bound credentials and records possession: phishing-resistant, AAL3
// for a device-bound key, AAL2 for a synced passkey. The challenge is usable
// once.
func (s *Service) finishRecoveryWebAuthn(ctx context.Context, id, secret string, body []byte, meta Meta) error {
	if s.webauthn == nil {
		return errNoWebAuthn
	}
	r, a, err := s.loadForBrowserWithAccount(ctx, id, secret)
	if errors.Is(err, recourse.ErrNotFound) {
		return errWrongCode
	}
	if err != nil {
		return internal("read recovery", err)
	}
	if len(r.Ceremony) == 0 {
		return recourse.Errorf(recourse.EINVALID, "The passkey request expired. Try again.")
	}
	var c ceremony
	if err := json.Unmarshal(r.Ceremony, &c); err != nil || c.Kind != "recovery" || (!c.Data.Expires.IsZero() && time.Now().After(c.Data.Expires)) /* the library's wall clock */ {
		return recourse.Errorf(recourse.EINVALID, "The passkey request expired. Try again.")
	}
	parsed, err := protocol.ParseCredentialRequestResponseBody(bytes.NewReader(body))
	if err != nil {
		return recourse.Errorf(recourse.EINVALID, "The passkey response could not be read. Try again.")
	}
	user, err := s.webAuthnUser(ctx, a)
	if err != nil {
		return err
	}
	cred, verr := s.webauthn.ValidateLogin(user, c.Data, parsed)
	var au *recourse.Authenticator
	if verr == nil {
		au, err = s.store.AuthenticatorByCredentialID(ctx, cred.ID)
		if err != nil || au.AccountID != a.ID || au.Status != recourse.AuthActive || cred.Authenticator.CloneWarning {
			verr = errors.New("credential not bound or cloned")
		}
	}
	if verr != nil {
		if _, err := s.store.RecordRecoveryFailure(ctx, a.ID); err != nil {
			return internal("count failure", err)
		}
		s.log.Info("recovery passkey assertion refused", "request", r.ID, "err", verr)
		return recourse.Errorf(recourse.EINVALID, "The passkey could not be verified.")
	}
	now := s.now()
	if au.Secret, err = json.Marshal(cred); err != nil {
		return internal("encode credential", err)
	}
	au.LastUsedAt = &now
	aal := recourse.AAL2
	if au.DeviceBound {
		aal = recourse.AAL3
	}
	return s.recordEvidence(ctx, nil, r.ID, meta, nil, func(tx recourse.Tx, r *recourse.Recovery) error {
		if len(r.Ceremony) == 0 {
			return errWrongCode // a racing submission used the challenge
		}
		r.Ceremony = nil
		if err := tx.UpdateRecovery(ctx, r); err != nil {
			return err
		}
		if err := tx.UpdateAuthenticator(ctx, au); err != nil {
			return err
		}
		if err := s.event(ctx, tx, au, recourse.AuthEventUsed, meta); err != nil {
			return err
		}
		return s.addEvidence(ctx, tx, r, "possession", policy.Possession{Type: "webauthn", PhishingResistant: true, AAL: aal}, "")
	}, "passkey or security key")
}
