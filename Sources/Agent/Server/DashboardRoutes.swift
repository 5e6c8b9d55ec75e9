import Reactor

/// `GET /dashboard`: the live page (`Dashboard/`), built into the binary. Installed only when
/// `server.enable_dashboard` is true; the token middleware in front of the router guards it
/// (`?token=` once sets the cookie the page's WebSocket then carries).
///
/// The page speaks the `/ws` hub protocol. Every frame is one JSON object
/// `{"type", "id" (echoed when the client sent one), "timestamp" (RFC 3339), "data": {…}}`.
///
/// Server → client:
/// * `status` (on connect, and in answer to `get_status`): the status snapshot, the same object
///   as `GET /api/health/detailed`: `agent {id, name, cluster_name, version, uptime_seconds,
///   start_time}`, `registration {registered, cluster_id, api_server, mode: standalone|control_plane}`,
///   `health {status: ready|not ready, checks {name: {ok, detail}}}`, `tunnel {state:
///   connected|connecting|disconnected|idle|disabled, server, since, reconnects, last_error,
///   forwards [{name, local_addr, remote_port, active_connections, connections_total, bytes_in,
///   bytes_out, dial_errors}]}`, `kubernetes {available, reachable, version, nodes, pods,
///   pods_by_phase {phase: n}, detail}`, `runtime` (as `GET /api/metrics/runtime`: `memory
///   {rss_bytes, peak_rss_bytes, heap_bytes}`, `cpu {user_seconds, system_seconds}`, `fds {open,
///   limit}`, `loop {…}`, `connections {…}`, `uptime_seconds`, `timestamp`), `features {name: bool}`,
///   `timestamp`.
/// * `metrics` (to `get_metrics`, and every 5 s to subscribers of `metrics`): `{runtime, tunnel}`.
/// * `event` (to subscribers of `events`): `{id, event, timestamp, data}` with `tunnel_state
///   {state, previous, error?}`, `forward_opened {forward, remote_port, active_connections}`,
///   `forward_closed {forward, bytes_in, bytes_out, duration_ms, error?}`, `registration
///   {cluster_id, mode}`, `health_update {status, checks}`, `kubernetes_event {type, reason,
///   message, namespace, object}`, `log`.
/// * `log`, `logs_end`, `pong`, `subscribed {topics}`, `unsubscribed {topics}`, `error {message}`.
///
/// Client → server: `ping`, `get_status`, `get_metrics`, `subscribe {topics: [events, metrics,
/// logs]}`, `unsubscribe {topics}`, `logs {namespace, pod, container, tail_lines}`, `logs_stop`.
struct DashboardRoutes {
    func install(on router: HTTPRouter) {
        let page = DashboardPage()
        var headers = HTTPHeaders()
        headers.add("Content-Security-Policy", page.contentSecurityPolicy)
        headers.add("X-Content-Type-Options", "nosniff")
        headers.add("Referrer-Policy", "no-referrer")
        headers.add("Cache-Control", "no-store")
        // For browsers that predate frame-ancestors.
        headers.add("X-Frame-Options", "DENY")
        let html = page.html
        router.add("GET", "/dashboard") { _, responder in
            html.withUnsafeBytes { responder.send(200, contentType: "text/html; charset=utf-8", body: $0, headers: headers) }
        }
    }
}
