// The "Dexto Marketplace" group (provider openrouter): every marketplace model the catalog lists,
// featured first (the server's order), filtered in place and shown one page at a time, so the
// page stays fast with 400 rows. Rows whose listing maps to a native model (row.native, computed
// by the server) offer "Run with my own <Provider> key": it switches the selection to that native
// model, asking for the key first when none is stored; it is shown when that key is stored, or
// when the row itself cannot run and a key can be added. Routes come only from the catalog rows.

import { el } from './format.js';

export const PAGE_SIZE = 25;

const state = { page: 0, filter: '', focus: null };

function haystack(m) {
  return `${m.id} ${m.displayName} ${m.native ? `${m.native.provider}/${m.native.model}` : ''}`
    .toLowerCase();
}

function filtered(models) {
  const words = state.filter.toLowerCase().split(/\s+/).filter(Boolean);
  return words.length ? models.filter((m) => words.every((w) => haystack(m).includes(w))) : models;
}

function rerender(view, focusId) {
  state.focus = focusId;
  view.rerender();
}

async function runOnOwnKey(m, view) {
  const { provider, model } = m.native;
  const facts = view.meta.providers[provider] || {};
  let prov = view.catalog.providers[provider];
  if (!prov || !prov.hasDirectKey) {
    await view.onConnect(provider, { voluntary: true });
    prov = view.catalog.providers[provider];
    if (!prov || !prov.hasDirectKey) return;
  }
  await view.onSelect(provider, { id: model, displayName: `${facts.name || provider} ${model}` });
}

function ownKeyOffer(m, view) {
  if (!m.native) return null;
  const n = m.native;
  const facts = view.meta.providers[n.provider] || {};
  const name = facts.name || n.provider;
  // Offered when the key is there, or when nothing else can run the row and a key can be added.
  if (!(n.hasDirectKey || (!m.hasEffectiveCredentials && facts.acceptsKey))) return null;
  const how = n.effectiveRoute === 'direct'
    ? 'it runs directly on your key'
    : 'your key is used when you prefer your own keys, and as the fallback when credits run out';
  return el('button', {
    type: 'button', class: 'ghost small own-key',
    dataset: { nativeProvider: n.provider, nativeModel: n.model },
    title: `${n.hasDirectKey ? 'Switch' : `Add your ${name} key, then switch`} to `
      + `${n.provider}/${n.model}${n.verified ? '' : ' (matched by the marketplace list)'}: ${how}`,
    text: `Run with my own ${name} key`,
    onclick: () => runOnOwnKey(m, view),
  });
}

function pager(total, pages, view) {
  const go = (delta, id) => () => { state.page += delta; rerender(view, id); };
  const from = total ? state.page * PAGE_SIZE + 1 : 0;
  const to = Math.min(total, (state.page + 1) * PAGE_SIZE);
  return el('nav', { class: 'market-pager', 'aria-label': 'Marketplace pages' },
    el('button', { type: 'button', class: 'ghost small', id: 'market-prev', text: '‹ Previous',
      disabled: state.page === 0, onclick: go(-1, 'market-prev') }),
    el('span', { class: 'muted small', id: 'market-status', 'aria-live': 'polite',
      text: `${from}–${to} of ${total} models · page ${state.page + 1} of ${pages}` }),
    el('button', { type: 'button', class: 'ghost small', id: 'market-next', text: 'Next ›',
      disabled: state.page >= pages - 1, onclick: go(1, 'market-next') }));
}

// Render the group; `parts` are picker.js's groupHeader and modelRow (same rows as elsewhere).
export function marketplaceGroup(pid, prov, view, { groupHeader, modelRow }) {
  const models = filtered(prov.models);
  const pages = Math.max(1, Math.ceil(models.length / PAGE_SIZE));
  state.page = Math.min(Math.max(state.page, 0), pages - 1);
  const shown = models.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE);
  const filter = el('input', {
    type: 'search', id: 'market-filter', class: 'market-filter', value: state.filter,
    placeholder: `Filter ${prov.models.length} marketplace models`, autocomplete: 'off',
    spellcheck: 'false', 'aria-label': 'Filter marketplace models',
    oninput: (ev) => { state.filter = ev.target.value; state.page = 0; rerender(view, 'market-filter'); },
  });
  const list = el('ul', { class: 'models market-list', 'aria-label': `${prov.name} models` },
    shown.map((m) => el('li', { class: 'market-item' }, modelRow(pid, prov, m, view),
      ownKeyOffer(m, view))));
  const empty = shown.length ? null : el('p', { class: 'empty small', text: 'No marketplace model matches that filter.' });
  const section = el('section', {
    id: `group-${pid}`, class: `group group-market${prov.hasEffectiveCredentials ? '' : ' group-off'}`,
    dataset: { provider: pid, route: prov.effectiveRoute, total: String(models.length) },
  }, groupHeader(pid, prov, view), el('div', { class: 'market-tools' }, filter), list, empty,
  pages > 1 ? pager(models.length, pages, view) : null);
  if (state.focus) {
    const id = state.focus;
    state.focus = null;
    queueMicrotask(() => {
      const node = document.getElementById(id);
      if (!node) return;
      node.focus();
      if (id === 'market-filter') node.setSelectionRange(node.value.length, node.value.length);
    });
  }
  return section;
}
