// Shared by the HTTP fuzz targets (compiled into each by scripts/fuzz.sh): one run of an
// HTTPParser over some pieces of input, then EOF.

/// What a parser made of its input: the events, with body pieces merged (how a body is cut
/// depends on how the input arrived, not on what it says), and the error that stopped it.
struct HTTPParserRun {
    var events: [HTTPParserEvent] = []
    var error: HTTPParseError?
    /// The largest body of any one message.
    var largestBody = 0
    private var bodyBytes = 0
    // Body pieces gather here (appending to an event would copy the body once per piece).
    private var pendingBody: [UInt8] = []
    /// The bytes after a protocol switch (101, CONNECT), when the parser stopped.
    var afterSwitch: [UInt8]?

    init(_ kind: HTTPParser.Kind, limits: HTTPParser.Limits, method: String = "GET", _ pieces: [ArraySlice<UInt8>]) {
        var p = HTTPParser(kind: kind, limits: limits)
        p.requestMethod = method
        do {
            for piece in pieces {
                piece.withUnsafeBytes { p.feed($0) }
                try drain(&p)
            }
            p.feedEOF()
            try drain(&p)
        } catch {
            self.error = error
        }
        flushBody()
        if p.isStopped { afterSwitch = p.takeBufferedBytes() }
        precondition(largestBody <= limits.maxBodyBytes, "a body over the limit came out")
    }

    private mutating func drain(_ p: inout HTTPParser) throws(HTTPParseError) {
        while let e = try p.next() {
            if case .body(let b) = e {
                bodyBytes += b.count
                largestBody = max(largestBody, bodyBytes)
                pendingBody.append(contentsOf: b)
                continue
            }
            flushBody()
            if case .end = e { bodyBytes = 0 }
            events.append(e)
        }
    }

    private mutating func flushBody() {
        guard !pendingBody.isEmpty else { return }
        events.append(.body(pendingBody))
        pendingBody = []
    }

    /// The same outcome whatever the cut: both fail or both give the same events.
    static func requireSame(_ a: HTTPParserRun, _ b: HTTPParserRun, _ what: String) {
        precondition((a.error == nil) == (b.error == nil), "\(what) changed the outcome: \(String(describing: a.error)) vs \(String(describing: b.error))")
        if a.error == nil {
            precondition(a.events == b.events, "\(what) changed the events")
            precondition(a.afterSwitch == b.afterSwitch, "\(what) changed the bytes after a protocol switch")
        }
    }
}
