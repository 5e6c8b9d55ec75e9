import Reactor

/// Where one object lives: namespace (empty for cluster-scoped objects) and name.
struct ObjectKey: Hashable, Comparable {
    let namespace: String
    let name: String
    static func < (a: ObjectKey, b: ObjectKey) -> Bool { (a.namespace, a.name) < (b.namespace, b.name) }
}

/// A compact summary of one object, made from its JSON: the few fields the agent reports,
/// so 10,000 pods cost a few MiB rather than their whole objects.
protocol ObjectSummary: Equatable {
    init(_ object: JSONFields, strings: inout StringInterner) throws(JSONShapeError)
}

/// Shares one copy of strings that repeat across objects (namespaces, node names, phases of
/// text), so each summary holds a reference instead of its own bytes. Bounded: past `limit`
/// distinct strings, new ones are kept as they are.
struct StringInterner {
    private var strings: Set<String> = []
    let limit: Int
    init(limit: Int = 4096) { self.limit = limit }

    mutating func intern(_ s: String) -> String {
        if let existing = strings.firstIndex(of: s) { return strings[existing] }
        if strings.count < limit { strings.insert(s) }
        return s
    }
}

/// How a list item or watch event reaches a store.
enum WatchEventType: String {
    case listed, added = "ADDED", modified = "MODIFIED", deleted = "DELETED"
}

/// What a `ResourceWatcher` feeds: a full list (begin, items, end) and then changes.
protocol WatchSink: AnyObject {
    /// False: the watcher lists one item only, to learn the resourceVersion (events).
    var wantsListItems: Bool { get }
    func beginList()
    func apply(_ type: WatchEventType, _ object: JSONValue) throws(JSONShapeError)
    func endList()
}

/// The summaries of one resource, kept current by a watcher. A relist marks every entry with
/// a new generation as it sees it and then drops the ones it did not see (deleted while the
/// watch was broken), so nothing is counted twice and nothing stale stays.
final class ObjectStore<Summary: ObjectSummary>: WatchSink {
    struct Entry {
        var summary: Summary
        var generation: UInt32
    }

    private(set) var entries: [ObjectKey: Entry] = [:]
    private var generation: UInt32 = 0
    var strings: StringInterner
    var wantsListItems: Bool { true }
    /// Hears every change after the first list: (key, before, after); nil is absent.
    var onChange: ((ObjectKey, Summary?, Summary?) -> Void)?
    private(set) var listed = false

    init(strings: StringInterner = StringInterner()) { self.strings = strings }

    var count: Int { entries.count }
    subscript(key: ObjectKey) -> Summary? { entries[key]?.summary }

    func beginList() { generation &+= 1 }

    func apply(_ type: WatchEventType, _ object: JSONValue) throws(JSONShapeError) {
        let fields = try JSONFields(object)
        guard let meta = try fields.optionalObject("metadata") else { throw JSONShapeError(path: "", reason: "missing \"metadata\"") }
        let name = try meta.string("name")
        let namespace = strings.intern(try meta.optionalString("namespace") ?? "")
        let key = ObjectKey(namespace: namespace, name: name)
        let before = entries[key]?.summary
        if type == .deleted {
            entries[key] = nil
            if before != nil, listed { onChange?(key, before, nil) }
            return
        }
        let summary = try Summary(fields, strings: &strings)
        entries[key] = Entry(summary: summary, generation: generation)
        if listed && before != summary { onChange?(key, before, summary) }
    }

    func endList() {
        let stale = entries.filter { $0.value.generation != generation }
        for (key, entry) in stale {
            entries[key] = nil
            if listed { onChange?(key, entry.summary, nil) }
        }
        listed = true
    }
}
