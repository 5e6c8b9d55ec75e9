import Logging
import Reactor

/// The lifecycle both tunnel modes share: a session ends exactly once, either because the
/// manager closed it (no callback) or on its own (the manager hears why and schedules a retry).
class TunnelSessionBase: TunnelSession {
    weak var manager: TunnelManager?
    let logger: Logger
    private(set) var ended = false

    init(manager: TunnelManager, logger: Logger) {
        self.manager = manager
        self.logger = logger
    }

    func start() {}

    /// None by default; sessions that bridge connections report theirs.
    var liveTraffic: [String: ForwardTraffic] { [:] }

    /// Releases timers and connections; called once, when the session ends.
    func teardown() {}

    func close(reason: String) {
        guard !ended else { return }
        ended = true
        logger.info("closing tunnel", metadata: ["reason": "\(reason)"])
        teardown()
    }

    func end(_ reason: String) {
        guard !ended else { return }
        ended = true
        teardown()
        manager?.sessionDidEnd(self, error: reason)
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
