/// Settings of the transport layer.
public struct SSHTransportConfig: Sendable {
    /// Sent as our identification line; chisel uses `SSH-chisel-v3-client`.
    public var banner = "SSH-2.0-pipeops-agent"
    public var algorithms = SSHAlgorithms()
    /// Expected host key fingerprint (chisel base64, `SHA256:...`, or MD5 hex prefix); empty accepts any.
    /// Client side only.
    public var expectedFingerprint = ""
    /// Set on the server side: the key its exchanges are signed with. Nil: this side is the client.
    public var serverHostKey: SSHServerHostKey?
    public var rekeyAfterBytes: UInt64 = 1 << 30
    public var rekeyAfterTime: TimeAmount = .seconds(3600)
    public var maxPacketLength = SSHPacketDecoder.defaultMaxPacketLength
    /// Bytes of text the peer may send before its identification line.
    public var maxPreBannerBytes = 64 * 1024
    public init() {}
}

/// What the transport tells the layers above it (all on the loop thread, during `receive`).
protocol SSHTransportDelegate: AnyObject {
    func transportDidCompleteFirstKex(_ transport: SSHTransport) throws
    /// A message for the auth or connection layer; return false if its type is unknown.
    func transport(_ transport: SSHTransport, didReceive payload: UnsafeRawBufferPointer) throws -> Bool
    func transport(_ transport: SSHTransport, warning: String)
    func transport(_ transport: SSHTransport, didVerifyHostKey key: SSHHostKey, negotiated: String)
    /// Our byte limit for the keys was reached. The delegate starts the re-exchange with
    /// `requestRekey` when it is ready (it may first let the channels' windows drain).
    func transportRekeyIsDue(_ transport: SSHTransport) throws
    /// A re-exchange (not the first) finished both ways.
    func transportDidCompleteRekey(_ transport: SSHTransport)
}

/// The SSH transport (RFC 4253), sans I/O: identification lines, binary packets, key exchange
/// and re-exchange (strict kex), and encryption, as the client or (with `serverHostKey`) as the
/// server. Bytes in through `receive`; bytes out collect in `output` for the glue to write.
final class SSHTransport {
    let config: SSHTransportConfig
    weak var delegate: SSHTransportDelegate?
    /// Bytes waiting to be written to the stream.
    var output: [UInt8] = []
    /// The most bytes `output` has held after a channel's packet (SSHSession.outputLimit bounds it).
    private(set) var peakOutput = 0

    /// The peer's identification line (the server's for a client, the client's for a server).
    private(set) var peerBanner: String?
    private var preBannerBytes = 0          // text lines the peer sent before its identification
    let decoder = SSHPacketDecoder()
    private var encoder = SSHPacketEncoder()

    private(set) var sessionID: [UInt8]?
    private(set) var hostKey: SSHHostKey?
    private(set) var negotiated: SSHNegotiated?
    private(set) var firstKexDone = false
    private(set) var kexCount = 0
    private var kex: SSHKexState?
    private var queued: [[UInt8]] = []     // upper-layer payloads held while our kex runs
    private var strict = false

    init(config: SSHTransportConfig) {
        self.config = config
        decoder.maxPacketLength = config.maxPacketLength
    }

    var isExchangingKeys: Bool { kex != nil }
    var isServer: Bool { config.serverHostKey != nil }

    /// Upper-layer sends go out now (not queued behind a key exchange).
    var canSendNow: Bool { kex == nil || kex?.newKeysSent == true || kex?.ourKexInit == nil }

    /// Queues our identification line and first KEXINIT.
    func start() throws {
        output.append(contentsOf: Array(config.banner.utf8) + [13, 10])
        try startKex()
    }

    // MARK: Receiving

    /// Bytes in, copied into the decoder (streams that cannot read into `readSpace`).
    func receive(_ bytes: UnsafeRawBufferPointer) throws {
        decoder.append(bytes)
        try process()
    }

    /// Pieces that follow each other (a WebSocket read's messages) in memory we may change:
    /// their whole packets are decrypted and handed up where they lie, and only a packet cut
    /// between pieces is copied. Payloads stay valid while the pieces do.
    func receive(inPlace parts: [UnsafeMutableRawBufferPointer]) throws {
        guard peerBanner != nil else {
            for part in parts { decoder.append(UnsafeRawBufferPointer(part)) }
            try process()
            return
        }
        for part in parts {
            try decoder.receive(inPlace: part) { payload, seq in
                try self.handle(payload, seq: seq)
                try self.checkRekeyLimit()
            }
        }
    }

    /// Where the next read should land: the decoder's buffer, after the unfinished packet.
    func readSpace() -> UnsafeMutableRawBufferPointer { decoder.readSpace() }

    /// `count` bytes were read into the space `readSpace` returned.
    func didRead(_ count: Int) throws {
        decoder.didRead(count)
        try process()
    }

    /// Handles every whole packet received. The payloads handed up lie in the decoder's buffer
    /// and stay valid until the next `readSpace` or `receive`.
    private func process() throws {
        if peerBanner == nil {
            guard try parseBanner() else { return }
        }
        while true {
            let seq = decoder.sequence
            let got = try decoder.next { payload in try self.handle(payload, seq: seq) }
            if !got { break }
            try checkRekeyLimit()
        }
    }

    /// Finds the peer's identification line at the front of the decoder's buffer, consuming
    /// it and any text lines before it; false while it is incomplete.
    private func parseBanner() throws -> Bool {
        while true {
            let raw = UnsafeRawBufferPointer(decoder.input.bytes)
            guard let newline = raw.firstIndex(of: 10) else {
                if preBannerBytes + raw.count > config.maxPreBannerBytes {
                    throw SSHError.limitExceeded("no SSH identification line in the first \(config.maxPreBannerBytes) bytes")
                }
                return false
            }
            var line = raw[0..<newline]
            if line.last == 13 { line = line.dropLast() }
            if line.starts(with: "SSH-".utf8) {
                let text = String(decoding: line, as: UTF8.self)
                if text.hasPrefix("SSH-1.") && !text.hasPrefix("SSH-1.99-") {
                    throw SSHError.protocolError("\(isServer ? "client" : "server") speaks SSH protocol 1 only: '\(text)'")
                }
                guard line.count <= 255 else { throw SSHError.limitExceeded("identification line is \(line.count) bytes, limit 255") }
                peerBanner = text
                decoder.input.consume(newline + 1)
                return true
            }
            preBannerBytes += newline + 1
            decoder.input.consume(newline + 1)
        }
    }

    private func handle(_ payload: UnsafeRawBufferPointer, seq: UInt32) throws {
        guard let type = payload.first else { throw SSHError.malformed("packet \(seq): empty payload") }
        switch type {
        case SSHMsg.disconnect:
            var r = SSHReader(payload, context: "DISCONNECT", offset: 1)
            let code = try r.readUInt32("reason code")
            let text = (try? r.readText("description")) ?? ""
            throw SSHError.disconnected(reason: code, text: text)
        case SSHMsg.kexInit, SSHMsg.newKeys, 30...49:
            try handleKex(type, payload, seq: seq)
            return
        default:
            break
        }
        if !firstKexDone && (strict || type > SSHMsg.debug) {
            throw SSHError.protocolError("message \(type) arrived during the initial key exchange\(strict ? " (strict kex)" : "")")
        }
        switch type {
        case SSHMsg.ignore, SSHMsg.debug, SSHMsg.unimplemented, SSHMsg.extInfo:
            return
        default:
            guard let d = delegate else { return }
            if try !d.transport(self, didReceive: payload) {
                var msg: [UInt8] = [SSHMsg.unimplemented]
                msg.sshUInt32(seq)
                try send(msg)
            }
        }
    }

    // MARK: Sending

    /// Sends an upper-layer message built in place by `build` (queued while our kex runs).
    func send(_ build: (inout [UInt8]) -> Void) throws {
        if !canSendNow {
            var payload: [UInt8] = []
            build(&payload)
            queued.append(payload)
            return
        }
        let start = encoder.begin(&output)
        build(&output)
        try encoder.finish(&output, start: start)
        peakOutput = max(peakOutput, output.count)
        try checkRekeyLimit()
    }

    func send(_ payload: [UInt8]) throws { try send { $0.append(contentsOf: payload) } }

    /// Sends a transport message now, even during a key exchange.
    private func sendTransport(_ payload: [UInt8]) throws {
        let start = encoder.begin(&output)
        output.append(contentsOf: payload)
        try encoder.finish(&output, start: start)
    }

    /// SSH_MSG_DISCONNECT (reason 11: by application, 2: protocol error, ...).
    func sendDisconnect(reason: UInt32, text: String) {
        var msg: [UInt8] = [SSHMsg.disconnect]
        msg.sshUInt32(reason); msg.sshString(text); msg.sshString("")
        try? sendTransport(msg)
    }

    // MARK: Key exchange

    /// Starts a key re-exchange if none is running (after first kex; time limit, tests).
    func requestRekey() throws {
        guard firstKexDone, kex == nil else { return }
        try startKex()
    }

    private func checkRekeyLimit() throws {
        guard firstKexDone, kex == nil else { return }
        if encoder.bytesSinceKex >= config.rekeyAfterBytes || decoder.bytesSinceKex >= config.rekeyAfterBytes {
            // Told after every packet until the delegate starts the exchange (it may wait).
            if let d = delegate { try d.transportRekeyIsDue(self) } else { try startKex() }
        }
    }

    private func startKex() throws {
        var state = kex ?? SSHKexState()
        var m = SSHKexInit()
        m.cookie = try SSHRandom.bytes(16)
        if isServer {
            m.kex = config.algorithms.kex + (firstKexDone ? [] : ["kex-strict-s-v00@openssh.com"])
            m.hostKeys = [SSHServerHostKey.algorithm]
        } else {
            m.kex = config.algorithms.kex + (firstKexDone ? [] : ["ext-info-c", "kex-strict-c-v00@openssh.com"])
            m.hostKeys = config.algorithms.hostKeys
        }
        m.ciphersC2S = config.algorithms.ciphers; m.ciphersS2C = config.algorithms.ciphers
        m.macsC2S = config.algorithms.macs; m.macsS2C = config.algorithms.macs
        state.ourKexInit = m
        state.ourKexInitPayload = m.encode()
        kex = state
        try sendTransport(state.ourKexInitPayload)
    }

    private func handleKex(_ type: UInt8, _ payload: UnsafeRawBufferPointer, seq: UInt32) throws {
        switch type {
        case SSHMsg.kexInit:
            if kex?.theirKexInitPayload != nil { throw SSHError.protocolError("second KEXINIT during a key exchange") }
            let theirs = try SSHKexInit.parse(payload)
            if kex?.ourKexInit == nil { try startKex() }
            guard var state = kex, let ours = state.ourKexInit else { return }
            state.theirKexInitPayload = Array(payload)
            let n = isServer ? try SSHKexInit.negotiate(client: theirs, server: ours)
                             : try SSHKexInit.negotiate(client: ours, server: theirs)
            if !firstKexDone {
                strict = n.strictKex
                if strict && seq != 0 { throw SSHError.protocolError("strict kex: KEXINIT was packet \(seq), not the first") }
            }
            state.negotiated = n
            kex = state
            // The client speaks first (KEX_ECDH_INIT); the server answers it.
            guard !isServer else { return }
            let ephemeral = try SSHEphemeralKey(kex: n.kex)
            kex?.ephemeral = ephemeral
            var msg: [UInt8] = [SSHMsg.kexECDHInit]
            msg.sshString(ephemeral.publicKey)
            try sendTransport(msg)
        case SSHMsg.kexECDHInit where isServer:
            guard var state = kex, state.negotiated != nil, state.pendingEncoder == nil else {
                throw SSHError.protocolError("KEX_ECDH_INIT without a key exchange in progress")
            }
            let reply = try answerInit(&state, payload)
            kex = state
            try sendTransport(reply)
            try sendNewKeys()
        case SSHMsg.kexECDHReply where !isServer:
            guard var state = kex, state.negotiated != nil, state.pendingDecoder == nil else {
                throw SSHError.protocolError("KEX_ECDH_REPLY without a key exchange in progress")
            }
            try processReply(&state, payload)
            kex = state
            try sendNewKeys()
        case SSHMsg.newKeys:
            guard let state = kex, let c = state.pendingDecoder, state.newKeysSent else {
                throw SSHError.protocolError("NEWKEYS before the key exchange reply")
            }
            decoder.cipher = c
            if strict { decoder.resetSequenceAfterThisPacket() }
            decoder.resetKexCounters()
            negotiated = state.negotiated
            kex = nil
            kexCount += 1
            if !firstKexDone {
                firstKexDone = true
                try delegate?.transportDidCompleteFirstKex(self)
            } else {
                delegate?.transportDidCompleteRekey(self)
            }
        default:
            throw SSHError.protocolError("unexpected key exchange message \(type)")
        }
    }

    /// Our NEWKEYS, then our side's new keys; upper-layer messages held during the exchange go out.
    private func sendNewKeys() throws {
        try sendTransport([SSHMsg.newKeys])
        if let c = kex?.pendingEncoder { encoder.cipher = c }
        if strict { encoder.sequence = 0 }
        encoder.resetKexCounters()
        kex?.newKeysSent = true
        let held = queued
        queued = []
        for payload in held { try send(payload) }
    }

    /// Client: checks the server's KEX_ECDH_REPLY (host key, signature) and derives the keys.
    private func processReply(_ state: inout SSHKexState, _ payload: UnsafeRawBufferPointer) throws {
        guard let n = state.negotiated, let ephemeral = state.ephemeral else { throw SSHError.protocolError("no ephemeral key") }
        var r = SSHReader(payload, context: "KEX_ECDH_REPLY", offset: 1)
        let hostKeyBlob = try r.readBytes("K_S")
        let serverPublic = try r.readBytes("Q_S")
        let signature = try r.readBytes("signature")
        let secret = try ephemeral.sharedSecret(with: serverPublic)
        let exchangeHash = self.exchangeHash(state, hostKeyBlob: hostKeyBlob, clientPublic: ephemeral.publicKey,
                                             serverPublic: serverPublic, secret: secret)
        let key = try SSHHostKey(blob: hostKeyBlob)
        try key.verify(signature: signature, message: exchangeHash, algorithm: n.hostKey)
        if let known = hostKey {
            guard known.blob == key.blob else {
                throw SSHError.hostKey("host key changed during re-exchange: got \(key.fingerprintSHA256Base64), was \(known.fingerprintSHA256Base64)")
            }
        } else {
            guard key.matches(fingerprint: config.expectedFingerprint) else {
                throw SSHError.hostKeyMismatch(expected: config.expectedFingerprint, got: key.fingerprintSHA256Base64)
            }
            if config.expectedFingerprint.isEmpty {
                delegate?.transport(self, warning: "host key not checked (no fingerprint configured): \(key.keyType) \(key.fingerprintSHA256Base64)")
            }
            hostKey = key
            delegate?.transport(self, didVerifyHostKey: key, negotiated: n.hostKey)
        }
        try deriveKeys(&state, secret: secret, exchangeHash: exchangeHash)
    }

    /// Server: answers the client's KEX_ECDH_INIT with our ephemeral key and the signed
    /// exchange hash, and derives the keys. Returns the KEX_ECDH_REPLY.
    private func answerInit(_ state: inout SSHKexState, _ payload: UnsafeRawBufferPointer) throws -> [UInt8] {
        guard let n = state.negotiated, let hostKey = config.serverHostKey else { throw SSHError.protocolError("no server host key") }
        var r = SSHReader(payload, context: "KEX_ECDH_INIT", offset: 1)
        let clientPublic = try r.readBytes("Q_C")
        let ephemeral = try SSHEphemeralKey(kex: n.kex)
        let secret = try ephemeral.sharedSecret(with: clientPublic)
        let blob = hostKey.publicKeyBlob
        let exchangeHash = self.exchangeHash(state, hostKeyBlob: blob, clientPublic: clientPublic,
                                             serverPublic: ephemeral.publicKey, secret: secret)
        var reply: [UInt8] = [SSHMsg.kexECDHReply]
        reply.sshString(blob)
        reply.sshString(ephemeral.publicKey)
        reply.sshString(try hostKey.signatureBlob(over: exchangeHash))
        if self.hostKey == nil { self.hostKey = hostKey.publicKey }
        try deriveKeys(&state, secret: secret, exchangeHash: exchangeHash)
        return reply
    }

    /// H (RFC 4253 section 8, RFC 5656 section 4): both identification lines and KEXINITs in
    /// client, server order, then K_S, Q_C, Q_S and K.
    private func exchangeHash(_ state: SSHKexState, hostKeyBlob: [UInt8], clientPublic: [UInt8], serverPublic: [UInt8],
                              secret: [UInt8]) -> [UInt8] {
        let ours = state.ourKexInitPayload, theirs = state.theirKexInitPayload ?? []
        var buf: [UInt8] = []
        if isServer {
            buf.sshString(peerBanner ?? ""); buf.sshString(config.banner)
            buf.sshString(theirs); buf.sshString(ours)
        } else {
            buf.sshString(config.banner); buf.sshString(peerBanner ?? "")
            buf.sshString(ours); buf.sshString(theirs)
        }
        buf.sshString(hostKeyBlob); buf.sshString(clientPublic); buf.sshString(serverPublic)
        buf.sshMPInt(secret)
        return SSHAlgorithms.kexDigest(state.negotiated?.kex ?? "").hash(buf)
    }

    /// RFC 4253 section 7.2: the keys of both directions; ours encrypt, the peer's decrypt.
    private func deriveKeys(_ state: inout SSHKexState, secret: [UInt8], exchangeHash: [UInt8]) throws {
        guard let n = state.negotiated else { return }
        var k: [UInt8] = []
        k.sshMPInt(secret)
        let digest = SSHAlgorithms.kexDigest(n.kex)
        let sid = sessionID ?? exchangeHash
        sessionID = sid
        func derive(_ letter: Character, _ length: Int) -> [UInt8] {
            length == 0 ? [] : deriveKey(digest: digest, sharedSecret: k, exchangeHash: exchangeHash,
                                         letter: UInt8(ascii: letter.unicodeScalars.first ?? "A"), sessionID: sid, length: length)
        }
        typealias Direction = (cipher: String, mac: String, key: Character, iv: Character, macKey: Character)
        func make(_ d: Direction, encrypt: Bool) throws -> SSHPacketCipher {
            let sizes = SSHAlgorithms.cipherSizes(d.cipher)
            let macLength = d.mac.isEmpty ? 0 : SSHAlgorithms.macDigest(d.mac).length
            return try SSHAlgorithms.makeCipher(name: d.cipher, mac: d.mac, key: derive(d.key, sizes.key), iv: derive(d.iv, sizes.iv),
                                                macKey: derive(d.macKey, macLength), encrypt: encrypt)
        }
        let c2s: Direction = (n.cipherC2S, n.macC2S, "C", "A", "E"), s2c: Direction = (n.cipherS2C, n.macS2C, "D", "B", "F")
        state.pendingEncoder = try make(isServer ? s2c : c2s, encrypt: true)
        state.pendingDecoder = try make(isServer ? c2s : s2c, encrypt: false)
        state.ephemeral = nil
    }
}

/// One key exchange in flight.
struct SSHKexState {
    var ourKexInit: SSHKexInit?
    var ourKexInitPayload: [UInt8] = []
    var theirKexInitPayload: [UInt8]?
    var negotiated: SSHNegotiated?
    /// Our ephemeral key; the client makes it on KEXINIT, the server on KEX_ECDH_INIT.
    var ephemeral: SSHEphemeralKey?
    var pendingEncoder: SSHPacketCipher?
    var pendingDecoder: SSHPacketCipher?
    var newKeysSent = false
}
