// The custom-model form: live validation through GET /llm/validate, save via POST.

import { api } from './api.js';
import { debounce, el, setChildren } from './format.js';
import { offersOwnKey } from './offers.js';

const $ = (id) => document.getElementById(id);
const ICONS = { known: '✓', unknown: '!', unverified: '?' };

export function fillProviders(view) {
  const select = $('cm-provider');
  const keep = select.value || 'openrouter';
  setChildren(select, ...view.meta.customModelProviders.map((pid) => {
    const prov = view.catalog.providers[pid];
    return el('option', { value: pid, text: prov ? prov.name : view.meta.providers[pid].name });
  }));
  select.value = keep;
  syncFields(view);
}

function syncFields(view) {
  const pid = $('cm-provider').value;
  const facts = view.meta.providers[pid] || {};
  $('cm-baseurl-row').hidden = !facts.requiresBaseURL;
  $('cm-file-row').hidden = !facts.requiresFilePath;
  $('cm-own-key').hidden = !offersOwnKey(pid, view.catalog.providers[pid], facts);
}

let seq = 0;
async function validate() {
  const provider = $('cm-provider').value;
  const model = $('cm-name').value.trim();
  const box = $('cm-validation');
  const mine = ++seq;
  if (!model) { setChildren(box); box.dataset.status = ''; return; }
  try {
    const v = await api(`/llm/validate?provider=${encodeURIComponent(provider)}&model=${encodeURIComponent(model)}`);
    if (mine !== seq) return;
    box.dataset.status = v.status;
    setChildren(box, el('span', { class: `vicon v-${v.status}`, text: ICONS[v.status] }), ` ${v.status}: ${v.message}`);
  } catch (err) {
    if (mine !== seq) return;
    box.dataset.status = 'invalid';
    setChildren(box, el('span', { class: 'vicon v-invalid', text: '✗' }), ` ${err.message}`);
  }
}

function formBody() {
  const body = { provider: $('cm-provider').value, name: $('cm-name').value.trim() };
  const extra = { baseURL: 'cm-baseurl', filePath: 'cm-file', displayName: 'cm-display' };
  for (const [key, id] of Object.entries(extra)) {
    const v = $(id).value.trim();
    if (v && !$(id).closest('label').hidden) body[key] = v;
  }
  return body;
}

export function wireCustomForm(view) {
  const live = debounce(validate, 200);
  $('cm-name').addEventListener('input', live);
  $('cm-provider').addEventListener('change', () => { syncFields(view); live(); });
  $('cm-own-key-btn').addEventListener('click', () => view.onConnect('openrouter', { voluntary: true }));
  $('custom-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('cm-error').textContent = '';
    const body = formBody();
    try {
      const saved = await api('/llm/custom-models', { method: 'POST', body });
      $('cm-name').value = '';
      $('cm-display').value = '';
      setChildren($("cm-validation"));
      await view.onCustomAdded(saved.model);
    } catch (err) {
      $('cm-error').textContent = `${err.message}${err.fix ? ` — ${err.fix}` : ''}`;
    }
  });
}
