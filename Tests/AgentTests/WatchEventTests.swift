import XCTest
@testable import Agent
@testable import Reactor

/// One watch stream line decoded on its own (what ResourceWatcher does with each line).
final class WatchEventTests: XCTestCase {
    func testAnEventLineGivesItsTypeObjectAndResourceVersion() throws {
        let line = Array(#"{"type":"MODIFIED","object":{"metadata":{"name":"web","resourceVersion":"42"}}}"#.utf8)
        let event = try XCTUnwrap(try WatchEvent.parse(line[...]))
        XCTAssertEqual(event.type, "MODIFIED")
        XCTAssertEqual(event.resourceVersion, "42")
        XCTAssertEqual(try JSONFields(event.object).optionalObject("metadata")?.optionalString("name"), "web")
    }

    func testABlankLineIsNoEvent() throws {
        XCTAssertNil(try WatchEvent.parse(Array(" \t ".utf8)[...]))
    }

    func testALineWithoutAnObjectOrNotJSONThrows() {
        XCTAssertThrowsError(try WatchEvent.parse(Array(#"{"type":"ADDED"}"#.utf8)[...]))
        XCTAssertThrowsError(try WatchEvent.parse(Array(#"{"object":{}}"#.utf8)[...]))
        XCTAssertThrowsError(try WatchEvent.parse(Array("not json".utf8)[...]))
    }

    func testAnEmptyOrMissingResourceVersionIsNone() throws {
        let empty = try XCTUnwrap(try WatchEvent.parse(Array(#"{"type":"ADDED","object":{"metadata":{"resourceVersion":""}}}"#.utf8)[...]))
        XCTAssertNil(empty.resourceVersion)
        let none = try XCTUnwrap(try WatchEvent.parse(Array(#"{"type":"BOOKMARK","object":[]}"#.utf8)[...]))
        XCTAssertNil(none.resourceVersion)
    }
}
