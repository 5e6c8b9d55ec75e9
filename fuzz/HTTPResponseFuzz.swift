// libFuzzer target for the HTTP client's response parsing (HTTPParser, kind .response, as
// HTTPClientConnection drives it). The first byte picks the request method (HEAD and CONNECT
// change the framing) and where the input is cut. Invariants: no crash or trap, bodies within
// the limit, the same events however the input is cut, and every head that parses survives
// HTTPWriter's response head and a second parse unchanged. Built by scripts/fuzz.sh.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPResponse(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let first = bytes.first else { return 0 }
    let method = ["GET", "HEAD", "CONNECT", "POST"][Int(first) & 3]
    let limits = HTTPParser.Limits(maxHeadBytes: 4096, maxHeaders: 32, maxBodyBytes: 8192)
    let input = bytes[1...]
    let whole = HTTPParserRun(.response, limits: limits, method: method, [input])
    let cut = input.startIndex + Int(first >> 2) % max(input.count, 1)
    let split = HTTPParserRun(.response, limits: limits, method: method, [input[..<cut], input[cut...]])
    HTTPParserRun.requireSame(whole, split, "a cut")

    // Written and parsed again, a head is the same head (HEAD: no body follows it).
    let roomy = HTTPParser.Limits(maxHeadBytes: 1 << 16, maxHeaders: 64, maxBodyBytes: 0)
    for case .responseHead(let head) in whole.events {
        var written: [UInt8] = []
        HTTPWriter.appendResponseHead(head, into: &written)
        let again = HTTPParserRun(.response, limits: roomy, method: "HEAD", [written[...]])
        precondition(again.error == nil, "our own response head does not parse: \(String(describing: again.error))")
        guard case .responseHead(let parsed)? = again.events.first else { preconditionFailure("no head parsed from our own head") }
        precondition(parsed == head, "a written head parsed differently")
    }
    return 0
}
