// The model picker: renders the catalog answer (GET /llm/catalog) as provider groups.
// Selectable = the row's hasEffectiveCredentials (the provider's for older answers), as computed
// by the server. Nothing else.

import { offersOwnKey } from './offers.js';

import { badge, context, el, price, setChildren } from './format.js';
import { marketplaceGroup } from './marketplace.js';

const COLLAPSED_ROWS = 24;

export function modelRow(pid, prov, m, view) {
  const selectable = m.hasEffectiveCredentials ?? prov.hasEffectiveCredentials;
  const selected = view.current && view.current.provider === pid && view.current.model === m.id;
  const tags = [
    m.featured ? el('span', { class: 'tag tag-featured', text: 'featured' }) : null,
    m.custom ? el('span', { class: 'tag tag-custom', text: 'custom' }) : null,
    m.validation === 'unknown' ? el('span', { class: 'tag tag-warn', text: 'not listed' }) : null,
  ];
  return el('button', {
    type: 'button', class: `model${selected ? ' selected' : ''}${selectable ? '' : ' unavailable'}`,
    'aria-pressed': selected ? 'true' : 'false',
    title: selectable ? `Use ${m.displayName}` : `Connect ${prov.name} to use this model`,
    dataset: { provider: pid, model: m.id, selectable: String(selectable), focusKey: rowKey(pid, m.id) },
    onclick: () => (selectable ? view.onSelect(pid, m) : view.onConnect(pid)),
  },
  el('span', { class: 'model-main' },
    el('span', { class: 'model-name', text: m.displayName }), ...tags,
    el('span', { class: 'model-id mono', text: m.id })),
  el('span', { class: 'model-meta' },
    el('span', { class: 'price', text: price(m.pricing) || '—' }),
    el('span', { class: 'ctx muted', text: context(m.contextWindow) })),
  badge(m.effectiveRoute ?? prov.effectiveRoute, view.meta.badges));
}

export function groupHeader(pid, prov, view) {
  const facts = view.meta.providers[pid] || {};
  const connect = !prov.hasEffectiveCredentials
    ? el('button', { type: 'button', class: 'ghost small', text: 'Connect…',
      dataset: { focusKey: `connect:${pid}` }, onclick: () => view.onConnect(pid) })
    : null;
  const ownKey = offersOwnKey(pid, prov, facts)
    ? el('button', { type: 'button', class: 'link small', text: 'Use my own OpenRouter key',
      dataset: { focusKey: `own-key:${pid}` }, onclick: () => view.onConnect(pid, { voluntary: true }) })
    : null;
  return el('div', { class: 'group-head' },
    el('div', { class: 'group-title' },
      el('h3', { text: prov.name }), el('span', { class: 'muted mono small', text: pid }),
      badge(prov.effectiveRoute, view.meta.badges)),
    prov.fix ? el('p', { class: 'group-fix small' }, el('span', { class: 'fix-label', text: 'To enable' }),
      ` ${prov.fix}`) : null,
    el('div', { class: 'group-actions' }, connect, ownKey));
}

// Focus keys let a re-render put keyboard focus back on the same control (renderKeepingFocus).
const rowKey = (pid, id) => `model:${pid}:${id}`;

function group(pid, prov, view) {
  const expanded = view.searching || view.expanded.has(pid);
  const shown = expanded ? prov.models : prov.models.slice(0, COLLAPSED_ROWS);
  const more = prov.models.length - shown.length;
  const list = el('div', { class: 'models', role: 'list', 'aria-label': `${prov.name} models` },
    shown.map((m) => el('div', { class: 'model-item', role: 'listitem' }, modelRow(pid, prov, m, view))));
  const toggle = more > 0
    ? el('button', { type: 'button', class: 'ghost more', text: `Show all ${prov.models.length} models`,
      dataset: { focusKey: `more:${pid}`, focusNext: rowKey(pid, prov.models[shown.length].id) },
      onclick: () => { view.expanded.add(pid); view.rerender(); } })
    : null;
  return el('section', {
    id: `group-${pid}`, class: `group${prov.hasEffectiveCredentials ? '' : ' group-off'}`,
    dataset: { provider: pid, route: prov.effectiveRoute },
  }, groupHeader(pid, prov, view), list, toggle);
}

function jumpBar(ordered) {
  return el('nav', { class: 'jump', 'aria-label': 'Providers' }, ordered.map(([pid, prov]) =>
    el('a', { href: `#group-${pid}`, class: `chip chip-${prov.effectiveRoute}`, dataset: { focusKey: `jump:${pid}` },
      onclick: (ev) => { ev.preventDefault(); document.getElementById(`group-${pid}`).scrollIntoView({ behavior: 'smooth' }); } },
    el('span', { class: 'chip-dot', 'aria-hidden': 'true' }), prov.name,
    el('span', { class: 'chip-count', text: String(prov.models.length) }))));
}

// Providers with models only (custom-only providers appear once a model is added there);
// available providers first, server order kept within each half.
export function renderPicker(root, catalog, view) {
  const entries = Object.entries(catalog.providers).filter(([, p]) => p.models.length > 0);
  const ordered = [
    ...entries.filter(([, p]) => p.hasEffectiveCredentials),
    ...entries.filter(([, p]) => !p.hasEffectiveCredentials),
  ];
  setChildren(root, ...(ordered.length
    ? [jumpBar(ordered), ...ordered.map(([pid, prov]) => (pid === 'openrouter'
      ? marketplaceGroup(pid, prov, view, { groupHeader, modelRow }) : group(pid, prov, view)))]
    : [el('p', { class: 'empty', text: 'No models match that search.' })]));
  root.setAttribute('aria-busy', 'false');
}

// Arrow keys move between model rows (across groups); ArrowDown in the search box enters the list.
export function wirePickerKeys(root, search) {
  const rows = () => [...root.querySelectorAll('.model')];
  root.addEventListener('keydown', (ev) => {
    if (ev.key !== 'ArrowDown' && ev.key !== 'ArrowUp') return;
    const all = rows();
    const at = all.indexOf(document.activeElement);
    if (at < 0) return;
    ev.preventDefault();
    if (ev.key === 'ArrowUp' && at === 0) { search.focus(); return; }
    const to = all[Math.min(all.length - 1, Math.max(0, at + (ev.key === 'ArrowDown' ? 1 : -1)))];
    to.focus();
  });
  search.addEventListener('keydown', (ev) => {
    if (ev.key !== 'ArrowDown') return;
    const first = rows()[0];
    if (first) { ev.preventDefault(); first.focus(); }
  });
}
