// HTTP helpers: JSON calls with the bearer token (memory only) and a small SSE reader.

let token = null;
let unauthorized = null;

export function initToken() {
  const m = location.hash.match(/(?:^#|&)token=([^&]+)/);
  if (m) token = decodeURIComponent(m[1]);
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

async function send(path, method, body, signal) {
  const withBody = body !== undefined;
  const res = await fetch(path, {
    method, headers: headers(withBody), signal,
    body: withBody ? JSON.stringify(body) : undefined,
  });
  if (res.status === 401 && unauthorized) {
    await unauthorized();
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
