// Bourse dashboard: reads the node's API with the session cookie, follows
// GET /v1/events, and draws its charts as plain SVG. No dependencies.
'use strict';

const SVG = 'http://www.w3.org/2000/svg';
const HISTORY = 120; // points kept per time series
const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563'];

const state = {
  height: 0,
  blocks: [],          // {height, time (ms)} sorted by height
  jobs: new Map(),     // id -> job
  load: new Map(),     // provider -> [[t, load]]
  share: new Map(),    // provider -> [[t, share]]
  fairness: [],        // [[t, index]]
  colors: new Map(),   // provider -> color
};

function $(sel) { return document.querySelector(sel); }

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k instanceof Node ? k : String(k));
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function short(s) { return s && s.length > 16 ? s.slice(0, 10) + '…' + s.slice(-4) : (s || ''); }
function colorOf(p) {
  if (!state.colors.has(p)) state.colors.set(p, COLORS[state.colors.size % COLORS.length]);
  return state.colors.get(p);
}
function fmt(n, d) { return Number.isInteger(n) && d === undefined ? n.toLocaleString('en') : n.toFixed(d === undefined ? 2 : d); }

async function get(path) {
  const r = await fetch(path, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  if (r.status === 401) { location.reload(); throw new Error('session expired'); }
  if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
  return r.json();
}

function fillTable(id, rows) {
  const body = $('#' + id + ' tbody');
  body.replaceChildren(...rows.map(cells => {
    const tr = el('tr', cells.attrs);
    for (const c of cells.cells || cells) {
      if (c instanceof Node) tr.append(el('td', {}, c));
      else if (typeof c === 'object' && c !== null) tr.append(el('td', c.attrs || {}, c.text));
      else tr.append(el('td', typeof c === 'number' ? { class: 'num' } : {}, c));
    }
    return tr;
  }));
}

// lineChart draws series [{name, color, points: [[x, y]]}] into #id.
function lineChart(id, series, opt) {
  opt = opt || {};
  const W = 600, H = 180, L = 44, R = 8, T = 8, B = 22;
  const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', 'data-points': 0 });
  const pts = series.flatMap(x => x.points);
  if (pts.length === 0) {
    s.append(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' }, 'no data yet'));
    $('#' + id).replaceChildren(s);
    return;
  }
  let x0 = Math.min(...pts.map(p => p[0])), x1 = Math.max(...pts.map(p => p[0]));
  let y0 = opt.yMin !== undefined ? opt.yMin : Math.min(0, ...pts.map(p => p[1]));
  let y1 = opt.yMax !== undefined ? opt.yMax : Math.max(...pts.map(p => p[1]));
  if (x1 === x0) x1 = x0 + 1;
  if (y1 <= y0) y1 = y0 + 1;
  const X = x => L + (x - x0) / (x1 - x0) * (W - L - R);
  const Y = y => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  for (const f of [0, 0.5, 1]) {
    const y = y0 + f * (y1 - y0);
    s.append(svg('line', { x1: L, x2: W - R, y1: Y(y), y2: Y(y), class: 'grid-line' }));
    s.append(svg('text', { x: L - 4, y: Y(y) + 4, 'text-anchor': 'end' }, fmt(y, y1 - y0 < 10 ? 2 : 0)));
  }
  s.append(svg('line', { x1: L, x2: L, y1: T, y2: H - B, class: 'axis' }));
  const xl = opt.xLabel || (x => fmt(x, 0));
  s.append(svg('text', { x: L, y: H - 6 }, xl(x0)));
  s.append(svg('text', { x: W - R, y: H - 6, 'text-anchor': 'end' }, xl(x1)));
  for (const ser of series) {
    if (ser.points.length === 0) continue;
    const line = svg('polyline', { stroke: ser.color, points: ser.points.map(p => X(p[0]).toFixed(1) + ',' + Y(p[1]).toFixed(1)).join(' ') });
    line.append(svg('title', {}, ser.name));
    s.append(line);
    if (ser.points.length === 1) s.append(svg('circle', { cx: X(ser.points[0][0]), cy: Y(ser.points[0][1]), r: 3, fill: ser.color }));
  }
  s.setAttribute('data-points', pts.length);
  $('#' + id).replaceChildren(s);
}

// barChart draws bars [{label, value, color}] into #id.
function barChart(id, bars) {
  const W = 600, H = 180, L = 8, T = 16, B = 22;
  const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', 'data-points': bars.length });
  if (bars.length === 0 || bars.every(b => b.value === 0)) {
    s.setAttribute('data-points', 0);
    s.append(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' }, 'no data yet'));
    $('#' + id).replaceChildren(s);
    return;
  }
  const max = Math.max(...bars.map(b => b.value));
  const bw = (W - L) / bars.length;
  bars.forEach((b, i) => {
    const h = (b.value / max) * (H - T - B);
    const x = L + i * bw + bw * 0.15;
    const r = svg('rect', { x: x, y: H - B - h, width: bw * 0.7, height: Math.max(h, 0), fill: b.color || COLORS[0] });
    r.append(svg('title', {}, b.label + ': ' + b.value));
    s.append(r);
    s.append(svg('text', { x: x + bw * 0.35, y: H - B - h - 3, 'text-anchor': 'middle' }, fmt(b.value, Number.isInteger(b.value) ? undefined : 2)));
    s.append(svg('text', { x: x + bw * 0.35, y: H - 6, 'text-anchor': 'middle' }, b.label));
  });
  $('#' + id).replaceChildren(s);
}

function loadBar(v) {
  const s = svg('svg', { viewBox: '0 0 80 8', width: 80, height: 8 });
  s.append(svg('rect', { x: 0, y: 0, width: 80, height: 8, rx: 4, fill: '#e5e7eb' }));
  s.append(svg('rect', { x: 0, y: 0, width: Math.round(80 * Math.min(Math.max(v, 0), 1)), height: 8, rx: 4, fill: v > 0.8 ? '#dc2626' : '#2563eb' }));
  const span = el('span', { class: 'bar', title: fmt(v * 100, 0) + '%' });
  span.append(s);
  return span;
}

function push(series, key, point) {
  if (!series.has(key)) series.set(key, []);
  const a = series.get(key);
  a.push(point);
  if (a.length > HISTORY) a.shift();
}

// --- Chain ---

function addBlock(b) {
  const t = Date.parse(b.time);
  if (state.blocks.some(x => x.height === b.height)) return;
  state.blocks.push({ height: b.height, time: t });
  state.blocks.sort((a, c) => a.height - c.height);
  if (state.blocks.length > HISTORY) state.blocks.shift();
  setHeight(b.height);
}

function setHeight(h) {
  if (h > state.height) { state.height = h; $('#height').textContent = h; }
}

function drawChain() {
  const pts = [];
  for (let i = 1; i < state.blocks.length; i++) {
    const a = state.blocks[i - 1], b = state.blocks[i];
    if (b.height === a.height + 1) pts.push([b.height, (b.time - a.time) / 1000]);
  }
  lineChart('chart-interval', [{ name: 'interval', color: COLORS[0], points: pts }], { yMin: 0 });
}

async function refreshValidators() {
  const vs = await get('/v1/chain/validators');
  fillTable('validators', vs.map(v => [short(v.address), v.stake, v.power, v.jailed ? 'yes' : 'no']));
  barChart('chart-stake', vs.map((v, i) => ({ label: short(v.address).slice(0, 8), value: v.stake, color: COLORS[i % COLORS.length] })));
}

async function loadHistory() {
  const st = await get('/v1/status');
  $('#node').textContent = st.moniker + ' · ' + st.chain_id + ' · ' + short(st.address);
  setHeight(st.height);
  const from = Math.max(1, st.height - 40);
  const hs = [];
  for (let h = from; h <= st.height; h++) hs.push(h);
  const blocks = await Promise.all(hs.map(h => get('/v1/chain/blocks/' + h).catch(() => null)));
  blocks.filter(Boolean).forEach(addBlock);
  drawChain();
}

// --- Market and providers ---

async function refreshMarket() {
  const [offers, bids, matches, stats] = await Promise.all([
    get('/v1/market/offers'), get('/v1/market/bids'), get('/v1/market/matches?limit=30'), get('/v1/market/stats')]);
  const now = Date.now() / 1000;
  fillTable('offers', offers.map(o => ({
    attrs: { 'data-provider': o.provider },
    cells: [short(o.provider), o.region || '–', (o.executors || []).join(', '), loadBar(o.load),
      fmt(o.free.cpu / 1000, 2) + ' cores / ' + o.free.memory + ' MiB', o.prices.per_cpu_second, o.prices.per_job],
  })));
  fillTable('bids', bids.map(b => [short(b.id), short(b.client), b.executor, b.resources.cpu + 'm / ' + b.resources.memory + ' MiB', b.max_price, b.placement]));
  fillTable('matches', matches.map(m => ({
    attrs: { 'data-bid': m.bid_id },
    cells: [m.height, short(m.bid_id), { text: short(m.provider), attrs: { title: m.provider } }, m.price, { text: m.state, attrs: { class: 'state-' + m.state } }],
  })));
  // Time series: the load each provider offers, its share of matches and
  // Jain's index over all matches on chain, sampled at each refresh.
  for (const o of offers) push(state.load, o.provider, [now, o.load]);
  for (const p of stats.providers || []) push(state.share, p.address, [now, p.share]);
  if (stats.matches > 0) { state.fairness.push([now, stats.fairness]); if (state.fairness.length > HISTORY) state.fairness.shift(); }
  const clock = x => new Date(x * 1000).toLocaleTimeString('en-GB');
  const series = m => [...m].map(([p, pts]) => ({ name: short(p), color: colorOf(p), points: pts }));
  lineChart('chart-load', series(state.load), { yMin: 0, yMax: 1, xLabel: clock });
  lineChart('chart-share', series(state.share), { yMin: 0, yMax: 1, xLabel: clock });
  lineChart('chart-fairness', [{ name: 'fairness', color: COLORS[0], points: state.fairness }], { yMin: 0, yMax: 1, xLabel: clock });
  const provs = stats.providers || [];
  barChart('chart-earned', provs.map(p => ({ label: short(p.address).slice(0, 8), value: p.earned, color: colorOf(p.address) })));
  fillTable('provider-stats', provs.map(p => {
    const settled = p.completed + p.failed + 2 * p.timed_out;
    return [{ text: short(p.address), attrs: { title: p.address } }, p.matches, p.completed, p.failed, p.timed_out,
      settled ? fmt(p.completed / settled * 100, 0) + '%' : '–', p.earned, p.slashed, fmt(p.utilization * 100, 0) + '%', fmt(p.share * 100, 0) + '%'];
  }));
}

// --- Jobs ---

const FINAL = new Set(['paid', 'expired', 'failed', 'timed_out', 'cancelled', 'result_unavailable', 'payload_unavailable']);
const ORDER = ['submitted', 'bidding', 'matched', 'running', 'result_committed', ...FINAL];

function latency(j) { return (Date.parse(j.updated_at) - Date.parse(j.submitted_at)) / 1000; }

function drawJobs() {
  const jobs = [...state.jobs.values()].sort((a, b) => Date.parse(b.submitted_at) - Date.parse(a.submitted_at));
  const counts = new Map();
  for (const j of jobs) counts.set(j.state, (counts.get(j.state) || 0) + 1);
  barChart('chart-states', ORDER.filter(s => counts.has(s)).map(s => ({ label: s, value: counts.get(s), color: FINAL.has(s) && s !== 'paid' ? '#dc2626' : '#2563eb' })));
  const lat = jobs.filter(j => FINAL.has(j.state)).map(latency);
  const edges = [1, 2, 5, 10, 30, 60, 300];
  const buckets = edges.map(() => 0).concat([0]);
  for (const l of lat) { let i = edges.findIndex(e => l <= e); buckets[i < 0 ? edges.length : i]++; }
  barChart('chart-latency', lat.length ? buckets.map((n, i) => ({ label: i < edges.length ? '≤' + edges[i] : '>' + edges[edges.length - 1], value: n })) : []);
  fillTable('job-list', jobs.slice(0, 50).map(j => ({
    attrs: { 'data-job': j.id, 'data-state': j.state },
    cells: [short(j.id), j.name, { text: j.state, attrs: { class: 'state-' + j.state } }, short(j.provider) || '–',
      FINAL.has(j.state) ? fmt(latency(j), 1) + ' s' : '…'],
  })));
}

async function refreshJobs() {
  const jobs = await get('/v1/jobs?limit=200');
  for (const j of jobs) state.jobs.set(j.id, j);
  drawJobs();
}

// --- Live ---

function setLive(ok, text) {
  const l = $('#live');
  l.textContent = text;
  l.className = 'pill ' + (ok ? 'ok' : 'bad');
}

let pending = null;
function refreshSoon() {
  if (pending) return;
  pending = setTimeout(() => {
    pending = null;
    Promise.all([refreshMarket(), refreshValidators()]).catch(e => setLive(false, e.message));
  }, 300);
}

function follow() {
  const es = new EventSource('/v1/events');
  es.onopen = () => setLive(true, 'live');
  es.onerror = () => setLive(false, 'reconnecting…'); // EventSource retries by itself
  es.addEventListener('block', m => { const ev = JSON.parse(m.data); addBlock(ev.block); drawChain(); refreshSoon(); });
  es.addEventListener('job', m => { const ev = JSON.parse(m.data); state.jobs.set(ev.job.id, ev.job); drawJobs(); });
}

async function main() {
  follow();
  await Promise.all([loadHistory(), refreshMarket(), refreshValidators(), refreshJobs()]);
  // The event stream carries blocks and this node's jobs; offers change
  // between blocks, so the market is also sampled on a timer.
  setInterval(() => refreshMarket().catch(e => setLive(false, e.message)), 2000);
  setInterval(() => refreshJobs().catch(e => setLive(false, e.message)), 10000);
}

main().catch(e => setLive(false, 'error: ' + e.message));
