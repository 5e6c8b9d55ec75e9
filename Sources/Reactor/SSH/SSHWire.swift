/// RFC 4251 data types: reading from a message payload without copying, and appending to a
/// byte array. Every read error names the message, the field and the byte offset.
public struct SSHReader {
    public let bytes: UnsafeRawBufferPointer
    public private(set) var offset: Int
    public let context: String

    public init(_ bytes: UnsafeRawBufferPointer, context: String, offset: Int = 0) {
        self.bytes = bytes
        self.context = context
        self.offset = offset
    }

    public var remaining: Int { bytes.count - offset }

    private func fail(_ field: String, _ what: String) -> SSHError {
        .malformed("\(context): field '\(field)' at offset \(offset): \(what)")
    }

    public mutating func readByte(_ field: String) throws(SSHError) -> UInt8 {
        guard remaining >= 1 else { throw fail(field, "needs 1 byte, 0 left") }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func readBool(_ field: String) throws(SSHError) -> Bool {
        try readByte(field) != 0
    }

    public mutating func readUInt32(_ field: String) throws(SSHError) -> UInt32 {
        guard remaining >= 4 else { throw fail(field, "needs 4 bytes, \(remaining) left") }
        let v = UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
        offset += 4
        return v
    }

    /// A length-prefixed string, as a view into the payload.
    public mutating func readString(_ field: String) throws(SSHError) -> UnsafeRawBufferPointer {
        let start = offset
        let len = Int(try readUInt32(field))
        guard len <= remaining else {
            offset = start
            throw fail(field, "string length \(len) exceeds the \(remaining - 4) bytes left")
        }
        defer { offset += len }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + len])
    }

    public mutating func readBytes(_ field: String) throws(SSHError) -> [UInt8] {
        Array(try readString(field))
    }

    public mutating func readText(_ field: String) throws(SSHError) -> String {
        String(decoding: try readString(field), as: UTF8.self)
    }

    public mutating func readNameList(_ field: String) throws(SSHError) -> [String] {
        let text = try readText(field)
        if text.isEmpty { return [] }
        return text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
    }

    /// An mpint as unsigned big-endian magnitude (negative values are refused).
    public mutating func readMPInt(_ field: String) throws(SSHError) -> [UInt8] {
        let raw = try readString(field)
        if let first = raw.first, first & 0x80 != 0 { throw fail(field, "negative mpint") }
        return Array(raw.drop(while: { $0 == 0 }))
    }

    /// Everything to the end of the payload (chisel puts raw data there).
    public mutating func readRest() -> UnsafeRawBufferPointer {
        defer { offset = bytes.count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset...])
    }

    public func expectEnd() throws(SSHError) {
        guard remaining == 0 else { throw SSHError.malformed("\(context): \(remaining) unexpected bytes at offset \(offset)") }
    }
}

extension Array where Element == UInt8 {
    mutating func sshByte(_ v: UInt8) { append(v) }
    mutating func sshBool(_ v: Bool) { append(v ? 1 : 0) }
    mutating func sshUInt32(_ v: UInt32) {
        append(UInt8(v >> 24)); append(UInt8(truncatingIfNeeded: v >> 16))
        append(UInt8(truncatingIfNeeded: v >> 8)); append(UInt8(truncatingIfNeeded: v))
    }
    mutating func sshString<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        sshUInt32(UInt32(bytes.count)); append(contentsOf: bytes)
    }
    mutating func sshString(_ bytes: UnsafeRawBufferPointer) {
        sshUInt32(UInt32(bytes.count)); append(contentsOf: bytes)
    }
    mutating func sshString(_ text: String) { sshString(Array(text.utf8)) }
    mutating func sshNameList(_ names: [String]) { sshString(names.joined(separator: ",")) }
    /// Unsigned big-endian magnitude as an mpint: no leading zeros, a 0 byte if the top bit is set.
    mutating func sshMPInt<C: Collection>(_ magnitude: C) where C.Element == UInt8 {
        let trimmed = magnitude.drop(while: { $0 == 0 })
        if let first = trimmed.first, first & 0x80 != 0 {
            sshUInt32(UInt32(trimmed.count + 1)); append(0); append(contentsOf: trimmed)
        } else {
            sshString(trimmed)
        }
    }
}

/// Message numbers (RFC 4250 section 4.1, and the OpenSSH extensions we use).
enum SSHMsg {
    static let disconnect: UInt8 = 1, ignore: UInt8 = 2, unimplemented: UInt8 = 3, debug: UInt8 = 4
    static let serviceRequest: UInt8 = 5, serviceAccept: UInt8 = 6, extInfo: UInt8 = 7
    static let kexInit: UInt8 = 20, newKeys: UInt8 = 21
    static let kexECDHInit: UInt8 = 30, kexECDHReply: UInt8 = 31
    static let userauthRequest: UInt8 = 50, userauthFailure: UInt8 = 51, userauthSuccess: UInt8 = 52
    static let userauthBanner: UInt8 = 53, userauthInfo60: UInt8 = 60
    static let globalRequest: UInt8 = 80, requestSuccess: UInt8 = 81, requestFailure: UInt8 = 82
    static let channelOpen: UInt8 = 90, channelOpenConfirmation: UInt8 = 91, channelOpenFailure: UInt8 = 92
    static let channelWindowAdjust: UInt8 = 93, channelData: UInt8 = 94, channelExtendedData: UInt8 = 95
    static let channelEOF: UInt8 = 96, channelClose: UInt8 = 97, channelRequest: UInt8 = 98
    static let channelSuccess: UInt8 = 99, channelFailure: UInt8 = 100
}
