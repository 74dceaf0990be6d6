/*
 * Recourse — WebAuthn progressive enhancement.
 *
 * CSP-safe: no inline code, no eval, no dependencies. Load with
 *   <script src="/static/webauthn.js" defer></script>
 *
 * Markup contract
 * ---------------
 * Registration (inside a <form>):
 *   <button type="submit" data-webauthn-register
 *           data-begin-url="/security/webauthn/register/begin"
 *           data-finish-url="/security/webauthn/register/finish"
 *           data-csrf-field="csrf_token">Add security key</button>
 *   Optional <input name="name"> in the same form: sent as {name} to begin.
 *   Optional data-csrf-field: name of a form field whose value is sent as the
 *   X-CSRF-Token header (the same-origin Origin header is the primary check).
 *
 * Sign-in (inside a <form>, or anywhere):
 *   <button type="button" data-webauthn-login
 *           data-begin-url="..." data-finish-url="...">Sign in with a passkey</button>
 *
 * Feedback:
 *   <div data-webauthn-status></div>   (in the same form; role=status and
 *   aria-live=polite are added if missing; gets .notice + .notice-error /
 *   .notice-info while it has a message)
 *   <p data-webauthn-unsupported hidden>Your browser can't use security keys.</p>
 *
 * Server protocol
 * ---------------
 *   begin:  POST JSON -> protocol.CredentialCreation / protocol.CredentialAssertion
 *   finish: POST JSON credential -> 2xx {"redirect": "/path"} (or empty -> reload)
 *   errors: non-2xx {"error": {"message": "..."}}
 */
(() => {
  'use strict';

  // ---------- base64url <-> ArrayBuffer ----------

  /** Decode a base64url (or standard base64, padded or not) string to an ArrayBuffer. */
  function b64urlToBuf(value) {
    if (value instanceof ArrayBuffer) return value;
    if (ArrayBuffer.isView(value)) {
      return value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength);
    }
    if (typeof value !== 'string') throw new TypeError('expected a base64url string');
    let b64 = value.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
    b64 += '='.repeat((4 - (b64.length % 4)) % 4);
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return bytes.buffer;
  }

  /** Encode an ArrayBuffer / typed array as unpadded base64url. null stays null. */
  function bufToB64url(buf) {
    if (buf == null) return null;
    const bytes = buf instanceof ArrayBuffer
      ? new Uint8Array(buf)
      : new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    let bin = '';
    // Chunk to avoid call-stack limits on large buffers.
    for (let i = 0; i < bytes.length; i += 0x8000) {
      bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  /** Recursively base64url-encode any binary values (for extension results). */
  function encodeBinaryDeep(value) {
    if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return bufToB64url(value);
    if (Array.isArray(value)) return value.map(encodeBinaryDeep);
    if (value && typeof value === 'object') {
      const out = {};
      for (const [k, v] of Object.entries(value)) out[k] = encodeBinaryDeep(v);
      return out;
    }
    return value;
  }

  /** Convert a list of {id: base64url, ...} descriptors to {id: ArrayBuffer, ...}. */
  function decodeDescriptors(list) {
    if (!Array.isArray(list)) return list;
    return list.map((d) => ({ ...d, id: b64urlToBuf(d.id) }));
  }

  // ---------- Option decoding (server JSON -> WebAuthn API) ----------

  function creationOptions(json) {
    const pk = { ...((json && json.publicKey) || json || {}) };
    if (!pk.challenge || !pk.user) throw new Error('The server sent an invalid registration request.');
    pk.challenge = b64urlToBuf(pk.challenge);
    pk.user = { ...pk.user, id: b64urlToBuf(pk.user.id) };
    if (pk.excludeCredentials) pk.excludeCredentials = decodeDescriptors(pk.excludeCredentials);
    return pk;
  }

  function requestOptions(json) {
    const pk = { ...((json && json.publicKey) || json || {}) };
    if (!pk.challenge) throw new Error('The server sent an invalid sign-in request.');
    pk.challenge = b64urlToBuf(pk.challenge);
    if (pk.allowCredentials) pk.allowCredentials = decodeDescriptors(pk.allowCredentials);
    return pk;
  }

  // ---------- Credential encoding (WebAuthn API -> server JSON) ----------

  function extensionResults(cred) {
    try {
      return encodeBinaryDeep(cred.getClientExtensionResults());
    } catch (_) {
      return {};
    }
  }

  function attestationJSON(cred) {
    const r = cred.response;
    let transports = [];
    if (typeof r.getTransports === 'function') {
      try { transports = r.getTransports() || []; } catch (_) { transports = []; }
    }
    return {
      id: cred.id,
      rawId: bufToB64url(cred.rawId),
      type: cred.type,
      response: {
        attestationObject: bufToB64url(r.attestationObject),
        clientDataJSON: bufToB64url(r.clientDataJSON),
        transports,
      },
      clientExtensionResults: extensionResults(cred),
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
    };
  }

  function assertionJSON(cred) {
    const r = cred.response;
    return {
      id: cred.id,
      rawId: bufToB64url(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: bufToB64url(r.authenticatorData),
        clientDataJSON: bufToB64url(r.clientDataJSON),
        signature: bufToB64url(r.signature),
        userHandle: r.userHandle ? bufToB64url(r.userHandle) : null,
      },
      clientExtensionResults: extensionResults(cred),
    };
  }

  // ---------- HTTP ----------

  /** Error carrying a message that is safe to show the user verbatim. */
  class ServerError extends Error {}

  async function postJSON(url, body, extraHeaders) {
    let res;
    try {
      res = await fetch(url, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...extraHeaders },
        body: JSON.stringify(body),
      });
    } catch (_) {
      throw new ServerError('Could not reach the server. Check your connection and try again.');
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = null; }
    }
    if (!res.ok) {
      const err = data && data.error;
      const msg = (err && typeof err === 'object' && err.message) ||
        (typeof err === 'string' && err) ||
        `The request failed (HTTP ${res.status}). Please try again.`;
      throw new ServerError(msg);
    }
    return data;
  }

  /** Follow a same-origin redirect from the server, otherwise reload. */
  function navigate(data) {
    const target = data && typeof data.redirect === 'string' ? data.redirect : '';
    if (target) {
      try {
        const url = new URL(target, location.href);
        if (url.origin === location.origin) {
          location.href = url.href;
          return;
        }
      } catch (_) { /* fall through to reload */ }
    }
    location.reload();
  }

  // ---------- UI helpers ----------

  function statusFor(btn) {
    const scope = btn.closest('form') || btn.parentElement || document;
    const el = scope.querySelector('[data-webauthn-status]') ||
      document.querySelector('[data-webauthn-status]');
    if (el) {
      if (!el.hasAttribute('role')) el.setAttribute('role', 'status');
      if (!el.hasAttribute('aria-live')) el.setAttribute('aria-live', 'polite');
    }
    return el;
  }

  /** kind: 'error' | 'info' | '' (clear). */
  function showStatus(el, message, kind) {
    if (!el) {
      if (kind === 'error' && message) window.alert(message);
      return;
    }
    el.classList.remove('notice-error', 'notice-info');
    el.textContent = message || '';
    el.classList.toggle('notice', Boolean(message));
    if (message && kind) el.classList.add(`notice-${kind}`);
  }

  function setBusy(btn, busy) {
    btn.dataset.webauthnBusy = busy ? '1' : '';
    if (busy) {
      btn.setAttribute('aria-busy', 'true');
      btn.setAttribute('aria-disabled', 'true');
    } else {
      btn.removeAttribute('aria-busy');
      btn.removeAttribute('aria-disabled');
    }
  }

  /** Translate WebAuthn DOMExceptions into something a person can act on. */
  function friendlyError(err, mode) {
    if (err instanceof ServerError) return err.message;
    switch (err && err.name) {
      case 'NotAllowedError':
      case 'AbortError':
        return 'The request was cancelled or timed out. You can try again when you are ready.';
      case 'InvalidStateError':
        return mode === 'register'
          ? 'This security key or passkey is already registered to your account.'
          : 'This security key or passkey could not be used. Try another one.';
      case 'SecurityError':
        return 'Security keys cannot be used on this address. Make sure you are on the correct site using HTTPS.';
      case 'NotSupportedError':
        return 'Your browser or security key does not support the requested options.';
      case 'ConstraintError':
        return 'Your security key does not support what this site requires (for example a PIN or biometric).';
      default:
        return (err && err.message) || 'Something went wrong. Please try again.';
    }
  }

  function csrfHeaders(btn, form) {
    const field = btn.dataset.csrfField;
    if (!field || !form) return {};
    const input = form.elements.namedItem(field);
    const value = input && 'value' in input ? input.value : '';
    return value ? { 'X-CSRF-Token': value } : {};
  }

  // ---------- Flows ----------

  async function register(btn) {
    const form = btn.closest('form');
    const status = statusFor(btn);
    const beginURL = btn.dataset.beginUrl;
    const finishURL = btn.dataset.finishUrl;
    if (!beginURL || !finishURL) {
      showStatus(status, 'This button is misconfigured (missing URLs).', 'error');
      return;
    }

    const nameInput = form && form.querySelector('[name="name"]');
    if (nameInput && typeof nameInput.reportValidity === 'function' && !nameInput.reportValidity()) return;
    const name = nameInput ? nameInput.value.trim() : '';
    const headers = csrfHeaders(btn, form);

    setBusy(btn, true);
    showStatus(status, 'Follow the prompts from your browser or security key…', 'info');
    try {
      const options = await postJSON(beginURL, { name }, headers);
      const publicKey = creationOptions(options);
      const cred = await navigator.credentials.create({ publicKey });
      if (!cred) throw Object.assign(new Error(''), { name: 'NotAllowedError' });
      showStatus(status, 'Saving…', 'info');
      const result = await postJSON(finishURL, attestationJSON(cred), headers);
      navigate(result);
    } catch (err) {
      showStatus(status, friendlyError(err, 'register'), 'error');
      setBusy(btn, false);
    }
  }

  async function login(btn) {
    const form = btn.closest('form');
    const status = statusFor(btn);
    const beginURL = btn.dataset.beginUrl;
    const finishURL = btn.dataset.finishUrl;
    if (!beginURL || !finishURL) {
      showStatus(status, 'This button is misconfigured (missing URLs).', 'error');
      return;
    }
    const headers = csrfHeaders(btn, form);

    setBusy(btn, true);
    showStatus(status, 'Follow the prompts from your browser or security key…', 'info');
    try {
      const options = await postJSON(beginURL, {}, headers);
      const publicKey = requestOptions(options);
      const cred = await navigator.credentials.get({ publicKey });
      if (!cred) throw Object.assign(new Error(''), { name: 'NotAllowedError' });
      showStatus(status, 'Signing you in…', 'info');
      const result = await postJSON(finishURL, assertionJSON(cred), headers);
      navigate(result);
    } catch (err) {
      showStatus(status, friendlyError(err, 'login'), 'error');
      setBusy(btn, false);
    }
  }

  // ---------- Wiring ----------

  const SELECTOR = '[data-webauthn-register], [data-webauthn-login]';
  const supported = typeof window.PublicKeyCredential === 'function' &&
    Boolean(navigator.credentials) &&
    typeof navigator.credentials.create === 'function';

  function init() {
    // Buttons may ship with `hidden` so they stay invisible without JS.
    document.querySelectorAll(SELECTOR).forEach((btn) => { btn.hidden = !supported; });
    document.querySelectorAll('[data-webauthn-unsupported]').forEach((el) => { el.hidden = supported; });
  }

  if (supported) {
    // Delegated, so it also covers implicit submission (Enter in the name field
    // fires a click on the form's default button).
    document.addEventListener('click', (event) => {
      const btn = event.target instanceof Element ? event.target.closest(SELECTOR) : null;
      if (!btn) return;
      event.preventDefault();
      if (btn.dataset.webauthnBusy === '1') return;
      if (btn.hasAttribute('data-webauthn-register')) register(btn);
      else login(btn);
    });
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }

  // Exposed for tests / other scripts; harmless otherwise.
  window.RecourseWebAuthn = Object.freeze({ b64urlToBuf, bufToB64url, supported });
})();
