/// Server-Sent Events framing (text/event-stream), sans-I/O: events in, bytes out.
public struct SSEEvent: Sendable, Equatable {
    public var id: String?
    public var event: String?
    public var data: String
    /// Reconnection delay the browser should use, in milliseconds.
    public var retry: Int?

    public init(id: String? = nil, event: String? = nil, data: String, retry: Int? = nil) {
        self.id = id
        self.event = event
        self.data = data
        self.retry = retry
    }
}

public enum SSEWriter {
    /// The event as wire bytes. Multi-line data becomes several `data:` lines (CR, LF or CRLF
    /// all split); line breaks in `id`/`event` would forge fields, so they become spaces.
    public static func append(_ e: SSEEvent, into out: inout [UInt8]) {
        if let id = e.id { appendField("id", id, into: &out) }
        if let ev = e.event { appendField("event", ev, into: &out) }
        if let r = e.retry { out.append(contentsOf: "retry: \(r)\n".utf8) }
        var line: [UInt8] = []
        var lastWasCR = false
        for b in e.data.utf8 {
            if b == 0x0A && lastWasCR { lastWasCR = false; continue }
            lastWasCR = b == 0x0D
            if b == 0x0A || b == 0x0D {
                appendRaw("data", line, into: &out)
                line.removeAll(keepingCapacity: true)
            } else {
                line.append(b)
            }
        }
        appendRaw("data", line, into: &out)
        out.append(0x0A)
    }

    public static func encode(_ e: SSEEvent) -> [UInt8] {
        var out: [UInt8] = []
        append(e, into: &out)
        return out
    }

    /// A comment line (ignored by clients; keeps proxies from closing an idle stream).
    public static func comment(_ text: String = "keepalive") -> [UInt8] {
        var out: [UInt8] = [0x3A, 0x20]
        for b in text.utf8 { out.append(b == 0x0A || b == 0x0D ? 0x20 : b) }
        out.append(0x0A); out.append(0x0A)
        return out
    }

    static func appendField(_ name: String, _ value: String, into out: inout [UInt8]) {
        appendRaw(name, value.utf8.map { $0 == 0x0A || $0 == 0x0D ? 0x20 : $0 }, into: &out)
    }

    static func appendRaw(_ name: String, _ value: [UInt8], into out: inout [UInt8]) {
        out.append(contentsOf: name.utf8)
        out.append(0x3A); out.append(0x20)
        out.append(contentsOf: value)
        out.append(0x0A)
    }

    /// Response headers for an event stream.
    public static var headers: HTTPHeaders {
        HTTPHeaders([("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no")])
    }
}

/// An event stream over a streaming HTTP response, with periodic keep-alive comments.
public final class SSEStream {
    public let response: HTTPResponseStream
    private var keepAliveTimer: LoopTimer?
    private let keepAliveInterval: TimeAmount
    public var onClose: (() -> Void)?

    /// Answers `responder` with `200 text/event-stream` and starts the keep-alive timer.
    public init(responder: HTTPResponder, keepAlive: TimeAmount = .seconds(15), retry: Int? = nil, headers: HTTPHeaders = HTTPHeaders()) {
        var h = SSEWriter.headers
        for f in headers.fields { h.add(f.name, f.value) }
        response = responder.startStreaming(200, headers: h)
        keepAliveInterval = keepAlive
        response.onClose = { [weak self] in self?.closed() }
        if let retry { response.write(Array("retry: \(retry)\n\n".utf8)) }
        scheduleKeepAlive()
    }

    public var isOpen: Bool { response.isOpen }
    public var isWritable: Bool { response.isWritable }

    public func send(_ event: SSEEvent) {
        response.write(SSEWriter.encode(event))
    }

    public func sendComment(_ text: String) { response.write(SSEWriter.comment(text)) }

    public func finish() { response.finish() }

    private func scheduleKeepAlive() {
        guard response.isOpen, let loop = response.loop else { return }
        keepAliveTimer = loop.schedule(in: keepAliveInterval) { [weak self] in
            guard let self else { return }
            self.response.write(SSEWriter.comment("keepalive"))
            self.scheduleKeepAlive()
        }
    }

    private func closed() {
        keepAliveTimer?.cancel()
        keepAliveTimer = nil
        let cb = onClose
        onClose = nil
        cb?()
    }
}
