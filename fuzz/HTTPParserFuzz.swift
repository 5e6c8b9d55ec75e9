// libFuzzer target for the HTTP/1.1 parser (requests and responses). Built by scripts/fuzz.sh
// together with the parser's sources. Invariants: no crash, no trap, bodies within the limit,
// and feeding the same bytes in two pieces gives the same events as feeding them at once.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let first = bytes.first else { return 0 }
    let kind: HTTPParser.Kind = first & 1 == 0 ? .request : .response
    let method = ["GET", "HEAD", "CONNECT", "POST"][Int(first >> 1) & 3]
    let limits = HTTPParser.Limits(maxHeadBytes: 4096, maxHeaders: 20, maxBodyBytes: 8192)
    let input = bytes[1...]
    let whole = HTTPParserRun(kind, limits: limits, method: method, [input])
    let split = input.startIndex + Int(first) % max(input.count, 1)
    let pieces = HTTPParserRun(kind, limits: limits, method: method, [input[..<split], input[split...]])
    HTTPParserRun.requireSame(whole, pieces, "a split")
    return 0
}
