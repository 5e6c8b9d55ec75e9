import XCTest
@testable import Agent
@testable import Reactor

final class ConfigDurationTests: XCTestCase {
    func testGoStyleDurations() {
        let cases: [(String, TimeAmount)] = [
            ("30s", .seconds(30)), ("5m", .seconds(300)), ("1h30m", .seconds(5400)), ("250ms", .milliseconds(250)),
            ("1.5h", .seconds(5400)), ("2h45m30s", .seconds(9930)), ("100us", .microseconds(100)),
            ("100µs", .microseconds(100)), ("10ns", .nanoseconds(10)), ("0s", .zero), (".5s", .milliseconds(500)),
            ("1m0.5s", .milliseconds(60_500)),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(DurationText.parse(text), expected, text)
        }
    }

    func testPlainNumbersAreSeconds() {
        XCTAssertEqual(DurationText.parse("30"), .seconds(30))
        XCTAssertEqual(DurationText.parse("0"), .zero)
        XCTAssertEqual(DurationText.parse("0.25"), .milliseconds(250))
        XCTAssertEqual(DurationText.parse(" 7 "), .seconds(7))
    }

    func testInvalidDurations() {
        for text in ["", "soon", "5x", "s", "1h30", "-5s", "-5", "1e3", "inf", "nan", "5 s", "1..5s", "30S", "9999999999h"] {
            XCTAssertNil(DurationText.parse(text), text)
        }
    }

    func testFormatting() {
        XCTAssertEqual(DurationText.format(.zero), "0s")
        XCTAssertEqual(DurationText.format(.seconds(30)), "30s")
        XCTAssertEqual(DurationText.format(.seconds(5400)), "1h30m")
        XCTAssertEqual(DurationText.format(.milliseconds(250)), "250ms")
        XCTAssertEqual(DurationText.format(.milliseconds(60_500)), "1m500ms")
        XCTAssertEqual(DurationText.format(.nanoseconds(1_001)), "1us1ns")
        for amount: TimeAmount in [.seconds(1), .seconds(86_400), .milliseconds(1_234), .nanoseconds(7)] {
            XCTAssertEqual(DurationText.parse(DurationText.format(amount)), amount)
        }
    }

    func testDurationKeysAcceptNumbersAndStrings() throws {
        let (c, _) = try loadConfigYAML("realtime:\n  sse_heartbeat: 15\n  connection_timeout: \"2m\"\ntunnel:\n  inactivity_timeout: 0\n")
        XCTAssertEqual(c.realtime.sseHeartbeat, .seconds(15))
        XCTAssertEqual(c.realtime.connectionTimeout, .seconds(120))
        XCTAssertEqual(c.tunnel.inactivityTimeout, .zero)
    }
}
