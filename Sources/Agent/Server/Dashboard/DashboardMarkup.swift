/// The dashboard's static HTML: the frame the script fills in. Nothing from the agent appears
/// here; the script inserts every value as text. `{{STYLE}}` and `{{SCRIPT}}` are replaced by
/// `DashboardPage` with the texts whose hashes the CSP allows. The favicon is a `data:` SVG so
/// the browser asks the agent for no /favicon.ico.
enum DashboardMarkup {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>PipeOps agent</title>
<link rel="icon" href="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Ccircle cx='8' cy='8' r='7' fill='%232563eb'/%3E%3Cpath d='M4 8h8M8 4v8' stroke='white' stroke-width='2'/%3E%3C/svg%3E">
<style>{{STYLE}}</style>
</head>
<body class="offline">
<header>
  <h1><span class="logo"></span>PipeOps agent</h1>
  <div class="meta">
    <span>cluster <b id="cluster-name">…</b></span>
    <span>agent <b id="agent-name">…</b></span>
    <span>version <b id="agent-version">…</b></span>
    <span>uptime <b id="uptime">…</b></span>
  </div>
  <span class="conn"><span id="conn" class="pill warn">connecting…</span></span>
</header>
<main>
  <section class="card" id="health-card">
    <h2>Health <span class="right"><span id="health-status" class="pill">…</span></span></h2>
    <dl class="kv">
      <dt>registration</dt><dd id="registration">…</dd>
      <dt>cluster id</dt><dd id="cluster-id">…</dd>
      <dt>control plane</dt><dd id="api-server">…</dd>
    </dl>
    <ul class="checks" id="checks"></ul>
  </section>
  <section class="card span2" id="tunnel-card">
    <h2>Tunnel <span class="right"><span id="tunnel-state" class="pill">…</span></span></h2>
    <dl class="kv">
      <dt>server</dt><dd id="tunnel-server">…</dd>
      <dt>since</dt><dd id="tunnel-since">…</dd>
      <dt>reconnects</dt><dd id="tunnel-reconnects">…</dd>
      <dt>last error</dt><dd id="tunnel-error">…</dd>
    </dl>
    <div class="tablewrap">
      <table id="forwards">
        <thead><tr><th>forward</th><th>local address</th><th class="num">remote port</th><th class="num">open</th>
          <th class="num">total</th><th class="num">in/s</th><th class="num">out/s</th><th class="num">in</th>
          <th class="num">out</th><th class="num">dial errors</th></tr></thead>
        <tbody id="forward-rows"></tbody>
      </table>
    </div>
  </section>
  <section class="card span2" id="runtime-card">
    <h2>Runtime <span class="right muted" id="chart-window">…</span></h2>
    <div class="charts">
      <div class="chart"><div class="label"><span>CPU</span><b id="cpu-now">…</b></div><canvas id="cpu-chart"></canvas></div>
      <div class="chart"><div class="label"><span>Memory (RSS)</span><b id="rss-now">…</b></div><canvas id="rss-chart"></canvas></div>
    </div>
    <div class="stats" id="runtime-stats"></div>
  </section>
  <div class="stack">
    <section class="card" id="cluster-card">
      <h2>Cluster <span class="right"><span id="k8s-state" class="pill">…</span></span></h2>
      <div id="cluster"><div class="empty">no Kubernetes data yet</div></div>
    </section>
    <section class="card" id="features-card">
      <h2>Detected features</h2>
      <div class="chips" id="features"></div>
    </section>
  </div>
  <section class="card span3" id="events-card">
    <h2>Events <span class="right muted" id="event-count">0</span></h2>
    <ol class="timeline" id="timeline"></ol>
  </section>
</main>
<footer>live over /ws · values are read from the agent every 5 s and on every event</footer>
<script>{{SCRIPT}}</script>
</body>
</html>
"""#
}
