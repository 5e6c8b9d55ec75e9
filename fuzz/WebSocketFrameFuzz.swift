// libFuzzer target for the WebSocket frame decoder, both roles, plus an encode/decode round
// trip of the input as a payload. Built by scripts/fuzz.sh with the WebSocket core sources.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWebSocketFrames(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let raw = UnsafeRawBufferPointer(start: data, count: size)
    for role in [WebSocketDecoder.Role.server, .client] {
        var d = WebSocketDecoder(role: role, maxMessageSize: 4096)
        // Feed in two pieces to exercise partial frames.
        let cut = size / 3
        d.feed(UnsafeRawBufferPointer(rebasing: raw[0..<cut]))
        var count = 0
        do {
            while let _ = try d.next() { count += 1 }
            d.feed(UnsafeRawBufferPointer(rebasing: raw[cut...]))
            // The in-place path for whole binary messages first, as WebSocketConnection does.
            while true {
                if let n = try d.beginWholeBinaryMessage() {
                    precondition(d.pendingPayload(n).count == n)
                    d.consumePayload(n)
                    count += 1
                    continue
                }
                guard let e = try d.next() else { break }
                count += 1
                if case .text(let t) = e { precondition(t.withUnsafeBytes { UTF8Validation.isValid($0) }) }
            }
        } catch {
            precondition([1002, 1007, 1009].contains(error.closeCode), "unexpected close code \(error.closeCode)")
        }
    }
    // Round trip: the input as a binary payload, masked with a key taken from it.
    let key: UInt32 = size >= 4 ? UInt32(raw[0]) << 24 | UInt32(raw[1]) << 16 | UInt32(raw[2]) << 8 | UInt32(raw[3]) : 0x01020304
    var frame: [UInt8] = []
    WebSocketFrameEncoder.append(opcode: .binary, payload: raw, maskKey: key, into: &frame)
    var d = WebSocketDecoder(role: .server, maxMessageSize: 1 << 20)
    d.feed(frame)
    do {
        let e = try d.next()
        precondition(e == .binary(Array(raw)), "round trip changed the payload")
    } catch {
        preconditionFailure("round trip failed: \(error)")
    }
    return 0
}
