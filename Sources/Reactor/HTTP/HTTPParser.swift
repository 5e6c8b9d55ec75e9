/// A sans-I/O HTTP/1.1 parser for requests (server side) or responses (client side).
///
/// Feed bytes with `feed`, then pull events with `next()` until it returns nil. Pulling is
/// what gives a server pipelining in order: it asks for the next request only after answering
/// the current one, and unparsed bytes simply wait here.
///
/// Limits: the head (start line + fields) and the trailers are bounded by `maxHeadBytes` and
/// `maxHeaders` (431), the body by `maxBodyBytes` (413). Ambiguous framing (Content-Length with
/// Transfer-Encoding, differing Content-Lengths, obs-fold) is refused as 400: it is how
/// request smuggling starts. So is an HTTP/1.1 request without exactly one Host (RFC 9112 §3.2;
/// HTTP/1.0 may leave it out). A chunk-size line is at most `maxChunkLine` bytes, however it
/// arrives.
public struct HTTPParser {
    public enum Kind: Sendable { case request, response }

    public struct Limits: Sendable {
        public var maxHeadBytes = 16 * 1024
        public var maxHeaders = 100
        public var maxBodyBytes = 1 << 20
        public var maxChunkLine = 1024
        public init() {}
        public init(maxHeadBytes: Int = 16 * 1024, maxHeaders: Int = 100, maxBodyBytes: Int) {
            self.maxHeadBytes = maxHeadBytes
            self.maxHeaders = maxHeaders
            self.maxBodyBytes = maxBodyBytes
        }
    }

    enum State: Equatable {
        case head
        case fixedBody(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
        case endPending          // the message is complete; `.end` not yet returned
        case stopped             // after 101 or a CONNECT tunnel: the bytes are no longer HTTP
        case failed(HTTPParseError)
    }

    public let kind: Kind
    public var limits: Limits
    /// Client side: set before each response is parsed (HEAD and CONNECT change the framing).
    public var requestMethod: String = "GET"

    var buffer = ByteBuffer()
    var state: State = .head
    var sawEOF = false
    var bodyBytes = 0
    var scanOffset = 0           // where the search for the end of the head resumes
    var stopAfterEnd = false
    var pendingTrailers = HTTPHeaders()

    public init(kind: Kind, limits: Limits = Limits()) {
        self.kind = kind
        self.limits = limits
    }

    // MARK: Input

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) { buffer.append(bytes) }
    public mutating func feed(_ bytes: [UInt8]) { bytes.withUnsafeBytes { buffer.append($0) } }
    /// The peer closed its side: ends a read-until-close body, or makes a partial message an error.
    public mutating func feedEOF() { sawEOF = true }

    /// Bytes received but not yet parsed.
    public var bufferedBytes: Int { buffer.readableBytes }
    /// Between messages with nothing buffered.
    public var isIdle: Bool { state == .head && buffer.isEmpty }
    /// Between messages (possibly with the start of the next one buffered).
    /// The stream switched protocol (101, CONNECT): `takeBufferedBytes()` has what followed.
    public var isStopped: Bool { state == .stopped }

    /// Hands over the unparsed bytes (after an upgrade).
    public mutating func takeBufferedBytes() -> [UInt8] {
        let bytes = buffer.readableArray
        buffer.clear()
        return bytes
    }

    /// Frees a large buffer when idle. Small ones are kept: reallocating per request would cost
    /// more than the few KiB a keep-alive connection holds.
    public mutating func releaseMemoryIfIdle(keeping: Int = 4096) {
        if buffer.isEmpty && buffer.storage.capacity > keeping { buffer.releaseMemory() }
    }

    // MARK: Events

    public mutating func next() throws(HTTPParseError) -> HTTPParserEvent? {
        do {
            return try step()
        } catch {
            state = .failed(error)
            throw error
        }
    }

    private mutating func step() throws(HTTPParseError) -> HTTPParserEvent? {
        while true {
            switch state {
            case .failed(let e):
                throw e
            case .stopped:
                return nil
            case .endPending:
                let trailers = pendingTrailers
                pendingTrailers = HTTPHeaders()
                state = stopAfterEnd ? .stopped : .head
                stopAfterEnd = false
                bodyBytes = 0
                return .end(trailers: trailers)
            case .head:
                guard let event = try parseHead() else { return nil }
                if let event { return event }
                // nil-in-some: an interim (1xx) response was skipped; go on.
            case .fixedBody(let remaining):
                let n = min(remaining, buffer.readableBytes)
                if n == 0 {
                    if sawEOF { throw HTTPParseError(.truncated, "connection closed with \(remaining) body bytes missing") }
                    return nil
                }
                let chunk = takeBody(n)
                state = remaining - n == 0 ? .endPending : .fixedBody(remaining: remaining - n)
                return .body(chunk)
            case .untilClose:
                if buffer.readableBytes > 0 {
                    try countBody(buffer.readableBytes)
                    return .body(takeBody(buffer.readableBytes))
                }
                if sawEOF { state = .endPending; continue }
                return nil
            case .chunkSize:
                guard let size = try parseChunkSize() else { return nil }
                if size == 0 { state = .trailers } else {
                    try countBody(size)
                    state = .chunkData(remaining: size)
                }
            case .chunkData(let remaining):
                let n = min(remaining, buffer.readableBytes)
                if n == 0 { return try needMore("chunk data") }
                let chunk = takeBody(n)
                state = remaining - n == 0 ? .chunkDataEnd : .chunkData(remaining: remaining - n)
                return .body(chunk)
            case .chunkDataEnd:
                guard let b0 = buffer.peekInteger(at: 0, as: UInt8.self) else { return try needMore("chunk end") }
                if b0 == 0x0A { buffer.moveReaderIndex(by: 1) } else {
                    guard let b1 = buffer.peekInteger(at: 1, as: UInt8.self) else { return try needMore("chunk end") }
                    guard b0 == 0x0D && b1 == 0x0A else {
                        throw HTTPParseError(.malformed, "chunk data not followed by CRLF")
                    }
                    buffer.moveReaderIndex(by: 2)
                }
                state = .chunkSize
            case .trailers:
                guard let trailers = try parseTrailers() else { return nil }
                pendingTrailers = trailers
                state = .endPending
            }
        }
    }

    private mutating func needMore(_ what: String) throws(HTTPParseError) -> HTTPParserEvent? {
        if sawEOF { throw HTTPParseError(.truncated, "connection closed in the middle of \(what)") }
        return nil
    }

    private mutating func countBody(_ n: Int) throws(HTTPParseError) {
        bodyBytes += n
        if bodyBytes > limits.maxBodyBytes {
            throw HTTPParseError(.bodyTooLarge, "body exceeds the limit of \(limits.maxBodyBytes) bytes")
        }
    }

    private mutating func takeBody(_ n: Int) -> [UInt8] {
        let bytes = Array(buffer.readableView.prefix(n))
        buffer.moveReaderIndex(by: n)
        return bytes
    }

    // MARK: Head

    /// Returns nil when more bytes are needed, .some(nil) when an interim response was skipped.
    private mutating func parseHead() throws(HTTPParseError) -> HTTPParserEvent?? {
        // A server should ignore empty lines before a request line (RFC 9112 §2.2).
        while let b = buffer.peekInteger(at: 0, as: UInt8.self), b == 0x0D || b == 0x0A {
            buffer.moveReaderIndex(by: 1)
        }
        guard let headEnd = findHeadEnd() else {
            if buffer.readableBytes > limits.maxHeadBytes {
                throw HTTPParseError(.headTooLarge, "request head exceeds \(limits.maxHeadBytes) bytes")
            }
            if sawEOF && buffer.readableBytes > 0 { throw HTTPParseError(.truncated, "connection closed in the middle of the head") }
            return nil
        }
        if headEnd.bodyStart > limits.maxHeadBytes {
            throw HTTPParseError(.headTooLarge, "head of \(headEnd.bodyStart) bytes exceeds \(limits.maxHeadBytes)")
        }
        scanOffset = 0
        let kind = self.kind, maxHeaders = limits.maxHeaders
        let parsed = try buffer.withReadableBytes { raw in
            Result { () throws(HTTPParseError) in
                try HeadLines.parse(UnsafeRawBufferPointer(rebasing: raw[0..<headEnd.contentEnd]), kind: kind, maxHeaders: maxHeaders)
            }
        }.get()
        buffer.moveReaderIndex(by: headEnd.bodyStart)
        switch parsed {
        case .request(let head):
            try frameRequest(head)
            try requireOneHost(head)
            return .some(.requestHead(head))
        case .response(let head):
            if head.status >= 100 && head.status < 200 && head.status != 101 { return .some(nil) }
            try frameResponse(head)
            return .some(.responseHead(head))
        }
    }

    /// Finds the blank line ending the head. Remembers how far it looked, so a head that
    /// trickles in a byte at a time is scanned once, not once per byte.
    private mutating func findHeadEnd() -> (contentEnd: Int, bodyStart: Int)? {
        let start = scanOffset
        let found: (Int, Int)? = buffer.withReadableBytes { raw in
            let n = raw.count
            var i = max(start, 0)
            while i < n {
                if raw[i] == 0x0A {
                    // "\n\n" or "\n\r\n" ends the head.
                    if i + 1 < n && raw[i + 1] == 0x0A { return (i + 1, i + 2) }
                    if i + 2 < n && raw[i + 1] == 0x0D && raw[i + 2] == 0x0A { return (i + 1, i + 3) }
                    if i + 1 >= n || (i + 2 >= n && raw[i + 1] == 0x0D) { return nil }
                }
                i += 1
            }
            return nil
        }
        if found == nil { scanOffset = max(0, buffer.readableBytes - 2) }
        return found
    }

    private mutating func frameRequest(_ head: HTTPRequestHead) throws(HTTPParseError) {
        let h = head.headers
        if h.contains("Transfer-Encoding") {
            if h.contains("Content-Length") {
                throw HTTPParseError(.malformed, "both Transfer-Encoding and Content-Length")
            }
            if head.version == .http1_0 { throw HTTPParseError(.malformed, "Transfer-Encoding in an HTTP/1.0 request") }
            try requireChunkedOnly(h)
            state = .chunkSize
            return
        }
        let length = try contentLength(h) ?? 0
        if length > limits.maxBodyBytes {
            throw HTTPParseError(.bodyTooLarge, "Content-Length \(length) exceeds the limit of \(limits.maxBodyBytes) bytes")
        }
        state = length == 0 ? .endPending : .fixedBody(remaining: length)
    }

    /// After the framing checks, so a request that is also too large still gets its 413.
    private func requireOneHost(_ head: HTTPRequestHead) throws(HTTPParseError) {
        let hosts = head.headers.fields.reduce(0) { $0 + (HTTPHeaders.sameName($1.name, "Host") ? 1 : 0) }
        if hosts > 1 { throw HTTPParseError(.malformed, "\(hosts) Host header fields (exactly one is allowed)") }
        if hosts == 0 && head.version != .http1_0 { throw HTTPParseError(.malformed, "no Host header field (required in HTTP/1.1)") }
    }

    private mutating func frameResponse(_ head: HTTPResponseHead) throws(HTTPParseError) {
        let method = requestMethod
        if head.status == 101 || (method == "CONNECT" && head.status >= 200 && head.status < 300) {
            stopAfterEnd = true
            state = .endPending
            return
        }
        if method == "HEAD" || head.status == 204 || head.status == 304 {
            state = .endPending
            return
        }
        let h = head.headers
        if h.contains("Transfer-Encoding") {
            // The final coding decides: chunked is framed, anything else runs to the close.
            state = lastCoding(h).map({ HTTPHeaders.sameName($0, "chunked") }) == true ? .chunkSize : .untilClose
            return
        }
        if let length = try contentLength(h) {
            if length > limits.maxBodyBytes {
                throw HTTPParseError(.bodyTooLarge, "Content-Length \(length) exceeds the limit of \(limits.maxBodyBytes) bytes")
            }
            state = length == 0 ? .endPending : .fixedBody(remaining: length)
            return
        }
        state = .untilClose
    }

    private func lastCoding(_ h: HTTPHeaders) -> Substring? {
        var last: Substring?
        for value in h.values("Transfer-Encoding") {
            for part in value.split(separator: ",") where !trimOWS(part).isEmpty { last = trimOWS(part) }
        }
        return last
    }

    private func requireChunkedOnly(_ h: HTTPHeaders) throws(HTTPParseError) {
        var codings: [Substring] = []
        for value in h.values("Transfer-Encoding") {
            for part in value.split(separator: ",") where !trimOWS(part).isEmpty { codings.append(trimOWS(part)) }
        }
        guard let last = codings.last, HTTPHeaders.sameName(last, "chunked") else {
            throw HTTPParseError(.malformed, "Transfer-Encoding '\(codings.joined(separator: ", "))' does not end in chunked")
        }
        if codings.count > 1 {
            throw HTTPParseError(.notImplemented, "Transfer-Encoding '\(codings.joined(separator: ", "))' is not supported (only chunked)")
        }
    }

    private func contentLength(_ h: HTTPHeaders) throws(HTTPParseError) -> Int? {
        var result: Int?
        for value in h.values("Content-Length") {
            for part in value.split(separator: ",", omittingEmptySubsequences: false) {
                let t = trimOWS(part)
                guard !t.isEmpty, t.utf8.count <= 18, t.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let n = Int(t) else {
                    throw HTTPParseError(.malformed, "Content-Length '\(value)' is not a number")
                }
                if let r = result, r != n { throw HTTPParseError(.malformed, "conflicting Content-Length values \(r) and \(n)") }
                result = n
            }
        }
        return result
    }

    // MARK: Chunks

    private mutating func parseChunkSize() throws(HTTPParseError) -> Int? {
        let maxLine = limits.maxChunkLine
        let line: (size: Int, consumed: Int)?? = try buffer.withReadableBytes { raw in Result { () throws(HTTPParseError) -> (Int, Int)?? in
            guard let lf = raw.firstIndex(of: 0x0A) else {
                if raw.count > maxLine { throw HTTPParseError(.malformed, "chunk size line longer than \(maxLine) bytes") }
                return .some(nil)
            }
            // The same limit when the whole line came in one piece (a 5 KB extension, say).
            if lf > maxLine { throw HTTPParseError(.malformed, "chunk size line longer than \(maxLine) bytes") }
            var end = lf
            if end > 0 && raw[end - 1] == 0x0D { end -= 1 }
            var size = 0
            var digits = 0
            var i = 0
            while i < end, let v = hexValue(raw[i]) {
                size = size << 4 | v
                digits += 1
                i += 1
                if digits > 15 { throw HTTPParseError(.malformed, "chunk size has too many digits") }
            }
            guard digits > 0 else { throw HTTPParseError(.malformed, "chunk size is not hexadecimal") }
            // Only whitespace or extensions (";name=value") may follow the size.
            while i < end && (raw[i] == 0x20 || raw[i] == 0x09) { i += 1 }
            guard i == end || raw[i] == 0x3B else { throw HTTPParseError(.malformed, "junk after the chunk size") }
            return .some((size, lf + 1))
        } }.get()
        guard let parsedOrNeedMore = line, let parsed = parsedOrNeedMore else {
            _ = try needMore("a chunk size line")
            return nil
        }
        buffer.moveReaderIndex(by: parsed.consumed)
        return parsed.size
    }

    private mutating func parseTrailers() throws(HTTPParseError) -> HTTPHeaders? {
        // No trailers: a bare CRLF.
        if let b = buffer.peekInteger(at: 0, as: UInt8.self), b == 0x0A { buffer.moveReaderIndex(by: 1); return HTTPHeaders() }
        if buffer.peekInteger(at: 0, as: UInt16.self) == 0x0D0A { buffer.moveReaderIndex(by: 2); return HTTPHeaders() }
        guard let end = findHeadEnd() else {
            if buffer.readableBytes > limits.maxHeadBytes {
                throw HTTPParseError(.headTooLarge, "trailers exceed \(limits.maxHeadBytes) bytes")
            }
            _ = try needMore("the trailers")
            return nil
        }
        scanOffset = 0
        let maxHeaders = limits.maxHeaders
        let headers = try buffer.withReadableBytes { raw in
            Result { () throws(HTTPParseError) in
                try HeadLines.parseFields(UnsafeRawBufferPointer(rebasing: raw[0..<end.contentEnd]), from: 0, maxHeaders: maxHeaders)
            }
        }.get()
        buffer.moveReaderIndex(by: end.bodyStart)
        return headers
    }
}

public enum HTTPParserEvent: Sendable, Equatable {
    case requestHead(HTTPRequestHead)
    case responseHead(HTTPResponseHead)
    case body([UInt8])
    case end(trailers: HTTPHeaders)
}

@inline(__always)
func hexValue(_ b: UInt8) -> Int? {
    switch b {
    case 48...57: return Int(b - 48)
    case 65...70: return Int(b - 55)
    case 97...102: return Int(b - 87)
    default: return nil
    }
}
