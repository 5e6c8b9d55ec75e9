import Logging
import Reactor

/// What both tunnel modes share: a session ends exactly once, either because the manager closed
/// it (no callback) or on its own (the manager hears why and schedules a retry); and its
/// channels are bridged to local addresses by one ChannelBridges, which counts connections and
/// bytes into the manager's per-forward meters and tells the manager of opens and closes.
class TunnelSessionBase: TunnelSession, ChannelBridgesObserver {
    weak var manager: TunnelManager?
    let logger: Logger
    /// Dial failures by forward (a configured, so bounded, set of names).
    private var dialFailureLogs: [String: LimitHitLog] = [:]
    private var lastDialFailure: [String: (target: String, error: String)] = [:]
    let bridges: ChannelBridges
    private(set) var ended = false
    /// When each open bridge opened, for the closed event's duration.
    private var openedAt: [Int: Deadline] = [:]

    init(loop: EventLoop, resolver: Resolver, manager: TunnelManager, logger: Logger) {
        self.manager = manager
        self.logger = logger
        bridges = ChannelBridges(loop: loop, resolver: resolver, meters: manager.meters)
        bridges.maxChannels = manager.limits.maxChannels
        bridges.maxPendingDials = manager.limits.maxPendingDials
        bridges.observer = self
    }

    func start() {}

    /// Releases timers and connections; called once, when the session ends.
    func teardown() {}

    func close(reason: String) {
        guard !ended else { return }
        ended = true
        logger.info("closing tunnel", metadata: ["reason": "\(reason)"])
        teardown()
        bridges.closeAll()
    }

    func end(_ reason: TunnelError) {
        guard !ended else { return }
        ended = true
        teardown()
        bridges.closeAll()
        manager?.sessionDidEnd(self, error: reason)
    }

    // MARK: ChannelBridgesObserver (bridges end after the session too: their counts still go in)

    func channelBridgeOpened(forward: String, id: Int) {
        openedAt[id] = bridges.loop.now
        manager?.forwardOpened(forward)
        logger.debug("conn#\(id) open", metadata: ["forward": "\(forward)"])
    }

    /// One line per forward per interval while its local address fails (with the count and the
    /// latest error): while a local service is down, every tunnelled connection fails to dial,
    /// and a line each was some 1,300 lines in 3 s under the soak's load.
    func channelBridgeDialFailed(forward: String, target: String, error: ConnectionError?) {
        lastDialFailure[forward] = (target, error.map { "\($0)" } ?? "closed")
        if let log = dialFailureLogs[forward] { log.record(); return }
        let log = LimitHitLog(loop: bridges.loop) { [weak self] hits, interval in
            guard let self, let last = self.lastDialFailure[forward] else { return }
            self.logger.warning("cannot reach the forward's local address", metadata: [
                "forward": "\(forward)", "target": "\(last.target)", "error": "\(last.error)",
                "failures": "\(hits)", "interval": "\(interval)"])
        }
        dialFailureLogs[forward] = log
        log.record()
    }

    /// Logged by the manager, once per interval for every session together.
    func channelBridgeRefused(forward: String, limit: ChannelBridges.Limit) {
        manager?.channelRefused(forward, limit: limit)
    }

    func channelBridgeClosed(forward: String, id: Int, traffic: ForwardTraffic) {
        let duration = openedAt.removeValue(forKey: id).map { bridges.loop.now - $0 } ?? .zero
        manager?.forwardClosed(forward, traffic: traffic, duration: duration)
        logger.debug("conn#\(id) close", metadata: ["forward": "\(forward)",
                                                     "sent": "\(traffic.toTunnel)", "received": "\(traffic.toLocal)"])
    }
}

/// Sends a global request every `interval` and declares the connection dead when no reply
/// comes within `deadline` (chisel: `ping`, OpenSSH: `keepalive@openssh.com`).
final class SSHKeepalive {
    unowned let loop: EventLoop
    weak var connection: SSHConnection?
    let request: String
    let interval: TimeAmount
    let deadline: TimeAmount
    /// Returns an error text for a reply that means trouble, nil for a good one.
    let check: (SSHGlobalReply) -> String?
    let onDead: (String) -> Void
    private var timer: LoopTimer?
    private var waiting: LoopTimer?

    init(loop: EventLoop, connection: SSHConnection, request: String, interval: TimeAmount, deadline: TimeAmount,
         check: @escaping (SSHGlobalReply) -> String? = { _ in nil }, onDead: @escaping (String) -> Void) {
        self.loop = loop
        self.connection = connection
        self.request = request
        self.interval = interval
        self.deadline = deadline
        self.check = check
        self.onDead = onDead
    }

    func start() {
        timer = loop.schedule(in: interval) { [weak self] in self?.send() }
    }

    func stop() {
        timer?.cancel()
        waiting?.cancel()
    }

    private func send() {
        guard let connection else { return }
        waiting = loop.schedule(in: deadline) { [weak self] in
            guard let self else { return }
            self.onDead("keepalive: no answer to \(self.request) within \(self.deadline)")
        }
        connection.sendGlobalRequest(request, wantReply: true) { [weak self] reply in
            guard let self else { return }
            self.waiting?.cancel()
            self.waiting = nil
            if let problem = self.check(reply) { self.onDead("keepalive: \(problem)"); return }
            self.start()
        }
    }
}
