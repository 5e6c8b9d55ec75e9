/// The server side of user authentication (RFC 4252), sans I/O: only `password` is offered
/// (`none` and every other method are answered with the list), and a callback decides. After
/// `maxAttempts` refused passwords the connection ends, as OpenSSH's MaxAuthTries does.
struct SSHServerUserAuth {
    enum Step: Equatable {
        /// Send this (a USERAUTH_FAILURE) and wait for the next request.
        case send([UInt8])
        /// Send USERAUTH_SUCCESS; `user` is in.
        case succeeded(user: String)
        /// Too many refusals: send `failure`, then end the connection with `why`.
        case exhausted(failure: [UInt8], why: String)
    }

    let maxAttempts: Int
    private(set) var refusedPasswords = 0

    init(maxAttempts: Int) { self.maxAttempts = max(1, maxAttempts) }

    static var failure: [UInt8] {
        var m: [UInt8] = [SSHMsg.userauthFailure]
        m.sshNameList(["password"]); m.sshBool(false)
        return m
    }

    /// Handles one USERAUTH_REQUEST; `check(user, password)` says whether the password is right.
    mutating func handle(_ payload: UnsafeRawBufferPointer, check: (String, String) -> Bool) throws -> Step {
        guard payload.first == SSHMsg.userauthRequest else {
            throw SSHError.protocolError("message \(payload.first ?? 0) during user authentication")
        }
        var r = SSHReader(payload, context: "USERAUTH_REQUEST", offset: 1)
        let user = try r.readText("user name")
        let service = try r.readText("service name")
        let method = try r.readText("method name")
        guard service == "ssh-connection" else {
            throw SSHError.protocolError("user authentication for service '\(service)'; only ssh-connection is offered")
        }
        guard method == "password" else { return .send(Self.failure) }
        let changing = try r.readBool("password change")
        let password = try r.readText("password")
        if !changing && check(user, password) { return .succeeded(user: user) }
        refusedPasswords += 1
        if refusedPasswords >= maxAttempts {
            return .exhausted(failure: Self.failure, why: "user '\(user)': \(refusedPasswords) passwords refused")
        }
        return .send(Self.failure)
    }
}
