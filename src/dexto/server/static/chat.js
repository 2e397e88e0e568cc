// The "Try it" box: POST /llm/chat (SSE) and show which route answered, including a fallback.

import { stream } from './api.js';
import { badge, el, setChildren } from './format.js';

const $ = (id) => document.getElementById(id);

function showRoute(done, labels) {
  const r = done.route;
  setChildren($('answer-route'),
    el('div', { class: 'row' },
      el('span', { class: 'muted small', text: 'Answered' }),
      badge(r.route, labels),
      r.fellBack ? el('span', { class: 'badge badge-fallback', dataset: { fallback: 'true' }, text: 'fallback' }) : null,
      el('span', { class: 'mono small muted', text: `${r.effectiveProvider}/${r.effectiveModel}` })),
    el('p', { class: 'small reason', text: r.reason }),
    ...(done.warnings || []).map((w) => el('p', { class: 'small warn', text: w })));
  $('answer-route').dataset.route = r.route;
  $('answer-route').dataset.fellBack = String(Boolean(r.fellBack));
}

function showError(err) {
  setChildren($('answer-route'), el('p', { class: 'form-error', text: err.message }),
    err.fix ? el('p', { class: 'fix small' }, el('span', { class: 'fix-label', text: 'How to fix' }), ` ${err.fix}`) : null);
  $('answer-route').dataset.route = 'error';
}

async function run(view, prompt, preferDirect) {
  const out = $('answer-text');
  $('answer').hidden = false;
  out.textContent = '';
  setChildren($('answer-route'), el('span', { class: 'muted small', text: 'Waiting for the model…' }));
  delete $('answer-route').dataset.route;
  const body = { prompt };
  if (preferDirect) body.prefer = 'direct';
  for await (const ev of stream('/llm/chat', body)) {
    if (ev.event === 'delta') out.textContent += ev.data.text;
    else if (ev.event === 'done') { showRoute(ev.data, view.meta.badges); view.onCredits(); }
    else if (ev.event === 'error') showError(ev.data.error);
  }
}

export function wireChat(view) {
  $('chat-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const prompt = $('prompt').value.trim();
    if (!prompt) return;
    $('send').disabled = true;
    try {
      await run(view, prompt, $('prefer-direct').checked);
    } catch (err) {
      showError(err);
      if (err.code === 'NO_CREDENTIALS') view.onConnect(view.current.provider);
    } finally {
      $('send').disabled = false;
    }
  });
}
