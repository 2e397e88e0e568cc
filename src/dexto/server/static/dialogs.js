// The key dialog (provider keys go to the server's auth store, never to page storage) and
// the token prompt for servers started with --token.

import { api, setToken } from './api.js';

const $ = (id) => document.getElementById(id);

// Cancel buttons are plain buttons (not submitters), so Enter in a field submits the dialog's
// primary action rather than the first button in the form.
for (const [button, dialog] of [['key-cancel', 'key-dialog'], ['token-cancel', 'token-dialog']]) {
  $(button).addEventListener('click', () => $(dialog).close('cancel'));
}

// Open the key dialog for provider `pid`. `prov` is the catalog entry (its `fix` field is the
// exact remedy computed by the server). Resolves true when a key was saved.
export function openKeyDialog(pid, prov, facts, { voluntary = false } = {}) {
  const dialog = $('key-dialog');
  $('key-title').textContent = voluntary ? `Use your own ${facts.name} key` : `Connect ${prov.name}`;
  $('key-why').textContent = voluntary
    ? `Add your own ${facts.name} key. Dexto credits stay the default while you prefer them; `
      + 'your key is used when you prefer your own keys, and as the fallback when credits run out.'
    : `Nothing can serve ${prov.name} models right now.`;
  $('key-fix').textContent = prov.fix || (facts.keyEnv ? `set ${facts.keyEnv}, or paste the key below` : '');
  $('key-fix').parentElement.hidden = !$('key-fix').textContent;
  $('key-input-block').hidden = !facts.acceptsKey;
  $('key-save').hidden = !facts.acceptsKey;
  $('key-label').textContent = facts.keyEnv ? `Paste your ${facts.keyEnv}` : 'API key';
  $('key-error').textContent = '';
  const input = $('key-input');
  input.value = '';
  dialog.dataset.provider = pid;
  dialog.showModal();
  if (facts.acceptsKey) input.focus();

  return new Promise((resolve) => {
    const form = $('key-form');
    const finish = (saved) => {
      input.value = '';
      form.removeEventListener('submit', onSubmit);
      dialog.removeEventListener('close', onClose);
      if (dialog.open) dialog.close();
      resolve(saved);
    };
    // a close event queued by the previous opening can arrive after this one began: ignore it
    const onClose = () => { if (!dialog.open) finish(false); };
    const onSubmit = async (ev) => {
      ev.preventDefault();
      const key = input.value.trim();
      if (key.length < 8) { $('key-error').textContent = 'That key looks too short.'; return; }
      $('key-save').disabled = true;
      try {
        await api('/llm/keys', { method: 'POST', body: { provider: pid, key } });
        finish(true);
      } catch (err) {
        $('key-error').textContent = `${err.message}${err.fix ? ` — ${err.fix}` : ''}`;
      } finally {
        $('key-save').disabled = false;
      }
    };
    form.addEventListener('submit', onSubmit);
    dialog.addEventListener('close', onClose);
  });
}

// Ask for the server token; resolves true when one was entered, false when the dialog was
// dismissed (Escape or Cancel), in which case the token is left as it was.
export function askToken() {
  const dialog = $('token-dialog');
  const input = $('token-input');
  return new Promise((resolve) => {
    const onClose = () => {
      if (dialog.open) return; // queued by an earlier opening
      dialog.removeEventListener('close', onClose);
      const value = input.value.trim();
      input.value = '';
      const entered = dialog.returnValue === 'ok' && value !== '';
      if (entered) setToken(value);
      resolve(entered);
    };
    dialog.addEventListener('close', onClose);
    dialog.returnValue = '';
    if (!dialog.open) dialog.showModal();
    input.focus();
  });
}
