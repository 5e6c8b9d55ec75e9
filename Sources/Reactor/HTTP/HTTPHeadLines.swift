/// Parses the lines of a message head (start line + fields) from raw bytes.
/// Lines end in CRLF or a bare LF. Strings are made only for what the caller keeps.
enum ParsedHead {
    case request(HTTPRequestHead)
    case response(HTTPResponseHead)
}

enum HeadLines {
    static func parse(_ raw: UnsafeRawBufferPointer, kind: HTTPParser.Kind, maxHeaders: Int) throws(HTTPParseError) -> ParsedHead {
        guard let lf = raw.firstIndex(of: 0x0A) else { throw HTTPParseError(.malformed, "no start line") }
        let lineEnd = lf > 0 && raw[lf - 1] == 0x0D ? lf - 1 : lf
        let line = UnsafeRawBufferPointer(rebasing: raw[0..<lineEnd])
        let headers = try parseFields(raw, from: lf + 1, maxHeaders: maxHeaders)
        switch kind {
        case .request:
            var head = try parseRequestLine(line)
            head.headers = headers
            return .request(head)
        case .response:
            var head = try parseStatusLine(line)
            head.headers = headers
            return .response(head)
        }
    }

    static func parseRequestLine(_ line: UnsafeRawBufferPointer) throws(HTTPParseError) -> HTTPRequestHead {
        guard let sp1 = line.firstIndex(of: 0x20) else { throw HTTPParseError(.malformed, "request line has no spaces") }
        guard let sp2 = line[(sp1 + 1)...].firstIndex(of: 0x20) else {
            throw HTTPParseError(.malformed, "request line needs method, target and version")
        }
        let method = UnsafeRawBufferPointer(rebasing: line[0..<sp1])
        let target = UnsafeRawBufferPointer(rebasing: line[(sp1 + 1)..<sp2])
        let version = UnsafeRawBufferPointer(rebasing: line[(sp2 + 1)...])
        guard !method.isEmpty, method.allSatisfy(isTokenByte) else { throw HTTPParseError(.malformed, "method is not a token") }
        guard !target.isEmpty, target.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else {
            throw HTTPParseError(.malformed, "request target is empty or has control characters")
        }
        let v = try parseVersion(version)
        return HTTPRequestHead(method: String(decoding: method, as: UTF8.self),
                               target: String(decoding: target, as: UTF8.self), version: v)
    }

    static func parseStatusLine(_ line: UnsafeRawBufferPointer) throws(HTTPParseError) -> HTTPResponseHead {
        guard line.count >= 12, line[8] == 0x20 else { throw HTTPParseError(.malformed, "status line too short") }
        let v = try parseVersion(UnsafeRawBufferPointer(rebasing: line[0..<8]))
        let d0 = line[9], d1 = line[10], d2 = line[11]
        guard [d0, d1, d2].allSatisfy({ $0 >= 48 && $0 <= 57 }) else { throw HTTPParseError(.malformed, "status code is not three digits") }
        guard line.count == 12 || line[12] == 0x20 else { throw HTTPParseError(.malformed, "no space after the status code") }
        let status = Int(d0 - 48) * 100 + Int(d1 - 48) * 10 + Int(d2 - 48)
        let reason = line.count > 13 ? String(decoding: UnsafeRawBufferPointer(rebasing: line[13...]), as: UTF8.self) : ""
        return HTTPResponseHead(status: status, reason: reason, version: v)
    }

    static func parseVersion(_ v: UnsafeRawBufferPointer) throws(HTTPParseError) -> HTTPVersion {
        // "HTTP/1.1"
        guard v.count == 8, v[0] == 0x48, v[1] == 0x54, v[2] == 0x54, v[3] == 0x50, v[4] == 0x2F, v[6] == 0x2E,
              v[5] >= 48 && v[5] <= 57, v[7] >= 48 && v[7] <= 57 else {
            throw HTTPParseError(.malformed, "bad HTTP version '\(printable(v))'")
        }
        switch (v[5], v[7]) {
        case (0x31, 0x31): return .http1_1
        case (0x31, 0x30): return .http1_0
        default: throw HTTPParseError(.versionNotSupported, "HTTP version \(printable(v)) is not supported")
        }
    }

    /// Field lines from `start` to the end of `raw` (which ends after the last field's LF).
    static func parseFields(_ raw: UnsafeRawBufferPointer, from start: Int, maxHeaders: Int) throws(HTTPParseError) -> HTTPHeaders {
        var headers = HTTPHeaders()
        var pos = start
        while pos < raw.count {
            guard let lf = raw[pos...].firstIndex(of: 0x0A) else { break }
            var end = lf
            if end > pos && raw[end - 1] == 0x0D { end -= 1 }
            if end == pos { break }
            if headers.count >= maxHeaders { throw HTTPParseError(.headTooLarge, "more than \(maxHeaders) header fields") }
            if raw[pos] == 0x20 || raw[pos] == 0x09 {
                throw HTTPParseError(.malformed, "obsolete line folding at byte \(pos)")
            }
            guard let colon = raw[pos..<end].firstIndex(of: 0x3A) else {
                throw HTTPParseError(.malformed, "header line without ':' at byte \(pos)")
            }
            let name = UnsafeRawBufferPointer(rebasing: raw[pos..<colon])
            guard !name.isEmpty, name.allSatisfy(isTokenByte) else {
                throw HTTPParseError(.malformed, "invalid header name '\(printable(name))' at byte \(pos)")
            }
            var vs = colon + 1
            var ve = end
            while vs < ve && (raw[vs] == 0x20 || raw[vs] == 0x09) { vs += 1 }
            while ve > vs && (raw[ve - 1] == 0x20 || raw[ve - 1] == 0x09) { ve -= 1 }
            let value = UnsafeRawBufferPointer(rebasing: raw[vs..<ve])
            if value.contains(where: { $0 == 0 || $0 == 0x0D || $0 == 0x0A }) {
                throw HTTPParseError(.malformed, "control character in header '\(printable(name))'")
            }
            headers.add(String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self))
            pos = lf + 1
        }
        return headers
    }

    static func printable(_ b: UnsafeRawBufferPointer) -> String {
        String(decoding: b.prefix(64).map { $0 >= 0x20 && $0 < 0x7F ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
    }
}

/// tchar from RFC 9110 §5.6.2.
@inline(__always)
func isTokenByte(_ b: UInt8) -> Bool {
    switch b {
    case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
    case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: return true
    default: return false
    }
}
