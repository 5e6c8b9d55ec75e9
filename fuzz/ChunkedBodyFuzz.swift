// libFuzzer target for the chunked body decoder inside HTTPParser: a fixed head with
// `Transfer-Encoding: chunked` (a request as HTTPServer sees it, or a response as the HTTP
// client and the Kubernetes watches see it), then the input as the body. The first byte picks
// request or response and how the body trickles in (whole, or in pieces of 1 to 7 bytes).
// Invariants: no crash or trap; bodies within the limit, chunk-size lines within theirs; the
// same body, trailers and outcome however the bytes arrive; a decoded body re-encoded with
// HTTPWriter's chunks decodes to itself; and any payload encoded in chunks sized by the input
// decodes back to that payload. Built by scripts/fuzz.sh.

let requestHead = Array("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
let responseHead = Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)

func decode(_ kind: HTTPParser.Kind, _ body: ArraySlice<UInt8>, piece: Int) -> HTTPParserRun {
    var limits = HTTPParser.Limits(maxHeadBytes: 1024, maxHeaders: 8, maxBodyBytes: 512)
    limits.maxChunkLine = 40
    var pieces: [ArraySlice<UInt8>] = [(kind == .request ? requestHead : responseHead)[...]]
    var i = body.startIndex
    while i < body.endIndex {
        let n = piece == 0 ? body.count : min(piece, body.endIndex - i)
        pieces.append(body[i..<i + n])
        i += n
    }
    return HTTPParserRun(kind, limits: limits, pieces)
}

/// The body and trailers of the first message, if it ended.
func firstMessage(_ run: HTTPParserRun) -> (body: [UInt8], trailers: HTTPHeaders)? {
    var body: [UInt8] = []
    for e in run.events.dropFirst() {
        switch e {
        case .body(let b): body += b
        case .end(let trailers): return (body, trailers)
        default: return nil
        }
    }
    return nil
}

func encodeChunks(_ payload: [UInt8], sizes: ArraySlice<UInt8>, trailers: HTTPHeaders) -> [UInt8] {
    var out: [UInt8] = []
    var i = 0, s = sizes.startIndex
    while i < payload.count {
        let n = min(payload.count - i, s < sizes.endIndex ? Int(sizes[s]) + 1 : payload.count)
        if s < sizes.endIndex { s += 1 }
        payload[i..<i + n].withUnsafeBytes { HTTPWriter.appendChunk($0, into: &out) }
        i += n
    }
    HTTPWriter.appendLastChunk(trailers: trailers, into: &out)
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzChunkedBody(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let first = bytes.first else { return 0 }
    let kind: HTTPParser.Kind = first & 1 == 0 ? .request : .response
    let body = bytes[1...]
    let whole = decode(kind, body, piece: 0)
    let trickled = decode(kind, body, piece: Int(first >> 1) % 7 + 1)
    HTTPParserRun.requireSame(whole, trickled, "trickling")

    if let message = firstMessage(whole) {
        let again = decode(kind, encodeChunks(message.body, sizes: body, trailers: message.trailers)[...], piece: 0)
        guard let m = firstMessage(again) else { preconditionFailure("a re-encoded body does not decode: \(String(describing: again.error))") }
        precondition(m.body == message.body && m.trailers == message.trailers, "a re-encoded body decodes differently")
    }
    // The input itself as a payload (within the body limit), in chunks sized by its own bytes.
    let payload = Array(body.prefix(512))
    let encoded = decode(kind, encodeChunks(payload, sizes: body, trailers: HTTPHeaders())[...], piece: 0)
    guard let m = firstMessage(encoded) else { preconditionFailure("encoded chunks do not decode: \(String(describing: encoded.error))") }
    precondition(m.body == payload, "encoded chunks decode to another payload")
    return 0
}
