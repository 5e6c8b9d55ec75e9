/// Serialises heads and body framing into a byte array (sans-I/O: the caller sends the bytes).
public enum HTTPWriter {
    public static func appendRequestHead(_ head: HTTPRequestHead, into out: inout [UInt8]) {
        out.append(contentsOf: head.method.utf8)
        out.append(0x20)
        out.append(contentsOf: head.target.utf8)
        out.append(0x20)
        out.append(contentsOf: head.version.description.utf8)
        out.append(0x0D); out.append(0x0A)
        appendFields(head.headers, into: &out)
    }

    public static func appendResponseHead(_ head: HTTPResponseHead, into out: inout [UInt8]) {
        appendStatusLine(head.status, reason: head.reason, version: head.version, into: &out)
        appendFields(head.headers, into: &out)
    }

    public static func appendStatusLine(_ status: Int, reason: String, version: HTTPVersion = .http1_1, into out: inout [UInt8]) {
        out.append(contentsOf: version.description.utf8)
        out.append(0x20)
        appendDecimal(status, into: &out)
        out.append(0x20)
        out.append(contentsOf: reason.utf8)
        out.append(0x0D); out.append(0x0A)
    }

    /// Fields then the blank line that ends the head.
    public static func appendFields(_ headers: HTTPHeaders, into out: inout [UInt8]) {
        for f in headers.fields {
            appendField(f.name, f.value, into: &out)
        }
        out.append(0x0D); out.append(0x0A)
    }

    @inline(__always)
    public static func appendField(_ name: String, _ value: String, into out: inout [UInt8]) {
        out.append(contentsOf: name.utf8)
        out.append(0x3A); out.append(0x20)
        // CR/LF in a value would split the head: it becomes a space.
        for b in value.utf8 { out.append(b == 0x0D || b == 0x0A ? 0x20 : b) }
        out.append(0x0D); out.append(0x0A)
    }

    /// One chunk of a chunked body: size in hex, CRLF, data, CRLF. Empty data writes nothing
    /// (a zero-size chunk would end the body).
    public static func appendChunk(_ data: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        guard data.count > 0 else { return }
        appendHex(data.count, into: &out)
        out.append(0x0D); out.append(0x0A)
        out.append(contentsOf: data)
        out.append(0x0D); out.append(0x0A)
    }

    /// The last chunk, with optional trailers.
    public static func appendLastChunk(trailers: HTTPHeaders = HTTPHeaders(), into out: inout [UInt8]) {
        out.append(0x30); out.append(0x0D); out.append(0x0A)
        appendFields(trailers, into: &out)
    }

    public static func appendDecimal(_ value: Int, into out: inout [UInt8]) {
        if value < 0 { out.append(0x2D); appendDecimal(-value, into: &out); return }
        if value >= 10 { appendDecimal(value / 10, into: &out) }
        out.append(UInt8(48 + value % 10))
    }

    public static func appendHex(_ value: Int, into out: inout [UInt8]) {
        if value >= 16 { appendHex(value >> 4, into: &out) }
        let d = value & 15
        out.append(UInt8(d < 10 ? 48 + d : 87 + d))
    }
}
