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
    public static func makeKey() throws(SecureRandom.Failure) -> String { Base64.encode(try SecureRandom.bytes(16)) }

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

/// A loop-owned pool of random 32-bit mask keys, drawn 1 KiB at a time so per-frame keys are
/// cheap. nil when libcrypto has no random bytes.
final class MaskKeySource {
    private var pool: [UInt8] = []
    private var index = 0

    func next() -> UInt32? {
        if index + 4 > pool.count {
            guard let fresh = try? SecureRandom.bytes(1024) else { return nil }
            pool = fresh
            index = 0
        }
        let k = UInt32(pool[index]) << 24 | UInt32(pool[index + 1]) << 16 | UInt32(pool[index + 2]) << 8 | UInt32(pool[index + 3])
        index += 4
        return k
    }
}
