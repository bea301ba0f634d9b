// RSwarm's dashboard: plain JavaScript over the frontend's REST API
// (/api/v1/...), served by the frontend from files built into the binary.
// No framework, no build step, nothing from the network.
//
// Data flow: the workers and the unfinished jobs are polled (the cluster
// view and the utilisation history); lifecycle events arrive on the
// /api/v1/events stream and make the visible job lists refresh. Every
// request carries the API token as "Authorization: Bearer" once the user has
// given it; the stream is read with fetch, not EventSource, so that it can
// carry the same header.
'use strict';

const TOKEN_KEY = 'rswarm.token';
const STATES = ['Ready', 'Scheduled', 'Deployed', 'Running', 'Migrating', 'Down', 'Failed', 'Cancelled'];
const ACTIVE = ['Scheduled', 'Deployed', 'Running', 'Migrating'];
const FINAL = ['Down', 'Failed', 'Cancelled'];
const HISTORY = 300; // utilisation samples kept
const STALE = 30;     // seconds without a heartbeat shown as late

const $ = (sel, root = document) => root.querySelector(sel);

// el builds an element: attributes (on* are listeners) and children (strings become text).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'text') e.textContent = v;
    // Through the CSSOM: the page's Content-Security-Policy refuses style attributes.
    else if (k === 'style') e.style.cssText = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

// ---- formatting ----

const now = () => Date.now() / 1000;
function clock(t) {
  if (!t) return '–';
  const d = new Date(t * 1000);
  const same = new Date().toDateString() === d.toDateString();
  const hms = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  return same ? hms : d.toLocaleDateString([], { month: 'short', day: 'numeric' }) + ' ' + hms;
}
function dur(s) {
  if (s === null || s === undefined || !isFinite(s) || s < 0) return '–';
  if (s < 10) return s.toFixed(1) + ' s';
  if (s < 60) return Math.round(s) + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' m ' + String(Math.round(s % 60)).padStart(2, '0') + ' s';
  if (s < 86400) return Math.floor(s / 3600) + ' h ' + String(Math.floor((s % 3600) / 60)).padStart(2, '0') + ' m';
  return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
}
function bytes(n) {
  if (!n) return '0';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)) + ' ' + u[i];
}
function badge(state) { return el('span', { class: 'badge ' + state, text: state }); }

// jobColour gives each job one of the palette's colours (classes c0..c19
// in app.css) for the session, in turn in the order the page first sees
// the jobs, so that jobs seen together differ.
const PALETTE_SIZE = 20;
const colourCache = new Map();
function jobColour(name) {
  let c = colourCache.get(name);
  if (!c) {
    c = 'c' + (colourCache.size % PALETTE_SIZE);
    colourCache.set(name, c);
  }
  return c;
}

const escapes = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const esc = s => String(s).replace(/[&<>"']/g, c => escapes[c]);

function tasksOf(job) {
  const ts = (job.job_info && job.job_info.tasks) || {};
  return Object.values(ts);
}
function coresOf(job) { return tasksOf(job).reduce((n, t) => n + (t.req_cores || 0), 0); }

// ---- the API, with the token ----

let tokenPrompt = null;
// askToken shows the token dialog once, however many requests were refused
// meanwhile, and resolves when the user has given a token.
function askToken(refused) {
  if (tokenPrompt) return tokenPrompt;
  tokenPrompt = new Promise(resolve => {
    const d = $('#token-dialog');
    const input = $('#token-input');
    $('#token-why').textContent = refused
      ? 'The API refused the token given. Enter the token given to rswarm with --api-token or --api-token-file.'
      : 'This RSwarm needs its API token (rswarm --api-token or --api-token-file). It is kept for this browser tab only.';
    input.value = '';
    const done = () => {
      const v = input.value.trim();
      if (!v) { d.showModal(); return; }
      sessionStorage.setItem(TOKEN_KEY, v);
      d.removeEventListener('close', done);
      tokenPrompt = null;
      resolve();
    };
    d.addEventListener('close', done);
    d.showModal();
    input.focus();
  });
  return tokenPrompt;
}

function authHeaders(h) {
  const tok = sessionStorage.getItem(TOKEN_KEY);
  if (tok) h.Authorization = 'Bearer ' + tok;
  return h;
}

class APIError extends Error {
  constructor(status, detail) {
    super(detail && detail.message ? detail.message + (detail.field ? ` (field ${detail.field})` : '') : 'HTTP ' + status);
    this.status = status;
  }
}

async function api(method, path, body) {
  for (;;) {
    const hadToken = !!sessionStorage.getItem(TOKEN_KEY);
    const h = authHeaders({ Accept: 'application/json' });
    if (body !== undefined) h['Content-Type'] = 'application/json';
    const r = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
    if (r.status === 401) { await askToken(hadToken); continue; }
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = text; }
    if (!r.ok) throw new APIError(r.status, data && data.error);
    return data;
  }
}

function showError(err) {
  const box = $('#error');
  box.classList.remove('info');
  if (!err) { box.hidden = true; return; }
  box.textContent = String(err.message || err);
  box.hidden = false;
}

// ---- shared state: workers, unfinished jobs, utilisation history ----

const state = {
  workers: [],
  active: [],            // unfinished placed jobs
  byTask: new Map(),     // container name -> {job, task}
  waiting: 0,
  strategy: null,
  samples: [],           // {t, busy, total, per: Map(worker -> ratio)}
};

async function pollCluster() {
  const [workers, active, waiting] = await Promise.all([
    api('GET', '/api/v1/workers'),
    api('GET', '/api/v1/jobs?status=' + ACTIVE.join(',') + '&limit=10000'),
    api('GET', '/api/v1/jobs?status=Ready&limit=1'),
  ]);
  state.workers = workers.slice().sort((a, b) => a.hostname.localeCompare(b.hostname, undefined, { numeric: true }));
  state.active = active.jobs;
  state.waiting = waiting.total;
  state.byTask = new Map();
  for (const j of active.jobs) for (const t of tasksOf(j)) state.byTask.set(t.container_name, { job: j, task: t });
  let busy = 0, total = 0;
  const per = new Map();
  for (const w of state.workers) {
    const b = Object.values(w.CPUs || {}).filter(Boolean).length;
    if (w.status !== 'down') { busy += b; total += w.cores; }
    per.set(w.hostname, w.status === 'down' ? null : (w.cores ? b / w.cores : 0));
  }
  state.samples.push({ t: now(), busy, total, per });
  if (state.samples.length > HISTORY) state.samples.shift();
}

async function loadStrategy() {
  state.strategy = await api('GET', '/api/v1/scheduler');
}

// ---- the cluster view ----

let clusterSig = new Map();
function renderCluster() {
  const ws = state.workers;
  const ready = ws.filter(w => w.status === 'ready').length;
  const last = state.samples[state.samples.length - 1] || { busy: 0, total: 0 };
  $('#c-workers').textContent = `${ready} / ${ws.length}`;
  $('#c-cores').textContent = `${last.busy} / ${last.total}`;
  $('#c-cores-bar').style.width = (last.total ? 100 * last.busy / last.total : 0) + '%';
  $('#c-running').textContent = String(state.active.filter(j => j.status === 'Running').length);
  $('#c-waiting').textContent = String(state.waiting);
  $('#c-strategy').textContent = state.strategy ? state.strategy.name : '–';

  const q = $('#w-filter').value.trim().toLowerCase();
  const st = $('#w-status').value;
  const busyOnly = $('#w-busy').checked;
  const shown = ws.filter(w => {
    if (st && w.status !== st) return false;
    const tasks = Object.values(w.core_tasks || {});
    if (busyOnly && tasks.length === 0) return false;
    if (!q) return true;
    if (w.hostname.toLowerCase().includes(q) || (w.host || '').toLowerCase().includes(q) || w.status.includes(q)) return true;
    return tasks.some(t => { const e = state.byTask.get(t); return t.toLowerCase().includes(q) || (e && e.job.job_name.toLowerCase().includes(q)); });
  });
  $('#w-count').textContent = shown.length === ws.length ? `${ws.length} workers` : `${shown.length} of ${ws.length} workers`;

  const table = $('#workers');
  table.classList.toggle('compact', shown.length > 60);
  const tbody = table.tBodies[0];
  if (shown.length === 0) {
    tbody.replaceChildren(el('tr', { class: 'empty' }, el('td', { colspan: 6, text: ws.length ? 'No worker matches the filter.' : 'No worker has registered yet.' })));
    clusterSig = new Map();
  } else {
    // Rows are rebuilt only when what they show changed (the heartbeat's
    // age is rewritten in place): a thousand workers redraw in tens of
    // milliseconds when little moves.
    const next = new Map();
    const rows = [];
    const t = now();
    for (const w of shown) {
      const age = w.last_heartbeat ? Math.max(0, t - w.last_heartbeat) : null;
      const sig = JSON.stringify([w.status, w.cores, w.core_tasks, w.mem_allocated, w.mem_total]);
      const old = clusterSig.get(w.hostname);
      let row;
      if (old && old.sig === sig) {
        row = old.row;
        const cell = row.lastChild, text = ageText(age);
        if (cell.textContent !== text) {
          cell.textContent = text;
          cell.classList.toggle('stale', age !== null && age > STALE);
        }
      } else {
        row = workerRow(w, age);
      }
      next.set(w.hostname, { sig, row });
      rows.push(row);
    }
    clusterSig = next;
    const cur = Array.from(tbody.children);
    if (cur.length !== rows.length || cur.some((r, i) => r !== rows[i])) tbody.replaceChildren(...rows);
  }
  renderLegend();
}

// workerRow builds a worker's row. Its cores are written as HTML in one
// go: a thousand workers have tens of thousands of cores.
function workerRow(w, age) {
  const busy = w.core_tasks || {};
  let html = '';
  let n = 0;
  const jobs = new Set();
  for (let c = 0; c < w.cores; c++) {
    const task = busy[String(c)];
    if (!task) { html += `<span class="core" data-c="${c}"></span>`; continue; }
    n++;
    const e = state.byTask.get(task);
    const job = e ? e.job.job_name : task.replace(/_[^_]*$/, '');
    jobs.add(job);
    html += `<span class="core ${jobColour(job)}" data-c="${c}" data-job="${esc(job)}" data-task="${esc(task)}"></span>`;
  }
  const cores = el('div', { class: 'cores', 'data-w': w.hostname });
  cores.innerHTML = html;
  const label = `${w.hostname}, ${w.status}, ${n} of ${w.cores} cores busy` + (jobs.size ? ': ' + [...jobs].join(', ') : '');
  const memPct = w.mem_total ? Math.min(100, 100 * (w.mem_allocated || 0) / w.mem_total) : 0;
  return el('tr', { class: w.status, tabindex: 0, 'aria-label': label, 'data-worker': w.hostname },
    el('td', { class: 'mono' }, w.hostname),
    el('td', {}, badge(w.status)),
    el('td', { class: 'cores-cell' }, cores),
    el('td', { class: 'num busy' }, `${n}/${w.cores}`),
    el('td', {}, el('div', { class: 'mem' }, el('div', { class: 'bar', 'aria-hidden': 'true' }, el('span', { style: `width:${memPct}%` })),
      `${bytes(w.mem_allocated || 0)} / ${bytes(w.mem_total)}`)),
    el('td', { class: 'num age' + (age !== null && age > STALE ? ' stale' : '') }, ageText(age)));
}

const ageText = age => age === null ? '–' : dur(age) + ' ago';

function renderLegend() {
  const counts = new Map();
  for (const w of state.workers) for (const t of Object.values(w.core_tasks || {})) {
    const e = state.byTask.get(t);
    const job = e ? e.job.job_name : t.replace(/_[^_]*$/, '');
    counts.set(job, (counts.get(job) || 0) + 1);
  }
  const top = [...counts].sort((a, b) => b[1] - a[1]);
  const items = top.slice(0, 24).map(([job, n]) => el('a', { href: '#/jobs/' + encodeURIComponent(job) },
    el('span', { class: 'sw ' + jobColour(job), 'aria-hidden': 'true' }), `${job} (${n})`));
  if (top.length > 24) items.push(el('span', { class: 'muted', text: `and ${top.length - 24} more jobs` }));
  if (!items.length) items.push(el('span', { class: 'muted', text: 'No job holds a core.' }));
  $('#legend').replaceChildren(...items);
}

// The tooltip of a core: its task, job and since when.
function coreTip(core) {
  const w = core.parentElement.dataset.w, c = core.dataset.c, task = core.dataset.task;
  if (!task) return [el('b', {}, `${w} core ${c}`), el('br'), 'free'];
  const e = state.byTask.get(task);
  const since = e && e.task.start_time ? e.task.start_time : null;
  return [el('b', {}, `${w} core ${c}`), el('br'), 'task ', el('span', { class: 'mono' }, task), el('br'),
    'job ', el('span', { class: 'mono' }, core.dataset.job), el('br'),
    since ? `since ${clock(since)} (${dur(now() - since)})` : (e ? e.task.status : 'starting')];
}

// rowTip is what a worker's row shows when it has the keyboard focus: each
// task on it with its job, cores and since when (what hovering its cores
// shows a mouse user). Enter opens the job of its first task.
function rowTip(tr) {
  const cores = tr.querySelectorAll('.core[data-task]');
  const byTask = new Map();
  for (const c of cores) {
    const e = byTask.get(c.dataset.task) || { job: c.dataset.job, cores: [] };
    e.cores.push(c.dataset.c);
    byTask.set(c.dataset.task, e);
  }
  const out = [el('b', {}, tr.dataset.worker)];
  if (!byTask.size) out.push(el('br'), 'all cores free');
  for (const [task, e] of byTask) {
    const a = state.byTask.get(task);
    const since = a && a.task.start_time ? ` since ${clock(a.task.start_time)}` : '';
    out.push(el('br'), `cores ${e.cores.join(',')}: task `, el('span', { class: 'mono' }, task), ` of job `, el('span', { class: 'mono' }, e.job), since);
  }
  return out;
}

function placeTip(tip, r) {
  const x = Math.min(r.left, window.innerWidth - tip.offsetWidth - 8);
  const y = r.bottom + 6 + tip.offsetHeight > window.innerHeight ? r.top - tip.offsetHeight - 6 : r.bottom + 6;
  tip.style.left = Math.max(4, x) + 'px';
  tip.style.top = y + 'px';
}

function setupClusterEvents() {
  const tip = $('#tip');
  const tbody = $('#workers').tBodies[0];
  tbody.addEventListener('mouseover', ev => {
    const core = ev.target.closest('.core');
    if (!core) { tip.hidden = true; return; }
    tip.replaceChildren(...coreTip(core));
    tip.hidden = false;
    placeTip(tip, core.getBoundingClientRect());
  });
  tbody.addEventListener('mouseleave', () => { tip.hidden = true; });
  tbody.addEventListener('focusin', ev => {
    const tr = ev.target.closest('tr[data-worker]');
    if (!tr) return;
    tip.replaceChildren(...rowTip(tr));
    tip.hidden = false;
    placeTip(tip, tr.querySelector('.cores').getBoundingClientRect());
  });
  tbody.addEventListener('focusout', () => { tip.hidden = true; });
  tbody.addEventListener('keydown', ev => {
    const tr = ev.target.closest('tr[data-worker]');
    const core = tr && tr.querySelector('.core[data-job]');
    if (ev.key === 'Enter' && core) location.hash = '#/jobs/' + encodeURIComponent(core.dataset.job);
  });
  tbody.addEventListener('click', ev => {
    const core = ev.target.closest('.core[data-job]');
    if (core) location.hash = '#/jobs/' + encodeURIComponent(core.dataset.job);
  });
  for (const id of ['#w-filter', '#w-status', '#w-busy']) $(id).addEventListener('input', renderCluster);
}

// ---- the jobs view ----

const jobsView = { statuses: new Set(), page: 0, total: 0, timer: null };

function setupJobs() {
  const chips = $('#status-chips');
  for (const s of STATES) {
    chips.append(el('button', {
      type: 'button', 'aria-pressed': 'false', 'data-status': s, text: s,
      onclick: e => {
        const b = e.currentTarget;
        const on = b.getAttribute('aria-pressed') !== 'true';
        b.setAttribute('aria-pressed', String(on));
        if (on) jobsView.statuses.add(s); else jobsView.statuses.delete(s);
        jobsView.page = 0;
        loadJobs();
      },
    }));
  }
  let t;
  $('#j-search').addEventListener('input', () => { clearTimeout(t); t = setTimeout(() => { jobsView.page = 0; loadJobs(); }, 200); });
  $('#j-size').addEventListener('change', () => { jobsView.page = 0; loadJobs(); });
  $('#j-prev').addEventListener('click', () => { jobsView.page--; loadJobs(); });
  $('#j-next').addEventListener('click', () => { jobsView.page++; loadJobs(); });
}

function statusQuery() {
  return jobsView.statuses.size ? 'status=' + [...jobsView.statuses].join(',') + '&' : '';
}

// loadJobs shows a page of jobs, newest first. The API lists oldest first,
// so the page is read from the end. A search reads every job of the chosen
// states and pages through the matches here.
let jobsSeq = 0;
async function loadJobs() {
  const seq = ++jobsSeq;
  const size = Number($('#j-size').value);
  const q = $('#j-search').value.trim().toLowerCase();
  let jobs, total;
  if (q) {
    const all = await api('GET', '/api/v1/jobs?' + statusQuery() + 'limit=10000');
    const hit = all.jobs.filter(j => j.job_name.toLowerCase().includes(q) || String(j.session || '').includes(q) ||
      tasksOf(j).some(t => (t.node || '').toLowerCase().includes(q))).reverse();
    total = hit.length;
    jobsView.page = Math.max(0, Math.min(jobsView.page, Math.ceil(total / size) - 1));
    jobs = hit.slice(jobsView.page * size, (jobsView.page + 1) * size);
  } else {
    total = (await api('GET', '/api/v1/jobs?' + statusQuery() + 'limit=1')).total;
    jobsView.page = Math.max(0, Math.min(jobsView.page, Math.ceil(total / size) - 1));
    const end = total - jobsView.page * size;
    const off = Math.max(0, end - size);
    jobs = end > 0 ? (await api('GET', `/api/v1/jobs?${statusQuery()}limit=${end - off}&offset=${off}`)).jobs.reverse() : [];
    total = Math.max(total, jobs.length);
  }
  if (seq !== jobsSeq) return; // a newer load overtook this one
  jobsView.total = total;
  const tbody = $('#jobs-table').tBodies[0];
  tbody.replaceChildren(...(jobs.length ? jobs.map(jobRow) : [el('tr', { class: 'empty' }, el('td', { colspan: 9, text: 'No job.' }))]));
  const from = total ? jobsView.page * size + 1 : 0;
  $('#j-range').textContent = `${from}–${jobsView.page * size + jobs.length} of ${total}`;
  $('#j-prev').disabled = jobsView.page === 0;
  $('#j-next').disabled = (jobsView.page + 1) * size >= total;
}

function jobRow(j) {
  const ts = tasksOf(j);
  const nodes = [...new Set(ts.map(t => t.node).filter(Boolean))];
  const started = j.start_time || null;
  const waited = started ? started - j.submit_time : (FINAL.includes(j.status) ? null : now() - j.submit_time);
  const ran = started ? (j.end_time || now()) - started : null;
  const note = j.error || j.waiting_reason || '';
  return el('tr', { 'data-job': j.job_name },
    el('td', { class: 'mono' }, el('a', { href: '#/jobs/' + encodeURIComponent(j.job_name) }, j.job_name)),
    el('td', { class: 'status' }, badge(j.status)),
    el('td', { class: 'num' }, ts.length),
    el('td', { class: 'num' }, coresOf(j)),
    el('td', { class: 'mono' }, nodes.length > 3 ? `${nodes.slice(0, 3).join(', ')} +${nodes.length - 3}` : nodes.join(', ') || '–'),
    el('td', {}, clock(j.submit_time)),
    el('td', { class: 'num' }, dur(waited)),
    el('td', { class: 'num' }, dur(ran)),
    el('td', { class: 'wrap muted' }, note));
}

// An event changes the row at once, and the page is read again soon after
// (new jobs, jobs that left the filter), at most twice a second.
function jobsOnEvent(e) {
  if (e.job && e.state) {
    const row = $(`#jobs-table tr[data-job="${CSS.escape(e.job)}"] td.status`);
    if (row && e.type.startsWith('job.')) row.replaceChildren(badge(e.state));
  }
  if (!jobsView.timer) jobsView.timer = setTimeout(() => { jobsView.timer = null; if (current.view === 'jobs') loadJobs().catch(showError); }, 500);
}

// ---- a job's page ----

const jobView = { name: null, job: null, timer: null };

async function loadJob(name) {
  jobView.name = name;
  const [j, workers] = await Promise.all([api('GET', '/api/v1/jobs/' + encodeURIComponent(name)), api('GET', '/api/v1/workers')]);
  if (jobView.name !== name) return;
  jobView.job = j;
  $('#h-job').textContent = j.job_name;
  $('#job-status').replaceChildren(badge(j.status));
  const cancel = $('#job-cancel');
  const ended = FINAL.includes(j.status);
  cancel.textContent = ended ? 'Delete record' : 'Cancel job';
  cancel.dataset.action = ended ? 'delete' : 'cancel';

  const facts = [
    ['Status', j.status], ['Submitted', clock(j.submit_time)], ['Started', clock(j.start_time)], ['Ended', clock(j.end_time)],
    ['Waited', dur(j.start_time ? j.start_time - j.submit_time : (ended ? null : now() - j.submit_time))],
    ['Ran', dur(j.start_time ? (j.end_time || now()) - j.start_time : null)],
    ['Cores', coresOf(j)], ['Session', j.session || '–'], ['Strategy', j.strategy || '–'], ['Priority', j.priority || 0],
  ];
  if (j.waiting_reason) facts.push(['Why it waits', j.waiting_reason]);
  if (j.error) facts.push(['Error', j.error]);
  $('#job-facts').replaceChildren(...facts.map(([k, v]) => el('div', {}, el('dt', {}, k), el('dd', {}, String(v)))));

  const ready = workers.filter(w => w.status === 'ready');
  const tbody = $('#tasks-table').tBodies[0];
  tbody.replaceChildren(...tasksOf(j).map(t => taskRow(j, t, ready)));
  loadLogs(j);
}

function taskRow(j, t, ready) {
  let migrate = el('span', { class: 'muted', text: '–' });
  if (t.status === 'Running') {
    const id = 'mig-' + t.container_name;
    const sel = el('select', { id, 'aria-label': `Worker to move ${t.container_name} to` },
      ...ready.filter(w => w.hostname !== t.node).map(w => el('option', { value: w.hostname }, w.hostname)));
    const btn = el('button', {
      type: 'button', class: 'migrate-btn', disabled: sel.options.length === 0 ? true : undefined,
      onclick: async () => {
        btn.disabled = true;
        try {
          const res = await api('POST', `/api/v1/jobs/${encodeURIComponent(j.job_name)}/tasks/${encodeURIComponent(t.container_name)}/migrate`, { to: sel.value });
          showError(null);
          flash(`${t.container_name} moved to ${res.to || sel.value} (${res.mode || 'cold'}${res.note ? ': ' + res.note : ''})`);
        } catch (err) { showError(err); }
        loadJob(j.job_name).catch(showError);
      },
    }, 'Move');
    migrate = el('div', { class: 'migrate' }, sel, btn);
  }
  return el('tr', { 'data-task': t.container_name },
    el('td', { class: 'mono' }, t.container_name),
    el('td', { class: 'state' }, badge(t.status)),
    el('td', { class: 'mono' }, t.node || '–'),
    el('td', { class: 'mono' }, t.cpuset_cpus ? `${t.cpuset_cpus} (${t.req_cores})` : `${t.req_cores} wanted`),
    el('td', {}, t.mem_limit || '–'),
    el('td', { class: 'num' }, t.exit_code === undefined || t.exit_code === null ? '–' : t.exit_code),
    el('td', {}, clock(t.start_time)),
    el('td', {}, clock(t.end_time)),
    el('td', { class: 'wrap' }, t.error || ''),
    el('td', {}, migrate));
}

// loadLogs shows the last lines of each started task: read at once for the
// first few tasks, on opening for the others (a job may have hundreds).
const EAGER_LOGS = 8;
async function loadLogs(j) {
  const started = tasksOf(j).filter(t => t.status !== 'Ready' && t.status !== 'Scheduled');
  const read = async (t, pre, summary) => {
    let lines;
    try {
      lines = (await api('GET', `/api/v1/jobs/${encodeURIComponent(j.job_name)}/tasks/${encodeURIComponent(t.container_name)}/logs?tail=20`)).lines;
    } catch (err) { lines = ['(' + err.message + ')']; }
    pre.textContent = lines.length ? lines.join('\n') : '(no output)';
    summary.textContent = `${t.container_name} (last ${lines.length} lines)`;
  };
  const out = [];
  const eager = [];
  started.forEach((t, i) => {
    const pre = el('pre', { class: 'log', tabindex: 0 }, '…');
    const summary = el('summary', {}, t.container_name);
    const d = el('details', { class: 'logs', open: i < EAGER_LOGS }, summary, pre);
    if (i < EAGER_LOGS) eager.push(() => read(t, pre, summary));
    else d.addEventListener('toggle', () => { if (d.open) read(t, pre, summary); });
    out.push(d);
  });
  if (jobView.job !== j) return;
  $('#job-logs').replaceChildren(...(out.length ? out : [el('p', { class: 'muted', text: 'No task has started yet.' })]));
  await Promise.all(eager.map(f => f()));
}

function flash(msg) {
  const box = $('#error');
  box.textContent = msg;
  box.hidden = false;
  box.classList.add('info');
}

async function cancelJob() {
  const j = jobView.job;
  if (!j) return;
  const d = $('#confirm-dialog');
  const del = $('#job-cancel').dataset.action === 'delete';
  $('#confirm-title').textContent = del ? 'Delete the job\'s record?' : 'Cancel the job?';
  $('#confirm-text').textContent = del
    ? `${j.job_name} has ended; its record is deleted and its name can be used again.`
    : `${j.job_name}'s containers are stopped and its cores freed.`;
  $('#confirm-yes').textContent = del ? 'Delete' : 'Cancel job';
  d.returnValue = '';
  d.showModal();
  await new Promise(r => d.addEventListener('close', r, { once: true }));
  if (d.returnValue !== 'yes') return;
  try {
    await api('DELETE', '/api/v1/jobs/' + encodeURIComponent(j.job_name));
    if (del) { location.hash = '#/jobs'; return; }
    await loadJob(j.job_name);
  } catch (err) { showError(err); }
}

function jobOnEvent(e) {
  if (current.view !== 'job' || e.job !== jobView.name) return;
  if (!jobView.timer) jobView.timer = setTimeout(() => { jobView.timer = null; loadJob(jobView.name).catch(showError); }, 200);
}

// ---- the queue ----

async function loadQueue() {
  const [info, q] = await Promise.all([api('GET', '/api/v1/scheduler'), api('GET', '/api/v1/jobs?status=Ready&limit=500')]);
  state.strategy = info;
  $('#strategy-current').textContent = info.name;
  const opts = $('#strategy-options');
  const names = Object.keys(info.strategies || {}).sort();
  const picked = (opts.querySelector('input:checked') || {}).value;
  opts.replaceChildren(...names.map(n => el('label', {},
    el('input', { type: 'radio', name: 'strategy', value: n, checked: (picked || info.name) === n }),
    el('span', {}, el('strong', {}, n), el('br'), el('span', { class: 'd' }, info.strategies[n])))));
  $('#q-count').textContent = q.total > q.jobs.length ? `(${q.total}, the first ${q.jobs.length} shown)` : `(${q.total})`;
  const tbody = $('#queue-table').tBodies[0];
  const t = now();
  tbody.replaceChildren(...(q.jobs.length ? q.jobs.map(j => el('tr', { 'data-job': j.job_name },
    el('td', { class: 'mono' }, el('a', { href: '#/jobs/' + encodeURIComponent(j.job_name) }, j.job_name)),
    el('td', { class: 'num' }, coresOf(j)),
    el('td', {}, clock(j.submit_time)),
    el('td', { class: 'num' }, dur(t - j.submit_time)),
    el('td', { class: 'wrap' }, j.waiting_reason || 'not considered yet'))) : [el('tr', { class: 'empty' }, el('td', { colspan: 5, text: 'No job is waiting.' }))]));
}

function setupQueue() {
  $('#strategy-form').addEventListener('submit', async ev => {
    ev.preventDefault();
    const pick = $('#strategy-options input:checked');
    if (!pick) return;
    try {
      const info = await api('PUT', '/api/v1/scheduler', { name: pick.value });
      $('#strategy-msg').textContent = `now placing with ${info.name}`;
      await loadQueue();
    } catch (err) { $('#strategy-msg').textContent = err.message; }
  });
}

// ---- utilisation ----

// sizeCanvas sizes a canvas to cssWidth x cssHeight CSS pixels, drawn at
// the screen's pixel density, and returns its context in CSS pixels.
function sizeCanvas(c, cssWidth, cssHeight) {
  const r = window.devicePixelRatio || 1;
  const w = Math.max(20, Math.floor(cssWidth));
  if (c.width !== Math.round(w * r) || c.height !== Math.round(cssHeight * r)) {
    c.width = Math.round(w * r);
    c.height = Math.round(cssHeight * r);
  }
  c.style.width = w + 'px';
  c.style.height = cssHeight + 'px';
  const ctx = c.getContext('2d');
  ctx.setTransform(r, 0, 0, r, 0, 0);
  return { ctx, w, h: cssHeight };
}

// blackBody maps 0..1 to black, red, yellow, white, as the report's heat map does.
function blackBody(v) {
  const stops = [[0, 0, 0, 0], [0.39, 178, 34, 34], [0.58, 227, 105, 5], [0.84, 238, 210, 20], [1, 255, 255, 255]];
  v = Math.max(0, Math.min(1, v));
  for (let i = 1; i < stops.length; i++) {
    const [b, r1, g1, b1] = stops[i], [a, r0, g0, b0] = stops[i - 1];
    if (v <= b) {
      const f = (v - a) / (b - a);
      return `rgb(${Math.round(r0 + f * (r1 - r0))},${Math.round(g0 + f * (g1 - g0))},${Math.round(b0 + f * (b1 - b0))})`;
    }
  }
  return 'rgb(255,255,255)';
}

function renderUtilisation() {
  const s = state.samples;
  const last = s[s.length - 1];
  $('#u-now').textContent = last ? `(now ${last.busy} of ${last.total})` : '';
  // The line.
  {
    const { ctx, w, h } = sizeCanvas($('#u-line'), $('#u-line').parentElement.clientWidth - 24, 200);
    const L = 44, R = 10, T = 10, B = 24;
    ctx.clearRect(0, 0, w, h);
    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = '#5d6778';
    const max = Math.max(1, ...s.map(p => p.total));
    ctx.strokeStyle = '#eceff3';
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = T + (h - T - B) * (1 - i / 4);
      ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(w - R, y); ctx.stroke();
      ctx.fillText(String(Math.round(max * i / 4)), 4, y + 4);
    }
    if (s.length > 0) {
      const t0 = s[0].t, t1 = Math.max(s[s.length - 1].t, t0 + 1);
      const x = t => L + (w - L - R) * (t - t0) / (t1 - t0);
      const y = v => T + (h - T - B) * (1 - v / max);
      ctx.fillText(clock(t0), L, h - 6);
      const end = clock(t1);
      ctx.fillText(end, w - R - ctx.measureText(end).width, h - 6);
      // total cores, dashed
      ctx.setLineDash([4, 3]); ctx.strokeStyle = '#9aa3b2'; ctx.beginPath();
      s.forEach((p, i) => i ? ctx.lineTo(x(p.t), y(p.total)) : ctx.moveTo(x(p.t), y(p.total))); ctx.stroke();
      ctx.setLineDash([]);
      // busy cores, filled
      ctx.beginPath();
      s.forEach((p, i) => i ? ctx.lineTo(x(p.t), y(p.busy)) : ctx.moveTo(x(p.t), y(p.busy)));
      ctx.strokeStyle = '#2457c5'; ctx.lineWidth = 2; ctx.stroke();
      ctx.lineTo(x(s[s.length - 1].t), y(0)); ctx.lineTo(x(s[0].t), y(0)); ctx.closePath();
      ctx.fillStyle = 'rgba(36, 87, 197, .12)'; ctx.fill();
    }
  }
  // The heat map: a row per worker (or per group of workers when they
  // outnumber the pixels), a column per sample.
  {
    const names = state.workers.map(w => w.hostname);
    const hgt = Math.max(120, Math.min(480, names.length * 14));
    const { ctx, w, h } = sizeCanvas($('#u-heat'), $('#u-heat').parentElement.clientWidth - 60, hgt);
    ctx.clearRect(0, 0, w, h);
    ctx.font = '11px system-ui, sans-serif';
    const L = names.length <= 40 ? Math.min(170, 10 + Math.max(0, ...names.map(n => ctx.measureText(n).width))) : 4;
    const rows = Math.min(names.length, Math.floor(h));
    const per = names.length / Math.max(1, rows);
    const cols = s.length;
    // Columns fill the width; the newest sample is on the right.
    const span = Math.max(cols, 20);
    const cw = (w - L) / span;
    for (let r = 0; r < rows; r++) {
      const group = names.slice(Math.floor(r * per), Math.floor((r + 1) * per));
      const y0 = r * h / rows, rh = h / rows;
      if (L > 4) { ctx.fillStyle = '#5d6778'; ctx.fillText(group[0], 2, y0 + rh / 2 + 4); }
      for (let c = 0; c < cols; c++) {
        let sum = 0, n = 0;
        for (const name of group) { const v = s[c].per.get(name); if (v !== null && v !== undefined) { sum += v; n++; } }
        ctx.fillStyle = n ? blackBody(sum / n) : '#dddddd';
        ctx.fillRect(L + (span - cols + c) * cw, y0, Math.ceil(cw), Math.ceil(rh));
      }
    }
    if (cols < span) { ctx.fillStyle = '#f0f2f5'; ctx.fillRect(L, 0, (span - cols) * cw, h); }
    $('#u-from').textContent = cols ? clock(s[0].t) : '';
    $('#u-from').style.marginLeft = Math.round(L + (span - cols) * cw) + 'px';
    $('#u-to').textContent = cols ? clock(s[cols - 1].t) : '';
    const sc = sizeCanvas($('#u-scale'), 44, hgt);
    sc.ctx.clearRect(0, 0, sc.w, sc.h);
    for (let i = 0; i < sc.h; i++) { sc.ctx.fillStyle = blackBody(1 - i / sc.h); sc.ctx.fillRect(0, i, 12, 1); }
    sc.ctx.fillStyle = '#5d6778'; sc.ctx.font = '10px system-ui, sans-serif';
    sc.ctx.fillText('full', 14, 10); sc.ctx.fillText('free', 14, sc.h - 2);
  }
}

// ---- events ----

const events = { list: [], paused: false };

function eventItem(e) {
  const cls = e.type.endsWith('failed') ? 'failed' : e.type.endsWith('finished') ? 'finished' : '';
  const parts = [];
  if (e.job) parts.push(el('a', { href: '#/jobs/' + encodeURIComponent(e.job), class: 'mono' }, e.job));
  if (e.task) parts.push(' task ', el('span', { class: 'mono' }, e.task));
  if (e.node) parts.push(' on ', el('span', { class: 'mono' }, e.node));
  if (e.session && !e.job) parts.push('session ' + e.session);
  if (e.state) parts.push(' → ', e.state);
  if (e.exit_code !== undefined && e.exit_code !== null) parts.push(` (exit ${e.exit_code})`);
  if (e.error) parts.push(': ', e.error);
  return el('li', {}, el('span', { class: 't' }, clock(e.time || e._got)), el('span', { class: 'ty ' + cls }, e.type), el('span', { class: 'd' }, ...parts));
}

function renderEvents() {
  const q = $('#e-filter').value.trim().toLowerCase();
  const shown = events.list.filter(e => !q || JSON.stringify(e).toLowerCase().includes(q)).slice(0, 300);
  $('#events').replaceChildren(...(shown.length ? shown.map(eventItem) : [el('li', { class: 'muted' }, 'No event yet: they appear here as jobs move.')]));
}

function onEvent(e) {
  e._got = now();
  events.list.unshift(e);
  if (events.list.length > 1000) events.list.length = 1000;
  if (current.view === 'events' && !events.paused) renderEvents();
  jobsOnEvent(e);
  jobOnEvent(e);
  if (current.view === 'queue') scheduleQueue();
  if (current.view === 'cluster' && (e.type === 'task.running' || e.type === 'job.finished' || e.type === 'task.ended' || e.type === 'task.failed')) kick();
}
let queueTimer = null;
function scheduleQueue() { if (!queueTimer) queueTimer = setTimeout(() => { queueTimer = null; loadQueue().catch(showError); }, 500); }

function setConn(ok, text) {
  const c = $('#conn');
  c.classList.toggle('live', ok);
  c.classList.toggle('down', !ok);
  $('#conn-text').textContent = text;
}

// streamEvents reads /api/v1/events with fetch (EventSource cannot send the
// token) and reconnects with Last-Event-ID after a break.
async function streamEvents() {
  let lastId = null, wait = 500, connectedBefore = false;
  for (;;) {
    try {
      const hadToken = !!sessionStorage.getItem(TOKEN_KEY);
      const h = authHeaders({ Accept: 'text/event-stream' });
      if (lastId) h['Last-Event-ID'] = lastId;
      const r = await fetch('/api/v1/events', { headers: h, cache: 'no-store' });
      if (r.status === 401) { await askToken(hadToken); continue; }
      if (!r.ok) throw new Error('events: HTTP ' + r.status);
      setConn(true, 'live');
      wait = 500;
      // What changed while the stream was down is read again.
      if (connectedBefore) { refreshView(null).catch(showError); kick(); }
      connectedBefore = true;
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n?/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('id:')) lastId = line.slice(3).trim();
            else if (line.startsWith('data:')) data += line.slice(5).trim();
          }
          if (data) { try { onEvent(JSON.parse(data)); } catch (err) { console.warn('bad event', data, err); } }
        }
      }
    } catch (err) {
      console.warn(err);
    }
    setConn(false, 'reconnecting');
    await new Promise(r => setTimeout(r, wait));
    wait = Math.min(wait * 2, 10000);
  }
}

// ---- views and the polling loop ----

const current = { view: null };

function route() {
  const h = decodeURIComponent(location.hash.replace(/^#\/?/, ''));
  let view = h.split('/')[0] || 'cluster';
  let arg = null;
  if (view === 'jobs' && h.length > 5) { view = 'job'; arg = h.slice(5); }
  if (!document.getElementById('view-' + view)) view = 'cluster';
  current.view = view;
  for (const s of document.querySelectorAll('.view')) s.hidden = s.id !== 'view-' + view;
  const nav = view === 'job' ? 'jobs' : view;
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.view === nav) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  $('#error').hidden = true;
  $('#error').classList.remove('info');
  document.title = (view === 'job' ? arg : nav[0].toUpperCase() + nav.slice(1)) + ' · RSwarm';
  $('#tip').hidden = true;
  refreshView(arg).catch(showError);
}

async function refreshView(arg) {
  switch (current.view) {
    case 'cluster': renderCluster(); break;
    case 'jobs': await loadJobs(); break;
    case 'job': if (arg !== null) jobView.name = arg; await loadJob(jobView.name); break;
    case 'queue': await loadQueue(); break;
    case 'utilisation': renderUtilisation(); break;
    case 'events': renderEvents(); break;
  }
}

let pollTimer = null;
let polling = false;
let pollFailed = false;
// kick polls the cluster now, then every few seconds.
async function kick() {
  if (polling) return;
  polling = true;
  clearTimeout(pollTimer);
  try {
    await pollCluster();
    if (pollFailed) { pollFailed = false; showError(null); }
    if (current.view === 'cluster') renderCluster();
    if (current.view === 'utilisation') renderUtilisation();
  } catch (err) {
    pollFailed = true;
    showError(new Error('reading the cluster: ' + err.message));
  } finally {
    polling = false;
    pollTimer = setTimeout(kick, state.workers.length > 200 ? 5000 : 2000);
  }
}

function init() {
  setupClusterEvents();
  setupJobs();
  setupQueue();
  $('#e-filter').addEventListener('input', renderEvents);
  $('#e-pause').addEventListener('click', ev => {
    events.paused = !events.paused;
    ev.currentTarget.setAttribute('aria-pressed', String(events.paused));
    ev.currentTarget.textContent = events.paused ? 'Resume' : 'Pause';
    if (!events.paused) renderEvents();
  });
  $('#job-cancel').addEventListener('click', cancelJob);
  // Without a token nothing can be shown: Escape does not dismiss its dialog.
  $('#token-dialog').addEventListener('cancel', e => e.preventDefault());
  for (const f of document.querySelectorAll('form[role="search"]')) f.addEventListener('submit', ev => ev.preventDefault());
  window.addEventListener('hashchange', route);
  window.addEventListener('resize', () => { if (current.view === 'utilisation') renderUtilisation(); });
  loadStrategy().catch(() => {});
  route();
  kick();
  streamEvents();
}

init();
