/// Settings of the transport layer.
public struct SSHTransportConfig: Sendable {
    /// Sent as our identification line; chisel uses `SSH-chisel-v3-client`.
    public var banner = "SSH-2.0-pipeops-agent"
    public var algorithms = SSHAlgorithms()
    /// Expected host key fingerprint (chisel base64, `SHA256:...`, or MD5 hex prefix); empty accepts any.
    public var expectedFingerprint = ""
    public var rekeyAfterBytes: UInt64 = 1 << 30
    public var rekeyAfterTime: TimeAmount = .seconds(3600)
    public var maxPacketLength = SSHPacketDecoder.defaultMaxPacketLength
    /// Bytes of text a server may send before its identification line.
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
/// and re-exchange (strict kex), and encryption. Bytes in through `receive`; bytes out
/// collect in `output` for the glue to write.
final class SSHTransport {
    let config: SSHTransportConfig
    weak var delegate: SSHTransportDelegate?
    /// Bytes waiting to be written to the stream.
    var output: [UInt8] = []
    /// The most bytes `output` has held after a channel's packet (SSHSession.outputLimit bounds it).
    private(set) var peakOutput = 0

    private(set) var serverBanner: String?
    private var preBannerBytes = 0          // text lines the server sent before its identification
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
        if serverBanner == nil {
            guard try parseBanner() else { return }
        }
        while true {
            let seq = decoder.sequence
            let got = try decoder.next { payload in try self.handle(payload, seq: seq) }
            if !got { break }
            try checkRekeyLimit()
        }
    }

    /// Finds the server's identification line at the front of the decoder's buffer, consuming
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
                    throw SSHError.protocolError("server speaks SSH protocol 1 only: '\(text)'")
                }
                guard line.count <= 255 else { throw SSHError.limitExceeded("identification line is \(line.count) bytes, limit 255") }
                serverBanner = text
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
        m.kex = config.algorithms.kex + (firstKexDone ? [] : ["ext-info-c", "kex-strict-c-v00@openssh.com"])
        m.hostKeys = config.algorithms.hostKeys
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
            let n = try SSHKexInit.negotiate(client: ours, server: theirs)
            if !firstKexDone {
                strict = n.strictKex
                if strict && seq != 0 { throw SSHError.protocolError("strict kex: KEXINIT was packet \(seq), not the first") }
            }
            state.negotiated = n
            var msg: [UInt8] = [SSHMsg.kexECDHInit]
            if n.kex == "ecdh-sha2-nistp256" {
                let pair = try P256KeyPair()
                state.p256 = pair
                state.clientPublic = pair.publicKey
            } else {
                let pair = try X25519KeyPair()
                state.x25519 = pair
                state.clientPublic = pair.publicKey
            }
            msg.sshString(state.clientPublic)
            kex = state
            try sendTransport(msg)
        case SSHMsg.kexECDHReply:
            guard var state = kex, state.negotiated != nil, state.pendingDecoder == nil else {
                throw SSHError.protocolError("KEX_ECDH_REPLY without a key exchange in progress")
            }
            try processReply(&state, payload)
            kex = state
            try sendTransport([SSHMsg.newKeys])
            if let c = state.pendingEncoder { encoder.cipher = c }
            if strict { encoder.sequence = 0 }
            encoder.resetKexCounters()
            kex?.newKeysSent = true
            let held = queued
            queued = []
            for payload in held { try send(payload) }
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

    private func processReply(_ state: inout SSHKexState, _ payload: UnsafeRawBufferPointer) throws {
        let ours = state.ourKexInitPayload
        guard let n = state.negotiated, let theirs = state.theirKexInitPayload else { return }
        var r = SSHReader(payload, context: "KEX_ECDH_REPLY", offset: 1)
        let hostKeyBlob = try r.readBytes("K_S")
        let serverPublic = try r.readBytes("Q_S")
        let signature = try r.readBytes("signature")
        let secret: [UInt8]
        if let p = state.p256 { secret = try p.sharedSecret(with: serverPublic) }
        else if let x = state.x25519 { secret = try x.sharedSecret(with: serverPublic) }
        else { throw SSHError.protocolError("no ephemeral key") }
        var k: [UInt8] = []
        k.sshMPInt(secret)
        let digest = SSHAlgorithms.kexDigest(n.kex)
        var buf: [UInt8] = []
        buf.sshString(config.banner); buf.sshString(serverBanner ?? "")
        buf.sshString(ours); buf.sshString(theirs)
        buf.sshString(hostKeyBlob); buf.sshString(state.clientPublic); buf.sshString(serverPublic)
        buf.append(contentsOf: k)
        let exchangeHash = digest.hash(buf)
        let key = try SSHHostKey(blob: hostKeyBlob)
        try key.verify(signature: signature, message: exchangeHash, algorithm: n.hostKey)
        if let known = hostKey {
            guard known.blob == key.blob else {
                throw SSHError.hostKey("host key changed during re-exchange: got \(key.fingerprintSHA256Base64), was \(known.fingerprintSHA256Base64)")
            }
        } else {
            guard key.matches(fingerprint: config.expectedFingerprint) else {
                throw SSHError.hostKey("host key fingerprint mismatch: got \(key.fingerprintSHA256Base64), expected \(config.expectedFingerprint)")
            }
            if config.expectedFingerprint.isEmpty {
                delegate?.transport(self, warning: "host key not checked (no fingerprint configured): \(key.keyType) \(key.fingerprintSHA256Base64)")
            }
            hostKey = key
            delegate?.transport(self, didVerifyHostKey: key, negotiated: n.hostKey)
        }
        let sid = sessionID ?? exchangeHash
        sessionID = sid
        func derive(_ letter: Character, _ length: Int) -> [UInt8] {
            length == 0 ? [] : deriveKey(digest: digest, sharedSecret: k, exchangeHash: exchangeHash,
                                         letter: UInt8(ascii: letter.unicodeScalars.first ?? "A"), sessionID: sid, length: length)
        }
        let c2s = SSHAlgorithms.cipherSizes(n.cipherC2S), s2c = SSHAlgorithms.cipherSizes(n.cipherS2C)
        let macC2S = n.macC2S.isEmpty ? 0 : SSHAlgorithms.macDigest(n.macC2S).length
        let macS2C = n.macS2C.isEmpty ? 0 : SSHAlgorithms.macDigest(n.macS2C).length
        state.pendingEncoder = try SSHAlgorithms.makeCipher(name: n.cipherC2S, mac: n.macC2S, key: derive("C", c2s.key),
                                                            iv: derive("A", c2s.iv), macKey: derive("E", macC2S), encrypt: true)
        state.pendingDecoder = try SSHAlgorithms.makeCipher(name: n.cipherS2C, mac: n.macS2C, key: derive("D", s2c.key),
                                                            iv: derive("B", s2c.iv), macKey: derive("F", macS2C), encrypt: false)
        state.x25519 = nil
        state.p256 = nil
    }
}

/// One key exchange in flight.
struct SSHKexState {
    var ourKexInit: SSHKexInit?
    var ourKexInitPayload: [UInt8] = []
    var theirKexInitPayload: [UInt8]?
    var negotiated: SSHNegotiated?
    var x25519: X25519KeyPair?
    var p256: P256KeyPair?
    var clientPublic: [UInt8] = []
    var pendingEncoder: SSHPacketCipher?
    var pendingDecoder: SSHPacketCipher?
    var newKeysSent = false
}
