// HTTP helpers: JSON calls with the bearer token (memory only) and a small SSE reader.

let token = null;
let unauthorized = null;

// Read `#token=…` from the address once, then remove it from the address (and so from the
// history entry), keeping any other fragment parts.
export function initToken() {
  const m = location.hash.match(/(?:^#|&)token=([^&]*)/);
  if (!m) return;
  token = decodeURIComponent(m[1]) || null;
  const rest = location.hash.slice(1).split('&').filter((p) => !p.startsWith('token=')).join('&');
  history.replaceState(history.state, '', `${location.pathname}${location.search}${rest ? `#${rest}` : ''}`);
}

export function setToken(value) { token = value; }
export function onUnauthorized(fn) { unauthorized = fn; }

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `request failed (${status})`);
    this.status = status;
    this.code = err.code || 'HTTP_ERROR';
    this.fix = err.fix || '';
  }
}

function headers(withBody) {
  const h = {};
  if (token) h.Authorization = `Bearer ${token}`;
  if (withBody) h['Content-Type'] = 'application/json';
  return h;
}

// One token prompt at a time, shared by every request that met a 401.
let asking = null;
function askOnce() {
  if (!asking) asking = Promise.resolve(unauthorized()).finally(() => { asking = null; });
  return asking;
}

// A 401 asks for the token; the request is retried only when a token was entered, so
// dismissing the prompt (Escape, Cancel) ends with the 401 instead of asking again.
async function send(path, method, body, signal) {
  const withBody = body !== undefined;
  const res = await fetch(path, {
    method, headers: headers(withBody), signal,
    body: withBody ? JSON.stringify(body) : undefined,
  });
  if (res.status === 401 && unauthorized && await askOnce()) {
    return send(path, method, body, signal);
  }
  return res;
}

export async function api(path, { method = 'GET', body, signal } = {}) {
  const res = await send(path, method, body, signal);
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

function parseBlock(block) {
  let event = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) event = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).trim());
  }
  return data.length ? { event, data: JSON.parse(data.join('\n')) } : null;
}

// POST a JSON body and yield {event, data} for each server-sent event.
export async function* stream(path, body) {
  const res = await send(path, 'POST', body);
  if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const ev = parseBlock(buf.slice(0, cut));
      buf = buf.slice(cut + 2);
      if (ev) yield ev;
    }
  }
}
