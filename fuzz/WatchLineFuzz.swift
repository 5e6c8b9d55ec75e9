// libFuzzer target for the watch stream as ResourceWatcher reads it: LineSplitter (watch events
// and pod logs) and ListBodySplitter (list bodies), then each line decoded as a watch event
// (WatchEvent) and applied to the stores and the event feed the watchers fill. The first byte
// picks where the input is cut; whatever the cut, the lines and items that come out are the
// same, no line is longer than its limit, bad input is an error, never a crash; a store never
// holds more objects than events added them, and every cluster event delivered survives a
// JSON write/parse round trip. Built by scripts/fuzz.sh with the splitters, the JSON core and
// the Kubernetes summaries.

/// Every line as a watch event, into the sinks of the four watchers.
func applyEvents(_ bytes: [UInt8]) {
    let pods = ObjectStore<PodSummary>(), nodes = ObjectStore<NodeSummary>(), services = ObjectStore<ServiceSummary>()
    let feed = EventFeed()
    var delivered: [KubernetesEvent] = []
    feed.onEvent = { delivered.append($0) }
    let sinks: [WatchSink] = [pods, nodes, services, feed]
    // The watch follows a list: an empty one here.
    for sink in sinks { sink.beginList(); sink.endList() }
    var added = 0
    func apply(_ line: ArraySlice<UInt8>) {
        guard let event = try? WatchEvent.parse(line), let type = WatchEventType(rawValue: event.type), type != .listed else { return }
        if type != .deleted { added += 1 }
        for sink in sinks { try? sink.apply(type, event.object) }
        _ = event.resourceVersion
    }
    var splitter = LineSplitter(maxLineBytes: 8192, overlong: .fail)
    do { try splitter.feed(bytes, apply) } catch { return }
    if let last = splitter.finish() { apply(last[...]) }
    precondition(max(pods.count, nodes.count, services.count) <= added, "a store holds more objects than were added")
    for e in delivered {
        let again: JSONValue
        do { again = try JSONParser.parse(e.json.text()) } catch { preconditionFailure("an event's JSON does not parse: \(error)") }
        precondition(again == e.json, "an event's JSON changed in a round trip")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWatchLines(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let cut = Int(data[0]) % size
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let cutAt = min(cut, bytes.count)
    for overlong in [LineSplitter.Overlong.fail, .split] {
        func run(_ pieces: [ArraySlice<UInt8>]) -> ([[UInt8]], Bool) {
            var s = LineSplitter(maxLineBytes: 64, overlong: overlong)
            var out: [[UInt8]] = []
            for p in pieces {
                do { try s.feed(Array(p)) { line in
                    precondition(line.count <= 64, "a line over the limit came out")
                    out.append(Array(line))
                } } catch { return (out, true) }
            }
            if let last = s.finish() { out.append(last) }
            return (out, false)
        }
        let whole = run([bytes[...]])
        let split = run([bytes[..<cutAt], bytes[cutAt...]])
        precondition(whole.1 == split.1, "an error depends on where the input was cut")
        if !whole.1 { precondition(whole.0 == split.0, "lines depend on where the input was cut") }
    }
    func items(_ pieces: [ArraySlice<UInt8>]) -> [[UInt8]]? {
        var s = ListBodySplitter(maxItemBytes: 256, maxEnvelopeBytes: 256)
        var out: [[UInt8]] = []
        for p in pieces {
            do { try s.feed(Array(p)) { out.append($0) } } catch { return nil }
        }
        guard (try? s.finish()) != nil else { return nil }
        return out
    }
    let a = items([bytes[...]])
    let b = items([bytes[..<cutAt], bytes[cutAt...]])
    precondition(a == b, "list items depend on where the input was cut")
    applyEvents(bytes)
    return 0
}
