/// The userinfo of a URL (`http://user:password@host`) is a credential. Whatever the agent
/// prints (log lines, `config print`, error messages) shows it as `***`.
public enum URLUserinfo {
    public static let mask = "***"

    /// `text` with the userinfo of every URL in it replaced by `***`:
    /// `GET http://u:p@h:8080/x failed` -> `GET http://***@h:8080/x failed`. Text without a
    /// URL that has userinfo comes back unchanged (and without copying).
    public static func redacted(_ text: String) -> String {
        // Most text has no `@` at all: one scan, no allocation.
        guard text.utf8.contains(UInt8(ascii: "@")) else { return text }
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        var changed = false
        while i < bytes.count {
            guard i + 2 < bytes.count, bytes[i] == UInt8(ascii: ":"), bytes[i + 1] == UInt8(ascii: "/"),
                  bytes[i + 2] == UInt8(ascii: "/") else {
                out.append(bytes[i])
                i += 1
                continue
            }
            out.append(contentsOf: bytes[i..<i + 3])
            i += 3
            // The authority runs to the first path, query or fragment character (or the end of
            // the URL in running text); its userinfo is everything up to its last `@`.
            var end = i
            var lastAt: Int?
            while end < bytes.count && !endsAuthority(bytes[end]) {
                if bytes[end] == UInt8(ascii: "@") { lastAt = end }
                end += 1
            }
            if let at = lastAt {
                out.append(contentsOf: mask.utf8)
                out.append(contentsOf: bytes[at..<end])
                changed = true
            } else {
                out.append(contentsOf: bytes[i..<end])
            }
            i = end
        }
        return changed ? String(decoding: out, as: UTF8.self) : text
    }

    private static func endsAuthority(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "/"), UInt8(ascii: "?"), UInt8(ascii: "#"), UInt8(ascii: " "), UInt8(ascii: "\t"),
             UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\""), UInt8(ascii: "'"), UInt8(ascii: "<"),
             UInt8(ascii: ">"), UInt8(ascii: "`"), UInt8(ascii: "\\"):
            return true
        default:
            return false
        }
    }
}
