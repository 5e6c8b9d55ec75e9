// libFuzzer target for the sans-I/O splitters of Kubernetes bodies: LineSplitter (watch events
// and pod logs) and ListBodySplitter (list bodies). The first byte picks where the input is cut;
// whatever the cut, the lines and items that come out are the same, no line is longer than its
// limit, and bad input is an error, never a crash. Built by scripts/fuzz.sh with the splitters.

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
    return 0
}
