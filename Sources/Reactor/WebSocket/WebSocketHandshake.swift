import CShims

/// The opening handshake's arithmetic (RFC 6455 §4): keys, the accept value, checks of both sides.
public enum WebSocketHandshake {
    static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// base64(SHA-1(key + GUID)).
    public static func acceptValue(forKey key: String) -> String {
        let input = Array((key + guid).utf8)
        var digest = [UInt8](repeating: 0, count: 20)
        var len: UInt32 = 0
        _ = input.withUnsafeBytes { inp in
            digest.withUnsafeMutableBytes { d in
                EVP_Digest(inp.baseAddress, inp.count, d.baseAddress?.assumingMemoryBound(to: UInt8.self), &len, EVP_sha1(), nil)
            }
        }
        return Base64.encode(digest)
    }

    /// A fresh Sec-WebSocket-Key: 16 random bytes, base64.
    public static func makeKey() -> String { Base64.encode(SecureRandom.bytes(16)) }

    /// Splits a comma-separated header list.
    static func tokens(_ value: String?) -> [String] {
        guard let value else { return [] }
        return value.split(separator: ",").map { String(trimOWS($0)) }.filter { !$0.isEmpty }
    }

    public struct ServerDecision {
        public var acceptValue: String
        public var subprotocol: String?
    }

    /// Checks a client's upgrade request. The error carries the HTTP status to answer.
    public static func validate(request head: HTTPRequestHead, supportedSubprotocols: [String]) -> Result<ServerDecision, HTTPParseError> {
        let h = head.headers
        guard head.method == "GET" else { return .failure(HTTPParseError(.malformed, "WebSocket upgrade needs GET, not \(head.method)")) }
        guard h.hasToken("Upgrade", "websocket") else { return .failure(HTTPParseError(.malformed, "missing 'Upgrade: websocket'")) }
        guard h.hasToken("Connection", "upgrade") else { return .failure(HTTPParseError(.malformed, "missing 'Connection: Upgrade'")) }
        guard h["Sec-WebSocket-Version"].map({ trimOWS($0) == "13" }) == true else {
            return .failure(HTTPParseError(.malformed, "Sec-WebSocket-Version must be 13"))
        }
        guard let key = h["Sec-WebSocket-Key"], let raw = Base64.decode(String(trimOWS(key))), raw.count == 16 else {
            return .failure(HTTPParseError(.malformed, "Sec-WebSocket-Key is missing or not 16 bytes of base64"))
        }
        let offered = h.values("Sec-WebSocket-Protocol").flatMap { tokens($0) }
        let chosen = offered.first { supportedSubprotocols.contains($0) }
        return .success(ServerDecision(acceptValue: acceptValue(forKey: String(trimOWS(key))), subprotocol: chosen))
    }
}

/// Standard base64 with padding.
public enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        let input = Array(bytes)
        var out: [UInt8] = []
        out.reserveCapacity((input.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= input.count {
            let v = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
            out.append(alphabet[Int(v >> 18 & 63)]); out.append(alphabet[Int(v >> 12 & 63)])
            out.append(alphabet[Int(v >> 6 & 63)]); out.append(alphabet[Int(v & 63)])
            i += 3
        }
        let rest = input.count - i
        if rest > 0 {
            let v = UInt32(input[i]) << 16 | (rest == 2 ? UInt32(input[i + 1]) << 8 : 0)
            out.append(alphabet[Int(v >> 18 & 63)]); out.append(alphabet[Int(v >> 12 & 63)])
            out.append(rest == 2 ? alphabet[Int(v >> 6 & 63)] : UInt8(ascii: "="))
            out.append(UInt8(ascii: "="))
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes padded standard base64; nil on any other character or a bad length.
    public static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        var i = 0
        while i < chars.count {
            var v: UInt32 = 0
            var pad = 0
            for j in 0..<4 {
                let c = chars[i + j]
                let d: UInt32
                switch c {
                case 65...90: d = UInt32(c - 65)
                case 97...122: d = UInt32(c - 71)
                case 48...57: d = UInt32(c + 4)
                case 43: d = 62
                case 47: d = 63
                case 61:
                    guard i + 4 == chars.count, j >= 2 else { return nil }
                    pad += 1; d = 0
                default: return nil
                }
                if pad > 0 && c != 61 { return nil }
                v = v << 6 | d
            }
            out.append(UInt8(v >> 16 & 0xFF))
            if pad < 2 { out.append(UInt8(v >> 8 & 0xFF)) }
            if pad < 1 { out.append(UInt8(v & 0xFF)) }
            i += 4
        }
        return out
    }
}

/// Random bytes from libcrypto, drawn in blocks so per-frame mask keys are cheap.
public enum SecureRandom {
    public static func bytes(_ n: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: n)
        out.withUnsafeMutableBytes { raw in
            _ = RAND_bytes(raw.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(n))
        }
        return out
    }
}

/// A loop-owned pool of random 32-bit mask keys.
final class MaskKeySource {
    private var pool: [UInt8] = []
    private var index = 0

    func next() -> UInt32 {
        if index + 4 > pool.count {
            pool = SecureRandom.bytes(1024)
            index = 0
        }
        let k = UInt32(pool[index]) << 24 | UInt32(pool[index + 1]) << 16 | UInt32(pool[index + 2]) << 8 | UInt32(pool[index + 3])
        index += 4
        return k
    }
}
