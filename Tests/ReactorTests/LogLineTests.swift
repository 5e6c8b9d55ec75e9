import Foundation
import Logging
import XCTest
@testable import Reactor

final class LogLineTests: XCTestCase {
    func testJSONLineHasTheArchitectureFieldsAndEscapes() throws {
        let line = LineLogHandler.jsonLine(level: .info, message: "WebSocket \"connection\"\nestablished",
                                           component: "websocket-handler", metadata: ["connection_id": "ws-conn-123"])
        XCTAssertTrue(line.hasSuffix("}\n"))
        XCTAssertEqual(line.filter { $0 == "\n" }.count, 1, "one line per record")
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String]
        XCTAssertEqual(object?["level"], "info")
        XCTAssertEqual(object?["msg"], "WebSocket \"connection\"\nestablished")
        XCTAssertEqual(object?["component"], "websocket-handler")
        XCTAssertEqual(object?["connection_id"], "ws-conn-123")
        let time = try XCTUnwrap(object?["time"])
        XCTAssertNotNil(ISO8601DateFormatter().date(from: time.replacingOccurrences(of: #"\.\d+"#, with: "", options: .regularExpression)), time)
    }

    func testRFC3339OfAKnownInstant() {
        XCTAssertEqual(Timestamp.rfc3339(nanoseconds: 1_705_314_600_123_000_000), "2024-01-15T10:30:00.123Z")
        XCTAssertEqual(Timestamp.rfc3339(nanoseconds: 1_705_314_600_000_000_000, fractionDigits: 0), "2024-01-15T10:30:00Z")
    }
}
