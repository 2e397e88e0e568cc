// Display formatting only: numbers, prices, tiny DOM builder. No routing rules live here.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined && c !== false) node.append(c);
  }
  return node;
}

// replaceChildren that skips null/false (conditional parts of a view).
export function setChildren(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

// Re-render `root` with `render()` without dropping keyboard focus to <body>: the element that
// had focus is found again by its data-focus-key (or its id); if it is gone, the one its
// data-focus-next names, else `root` itself (made focusable for that).
export function renderKeepingFocus(root, render) {
  const active = document.activeElement;
  const inside = active && active !== root && root.contains(active);
  const key = inside ? active.dataset.focusKey : null;
  const next = inside ? active.dataset.focusNext : null;
  const id = inside ? active.id : '';
  render();
  if (!inside || root.contains(active)) return;
  const find = (k) => (k ? root.querySelector(`[data-focus-key="${CSS.escape(k)}"]`) : null);
  const byId = id ? root.querySelector(`#${CSS.escape(id)}`) : null;
  const target = find(key) || byId || find(next);
  if (target) { target.focus(); return; }
  if (!root.hasAttribute('tabindex')) root.setAttribute('tabindex', '-1');
  root.focus();
}

function money(v) {
  if (v >= 100) return v.toFixed(0);
  if (v >= 1) return v.toFixed(2).replace(/\.?0+$/, '');
  return v.toPrecision(2).replace(/\.?0+$/, '');
}

export function price(p) {
  if (!p || (p.inputPerM == null && p.outputPerM == null)) return '';
  if (p.inputPerM === 0 && p.outputPerM === 0) return 'free';
  const i = p.inputPerM == null ? '?' : `$${money(p.inputPerM)}`;
  const o = p.outputPerM == null ? '?' : `$${money(p.outputPerM)}`;
  return `${i} in · ${o} out /M`;
}

export function context(n) {
  if (!n) return '';
  if (n >= 1_000_000) return `${+(n / 1_000_000).toFixed(1)}M ctx`;
  return `${Math.round(n / 1000)}K ctx`;
}

export function badge(route, labels, extra = '') {
  const key = route || 'none';
  return el('span', { class: `badge badge-${key} ${extra}`.trim(), dataset: { route: key },
    text: labels[key] || key });
}

export function credits(c) {
  if (!c) return null;
  const n = Number(c.usd);
  if (!Number.isFinite(n)) return c.usd;
  return `${n < 0 ? '-' : ''}$${Math.abs(n).toFixed(2)}`;
}

export function debounce(fn, ms) {
  let t = null;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}

let toastTimer = null;
export function toast(message) {
  const box = document.getElementById('toast');
  box.textContent = message;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, 3200);
}
