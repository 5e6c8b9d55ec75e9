import Logging
import Reactor

/// Keeps the tunnel as the control plane wants it: up with exactly the allocated forwards,
/// or closed on IDLE. Reconnects on drops with backoff (100 ms doubling to 30 s, jitter, reset
/// after 30 s up), reconnects when the allocation or the server changes, closes on inactivity.
public final class TunnelManager {
    public enum Phase: String, Sendable { case idle, connecting, connected, disconnected }

    unowned let loop: EventLoop
    let configuredForwards: [TunnelForward]
    let inactivityTimeout: TimeAmount
    /// Applied to every session's channel bridges.
    let limits: TunnelLimits
    let logger: Logger
    /// Opens one tunnel session; the manager owns its lifecycle.
    let makeSession: (DesiredTunnel, TunnelManager) -> TunnelSession

    public private(set) var phase: Phase = .idle
    public private(set) var desired: DesiredTunnel?
    /// Why the tunnel last failed (a `TunnelError` with its causes, or the allocation's error).
    public private(set) var lastFailure: (any Error)?
    public var lastError: String? { lastFailure.map(ErrorChain.render) }
    public private(set) var reconnects: UInt64 = 0
    public private(set) var since = Deadline.now()
    /// Each forward's counts, kept across sessions; the sessions' bridges update them as bytes
    /// move, so they include connections still open.
    public let meters = ForwardMeters()
    /// Counters per forward (every configured one, and any that had traffic).
    public var stats: [String: ForwardStats] {
        var out: [String: ForwardStats] = [:]
        for (name, m) in meters.byName {
            var s = ForwardStats()
            s.remotePort = remotePorts[name] ?? 0
            s.activeConnections = m.activeConnections
            s.totalConnections = m.totalConnections
            s.bytesIn = m.bytesToLocal
            s.bytesOut = m.bytesToTunnel
            s.dialErrors = m.dialErrors
            out[name] = s
        }
        return out
    }
    /// The port each forward was last given on the tunnel server.
    private var remotePorts: [String: Int] = [:]
    /// Set when a poll's allocation matched none of our forwards (reported on /ready).
    public private(set) var allocationError: String?
    /// Phase changes and forward connections, as they happen (the agent's event bus).
    var onEvent: ((TunnelEvent) -> Void)?
    /// Tunnel channels refused with `resource shortage` at `tunnel.max_channels`, and at
    /// `tunnel.max_pending_dials`, over every session.
    public private(set) var channelsRefusedAtChannelLimit: UInt64 = 0
    public private(set) var channelsRefusedAtDialLimit: UInt64 = 0
    private lazy var limitLog = LimitHitLog(loop: loop, interval: limits.logInterval) { [unowned self] hits, interval in
        self.logger.warning("tunnel channels refused: limit reached (resource shortage)", metadata: [
            "hits": "\(hits)", "interval": "\(interval)",
            "max_channels": "\(self.limits.maxChannels)", "max_pending_dials": "\(self.limits.maxPendingDials)",
            "refused_at_channel_limit": "\(self.channelsRefusedAtChannelLimit)",
            "refused_at_dial_limit": "\(self.channelsRefusedAtDialLimit)"])
    }

    private var session: TunnelSession?
    private var backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(30))
    private var retryTimer: LoopTimer?
    private var inactivityTimer: LoopTimer?
    private var lastActivity = Deadline.now()
    /// Bytes moved at the last inactivity check: a long transfer on one connection is activity
    /// even though nothing opens or closes.
    private var lastBytes: UInt64 = 0
    private var closedForInactivity = false
    private var connectedAt: Deadline?

    init(loop: EventLoop, forwards: [TunnelForward], inactivityTimeout: TimeAmount, limits: TunnelLimits = TunnelLimits(),
         logger: Logger, makeSession: @escaping (DesiredTunnel, TunnelManager) -> TunnelSession) {
        self.loop = loop
        self.configuredForwards = forwards
        self.inactivityTimeout = inactivityTimeout
        self.limits = limits
        var l = logger
        l[metadataKey: "component"] = "tunnel"
        self.logger = l
        self.makeSession = makeSession
        for f in forwards { _ = meters.meter(f.name) }
    }

    /// The heartbeat's `tunnel_status`.
    public var heartbeatStatus: String { phase.rawValue }

    // MARK: Directives from the poll

    public func apply(_ directive: TunnelDirective) {
        switch directive {
        case .unknown:
            return
        case .idle:
            allocationError = nil
            guard desired != nil || session != nil else { return }
            logger.info("control plane asked for IDLE: closing the tunnel")
            desired = nil
            stopSession(reason: "tunnel no longer requested")
            setPhase(.idle, nil)
        case .required(let response):
            let wanted: DesiredTunnel
            do { wanted = try desiredTunnel(from: response) } catch {
                allocationError = "\(error)"
                lastFailure = error
                logger.error("cannot use the tunnel allocation", metadata: ["error": "\(error)"])
                return
            }
            allocationError = nil
            if wanted == desired && !closedForInactivity && (session != nil || retryTimer != nil) { return }
            if let old = desired, old != wanted, session != nil {
                logger.info("tunnel allocation or server changed: reconnecting", metadata: ["server": "\(wanted.endpoint)"])
            }
            desired = wanted
            closedForInactivity = false
            stopSession(reason: "reconfiguring")
            backoff.reset()
            connect()
        }
    }

    func desiredTunnel(from r: TunnelStatusResponse) throws(TunnelConfigError) -> DesiredTunnel {
        guard let addr = r.tunnelServerAddr, !addr.isEmpty else { throw TunnelConfigError("the poll gave no tunnel_server_addr") }
        let endpoint = try TunnelEndpoint.parse(addr)
        let creds = try TunnelCredentials.decode(base64: r.credentials ?? "")
        var forwards: [DesiredTunnel.Forward] = []
        for a in r.forwards ?? [] {
            guard let f = configuredForwards.first(where: { $0.name == a.name }) else {
                logger.warning("the control plane allocated a port for an unknown forward; skipped",
                               metadata: ["forward": "\(a.name)", "remote_port": "\(a.remotePort)"])
                continue
            }
            guard (1...65535).contains(a.remotePort) else {
                logger.warning("allocation with an invalid port; skipped", metadata: ["forward": "\(a.name)", "remote_port": "\(a.remotePort)"])
                continue
            }
            forwards.append(.init(name: f.name, remotePort: a.remotePort, localAddr: f.localAddr, remoteBind: f.remoteBind,
                                  dialTimeout: f.dialTimeout))
        }
        guard !forwards.isEmpty else {
            let names = (r.forwards ?? []).map(\.name)
            throw TunnelConfigError("no allocated forward matches the configured ones (allocated: \(names), configured: \(configuredForwards.map(\.name)))")
        }
        forwards.sort { $0.name < $1.name }
        return DesiredTunnel(endpoint: endpoint, credentials: creds, fingerprint: r.serverFingerprint ?? "", forwards: forwards)
    }

    /// Opens a tunnel that no control plane drives (`tunnel.mode: ssh`): kept up until shutdown.
    public func openStatic(_ wanted: DesiredTunnel) {
        var wanted = wanted
        // Each forward's dial timeout comes from its configuration.
        for i in wanted.forwards.indices {
            if let f = configuredForwards.first(where: { $0.name == wanted.forwards[i].name }) {
                wanted.forwards[i].dialTimeout = f.dialTimeout
            }
        }
        desired = wanted
        backoff.reset()
        connect()
    }

    // MARK: Session lifecycle

    private func connect() {
        retryTimer?.cancel()
        retryTimer = nil
        guard let wanted = desired else { return }
        setPhase(.connecting, nil)
        for f in wanted.forwards { remotePorts[f.name] = f.remotePort }
        let s = makeSession(wanted, self)
        session = s
        s.start()
    }

    private func stopSession(reason: String) {
        retryTimer?.cancel()
        retryTimer = nil
        inactivityTimer?.cancel()
        inactivityTimer = nil
        connectedAt = nil
        if let s = session {
            session = nil
            s.close(reason: reason)
        }
    }

    /// The session finished its handshake and the server accepted the config.
    func sessionDidConnect(_ s: TunnelSession) {
        guard s === session else { return }
        connectedAt = loop.now
        lastFailure = nil
        lastActivity = loop.now
        setPhase(.connected, nil)
        armInactivityTimer()
    }

    /// The session ended (failed to connect or dropped). Retry unless we closed it on purpose.
    func sessionDidEnd(_ s: TunnelSession, error: TunnelError) {
        guard s === session else { return }
        session = nil
        inactivityTimer?.cancel()
        if let up = connectedAt, loop.now - up >= .seconds(30) { backoff.reset() }
        connectedAt = nil
        lastFailure = error
        guard desired != nil else { setPhase(.idle, nil); return }
        let delay = backoff.next()
        reconnects &+= 1
        logger.warning("tunnel down; reconnecting", metadata: ["error": "\(error)", "retry_in": "\(delay)", "attempt": "\(backoff.attempt)"])
        setPhase(.disconnected, error.description, failure: error)
        retryTimer = loop.schedule(in: delay) { [weak self] in self?.connect() }
    }

    private func setPhase(_ p: Phase, _ detail: String?, failure: (any Error)? = nil) {
        let previous = phase
        phase = p
        if p != previous {
            since = loop.now
            onEvent?(.phase(p, previous: previous, detail: detail, failure: failure))
        }
    }

    public func shutdown() {
        desired = nil
        stopSession(reason: "agent shutting down")
        setPhase(.idle, nil)
    }

    // MARK: Connections (told by the session's bridges; `meters` holds the counts)

    func forwardOpened(_ name: String) {
        lastActivity = loop.now
        onEvent?(.forwardOpened(forward: name, remotePort: remotePorts[name] ?? 0, active: meters.meter(name).activeConnections))
    }

    /// A connection ended after moving `traffic` in `duration`.
    func forwardClosed(_ name: String, traffic: ForwardTraffic, duration: TimeAmount) {
        lastActivity = loop.now
        onEvent?(.forwardClosed(forward: name, traffic: traffic, duration: duration, active: meters.meter(name).activeConnections))
    }

    /// The server bound this forward on `port` (SSH mode, where port 0 lets the server pick).
    func forwardBound(_ name: String, port: Int) { remotePorts[name] = port }

    /// A session refused a channel of forward `name` at `limit`.
    func channelRefused(_ name: String, limit: ChannelBridges.Limit) {
        switch limit {
        case .channels: channelsRefusedAtChannelLimit &+= 1
        case .pendingDials: channelsRefusedAtDialLimit &+= 1
        }
        limitLog.record()
    }

    private func armInactivityTimer() {
        inactivityTimer?.cancel()
        guard inactivityTimeout.nanoseconds > 0 else { return }
        let deadline = lastActivity + inactivityTimeout
        inactivityTimer = loop.schedule(at: deadline) { [weak self] in self?.checkInactivity() }
    }

    private func checkInactivity() {
        guard phase == .connected else { return }
        // control-plane-api.md §4: only bytes across the forwards count, not open sockets.
        let bytes = meters.totalBytes
        if bytes != lastBytes {
            lastBytes = bytes
            lastActivity = loop.now
        }
        if loop.now - lastActivity >= inactivityTimeout {
            logger.info("no tunnel traffic for \(inactivityTimeout): closing the tunnel until the next poll asks for it")
            closedForInactivity = true
            stopSession(reason: "inactivity")
            setPhase(.idle, "closed after \(inactivityTimeout) without traffic")
        } else {
            armInactivityTimer()
        }
    }
}

/// One tunnel connection attempt and, if it succeeds, its life.
public protocol TunnelSession: AnyObject {
    func start()
    func close(reason: String)
}

/// What the tunnel manager reports as it happens.
enum TunnelEvent {
    /// `failure`: the error behind a drop, for its cause chain.
    case phase(TunnelManager.Phase, previous: TunnelManager.Phase, detail: String?, failure: (any Error)?)
    case forwardOpened(forward: String, remotePort: Int, active: Int)
    case forwardClosed(forward: String, traffic: ForwardTraffic, duration: TimeAmount, active: Int)
}
