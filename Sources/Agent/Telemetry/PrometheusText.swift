import Reactor

/// The Prometheus text exposition format 0.0.4, appended to a byte buffer that the registry
/// reuses from one scrape to the next. What never changes (HELP and TYPE lines, names, the
/// label sets of known children) is rendered once, in `MetricDescriptor`s and by the families,
/// so a scrape mostly copies bytes and writes numbers.
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

    /// The family's `# HELP` and `# TYPE` lines; every family starts with them.
    mutating func appendHeader(_ family: MetricDescriptor) {
        bytes.append(contentsOf: family.header)
    }

    /// `name{labels} value`; `labels` as `labels(names:values:)` renders them.
    mutating func appendSample(_ family: MetricDescriptor, labels: [UInt8] = [], value: MetricValue) {
        bytes.append(contentsOf: family.nameBytes)
        bytes.append(contentsOf: labels)
        bytes.append(0x20)
        appendValue(value)
        bytes.append(0x0A)
    }

    /// `{a="x",b="y"}` with the values escaped (backslash, double quote, line feed); nothing
    /// for no labels.
    static func labels(names: [String], values: [String]) -> [UInt8] {
        guard !names.isEmpty else { return [] }
        var out: [UInt8] = [0x7B]
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
        return out
    }

    mutating func appendValue(_ value: MetricValue) {
        switch value {
        case .count(let n):
            appendDecimal(n)
        case .number(let d):
            if d.isNaN { bytes.append(contentsOf: "NaN".utf8) }
            else if d.isInfinite { bytes.append(contentsOf: (d < 0 ? "-Inf" : "+Inf").utf8) }
            // Whole numbers as integers: no "1.0", and no String made for the common case.
            else if d == d.rounded(), abs(d) < 9.0e15 {
                if d < 0 { bytes.append(0x2D) }
                appendDecimal(UInt64(abs(d)))
            } else {
                bytes.append(contentsOf: d.description.utf8)   // shortest round-trip form; Go's ParseFloat reads it
            }
        }
    }

    private mutating func appendDecimal(_ n: UInt64) {
        var digits = 1
        var rest = n / 10
        while rest > 0 { digits += 1; rest /= 10 }
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0x30, count: digits))
        var value = n
        for i in stride(from: start + digits - 1, through: start, by: -1) {
            bytes[i] = UInt8(truncatingIfNeeded: 48 + value % 10)
            value /= 10
        }
    }
}

/// A family's fixed text, rendered once when the family is made: its name and its HELP
/// (backslash and line feed escaped) and TYPE lines.
struct MetricDescriptor {
    let name: String
    let type: PrometheusText.MetricType
    let header: [UInt8]
    let nameBytes: [UInt8]

    init(_ name: String, help: String, type: PrometheusText.MetricType) {
        self.name = name
        self.type = type
        nameBytes = Array(name.utf8)
        var h = Array("# HELP \(name) ".utf8)
        for b in help.utf8 {
            switch b {
            case 0x5C: h.append(0x5C); h.append(0x5C)
            case 0x0A: h.append(0x5C); h.append(0x6E)
            default: h.append(b)
            }
        }
        h.append(contentsOf: "\n# TYPE \(name) \(type.rawValue)\n".utf8)
        header = h
    }
}

/// A sample's value: counters are whole numbers (exact up to 2^64), the rest doubles.
enum MetricValue: Equatable {
    case count(UInt64)
    case number(Double)

    static func int(_ n: Int) -> MetricValue { .number(Double(n)) }
    static func bool(_ b: Bool) -> MetricValue { .number(b ? 1 : 0) }
}
