/// The dashboard's script. It speaks the `/ws` hub protocol (see `DashboardRoutes`): it
/// subscribes to `events` and `metrics`, renders `status`, derives CPU % and byte rates from
/// successive `metrics` pushes, draws its own charts on <canvas>, and reconnects with backoff.
/// Every value from the agent goes in through `textContent`, never as HTML: a cluster or forward
/// named `<img onerror=…>` is shown as those characters. No inline handlers (the CSP forbids them).
enum DashboardScript {
    static let js = #"""
'use strict';
(() => {
  const CHART_SECONDS = 600;          // what the charts show
  const TIMELINE_MAX = 200;           // events kept on the page
  const BACKOFF_MIN = 1000, BACKOFF_MAX = 30000;
  const STATUS_EVERY = 10000;         // health, cluster and features also change without an event
  const $ = (id) => document.getElementById(id);

  // The token in the address bar was for the first request (the agent answered with a cookie);
  // it should not stay in the history or in screenshots.
  if (new URLSearchParams(location.search).has('token')) history.replaceState(null, '', location.pathname);

  // ---- DOM helpers: text only ----
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function setText(id, value) { $(id).textContent = value === undefined || value === null || value === '' ? '—' : String(value); }
  function setPill(id, text, kind) { const p = $(id); p.textContent = text; p.className = 'pill' + (kind ? ' ' + kind : ''); }

  // ---- formatting ----
  function bytes(n) {
    if (typeof n !== 'number' || !isFinite(n)) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? Math.round(n) : n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0)) + ' ' + units[i];
  }
  const rate = (n) => (typeof n === 'number' && isFinite(n)) ? bytes(n) + '/s' : '—';
  const num = (n) => (typeof n === 'number' && isFinite(n)) ? n.toLocaleString('en-US') : '—';
  function duration(s) {
    if (typeof s !== 'number' || !isFinite(s) || s < 0) return '—';
    s = Math.floor(s);
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60), sec = s % 60;
    if (d) return d + 'd ' + h + 'h ' + m + 'm';
    if (h) return h + 'h ' + m + 'm ' + sec + 's';
    if (m) return m + 'm ' + sec + 's';
    return sec + 's';
  }
  function clock(ts) {
    const d = ts ? new Date(ts) : new Date();
    return isNaN(d.getTime()) ? String(ts) : d.toLocaleTimeString('en-GB', { hour12: false });
  }
  function when(ts) {
    if (!ts) return '—';
    const d = new Date(ts);
    if (isNaN(d.getTime())) return String(ts);
    return d.toLocaleString('en-GB', { hour12: false }) + ' (' + duration((Date.now() - d.getTime()) / 1000) + ' ago)';
  }
  const stateKind = { connected: 'ok', ready: 'ok', connecting: 'warn', disconnected: 'bad', 'not ready': 'bad' };

  // ---- the connection ----
  let socket = null, backoff = BACKOFF_MIN, retryAt = 0, retryTimer = 0;
  function send(message) { if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message)); }

  function connect() {
    retryTimer = 0;
    showConnection();
    const s = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
    socket = s;
    s.onopen = () => {
      backoff = BACKOFF_MIN;
      document.body.classList.remove('offline');
      showConnection();
      send({ type: 'subscribe', data: { topics: ['events', 'metrics'] } });
    };
    s.onmessage = (m) => {
      let message;
      try { message = JSON.parse(m.data); } catch (e) { return; }
      if (message && typeof message === 'object') handle(message);
    };
    s.onclose = () => {
      if (socket !== s) return;
      socket = null;
      document.body.classList.add('offline');
      // Exponential backoff with jitter, so many open dashboards do not return all at once.
      const delay = Math.min(backoff, BACKOFF_MAX) * (0.8 + Math.random() * 0.4);
      backoff = Math.min(backoff * 2, BACKOFF_MAX);
      retryAt = Date.now() + delay;
      retryTimer = setTimeout(connect, delay);
      showConnection();
    };
  }

  function showConnection() {
    if (socket && socket.readyState === WebSocket.OPEN) setPill('conn', 'live', 'ok');
    else if (retryTimer) setPill('conn', 'offline · retrying in ' + Math.max(0, Math.ceil((retryAt - Date.now()) / 1000)) + ' s', 'bad');
    else setPill('conn', 'connecting…', 'warn');
  }

  function handle(m) {
    const data = m.data && typeof m.data === 'object' ? m.data : {};
    switch (m.type) {
      case 'status': renderStatus(data); break;
      case 'metrics': renderMetrics(data.runtime, data.tunnel); break;
      case 'event': renderEvent(data); break;
      case 'error': addTimeline(m.timestamp, 'hub error', 'bad', data.message); break;
    }
  }

  // Events change what `status` says; ask again, at most once a second.
  const pending = { status: 0, metrics: 0 };
  function refresh(kind) {
    if (pending[kind]) return;
    pending[kind] = setTimeout(() => { pending[kind] = 0; send({ type: kind === 'status' ? 'get_status' : 'get_metrics' }); }, 1000);
  }

  // ---- status ----
  let uptime = null;   // {seconds, at}: the agent's uptime when it was read, and when
  function renderStatus(s) {
    const a = s.agent || {};
    setText('cluster-name', a.cluster_name);
    setText('agent-name', a.name || a.id);
    setText('agent-version', a.version);
    const r = s.registration || {};
    setText('registration', r.registered ? 'registered (' + (r.mode || '?') + ')' : (r.mode === 'standalone' ? 'standalone' : 'not registered'));
    setText('cluster-id', r.cluster_id);
    setText('api-server', r.api_server);
    renderHealth(s.health);
    renderTunnel(s.tunnel);
    renderCluster(s.kubernetes);
    renderFeatures(s.features);
    if (typeof a.uptime_seconds === 'number') uptime = { seconds: a.uptime_seconds, at: Date.now() };
    renderMetrics(s.runtime, null);
  }

  function renderHealth(h) {
    h = h || {};
    setPill('health-status', h.status || '?', stateKind[h.status]);
    const list = $('checks');
    const items = [];
    for (const [name, c] of Object.entries(h.checks || {}).sort((x, y) => x[0].localeCompare(y[0]))) {
      const li = el('li');
      li.append(el('span', 'dot ' + (c && c.ok ? 'ok' : 'bad')), el('span', 'name', name), el('span', 'detail', c ? c.detail : ''));
      items.push(li);
    }
    list.replaceChildren(...items);
  }

  // ---- tunnel and forwards ----
  const lastBytes = new Map();   // forward name -> {at, in, out}
  const rates = new Map();       // forward name -> {in, out} bytes per second
  function renderTunnel(t) {
    if (!t) return;
    setPill('tunnel-state', t.state || '?', stateKind[t.state]);
    setText('tunnel-server', t.server);
    setText('tunnel-since', t.since ? when(t.since) : '');
    setText('tunnel-reconnects', num(t.reconnects));
    const err = $('tunnel-error');
    err.textContent = t.last_error || 'none';
    err.className = t.last_error ? 'err' : 'muted';
    const rows = [];
    for (const f of t.forwards || []) {
      const r = rates.get(f.name) || {};
      const tr = el('tr');
      tr.append(el('td', 'fname', f.name), el('td', 'addr', f.local_addr),
        el('td', 'num', f.remote_port ? f.remote_port : 'not bound'), el('td', 'num', num(f.active_connections)),
        el('td', 'num', num(f.connections_total)), el('td', 'num', rate(r.in)), el('td', 'num', rate(r.out)),
        el('td', 'num', bytes(f.bytes_in)), el('td', 'num', bytes(f.bytes_out)), el('td', 'num', num(f.dial_errors)));
      rows.push(tr);
    }
    if (!rows.length) {
      const tr = el('tr'), td = el('td', 'muted', 'no forwards');
      td.colSpan = 10;
      tr.append(td);
      rows.push(tr);
    }
    $('forward-rows').replaceChildren(...rows);
  }

  function updateRates(t, at) {
    for (const f of (t && t.forwards) || []) {
      const last = lastBytes.get(f.name);
      // A rate over less than a second (a status read right after a push) would only be noise.
      if (last && at - last.at < 1000) continue;
      if (last) {
        const dt = (at - last.at) / 1000;
        rates.set(f.name, { in: Math.max(0, f.bytes_in - last.in) / dt, out: Math.max(0, f.bytes_out - last.out) / dt });
      }
      lastBytes.set(f.name, { at, in: f.bytes_in, out: f.bytes_out });
    }
  }

  // ---- runtime and charts ----
  const samples = [];            // {at, cpu (% of one core, or null), rss (bytes)}
  let lastCPU = null;            // {at, seconds}
  function renderMetrics(runtime, tunnel) {
    const at = Date.now();
    if (tunnel) { updateRates(tunnel, at); renderTunnel(tunnel); }
    if (!runtime) return;
    if (typeof runtime.uptime_seconds === 'number') uptime = { seconds: runtime.uptime_seconds, at };
    const mem = runtime.memory || {}, cpu = runtime.cpu || {}, fds = runtime.fds || {}, loop = runtime.loop || {};
    const hasCPU = typeof cpu.user_seconds === 'number' && typeof cpu.system_seconds === 'number';
    const cpuSeconds = hasCPU ? cpu.user_seconds + cpu.system_seconds : null;
    let percent = null;
    if (lastCPU && at - lastCPU.at < 1000) {
      // Too close to the previous reading to say anything; keep that one as the base.
    } else {
      if (lastCPU && hasCPU) percent = Math.max(0, (cpuSeconds - lastCPU.seconds) / ((at - lastCPU.at) / 1000) * 100);
      lastCPU = hasCPU ? { at, seconds: cpuSeconds } : null;
      samples.push({ at, cpu: percent, rss: typeof mem.rss_bytes === 'number' ? mem.rss_bytes : null });
      while (samples.length && samples[0].at < at - CHART_SECONDS * 1000 - 10000) samples.shift();
    }
    const lastPercent = [...samples].reverse().find((x) => x.cpu !== null);
    setText('cpu-now', lastPercent ? lastPercent.cpu.toFixed(1) + ' %' : hasCPU ? 'measuring…' : '—');
    setText('rss-now', bytes(mem.rss_bytes));
    const conns = runtime.connections || {};
    const stats = [
      ['RSS', bytes(mem.rss_bytes)], ['peak RSS', bytes(mem.peak_rss_bytes)], ['heap', bytes(mem.heap_bytes)],
      ['CPU time', hasCPU ? cpuSeconds.toFixed(2) + ' s' : '—'], ['open fds', num(fds.open) + (fds.limit ? ' / ' + num(fds.limit) : '')],
      ['loop lag p50', typeof loop.lag_ms_p50 === 'number' ? loop.lag_ms_p50.toFixed(2) + ' ms' : '—'],
      ['loop lag p99', typeof loop.lag_ms_p99 === 'number' ? loop.lag_ms_p99.toFixed(2) + ' ms' : '—'],
      ['loop iterations', num(loop.iterations)],
    ];
    for (const [k, v] of Object.entries(conns)) {
      if (typeof v !== 'number') continue;
      if (k.endsWith('_bytes')) stats.push([k.slice(0, -6).replace(/_/g, ' '), bytes(v)]);
      else stats.push([k.replace(/_/g, ' ') + (k.includes('channels') ? '' : ' connections'), num(v)]);
    }
    $('runtime-stats').replaceChildren(...stats.map(([k, v]) => { const d = el('div', 'stat'); d.append(el('div', 'k', k), el('div', 'v', v)); return d; }));
    drawCharts();
  }

  function cssColor(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888'; }

  // 1, 2, 2.5 or 5 times a power of ten, in `unit`s (1 for %, 1 MiB for memory).
  function niceMax(v, unit) {
    v /= unit;
    if (!(v > 0)) return unit;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p * unit;
    return 10 * p * unit;
  }

  // The charts' span grows with the data, a minute at a time, up to CHART_SECONDS: a fresh page
  // shows its first minute across the whole width rather than a sliver at the right edge.
  function chartSeconds() {
    if (!samples.length) return 60;
    const age = (Date.now() - samples[0].at) / 1000;
    return Math.min(CHART_SECONDS, Math.max(60, Math.ceil(age / 60) * 60));
  }

  // A line over the chart's span with three grid lines, drawn at the device's pixel ratio.
  function drawChart(canvas, key, color, unit, format) {
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (!w || !h) return;
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    const g = canvas.getContext('2d');
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, w, h);
    const span = chartSeconds();
    const points = samples.filter((s) => s[key] !== null);
    canvas.dataset.points = String(points.length);
    const max = niceMax(Math.max(0, ...points.map((p) => p[key])) * 1.15, unit);
    const labels = [0, 1, 2].map((i) => format(max * i / 2));
    g.font = '11px system-ui, sans-serif';
    const now = Date.now(), left = 8 + Math.max(...labels.map((l) => g.measureText(l).width)), right = 6, top = 6, bottom = 18;
    const x = (at) => left + (w - left - right) * (1 - (now - at) / (span * 1000));
    const y = (v) => top + (h - top - bottom) * (1 - v / max);
    g.lineWidth = 1;
    g.strokeStyle = cssColor('--line');
    g.fillStyle = cssColor('--muted');
    g.textBaseline = 'middle';
    g.textAlign = 'right';
    labels.forEach((label, i) => {
      const yy = Math.round(y(max * i / 2)) + 0.5;
      g.beginPath(); g.moveTo(left, yy); g.lineTo(w - right, yy); g.stroke();
      g.fillText(label, left - 6, yy);
    });
    g.textBaseline = 'alphabetic';
    g.textAlign = 'left';
    g.fillText('-' + span / 60 + ' min', left, h - 3);
    g.textAlign = 'right';
    g.fillText('now', w - right, h - 3);
    if (!points.length) {
      g.textAlign = 'center';
      g.fillText('waiting for samples…', (left + w) / 2, h / 2);
      return;
    }
    g.beginPath();
    points.forEach((p, i) => { const px = Math.max(left, x(p.at)); if (i) g.lineTo(px, y(p[key])); else g.moveTo(px, y(p[key])); });
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.lineJoin = 'round';
    g.stroke();
    const last = points[points.length - 1], first = points[0];
    g.lineTo(x(last.at), y(0));
    g.lineTo(Math.max(left, x(first.at)), y(0));
    g.closePath();
    g.globalAlpha = 0.12;
    g.fillStyle = color;
    g.fill();
    g.globalAlpha = 1;
    g.beginPath();
    g.arc(x(last.at), y(last[key]), 3, 0, Math.PI * 2);
    g.fill();
  }

  function drawCharts() {
    const span = chartSeconds() / 60;
    $('chart-window').textContent = span === 1 ? 'last minute' : 'last ' + span + ' minutes';
    drawChart($('cpu-chart'), 'cpu', cssColor('--accent'), 1, (v) => (v < 10 ? v.toFixed(1) : v.toFixed(0)) + ' %');
    drawChart($('rss-chart'), 'rss', cssColor('--accent2'), 1048576, (v) => bytes(v));
  }

  // ---- events ----
  let eventCount = 0;
  function text(v) { return v === undefined || v === null ? '' : String(v); }
  function describe(e) {
    const d = e.data && typeof e.data === 'object' ? e.data : {};
    switch (e.event) {
      case 'tunnel_state':
        return [stateKind[d.state] || 'info', text(d.previous) + ' → ' + text(d.state) + (d.error ? ': ' + text(d.error) : '')];
      case 'forward_opened':
        return ['ok', text(d.forward) + ' opened on remote port ' + text(d.remote_port) + ' (' + text(d.active_connections) + ' open)'];
      case 'forward_closed':
        return [d.error ? 'bad' : 'info', text(d.forward) + ' closed after ' + text(d.duration_ms) + ' ms, ' + bytes(d.bytes_in) + ' in, ' +
          bytes(d.bytes_out) + ' out' + (d.error ? ': ' + text(d.error) : '')];
      case 'registration':
        return ['ok', 'registered as cluster ' + text(d.cluster_id) + (d.mode ? ' (' + text(d.mode) + ')' : '')];
      case 'health_update':
        return [stateKind[d.status] || 'info', text(d.status)];
      case 'kubernetes_event':
        return [d.type === 'Warning' ? 'warn' : 'info', text(d.type) + ' ' + text(d.reason) + ' ' + text(d.namespace) + '/' + text(d.object) + ': ' + text(d.message)];
      case 'log':
        return [d.level === 'error' ? 'bad' : d.level === 'warning' ? 'warn' : 'info', text(d.level) + ': ' + text(d.message)];
      default:
        return ['info', JSON.stringify(d).slice(0, 300)];
    }
  }

  function addTimeline(ts, name, kind, what) {
    const li = el('li');
    li.dataset.event = name;
    li.append(el('span', 'time', clock(ts)), el('span', 'tag ' + kind, name), el('span', 'what', what));
    const list = $('timeline');
    list.prepend(li);
    while (list.children.length > TIMELINE_MAX) list.lastElementChild.remove();
    eventCount++;
    setText('event-count', eventCount + (eventCount === 1 ? ' event' : ' events'));
  }

  function renderEvent(e) {
    const [kind, what] = describe(e);
    addTimeline(e.timestamp, text(e.event) || 'event', kind, what);
    const d = e.data && typeof e.data === 'object' ? e.data : {};
    switch (e.event) {
      case 'tunnel_state': setPill('tunnel-state', text(d.state), stateKind[d.state]); refresh('status'); break;
      case 'health_update': renderHealth(d); break;
      case 'forward_opened': case 'forward_closed': refresh('metrics'); break;
      default: refresh('status');
    }
  }

  // ---- cluster and features ----
  function renderCluster(k) {
    const box = $('cluster');
    if (!k || !k.available) {
      setPill('k8s-state', 'unavailable', '');
      const empty = el('div', 'empty', 'no Kubernetes data yet');
      const parts = [empty];
      if (k && k.detail) parts.push(el('div', 'muted', k.detail));
      box.replaceChildren(...parts);
      return;
    }
    setPill('k8s-state', k.reachable ? 'reachable' : 'unreachable', k.reachable ? 'ok' : 'bad');
    const dl = el('dl', 'kv');
    for (const [name, value] of [['version', k.version], ['nodes', num(k.nodes)], ['pods', num(k.pods)], ['detail', k.detail]]) {
      dl.append(el('dt', null, name), el('dd', null, value === undefined || value === null || value === '' ? '—' : value));
    }
    const phases = Object.entries(k.pods_by_phase || {}).filter(([, n]) => typeof n === 'number').sort((a, b) => b[1] - a[1]);
    const bars = el('div', 'bars');
    const most = Math.max(1, ...phases.map(([, n]) => n));
    for (const [phase, n] of phases) {
      const bar = el('div', 'bar');
      bar.style.width = (100 * n / most).toFixed(1) + '%';   // CSSOM, which the CSP allows
      const track = el('div');
      track.append(bar);
      bars.append(el('span', null, phase), track, el('b', null, num(n)));
    }
    box.replaceChildren(dl, phases.length ? bars : el('div', 'muted', 'no pods'));
  }

  function renderFeatures(f) {
    const chips = Object.entries(f || {}).sort((a, b) => a[0].localeCompare(b[0]))
      .map(([name, on]) => el('span', 'chip ' + (on === true ? 'on' : on === false ? 'off' : ''), name.replace(/_/g, ' ') + (typeof on === 'boolean' ? '' : ': ' + text(on))));
    $('features').replaceChildren(...(chips.length ? chips : [el('span', 'muted', 'none reported')]));
  }

  // ---- the clock: uptime, the offline countdown and the charts' sliding window ----
  setInterval(() => send({ type: 'get_status' }), STATUS_EVERY);
  setInterval(() => {
    if (uptime) setText('uptime', duration(uptime.seconds + (socket ? (Date.now() - uptime.at) / 1000 : 0)));
    showConnection();
    drawCharts();
  }, 1000);
  window.addEventListener('resize', drawCharts);
  drawCharts();
  connect();
})();
"""#
}
