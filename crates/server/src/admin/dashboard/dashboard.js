// The dialbridge live dashboard: signs in once (POST /api/v1/session with the token in
// the body; the bridge answers with an HttpOnly session cookie, so the token is never in
// a URL nor kept by the page), then reads GET /api/v1/events (server-sent events, one
// JSON snapshot per event) with fetch() and renders it. Everything from the bridge is
// set with textContent or attributes, never parsed as HTML.
'use strict';

const MAX_BUFFER = 8 * 1024 * 1024;

const $ = (id) => document.getElementById(id);

// An element with attributes and children (strings become text nodes).
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else node.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

class Unauthorised extends Error {}

let abort = null;
let retry = 1;

function status(text, cls) {
  const s = $('status');
  s.textContent = text;
  s.className = 'status ' + cls;
}

function showLogin(message) {
  $('live').hidden = true;
  $('forget').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  status('not connected', 'off');
  $('token').focus();
}

// Shows the live view if the browser holds a session; the stream's 401 asks to sign in.
function start() {
  $('login').hidden = true;
  connect();
}

// Exchanges the token for the session cookie; the token is forgotten at once.
async function signIn(given) {
  const resp = await fetch('/api/v1/session', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ token: given }),
    cache: 'no-store',
  });
  if (resp.ok) { start(); return; }
  let why = 'HTTP ' + resp.status;
  try { why = (await resp.json()).error || why; } catch (_) { /* not JSON */ }
  showLogin(resp.status === 401 ? 'The bridge refused that token.' : why);
}

async function connect() {
  if (abort) abort.abort();
  abort = new AbortController();
  const mine = abort;
  status('connecting…', 'wait');
  try {
    await stream(mine.signal);
    if (mine.signal.aborted) return;
    status('stream ended; reconnecting…', 'wait');
  } catch (e) {
    if (mine.signal.aborted) return;
    if (e instanceof Unauthorised) {
      showLogin(e.message);
      return;
    }
    status('disconnected (' + e.message + '); retrying in ' + retry + ' s', 'off');
  }
  setTimeout(() => { if (abort === mine) connect(); }, retry * 1000);
  retry = Math.min(retry * 2, 15);
}

// Reads the event stream (text/event-stream framing: blank-line separated blocks of
// `field: value` lines) until it ends.
async function stream(signal) {
  const resp = await fetch('/api/v1/events', {
    headers: { Accept: 'text/event-stream' },
    credentials: 'same-origin',
    cache: 'no-store',
    signal,
  });
  if (resp.status === 401) throw new Unauthorised('');
  if (resp.status === 403) throw new Unauthorised('That token may not watch the dashboard.');
  if (!resp.ok) {
    let why = 'HTTP ' + resp.status;
    try { why = (await resp.json()).error || why; } catch (_) { /* not JSON */ }
    throw new Error(why);
  }
  status('live', 'on');
  retry = 1;
  $('live').hidden = false;
  $('forget').hidden = false;
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, '\n');
    if (buffer.length > MAX_BUFFER) throw new Error('event too large');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      dispatch(block);
    }
  }
}

function dispatch(block) {
  let name = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') name = value;
    else if (field === 'data') data.push(value);
  }
  if (name === 'snapshot' && data.length) render(JSON.parse(data.join('\n')));
}

// ---- rendering -------------------------------------------------------------------

function render(s) {
  renderWarnings(s.warnings || []);
  renderConferences(s.conferences || []);
  renderDialOuts(s.dial_outs || []);
  renderBridges(s.bridges || [], s.unassigned || []);
  renderRefusals(s.refusals || []);
  renderTrunks(s.trunks || []);
  const notes = $('notes');
  notes.replaceChildren(...(s.notes || []).map((n) => el('p', {}, n)));
}

function renderWarnings(list) {
  const box = $('warnings');
  if (!list.length) {
    box.replaceChildren(el('p', { class: 'ok' }, 'No warnings.'));
    return;
  }
  box.replaceChildren(el('ul', {}, ...list.map((w) => el('li', { class: w.level }, w.text))));
}

function meter(inUse, capacity) {
  const full = capacity ? Math.min(1, inUse / capacity) : 0;
  const cls = full >= 1 ? 'meter full' : full >= 0.8 ? 'meter busy' : 'meter';
  const bar = el('span', { class: 'bar' });
  bar.style.width = (full * 100).toFixed(1) + '%';
  return el('span', { class: 'load' },
    el('span', { class: cls }, bar),
    el('span', { class: 'figure' }, inUse + ' / ' + (capacity ?? '—')));
}

function table(headers, rows, attrs) {
  return el('table', attrs || {},
    el('thead', {}, el('tr', {}, ...headers.map((h) => el('th', {}, h)))),
    el('tbody', {}, ...rows));
}

function numberRow(n) {
  return el('tr', { class: n.kind === 'user' ? 'user' : '' },
    el('td', { class: 'mono' }, n.number),
    el('td', {}, n.kind + (n.kind === 'user' ? ' (few calls)' : '')),
    el('td', {}, n.charge),
    el('td', {}, n.provider),
    el('td', {}, meter(n.in_progress, n.capacity)));
}

function renderBridges(bridges, unassigned) {
  const box = $('bridges');
  const cards = bridges.map((b) => el('div', { class: 'card', 'data-bridge': b.name },
    el('h3', {}, b.name, ' ',
      el('span', { class: 'sub' }, b.tenant || ''),
      b.enabled === false ? el('span', { class: 'tag alert' }, 'disabled') : null),
    el('p', {}, 'Calls ', meter(b.in_progress, b.capacity), ' ',
      el('span', { class: 'sub' }, b.admitted + ' admitted since start')),
    table(['number', 'kind', 'charge', 'provider', 'in use'], b.numbers.map(numberRow))));
  if (unassigned.length) {
    cards.push(el('div', { class: 'card' }, el('h3', {}, 'Not assigned to a bridge'),
      table(['number', 'kind', 'charge', 'provider', 'in use'], unassigned.map(numberRow))));
  }
  box.replaceChildren(...cards);
}

function renderRefusals(list) {
  const box = $('refusals');
  if (!list.length) { box.replaceChildren(el('p', { class: 'sub' }, 'No call refused since start.')); return; }
  box.replaceChildren(table(['reason', 'last minute', 'since start'], list.map((r) =>
    el('tr', { class: r.last_minute ? 'recent' : '' },
      el('td', {}, r.reason.replace(/_/g, ' ')),
      el('td', { class: 'num' }, r.last_minute),
      el('td', { class: 'num' }, r.total)))));
}

function renderDialOuts(list) {
  const box = $('dial-outs');
  if (!list.length) { box.replaceChildren(el('p', { class: 'sub' }, 'No dial-out lately.')); return; }
  box.replaceChildren(table(['number', 'conference', 'by', 'trunk', 'state', 'SIP'], list.map((d) =>
    el('tr', { 'data-dial-out': d.id },
      el('td', { class: 'mono' }, d.number),
      el('td', {}, d.tenant + ' / ' + d.conference_id),
      el('td', {}, d.requested_by),
      el('td', {}, d.trunk || '—'),
      el('td', { class: 'state-' + d.state }, d.state.replace(/-/g, ' ')),
      el('td', { class: 'num' }, d.sip_status ?? '')))));
}

function renderTrunks(list) {
  $('trunks').replaceChildren(table(['trunk', 'sessions', 'dial-out health'], list.map((t) =>
    el('tr', {}, el('td', {}, t.name), el('td', {}, meter(t.in_progress, t.capacity)),
      el('td', { class: 'health ' + (t.health || 'none'), title: t.outbound || '' },
        t.health ? t.health + ' (' + t.outbound + ')' : 'no outbound target')))));
}

// Conferences and participant rows are kept by key and updated in place, so a button
// under the pointer survives the next snapshot.
const conferenceCards = new Map();

function renderConferences(list) {
  const box = $('conferences');
  const seen = new Set();
  for (const c of list) {
    const key = c.tenant + '/' + c.conference_id;
    seen.add(key);
    let card = conferenceCards.get(key);
    if (!card) { card = makeConference(c); conferenceCards.set(key, card); }
    updateConference(card, c);
    box.append(card.node);
  }
  for (const [key, card] of conferenceCards) {
    if (!seen.has(key)) { card.node.remove(); conferenceCards.delete(key); }
  }
  const empty = box.querySelector('.empty');
  if (!list.length && !empty) box.append(el('p', { class: 'empty sub' }, 'No conference in progress.'));
  if (list.length && empty) empty.remove();
}

function makeConference(c) {
  const title = el('h3');
  const body = el('tbody');
  const node = el('div', { class: 'card conference', 'data-conference': c.conference_id, 'data-tenant': c.tenant },
    title,
    el('table', {}, el('thead', {}, el('tr', {},
      ...['role', 'calling', 'dialled', 'joined', 'state', 'talking', 'audio', ''].map((h) => el('th', {}, h)))), body));
  return { node, title, body, rows: new Map() };
}

function updateConference(card, c) {
  const title = [c.conference_id, ' ',
    el('span', { class: 'sub' }, c.tenant + (c.organiser ? ' · ' + c.organiser : ''))];
  if (c.locked) title.push(el('span', { class: 'tag' }, 'locked'));
  if (c.recording) title.push(el('span', { class: 'tag rec' }, '● recording'));
  title.push(el('span', { class: 'sub' }, ' · ' + c.participants.length + ' on the call'));
  card.title.replaceChildren(...title);
  const seen = new Set();
  for (const p of c.participants) {
    seen.add(p.id);
    let row = card.rows.get(p.id);
    if (!row) { row = makeParticipant(p); card.rows.set(p.id, row); }
    updateParticipant(row, p);
    card.body.append(row.node);
  }
  for (const [id, row] of card.rows) {
    if (!seen.has(id)) { row.node.remove(); card.rows.delete(id); }
  }
}

function makeParticipant(p) {
  const cells = {};
  for (const k of ['role', 'calling', 'dialled', 'joined', 'state']) cells[k] = el('td', { class: k });
  cells.talking = el('td', { class: 'talking' });
  cells.audio = el('td', { class: 'audio' });
  const mute = el('button', { type: 'button', class: 'mute' });
  const kick = el('button', { type: 'button', class: 'kick danger' }, 'Kick');
  const node = el('tr', { 'data-participant': p.id },
    cells.role, cells.calling, cells.dialled, cells.joined, cells.state, cells.talking, cells.audio,
    el('td', { class: 'actions' }, mute, kick));
  const row = { node, cells, mute, kick, muted: false, armed: null };
  mute.addEventListener('click', () => setMuted(row, p.id, !row.muted));
  kick.addEventListener('click', () => armKick(row, p.id));
  return row;
}

function updateParticipant(row, p) {
  row.muted = p.muted;
  row.node.dataset.calling = p.calling;
  row.node.dataset.dialled = p.dialled;
  row.node.dataset.muted = String(p.muted);
  row.node.className = p.muted ? 'muted' : '';
  row.cells.role.textContent = p.role;
  row.cells.calling.textContent = p.calling;
  row.cells.dialled.textContent = p.dialled;
  row.cells.joined.textContent = new Date(p.joined).toLocaleTimeString();
  row.cells.joined.title = p.joined;
  row.cells.state.textContent = p.in_lobby ? 'in lobby' : p.muted ? 'muted' : 'live';
  row.cells.talking.textContent = p.talking ? 'talking' : '';
  row.node.dataset.talking = String(p.talking);
  updateAudio(row, p);
  row.mute.textContent = p.muted ? 'Unmute' : 'Mute';
  row.mute.disabled = false;
}

// The caller's reception figures, and a badge when the bridge judges them poor
// (the snapshot's `quality_warning`, e.g. "loss 5.0%").
function updateAudio(row, p) {
  const q = p.quality;
  const parts = [];
  if (q) {
    let figures = 'loss ' + q.loss_percent.toFixed(1) + '% · jitter ' + q.jitter_ms.toFixed(1) + ' ms';
    if (q.rtt_ms !== null && q.rtt_ms !== undefined) figures += ' · rtt ' + Math.round(q.rtt_ms) + ' ms';
    parts.push(el('span', { class: 'figure' }, figures));
  }
  if (p.quality_warning) {
    parts.push(el('span', { class: 'tag alert quality-warning', title: 'poor audio from this caller' },
      '⚠ ' + p.quality_warning));
  }
  row.cells.audio.replaceChildren(...parts);
  row.node.dataset.qualityWarning = p.quality_warning || '';
}

async function post(path, body) {
  $('action-error').textContent = '';
  const resp = await fetch(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!resp.ok) {
    let why = 'HTTP ' + resp.status;
    try { why = (await resp.json()).error || why; } catch (_) { /* not JSON */ }
    throw new Error(why);
  }
}

// The button stays disabled until the stream shows the change (or the call fails).
async function setMuted(row, id, muted) {
  row.mute.disabled = true;
  row.mute.textContent = muted ? 'Muting…' : 'Unmuting…';
  try {
    await post('/api/v1/participants/' + encodeURIComponent(id) + '/mute', { muted });
  } catch (e) {
    $('action-error').textContent = 'Mute failed: ' + e.message;
    row.mute.disabled = false;
    row.mute.textContent = row.muted ? 'Unmute' : 'Mute';
  }
}

// Kicking takes a second click within 4 s (no modal dialog to block the page).
async function armKick(row, id) {
  if (!row.armed) {
    row.kick.textContent = 'Really kick?';
    row.armed = setTimeout(() => { row.armed = null; row.kick.textContent = 'Kick'; }, 4000);
    return;
  }
  clearTimeout(row.armed);
  row.armed = null;
  row.kick.disabled = true;
  row.kick.textContent = 'Kicking…';
  try {
    await post('/api/v1/participants/' + encodeURIComponent(id) + '/kick');
  } catch (e) {
    $('action-error').textContent = 'Kick failed: ' + e.message;
    row.kick.disabled = false;
    row.kick.textContent = 'Kick';
  }
}

document.addEventListener('DOMContentLoaded', () => {
  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    const given = $('token').value.trim();
    if (!given) return;
    $('token').value = '';
    signIn(given).catch((err) => showLogin('Sign-in failed: ' + err.message));
  });
  $('forget').addEventListener('click', async () => {
    if (abort) abort.abort();
    try { await fetch('/api/v1/session', { method: 'DELETE', credentials: 'same-origin' }); } catch (_) { /* signed out locally anyway */ }
    showLogin('');
  });
  start();
});
