import Logging

/// What an `SSHConnection` reports, on the loop thread.
public protocol SSHConnectionDelegate: AnyObject {
    /// Key exchange and user authentication are done; requests and channels may start.
    func sshConnectionDidAuthenticate(_ connection: SSHConnection)
    /// The peer opens a channel: call `accept` or `reject` (now or later). Default: reject.
    func sshConnection(_ connection: SSHConnection, channelOpen request: SSHChannelOpenRequest)
    /// Server side: whether `password` is right for `user`. Default: no.
    func sshConnection(_ connection: SSHConnection, authenticate user: String, password: String) -> Bool
    /// A global request from the peer. Return nil for the default: `ping` gets success with
    /// raw `pong`, anything else with want-reply gets failure.
    func sshConnection(_ connection: SSHConnection, globalRequest name: String, wantReply: Bool, data: [UInt8]) -> SSHGlobalReply?
    /// Host key accepted (fingerprint matched, or none was configured and `warning` said so).
    func sshConnection(_ connection: SSHConnection, didVerifyHostKey key: SSHHostKey)
    func sshConnection(_ connection: SSHConnection, warning: String)
    /// Called exactly once; `error` nil for a close we asked for.
    func sshConnection(_ connection: SSHConnection, didDisconnectWith error: SSHError?)
}

extension SSHConnectionDelegate {
    public func sshConnection(_ connection: SSHConnection, channelOpen request: SSHChannelOpenRequest) {
        request.reject(reason: 1, text: "channel type \(request.type) not accepted")
    }
    public func sshConnection(_ connection: SSHConnection, authenticate user: String, password: String) -> Bool { false }
    public func sshConnection(_ connection: SSHConnection, globalRequest name: String, wantReply: Bool, data: [UInt8]) -> SSHGlobalReply? { nil }
    public func sshConnection(_ connection: SSHConnection, didVerifyHostKey key: SSHHostKey) {}
    public func sshConnection(_ connection: SSHConnection, warning: String) {
        connection.loop.logger.warning("ssh: \(warning)")
    }
}

/// An SSH connection over any `ByteStream` (TCP, or a WebSocket stream for chisel), as the
/// client or as the server: the thin glue between the stream and the sans-I/O `SSHSession`.
public final class SSHConnection: ByteStreamReadTarget, InPlaceReader, SSHSessionOwner {
    public enum State: Equatable { case connecting, handshaking, authenticated, closed }

    public let loop: EventLoop
    public let stream: ByteStream
    public weak var delegate: SSHConnectionDelegate?
    public private(set) var state = State.connecting
    public var label = ""

    let session: SSHSession
    private var receiving = false
    /// Bytes a stream handed us while we were still handling a read (held, not decoded then:
    /// the packets of that read still lie in the decoder's buffer).
    private var heldInput: [UInt8] = []
    private var flushing = false
    /// A flush waits for the end of the loop turn: a channel writing one 256 KiB read sends up to
    /// eight packets, and they leave in one stream write (one WebSocket frame, one TLS write).
    private var flushScheduled = false
    /// The bytes being handed to the stream; swapped with the transport's output buffer.
    private var outgoing: [UInt8] = []
    private var handshakeTimer: LoopTimer?
    private var rekeyTimer: LoopTimer?
    /// The stream below, when it can ACK promptly (TCP; not a WebSocket).
    private let promptAcking: PromptAcknowledging?
    /// The stream below, when it may mask our sent bytes in place (a WebSocket: `outgoing` is
    /// scratch once handed over).
    private let overwritingStream: OverwritingWriter?

    /// Wraps `stream` as the client. Call `start()` once the stream is open (the TCP helper does this itself).
    public convenience init(loop: EventLoop, stream: ByteStream, config: SSHClientConfig, delegate: SSHConnectionDelegate?) {
        self.init(loop: loop, stream: stream, settings: SSHSessionSettings(config), delegate: delegate)
    }

    /// The server side on an accepted `stream` (already open): call `start()` to send our
    /// identification line and KEXINIT.
    public convenience init(loop: EventLoop, stream: ByteStream, serverConfig: SSHServerConfig, delegate: SSHConnectionDelegate?) {
        self.init(loop: loop, stream: stream, settings: SSHSessionSettings(serverConfig), delegate: delegate)
    }

    init(loop: EventLoop, stream: ByteStream, settings: SSHSessionSettings, delegate: SSHConnectionDelegate?) {
        self.loop = loop
        self.stream = stream
        promptAcking = stream as? PromptAcknowledging
        overwritingStream = stream as? OverwritingWriter
        self.delegate = delegate
        session = SSHSession(config: settings, loop: loop)
        session.owner = self
        stream.delegate = self
    }

    /// Dials `address` over TCP and runs SSH on it.
    public static func connect(loop: EventLoop, to address: SocketAddress, config: SSHClientConfig,
                               delegate: SSHConnectionDelegate?, timeout: TimeAmount = .seconds(10)) throws(ConnectError) -> SSHConnection {
        let relay = OpenRelay()
        let tcp = try TCPConnection.connect(loop: loop, to: address, timeout: timeout, delegate: relay, label: "ssh")
        let conn = SSHConnection(loop: loop, stream: tcp, config: config, delegate: delegate)
        conn.state = .connecting
        return conn
    }

    /// Sends our identification line and KEXINIT.
    public func start() {
        guard state == .connecting else { return }
        state = .handshaking
        let limit = session.config.handshakeTimeout
        handshakeTimer = loop.schedule(in: limit) { [weak self] in
            self?.fail(SSHError.closed("handshake did not finish within \(limit)"))
        }
        perform { try session.start() }
    }

    public var hostKey: SSHHostKey? { session.transport.hostKey }
    public var serverBanner: String? { session.transport.isServer ? session.config.transport.banner : session.transport.peerBanner }
    /// The other side's identification line.
    public var peerBanner: String? { session.transport.peerBanner }
    /// Server side: the user the client authenticated as.
    public var authenticatedUser: String? { session.authenticatedUser }
    /// Channels open, and opens we sent that are not answered yet.
    public var channelCount: Int { session.channelCount }
    public var negotiatedAlgorithms: String {
        guard let n = session.transport.negotiated else { return "" }
        return "\(n.kex) \(n.hostKey) \(n.cipherS2C) \(n.macS2C.isEmpty ? "(aead)" : n.macS2C)\(n.strictKex ? " strict" : "")"
    }
    public var keyExchangeCount: Int { session.transport.kexCount }
    public var openChannelCount: Int { session.channels.count }

    // MARK: Requests

    /// A global request; `data` goes raw after want-reply. `reply` gets the raw reply bytes.
    public func sendGlobalRequest(_ name: String, wantReply: Bool = true, data: [UInt8] = [],
                                  reply: ((SSHGlobalReply) -> Void)? = nil) {
        guard state == .authenticated else {
            reply?(SSHGlobalReply(success: false, data: Array("ssh: not authenticated (state \(state))".utf8)))
            return
        }
        perform { try session.sendGlobalRequest(name: name, wantReply: wantReply, data: data, reply: reply) }
    }

    /// `tcpip-forward`: the server listens on address:port (0 = any port) and opens
    /// `forwarded-tcpip` channels. `done` gets the bound port or the failure.
    public func requestTCPIPForward(address: String, port: Int, done: @escaping (Result<Int, SSHError>) -> Void) {
        var data: [UInt8] = []
        data.sshString(address); data.sshUInt32(UInt32(truncatingIfNeeded: port))
        sendGlobalRequest("tcpip-forward", data: data) { reply in
            guard reply.success else {
                let text = String(decoding: reply.data, as: UTF8.self)
                done(.failure(.protocolError("tcpip-forward \(address):\(port) refused\(text.isEmpty ? "" : ": \(text)")")))
                return
            }
            if port == 0 {
                let bound: UInt32? = reply.data.withUnsafeBytes { raw in
                    var r = SSHReader(raw, context: "tcpip-forward reply")
                    return try? r.readUInt32("bound port")
                }
                guard let bound else { done(.failure(.malformed("tcpip-forward reply: missing bound port"))); return }
                done(.success(Int(bound)))
            } else {
                done(.success(port))
            }
        }
    }

    public func cancelTCPIPForward(address: String, port: Int, done: ((Bool) -> Void)? = nil) {
        var data: [UInt8] = []
        data.sshString(address); data.sshUInt32(UInt32(truncatingIfNeeded: port))
        sendGlobalRequest("cancel-tcpip-forward", data: data) { done?($0.success) }
    }

    /// Asks the peer to open a channel of `type`; `data` goes raw after the standard fields
    /// (chisel: the `host:port` target). The channel's bytes go to `delegate`.
    public func openChannel(type: String, data: [UInt8] = [], delegate: ByteStreamDelegate?,
                            completion: @escaping (Result<SSHChannel, SSHChannelOpenError>) -> Void) {
        guard state == .authenticated else { completion(.failure(.notConnected)); return }
        session.openChannel(type: type, data: data, delegate: delegate, completion: completion)
        sessionHasOutput(session)
    }

    /// Starts a key re-exchange now (normally automatic after 1 GiB or 1 hour).
    public func rekey() { perform { try session.rekeyAfterDrain() } }

    /// Sends DISCONNECT (by application) and closes.
    public func close(_ error: SSHError? = nil) {
        guard state != .closed else { return }
        session.transport.sendDisconnect(reason: error == nil ? 11 : 2, text: error.map { "\($0)" } ?? "bye")
        flush()
        finish(error)
    }

    // MARK: Glue

    private func perform(_ body: () throws -> Void) {
        guard state != .closed else { return }
        do { try body() } catch { fail(error) }
        flush()
    }

    /// Hands the transport's output to the stream. `stream.write` can call back into us
    /// (writability changes, and from there channels sending more): those nested calls must not
    /// write again, or bytes still being handed over would go out twice. So only the outermost
    /// call writes, taking the output out first and looping until nothing new was produced.
    private func flush() {
        guard !flushing else { return }
        flushing = true
        defer { flushing = false }
        while state != .closed {
            if session.transport.output.isEmpty {
                // Channels held back by the output limit may send again while the link takes it.
                guard stream.isWritable else { break }
                session.outputWasWritten()
                if session.transport.output.isEmpty { break }
            }
            swap(&outgoing, &session.transport.output)
            if let scribbling = overwritingStream {
                outgoing.withUnsafeMutableBytes { scribbling.write(overwriting: $0) }
            } else {
                outgoing.withUnsafeBytes { stream.write($0) }
            }
            outgoing.removeAll(keepingCapacity: true)
        }
        if state != .closed && !stream.isWritable { session.linkWritable = false }
        // Prompt ACKs as configured, and always while keys are exchanged or about to be (see
        // SSHClientConfig.acknowledgesPromptly for why).
        let prompt = session.config.acknowledgesPromptly || session.holdsWindowAdjusts || session.transport.isExchangingKeys
        if let s = promptAcking, s.acknowledgesPromptly != prompt { s.acknowledgesPromptly = prompt }
    }

    private func fail(_ error: Error) {
        let e = SSHError.from(error)
        guard state != .closed else { return }
        switch e {
        case .disconnected, .closed, .transport: break   // nobody left to tell
        default:
            session.transport.sendDisconnect(reason: 2, text: "\(e)")
            flush()
        }
        finish(e)
    }

    private func finish(_ error: SSHError?) {
        guard state != .closed else { return }
        flush()   // what channels queued this turn, before the stream closes
        state = .closed
        handshakeTimer?.cancel(); handshakeTimer = nil
        rekeyTimer?.cancel(); rekeyTimer = nil
        session.closeAllChannels(error.map { .protocolViolation("\($0)") })
        stream.delegate = nil
        // Let DISCONNECT go out before the stream closes.
        if let s = stream as? FlushClosable { s.closeWhenFlushed() } else { stream.close(nil) }
        let d = delegate
        delegate = nil
        d?.sshConnection(self, didDisconnectWith: error)
    }

    private func scheduleTimedRekey() {
        rekeyTimer?.cancel()
        let interval = session.config.transport.rekeyAfterTime
        rekeyTimer = loop.schedule(in: interval) { [weak self] in
            guard let self else { return }
            self.rekey()
            self.scheduleTimedRekey()
        }
    }

    // ByteStreamDelegate (the stream under us)

    public func streamDidOpen(_ stream: ByteStream) { start() }

    public func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {
        if receiving { heldInput.append(contentsOf: bytes); return }
        receive { try session.receive(bytes) }
    }

    // A WebSocket's messages from one read, decrypted where they lie and decoded together, so
    // each channel's data from them goes on with one write and no copy.
    public func stream(_ stream: ByteStream, didReadInPlace parts: [UnsafeMutableRawBufferPointer]) {
        if receiving { for part in parts { heldInput.append(contentsOf: part) }; return }
        receive { try session.receive(inPlace: parts) }
    }

    // Reads land in the decoder's buffer: no copy before decryption.
    public func readSpace(for stream: ByteStream) -> UnsafeMutableRawBufferPointer {
        receiving || state == .closed ? UnsafeMutableRawBufferPointer(start: nil, count: 0) : session.readSpace()
    }

    public func stream(_ stream: ByteStream, didReadInto count: Int) {
        receive { try session.didRead(count) }
    }

    private func receive(_ body: () throws -> Void) {
        receiving = true
        perform(body)
        while !heldInput.isEmpty && state != .closed {
            let held = heldInput
            heldInput = []
            perform { try held.withUnsafeBytes { try session.receive($0) } }
        }
        receiving = false
        flush()
    }

    public func streamDidReadEOF(_ stream: ByteStream) {
        fail(SSHError.closed("\(session.isServer ? "client" : "server") closed the stream"))
    }

    public func stream(_ stream: ByteStream, writabilityChanged writable: Bool) {
        session.linkWritable = writable
        flush()
    }

    public func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) {
        fail(error.map(SSHError.transport) ?? .closed("stream closed"))
    }

    // SSHSessionOwner

    func sessionDidAuthenticate(_ session: SSHSession) {
        state = .authenticated
        handshakeTimer?.cancel(); handshakeTimer = nil
        scheduleTimedRekey()
        delegate?.sshConnectionDidAuthenticate(self)
    }

    func session(_ session: SSHSession, authenticate user: String, password: String) -> Bool {
        delegate?.sshConnection(self, authenticate: user, password: password) ?? false
    }

    func session(_ session: SSHSession, channelOpen request: SSHChannelOpenRequest) {
        if let d = delegate { d.sshConnection(self, channelOpen: request) } else { request.reject(reason: 1, text: "no handler") }
    }

    func session(_ session: SSHSession, globalRequest name: String, wantReply: Bool, data: [UInt8]) -> SSHGlobalReply? {
        delegate?.sshConnection(self, globalRequest: name, wantReply: wantReply, data: data)
    }

    func session(_ session: SSHSession, warning: String) { delegate?.sshConnection(self, warning: warning) }
    func session(_ session: SSHSession, didVerifyHostKey key: SSHHostKey, algorithm: String) {
        delegate?.sshConnection(self, didVerifyHostKey: key)
    }
    func session(_ session: SSHSession, failedWith error: SSHError) {
        // Defer: this may run inside a channel callback that still uses the channel.
        loop.deferred { [weak self] in self?.fail(error) }
    }
    func sessionHasOutput(_ session: SSHSession) {
        guard !receiving, !flushScheduled else { return }   // a receive flushes when it ends
        flushScheduled = true
        loop.deferred { [weak self] in
            guard let self else { return }
            self.flushScheduled = false
            self.flush()
        }
    }
}

/// Before the TCP stream opens, SSHConnection is not its delegate yet in `connect`: this
/// stand-in is replaced at once by the init, so it never receives anything.
private final class OpenRelay: ByteStreamDelegate {
    func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {}
    func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) {}
}
