/// RFC 6455 framing: opcodes, errors with their close codes, the frame encoder and masking.
public enum WebSocketOpcode: UInt8, Sendable {
    case continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10
    var isControl: Bool { rawValue & 0x8 != 0 }
}

/// A protocol failure, with the close code to send (1002 protocol, 1007 bad UTF-8, 1009 too big).
public struct WebSocketError: Error, Sendable, Equatable, CustomStringConvertible {
    public let closeCode: UInt16
    public let message: String
    public init(_ closeCode: UInt16, _ message: String) {
        self.closeCode = closeCode
        self.message = message
    }
    public var description: String { "WebSocket \(closeCode): \(message)" }

    public static let protocolError: UInt16 = 1002
    public static let invalidPayload: UInt16 = 1007
    public static let policyViolation: UInt16 = 1008
    public static let messageTooBig: UInt16 = 1009
}

public enum WebSocketFrameEncoder {
    /// Appends one frame. A client passes a fresh random `maskKey`; a server passes nil.
    public static func append(opcode: WebSocketOpcode, fin: Bool = true, payload: UnsafeRawBufferPointer,
                              maskKey: UInt32?, into out: inout [UInt8]) {
        appendHeader(opcode: opcode, fin: fin, length: payload.count, maskKey: maskKey, into: &out)
        guard let key = maskKey else {
            out.append(contentsOf: payload)
            return
        }
        let start = out.count
        out.append(contentsOf: payload)
        out.withUnsafeMutableBytes { raw in
            WebSocketMask.apply(key: key, to: UnsafeMutableRawBufferPointer(rebasing: raw[start...]))
        }
    }
}

extension WebSocketFrameEncoder {
    /// The most a frame header takes (64-bit length and a mask key).
    static let maxHeaderLength = 14

    /// Appends a frame header (2 to 14 bytes) for a payload of `length` bytes.
    static func appendHeader(opcode: WebSocketOpcode, fin: Bool, length n: Int, maskKey: UInt32?, into out: inout [UInt8]) {
        out.append((fin ? 0x80 : 0) | opcode.rawValue)
        let maskBit: UInt8 = maskKey == nil ? 0 : 0x80
        if n < 126 {
            out.append(maskBit | UInt8(n))
        } else if n <= 0xFFFF {
            out.append(maskBit | 126)
            out.append(UInt8(n >> 8)); out.append(UInt8(n & 0xFF))
        } else {
            out.append(maskBit | 127)
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8((UInt64(n) >> UInt64(shift)) & 0xFF)) }
        }
        if let key = maskKey { withUnsafeBytes(of: key.bigEndian) { out.append(contentsOf: $0) } }
    }
}

public enum WebSocketMask {
    /// XORs `bytes` with the 4-byte key (big-endian order on the wire), 32 bytes per step: the
    /// whole tunnel goes through here on a client, so it must run at memory speed (a plain
    /// word loop with overflow checks ran at a fifth of that).
    public static func apply(key: UInt32, to bytes: UnsafeMutableRawBufferPointer, phase: Int = 0) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        let keyBytes = (UInt8(key >> 24), UInt8((key >> 16) & 0xFF), UInt8((key >> 8) & 0xFF), UInt8(key & 0xFF))
        // The key as it lies in memory, rotated by the phase, repeated to 16 bytes.
        var pattern = SIMD16<UInt8>()
        withUnsafeBytes(of: keyBytes) { k in
            for i in 0..<16 { pattern[i] = k[(i &+ phase) & 3] }
        }
        let count = bytes.count
        var i = 0
        while i &+ 32 <= count {
            let a = (base + i).loadUnaligned(as: SIMD16<UInt8>.self)
            let b = (base + (i &+ 16)).loadUnaligned(as: SIMD16<UInt8>.self)
            (base + i).storeBytes(of: a ^ pattern, as: SIMD16<UInt8>.self)
            (base + (i &+ 16)).storeBytes(of: b ^ pattern, as: SIMD16<UInt8>.self)
            i &+= 32
        }
        withUnsafeBytes(of: keyBytes) { k in
            while i < count {
                bytes[i] ^= k[(i &+ phase) & 3]
                i &+= 1
            }
        }
    }
}

/// UTF-8 validation (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF) with an
/// ASCII fast path a word at a time.
public enum UTF8Validation {
    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        let n = bytes.count
        var i = 0
        while i < n {
            if i + 8 <= n && (base + i).loadUnaligned(as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                i += 8
                continue
            }
            let b0 = bytes[i]
            if b0 < 0x80 { i += 1; continue }
            var need: Int
            var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
            switch b0 {
            case 0xC2...0xDF: need = 1
            case 0xE0: need = 2; lo = 0xA0
            case 0xE1...0xEC, 0xEE, 0xEF: need = 2
            case 0xED: need = 2; hi = 0x9F
            case 0xF0: need = 3; lo = 0x90
            case 0xF1...0xF3: need = 3
            case 0xF4: need = 3; hi = 0x8F
            default: return false
            }
            if i + need >= n { return false }
            let b1 = bytes[i + 1]
            if b1 < lo || b1 > hi { return false }
            var j = 2
            while j <= need {
                let b = bytes[i + j]
                if b < 0x80 || b > 0xBF { return false }
                j += 1
            }
            i += need + 1
        }
        return true
    }
}
