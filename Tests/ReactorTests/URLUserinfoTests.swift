import XCTest
@testable import Reactor

final class URLUserinfoTests: XCTestCase {
    func testUserinfoIsMaskedWhereverAURLStands() {
        let cases: [(String, String)] = [
            ("http://user:pw@host", "http://***@host"),
            ("https://user:pw@api.example.com:8443/base?x=1", "https://***@api.example.com:8443/base?x=1"),
            ("wss://token@tunnel.example.com/ws", "wss://***@tunnel.example.com/ws"),
            // The last `@` of the authority ends the userinfo (an unescaped `@` in a password).
            ("http://u:p@ss@host/x", "http://***@host/x"),
            ("GET http://a:b@h/x failed; retry http://c:d@h2", "GET http://***@h/x failed; retry http://***@h2"),
            ("URL 'http://u:p@h:notaport' has no port", "URL 'http://***@h:notaport' has no port"),
            ("http://[::1]:8080/path@notuserinfo", "http://[::1]:8080/path@notuserinfo"),
        ]
        for (text, expected) in cases { XCTAssertEqual(URLUserinfo.redacted(text), expected, text) }
    }

    func testTextWithoutUserinfoIsUnchanged() {
        for text in ["", "plain text", "mail me at a@b.c", "https://api.pipeops.io/path", "http://host/a@b"] {
            XCTAssertEqual(URLUserinfo.redacted(text), text)
        }
    }

    /// Every log line, whatever logs it: the message and each metadata value.
    func testLogLinesMaskUserinfoInMessageAndMetadata() {
        let json = LineLogHandler.jsonLine(level: .info, message: "calling http://u:secret1@h/x", component: "t",
                                           metadata: ["api_url": "https://u:secret2@api.example.com"])
        let console = LineLogHandler.consoleLine(level: .info, message: "calling http://u:secret1@h/x", component: "t",
                                                 metadata: ["api_url": "https://u:secret2@api.example.com"])
        for line in [json, console] {
            XCTAssertFalse(line.contains("secret"), line)
            XCTAssertTrue(line.contains("http://***@h/x"), line)
            XCTAssertTrue(line.contains("https://***@api.example.com"), line)
        }
    }

    func testParseErrorsDoNotEchoTheUserinfo() {
        XCTAssertThrowsError(try HTTPClientRequest.parseURL("ftp://u:secret@h")) { XCTAssertFalse("\($0)".contains("secret"), "\($0)") }
        XCTAssertThrowsError(try HTTPClientRequest.parseURL("http://u:secret@h:badport")) { XCTAssertFalse("\($0)".contains("secret"), "\($0)") }
        XCTAssertThrowsError(try HTTPProxySettings.parseProxy("socks5://u:secret@proxy:1080")) { XCTAssertFalse("\($0)".contains("secret"), "\($0)") }
        XCTAssertThrowsError(try HTTPProxySettings.parseProxy("u:secret@:3128")) { XCTAssertFalse("\($0)".contains("secret"), "\($0)") }
    }
}
