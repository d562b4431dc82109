// Grace's dashboard: plain JavaScript, no framework, nothing from elsewhere.
// It signs in with the session cookie (POST /auth/login) and then calls
// the API like any client: JSON bodies, so the CSRF rules of the cookie
// hold (docs/dashboard.md). Kernel tiles follow GET /dashboard/events
// (Server-Sent Events); the other pages are read when shown. Text from
// the server is only ever set as text (textContent), never as markup.
'use strict';
(function () {
  const PAGES = ['kernels', 'incidents', 'alerts', 'metrics', 'traces', 'audit'];
  const TITLES = { kernels: 'Kernels', incidents: 'Incidents', alerts: 'Alerts', metrics: 'Metrics',
    traces: 'Traces', audit: 'Audit trail', signin: 'Sign in' };
  const state = { user: null, kernels: new Map(), seen: new Map(), es: null, page: null, reload: null };
  const $ = (id) => document.getElementById(id);

  // An element: h('td', {className: 'x'}, 'text', child, ...).
  function h(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const k in props || {}) {
      if (k.startsWith('data-') || k.startsWith('aria-')) e.setAttribute(k, props[k]);
      else e[k] = props[k];
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  async function api(method, path, body) {
    const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (method !== 'GET') {
      // The session cookie changes state only with a JSON body (auth/csrf.h).
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body === undefined ? {} : body);
    }
    let r;
    try {
      r = await fetch(path, init);
    } catch (e) {
      return { status: 0, ok: false, data: { error: { message: 'no answer from Grace' } } };
    }
    let data = null;
    if ((r.headers.get('Content-Type') || '').includes('json')) data = await r.json().catch(() => null);
    if (r.status === 401 && state.user) showSignin('Your session ended: sign in again.');
    return { status: r.status, ok: r.ok, data };
  }
  const errText = (res) => (res.data && res.data.error && res.data.error.message) || ('HTTP ' + res.status);
  const say = (text) => { $('status').textContent = text; };
  const isAdmin = () => state.user && state.user.role === 'admin';

  function when(ms) {
    if (!ms) return '';
    const d = new Date(ms);
    return d.toLocaleString(undefined, { hour12: false });
  }
  function duration(s) {
    if (s === null || s === undefined) return '–';
    s = Math.max(0, Math.floor(s));
    const d = Math.floor(s / 86400), hh = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    if (d) return `${d}d ${hh}h`;
    if (hh) return `${hh}h ${m}m`;
    if (m) return `${m}m ${s % 60}s`;
    return `${s}s`;
  }
  const ms = (v) => (typeof v === 'number' ? (v < 10 ? v.toFixed(1) : v.toFixed(0)) + ' ms' : '–');

  // ---- signing in and out

  function showOnly(page) {
    for (const p of PAGES.concat('signin')) $('page-' + p).hidden = p !== page;
    for (const a of document.querySelectorAll('#nav a'))
      if (a.dataset.page === page) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    document.title = 'Grace: ' + TITLES[page];
  }

  function closeFeed() {
    if (state.es) state.es.close();
    state.es = null;
    setFeed(false);
  }

  function showSignin(message) {
    state.user = null;
    closeFeed();
    $('nav').hidden = true;
    $('who').hidden = true;
    showOnly('signin');
    $('signin-error').textContent = message || '';
    $('username').focus();
  }

  function signedIn(user) {
    state.user = user;
    $('who-name').textContent = `${user.name} (${user.role})`;
    $('who').hidden = false;
    $('nav').hidden = false;
    for (const a of document.querySelectorAll('#nav a[data-admin]')) a.parentElement.hidden = !isAdmin();
    openFeed();
    route();
  }

  async function boot() {
    const res = await api('GET', '/dashboard/session');
    if (res.ok && res.data && res.data.signed_in) signedIn(res.data.user);
    else showSignin(res.ok ? '' : errText(res));
  }

  $('signin-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const button = e.target.querySelector('button');
    button.disabled = true;
    $('signin-error').textContent = '';
    const res = await api('POST', '/auth/login', { username: $('username').value, password: $('password').value });
    button.disabled = false;
    $('password').value = '';
    if (!res.ok) {
      $('signin-error').textContent = res.status === 401 ? 'Wrong user name or password.' : errText(res);
      $('password').focus();
      return;
    }
    await boot();
    $('main').focus();
  });

  $('signout').addEventListener('click', async () => {
    await api('POST', '/auth/logout');
    showSignin('Signed out.');
  });

  // ---- pages

  function route() {
    if (!state.user) return;
    let page = (location.hash.match(/^#\/([a-z]+)/) || [])[1];
    state.traceId = (location.hash.match(/^#\/traces\/([0-9a-f]{32})$/) || [])[1] || null;
    if (!PAGES.includes(page) || (page === 'audit' && !isAdmin())) page = 'kernels';
    state.page = page;
    showOnly(page);
    LOADERS[page]();
  }
  window.addEventListener('hashchange', () => { route(); $('main').focus(); });

  const kernelReady = (name) => {
    const k = state.kernels.get(name);
    return k && k.state === 'ready';
  };
  function notRunning(box, name, what) {
    const k = state.kernels.get(name);
    box.replaceChildren(h('p', { className: 'muted' },
      k ? `${what}: the ${name} kernel is ${k.state}; this page fills once it is ready.`
        : `${what}: no ${name} kernel is configured.`));
  }

  // ---- kernels: tiles, live

  // A kernel whose process went away unasked (a crash, a kill, a missed
  // watchdog) is down until it is ready again, even while a standby takes
  // over (the supervisor then goes straight to "starting").
  const UNPLANNED = new Set(['exit', 'watchdog', 'timeout', 'spawn_failed', 'bad_command', 'bind_failed']);
  function markDown(k, before) {
    const was = (before && before.down) || false;
    if (k.state === 'ready') k.down = false;
    else if (!k.cause) k.down = was; // a guardian change: the process is where it was
    else if (UNPLANNED.has(k.cause) && k.from !== 'stopping') k.down = k.cause;
    else if (['start', 'stop', 'restart'].includes(k.cause)) k.down = false;
    else k.down = was;
  }

  // The tile's colour from the supervisor's state and the guardian's.
  function colorOf(k) {
    if (k.down) return 'red';
    if (k.state === 'ready') {
      if (k.health === 'unhealthy' || k.health === 'storage_failed') return 'red';
      return k.health === 'degraded' ? 'amber' : 'green';
    }
    if (k.state === 'starting' || k.state === 'stopping') return 'amber';
    if (k.state === 'stopped') return 'grey';
    return 'red'; // restarting, failed, port_unavailable
  }

  function row(dl, label, value) {
    dl.append(h('dt', {}, label), h('dd', {}, value));
  }

  function renderTile(li, k) {
    const color = colorOf(k);
    li.dataset.color = color;
    li.dataset.state = k.state;
    li.dataset.pid = k.pid === null ? '' : String(k.pid);
    let badgeText = k.state;
    if (k.down) badgeText += ` (after ${k.down})`;
    else if (k.state === 'ready' && k.health && k.health !== 'ready') badgeText += ` (${k.health})`;
    const badge = h('span', { className: 'badge' }, badgeText);
    const head = h('h3', { id: 'tile-' + k.name }, k.name, badge);
    const dl = h('dl');
    row(dl, 'Health', k.health || '–');
    row(dl, 'PID', k.pid === null ? '–' : String(k.pid));
    const up = h('dd', { className: 'uptime' }, duration(k.uptime_s));
    dl.append(h('dt', {}, 'Uptime'), up);
    row(dl, 'Restarts', String(k.restarts));
    row(dl, 'Port', String(k.port));
    if (typeof k.trust_score === 'number') row(dl, 'Trust', k.trust_score.toFixed(2));
    if (k.state !== 'ready' && k.last_exit) row(dl, 'Last exit', k.last_exit);
    const parts = [head, dl];
    if (isAdmin()) {
      const actions = h('div', { className: 'actions', role: 'group', 'aria-label': `Actions on ${k.name}` });
      const running = k.state === 'ready' || k.state === 'starting';
      for (const [action, label, enabled] of [['restart', 'Restart', true], ['stop', 'Stop', k.state !== 'stopped'],
        ['start', 'Start', !running], ['heal', 'Heal', true]]) {
        const b = h('button', { type: 'button', disabled: !enabled, 'aria-label': `${label} ${k.name}` }, label);
        b.dataset.action = action;
        b.addEventListener('click', () => act(k.name, action, b));
        actions.append(b);
      }
      parts.push(actions);
    }
    li.replaceChildren(...parts);
  }

  function tileOf(name) {
    return document.querySelector(`#tiles li[data-kernel="${CSS.escape(name)}"]`);
  }

  function updateTile(k) {
    let li = tileOf(k.name);
    if (!li) {
      li = h('li', { className: 'tile', 'aria-labelledby': 'tile-' + k.name });
      li.dataset.kernel = k.name;
      $('tiles').append(li);
    }
    // A button that has the focus keeps it when its tile is redrawn.
    const focused = li.contains(document.activeElement) ? document.activeElement.dataset.action : null;
    renderTile(li, k);
    if (focused) {
      const b = li.querySelector(`button[data-action="${focused}"]`);
      if (b && !b.disabled) b.focus();
    }
    summary();
  }

  function summary() {
    let ready = 0;
    for (const k of state.kernels.values()) ready += k.state === 'ready';
    $('kernels-summary').textContent = `${ready} of ${state.kernels.size} ready`;
  }

  function renderTiles() {
    $('tiles').replaceChildren();
    for (const k of state.kernels.values()) updateTile(k);
  }

  // Uptimes count on between events.
  setInterval(() => {
    for (const [name, k] of state.kernels) {
      const li = tileOf(name), at = state.seen.get(name);
      const dd = li && li.querySelector('.uptime');
      if (dd && k.pid !== null && typeof k.uptime_s === 'number')
        dd.textContent = duration(k.uptime_s + (Date.now() - at) / 1000);
    }
  }, 1000);

  function keep(k) {
    state.kernels.set(k.name, k);
    state.seen.set(k.name, Date.now());
  }

  function setFeed(open) {
    $('feed').dataset.feed = open ? 'open' : 'closed';
    $('feed').textContent = open ? 'live' : 'feed closed';
  }

  function openFeed() {
    if (state.es) return;
    const es = new EventSource('/dashboard/events');
    state.es = es;
    es.addEventListener('open', () => setFeed(true));
    es.addEventListener('error', () => {
      setFeed(false);
      // Closed for good (the session ended: not an event stream): ask again.
      if (es.readyState === EventSource.CLOSED && state.es === es) {
        state.es = null;
        setTimeout(boot, 2000);
      }
    });
    es.addEventListener('snapshot', (e) => {
      state.kernels.clear();
      for (const k of JSON.parse(e.data).kernels) keep(k);
      renderTiles();
      if (state.page !== 'kernels') LOADERS[state.page]();
    });
    es.addEventListener('kernel', (e) => {
      const k = JSON.parse(e.data);
      markDown(k, state.kernels.get(k.name));
      keep(k);
      updateTile(k);
      // The incidents page follows the healer's runs. (Transitions are not
      // announced in the status line: a screen reader would hear every one.)
      if (k.from && k.state !== k.from && state.page === 'incidents') soon(loadIncidents);
    });
  }

  function soon(fn) {
    clearTimeout(state.reload);
    state.reload = setTimeout(fn, 500);
  }

  async function act(name, action, button) {
    button.disabled = true;
    say(`${action} ${name}…`);
    const res = action === 'heal'
      ? await api('POST', '/network-healer/heal', { component_name: name })
      : await api('POST', `/kernel-ports/${encodeURIComponent(name)}/${action}`);
    button.disabled = false;
    if (!res.ok) say(`${action} ${name}: ${errText(res)}`);
    else if (action === 'heal') say(`heal ${name}: ${res.data.outcome || 'done'} (incident ${res.data.id})`);
    else say(`${action} ${name}: accepted`);
  }

  // ---- incidents

  async function loadIncidents() {
    const box = $('incidents');
    const res = await api('GET', '/network-healer/incidents?limit=25');
    if (!res.ok) { box.replaceChildren(h('p', { className: 'error' }, errText(res))); return; }
    const list = res.data.incidents;
    if (!list.length) { box.replaceChildren(h('p', { className: 'muted' }, 'No incidents: the healer has not run.')); return; }
    box.replaceChildren(...list.map((inc, i) => {
      const outcome = inc.outcome || 'running';
      const sum = h('summary', {}, `#${inc.id} ${inc.component} — ${inc.playbook || inc.requested_action || 'diagnosing'} — `,
        h('span', { className: outcome === 'healed' ? 'ok' : outcome }, outcome),
        ` — ${when(inc.started_ms)}`, typeof inc.duration_ms === 'number' ? ` — ${ms(inc.duration_ms)}` : '');
      const steps = h('table', { className: 'steps' },
        h('caption', { className: 'muted' }, `Trigger: ${inc.trigger}`),
        h('thead', {}, h('tr', {}, ...['Step', 'At', 'Took', 'Result', 'Detail'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, ...(inc.steps || []).map((s) => h('tr', {},
          h('td', {}, s.step), h('td', {}, ms(s.at_ms)), h('td', {}, ms(s.duration_ms)),
          h('td', { className: s.result }, s.result), h('td', {}, s.detail || '')))));
      return h('details', { open: i === 0 }, sum, h('div', { className: 'scroll' }, steps)); // the newest open
    }));
  }

  // ---- alerts and silences

  function table(head, rows) {
    return h('div', { className: 'scroll' }, h('table', {},
      h('thead', {}, h('tr', {}, ...head.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, ...rows.map((r) => h('tr', {}, ...r.map((c) => h('td', {}, c)))))));
  }

  async function loadAlerts() {
    if (!kernelReady('alerts')) { notRunning($('alerts'), 'alerts', 'Alerts'); $('silences').replaceChildren(); return; }
    const [a, s] = await Promise.all([api('GET', '/alertmanager/api/v2/alerts'), api('GET', '/alertmanager/api/v2/silences')]);
    if (!a.ok) $('alerts').replaceChildren(h('p', { className: 'error' }, errText(a)));
    else if (!a.data.length) $('alerts').replaceChildren(h('p', { className: 'muted' }, 'No alerts are firing.'));
    else $('alerts').replaceChildren(table(['Alert', 'State', 'Severity', 'Since', 'Summary'], a.data.map((x) => [
      x.labels.alertname || '', x.status ? x.status.state : '', x.labels.severity || '', when(Date.parse(x.startsAt)),
      (x.annotations && (x.annotations.summary || x.annotations.description)) || ''])));
    if (!s.ok) { $('silences').replaceChildren(h('p', { className: 'error' }, errText(s))); return; }
    if (!s.data.length) { $('silences').replaceChildren(h('p', { className: 'muted' }, 'No silences.')); return; }
    $('silences').replaceChildren(table(['Matchers', 'State', 'Ends', 'By', 'Comment', ''], s.data.map((x) => {
      const m = (x.matchers || []).map((y) => `${y.name}${y.isEqual === false ? '!' : ''}${y.isRegex ? '~' : '='}"${y.value}"`).join(', ');
      let expire = '';
      if (isAdmin() && x.status && x.status.state !== 'expired') {
        expire = h('button', { type: 'button', 'aria-label': `Expire the silence ${m}` }, 'Expire');
        expire.addEventListener('click', async () => {
          const res = await api('DELETE', `/alertmanager/api/v2/silence/${encodeURIComponent(x.id)}`);
          say(res.ok ? 'Silence expired.' : errText(res));
          loadAlerts();
        });
      }
      return [m, x.status ? x.status.state : '', when(Date.parse(x.endsAt)), x.createdBy || '', x.comment || '', expire];
    })));
  }

  // ---- metrics

  const CHARTS = [
    { title: 'Requests per second, by process', unit: '', query: 'sum by (instance) (rate(grace_http_requests_total[1m]))', label: 'instance' },
    { title: 'Latency, 95th percentile', unit: 's', query: 'histogram_quantile(0.95, sum by (le, instance) (rate(grace_http_request_duration_seconds_bucket[1m])))', label: 'instance' },
    { title: 'Kernel restarts (total since start)', unit: '', query: 'sum by (kernel) (grace_kernel_restarts_total)', label: 'kernel', nonzero: true },
  ];

  async function loadMetrics() {
    const box = $('charts');
    if (!kernelReady('metrics')) { notRunning(box, 'metrics', 'Charts'); return; }
    // The last 15 minutes, or since the metrics kernel started when that
    // is less (a young server's charts are not a flat line and a dot).
    const m = state.kernels.get('metrics');
    const age = m && typeof m.uptime_s === 'number' ? m.uptime_s + (Date.now() - state.seen.get('metrics')) / 1000 : 900;
    const span = Math.round(Math.min(900, Math.max(60, age)));
    const end = Math.floor(Date.now() / 1000), start = end - span;
    const step = Math.max(1, Math.round(span / 120));
    const results = await Promise.all(CHARTS.map((c) => api('GET', '/prometheus/api/v1/query_range?' +
      new URLSearchParams({ query: c.query, start, end, step }))));
    box.replaceChildren(...CHARTS.map((c, i) => {
      const res = results[i];
      if (!res.ok) return h('p', { className: 'error' }, `${c.title}: ${errText(res)}`);
      let series = res.data.data.result.map((r) => ({
        label: r.metric[c.label] || Object.values(r.metric).join(',') || 'all',
        points: r.values.map(([t, v]) => [t, parseFloat(v)]),
        top: Math.max(0, ...r.values.map(([, v]) => parseFloat(v) || 0)),
      }));
      if (c.nonzero) series = series.filter((s) => s.top > 0);
      series.sort((x, y) => y.top - x.top);
      return GraceCharts.line(c.title, series.slice(0, 8), c.unit, [start, end]);
    }));
  }

  // ---- audit trail

  async function checkProof(ev, cell) {
    cell.replaceChildren('checking…');
    const res = await api('GET', `/kernels/audit/events/${ev.id}/proof`);
    if (!res.ok) { cell.replaceChildren(h('span', { className: 'bad' }, errText(res))); return; }
    const p = res.data, path = (p.inclusion && (p.inclusion.audit_path || p.inclusion.hashes || p.inclusion.proof)) || [];
    cell.replaceChildren(h('span', { className: 'ok' },
      `included at ${p.log_index} of a signed tree of ${p.sth.tree_size}` + (path.length ? ` (${path.length} hashes)` : '')));
  }

  async function loadAudit() {
    const box = $('audit');
    if (!kernelReady('audit')) { notRunning(box, 'audit', 'The audit trail'); return; }
    const since = Date.now() - 3600 * 1000;
    const res = await api('GET', `/kernels/audit/events?since=${since}&limit=1000`);
    if (!res.ok) { box.replaceChildren(h('p', { className: 'error' }, errText(res))); return; }
    const events = res.data.events.slice(-50).reverse();
    if (!events.length) { box.replaceChildren(h('p', { className: 'muted' }, 'No events in the last hour.')); return; }
    box.replaceChildren(table(['Time', 'Actor', 'Action', 'Resource', 'Outcome', 'Proof'], events.map((ev) => {
      const cell = h('span');
      if (ev.log_index === null || ev.log_index === undefined) cell.append(h('span', { className: 'pending' }, 'not in the log yet'));
      else {
        const b = h('button', { type: 'button', 'aria-label': `Check the proof of event ${ev.id}` }, 'Check');
        b.addEventListener('click', () => checkProof(ev, cell));
        cell.append(`#${ev.log_index} `, b);
      }
      return [when(ev.ts_ms), ev.actor, ev.action, ev.resource, ev.outcome, cell];
    })));
  }

  // ---- traces: a search over the telemetry kernel's spans, and a trace
  // as a waterfall (#/traces/ID). Reading traces is for admins.

  const STATUS = ['unset', 'ok', 'error'];
  const spanStatus = (sp) => STATUS[(sp.status && sp.status.code) || 0] || 'unset';
  const nanos = (v) => Number(BigInt(v || 0) / 1000n) / 1000; // ns (a string) -> ms, exactly enough
  const spanMs = (sp) => nanos(sp.endTimeUnixNano) - nanos(sp.startTimeUnixNano);

  function tracesUnavailable(box) {
    if (!isAdmin()) { box.replaceChildren(h('p', { className: 'muted' }, 'Reading traces is for admins.')); return true; }
    if (!kernelReady('telemetry')) { notRunning(box, 'telemetry', 'Traces'); return true; }
    return false;
  }

  function traceLink(id) {
    return h('a', { href: `#/traces/${id}`, 'aria-label': `Open the trace ${id}` }, id.slice(0, 8) + '…');
  }

  async function searchTraces() {
    const box = $('traces');
    $('trace').replaceChildren();
    if (tracesUnavailable(box)) return;
    const q = new URLSearchParams({ limit: 50 });
    const service = $('ts-service').value.trim(), name = $('ts-name').value.trim();
    const min = parseFloat($('ts-min').value), status = $('ts-status').value;
    if (service) q.set('service', service);
    if (name) q.set('name', name);
    if (min > 0) q.set('min_duration_ns', String(Math.round(min * 1e6)));
    if (status) q.set('status', status);
    const res = await api('GET', '/telemetry/traces?' + q);
    if (!res.ok) { box.replaceChildren(h('p', { className: 'error' }, errText(res))); return; }
    const spans = res.data.spans;
    if (!spans.length) { box.replaceChildren(h('p', { className: 'muted' }, 'No spans match.')); return; }
    box.replaceChildren(h('h3', {}, `Spans, latest first (${spans.length})`),
      table(['Start', 'Service', 'Name', 'Duration', 'Status', 'Trace'], spans.map((sp) => [
        when(nanos(sp.startTimeUnixNano)), sp.service || '', sp.name, ms(spanMs(sp)),
        h('span', { className: spanStatus(sp) === 'error' ? 'bad' : '' }, spanStatus(sp)), traceLink(sp.traceId)])));
  }

  // One row a span, in tree order (children by start), its bar placed on
  // the trace's time line: a waterfall.
  function waterfall(tree) {
    const rows = [];
    const walk = (sp, depth) => { rows.push([sp, depth]); for (const c of sp.children || []) walk(c, depth + 1); };
    for (const r of tree.roots) walk(r, 0);
    const t0 = Math.min(...rows.map(([sp]) => nanos(sp.startTimeUnixNano)));
    const t1 = Math.max(...rows.map(([sp]) => nanos(sp.endTimeUnixNano)));
    const total = Math.max(t1 - t0, 0.001);
    const NS = 'http://www.w3.org/2000/svg';
    const body = rows.map(([sp, depth]) => {
      const svg = document.createElementNS(NS, 'svg');
      svg.setAttribute('viewBox', '0 0 1000 10');
      svg.setAttribute('preserveAspectRatio', 'none');
      svg.setAttribute('aria-hidden', 'true');
      const rect = document.createElementNS(NS, 'rect');
      const x = (nanos(sp.startTimeUnixNano) - t0) / total * 1000;
      rect.setAttribute('x', x.toFixed(1));
      rect.setAttribute('width', Math.max(2, spanMs(sp) / total * 1000).toFixed(1));
      rect.setAttribute('y', '1');
      rect.setAttribute('height', '8');
      svg.append(rect);
      const offset = nanos(sp.startTimeUnixNano) - t0;
      const name = h('td', { className: 'name' }, h('span', { className: 'depth' }, '\u00a0\u00a0'.repeat(depth) + (depth ? '└ ' : '')), h('span', { className: 'span-name' }, sp.name));
      return h('tr', { 'data-span': sp.spanId, 'data-depth': String(depth), 'data-status': spanStatus(sp) },
        name, h('td', {}, sp.service || ''), h('td', {}, '+' + ms(offset)), h('td', {}, ms(spanMs(sp))),
        h('td', { className: spanStatus(sp) === 'error' ? 'bad' : '' }, spanStatus(sp)),
        h('td', { className: 'bar', title: `${sp.name}: starts at +${ms(offset)}, takes ${ms(spanMs(sp))}` }, svg));
    });
    return h('div', { className: 'scroll' }, h('table', { className: 'waterfall' },
      h('caption', { className: 'muted' }, `Trace ${tree.traceId}: ${tree.spanCount} spans over ${ms(total)}`),
      h('thead', {}, h('tr', {}, ...['Span', 'Service', 'Starts', 'Took', 'Status', 'Time line'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, ...body)));
  }

  async function openTrace(id) {
    const box = $('trace');
    if (tracesUnavailable(box)) return;
    $('trace-id').value = id;
    box.replaceChildren(h('p', { className: 'muted' }, 'Loading the trace…'));
    const res = await api('GET', '/telemetry/traces/' + id);
    if (res.status === 404) { box.replaceChildren(h('p', { className: 'muted' }, `No span of the trace ${id} is stored.`)); return; }
    if (!res.ok) { box.replaceChildren(h('p', { className: 'error' }, errText(res))); return; }
    box.replaceChildren(h('h3', { id: 'trace-h', tabindex: '-1' }, 'Trace ', h('code', {}, id)), waterfall(res.data));
  }

  function loadTraces() {
    if (state.traceId) { $('traces').replaceChildren(); openTrace(state.traceId); }
    else searchTraces();
  }

  $('trace-search').addEventListener('submit', (e) => {
    e.preventDefault();
    if (location.hash !== '#/traces') location.hash = '#/traces';
    else searchTraces();
  });
  $('trace-open').addEventListener('submit', (e) => {
    e.preventDefault();
    const id = $('trace-id').value.trim().toLowerCase();
    if (/^[0-9a-f]{32}$/.test(id)) location.hash = '#/traces/' + id;
  });

  const LOADERS = {
    kernels: () => {}, incidents: loadIncidents, alerts: loadAlerts, metrics: loadMetrics,
    traces: loadTraces, audit: loadAudit,
  };

  boot();
})();
