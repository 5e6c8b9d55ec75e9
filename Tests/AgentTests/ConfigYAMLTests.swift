import XCTest
@testable import Agent

final class ConfigYAMLTests: XCTestCase {
    func testParsesTheArchitectureExampleIntoATreeWithLines() throws {
        let root = try XCTUnwrap(YAMLReader.parse(configArchitectureExampleYAML, file: "config.yaml"))
        guard case .mapping(let sections) = root.value else { return XCTFail("root is not a mapping") }
        XCTAssertEqual(sections.map(\.key),
                       ["agent", "pipeops", "server", "realtime", "kubernetes", "logging", "features"])
        let agent = try XCTUnwrap(root["agent"])
        XCTAssertEqual(agent["id"]?.scalarText, "agent-prod-east-001")
        XCTAssertEqual(agent["id"]?.line, 3)
        XCTAssertEqual(agent["id"]?.column, 7)
        XCTAssertEqual(agent["port"]?.value, .scalar("8080", plain: true))
        XCTAssertEqual(agent["labels"]?["region"]?.scalarText, "us-east-1")
        XCTAssertEqual(agent["labels"]?["region"]?.line, 10)
        XCTAssertEqual(root["kubernetes"]?["kubeconfig"]?.value, .scalar("", plain: false))
        XCTAssertEqual(root["kubernetes"]?["kubeconfig"]?.isNull, false, "a quoted empty string is not null")
        XCTAssertEqual(root["features"]?["connectivity_testing"]?.line, 41)
    }

    func testSequencesKeepTheirItemsAndLines() throws {
        let root = try XCTUnwrap(YAMLReader.parse(configArchitectureTunnelYAML, file: "t.yaml"))
        guard case .sequence(let items)? = root["tunnel"]?["forwards"]?.value else { return XCTFail("no list") }
        XCTAssertEqual(items.count, 3)
        XCTAssertEqual(items.map(\.line), [4, 7, 10])
        XCTAssertEqual(items[1]["local_addr"]?.scalarText, "localhost:10250")
    }

    func testEmptyAndCommentOnlyDocumentsGiveNil() throws {
        XCTAssertNil(try YAMLReader.parse("", file: "c.yaml"))
        XCTAssertNil(try YAMLReader.parse("# nothing here\n\n", file: "c.yaml"))
    }

    func testNullSpellings() throws {
        let root = try XCTUnwrap(YAMLReader.parse("a:\nb: ~\nc: null\nd: 'null'\n", file: "c.yaml"))
        XCTAssertEqual(root["a"]?.isNull, true)
        XCTAssertEqual(root["b"]?.isNull, true)
        XCTAssertEqual(root["c"]?.isNull, true)
        XCTAssertEqual(root["d"]?.isNull, false)
    }

    func testMalformedYAMLNamesFileAndLine() {
        let text = "agent:\n  id: x\n  port: [8080\nlogging:\n  level: info\n"
        XCTAssertThrowsError(try YAMLReader.parse(text, file: "config.yaml")) { error in
            let message = "\(error)"
            XCTAssertTrue(message.hasPrefix("config.yaml:4: "), message)
        }
        XCTAssertThrowsError(try YAMLReader.parse("a: b: c\n", file: "config.yaml")) { error in
            XCTAssertEqual((error as? YAMLError)?.line, 1)
            XCTAssertTrue("\(error)".contains("mapping values are not allowed"), "\(error)")
        }
    }

    func testTabIndentationIsAnError() {
        XCTAssertThrowsError(try YAMLReader.parse("agent:\n\tport: 1\n", file: "config.yaml")) { error in
            XCTAssertEqual((error as? YAMLError)?.line, 2, "\(error)")
        }
    }

    func testAnchorsAndAliasesAreRejected() {
        XCTAssertThrowsError(try YAMLReader.parse("a: &x 1\nb: *x\n", file: "config.yaml")) { error in
            XCTAssertEqual("\(error)", "config.yaml:1: anchors (&x) are not supported in the config file")
        }
        XCTAssertThrowsError(try YAMLReader.parse("a: 1\nb: *x\n", file: "config.yaml")) { error in
            XCTAssertTrue("\(error)".hasPrefix("config.yaml:2: "), "\(error)")
        }
    }

    func testDuplicateKeysAreRejected() {
        XCTAssertThrowsError(try YAMLReader.parse("agent:\n  port: 1\n  port: 2\n", file: "config.yaml")) { error in
            XCTAssertEqual("\(error)", "config.yaml:3: duplicate key \"port\" (first at line 2)")
        }
    }

    func testComplexKeysCustomTagsAndSecondDocumentsAreRejected() {
        XCTAssertThrowsError(try YAMLReader.parse("? [a, b]\n: c\n", file: "c.yaml")) { error in
            XCTAssertTrue("\(error)".contains("mapping keys must be plain text"), "\(error)")
        }
        XCTAssertThrowsError(try YAMLReader.parse("a: !custom 1\n", file: "c.yaml")) { error in
            XCTAssertEqual("\(error)", "c.yaml:1: tag !custom is not supported in the config file")
        }
        XCTAssertNoThrow(try YAMLReader.parse("a: !!str 1\n", file: "c.yaml"))
        XCTAssertThrowsError(try YAMLReader.parse("a: 1\n---\nb: 2\n", file: "c.yaml")) { error in
            XCTAssertEqual((error as? YAMLError)?.line, 2, "\(error)")
        }
    }

    func testInputOverOneMiBIsRejectedWithTheLimit() {
        let big = [UInt8](repeating: UInt8(ascii: "#"), count: YAMLReader.maxBytes + 1)
        XCTAssertThrowsError(try YAMLReader.parse(big, file: "config.yaml")) { error in
            XCTAssertEqual("\(error)", "config.yaml: file is 1048577 bytes, over the 1 MiB limit")
        }
    }

    func testNestingIsBounded() {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        XCTAssertThrowsError(try YAMLReader.parse(deep, file: "c.yaml")) { error in
            XCTAssertTrue("\(error)".contains("nesting deeper than 64"), "\(error)")
        }
    }

    func testInvalidUTF8IsAClearError() {
        XCTAssertThrowsError(try YAMLReader.parse([0x61, 0x3A, 0x20, 0xFF, 0xFE, 0x0A], file: "c.yaml")) { error in
            XCTAssertTrue("\(error)".hasPrefix("c.yaml: "), "\(error)")
        }
    }

    /// Mutated inputs either parse or fail with a positioned error; none crash or hang.
    func testMutatedInputsNeverCrashTheReader() {
        var rng = ConfigTestRandom(seed: 42)
        let base = Array((configArchitectureExampleYAML + configArchitectureTunnelYAML).utf8)
        let alphabet = Array(":-[]{}&*!|>'\"#\t\n ,?%@`".utf8) + [0x00, 0xC3, 0xFF]
        var failures = 0
        for _ in 0..<3000 {
            var bytes = base
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let at = Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 3 {
                case 0: bytes[at] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                case 1: bytes.remove(at: at)
                default: bytes.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: at)
                }
            }
            do {
                _ = try YAMLReader.parse(bytes, file: "f.yaml")
            } catch {
                failures += 1
                XCTAssertTrue("\(error)".hasPrefix("f.yaml"), "\(error)")
            }
        }
        XCTAssertGreaterThan(failures, 0, "some mutations must be rejected")
    }
}

/// A small deterministic generator so failures reproduce.
struct ConfigTestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
