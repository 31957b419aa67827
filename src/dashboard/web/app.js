// The artel coordinator's dashboard: a read-only view of workers, tasks and
// training jobs over the coordinator's JSON API (src/dashboard/api.h).
//
// No framework: every page is built with DOM calls (h() and svg() below),
// never with innerHTML, so worker names, task arguments and error messages
// always land as text. The page polls the API every POLL_MS, one request
// chain at a time: the next poll is scheduled only after the previous one
// finished, and changing page or signing out aborts the chain.
'use strict';

(() => {
  const TOKEN_KEY = 'artel.dashboard.token';
  const POLL_MS = 2000;          // live pages
  const POLL_IDLE_MS = 10000;    // finished tasks and jobs
  const RETRY_MAX_MS = 15000;    // back-off while the coordinator is unreachable
  const PREVIEW_MAX_BYTES = 64 * 1024;
  const TASK_LIMITS = [100, 1000];

  // Counters the browser test reads: requests made, in flight now, and the
  // most ever in flight at once (polling must not pile up).
  const stats = { requests: 0, inFlight: 0, maxInFlight: 0, renders: 0 };
  window.artelDashboard = stats;

  // ------------------------------------------------------------------ DOM

  const SVG_NS = 'http://www.w3.org/2000/svg';

  function setAttrs(el, attrs) {
    if (!attrs) return;
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith('on') && typeof value === 'function') {
        el.addEventListener(key.slice(2), value);
      } else if (key === 'data') {
        for (const [k, v] of Object.entries(value)) {
          if (v !== null && v !== undefined) el.dataset[k] = String(v);
        }
      } else {
        el.setAttribute(key, value === true ? '' : String(value));
      }
    }
  }

  function appendAll(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  // h('a', {href: '#/x', class: 'y'}, 'text', otherNode): strings become text nodes.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    appendAll(el, children);
    return el;
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    setAttrs(el, attrs);
    appendAll(el, children);
    return el;
  }

  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------ formatting

  const num = (v) => (v === undefined || v === null || v === '' ? 0 : Number(v));

  function fmtInt(v) {
    return Math.round(num(v)).toLocaleString('en-US');
  }

  function fmtNum(v, digits = 2) {
    const x = num(v);
    if (!Number.isFinite(x)) return '—';
    return x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
  }

  // plural(3, 'core') -> "3 cores".
  function plural(n, word) {
    return `${fmtInt(n)} ${word}${num(n) === 1 ? '' : 's'}`;
  }

  function fmtBytes(v) {
    let x = num(v);
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (x >= 1024 && i < units.length - 1) {
      x /= 1024;
      i += 1;
    }
    return i === 0 ? `${x} B` : `${x.toFixed(x < 10 ? 1 : 0)} ${units[i]}`;
  }

  function fmtDuration(ms) {
    const x = num(ms);
    if (x < 1000) return `${Math.round(x)} ms`;
    const s = x / 1000;
    if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${Math.floor(s % 60)} s`;
    const hours = Math.floor(m / 60);
    if (hours < 48) return `${hours} h ${m % 60} min`;
    return `${Math.floor(hours / 24)} d ${hours % 24} h`;
  }

  function fmtAgo(ms, nowMs) {
    const t = num(ms);
    if (t <= 0) return 'never';
    const d = Math.max(0, num(nowMs) - t);
    if (d < 1000) return '< 1 s ago';
    if (d < 60000) return `${Math.floor(d / 1000)} s ago`;
    return `${fmtDuration(d)} ago`;
  }

  const pad2 = (n) => String(n).padStart(2, '0');

  function fmtTime(ms) {
    const t = num(ms);
    if (t <= 0) return '—';
    const d = new Date(t);
    return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ` +
           `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  }

  function fmtFixed(v, digits) {
    const x = num(v);
    return Number.isFinite(x) ? x.toFixed(digits) : '—';
  }

  function fmtPercent(fraction, digits = 1) {
    const x = num(fraction);
    if (x < 0 || !Number.isFinite(x)) return '—';
    return `${(x * 100).toFixed(digits)} %`;
  }

  // "TASK_STATE_DONE" -> "done", "OUTCOME_APP_ERROR" -> "app error".
  function enumText(value, prefix) {
    const v = String(value || '');
    const rest = v.startsWith(prefix) ? v.slice(prefix.length) : v;
    return rest.toLowerCase().replace(/_/g, ' ');
  }

  function timeCell(ms) {
    const t = num(ms);
    return t > 0 ? h('time', { datetime: new Date(t).toISOString() }, fmtTime(t)) : '—';
  }

  // ----------------------------------------------------------- components

  const BADGE_TONES = {
    pending: 'neutral', running: 'info', done: 'ok', 'in progress': 'info', reported: 'ok',
    lost: 'warn', cancelled: 'neutral', success: 'ok', 'app error': 'bad', 'host error': 'bad',
    'system error': 'bad', none: 'neutral', valid: 'ok', invalid: 'bad', unknown: 'neutral',
    init: 'info', exporting: 'info', failed: 'bad', online: 'ok', offline: 'neutral',
  };

  function badge(text, tone) {
    return h('span', { class: `badge badge-${tone || BADGE_TONES[text] || 'neutral'}` }, text);
  }

  function card(title, attrs, ...children) {
    return h('section', Object.assign({ class: 'card' }, attrs || {}),
      title ? h('h2', { class: 'card-title' }, title) : null, ...children);
  }

  // "12 / 40": the total smaller, beside the value.
  function valueOf(value, total) {
    return total ? [value, h('span', { class: 'stat-of' }, ` / ${total}`)] : value;
  }

  function stat(label, value, attrs, sub) {
    return h('div', Object.assign({ class: 'stat' }, attrs || {}),
      h('div', { class: 'stat-label' }, label),
      h('div', { class: 'stat-value' }, value),
      sub ? h('div', { class: 'stat-sub' }, sub) : null);
  }

  // A table: columns [{label, cls}], rows of cells (nodes or strings).
  function table(attrs, columns, rows, emptyText) {
    const head = h('thead', null, h('tr', null,
      columns.map((c) => h('th', { class: c.cls, scope: 'col', title: c.title }, c.label))));
    const body = h('tbody', null, rows);
    const t = h('table', Object.assign({ class: 'table' }, attrs || {}), head, body);
    if (rows.length === 0) {
      body.appendChild(h('tr', { class: 'empty-row' },
        h('td', { colspan: columns.length }, emptyText || 'nothing here yet')));
    }
    return h('div', { class: 'table-wrap' }, t);
  }

  function row(attrs, columns, cells) {
    return h('tr', attrs, cells.map((c, i) => h('td', { class: columns[i] && columns[i].cls }, c)));
  }

  // Key/value pairs as a definition list.
  function facts(pairs, attrs) {
    return h('dl', Object.assign({ class: 'facts' }, attrs || {}),
      pairs.filter(Boolean).map(([k, v, key]) => [
        h('dt', null, k), h('dd', key ? { data: { fact: key } } : null, v)]));
  }

  function pageHeader(title, ...extra) {
    return h('div', { class: 'page-header' }, h('h1', { id: 'page-title' }, title), ...extra);
  }

  function errorPanel(message, hint) {
    return h('div', { class: 'error-panel', id: 'view-error', role: 'alert' },
      h('div', { class: 'error-title' }, 'Cannot show this page'),
      h('p', { class: 'error-message' }, message),
      hint || h('p', null, h('a', { href: '#/overview' }, '← back to the overview')));
  }

  // ----------------------------------------------------------------- charts

  // Round numbers for an axis from lo to hi, about `count` of them.
  function niceTicks(lo, hi, count, integer) {
    if (!(hi > lo)) hi = lo + 1;
    const raw = (hi - lo) / Math.max(1, count);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    let step = mag;
    for (const m of integer ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10]) {
      step = m * mag;
      if (raw <= step) break;
    }
    if (integer) step = Math.max(1, Math.round(step));
    const ticks = [];
    const start = Math.ceil(lo / step - 1e-9) * step;
    for (let v = start; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
    return { ticks, step };
  }

  // An SVG line chart. series: [{key, label, points: [{x, y, round}], dashed,
  // markers}], each point drawn as <circle class="point" data-series=KEY
  // data-round=ROUND> when markers is on.
  function lineChart(opts) {
    const W = opts.width || 640;
    const H = opts.height || 280;
    const m = { left: opts.marginLeft || 72, right: 18, top: 14, bottom: 46 };
    const pw = W - m.left - m.right;
    const ph = H - m.top - m.bottom;
    const all = opts.series.flatMap((s) => s.points);
    const root = svg('svg', {
      id: opts.id, class: `chart ${opts.cls || ''}`, viewBox: `0 0 ${W} ${H}`,
      role: 'img', 'aria-label': opts.title, preserveAspectRatio: 'xMidYMid meet',
      data: { points: opts.series.filter((s) => s.markers !== false)
        .reduce((n, s) => n + s.points.length, 0) },
    });
    root.appendChild(svg('title', null, opts.title));
    if (all.length === 0) {
      root.appendChild(svg('text', {
        x: W / 2, y: H / 2, class: 'chart-empty', 'text-anchor': 'middle',
      }, opts.emptyText || 'no data yet'));
      return root;
    }
    let xlo = opts.xMin !== undefined ? opts.xMin : Math.min(...all.map((p) => p.x));
    let xhi = opts.xMax !== undefined ? opts.xMax : Math.max(...all.map((p) => p.x));
    if (xhi <= xlo) { xhi = xlo + 1; }
    let ylo = opts.yMin !== undefined ? opts.yMin : Math.min(...all.map((p) => p.y));
    let yhi = opts.yMax !== undefined ? opts.yMax : Math.max(...all.map((p) => p.y));
    if (opts.yClamp) {
      ylo = Math.max(opts.yClamp[0], ylo);
      yhi = Math.min(opts.yClamp[1], yhi);
    }
    if (yhi <= ylo) {
      const padding = Math.abs(yhi) * 0.05 || 0.5;
      ylo -= padding;
      yhi += padding;
      if (opts.yClamp) { ylo = Math.max(opts.yClamp[0], ylo); yhi = Math.min(opts.yClamp[1], yhi); }
    }
    const yt = niceTicks(ylo, yhi, opts.yTicks || 5, false);
    // Widen the y range to whole ticks so the top and bottom lines are labelled.
    ylo = Math.min(ylo, Math.floor(ylo / yt.step + 1e-9) * yt.step);
    yhi = Math.max(yhi, Math.ceil(yhi / yt.step - 1e-9) * yt.step);
    if (opts.yClamp) { ylo = Math.max(opts.yClamp[0], ylo); yhi = Math.min(opts.yClamp[1], yhi); }
    const yticks = niceTicks(ylo, yhi, opts.yTicks || 5, false).ticks;
    const xticks = niceTicks(xlo, xhi, opts.xTicks || 8, opts.xInteger).ticks;
    const X = (x) => m.left + ((x - xlo) / (xhi - xlo)) * pw;
    const Y = (y) => m.top + ph - ((y - ylo) / (yhi - ylo)) * ph;
    const yfmt = opts.yFormat || ((v) => fmtNum(v, 3));
    const xfmt = opts.xFormat || ((v) => fmtNum(v, 2));

    const grid = svg('g', { class: 'chart-grid' });
    for (const v of yticks) {
      grid.appendChild(svg('line', { x1: m.left, x2: m.left + pw, y1: Y(v), y2: Y(v) }));
    }
    root.appendChild(grid);
    const axes = svg('g', { class: 'chart-axis' });
    axes.appendChild(svg('line', { x1: m.left, x2: m.left + pw, y1: m.top + ph, y2: m.top + ph }));
    axes.appendChild(svg('line', { x1: m.left, x2: m.left, y1: m.top, y2: m.top + ph }));
    for (const v of yticks) {
      axes.appendChild(svg('text', {
        x: m.left - 7, y: Y(v) + 4, 'text-anchor': 'end', class: 'tick',
      }, yfmt(v)));
    }
    for (const v of xticks) {
      axes.appendChild(svg('line', { x1: X(v), x2: X(v), y1: m.top + ph, y2: m.top + ph + 5 }));
      axes.appendChild(svg('text', {
        x: X(v), y: m.top + ph + 18, 'text-anchor': 'middle', class: 'tick',
      }, xfmt(v)));
    }
    axes.appendChild(svg('text', { x: m.left + pw / 2, y: H - 6, 'text-anchor': 'middle',
      class: 'axis-label' }, opts.xLabel));
    axes.appendChild(svg('text', {
      x: 12, y: m.top + ph / 2, 'text-anchor': 'middle', class: 'axis-label',
      transform: `rotate(-90 12 ${m.top + ph / 2})`,
    }, opts.yLabel));
    root.appendChild(axes);

    opts.series.forEach((s, i) => {
      const g = svg('g', { class: `series series-${i}`, data: { series: s.key } });
      const pts = s.points.slice().sort((a, b) => a.x - b.x);
      if (opts.area && pts.length > 0) {
        const d = `M ${X(pts[0].x)} ${Y(ylo)} ` +
          pts.map((p) => `L ${X(p.x)} ${Y(p.y)}`).join(' ') +
          ` L ${X(pts[pts.length - 1].x)} ${Y(ylo)} Z`;
        g.appendChild(svg('path', { d, class: 'area' }));
      }
      if (pts.length > 1) {
        g.appendChild(svg('path', {
          d: pts.map((p, j) => `${j ? 'L' : 'M'} ${X(p.x).toFixed(1)} ${Y(p.y).toFixed(1)}`)
            .join(' '),
          class: `line${s.dashed ? ' dashed' : ''}`,
        }));
      }
      if (s.markers !== false) {
        const r = pts.length > 120 ? 1.6 : pts.length > 50 ? 2.2 : 3.2;
        for (const p of pts) {
          g.appendChild(svg('circle', {
            class: 'point', cx: X(p.x).toFixed(1), cy: Y(p.y).toFixed(1), r,
            data: { series: s.key, round: p.round, value: p.y },
          }, svg('title', null, p.label || `${s.label}: ${yfmt(p.y)}`)));
        }
      }
      root.appendChild(g);
    });
    return root;
  }

  function legend(series) {
    return h('div', { class: 'legend' }, series.map((s, i) =>
      h('span', { class: `legend-item series-${i}${s.dashed ? ' dashed' : ''}` },
        h('span', { class: 'legend-swatch' }), s.label)));
  }

  // ------------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  const getToken = () => sessionStorage.getItem(TOKEN_KEY) || '';

  // GET path with the token; JSON (or an ArrayBuffer with raw) or an ApiError
  // carrying the coordinator's message.
  async function api(path, { signal, raw, token } = {}) {
    const t = token || getToken();
    if (!t) throw new ApiError(401, 'UNAUTHENTICATED', 'Sign in with a token first.');
    stats.requests += 1;
    stats.inFlight += 1;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
    try {
      let res;
      try {
        res = await fetch(path, {
          headers: { Authorization: `Bearer ${t}` }, signal, cache: 'no-store',
        });
      } catch (e) {
        if (e.name === 'AbortError') throw e;
        throw new ApiError(0, 'UNAVAILABLE',
          'Cannot reach the coordinator: it may be down or restarting.');
      }
      if (!res.ok) {
        let message = `The coordinator answered HTTP ${res.status}.`;
        let code = '';
        try {
          const body = await res.json();
          if (body && body.error) message = body.error;
          code = (body && body.code) || '';
        } catch (e) {
          if (e.name === 'AbortError') throw e;
        }
        throw new ApiError(res.status, code, message);
      }
      return raw ? await res.arrayBuffer() : await res.json();
    } finally {
      stats.inFlight -= 1;
    }
  }

  const isAuthError = (e) => e instanceof ApiError && (e.status === 401 || e.status === 403);

  // ------------------------------------------------------- polling and views

  let current = null;  // the active page: {route, view, abort, timer, lastJson, failures}

  function stopPolling() {
    if (!current) return;
    current.stopped = true;
    current.abort.abort();
    clearTimeout(current.timer);
    current = null;
  }

  function setLive(state, text) {
    const el = $('live-status');
    el.dataset.state = state;
    $('live-text').textContent = text;
  }

  function showPage(route) {
    stopPolling();
    const view = route.view;
    const page = { route, view, abort: new AbortController(), timer: 0, lastJson: null, failures: 0,
      stopped: false, loaded: false };
    current = page;
    document.body.dataset.view = view.name;
    document.title = `${view.title(route)} · artel`;
    for (const a of document.querySelectorAll('#nav a')) {
      a.classList.toggle('active', a.dataset.nav === view.nav);
    }
    const main = $('view');
    main.dataset.loaded = 'false';
    main.replaceChildren(h('div', { class: 'loading' }, 'Loading…'));
    tick(page);
  }

  async function tick(page) {
    if (page.stopped || page.busy) return;
    page.busy = true;
    let next = POLL_MS;
    try {
      const data = await page.view.load(page.route, page.abort.signal);
      if (page.stopped) return;
      const json = JSON.stringify(data);
      if (json !== page.lastJson) {
        page.lastJson = json;
        render(page, data);
      }
      page.failures = 0;
      setLive('ok', 'live');
      next = page.view.pollMs ? page.view.pollMs(data) : POLL_MS;
    } catch (e) {
      if (page.stopped || e.name === 'AbortError') return;
      if (isAuthError(e)) {
        signOut(e.message);
        return;
      }
      if (e instanceof ApiError && (e.status === 0 || e.status >= 500)) {
        // Unreachable or failing for now: keep the last data and retry, slower and slower.
        page.failures += 1;
        setLive('down', 'reconnecting');
        next = Math.min(RETRY_MAX_MS, POLL_MS * 2 ** Math.min(page.failures, 3));
        if (!page.loaded) {
          $('view').replaceChildren(
            errorPanel(e.message, h('p', null, 'The page retries by itself.')));
        }
      } else {
        // The coordinator refused this page (unknown id, bad filter): say why, stop polling.
        setLive('ok', 'live');
        $('view').replaceChildren(errorPanel(e.message));
        $('view').dataset.loaded = 'error';
        page.stopped = true;
        return;
      }
    }
    page.busy = false;
    // A hidden tab polls slowly; showing it again polls at once (kick()).
    if (document.hidden) next = Math.max(next, POLL_IDLE_MS);
    if (!page.stopped && next > 0) page.timer = setTimeout(() => tick(page), next);
  }

  function kick() {
    if (!current || current.stopped || current.busy) return;
    clearTimeout(current.timer);
    tick(current);
  }

  function render(page, data) {
    const main = $('view');
    const nodes = [page.view.render(data, page.route)].flat(Infinity)
      .filter((n) => n !== null && n !== undefined);
    main.replaceChildren(...nodes);
    main.dataset.loaded = 'true';
    page.loaded = true;
    stats.renders += 1;
    if (page.view.after) page.view.after(data, page.route, page);
  }

  // ----------------------------------------------------------------- router

  function parseHash() {
    const hash = location.hash.replace(/^#\/?/, '');
    const q = hash.indexOf('?');
    const path = q < 0 ? hash : hash.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : hash.slice(q + 1));
    const parts = path.split('/').filter(Boolean).map((p) => {
      try { return decodeURIComponent(p); } catch (e) { return p; }
    });
    return { parts, query };
  }

  function resolve() {
    const { parts, query } = parseHash();
    const [first, second, ...rest] = parts;
    if (rest.length === 0) {
      if (!first || first === 'overview') {
        if (!second) return { view: views.overview, query };
      } else if (first === 'workers' && !second) {
        return { view: views.workers, query };
      } else if (first === 'tasks') {
        return second ? { view: views.task, id: second, query } : { view: views.tasks, query };
      } else if (first === 'jobs') {
        return second ? { view: views.job, id: second, query } : { view: views.jobs, query };
      }
    }
    return { view: views.notFound, query, path: parts.join('/') };
  }

  function route() {
    if (!getToken()) return;
    showPage(resolve());
  }

  // ------------------------------------------------------------- the pages

  const TASK_STATES = ['pending', 'running', 'done'];
  const ACTIVE_JOB_STATES =
    ['TRAINING_STATE_INIT', 'TRAINING_STATE_RUNNING', 'TRAINING_STATE_EXPORTING'];

  const taskLink = (id) =>
    h('a', { href: `#/tasks/${encodeURIComponent(id)}`, class: 'mono' }, `#${id}`);
  const jobLink = (id, text) =>
    h('a', { href: `#/jobs/${encodeURIComponent(id)}` }, text || `#${id}`);

  function taskStateBadge(t) {
    return badge(enumText(t.state, 'TASK_STATE_'));
  }

  function outcomeBadge(o) {
    const text = enumText(o, 'OUTCOME_');
    return text === 'none' ? h('span', { class: 'muted' }, '—') : badge(text);
  }

  function jobStateBadge(state) {
    return badge(enumText(state, 'TRAINING_STATE_'));
  }

  function modeText(mode) {
    return enumText(mode, 'TRAIN_MODE_');
  }

  function quorumOf(policy) {
    return Math.max(1, num(policy.min_quorum));
  }

  function replicasOf(policy) {
    return Math.max(quorumOf(policy), num(policy.target_replicas));
  }

  function lastEpoch(job) {
    const h0 = job.history || [];
    return h0.length ? num(h0[h0.length - 1].epoch) : 0;
  }

  function throughputChart(o) {
    const now = num(o.now_ms);
    const pts = (o.throughput || []).map((p) => ({
      x: (num(p.t_ms) - now) / 1000, y: num(p.tasks_per_s),
    }));
    // At least the last minute, so that the first samples do not fill the width.
    const span = Math.max(60, ...pts.map((p) => -p.x));
    const minutes = span > 120;
    const series = [{
      key: 'throughput', label: 'tasks/s', markers: pts.length <= 24,
      points: pts.map((p) => ({ x: minutes ? p.x / 60 : p.x, y: p.y,
        label: `${fmtNum(p.y, 2)} tasks/s, ${fmtDuration(-p.x * 1000)} ago` })),
    }];
    return lineChart({
      id: 'throughput-chart', title: 'Tasks finished per second', series, area: true,
      xLabel: minutes ? 'minutes ago' : 'seconds ago', yLabel: 'tasks / s', yMin: 0,
      xMin: minutes ? -span / 60 : -span, xMax: 0,
      xFormat: (v) => (v === 0 ? 'now' : fmtNum(-v, 1)), yFormat: (v) => fmtNum(v, 2),
      height: 240, width: 760,
      emptyText: 'no samples yet: the coordinator samples finished tasks every few seconds',
    });
  }

  const views = {};

  views.overview = {
    name: 'overview', nav: 'overview', title: () => 'Overview',
    load: (r, signal) => api('api/overview', { signal }),
    render(o) {
      const w = o.workers || {};
      const t = o.tasks || {};
      const rep = o.replicas || {};
      const jobs = (o.jobs || []).slice().sort((a, b) => {
        const act = (j) => (ACTIVE_JOB_STATES.includes(j.state) ? 0 : 1);
        return act(a) - act(b) || num(b.id) - num(a.id);
      });
      const jobCols = [
        { label: 'Job' }, { label: 'Name' }, { label: 'Data set' }, { label: 'Mode' },
        { label: 'State' }, { label: 'Round', cls: 'num' },
        { label: 'Test accuracy', cls: 'num' },
      ];
      const jobRows = jobs.slice(0, 10).map((j) => row({ data: { jobId: j.id } }, jobCols, [
        jobLink(j.id), j.name || h('span', { class: 'muted' }, 'unnamed'), j.dataset,
        modeText(j.mode), jobStateBadge(j.state), fmtInt(j.round), fmtPercent(j.accuracy, 2),
      ]));
      return [
        pageHeader('Overview'),
        h('div', { class: 'stat-grid', id: 'overview-stats' },
          stat('Workers online', fmtInt(w.online), { id: 'stat-workers-online' },
            `${fmtInt(w.offline)} offline`),
          stat('Cores online', fmtInt(w.cores), { id: 'stat-cores' },
            num(w.gpus) ? `${fmtInt(w.gpus)} GPUs` : 'no GPUs'),
          stat('Tasks pending', fmtInt(t.pending), { id: 'stat-pending' },
            h('a', { href: '#/tasks?state=pending' }, 'show')),
          stat('Tasks running', fmtInt(t.running), { id: 'stat-running' },
            h('a', { href: '#/tasks?state=running' }, 'show')),
          stat('Tasks done', fmtInt(t.done), { id: 'stat-done' },
            `of ${fmtInt(t.total)} submitted`),
          stat('Training jobs running', fmtInt(o.jobs_running), { id: 'stat-jobs-running' },
            h('a', { href: '#/jobs' }, 'all jobs'))),
        h('div', { class: 'grid-2' },
          card('Tasks finished per second', { id: 'throughput-card' }, throughputChart(o)),
          card('Outcomes', { id: 'outcomes-card' },
            outcomeBar(t),
            facts([
              ['Succeeded', fmtInt(t.success), 'success'],
              ['App errors', fmtInt(t.app_error), 'app_error'],
              ['System errors', fmtInt(t.system_error), 'system_error'],
              ['Replicas started', fmtInt(rep.started), 'replicas'],
              ['Replicas lost', fmtInt(rep.lost), 'lost'],
              ['Results outvoted', fmtInt(rep.invalid), 'invalid'],
            ]))),
        card('Training jobs', { id: 'overview-jobs' },
          table({ id: 'overview-jobs-table' }, jobCols, jobRows,
            'no training jobs yet: start one with `artel train`')),
      ];
    },
  };

  // A stacked bar of task outcomes and unfinished tasks.
  function outcomeBar(t) {
    const parts = [
      ['success', num(t.success)], ['app error', num(t.app_error)],
      ['system error', num(t.system_error)], ['running', num(t.running)],
      ['pending', num(t.pending)],
    ];
    const total = parts.reduce((s, [, v]) => s + v, 0);
    const bar = h('div', { class: 'stack-bar', role: 'img', 'aria-label': 'tasks by outcome' });
    if (total === 0) bar.appendChild(h('div', { class: 'stack-empty' }, 'no tasks yet'));
    for (const [name, v] of parts) {
      if (v <= 0) continue;
      const seg = h('div', {
        class: `stack-seg tone-${BADGE_TONES[name]}`, title: `${name}: ${fmtInt(v)}`,
        data: { part: name, count: v },
      });
      seg.style.flexGrow = String(v);  // CSSOM, not a style attribute: fine under a strict CSP
      bar.appendChild(seg);
    }
    return bar;
  }

  views.workers = {
    name: 'workers', nav: 'workers', title: () => 'Workers',
    load: (r, signal) => api('api/workers', { signal }),
    render(data) {
      const now = num(data.now_ms);
      const workers = (data.workers || []).slice().sort((a, b) =>
        Number(b.alive) - Number(a.alive) || String(a.name).localeCompare(String(b.name)));
      const cols = [
        { label: 'Name' }, { label: 'Owner' }, { label: 'Status' }, { label: 'Last heartbeat' },
        { label: 'Resources', title: 'cores and memory lent; GPUs' },
        { label: 'Running', cls: 'num' }, { label: 'Completed', cls: 'num' },
        { label: 'Invalid', cls: 'num', title: 'results outvoted by a quorum' },
        { label: 'Errors', cls: 'num' },
        { label: 'Credit', cls: 'num', title: 'core-seconds granted for accepted results' },
        { label: 'Trusted for', title: 'app versions whose adaptive tasks it runs alone' },
        {
          label: 'Streak',
          title: 'results confirmed in a row since the last fault, per app version',
        },
      ];
      const rows = workers.map((w) => {
        const rel = w.reliability || [];
        const trusted = rel.filter((r) => r.trusted);
        const attrs = { class: w.alive ? 'worker' : 'worker offline', data: { workerId: w.id } };
        return row(attrs, cols, [
          h('div', null, h('div', { class: 'worker-name' }, w.name || w.id),
            h('div', { class: 'sub mono' }, w.id)),
          h('span', { class: 'mono' }, w.owner || '—'),
          [badge(w.alive ? 'online' : 'offline'), w.sandboxed ? null
            : h('span', { class: 'badge badge-warn', title: 'runs apps without a sandbox' },
              'unsandboxed')],
          h('span', { class: 'heartbeat', title: fmtTime(w.last_heartbeat_ms) },
            fmtAgo(w.last_heartbeat_ms, now)),
          h('div', { class: 'resources' },
            h('div', null, `${plural(w.cores, 'core')}, ${fmtBytes(w.memory_bytes)}`),
            num(w.gpus)
              ? h('div', null, `${plural(w.gpus, 'GPU')} × ${fmtBytes(w.gpu_memory_bytes)}`)
              : h('div', { class: 'sub' }, 'no GPU')),
          fmtInt(w.running), fmtInt(w.completed),
          h('span', { class: num(w.invalid) ? 'bad-text' : '' }, fmtInt(w.invalid)),
          h('span', { class: num(w.errors) ? 'warn-text' : '' }, fmtInt(w.errors)),
          fmtNum(w.credit, 1),
          trusted.length
            ? h('div', { class: 'chips' },
              trusted.map((r) => h('span', { class: 'chip ok' }, r.app)))
            : h('span', { class: 'muted' }, 'none'),
          rel.length
            ? h('div', { class: 'streaks' }, rel.map((r) => h('div', {
              title: `${r.app}: ${fmtInt(r.valid)} confirmed, ${fmtInt(r.invalid)} outvoted`,
            }, h('span', { class: 'mono' }, r.app), ' ',
            h('strong', null, fmtInt(r.consecutive_valid)))))
            : h('span', { class: 'muted' }, '—'),
        ]);
      });
      const online = workers.filter((w) => w.alive);
      return [
        pageHeader('Workers', h('span', { class: 'page-sub' },
          `${online.length} online, ${workers.length - online.length} offline, ` +
          plural(online.reduce((s, w) => s + num(w.cores), 0), 'core') + ' online')),
        card(null, null, table({ id: 'workers-table' }, cols, rows,
          'no workers yet: lend a machine with `artel worker --token T --data DIR`')),
      ];
    },
  };

  views.tasks = {
    name: 'tasks', nav: 'tasks', title: () => 'Tasks',
    state(route) {
      const s = (route.query.get('state') || '').toLowerCase();
      return TASK_STATES.includes(s) ? s : '';
    },
    limit(route) {
      const l = Number(route.query.get('limit'));
      return Number.isInteger(l) && l > 0 ? l : TASK_LIMITS[0];
    },
    load(route, signal) {
      const raw = route.query.get('state');
      const params = new URLSearchParams();
      if (raw && raw !== 'all') params.set('state', raw);
      params.set('limit', String(this.limit(route)));
      return api(`api/tasks?${params}`, { signal });
    },
    render(data, route) {
      const state = this.state(route);
      const limit = this.limit(route);
      const tasks = (data.tasks || []).slice().sort((a, b) => num(b.id) - num(a.id));
      const href = (s, l) => {
        const p = new URLSearchParams();
        if (s) p.set('state', s);
        if (l && l !== TASK_LIMITS[0]) p.set('limit', String(l));
        const q = p.toString();
        return `#/tasks${q ? `?${q}` : ''}`;
      };
      const filters = h('div', { class: 'tabs', id: 'task-filter', role: 'tablist' },
        ['', ...TASK_STATES].map((s) => h('a', {
          href: href(s, limit), class: s === state ? 'tab active' : 'tab',
          data: { state: s || 'all' }, 'aria-selected': s === state ? 'true' : 'false',
        }, s || 'all')));
      const cols = [
        { label: 'Task' },
        { label: 'Submit job', cls: 'num', title: 'the `artel submit` call it came from' },
        { label: 'App' }, { label: 'Arguments' }, { label: 'State' }, { label: 'Outcome' },
        { label: 'Quorum', cls: 'num', title: 'equivalent results needed / replicas at once' },
        { label: 'Created' }, { label: 'Finished' }, { label: 'Took', cls: 'num' },
      ];
      const rows = tasks.map((t) => {
        const spec = t.spec || {};
        const pol = spec.policy || {};
        const args = (spec.args || []).join(' ');
        const took = num(t.finished_at_ms) > 0
          ? fmtDuration(num(t.finished_at_ms) - num(t.created_at_ms)) : '—';
        const version = t.resolved_version || spec.version || 'newest';
        const attrs = {
          class: 'task', data: { taskId: t.id, state: enumText(t.state, 'TASK_STATE_') },
        };
        return row(attrs, cols, [
          taskLink(t.id), num(t.job_id) ? fmtInt(t.job_id) : '—',
          h('span', { class: 'mono' }, `${spec.app}@${version}`),
          h('span', { class: 'mono args', title: args }, args || '—'),
          taskStateBadge(t),
          h('span', { title: t.reason || '' }, outcomeBadge(t.outcome)),
          `${quorumOf(pol)} / ${replicasOf(pol)}`,
          timeCell(t.created_at_ms), timeCell(t.finished_at_ms), took,
        ]);
      });
      const more = tasks.length >= limit && limit < TASK_LIMITS[TASK_LIMITS.length - 1]
        ? h('a', { href: href(state, TASK_LIMITS[TASK_LIMITS.length - 1]), id: 'tasks-more' },
          `show up to ${fmtInt(TASK_LIMITS[TASK_LIMITS.length - 1])}`)
        : null;
      return [
        pageHeader('Tasks', h('span', { class: 'page-sub' },
          `newest ${plural(tasks.length, state ? `${state} task` : 'task')}`,
          more ? [' · ', more] : null)),
        filters,
        card(null, null, table({ id: 'tasks-table' }, cols, rows,
          state ? `no ${state} tasks` : 'no tasks yet: submit some with `artel submit`')),
      ];
    },
  };

  // Output previews and downloads ------------------------------------------

  const previews = new Map();  // "task/name/digest" -> {state, text}, oldest first
  const PREVIEW_CACHE_ENTRIES = 200;

  function outputUrl(taskId, name, replica) {
    return `api/tasks/${encodeURIComponent(taskId)}/outputs/${encodeURIComponent(name)}` +
      (replica ? `?replica=${encodeURIComponent(replica)}` : '');
  }

  function decodeText(buf) {
    const bytes = new Uint8Array(buf);
    if (bytes.includes(0)) return null;
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch (e) {
      return null;
    }
  }

  function previewBox(taskId, out) {
    const size = num(out.size);
    const key = `${taskId}/${out.name}/${out.digest}`;
    const box = h('pre', { class: 'preview', data: { output: out.name, previewKey: key } });
    if (size === 0) {
      box.classList.add('muted');
      box.textContent = '(empty)';
      return box;
    }
    if (size > PREVIEW_MAX_BYTES) {
      box.classList.add('muted');
      box.textContent = `${fmtBytes(size)}: too large to preview here; download it.`;
      return box;
    }
    fillPreview(box, previews.get(key));
    return box;
  }

  function fillPreview(box, p) {
    const state = p ? p.state : 'loading';
    box.classList.toggle('muted', state !== 'text');
    box.textContent = state === 'loading' ? 'loading…' : p.text;
    box.dataset.state = state;
  }

  // Fetches the previews the page shows and not yet cached; fills them in when they come.
  function loadPreviews(taskId, outputs, page) {
    for (const out of outputs) {
      const size = num(out.size);
      if (size === 0 || size > PREVIEW_MAX_BYTES) continue;
      const key = `${taskId}/${out.name}/${out.digest}`;
      if (previews.has(key)) continue;
      if (previews.size >= PREVIEW_CACHE_ENTRIES) previews.delete(previews.keys().next().value);
      previews.set(key, { state: 'loading' });
      api(outputUrl(taskId, out.name), { raw: true, signal: page.abort.signal }).then((buf) => {
        const text = decodeText(buf);
        previews.set(key, text === null
          ? { state: 'binary', text: 'binary data; download it to look inside' }
          : { state: 'text', text });
      }, (e) => {
        if (e.name === 'AbortError') previews.delete(key);
        else previews.set(key, { state: 'error', text: e.message });
      }).then(() => {
        for (const box of document.querySelectorAll('pre.preview')) {
          if (box.dataset.previewKey === key) fillPreview(box, previews.get(key));
        }
      });
    }
  }

  async function download(taskId, name, replica, button) {
    const label = button.textContent;
    button.disabled = true;
    button.textContent = 'downloading…';
    try {
      const buf = await api(outputUrl(taskId, name, replica), { raw: true });
      const url = URL.createObjectURL(new Blob([buf], { type: 'application/octet-stream' }));
      const a = h('a', { href: url, download: name, hidden: true });
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      button.textContent = label;
    } catch (e) {
      button.textContent = 'failed';
      button.title = e.message;
      if (isAuthError(e)) signOut(e.message);
    } finally {
      button.disabled = false;
    }
  }

  function downloadButton(taskId, name, replica) {
    return h('button', {
      type: 'button', class: 'button button-small download',
      data: { output: name, replica: replica || '' },
      onclick: (ev) => download(taskId, name, replica, ev.currentTarget),
    }, 'Download');
  }

  views.task = {
    name: 'task', nav: 'tasks', title: (r) => `Task ${r.id}`,
    async load(route, signal) {
      const [task, workers] = await Promise.all([
        api(`api/tasks/${encodeURIComponent(route.id)}`, { signal }),
        api('api/workers', { signal }).catch((e) => {
          if (e.name === 'AbortError' || isAuthError(e)) throw e;
          return { workers: [] };
        }),
      ]);
      const names = {};
      for (const w of workers.workers || []) names[w.id] = w.name;
      return { task, names };
    },
    pollMs: (d) => (d.task.state === 'TASK_STATE_DONE' ? POLL_IDLE_MS : POLL_MS),
    render({ task: t, names }) {
      const spec = t.spec || {};
      const pol = spec.policy || {};
      const res = spec.resources || {};
      const outputs = t.outputs || [];
      const replicas = (t.replicas || []).slice().sort((a, b) => num(a.id) - num(b.id));
      const workerCell = (id) => (id
        ? h('div', null, h('div', null, names[id] || id),
          names[id] ? h('div', { class: 'sub mono' }, id) : null)
        : '—');

      const specCard = card('Specification', { id: 'task-spec' }, facts([
        ['App', h('span', { class: 'mono' }, spec.app), 'app'],
        ['Version', h('span', { class: 'mono' },
          t.resolved_version || spec.version || 'newest',
          spec.version ? null : h('span', { class: 'muted' }, ' (newest when placed)')), 'version'],
        ['Arguments', (spec.args || []).length
          ? h('div', { class: 'chips' }, spec.args.map((a) => h('code', { class: 'chip arg' }, a)))
          : h('span', { class: 'muted' }, 'none'), 'args'],
        ['Inputs', (spec.inputs || []).length
          ? h('div', { class: 'chips' }, spec.inputs.map((i) =>
            h('span', { class: 'chip' }, `${i.name} (${fmtBytes(i.size)})`)))
          : h('span', { class: 'muted' }, 'none'), 'inputs'],
        ['Policy', `quorum ${quorumOf(pol)}, ${replicasOf(pol)} at once, ` +
          `at most ${fmtInt(pol.max_total_replicas || 8)} replicas ` +
          `and ${fmtInt(pol.max_error_replicas || 3)} errors` +
          (pol.adaptive
            ? `, adaptive (spot checks ${fmtPercent(pol.spot_check_rate || 0.1, 0)})` : ''),
        'policy'],
        ['Lease', `${fmtDuration(pol.lease_ms || 30000)}` +
          (num(pol.deadline_ms) ? `, deadline ${fmtDuration(pol.deadline_ms)}` : ', no deadline'),
        'lease'],
        ['Resources', `${fmtInt(res.cores || 1)} core${num(res.cores) > 1 ? 's' : ''}, ` +
          `${fmtBytes(res.memory_bytes || 268435456)}` +
          (num(res.gpu_memory_bytes) ? `, ${fmtBytes(res.gpu_memory_bytes)} GPU memory` : '') +
          (num(res.wall_time_ms) ? `, wall time ${fmtDuration(res.wall_time_ms)}` : '') +
          (res.side ? ', side slot' : ''), 'resources'],
        ['Validator', h('span', { class: 'mono' }, spec.validator || 'exact'), 'validator'],
        spec.executor
          ? ['Executor', h('span', { class: 'mono' }, spec.executor), 'executor'] : null,
        num(t.job_id) ? ['Submit job', fmtInt(t.job_id), 'job'] : null,
      ]));

      const outcomeCard = card('Outcome', { id: 'task-outcome' }, facts([
        ['State', taskStateBadge(t), 'state'],
        ['Outcome', outcomeBadge(t.outcome), 'outcome'],
        ['Reason', t.reason ? h('span', { class: 'reason' }, t.reason)
          : h('span', { class: 'muted' }, '—'), 'reason'],
        ['Canonical replica', num(t.canonical_replica) ? `#${t.canonical_replica}` : '—',
          'canonical'],
        t.unverified ? ['Verified', h('span', { class: 'warn-text' },
          'no: one trusted replica; another replica checks it later'), 'unverified'] : null,
        num(t.reopened)
          ? ['Re-opened', `${plural(t.reopened, 'time')} for re-validation`, 'reopened'] : null,
        ['Created', timeCell(t.created_at_ms), 'created'],
        ['Finished', num(t.finished_at_ms) ? [timeCell(t.finished_at_ms), ' (',
          fmtDuration(num(t.finished_at_ms) - num(t.created_at_ms)), ')'] : '—', 'finished'],
      ]));

      const outputsCard = card('Outputs of the canonical result', { id: 'task-outputs' },
        outputs.length === 0
          ? h('p', { class: 'muted', id: 'no-outputs' }, t.state === 'TASK_STATE_DONE'
            ? 'This task has no accepted result.' : 'No accepted result yet.')
          : h('div', { class: 'outputs' }, outputs.map((o) => h('div', {
            class: 'output', data: { output: o.name },
          },
            h('div', { class: 'output-head' },
              h('span', { class: 'mono output-name' }, o.name),
              h('span', { class: 'muted output-size' }, fmtBytes(o.size)),
              h('span', { class: 'mono muted output-digest', title: `SHA-256 ${o.digest}` },
                String(o.digest).slice(0, 12)),
              downloadButton(t.id, o.name)),
            previewBox(t.id, o)))));

      const repCols = [
        { label: 'Replica' }, { label: 'Worker' }, { label: 'Owner' }, { label: 'State' },
        { label: 'Result' }, { label: 'Validity' }, { label: 'Exit', cls: 'num' },
        { label: 'Runtime', cls: 'num' }, { label: 'Credit', cls: 'num' }, { label: 'Outputs' },
        { label: 'Error' },
      ];
      const repRows = replicas.map((r) => row({
        class: 'replica', data: { replicaId: r.id, state: enumText(r.state, 'REPLICA_STATE_') },
      }, repCols, [
        h('span', { class: 'mono' }, `#${r.id}`, num(r.id) === num(t.canonical_replica)
          ? h('span', { class: 'badge badge-ok canon' }, 'canonical') : null),
        workerCell(r.worker_id),
        h('span', { class: 'mono' }, r.owner || '—'),
        [badge(enumText(r.state, 'REPLICA_STATE_')),
          r.abandoned ? h('span', { class: 'muted' }, ' abandoned') : null],
        r.result && r.result !== 'RESULT_KIND_UNSPECIFIED'
          ? badge(enumText(r.result, 'RESULT_KIND_')) : '—',
        r.validity && r.validity !== 'VALIDITY_UNKNOWN'
          ? badge(enumText(r.validity, 'VALIDITY_')) : '—',
        r.state === 'REPLICA_STATE_REPORTED' ? String(r.exit_code) : '—',
        num(r.runtime_ms) ? fmtDuration(r.runtime_ms) : '—',
        num(r.credit) ? fmtNum(r.credit, 2) : '—',
        (r.outputs || []).length ? h('div', { class: 'output-list' }, r.outputs.map((o) =>
          h('span', { class: 'output-item', data: { output: o.name } },
            h('button', {
              type: 'button', class: 'link-button mono',
              title: `download ${o.name} of replica ${r.id}`,
              onclick: (ev) => download(t.id, o.name, r.id, ev.currentTarget),
            }, o.name), ' ', h('span', { class: 'muted' }, fmtBytes(o.size)))))
          : h('span', { class: 'muted' }, '—'),
        r.error ? h('span', { class: 'bad-text reason' }, r.error) : '',
      ]));

      return [
        pageHeader(`Task #${t.id}`, taskStateBadge(t),
          t.outcome && t.outcome !== 'OUTCOME_NONE' ? outcomeBadge(t.outcome) : null,
          h('a', { href: '#/tasks', class: 'page-back' }, '← all tasks')),
        h('div', { class: 'grid-2' }, specCard, outcomeCard),
        outputsCard,
        card(`Replicas (${replicas.length})`, { id: 'task-replicas' },
          table({ id: 'replicas-table' }, repCols, repRows, 'no replica placed yet')),
      ];
    },
    after({ task }, route, page) {
      loadPreviews(task.id, task.outputs || [], page);
    },
  };

  views.jobs = {
    name: 'jobs', nav: 'jobs', title: () => 'Training jobs',
    load: (r, signal) => api('api/jobs', { signal }),
    render(data) {
      const jobs = (data.jobs || []).slice().sort((a, b) => num(b.id) - num(a.id));
      const cols = [{ label: 'Job' }, { label: 'Name' }, { label: 'Data set' }, { label: 'Mode' },
        { label: 'Workers', cls: 'num' }, { label: 'State' }, { label: 'Round', cls: 'num' },
        { label: 'Epoch', cls: 'num' }, { label: 'Test accuracy', cls: 'num' },
        { label: 'Samples seen', cls: 'num' }, { label: 'Created' }];
      const rows = jobs.map((j) => {
        const spec = j.spec || {};
        const attrs = {
          class: 'job', data: { jobId: j.id, state: enumText(j.state, 'TRAINING_STATE_') },
        };
        return row(attrs, cols, [
          jobLink(j.id), jobLink(j.id, spec.name || 'unnamed'), spec.dataset, modeText(spec.mode),
          fmtInt(spec.workers), [jobStateBadge(j.state),
            j.reason ? h('div', { class: 'sub reason' }, j.reason) : null],
          fmtInt(j.round) + (num(spec.rounds) ? ` / ${fmtInt(spec.rounds)}` : ''),
          fmtFixed(lastEpoch(j), 2) + (num(spec.epochs) ? ` / ${fmtInt(spec.epochs)}` : ''),
          fmtPercent(j.accuracy, 2), fmtInt(j.samples_seen), timeCell(j.created_at_ms)]);
      });
      return [
        pageHeader('Training jobs', h('span', { class: 'page-sub' },
          `${fmtInt(jobs.filter((j) => ACTIVE_JOB_STATES.includes(j.state)).length)} running, ` +
          `${fmtInt(jobs.length)} in all`)),
        card(null, null, table({ id: 'jobs-table' }, cols, rows,
          'no training jobs yet: start one with `artel train --model M.pt --data D`')),
      ];
    },
  };

  function jobCharts(job) {
    const hist = job.history || [];
    const loss = hist.filter((r) => Number.isFinite(num(r.loss))).map((r) => ({
      x: num(r.round), y: num(r.loss), round: r.round,
      label: `round ${r.round}: training loss ${fmtNum(r.loss, 4)}`,
    }));
    const evaluated = hist.filter((r) => num(r.accuracy) >= 0);
    const testLoss = evaluated.filter((r) => num(r.test_loss) > 0).map((r) => ({
      x: num(r.round), y: num(r.test_loss), round: r.round,
      label: `round ${r.round}: test loss ${fmtNum(r.test_loss, 4)}`,
    }));
    const acc = evaluated.map((r) => ({
      x: num(r.round), y: num(r.accuracy), round: r.round,
      label: `round ${r.round}: test accuracy ${fmtPercent(r.accuracy, 2)}`,
    }));
    const rounds = hist.map((r) => num(r.round));
    const xMin = rounds.length ? Math.min(...rounds) : 0;
    const xMax = Math.max(xMin + 1, ...rounds);
    const lossSeries = [{ key: 'loss', label: 'training loss', points: loss }];
    if (testLoss.length) {
      lossSeries.push({ key: 'test_loss', label: 'test loss', points: testLoss, dashed: true });
    }
    const accSeries = [{ key: 'accuracy', label: 'test accuracy', points: acc }];
    const target = num(job.spec && job.spec.target_accuracy);
    return h('div', { class: 'grid-2 charts' },
      card('Loss per round', { id: 'loss-card' },
        legend(lossSeries),
        lineChart({
          id: 'loss-chart', title: 'Loss per round', series: lossSeries,
          xLabel: 'round', yLabel: 'loss',
          xInteger: true, xMin, xMax,
          yMin: 0, yFormat: (v) => fmtNum(v, 3), xFormat: (v) => fmtInt(v),
          emptyText: 'waiting for the first round',
        })),
      card('Test accuracy per round', { id: 'accuracy-card' },
        legend(accSeries),
        lineChart({
          id: 'accuracy-chart', title: 'Test accuracy per round', series: accSeries,
          xLabel: 'round', yLabel: 'test accuracy', xInteger: true,
          xMin, xMax,
          yClamp: [0, 1], yFormat: (v) => `${fmtNum(v * 100, 1)} %`, xFormat: (v) => fmtInt(v),
          emptyText: 'waiting for the first evaluation',
        }),
        target > 0 ? h('p', { class: 'muted chart-note' },
          `stops once test accuracy reaches ${fmtPercent(target, 1)}`) : null));
  }

  views.job = {
    name: 'job', nav: 'jobs', title: (r) => `Training job ${r.id}`,
    async load(route, signal) {
      const job = await api(`api/jobs/${encodeURIComponent(route.id)}`, { signal });
      let names = {};
      if ((job.excluded || []).length) {
        const w = await api('api/workers', { signal }).catch((e) => {
          if (e.name === 'AbortError' || isAuthError(e)) throw e;
          return { workers: [] };
        });
        names = Object.fromEntries((w.workers || []).map((x) => [x.id, x.name]));
      }
      // The browser's clock for a running job's elapsed time (the answer has none);
      // it also re-renders the page on every poll, so that time moves.
      const now = ACTIVE_JOB_STATES.includes(job.state) ? Date.now() : 0;
      return { job, names, now };
    },
    pollMs: (d) => (ACTIVE_JOB_STATES.includes(d.job.state) ? POLL_MS : POLL_IDLE_MS),
    render({ job, names, now }) {
      const spec = job.spec || {};
      const hist = job.history || [];
      const last = hist.length ? hist[hist.length - 1] : null;
      const active = ACTIVE_JOB_STATES.includes(job.state);
      const started = num(job.running_since_ms) || num(job.created_at_ms);
      const ended = num(job.finished_at_ms) ||
        (active ? now : num(last && last.finished_at_ms));
      const lastEval = hist.slice().reverse().find((r) => num(r.accuracy) >= 0);

      const tiles = h('div', { class: 'stat-grid', id: 'job-stats' },
        stat('Round', valueOf(fmtInt(job.round), num(spec.rounds) ? fmtInt(spec.rounds) : ''),
          { id: 'job-round', data: { value: job.round } }, `${hist.length} recorded`),
        stat('Epoch',
          valueOf(fmtFixed(lastEpoch(job), 2), num(spec.epochs) ? fmtInt(spec.epochs) : ''),
          { id: 'job-epoch' }, 'passes over the data'),
        stat('Test accuracy', fmtPercent(job.accuracy, 2), { id: 'job-accuracy' },
          lastEval ? `after round ${lastEval.round}` : 'not evaluated yet'),
        stat('Training loss', last ? fmtFixed(last.loss, 4) : '—', { id: 'job-loss' },
          last ? `round ${last.round}` : ''),
        stat('Samples seen', fmtInt(job.samples_seen), { id: 'job-samples' },
          last ? `${fmtInt(last.samples_per_s)} samples/s last round` : ''),
        stat('Bytes moved', fmtBytes(job.bytes_moved), { id: 'job-bytes' },
          'parameters and updates'),
        stat('Compute utilization',
          num(job.compute_utilization) > 0 ? fmtPercent(job.compute_utilization, 1) : '—',
          { id: 'job-utilization' }, 'training compute ÷ (time × workers)'),
        stat('Time', started > 0 && ended > started ? fmtDuration(ended - started) : '—',
          { id: 'job-time' },
          active ? 'running' : job.state === 'TRAINING_STATE_DONE' ? 'to finish' : ''));

      const settings = card('Settings', { id: 'job-settings' }, facts([
        ['Data set', spec.dataset, 'dataset'],
        ['Mode', modeText(spec.mode), 'mode'],
        ['Tasks per round', fmtInt(spec.workers), 'workers'],
        ['Batch size', fmtInt(spec.batch_size), 'batch'],
        ['Optimizer', `${spec.optimizer}, lr ${fmtNum(spec.lr, 5)}` +
          (spec.lr_scale && spec.lr_scale !== 'none' ? ` (${spec.lr_scale} scaling)` : ''),
        'optimizer'],
        spec.mode === 'TRAIN_MODE_LOCAL'
          ? ['Local steps', `${fmtInt(spec.local_steps)}, outer lr ${fmtNum(spec.outer_lr, 3)}, ` +
            `outer momentum ${fmtNum(spec.outer_momentum, 3)}, inner state ${spec.inner_state}`,
          'local'] : null,
        ['Aggregation', spec.aggregate || 'mean', 'aggregate'],
        ['Compression', spec.compress || 'none', 'compress'],
        ['Quorum', fmtInt(spec.quorum || 1), 'quorum'],
        ['Evaluate every', plural(spec.eval_every, 'round'), 'eval'],
        ['Stops after', [num(spec.rounds) ? `${fmtInt(spec.rounds)} rounds` : null,
          num(spec.epochs) ? `${fmtInt(spec.epochs)} epochs` : null,
          num(spec.target_accuracy) ? `test accuracy ${fmtPercent(spec.target_accuracy, 1)}` : null]
          .filter(Boolean).join(' or ') || '1 epoch', 'stop'],
        ['App', h('span', { class: 'mono' },
          spec.app + (spec.app_version ? `@${spec.app_version}` : '')), 'app'],
        ['Created', timeCell(job.created_at_ms), 'created'],
        ['Finished', timeCell(job.finished_at_ms), 'finished'],
      ]));

      const excluded = job.excluded || [];
      const exCols = [{ label: 'Worker' }, { label: 'After round', cls: 'num' }, { label: 'Why' }];
      const excludedCard = card(`Excluded workers (${excluded.length})`, { id: 'job-excluded' },
        excluded.length
          ? table({ id: 'excluded-table' }, exCols, excluded.map((e) => row({
            data: { workerId: e.worker_id },
          }, exCols, [
            h('div', null, names[e.worker_id] || e.worker_id,
              names[e.worker_id] ? h('div', { class: 'sub mono' }, e.worker_id) : null),
            fmtInt(e.round), h('span', { class: 'reason' }, e.reason)])))
          : h('p', { class: 'muted' }, 'None: every worker\'s updates were accepted.'));

      const rCols = [{ label: 'Round', cls: 'num' }, { label: 'Epoch', cls: 'num' },
        { label: 'Loss', cls: 'num' }, { label: 'Test acc.', cls: 'num' },
        { label: 'Test loss', cls: 'num' }, { label: 'Samples', cls: 'num' },
        { label: 'Samples/s', cls: 'num' }, { label: 'Bytes', cls: 'num' },
        { label: 'Compute', cls: 'num', title: 'training compute of the round\'s tasks' },
        { label: 'Took', cls: 'num', title: 'from submitting the round to closing it' }];
      const recent = hist.slice(-12).reverse();
      const roundsCard = card(`Last rounds (${recent.length} of ${hist.length})`,
        { id: 'job-rounds' },
        table({ id: 'rounds-table' }, rCols, recent.map((r) => row({
          data: { round: r.round },
        }, rCols, [
          h('span', { title: `finished ${fmtTime(r.finished_at_ms)}` }, fmtInt(r.round)),
          fmtFixed(r.epoch, 2), fmtFixed(r.loss, 4),
          num(r.accuracy) >= 0 ? fmtPercent(r.accuracy, 2) : h('span', { class: 'muted' }, '—'),
          num(r.accuracy) >= 0 ? fmtFixed(r.test_loss, 4) : h('span', { class: 'muted' }, '—'),
          fmtInt(r.samples), fmtInt(r.samples_per_s), fmtBytes(r.bytes_moved),
          fmtDuration(r.compute_ms),
          num(r.started_at_ms) > 0 && num(r.finished_at_ms) > 0
            ? fmtDuration(num(r.finished_at_ms) - num(r.started_at_ms)) : '—',
        ])), 'no round finished yet'));

      return [
        pageHeader(`Training job #${job.id}`, h('span', { class: 'job-name' }, spec.name || ''),
          jobStateBadge(job.state), h('a', { href: '#/jobs', class: 'page-back' }, '← all jobs')),
        job.reason ? h('div', {
          id: 'job-reason',
          class: job.state === 'TRAINING_STATE_FAILED' ? 'notice notice-bad' : 'notice',
        }, job.reason) : null,
        tiles,
        jobCharts(job),
        h('div', { class: 'grid-wide' },
          roundsCard, h('div', { class: 'stack' }, settings, excludedCard)),
      ];
    },
  };

  views.notFound = {
    name: 'not-found', nav: '', title: () => 'Not found',
    load: (route) => Promise.reject(new ApiError(404, 'NOT_FOUND',
      `There is no page '#/${route.path}'. The dashboard has #/overview, #/workers, #/tasks, ` +
      '#/tasks/ID, #/jobs and #/jobs/ID.')),
    render: () => [],
  };

  // ---------------------------------------------------------------- session

  // message: why the form shows (the coordinator's refusal, or a notice).
  function showSignIn(message, notice) {
    stopPolling();
    document.body.dataset.view = 'signin';
    document.title = 'Sign in · artel';
    $('nav').hidden = true;
    $('session').hidden = true;
    const input = h('input', {
      id: 'token-input', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false',
      placeholder: 'artel_…', required: true, 'aria-label': 'token',
    });
    const error = h('p', {
      id: 'signin-error', class: notice ? 'signin-notice' : 'signin-error', role: 'alert',
      hidden: !message,
    }, message || '');
    const button = h('button', { type: 'submit', class: 'button', id: 'signin-button' }, 'Sign in');
    const form = h('form', { id: 'signin-form', class: 'signin card', autocomplete: 'off' },
      h('h1', null, 'Sign in'),
      h('p', { class: 'muted' },
        'The dashboard shows this grid\'s workers, tasks and training jobs. ' +
        'It needs an admin or a submitter token:'),
      h('ul', { class: 'muted hints' },
        h('li', null, 'the admin token: ', h('code', null, 'cat DATA/admin.token'),
          ' on the coordinator\'s host;'),
        h('li', null, 'or a submitter token: ',
          h('code', null, 'artel token create --role submitter'), '.')),
      h('label', { for: 'token-input' }, 'Token'),
      input, error, button,
      h('p', { class: 'muted small' },
        'The token stays in this browser tab only and is forgotten when you close it ' +
        'or sign out.'));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const token = input.value.trim();
      const fail = (text) => {
        error.className = 'signin-error';
        error.textContent = text;
        error.hidden = false;
        button.disabled = false;
        input.focus();
      };
      if (!token) return fail('Paste a token first.');
      if (!/^[\x21-\x7e]+$/.test(token)) {
        return fail('A token has no spaces or special characters; paste it again.');
      }
      button.disabled = true;
      error.hidden = true;
      try {
        const session = await api('api/session', { token });
        sessionStorage.setItem(TOKEN_KEY, token);
        signedIn(session.role);
      } catch (e) {
        fail(e.message);
      }
    });
    $('view').dataset.loaded = 'true';
    $('view').replaceChildren(h('div', { class: 'signin-wrap' }, form));
    input.focus();
  }

  function signedIn(role) {
    $('nav').hidden = false;
    $('session').hidden = false;
    $('role').textContent = role || '';
    $('role').hidden = !role;
    setLive('idle', 'connecting');
    if (!role) {
      // A token kept from before a reload: ask whose it is (the page itself
      // signs out if the coordinator no longer takes it).
      const token = getToken();
      api('api/session').then((s) => {
        if (getToken() !== token) return;
        $('role').textContent = s.role;
        $('role').hidden = false;
      }, (e) => {
        if (isAuthError(e) && getToken() === token) signOut(e.message);
      });
    }
    if (!location.hash || location.hash === '#' || location.hash === '#/') {
      history.replaceState(null, '', '#/overview');
    }
    route();
  }

  function signOut(message, notice) {
    stopPolling();
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn(message, notice);
  }

  window.addEventListener('hashchange', route);
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) kick();
  });
  document.addEventListener('DOMContentLoaded', () => {
    $('signout').addEventListener('click',
      () => signOut('You signed out. Sign in again to see the grid.', true));
    if (getToken()) signedIn('');
    else showSignIn('');
  });
})();
