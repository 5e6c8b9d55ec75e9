/// Something that writes one or more metric families, header and samples, at scrape time
/// (as a client_golang Collector): values read from the agent's state when asked, so nothing
/// has to be kept in step as it changes.
protocol MetricCollector: AnyObject {
    func collect(into text: inout PrometheusText)
}

/// The agent's metrics, rendered in registration order into one buffer that is kept between
/// scrapes (a scrape allocates only what its collectors do).
final class MetricsRegistry {
    private var collectors: [MetricCollector] = []
    private var text = PrometheusText()

    func register(_ collector: MetricCollector) {
        collectors.append(collector)
    }

    /// One unlabelled metric whose value is read at scrape time (nil: no sample, only the header).
    func register(_ name: String, help: String, type: PrometheusText.MetricType, value: @escaping () -> MetricValue?) {
        register(ComputedMetric(name: name, help: help, type: type, value: value))
    }

    /// Renders every family and hands the bytes to `body` (valid during the call only).
    func withRendered<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        text.removeAll()
        for c in collectors { c.collect(into: &text) }
        return text.bytes.withUnsafeBytes(body)
    }

    /// The whole exposition as text (tests, tools).
    func renderedText() -> String {
        withRendered { String(decoding: $0, as: UTF8.self) }
    }
}

/// An unlabelled metric whose value is read when scraped; a nil value (not known yet) leaves
/// the sample out rather than report a made-up 0.
final class ComputedMetric: MetricCollector {
    let family: MetricDescriptor
    let value: () -> MetricValue?

    init(name: String, help: String, type: PrometheusText.MetricType, value: @escaping () -> MetricValue?) {
        family = MetricDescriptor(name, help: help, type: type)
        self.value = value
    }

    func collect(into text: inout PrometheusText) {
        text.appendHeader(family)
        if let v = value() { text.appendSample(family, value: v) }
    }
}
