/// Splits a Kubernetes list body (`{"kind":"PodList","metadata":{…},"items":[{…},{…}]}`) as it
/// streams in, sans I/O: each element of the top-level `items` array comes out as soon as its
/// last byte arrives, and everything else (kind, metadata with `resourceVersion` and
/// `continue`) is kept as an "envelope" whose `items` is left empty. So a list of 10,000 pods
/// never sits in memory whole: at most one item (`maxItemBytes`) and the envelope
/// (`maxEnvelopeBytes`) do.
///
/// It only tracks JSON structure (strings, escapes, nesting); the items and the envelope are
/// parsed by the JSON parser afterwards. No dependency on the rest of the agent, so the fuzz
/// target builds it alone.
struct ListBodySplitter {
    struct Failure: Error, Equatable, CustomStringConvertible {
        let offset: Int
        let reason: String
        var description: String { "list body at byte \(offset): \(reason)" }
    }

    enum Mode: Equatable {
        /// Before the top-level `{`.
        case start
        /// Inside the top-level object, outside `items`.
        case envelope
        /// Inside `items`, between elements.
        case betweenItems
        /// Inside one element of `items`.
        case item
        /// After the top-level `}`.
        case done
    }

    let maxItemBytes: Int
    let maxEnvelopeBytes: Int
    private(set) var mode: Mode = .start
    private(set) var envelope: [UInt8] = []
    private var item: [UInt8] = []
    /// Open containers, counted from the top-level object (1) down.
    private var depth = 0
    private var inString = false
    private var escaped = false
    /// The last string closed at depth 1 and whether a `:` followed it (then it is a key).
    private var lastString: [UInt8] = []
    private var collectingString = false
    private var currentKey: [UInt8] = []
    private var offset = 0
    private(set) var itemCount = 0

    init(maxItemBytes: Int, maxEnvelopeBytes: Int = 64 * 1024) {
        self.maxItemBytes = maxItemBytes
        self.maxEnvelopeBytes = maxEnvelopeBytes
    }

    private static let itemsKey = Array("items".utf8)

    /// Feeds bytes; `onItem` gets each complete element of `items`, in order.
    mutating func feed(_ bytes: UnsafeRawBufferPointer, _ onItem: ([UInt8]) -> Void) throws(Failure) {
        for b in bytes {
            try step(b, onItem)
            offset += 1
        }
    }

    mutating func feed(_ bytes: [UInt8], _ onItem: ([UInt8]) -> Void) throws(Failure) {
        var failure: Failure?
        bytes.withUnsafeBytes { raw in
            do throws(Failure) { try feed(raw, onItem) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// The end of the body: the envelope's bytes (with `"items":[]`), or an error when the
    /// top-level object never closed.
    func finish() throws(Failure) -> [UInt8] {
        guard mode == .done else { throw fail("the body ended inside the list") }
        return envelope
    }

    private func fail(_ reason: String) -> Failure { Failure(offset: offset, reason: reason) }

    private static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 }

    private mutating func step(_ b: UInt8, _ onItem: ([UInt8]) -> Void) throws(Failure) {
        switch mode {
        case .start:
            if Self.isSpace(b) { return }
            guard b == UInt8(ascii: "{") else { throw fail("a list body is a JSON object") }
            depth = 1
            mode = .envelope
            try appendEnvelope(b)
        case .done:
            guard Self.isSpace(b) else { throw fail("bytes after the list object") }
        case .envelope:
            try appendEnvelope(b)
            try scanEnvelope(b)
        case .betweenItems:
            if Self.isSpace(b) || b == UInt8(ascii: ",") { return }
            if b == UInt8(ascii: "]") {
                depth = 1
                mode = .envelope
                currentKey = []
                try appendEnvelope(b)
                return
            }
            guard b == UInt8(ascii: "{") else { throw fail("an element of items is not an object") }
            item = [b]
            depth = 3
            mode = .item
        case .item:
            guard item.count < maxItemBytes else { throw fail("a list item is larger than \(maxItemBytes) bytes") }
            item.append(b)
            if scanStructure(b) && depth == 2 {
                itemCount += 1
                onItem(item)
                item = []
                mode = .betweenItems
            }
        }
    }

    private mutating func appendEnvelope(_ b: UInt8) throws(Failure) {
        guard envelope.count < maxEnvelopeBytes else {
            throw fail("the list's fields other than items are larger than \(maxEnvelopeBytes) bytes")
        }
        envelope.append(b)
    }

    /// Tracks strings and nesting; true when `b` closed a container.
    private mutating func scanStructure(_ b: UInt8) -> Bool {
        if inString {
            if escaped { escaped = false } else if b == UInt8(ascii: "\\") { escaped = true } else if b == UInt8(ascii: "\"") { inString = false }
            return false
        }
        switch b {
        case UInt8(ascii: "\""): inString = true
        case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
        case UInt8(ascii: "}"), UInt8(ascii: "]"):
            depth -= 1
            return true
        default: break
        }
        return false
    }

    private mutating func scanEnvelope(_ b: UInt8) throws(Failure) {
        let wasInString = inString
        let depthBefore = depth
        // Depth-1 strings are remembered so that a following `:` makes them the current key.
        if depthBefore == 1 && collectingString && wasInString {
            if !(b == UInt8(ascii: "\"") && !escaped) { lastString.append(b) }
        }
        let closed = scanStructure(b)
        if depthBefore == 1 && !wasInString {
            switch b {
            case UInt8(ascii: "\""):
                collectingString = true
                lastString = []
            case UInt8(ascii: ":"):
                currentKey = lastString
            case UInt8(ascii: ","):
                currentKey = []
            case UInt8(ascii: "["):
                if currentKey == Self.itemsKey {
                    // Entering items: the envelope keeps `[` and will get `]` at the end.
                    depth = 2
                    mode = .betweenItems
                }
            default: break
            }
        }
        if depthBefore == 1 && wasInString && !inString { collectingString = false }
        if closed && depth == 0 { mode = .done }
        if depth < 0 { throw fail("unbalanced brackets") }
    }
}
