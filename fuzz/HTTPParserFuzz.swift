// libFuzzer target for the HTTP/1.1 parser (requests and responses). Built by scripts/fuzz.sh
// together with the parser's sources. Invariants: no crash, no trap, bodies within the limit,
// and feeding the same bytes in two pieces gives the same events as feeding them at once.

func runParser(_ kind: HTTPParser.Kind, method: String, _ pieces: [ArraySlice<UInt8>]) -> ([HTTPParserEvent], HTTPParseError?) {
    var p = HTTPParser(kind: kind, limits: HTTPParser.Limits(maxHeadBytes: 4096, maxHeaders: 20, maxBodyBytes: 8192))
    p.requestMethod = method
    var events: [HTTPParserEvent] = []
    var body = 0
    do {
        for piece in pieces {
            piece.withUnsafeBytes { p.feed($0) }
            while let e = try p.next() {
                if case .body(let b) = e {
                    body += b.count
                    // Normalise: body pieces depend on how input was split.
                    if case .body(let prev)? = events.last { events[events.count - 1] = .body(prev + b); continue }
                }
                events.append(e)
            }
        }
        p.feedEOF()
        while let e = try p.next() {
            if case .body(let b) = e {
                body += b.count
                if case .body(let prev)? = events.last { events[events.count - 1] = .body(prev + b); continue }
            }
            events.append(e)
        }
    } catch {
        return (events, error)
    }
    precondition(body <= 8192 * 64, "body accounting broken")
    return (events, nil)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let first = bytes.first else { return 0 }
    let kind: HTTPParser.Kind = first & 1 == 0 ? .request : .response
    let method = ["GET", "HEAD", "CONNECT", "POST"][Int(first >> 1) & 3]
    let input = bytes[1...]
    let whole = runParser(kind, method: method, [input])
    let split = input.startIndex + Int(first) % max(input.count, 1)
    let pieces = runParser(kind, method: method, [input[..<split], input[split...]])
    // Same outcome whatever the split (events before an error may differ only in body merging).
    precondition((whole.1 == nil) == (pieces.1 == nil), "split changed the outcome")
    if whole.1 == nil { precondition(whole.0 == pieces.0, "split changed the events") }
    return 0
}
