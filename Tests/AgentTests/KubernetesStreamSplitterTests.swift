import XCTest
@testable import Agent
@testable import Reactor

/// The sans-I/O splitters for watch bodies (lines) and list bodies (items), with literals and
/// with every way of cutting the same input into pieces.
final class KubernetesStreamSplitterTests: XCTestCase {
    private func lines(_ input: [UInt8], cuts: [Int], max: Int = 64, overlong: LineSplitter.Overlong = .fail) throws -> [String] {
        var s = LineSplitter(maxLineBytes: max, overlong: overlong)
        var out: [String] = []
        var start = 0
        for cut in cuts + [input.count] where cut >= start {
            try s.feed(Array(input[start..<cut])) { out.append(String(decoding: $0, as: UTF8.self)) }
            start = cut
        }
        if let last = s.finish() { out.append(String(decoding: last, as: UTF8.self)) }
        return out
    }

    func testLinesComeOutWholeHoweverTheBytesArrive() throws {
        let text = Array("{\"type\":\"ADDED\"}\n\n{\"type\":\"DELETED\"}\r\ntail".utf8)
        let expected = ["{\"type\":\"ADDED\"}", "", "{\"type\":\"DELETED\"}", "tail"]
        for a in 0...text.count {
            for b in a...text.count {
                XCTAssertEqual(try lines(text, cuts: [a, b]), expected, "cut at \(a), \(b)")
            }
        }
    }

    func testATooLongWatchLineIsAnErrorAndStaysOne() throws {
        var s = LineSplitter(maxLineBytes: 8, overlong: .fail)
        var got: [String] = []
        try s.feed(Array("short\n".utf8)) { got.append(String(decoding: $0, as: UTF8.self)) }
        XCTAssertThrowsError(try s.feed(Array("123456789".utf8)) { _ in }) { XCTAssertEqual($0 as? LineSplitter.LineTooLong, .init(limit: 8)) }
        XCTAssertThrowsError(try s.feed(Array("\n".utf8)) { _ in })
        XCTAssertEqual(got, ["short"])
        XCTAssertNil(s.finish())
    }

    func testALongLogLineComesOutInPiecesOfTheLimit() throws {
        XCTAssertEqual(try lines(Array("abcdefghij\nxy\n".utf8), cuts: [3], max: 4, overlong: .split), ["abcd", "efgh", "ij", "xy"])
        XCTAssertEqual(try lines(Array("abcdefghij\nxy\n".utf8), cuts: [], max: 4, overlong: .split), ["abcd", "efgh", "ij", "xy"])
    }

    private func split(_ body: String, cuts: [Int], maxItem: Int = 1 << 16) throws -> (items: [JSONValue], envelope: JSONValue) {
        var s = ListBodySplitter(maxItemBytes: maxItem)
        let bytes = Array(body.utf8)
        var items: [JSONValue] = []
        var start = 0
        var parseError: Error?
        for cut in cuts + [bytes.count] where cut >= start {
            try s.feed(Array(bytes[start..<cut])) { item in
                do { items.append(try JSONParser.parse(item)) } catch { parseError = error }
            }
            start = cut
        }
        if let parseError { throw parseError }
        return (items, try JSONParser.parse(try s.finish()))
    }

    func testListItemsComeOutOneByOneAndTheEnvelopeKeepsTheRest() throws {
        let body = #"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"42","continue":"a\"b]"},"#
            + #""items":[{"metadata":{"name":"p1","note":"}]\"{"}},{"metadata":{"name":"p2"},"spec":{"x":[1,[2]]}}],"extra":{"items":[9]}}"#
        let expectedEnvelope = try JSONParser.parse(#"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"42","continue":"a\"b]"},"items":[],"extra":{"items":[9]}}"#)
        for cut in 0...body.utf8.count {
            let (items, envelope) = try split(body, cuts: [cut])
            XCTAssertEqual(items.count, 2, "cut at \(cut)")
            XCTAssertEqual(try JSONFields(items[0]).optionalObject("metadata")?.optionalString("name"), "p1")
            XCTAssertEqual(try JSONFields(items[1]).optionalObject("metadata")?.optionalString("name"), "p2")
            XCTAssertEqual(envelope, expectedEnvelope, "cut at \(cut)")
        }
    }

    func testAnEmptyListAndAListWithoutItems() throws {
        XCTAssertEqual(try split(#" {"metadata":{"resourceVersion":"7"},"items":[]} "#, cuts: []).items, [])
        XCTAssertEqual(try split(#"{"metadata":{"resourceVersion":"7"}}"#, cuts: []).items, [])
    }

    func testBadListBodiesAreErrorsThatNameTheOffset() {
        XCTAssertThrowsError(try split(#"[1,2]"#, cuts: [])) { XCTAssertTrue("\($0)".contains("byte 0")) }
        XCTAssertThrowsError(try split(#"{"items":[1]}"#, cuts: [])) { XCTAssertTrue("\($0)".contains("not an object")) }
        XCTAssertThrowsError(try split(#"{"items":[{"a":1}"#, cuts: [])) { XCTAssertTrue("\($0)".contains("ended inside")) }
        XCTAssertThrowsError(try split(#"{"items":[{"a":"0123456789"}]}"#, cuts: [], maxItem: 8)) { XCTAssertTrue("\($0)".contains("larger than 8")) }
        XCTAssertThrowsError(try split(#"{"a":1} x"#, cuts: [])) { XCTAssertTrue("\($0)".contains("after the list")) }
    }
}
