import Reactor

/// One followed pod log (`GET /api/v1/namespaces/{ns}/pods/{pod}/log?follow=true`), delivered
/// line by line, in order, to `onLine`; `onEnd` is called once, when the log ends.
///
/// Flow control is the caller's: when its own queue (a WebSocket or SSE client's send queue)
/// is over its limit it calls `pause()`, which stops reading from the API server (TCP then
/// pushes back on the kubelet) and holds the few lines already read; `resume()` delivers them
/// and reads on. A reader paused longer than `maxPause`, or one that lets the held lines grow
/// past `maxHeldBytes`, is cut off (`.slowReader`): memory never grows without limit.
public final class PodLogStream {
    public struct Limits: Sendable {
        /// Longer lines are delivered in pieces of this size.
        public var maxLineBytes = 64 * 1024
        public var maxPause = TimeAmount.seconds(30)
        public var maxHeldBytes = 1 << 20
        public init() {}
    }

    public enum End: Equatable, Sendable {
        /// The server closed the log: the container stopped (or the pod is gone).
        case ended
        case cancelled
        /// Paused past `maxPause` or holding more than `maxHeldBytes`.
        case slowReader(String)
        case failed(KubernetesError)
    }

    public let namespace: String
    public let pod: String
    public let container: String?
    public private(set) var linesDelivered = 0
    public private(set) var end: End?
    public var isPaused: Bool { paused }

    private let limits: Limits
    private unowned let loop: EventLoop
    private var call: KubernetesClient.Call?
    private var splitter: LineSplitter
    private var held: [String] = []
    private var heldBytes = 0
    private var paused = false
    private var pauseTimer: LoopTimer?
    private var serverDone: KubernetesError??
    private let onLine: (String) -> Void
    private let onEnd: (End) -> Void

    init(loop: EventLoop, namespace: String, pod: String, container: String?, limits: Limits,
         onLine: @escaping (String) -> Void, onEnd: @escaping (End) -> Void) {
        self.loop = loop
        self.namespace = namespace
        self.pod = pod
        self.container = container
        self.limits = limits
        self.splitter = LineSplitter(maxLineBytes: limits.maxLineBytes, overlong: .split)
        self.onLine = onLine
        self.onEnd = onEnd
    }

    deinit { call?.cancel() }

    static func path(namespace: String, pod: String, container: String?, tailLines: Int?) -> String {
        KubernetesQuery.path("/api/v1/namespaces/\(KubernetesQuery.encode(namespace))/pods/\(KubernetesQuery.encode(pod))/log",
                             [("follow", "true"), ("container", container), ("tailLines", tailLines.map { "\(max(0, $0))" })])
    }

    func start(client: KubernetesClient, tailLines: Int?) {
        let target = Self.path(namespace: namespace, pod: pod, container: container, tailLines: tailLines)
        call = client.stream(target, verb: "get", timeout: nil, retry: KubernetesClient.Retry(attempts: 2), handler: .init(
            onBody: { [weak self] chunk in self?.received(chunk) },
            onEnd: { [weak self] error in self?.serverEnded(error) }))
    }

    /// Stops reading until `resume`; lines already read are held.
    public func pause() {
        guard end == nil, !paused else { return }
        paused = true
        call?.pause()
        pauseTimer = loop.schedule(in: limits.maxPause) { [weak self] in
            guard let self, self.paused else { return }
            self.finish(.slowReader("paused for more than \(self.limits.maxPause)"))
        }
    }

    public func resume() {
        guard end == nil, paused else { return }
        paused = false
        pauseTimer?.cancel()
        pauseTimer = nil
        flushHeld()
        guard end == nil, !paused else { return }
        if let done = serverDone { finishFromServer(done) } else { call?.resume() }
    }

    public func cancel() { finish(.cancelled) }

    private func received(_ chunk: [UInt8]) {
        guard end == nil else { return }
        do {
            try splitter.feed(chunk) { line in self.deliver(String(decoding: line, as: UTF8.self)) }
        } catch {
            finish(.failed(KubernetesError(kind: .badResponse, message: "log of \(namespace)/\(pod): \(error)")))
        }
    }

    private func deliver(_ line: String) {
        guard end == nil else { return }
        if paused || !held.isEmpty {
            held.append(line)
            heldBytes += line.utf8.count
            if heldBytes > limits.maxHeldBytes { finish(.slowReader("more than \(limits.maxHeldBytes) bytes of log held for a paused reader")) }
            return
        }
        linesDelivered += 1
        onLine(line)
    }

    private func flushHeld() {
        while end == nil, !paused, !held.isEmpty {
            let line = held.removeFirst()
            heldBytes -= line.utf8.count
            linesDelivered += 1
            onLine(line)
        }
    }

    private func serverEnded(_ error: KubernetesError?) {
        call = nil
        guard end == nil else { return }
        if let last = splitter.finish() { deliver(String(decoding: last, as: UTF8.self)) }
        if paused || !held.isEmpty {
            serverDone = .some(error)
            return
        }
        finishFromServer(error)
    }

    private func finishFromServer(_ error: KubernetesError?) {
        finish(error.map { .failed($0) } ?? .ended)
    }

    private func finish(_ how: End) {
        guard end == nil else { return }
        end = how
        pauseTimer?.cancel()
        pauseTimer = nil
        call?.cancel()
        call = nil
        held = []
        heldBytes = 0
        onEnd(how)
    }
}
