// Boot and state: loads /ui/meta, /llm/catalog and /llm/current, renders, wires the actions.

import { api, initToken, onUnauthorized } from './api.js';
import { wireChat } from './chat.js';
import { renderAccount, renderCurrent } from './current.js';
import { fillProviders, wireCustomForm } from './custom.js';
import { askToken, openKeyDialog } from './dialogs.js';
import { debounce, el, renderKeepingFocus, setChildren, toast } from './format.js';
import { renderPicker, wirePickerKeys } from './picker.js';

const $ = (id) => document.getElementById(id);

const view = {
  meta: null, catalog: null, shown: null, current: null,
  expanded: new Set(), searching: false, query: '',
  rerender() { renderKeepingFocus($('groups'), () => renderPicker($('groups'), view.shown, view)); },
  async onSelect(pid, model) {
    try {
      view.current = await api('/llm/switch', { method: 'POST', body: { provider: pid, model: model.id } });
      renderAll();
      toast(`Now using ${model.displayName}`);
    } catch (err) {
      toast(`${err.message}${err.fix ? ` — ${err.fix}` : ''}`);
    }
  },
  async onConnect(pid, opts = {}) {
    const prov = view.catalog.providers[pid];
    if (!prov) return;
    const saved = await openKeyDialog(pid, prov, view.meta.providers[pid], opts);
    if (saved) {
      await reload();
      const now = view.catalog.providers[pid];
      toast(`Key saved. ${now.name}: ${view.meta.badges[now.effectiveRoute]}`);
    }
  },
  async onCredits() {
    view.current = await api('/llm/current');
    showCurrent();
  },
  async onCustomAdded(model) {
    await reload();
    toast(`Added ${model.displayName || model.name}`);
    const row = document.querySelector(`.model[data-provider="${CSS.escape(model.provider)}"][data-model="${CSS.escape(model.name)}"]`);
    if (row) { row.scrollIntoView({ block: 'center' }); row.classList.add('flash'); }
  },
};

function showCurrent() {
  renderKeepingFocus($('current'), () => renderCurrent($('current'), view.current, view.catalog, view));
}

function renderAll() {
  renderAccount($('account'), view.catalog);
  showCurrent();
  view.rerender();
}

async function search(q) {
  view.query = q;
  view.searching = Boolean(q.trim());
  if (!view.searching) { view.shown = view.catalog; view.rerender(); shownFor(q); return; }
  const result = await api(`/llm/catalog?search=${encodeURIComponent(q)}`);
  if (view.query !== q) return;
  view.shown = result;
  view.rerender();
  shownFor(q);
}

// The search text the picker currently shows results for (tests and assistive tech wait on it).
function shownFor(q) { $('groups').dataset.query = q; }

async function reload() {
  const [catalog, current] = await Promise.all([api('/llm/catalog'), api('/llm/current')]);
  view.catalog = catalog;
  view.current = current;
  if (view.searching) await search(view.query);
  else view.shown = catalog;
  fillProviders(view);
  renderAll();
}

// Skip links move keyboard focus (not only the scroll position) and leave the address alone.
function wireSkipLinks() {
  for (const a of document.querySelectorAll('a[data-skip]')) {
    a.addEventListener('click', (ev) => { ev.preventDefault(); $(a.dataset.skip).focus(); });
  }
}

async function boot() {
  initToken();
  onUnauthorized(askToken);
  view.meta = await api('/ui/meta');
  await reload();
  wireChat(view);
  wireCustomForm(view);
  $('search').addEventListener('input', debounce((ev) => search(ev.target.value), 120));
  wirePickerKeys($('groups'), $('search'));
  const t = performance.now();
  performance.mark('dexto:interactive');
  document.body.dataset.interactiveMs = t.toFixed(1);
  document.body.dataset.ready = 'true';
}

// A failed start shows the error and its fix where the selection would be, with a retry.
function showBootError(err) {
  setChildren($('current'),
    el('div', { class: 'cur-route' },
      el('p', { class: 'cur-error', id: 'boot-error', text: `Could not load the page: ${err.message}` }),
      err.fix ? el('p', { class: 'fix small' }, el('span', { class: 'fix-label', text: 'How to fix' }), ` ${err.fix}`) : null,
      el('button', { type: 'button', class: 'primary', id: 'boot-retry', text: 'Try again',
        onclick: () => { start(); } })));
  setChildren($('groups'), el('p', { class: 'empty', text: 'The catalog is not loaded.' }));
  $('groups').setAttribute('aria-busy', 'false');
}

function start() { boot().catch(showBootError); }

wireSkipLinks();
start();
