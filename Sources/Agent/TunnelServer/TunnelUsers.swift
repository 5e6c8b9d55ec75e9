import Reactor

/// The tunnel server's users (chisel-v3-protocol.md §5, §10): `--auth user:pass` (allowed
/// everything) and `--authfile` (`{"user:pass": ["regex", ...]}`). No users at all: any name
/// and password get in, with no ACL. A user's regexes are matched unanchored against the
/// address asked for (`R:<host>:<port>` for a reverse remote); `""` or `"*"` allows all.
final class TunnelUsers {
    struct User {
        let password: String
        /// nil entries allow everything.
        let allowed: [Regex<AnyRegexOutput>?]
        let patterns: [String]
    }

    private(set) var users: [String: User] = [:]
    var isEmpty: Bool { users.isEmpty }

    init(auth: String, authFileText: String?) throws(TunnelServerError) {
        if let text = authFileText { try load(authFile: text) }
        if !auth.isEmpty {
            let (name, password) = Self.split(auth)
            users[name] = User(password: password, allowed: [nil], patterns: ["*"])
        }
    }

    /// `user:pass` split at the first colon; without one, both are empty (as chisel does).
    static func split(_ text: String) -> (String, String) {
        guard let colon = text.firstIndex(of: ":") else { return ("", "") }
        return (String(text[..<colon]), String(text[text.index(after: colon)...]))
    }

    private func load(authFile text: String) throws(TunnelServerError) {
        let json: JSONValue
        do { json = try JSONParser.parse(text) } catch { throw TunnelServerError("auth file: not JSON (\(error))") }
        guard case .object(let members) = json else { throw TunnelServerError("auth file: expected an object of \"user:pass\": [regex, ...]") }
        for m in members {
            guard m.key.contains(":") else { throw TunnelServerError("auth file: key '\(m.key)' is not user:pass") }
            let (name, password) = Self.split(m.key)
            guard case .array(let items) = m.value else { throw TunnelServerError("auth file: '\(name)' must map to an array of regexes") }
            var allowed: [Regex<AnyRegexOutput>?] = []
            var patterns: [String] = []
            for item in items {
                guard case .string(let pattern) = item else { throw TunnelServerError("auth file: '\(name)': every entry must be a string") }
                patterns.append(pattern)
                if pattern.isEmpty || pattern == "*" { allowed.append(nil); continue }
                do { allowed.append(try Regex(pattern)) } catch {
                    throw TunnelServerError("auth file: '\(name)': bad regex '\(pattern)': \(error)")
                }
            }
            users[name] = User(password: password, allowed: allowed, patterns: patterns)
        }
    }

    /// Whether the password is right; with no users configured, everyone is let in.
    func authenticate(user: String, password: String) -> Bool {
        guard !users.isEmpty else { return true }
        guard let u = users[user] else { return false }
        return constantTimeEquals(Array(u.password.utf8), Array(password.utf8))
    }

    /// Whether `user` may have `address` (always, without users).
    func allows(user: String, address: String) -> Bool {
        guard !users.isEmpty else { return true }
        guard let u = users[user] else { return false }
        return u.allowed.contains { regex in regex.map { address.contains($0) } ?? true }
    }

    private func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<min(a.count, b.count) { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}
