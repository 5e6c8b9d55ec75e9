/// Settings for a whole client connection.
public struct SSHClientConfig: Sendable {
    public var transport = SSHTransportConfig()
    public var credentials: SSHCredentials
    /// Window we grant each channel; topped up when a quarter is consumed.
    public var channelWindow: UInt32 = 2 * 1024 * 1024
    public var channelMaxPacket: UInt32 = 32 * 1024
    /// Banner exchange, key exchange and authentication must finish within this.
    public var handshakeTimeout: TimeAmount = .seconds(30)
    /// ACK what the server sends at once (TCP_QUICKACK after every read) instead of delaying
    /// the ACKs; only over TCP. sshd leaves Nagle on for forwarding-only connections, so its
    /// small packets wait for our ACK of its previous ones (40 ms per key exchange, measured);
    /// and with delayed ACKs sshd spent about 8 % more CPU per byte it forwarded to us
    /// (bench/ssh.sh, where sshd is the limit). When false, ACKs are still prompt while keys
    /// are exchanged.
    public var acknowledgesPromptly = true
    public init(credentials: SSHCredentials) { self.credentials = credentials }
}

/// Settings for a whole server connection (one client).
public struct SSHServerConfig: Sendable {
    public var transport: SSHTransportConfig
    public var channelWindow: UInt32 = 2 * 1024 * 1024
    public var channelMaxPacket: UInt32 = 32 * 1024
    /// Banner exchange, key exchange and authentication must finish within this.
    public var handshakeTimeout: TimeAmount = .seconds(30)
    /// Refused passwords before the connection ends.
    public var maxAuthAttempts = 6
    /// Until the client has authenticated, its packets may not be longer than this (a KEXINIT
    /// with every algorithm OpenSSH knows is under 2 KB).
    public var maxPacketLengthBeforeAuth = 32 * 1024
    /// Open channels (both directions) at once; more opens are refused.
    public var maxChannels = 1024
    public init(hostKey: SSHServerHostKey) {
        transport = SSHTransportConfig()
        transport.banner = "SSH-2.0-pipeops"
        transport.serverHostKey = hostKey
    }
}

/// What a session needs from either role's configuration.
struct SSHSessionSettings {
    enum Role {
        case client(SSHCredentials)
        case server(maxAuthAttempts: Int, maxPacketLengthBeforeAuth: Int)
    }
    var role: Role
    var transport: SSHTransportConfig
    var channelWindow: UInt32
    var channelMaxPacket: UInt32
    var handshakeTimeout: TimeAmount
    var acknowledgesPromptly: Bool
    var maxChannels: Int

    init(_ c: SSHClientConfig) {
        role = .client(c.credentials)
        transport = c.transport
        channelWindow = c.channelWindow; channelMaxPacket = c.channelMaxPacket
        handshakeTimeout = c.handshakeTimeout; acknowledgesPromptly = c.acknowledgesPromptly
        maxChannels = Int.max
    }

    init(_ c: SSHServerConfig) {
        role = .server(maxAuthAttempts: c.maxAuthAttempts, maxPacketLengthBeforeAuth: c.maxPacketLengthBeforeAuth)
        transport = c.transport
        channelWindow = c.channelWindow; channelMaxPacket = c.channelMaxPacket
        handshakeTimeout = c.handshakeTimeout; acknowledgesPromptly = false
        maxChannels = c.maxChannels
    }
}

/// A reply to a global request: RFC 4254 has no data on failure, but chisel puts raw error text
/// there, so the raw bytes after the message number are kept either way.
public struct SSHGlobalReply: Sendable, Equatable {
    public var success: Bool
    public var data: [UInt8]
    public init(success: Bool, data: [UInt8] = []) { self.success = success; self.data = data }
}

/// A channel the peer wants to open. Answer with `accept` or `reject`, now or later.
public final class SSHChannelOpenRequest {
    public let type: String
    /// Type-specific data, raw to the end of the message (chisel: `host:port`).
    public let data: [UInt8]
    let senderChannel: UInt32, initialWindow: UInt32, maxPacket: UInt32
    weak var session: SSHSession?
    public private(set) var answered = false

    init(type: String, data: [UInt8], sender: UInt32, window: UInt32, maxPacket: UInt32, session: SSHSession) {
        self.type = type; self.data = data; self.senderChannel = sender; self.initialWindow = window
        self.maxPacket = maxPacket; self.session = session
    }

    /// For `forwarded-tcpip`: the address and port that were connected, and the originator.
    public var forwardedTCPIP: (address: String, port: Int, originAddress: String, originPort: Int)? {
        data.withUnsafeBytes { raw in
            var r = SSHReader(raw, context: "forwarded-tcpip")
            guard let a = try? r.readText("connected address"), let p = try? r.readUInt32("connected port"),
                  let oa = try? r.readText("originator address"), let op = try? r.readUInt32("originator port") else { return nil }
            return (a, Int(p), oa, Int(op))
        }
    }

    /// Confirms the channel; its bytes go to `delegate`. Nil if the connection is gone.
    @discardableResult
    public func accept(delegate: ByteStreamDelegate?) -> SSHChannel? {
        guard !answered, let s = session else { return nil }
        answered = true
        return s.confirmChannel(self, delegate: delegate)
    }

    /// Why a channel is refused (RFC 4254 §5.1 reason codes).
    public enum FailureReason: UInt32, Sendable {
        case administrativelyProhibited = 1
        case connectFailed = 2
        case unknownChannelType = 3
        case resourceShortage = 4
    }

    /// Refuses the channel. Reason codes (RFC 4254): 1 prohibited, 2 connect failed, 3 unknown type, 4 resource shortage.
    public func reject(reason: UInt32 = 1, text: String) {
        guard !answered, let s = session else { return }
        answered = true
        s.rejectChannel(self, reason: reason, text: text)
    }

    public func reject(_ reason: FailureReason, text: String) { reject(reason: reason.rawValue, text: text) }
}

/// What the session reports to its owner (the connection glue).
protocol SSHSessionOwner: AnyObject {
    var loop: EventLoop { get }
    func sessionDidAuthenticate(_ session: SSHSession)
    func session(_ session: SSHSession, channelOpen request: SSHChannelOpenRequest)
    /// Server side: whether `password` is right for `user`.
    func session(_ session: SSHSession, authenticate user: String, password: String) -> Bool
    func session(_ session: SSHSession, globalRequest name: String, wantReply: Bool, data: [UInt8]) -> SSHGlobalReply?
    func session(_ session: SSHSession, warning: String)
    func session(_ session: SSHSession, didVerifyHostKey key: SSHHostKey, algorithm: String)
    func session(_ session: SSHSession, failedWith error: SSHError)
    /// Bytes were queued in `transport.output` outside `receive` (a channel wrote).
    func sessionHasOutput(_ session: SSHSession)
}

/// Either side above the transport, sans I/O: service request, user authentication (RFC 4252;
/// as the client, or as a server asking its owner about passwords) and the connection protocol
/// (RFC 4254: global requests, channels opened by either side). Output bytes collect in
/// `transport.output`.
final class SSHSession: SSHTransportDelegate, SSHChannelHost {
    enum Phase: Equatable { case keyExchange, serviceRequested, authenticating, authenticated, failed }

    let config: SSHSessionSettings
    let transport: SSHTransport
    weak var owner: SSHSessionOwner?
    private(set) var phase = Phase.keyExchange
    private var clientAuth: SSHUserAuth?
    private var serverAuth: SSHServerUserAuth?
    /// The user the client authenticated as (server side).
    private(set) var authenticatedUser: String?
    private(set) var channels: [UInt32: SSHChannel] = [:]
    /// Channels we asked the peer to open, by our channel number, until it answers.
    private var pendingOpens: [UInt32: PendingChannelOpen] = [:]
    private var nextChannelID: UInt32 = 0
    private var replyHandlers: [(SSHGlobalReply) -> Void] = []
    /// False while the stream below is above its high-water mark.
    var linkWritable = true {
        didSet { if linkWritable && !oldValue { flushChannels() } }
    }
    let loop: EventLoop

    init(config: SSHSessionSettings, loop: EventLoop) {
        self.config = config
        self.loop = loop
        transport = SSHTransport(config: config.transport)
        switch config.role {
        case .client(let credentials):
            clientAuth = SSHUserAuth(credentials: credentials)
        case .server(let attempts, let preAuthLimit):
            serverAuth = SSHServerUserAuth(maxAttempts: attempts)
            transport.decoder.maxPacketLength = min(preAuthLimit, config.transport.maxPacketLength)
        }
        transport.delegate = self
    }

    var isServer: Bool { serverAuth != nil }

    func start() throws { try transport.start() }
    /// Bytes in, copied into the transport's buffer (streams that cannot read into `readSpace`).
    func receive(_ bytes: UnsafeRawBufferPointer) throws {
        try collectingChannelData { try transport.receive(bytes) }
    }

    /// Pieces that follow each other, decoded in place as one read (see
    /// `SSHTransport.receive(inPlace:)`).
    /// The decoder's buffer is pinned meanwhile: a packet cut between pieces is stitched there,
    /// and its payload must outlive the next piece's unfinished tail until the batch is handed on.
    func receive(inPlace parts: [UnsafeMutableRawBufferPointer]) throws {
        transport.decoder.input.pin()
        defer { transport.decoder.input.unpin() }
        try collectingChannelData { try transport.receive(inPlace: parts) }
    }

    /// Where the next read should land (the transport's packet buffer); then call `didRead`.
    func readSpace() -> UnsafeMutableRawBufferPointer { transport.readSpace() }

    func didRead(_ count: Int) throws {
        try collectingChannelData { try transport.didRead(count) }
    }

    // Channel data that arrives in one read is collected and handed on once per channel, as
    // it lies in the transport's buffer (valid until the next read), so the consumer writes it
    // with one system call and no copy.
    private(set) var collectsChannelData = false
    private var channelsWithCollectedData: [SSHChannel] = []
    private var channelsDelivering: [SSHChannel] = []

    private func collectingChannelData(_ body: () throws -> Void) throws {
        receiveBatch &+= 1
        collectsChannelData = true
        do {
            defer { deliverCollected() }
            try body()
            if transport.canSendNow { flushChannels() }
        }
        try startRekeyIfDrained()
    }

    /// Counts reads (batches of input), so a channel can tell whether data still flows to it.
    private(set) var receiveBatch: UInt64 = 0

    // MARK: Re-exchange after a drain

    // A server with window left when a key exchange starts goes on reading its side of each
    // forward into memory it may not send until the exchange ends (OpenSSH: up to the whole
    // window per channel, grown and compacted in small steps, for as long as that backlog
    // lasts). That costs it far more than a short pause. So when we want new keys we stop
    // topping windows up, let what the server may still send arrive, and start the exchange
    // once every channel that data still flows to has little window left. A channel whose data
    // stopped with window unused cannot drain: when no data at all came for
    // `rekeyDrainPatience`, or after `rekeyDrainLimit`, the exchange starts anyway. Windows
    // reopen when it ends.
    static let rekeyDrainWindowLeft: UInt32 = 64 * 1024
    static let rekeyDrainPatience: TimeAmount = .milliseconds(50)
    static let rekeyDrainLimit = 40   // patience periods: 2 s

    /// True from a wanted re-exchange until it has finished: channels send no window adjusts.
    private(set) var holdsWindowAdjusts = false
    private var rekeyAwaitsDrain = false
    private var rekeyDrainTimer: LoopTimer?
    private var rekeyDrainPeriods = 0
    private var rekeyDrainSeenBatch: UInt64 = 0
    /// Re-exchanges we started, by how the wait for the windows ended.
    private(set) var rekeysStartedDrained = 0, rekeysStartedOnTimeout = 0

    /// Starts a key re-exchange once the channels' windows have drained (see above).
    func rekeyAfterDrain() throws {
        guard phase == .authenticated else { try transport.requestRekey(); return }
        guard !rekeyAwaitsDrain else { return }
        rekeyAwaitsDrain = true
        holdsWindowAdjusts = true
        rekeyDrainPeriods = 0
        rekeyDrainSeenBatch = latestChannelDataBatch
        scheduleRekeyDrainCheck()
        try startRekeyIfDrained()
    }

    private var latestChannelDataBatch: UInt64 { channels.values.reduce(0) { max($0, $1.lastDataBatch) } }

    private func scheduleRekeyDrainCheck() {
        rekeyDrainTimer = loop.schedule(in: Self.rekeyDrainPatience) { [weak self] in
            guard let self, self.rekeyAwaitsDrain else { return }
            let latest = self.latestChannelDataBatch
            self.rekeyDrainPeriods += 1
            if latest != self.rekeyDrainSeenBatch && self.rekeyDrainPeriods < Self.rekeyDrainLimit {
                self.rekeyDrainSeenBatch = latest   // data still comes: the windows are draining
                self.scheduleRekeyDrainCheck()
                return
            }
            self.runTransportStep { try self.startRekey(drained: false) }
        }
    }

    private func startRekeyIfDrained() throws {
        guard rekeyAwaitsDrain else { return }
        let recent = receiveBatch &- 1
        for c in channels.values where c.lastDataBatch >= recent && c.localWindow > Self.rekeyDrainWindowLeft {
            return
        }
        try startRekey(drained: true)
    }

    /// Ends the wait for the drain, by the windows (`drained`) or by the timer, and starts it.
    private func startRekey(drained: Bool) throws {
        stopWaitingForDrain()
        if drained { rekeysStartedDrained += 1 } else { rekeysStartedOnTimeout += 1 }
        try transport.requestRekey()
    }

    private func stopWaitingForDrain() {
        rekeyDrainTimer?.cancel()
        rekeyDrainTimer = nil
        rekeyAwaitsDrain = false
    }

    func channelHasCollectedData(_ channel: SSHChannel) {
        channelsWithCollectedData.append(channel)
    }

    private func deliverCollected() {
        collectsChannelData = false
        guard !channelsWithCollectedData.isEmpty else { return }
        // Swapped, not copied: the two arrays keep their storage from read to read.
        swap(&channelsWithCollectedData, &channelsDelivering)
        for c in channelsDelivering { c.deliverBatch() }
        channelsDelivering.removeAll(keepingCapacity: true)
    }

    // MARK: Transport delegate

    func transportDidCompleteFirstKex(_ transport: SSHTransport) throws {
        phase = .serviceRequested
        guard !isServer else { return }   // the client asks for the service
        var m: [UInt8] = [SSHMsg.serviceRequest]
        m.sshString("ssh-userauth")
        try transport.send(m)
    }

    func transportRekeyIsDue(_ transport: SSHTransport) throws { try rekeyAfterDrain() }

    func transportDidCompleteRekey(_ transport: SSHTransport) {
        // Also when the server started it: its new keys reset our byte counts as well.
        stopWaitingForDrain()
        guard holdsWindowAdjusts else { return }
        holdsWindowAdjusts = false
        for c in channels.values { c.maybeAdjustWindow() }
    }

    func transport(_ transport: SSHTransport, warning: String) { owner?.session(self, warning: warning) }
    func transport(_ transport: SSHTransport, didVerifyHostKey key: SSHHostKey, negotiated: String) {
        owner?.session(self, didVerifyHostKey: key, algorithm: negotiated)
    }

    func transport(_ transport: SSHTransport, didReceive payload: UnsafeRawBufferPointer) throws -> Bool {
        let type = payload[0]
        if isServer && phase != .authenticated { return try handleServerHandshake(type, payload) }
        switch phase {
        case .serviceRequested:
            guard type == SSHMsg.serviceAccept else { throw SSHError.protocolError("expected SERVICE_ACCEPT, got message \(type)") }
            phase = .authenticating
            guard var auth = clientAuth else { return true }
            try transport.send(auth.first())
            clientAuth = auth
            return true
        case .authenticating:
            guard (50...79).contains(type) else { throw SSHError.protocolError("message \(type) before authentication finished") }
            guard var auth = clientAuth else { return true }
            let step = try auth.handle(payload, sessionID: transport.sessionID ?? [])
            clientAuth = auth
            switch step {
            case .send(let m)?: try transport.send(m)
            case .succeeded?:
                phase = .authenticated
                owner?.sessionDidAuthenticate(self)
            case .failed(let why)?:
                phase = .failed
                throw SSHError.authentication(why)
            case nil: break
            }
            return true
        case .authenticated:
            if (50...79).contains(type) { return true }   // late banners
            return try handleConnection(type, payload)
        case .keyExchange, .failed:
            throw SSHError.protocolError("unexpected message \(type)")
        }
    }

    /// Server side, before the client is in: the `ssh-userauth` service, then passwords.
    private func handleServerHandshake(_ type: UInt8, _ payload: UnsafeRawBufferPointer) throws -> Bool {
        switch phase {
        case .serviceRequested:
            guard type == SSHMsg.serviceRequest else { throw SSHError.protocolError("expected SERVICE_REQUEST, got message \(type)") }
            var r = SSHReader(payload, context: "SERVICE_REQUEST", offset: 1)
            let name = try r.readText("service name")
            guard name == "ssh-userauth" else { throw SSHError.protocolError("service '\(name)' requested; only ssh-userauth is offered") }
            var m: [UInt8] = [SSHMsg.serviceAccept]
            m.sshString(name)
            try transport.send(m)
            phase = .authenticating
        case .authenticating:
            guard var auth = serverAuth else { return true }
            let step = try auth.handle(payload) { user, password in
                owner?.session(self, authenticate: user, password: password) ?? false
            }
            serverAuth = auth
            switch step {
            case .send(let m):
                try transport.send(m)
            case .succeeded(let user):
                try transport.send([SSHMsg.userauthSuccess])
                phase = .authenticated
                authenticatedUser = user
                transport.decoder.maxPacketLength = config.transport.maxPacketLength
                owner?.sessionDidAuthenticate(self)
            case .exhausted(let failure, let why):
                try transport.send(failure)
                phase = .failed
                throw SSHError.authentication(why)
            }
        default:
            throw SSHError.protocolError("unexpected message \(type)")
        }
        return true
    }

    // MARK: Connection protocol

    private func channel(_ r: inout SSHReader) throws -> SSHChannel {
        let id = try r.readUInt32("recipient channel")
        guard let c = channels[id] else { throw SSHError.protocolError("\(r.context) for unknown channel \(id)") }
        return c
    }

    private func handleConnection(_ type: UInt8, _ payload: UnsafeRawBufferPointer) throws -> Bool {
        switch type {
        case SSHMsg.channelData:
            var r = SSHReader(payload, context: "CHANNEL_DATA", offset: 1)
            let c = try channel(&r)
            try c.receiveData(try r.readString("data"))
        case SSHMsg.channelExtendedData:
            var r = SSHReader(payload, context: "CHANNEL_EXTENDED_DATA", offset: 1)
            let c = try channel(&r)
            _ = try r.readUInt32("data type")
            try c.receiveData(try r.readString("data"))
        case SSHMsg.channelWindowAdjust:
            var r = SSHReader(payload, context: "CHANNEL_WINDOW_ADJUST", offset: 1)
            let c = try channel(&r)
            try c.receiveWindowAdjust(try r.readUInt32("bytes to add"))
        case SSHMsg.channelEOF:
            var r = SSHReader(payload, context: "CHANNEL_EOF", offset: 1)
            try channel(&r).receiveEOF()
        case SSHMsg.channelClose:
            var r = SSHReader(payload, context: "CHANNEL_CLOSE", offset: 1)
            try channel(&r).receiveClose()
        case SSHMsg.channelRequest:
            var r = SSHReader(payload, context: "CHANNEL_REQUEST", offset: 1)
            let c = try channel(&r)
            _ = try r.readText("request type")
            if try r.readBool("want reply") {
                let id = c.remoteID
                try transport.send { $0.sshByte(SSHMsg.channelFailure); $0.sshUInt32(id) }
            }
        case SSHMsg.channelSuccess, SSHMsg.channelFailure:
            break
        case SSHMsg.channelOpen:
            var r = SSHReader(payload, context: "CHANNEL_OPEN", offset: 1)
            let type = try r.readText("channel type")
            let sender = try r.readUInt32("sender channel")
            let window = try r.readUInt32("initial window size")
            let maxPacket = try r.readUInt32("maximum packet size")
            let request = SSHChannelOpenRequest(type: type, data: Array(r.readRest()), sender: sender, window: window,
                                                maxPacket: maxPacket, session: self)
            if channelCount >= config.maxChannels {
                request.reject(reason: 4, text: "too many open channels (limit \(config.maxChannels))")
                return true
            }
            owner?.session(self, channelOpen: request)
            if !request.answered && owner == nil { request.reject(reason: 1, text: "no handler") }
        case SSHMsg.channelOpenConfirmation:
            var r = SSHReader(payload, context: "CHANNEL_OPEN_CONFIRMATION", offset: 1)
            let id = try r.readUInt32("recipient channel")
            let sender = try r.readUInt32("sender channel")
            let window = try r.readUInt32("initial window size")
            let maxPacket = try r.readUInt32("maximum packet size")
            guard let pending = pendingOpens.removeValue(forKey: id) else {
                throw SSHError.protocolError("open confirmation for channel \(id), which we never opened")
            }
            let c = SSHChannel(host: self, loop: loop, type: pending.type, localID: id, remoteID: sender, remoteWindow: window,
                               remoteMaxPacket: maxPacket, initialWindow: config.channelWindow, maxPacket: config.channelMaxPacket)
            c.delegate = pending.delegate
            channels[id] = c
            pending.completion(.success(c))
        case SSHMsg.channelOpenFailure:
            var r = SSHReader(payload, context: "CHANNEL_OPEN_FAILURE", offset: 1)
            let id = try r.readUInt32("recipient channel")
            let reason = try r.readUInt32("reason code")
            let text = (try? r.readText("description")) ?? ""
            guard let pending = pendingOpens.removeValue(forKey: id) else {
                throw SSHError.protocolError("open failure for channel \(id), which we never opened")
            }
            pending.completion(.failure(.channelRefused(reason: reason, text: text)))
        case SSHMsg.globalRequest:
            var r = SSHReader(payload, context: "GLOBAL_REQUEST", offset: 1)
            let name = try r.readText("request name")
            let wantReply = try r.readBool("want reply")
            let data = Array(r.readRest())
            var reply = owner?.session(self, globalRequest: name, wantReply: wantReply, data: data)
            if reply == nil {
                reply = name == "ping" ? SSHGlobalReply(success: true, data: Array("pong".utf8)) : SSHGlobalReply(success: false)
            }
            if wantReply, let reply {
                try transport.send { out in
                    out.sshByte(reply.success ? SSHMsg.requestSuccess : SSHMsg.requestFailure)
                    out.append(contentsOf: reply.data)
                }
            }
        case SSHMsg.requestSuccess, SSHMsg.requestFailure:
            guard !replyHandlers.isEmpty else { throw SSHError.protocolError("global request reply without a request") }
            let handler = replyHandlers.removeFirst()
            handler(SSHGlobalReply(success: type == SSHMsg.requestSuccess, data: Array(payload[1...])))
        default:
            return false
        }
        return true
    }

    // MARK: Requests from the owner

    func sendGlobalRequest(name: String, wantReply: Bool, data: [UInt8], reply: ((SSHGlobalReply) -> Void)?) throws {
        guard phase == .authenticated else { throw SSHError.protocolError("global request '\(name)' before authentication") }
        try transport.send { out in
            out.sshByte(SSHMsg.globalRequest); out.sshString(name); out.sshBool(wantReply); out.append(contentsOf: data)
        }
        if wantReply { replyHandlers.append(reply ?? { _ in }) }
    }

    /// Asks the peer to open a channel of `type` with `data` after the standard fields; the
    /// channel (its bytes going to `delegate`) or the refusal comes to `completion`.
    func openChannel(type: String, data: [UInt8], delegate: ByteStreamDelegate?,
                     completion: @escaping (Result<SSHChannel, SSHChannelOpenError>) -> Void) {
        guard phase == .authenticated else { completion(.failure(.notConnected)); return }
        guard channelCount < config.maxChannels else {
            completion(.failure(.limitReached(config.maxChannels)))
            return
        }
        let id = allocateChannelID()
        pendingOpens[id] = PendingChannelOpen(type: type, delegate: delegate, completion: completion)
        let window = config.channelWindow, maxPacket = config.channelMaxPacket
        channelSend { out in
            out.sshByte(SSHMsg.channelOpen); out.sshString(type); out.sshUInt32(id)
            out.sshUInt32(window); out.sshUInt32(maxPacket); out.append(contentsOf: data)
        }
    }

    /// Channels open, and opens we sent that are not answered yet.
    var channelCount: Int { channels.count + pendingOpens.count }

    private func allocateChannelID() -> UInt32 {
        var id = nextChannelID
        while channels[id] != nil || pendingOpens[id] != nil { id &+= 1 }
        nextChannelID = id &+ 1
        return id
    }

    func confirmChannel(_ request: SSHChannelOpenRequest, delegate: ByteStreamDelegate?) -> SSHChannel? {
        let id = allocateChannelID()
        let c = SSHChannel(host: self, loop: loop, type: request.type, localID: id, remoteID: request.senderChannel,
                           remoteWindow: request.initialWindow, remoteMaxPacket: request.maxPacket,
                           initialWindow: config.channelWindow, maxPacket: config.channelMaxPacket)
        c.delegate = delegate
        channels[id] = c
        let window = config.channelWindow, maxPacket = config.channelMaxPacket, sender = request.senderChannel
        channelSend { out in
            out.sshByte(SSHMsg.channelOpenConfirmation); out.sshUInt32(sender); out.sshUInt32(id)
            out.sshUInt32(window); out.sshUInt32(maxPacket)
        }
        return c
    }

    func rejectChannel(_ request: SSHChannelOpenRequest, reason: UInt32, text: String) {
        let sender = request.senderChannel
        channelSend { out in
            out.sshByte(SSHMsg.channelOpenFailure); out.sshUInt32(sender); out.sshUInt32(reason)
            out.sshString(text); out.sshString("")
        }
    }

    func flushChannels() {
        guard linkWritable, transport.canSendNow else { return }
        for c in channels.values where c.queuedBytes > 0 {
            c.flushPending()
            if !linkWritable { break }
        }
    }

    /// Ends every channel; the connection is gone.
    func closeAllChannels(_ error: ConnectionError?) {
        stopWaitingForDrain()
        let all = channels.values
        channels = [:]
        for c in all { c.connectionDidClose(error) }
        let handlers = replyHandlers
        replyHandlers = []
        for h in handlers { h(SSHGlobalReply(success: false, data: Array("connection closed".utf8))) }
        let opens = pendingOpens.values
        pendingOpens = [:]
        for p in opens { p.completion(.failure(.notConnected)) }
    }

    // MARK: Channel host

    /// Channel data is encoded only while less than this waits in the transport's output. The
    /// connection writes the output out at the end of the loop turn and then lets the held
    /// channels go on (`outputWasWritten`), so a burst as large as the peer's window is never
    /// held whole in memory (it once grew the output to 2 MiB, kept as capacity after).
    static let outputLimit = 256 * 1024
    private var channelsHeldForOutput = false

    var canSendChannelData: Bool {
        guard linkWritable, transport.canSendNow, phase == .authenticated else { return false }
        if transport.output.count >= Self.outputLimit {
            channelsHeldForOutput = true
            return false
        }
        return true
    }

    /// The output went to the link, which still takes more: channels held by the limit go on.
    func outputWasWritten() {
        guard channelsHeldForOutput else { return }
        channelsHeldForOutput = false
        flushChannels()
    }

    func channelSend(_ build: (inout [UInt8]) -> Void) {
        guard phase != .failed else { return }
        runTransportStep { try transport.send(build) }
    }

    /// Runs a transport step that is not part of handling received bytes (a timer, a channel
    /// writing): the owner hears there is output, or that the step failed.
    private func runTransportStep(_ step: () throws -> Void) {
        do {
            try step()
            owner?.sessionHasOutput(self)
        } catch {
            owner?.session(self, failedWith: .from(error))
        }
    }

    func channelDidFinish(_ channel: SSHChannel) {
        if channels[channel.localID] === channel { channels[channel.localID] = nil }
    }
}

/// Why a channel we asked for did not open.
public enum SSHChannelOpenError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The peer refused it (RFC 4254 reason codes: 1 prohibited, 2 connect failed, 3 unknown type, 4 resource shortage).
    case channelRefused(reason: UInt32, text: String)
    case limitReached(Int)
    case notConnected

    public var description: String {
        switch self {
        case .channelRefused(let reason, let text): return "channel refused (reason \(reason)): \(text)"
        case .limitReached(let n): return "too many open channels (limit \(n))"
        case .notConnected: return "ssh connection not ready or closed"
        }
    }
}

/// A channel open we sent, waiting for the peer's answer.
struct PendingChannelOpen {
    let type: String
    weak var delegate: ByteStreamDelegate?
    let completion: (Result<SSHChannel, SSHChannelOpenError>) -> Void
}
