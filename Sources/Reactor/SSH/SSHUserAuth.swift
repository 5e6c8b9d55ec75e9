/// Credentials for user authentication (RFC 4252).
public struct SSHCredentials: Sendable {
    public var user: String
    public var password: String?
    public var privateKey: SSHEd25519PrivateKey?
    public init(user: String, password: String? = nil, privateKey: SSHEd25519PrivateKey? = nil) {
        self.user = user
        self.password = password
        self.privateKey = privateKey
    }
}

/// The client side of user authentication, sans I/O: `none` first (it lists the server's
/// methods), then `publickey` and `password` when offered and configured.
struct SSHUserAuth {
    enum Step: Equatable { case send([UInt8]), succeeded, failed(String) }

    let credentials: SSHCredentials
    private(set) var attempted: [String] = []
    private var current = ""

    init(credentials: SSHCredentials) { self.credentials = credentials }

    private func header(_ method: String) -> [UInt8] {
        var m: [UInt8] = [SSHMsg.userauthRequest]
        m.sshString(credentials.user); m.sshString("ssh-connection"); m.sshString(method)
        return m
    }

    mutating func first() -> [UInt8] {
        current = "none"
        attempted.append("none")
        return header("none")
    }

    /// Handles one auth reply message.
    mutating func handle(_ payload: UnsafeRawBufferPointer, sessionID: [UInt8]) throws -> Step? {
        var r = SSHReader(payload, context: "USERAUTH", offset: 1)
        switch payload[0] {
        case SSHMsg.userauthSuccess:
            return .succeeded
        case SSHMsg.userauthBanner:
            return nil
        case SSHMsg.userauthFailure:
            let methods = try r.readNameList("authentications that can continue")
            _ = try r.readBool("partial success")
            return try next(allowed: methods, sessionID: sessionID)
        case SSHMsg.userauthInfo60:
            // PASSWD_CHANGEREQ (for password) or PK_OK (we never send a query): treat as a failure.
            return try next(allowed: [], sessionID: sessionID)
        default:
            throw SSHError.protocolError("message \(payload[0]) during user authentication")
        }
    }

    private mutating func next(allowed: [String], sessionID: [UInt8]) throws -> Step {
        if let key = credentials.privateKey, allowed.contains("publickey"), !attempted.contains("publickey") {
            attempted.append("publickey")
            current = "publickey"
            var m = header("publickey")
            m.sshBool(true); m.sshString("ssh-ed25519"); m.sshString(key.publicKeyBlob)
            var signed: [UInt8] = []
            signed.sshString(sessionID)
            signed.append(contentsOf: m)
            m.sshString(try key.signatureBlob(over: signed))
            return .send(m)
        }
        if let password = credentials.password, allowed.contains("password"), !attempted.contains("password") {
            attempted.append("password")
            current = "password"
            var m = header("password")
            m.sshBool(false); m.sshString(password)
            return .send(m)
        }
        return .failed("attempted methods [\(attempted.joined(separator: " "))], no supported methods remain (server allows [\(allowed.joined(separator: ","))])")
    }
}
