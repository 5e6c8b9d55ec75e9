import XCTest
@testable import Reactor

final class SSETests: XCTestCase {
    func testEventFraming() {
        let e = SSEEvent(id: "7", event: "log", data: "a\nb\r\nc\rd", retry: 1500)
        XCTAssertEqual(String(decoding: SSEWriter.encode(e), as: UTF8.self),
                       "id: 7\nevent: log\nretry: 1500\ndata: a\ndata: b\ndata: c\ndata: d\n\n")
        XCTAssertEqual(String(decoding: SSEWriter.encode(SSEEvent(data: "")), as: UTF8.self), "data: \n\n")
        // A line break in id/event must not forge another field.
        XCTAssertEqual(String(decoding: SSEWriter.encode(SSEEvent(id: "1\ndata: x", data: "y")), as: UTF8.self),
                       "id: 1 data: x\ndata: y\n\n")
        XCTAssertEqual(String(decoding: SSEWriter.comment(), as: UTF8.self), ": keepalive\n\n")
    }
}
