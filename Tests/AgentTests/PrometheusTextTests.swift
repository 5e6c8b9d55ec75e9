import Foundation
import XCTest
@testable import Agent

/// The exposition text itself: escaping, headers, families, numbers; and promtool (Debian's
/// `prometheus` package) as the reader that decides whether it is valid.
final class PrometheusTextTests: XCTestCase {
    func testLabelValuesEscapeBackslashQuoteAndNewlineAndNothingElse() {
        let labels = PrometheusText.labels(names: ["path", "name"], values: [#"C:\dir"#, "say \"hi\"\nthen <b>ü</b>"])
        XCTAssertEqual(String(decoding: labels, as: UTF8.self), #"{path="C:\\dir",name="say \"hi\"\nthen <b>ü</b>"}"#)
        XCTAssertEqual(PrometheusText.labels(names: [], values: []), [])
    }

    func testHelpEscapesBackslashAndNewlineButNotQuotes() {
        let m = MetricDescriptor("m", help: "a \\ b\nc \"d\"", type: .gauge)
        XCTAssertEqual(String(decoding: m.header, as: UTF8.self), "# HELP m a \\\\ b\\nc \"d\"\n# TYPE m gauge\n")
    }

    func testValuesAreWrittenAsPrometheusReadsThem() {
        func text(_ v: MetricValue) -> String {
            var t = PrometheusText()
            t.appendValue(v)
            return String(decoding: t.bytes, as: UTF8.self)
        }
        XCTAssertEqual(text(.count(0)), "0")
        XCTAssertEqual(text(.count(9)), "9")
        XCTAssertEqual(text(.count(10)), "10")
        XCTAssertEqual(text(.count(1_000_000)), "1000000")
        XCTAssertEqual(text(.count(UInt64.max)), "18446744073709551615")
        XCTAssertEqual(text(.number(42)), "42")
        XCTAssertEqual(text(.number(-3)), "-3")
        XCTAssertEqual(text(.number(0.25)), "0.25")
        XCTAssertEqual(text(.number(1.5e300)), "1.5e+300")
        XCTAssertEqual(text(.number(.nan)), "NaN")
        XCTAssertEqual(text(.number(.infinity)), "+Inf")
        XCTAssertEqual(text(.number(-.infinity)), "-Inf")
        XCTAssertEqual(text(.bool(true)), "1")
    }

    func testCounterFamilyKeepsCreationOrderAndCountsPerKey() {
        let family = CounterFamily<Int>(name: "x_total", help: "h", labelNames: ["code"]) { [String($0)] }
        let registry = MetricsRegistry()
        registry.register(family)
        XCTAssertEqual(registry.renderedText(), "# HELP x_total h\n# TYPE x_total counter\n")
        family.increment(500)
        family.increment(200)
        family.increment(500, by: 2)
        XCTAssertEqual(family.value(500), 3)
        XCTAssertEqual(family.value(404), 0)
        XCTAssertEqual(registry.renderedText(), """
            # HELP x_total h
            # TYPE x_total counter
            x_total{code="500"} 3
            x_total{code="200"} 1

            """)
    }

    /// The registry reuses its buffer: a second render is the same text, not the first one twice.
    func testRenderingTwiceGivesTheSameText() {
        var n = 0
        let registry = MetricsRegistry()
        registry.register("a", help: "h", type: .gauge) { n += 1; return .int(7) }
        let first = registry.renderedText()
        XCTAssertEqual(registry.renderedText(), first)
        XCTAssertEqual(first, "# HELP a h\n# TYPE a gauge\na 7\n")
        XCTAssertEqual(n, 2)
    }

    /// Hostile label values (quotes, backslashes, newlines, markup) come out as promtool reads
    /// them: a family it accepts, with the values it parses back being the ones we meant.
    func testPromtoolAcceptsEscapedLabelsAndReadsTheValuesBack() throws {
        struct Key: Hashable { var name: String }
        let evil = ["quote\"d", #"back\slash"#, "new\nline", "<img src=x onerror=alert(1)>", "trailing\\"]
        let family = CounterFamily<Key>(name: "t_things_total", help: "Things \\ with\nnewlines.", labelNames: ["name"]) { [$0.name] }
        for (i, e) in evil.enumerated() { family.increment(Key(name: e), by: UInt64(i + 1)) }
        let registry = MetricsRegistry()
        registry.register(family)
        registry.register("t_ratio", help: "A fraction.", type: .gauge) { .number(0.125) }
        let text = registry.renderedText()
        let promtool = try run("promtool", ["check", "metrics"], input: text)
        XCTAssertEqual(promtool.status, 0, "promtool: \(promtool.output)\n\(text)")
        // promtool only says "valid"; Prometheus's own text parser (prometheus_client in Python,
        // which follows the same grammar) reads the values back.
        let parse = """
            import sys, json
            from prometheus_client.parser import text_string_to_metric_families
            out = {}
            for f in text_string_to_metric_families(sys.stdin.read()):
                for s in f.samples:
                    out[s.labels.get("name", s.name)] = s.value
            print(json.dumps(out))
            """
        let parsed = try run("python3", ["-c", parse], input: text)
        XCTAssertEqual(parsed.status, 0, parsed.output)
        let values = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(parsed.output.utf8)) as? [String: Double])
        for (i, e) in evil.enumerated() { XCTAssertEqual(values[e], Double(i + 1), "label \(e.debugDescription)") }
        XCTAssertEqual(values["t_ratio"], 0.125)
    }

    /// Runs `tool` (found on PATH, as a shell would) with `input` on stdin.
    private func run(_ tool: String, _ args: [String], input: String) throws -> (status: Int32, output: String) {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
            .map { "\($0)/\(tool)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
        let executable = try XCTUnwrap(path, "\(tool) is not installed: run `make deps`")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        let stdin = Pipe(), out = Pipe()
        p.standardInput = stdin
        p.standardOutput = out
        p.standardError = out
        try p.run()
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try stdin.fileHandleForWriting.close()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, output)
    }
}
