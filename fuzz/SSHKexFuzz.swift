// libFuzzer target for the SSH key exchange and user authentication as they parse the peer's
// messages: the transport as client (server KEXINIT, KEX_ECDH_REPLY with host key and
// signature, NEWKEYS) and as server (client KEXINIT, KEX_ECDH_INIT, NEWKEYS), fed either a raw
// stream after the identification line or payloads this target frames into cleartext packets;
// and both sides of user authentication. The first byte picks the mode; payloads are
// [2-byte length][payload] runs. Invariants: bad input is a thrown SSHError, never a trap; the
// server finishes its first exchange only with a session id; the server's user authentication
// lets in only the right password and ends after its attempts; the client's never signs or
// sends a password it was not offered. Built by scripts/fuzz.sh with the SSH sources.
// (The session's SERVICE_REQUEST and CHANNEL_OPEN parsing need the event loop: not here.)

let serverKey: SSHServerHostKey = {
    do { return try SSHServerHostKey(reducing: Array(repeating: 7, count: 40)) } catch { preconditionFailure("fixed host key: \(error)") }
}()
let clientKey: SSHEd25519PrivateKey = {
    do { return try SSHEd25519PrivateKey(seed: Array(repeating: 9, count: 32)) } catch { preconditionFailure("fixed client key: \(error)") }
}()

/// Splits `input` into [2-byte length][payload] runs; a short last run takes what is left.
func payloads(_ input: UnsafeRawBufferPointer) -> [UnsafeRawBufferPointer] {
    var out: [UnsafeRawBufferPointer] = []
    var i = 0
    while i + 2 <= input.count {
        let n = min(Int(input[i]) << 8 | Int(input[i + 1]), input.count - i - 2)
        out.append(UnsafeRawBufferPointer(rebasing: input[(i + 2)..<(i + 2 + n)]))
        i += 2 + n
    }
    return out
}

func transport(server: Bool) -> SSHTransport {
    var config = SSHTransportConfig()
    if server { config.serverHostKey = serverKey }
    config.maxPacketLength = 8 * 1024
    let t = SSHTransport(config: config)
    do { try t.start() } catch { preconditionFailure("start: \(error)") }
    return t
}

/// Feeds the peer's identification line, then `body`; errors end the run.
func runTransport(server: Bool, framed: Bool, _ input: UnsafeRawBufferPointer) {
    let t = transport(server: server)
    var stream = Array("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10\r\n".utf8)
    if framed {
        var encoder = SSHPacketEncoder()
        for p in payloads(input) {
            let start = encoder.begin(&stream)
            stream.append(contentsOf: p)
            do { try encoder.finish(&stream, start: start) } catch { preconditionFailure("framing: \(error)") }
        }
    } else {
        stream.append(contentsOf: input)
    }
    do {
        try stream.withUnsafeBytes { try t.receive($0) }
    } catch is SSHError {
    } catch {
        preconditionFailure("not an SSHError: \(error)")
    }
    if t.firstKexDone { precondition(t.sessionID != nil && t.negotiated != nil, "a finished key exchange without a session id") }
}

func runServerAuth(_ input: UnsafeRawBufferPointer) {
    var auth = SSHServerUserAuth(maxAttempts: 3)
    for p in payloads(input) where !p.isEmpty {
        let step: SSHServerUserAuth.Step
        do { step = try auth.handle(p) { user, password in user == "pipeops" && password == "secret" } } catch { return }
        switch step {
        case .send(let m): precondition(m == SSHServerUserAuth.failure, "a refusal that is not USERAUTH_FAILURE")
        case .succeeded(let user): precondition(user == "pipeops", "let in \(user) without its password"); return
        case .exhausted: precondition(auth.refusedPasswords >= 3, "ended before the attempts ran out"); return
        }
    }
}

func runClientAuth(_ input: UnsafeRawBufferPointer) {
    var auth = SSHUserAuth(credentials: SSHCredentials(user: "pipeops", password: "secret", privateKey: clientKey))
    _ = auth.first()
    for p in payloads(input) where !p.isEmpty {
        let step: SSHUserAuth.Step?
        do { step = try auth.handle(p, sessionID: Array(repeating: 1, count: 32)) } catch { return }
        switch step {
        case .send(let m)?:
            precondition(m.first == SSHMsg.userauthRequest, "answered with message \(m.first ?? 0)")
        case .succeeded?, .failed?: return
        case nil: continue
        }
    }
    precondition(auth.attempted.count <= 3, "a method was tried twice")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func sshKexFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size > 0 else { return 0 }
    let input = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    switch data[0] % 6 {
    case 0: runTransport(server: false, framed: false, input)
    case 1: runTransport(server: true, framed: false, input)
    case 2: runTransport(server: false, framed: true, input)
    case 3: runTransport(server: true, framed: true, input)
    case 4: runServerAuth(input)
    default: runClientAuth(input)
    }
    return 0
}
