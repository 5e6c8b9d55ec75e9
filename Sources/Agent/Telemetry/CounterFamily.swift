/// A counter with labels whose children are created on first increment: a typed key (no
/// array built per increment), its label text rendered once when the child is created, and
/// children kept in creation order. No samples until something is counted.
/// Keys must come from a bounded set (routes, status codes, verbs): a child is never removed.
final class CounterFamily<Key: Hashable>: MetricCollector {
    let family: MetricDescriptor
    let labelNames: [String]
    private let labelValues: (Key) -> [String]
    private var index: [Key: Int] = [:]
    private var children: [(labels: [UInt8], value: UInt64)] = []

    init(name: String, help: String, labelNames: [String], labelValues: @escaping (Key) -> [String]) {
        family = MetricDescriptor(name, help: help, type: .counter)
        self.labelNames = labelNames
        self.labelValues = labelValues
    }

    func increment(_ key: Key, by n: UInt64 = 1) {
        if let i = index[key] {
            children[i].value &+= n
            return
        }
        index[key] = children.count
        children.append((PrometheusText.labels(names: labelNames, values: labelValues(key)), n))
    }

    func value(_ key: Key) -> UInt64 {
        index[key].map { children[$0].value } ?? 0
    }

    var childCount: Int { children.count }

    func collect(into text: inout PrometheusText) {
        text.appendHeader(family)
        for c in children { text.appendSample(family, labels: c.labels, value: .count(c.value)) }
    }
}
