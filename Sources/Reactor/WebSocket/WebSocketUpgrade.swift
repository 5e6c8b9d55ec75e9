/// Server side: turns an HTTP request into a WebSocket, or answers why not.
public enum WebSocketServerUpgrade {
    /// Validates `request` and, if it is a proper upgrade, answers 101 and calls `onConnect`
    /// with the connection (set its callbacks there; buffered input is processed right after).
    /// Otherwise answers 400 (or 426 for a wrong version) and returns false.
    @discardableResult
    public static func upgrade(_ request: HTTPRequest, _ responder: HTTPResponder, subprotocols: [String] = [],
                               maxMessageSize: Int = 16 << 20, extraHeaders: HTTPHeaders = HTTPHeaders(),
                               onConnect: @escaping (WebSocketConnection) -> Void) -> Bool {
        switch WebSocketHandshake.validate(request: request.head, supportedSubprotocols: subprotocols) {
        case .failure(let error):
            // The client meant to leave HTTP behind; don't keep the connection for more requests.
            var h = HTTPHeaders([("Connection", "close")])
            if let v = request.header("Sec-WebSocket-Version"), trimOWS(v) != "13" {
                h.add("Sec-WebSocket-Version", "13")
                responder.sendError(426, error.message, headers: h)
            } else {
                responder.sendError(request.method == "GET" ? 400 : 405, error.message, headers: request.method == "GET" ? h : HTTPHeaders([("Allow", "GET"), ("Connection", "close")]))
            }
            return false
        case .success(let decision):
            var h = HTTPHeaders()
            h.add("Upgrade", "websocket")
            h.add("Connection", "Upgrade")
            h.add("Sec-WebSocket-Accept", decision.acceptValue)
            if let p = decision.subprotocol { h.add("Sec-WebSocket-Protocol", p) }
            for f in extraHeaders.fields { h.add(f.name, f.value) }
            responder.upgrade(headers: h) { stream, leftover in
                let ws = WebSocketConnection(stream: stream, role: .server, subprotocol: decision.subprotocol,
                                             leftover: leftover, maxMessageSize: maxMessageSize)
                onConnect(ws)
                ws.start()
            }
            return true
        }
    }
}

public struct WebSocketHandshakeError: ChainedError, Sendable {
    public let reason: String
    /// The HTTP status the server answered with, if it answered.
    public let status: Int?
    /// Why the stream under the handshake closed, when it did with an error.
    public var underlying: ConnectionError?

    public var layer: String { "websocket" }
    public var message: String {
        status.map { "WebSocket handshake failed (HTTP \($0)): \(reason)" } ?? "WebSocket handshake failed: \(reason)"
    }
    public var cause: (any Error)? { underlying }
    public var description: String { chainDescription }
}

/// Client side: sends the upgrade request over an open stream and checks the 101.
/// A 101 without `Sec-WebSocket-Protocol` is accepted even when one was offered (chisel's
/// server never echoes it); a 101 naming a protocol we did not offer is refused.
public final class WebSocketClientHandshake: ByteStreamDelegate {
    public typealias Completion = (Result<WebSocketConnection, WebSocketHandshakeError>) -> Void

    private let stream: ByteStream
    /// nil when libcrypto had no random bytes: the handshake then fails without sending.
    private let key: String?
    private let offered: [String]
    private let maxMessageSize: Int
    private var parser = HTTPParser(kind: .response, limits: HTTPParser.Limits(maxBodyBytes: 64 * 1024))
    private var completion: Completion?
    private var timer: LoopTimer?
    private var head: HTTPResponseHead?
    private var selfRef: WebSocketClientHandshake?

    /// `host` is the Host header value (with the port when it is not the default).
    @discardableResult
    public static func start(stream: ByteStream, host: String, path: String, subprotocols: [String] = [],
                             headers: HTTPHeaders = HTTPHeaders(), timeout: TimeAmount = .seconds(45),
                             maxMessageSize: Int = 16 << 20, completion: @escaping Completion) -> WebSocketClientHandshake {
        let h = WebSocketClientHandshake(stream: stream, subprotocols: subprotocols, maxMessageSize: maxMessageSize, completion: completion)
        h.send(host: host, path: path, headers: headers)
        h.timer = stream.loop.schedule(in: timeout) { [weak h] in
            h?.fail("no 101 response within \(timeout)", status: nil, error: .timedOut("WebSocket handshake"))
        }
        return h
    }

    private init(stream: ByteStream, subprotocols: [String], maxMessageSize: Int, completion: @escaping Completion) {
        self.stream = stream
        self.key = try? WebSocketHandshake.makeKey()
        self.offered = subprotocols
        self.maxMessageSize = maxMessageSize
        self.completion = completion
        parser.requestMethod = "GET"
        selfRef = self
        stream.delegate = self
    }

    private func send(host: String, path: String, headers: HTTPHeaders) {
        guard let key else {
            stream.loop.deferred { [weak self] in
                self?.fail("no random bytes for Sec-WebSocket-Key", status: nil, error: .closedLocally("\(SecureRandom.Failure())"))
            }
            return
        }
        var h = HTTPHeaders()
        if !headers.contains("Host") { h.add("Host", host) }   // a caller's Host (chisel --hostname) wins
        h.add("Connection", "Upgrade")
        h.add("Upgrade", "websocket")
        h.add("Sec-WebSocket-Key", key)
        h.add("Sec-WebSocket-Version", "13")
        if !offered.isEmpty { h.add("Sec-WebSocket-Protocol", offered.joined(separator: ", ")) }
        for f in headers.fields { h.add(f.name, f.value) }
        var out: [UInt8] = []
        HTTPWriter.appendRequestHead(HTTPRequestHead(method: "GET", target: path, headers: h), into: &out)
        stream.write(out)
    }

    public func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {
        parser.feed(bytes)
        process()
    }

    public func streamDidReadEOF(_ stream: ByteStream) {
        parser.feedEOF()
        process()
        if completion != nil { fail("connection closed during the handshake", status: head?.status, error: nil) }
    }

    public func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) {
        if completion != nil { fail("connection closed during the handshake", status: head?.status, error: nil, underlying: error) }
    }

    private func process() {
        while completion != nil {
            let event: HTTPParserEvent?
            do { event = try parser.next() } catch {
                fail("bad HTTP response: \(error.message)", status: head?.status, error: .protocolViolation(error.message))
                return
            }
            guard let event else { return }
            switch event {
            case .responseHead(let h):
                head = h
            case .end:
                guard let h = head else { return }
                if h.status != 101 {
                    fail("expected 101 Switching Protocols, got \(h.status) \(h.reason)", status: h.status, error: nil)
                    return
                }
                finish(h)
                return
            default:
                break
            }
        }
    }

    private func finish(_ h: HTTPResponseHead) {
        guard h.headers.hasToken("Upgrade", "websocket") else { fail("101 without 'Upgrade: websocket'", status: 101, error: nil); return }
        guard h.headers.hasToken("Connection", "upgrade") else { fail("101 without 'Connection: Upgrade'", status: 101, error: nil); return }
        guard h.headers["Sec-WebSocket-Accept"].map({ String(trimOWS($0)) }) == WebSocketHandshake.acceptValue(forKey: key ?? "") else {
            fail("Sec-WebSocket-Accept does not match the key", status: 101, error: nil)
            return
        }
        var chosen: String?
        if let p = h.headers["Sec-WebSocket-Protocol"].map({ String(trimOWS($0)) }), !p.isEmpty {
            guard offered.contains(p) else { fail("server chose subprotocol '\(p)' that was not offered", status: 101, error: nil); return }
            chosen = p
        }
        timer?.cancel()
        timer = nil
        let cb = completion
        completion = nil
        selfRef = nil
        let ws = WebSocketConnection(stream: stream, role: .client, subprotocol: chosen,
                                     leftover: parser.takeBufferedBytes(), maxMessageSize: maxMessageSize)
        cb?(.success(ws))
        ws.start()
    }

    private func fail(_ message: String, status: Int?, error: ConnectionError?, underlying: ConnectionError? = nil) {
        timer?.cancel()
        timer = nil
        let cb = completion
        completion = nil
        selfRef = nil
        stream.delegate = nil
        stream.close(error ?? .protocolViolation(message))
        cb?(.failure(WebSocketHandshakeError(reason: message, status: status, underlying: underlying)))
    }
}
