/*
 * Recourse — small progressive enhancements. CSP-safe (no inline code).
 * Load with <script src="/static/app.js" defer></script>
 *
 *  (a) <button data-confirm="Remove this key?">  -> confirm() before submitting
 *  (b) <button type="button" data-copy-target="#codes">Copy</button>
 *        -> copies the target's text (or value) and shows "Copied" briefly.
 *        Buttons may ship with `hidden` (useless without JS); they are revealed here.
 *  (c) focuses the first [aria-invalid="true"] field after load.
 */
(() => {
  'use strict';

  // ---------- (a) Confirm before destructive submits ----------
  // Delegated click: also catches implicit submission via Enter, which
  // fires a click on the form's default button.
  document.addEventListener('click', (event) => {
    const btn = event.target instanceof Element ? event.target.closest('[data-confirm]') : null;
    if (!btn || btn.matches('form')) return;
    const message = btn.getAttribute('data-confirm') || 'Are you sure?';
    if (!window.confirm(message)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  // ---------- (b) Copy to clipboard ----------

  // One shared, visually hidden live region so screen readers hear "Copied".
  let liveRegion = null;
  function announce(text) {
    if (!liveRegion) {
      liveRegion = document.createElement('div');
      liveRegion.className = 'visually-hidden';
      liveRegion.setAttribute('role', 'status');
      liveRegion.setAttribute('aria-live', 'polite');
      document.body.appendChild(liveRegion);
    }
    liveRegion.textContent = '';
    // Next tick so repeated identical messages are still announced.
    window.setTimeout(() => { liveRegion.textContent = text; }, 50);
  }

  function textOf(el) {
    if ('value' in el && (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA')) return el.value;
    // innerText keeps line breaks between grid/list items (e.g. recovery codes).
    return (el.innerText || el.textContent || '').trim();
  }

  async function writeClipboard(text) {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return;
    }
    // Legacy fallback: temporary off-screen textarea + execCommand.
    const ta = document.createElement('textarea');
    ta.value = text;
    ta.setAttribute('readonly', '');
    ta.className = 'visually-hidden';
    document.body.appendChild(ta);
    ta.select();
    const ok = document.execCommand && document.execCommand('copy');
    ta.remove();
    if (!ok) throw new Error('copy failed');
  }

  function flashLabel(btn, label) {
    if (!btn.dataset.copyLabel) btn.dataset.copyLabel = btn.textContent;
    window.clearTimeout(Number(btn.dataset.copyTimer) || 0);
    btn.textContent = label;
    const timer = window.setTimeout(() => {
      btn.textContent = btn.dataset.copyLabel;
      delete btn.dataset.copyLabel;
      delete btn.dataset.copyTimer;
    }, 2000);
    btn.dataset.copyTimer = String(timer);
  }

  document.addEventListener('click', async (event) => {
    const btn = event.target instanceof Element ? event.target.closest('[data-copy-target]') : null;
    if (!btn) return;
    event.preventDefault();
    let target = null;
    try { target = document.querySelector(btn.getAttribute('data-copy-target')); } catch (_) { target = null; }
    if (!target) return;
    try {
      await writeClipboard(textOf(target));
      flashLabel(btn, 'Copied');
      announce('Copied to clipboard');
    } catch (_) {
      flashLabel(btn, 'Copy failed');
      announce('Could not copy. Select the text and copy it manually.');
    }
  });

  // ---------- Init: reveal JS-only controls, (c) focus first invalid field ----------
  function init() {
    document.querySelectorAll('[data-copy-target][hidden]').forEach((btn) => { btn.hidden = false; });

    const invalid = document.querySelector(
      'input[aria-invalid="true"], select[aria-invalid="true"], textarea[aria-invalid="true"], [aria-invalid="true"][tabindex]'
    );
    if (invalid && typeof invalid.focus === 'function') {
      invalid.focus();
      if (typeof invalid.select === 'function' && invalid.type !== 'password' && 'value' in invalid) {
        try { invalid.select(); } catch (_) { /* not selectable (e.g. email in some browsers) */ }
      }
    }
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
