import XCTest
@testable import Reactor

final class JSONTests: XCTestCase {
    func testParsesEveryKindAndKeepsMemberOrder() throws {
        let v = try JSONParser.parse(#" { "b": [1, -2.5e3, true, false, null], "a": {"x": "y"}, "n": 18446744073709551615 } "#)
        XCTAssertEqual(v, .object([
            JSONMember("b", .array([.number("1"), .number("-2.5e3"), .bool(true), .bool(false), .null])),
            JSONMember("a", .object([JSONMember("x", .string("y"))])),
            JSONMember("n", .number("18446744073709551615")),
        ]))
        // 64-bit counters keep every digit through a round trip.
        XCTAssertEqual(v.text(), #"{"b":[1,-2.5e3,true,false,null],"a":{"x":"y"},"n":18446744073709551615}"#)
    }

    func testStringEscapesAndUnicode() throws {
        let v = try JSONParser.parse(#""q\" b\\ s\/ \b\f\n\r\t \u00e9 \ud83d\ude00 é""#)
        XCTAssertEqual(v, .string("q\" b\\ s/ \u{8}\u{c}\n\r\t é 😀 é"))
        // Writing escapes what must be escaped and nothing else.
        XCTAssertEqual(JSONValue.string("a\"b\\c\n\u{1}é").text(), #""a\"b\\c\n\u0001é""#)
        XCTAssertEqual(try JSONParser.parse(JSONValue.string("a\"b\\c\n\u{1}é").text()), .string("a\"b\\c\n\u{1}é"))
    }

    func testRejectsBadInputWithTheOffset() {
        let cases: [(String, String)] = [
            ("", "unexpected end of input"),
            ("{\"a\": 1,}", "expected a member name"),
            ("[1 2]", "expected ',' or ']'"),
            ("{\"a\" 1}", "expected ':'"),
            ("01", "after the value"),
            ("1.", "expected a digit after '.'"),
            ("-", "expected a digit"),
            ("1e", "exponent"),
            ("tru", "unexpected"),
            ("\"abc", "unterminated string"),
            ("\"a\u{1}b\"", "control character"),
            ("\"\\x\"", "unknown escape"),
            ("\"\\ud83d\"", "high surrogate"),
            ("\"\\ude00\"", "lone low surrogate"),
            ("{} {}", "after the value"),
            ("NaN", "unexpected 'N'"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try JSONParser.parse(text), text) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(text): \(error)")
                XCTAssertTrue("\(error)".hasPrefix("at byte "), "\(error)")
            }
        }
        XCTAssertThrowsError(try JSONParser.parse([0x22, 0xFF, 0x22])) { XCTAssertTrue("\($0)".contains("UTF-8"), "\($0)") }
    }

    func testNestingIsBounded() throws {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        XCTAssertThrowsError(try JSONParser.parse(deep)) { XCTAssertTrue("\($0)".contains("nested deeper than 64"), "\($0)") }
        let ok = String(repeating: "[", count: 60) + String(repeating: "]", count: 60)
        XCTAssertNoThrow(try JSONParser.parse(ok))
    }

    func testPrettyOutputMatchesJSONEncoderStyle() {
        let v = JSONValue.object(["a": .string("x"), "skip": nil, "list": .array([.int(1), .int(2)]), "empty": .object([])])
        XCTAssertEqual(v.text(pretty: true), "{\n  \"a\" : \"x\",\n  \"list\" : [\n    1,\n    2\n  ],\n  \"empty\" : {}\n}")
        XCTAssertEqual(JSONValue.double(.infinity), .null)
        XCTAssertEqual(JSONValue.double(15.5).text(), "15.5")
    }

    func testFieldsNameThePathOfWhatIsWrong() throws {
        let v = try JSONParser.parse(#"{"status": "REQUIRED", "forwards": [{"name": "k8s", "remote_port": 8000.0}, {"name": "x", "remote_port": "9"}], "nothing": null}"#)
        let f = try JSONFields(v)
        XCTAssertEqual(try f.string("status"), "REQUIRED")
        XCTAssertNil(try f.optionalString("nothing"), "null reads as absent")
        XCTAssertNil(try f.optionalString("unknown"))
        let forwards = try XCTUnwrap(try f.optionalObjects("forwards"))
        XCTAssertEqual(try forwards[0].int("remote_port"), 8000)
        XCTAssertThrowsError(try forwards[1].int("remote_port")) {
            XCTAssertEqual("\($0)", "forwards[1].remote_port: expected an integer, found a string")
        }
        XCTAssertThrowsError(try f.string("missing")) { XCTAssertEqual("\($0)", "missing \"missing\"") }
        XCTAssertThrowsError(try f.optionalDouble("status")) { XCTAssertEqual("\($0)", "status: expected a number, found a string") }
        XCTAssertThrowsError(try JSONFields(.array([]))) { XCTAssertEqual("\($0)", "expected an object, found an array") }
        let fraction = try JSONFields(try JSONParser.parse(#"{"p": 80.5}"#))
        XCTAssertThrowsError(try fraction.int("p")) { XCTAssertEqual("\($0)", "p: expected an integer, found 80.5") }
    }

    func testRFC3339RoundTripAndRejects() {
        XCTAssertEqual(Timestamp.parseRFC3339("1970-01-01T00:00:00Z"), 0)
        XCTAssertEqual(Timestamp.parseRFC3339("2026-01-15T10:30:00Z"), 1_768_473_000)
        XCTAssertEqual(Timestamp.parseRFC3339("2026-01-15T11:30:00.250+01:00"), 1_768_473_000)
        XCTAssertEqual(Timestamp.parseRFC3339("2024-02-29T23:59:59Z"), 1_709_251_199)
        XCTAssertEqual(Timestamp.rfc3339(seconds: 1_768_473_000), "2026-01-15T10:30:00Z")
        for s in [1_700_000_000, 951_782_400, 4_102_444_800] as [Int64] {
            XCTAssertEqual(Timestamp.parseRFC3339(Timestamp.rfc3339(seconds: s)), s)
        }
        for bad in ["yesterday", "2026-01-15", "2026-13-01T00:00:00Z", "2025-02-29T00:00:00Z", "2026-01-15T10:30:00",
                    "2026-01-15T10:30:00Zjunk", "2026-01-15T25:00:00Z", "2026-01-15T10:30:00.Z"] {
            XCTAssertNil(Timestamp.parseRFC3339(bad), bad)
        }
    }
}
