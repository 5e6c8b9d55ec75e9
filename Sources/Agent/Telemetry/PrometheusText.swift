import Reactor

/// The Prometheus text exposition format 0.0.4, appended to a byte buffer that the registry
/// reuses from one scrape to the next.
/// https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
struct PrometheusText {
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    enum MetricType: String {
        case counter, gauge
        /// For the architecture document's `pipeops_cluster_*_total` counts: Prometheus keeps
        /// `_total` for counters (promtool rejects a gauge named so), and they are not counters.
        case untyped
    }

    var bytes: [UInt8] = []

    mutating func removeAll() { bytes.removeAll(keepingCapacity: true) }

    /// `# HELP` and `# TYPE` lines; every family starts with them.
    mutating func appendHeader(name: String, help: String, type: MetricType) {
        append("# HELP ")
        append(name)
        bytes.append(0x20)
        for b in help.utf8 {
            switch b {
            case 0x5C: append("\\\\")
            case 0x0A: append("\\n")
            default: bytes.append(b)
            }
        }
        append("\n# TYPE ")
        append(name)
        bytes.append(0x20)
        append(type.rawValue)
        bytes.append(0x0A)
    }

    mutating func appendSample(name: String, labels: [UInt8] = [], value: MetricValue) {
        append(name)
        bytes.append(contentsOf: labels)
        bytes.append(0x20)
        appendValue(value)
        bytes.append(0x0A)
    }

    mutating func appendSample(name: String, labelNames: [String], labelValues: [String], value: MetricValue) {
        append(name)
        Self.appendLabels(names: labelNames, values: labelValues, into: &bytes)
        bytes.append(0x20)
        appendValue(value)
        bytes.append(0x0A)
    }

    /// `{a="x",b="y"}` with the values escaped (backslash, double quote, line feed); nothing
    /// for no labels.
    static func appendLabels(names: [String], values: [String], into out: inout [UInt8]) {
        guard !names.isEmpty else { return }
        out.append(0x7B)
        for (i, name) in names.enumerated() {
            if i > 0 { out.append(0x2C) }
            out.append(contentsOf: name.utf8)
            out.append(0x3D); out.append(0x22)
            for b in (i < values.count ? values[i] : "").utf8 {
                switch b {
                case 0x5C: out.append(0x5C); out.append(0x5C)
                case 0x22: out.append(0x5C); out.append(0x22)
                case 0x0A: out.append(0x5C); out.append(0x6E)
                default: out.append(b)
                }
            }
            out.append(0x22)
        }
        out.append(0x7D)
    }

    static func labels(names: [String], values: [String]) -> [UInt8] {
        var out: [UInt8] = []
        appendLabels(names: names, values: values, into: &out)
        return out
    }

    mutating func appendValue(_ value: MetricValue) {
        switch value {
        case .count(let n):
            appendUnsigned(n)
        case .number(let d):
            if d.isNaN { append("NaN") }
            else if d.isInfinite { append(d < 0 ? "-Inf" : "+Inf") }
            // Whole numbers as integers: no "1.0", and no String made for the common case.
            else if d == d.rounded(), abs(d) < 9.0e15 {
                if d < 0 { bytes.append(0x2D) }
                appendUnsigned(UInt64(abs(d)))
            } else {
                append(d.description)   // shortest round-trip form; Go's ParseFloat reads it
            }
        }
    }

    private mutating func appendUnsigned(_ n: UInt64) {
        if n >= 10 { appendUnsigned(n / 10) }
        bytes.append(UInt8(48 + n % 10))
    }

    private mutating func append(_ s: String) { bytes.append(contentsOf: s.utf8) }
}

/// A sample's value: counters are whole numbers (exact up to 2^64), the rest doubles.
enum MetricValue: Equatable {
    case count(UInt64)
    case number(Double)

    static func int(_ n: Int) -> MetricValue { .number(Double(n)) }
    static func bool(_ b: Bool) -> MetricValue { .number(b ? 1 : 0) }
}
