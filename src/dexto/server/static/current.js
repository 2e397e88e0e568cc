// The current selection card and the account chip: renders GET /llm/current and catalog.auth.

import { badge, credits, el, setChildren } from './format.js';

function findModel(catalog, pid, id) {
  const prov = catalog && catalog.providers[pid];
  return prov ? prov.models.find((m) => m.id === id) : null;
}

function routeBlock(cur, labels) {
  const d = cur.decision;
  if (!d) {
    return el('div', { class: 'cur-route', dataset: { agentError: String(Boolean(cur.agentFileError)) } },
      cur.agentFileError
        ? el('span', { class: 'badge badge-fallback', text: 'agent file error' })
        : badge('none', labels),
      el('p', { class: 'cur-error', id: 'current-error', text: cur.error ? cur.error.message : 'Not available.' }),
      cur.error && cur.error.fix ? el('p', { class: 'fix small' },
        el('span', { class: 'fix-label', text: 'How to fix' }), ` ${cur.error.fix}`) : null);
  }
  return el('div', { class: 'cur-route' },
    el('div', { class: 'row' }, badge(d.route, labels),
      el('span', { class: 'mono small muted', text: `calls ${d.effectiveProvider}/${d.effectiveModel}` }),
      d.mappingVerified ? null : el('span', { class: 'tag tag-warn', text: 'mapping unverified' })),
    el('p', { class: 'reason small', text: d.reason }),
    d.fallback ? el('p', { class: 'small muted' },
      `If credits run out: continues ${d.fallback.route} with ${d.fallback.effectiveProvider}/${d.fallback.effectiveModel}.`) : null);
}

export function renderCurrent(root, cur, catalog, view) {
  const prov = catalog && catalog.providers[cur.provider];
  const model = findModel(catalog, cur.provider, cur.model);
  const balance = credits(cur.creditsRemaining);
  setChildren(root,
    el('div', { class: 'cur-main' },
      el('div', { class: 'eyebrow', text: cur.agentFileError ? 'Agent file (not loadable)' : 'Current model' }),
      el('div', { class: 'cur-name', id: 'current-name', text: model ? model.displayName : (cur.model || '—') }),
      el('div', { class: 'mono small muted', text: `${prov ? prov.name : cur.provider} · ${cur.provider}/${cur.model}` }),
      cur.agentFileError ? el('div', { class: 'mono small muted', text: cur.agentFile }) : null),
    routeBlock(cur, view.meta.badges),
    el('div', { class: 'cur-credits' },
      el('div', { class: 'eyebrow', text: 'Dexto credits' }),
      el('div', { class: 'credits', id: 'credits', text: balance || '—' }),
      el('div', { class: 'small muted', text: balance ? 'remaining, as of the last request' : 'shown after a request via Dexto' })),
    !cur.decision && prov && !prov.hasEffectiveCredentials
      ? el('button', { type: 'button', class: 'primary', text: `Connect ${prov.name}…`,
        dataset: { focusKey: 'current-connect' }, onclick: () => view.onConnect(cur.provider) })
      : null);
}

export function renderAccount(root, catalog) {
  const a = catalog.auth;
  setChildren(root,
    el('span', { class: `dot ${a.hasDextoKey ? 'on' : 'off'}`, 'aria-hidden': 'true' }),
    el('span', { text: a.hasDextoKey ? 'Logged in to Dexto' : 'Not logged in to Dexto' }),
    el('span', { class: 'muted', text: a.preferDextoCredits ? ' · prefers credits' : ' · prefers your keys' }));
}
