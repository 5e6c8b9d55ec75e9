import Reactor

/// One line of a watch stream, `{"type": "ADDED", "object": {...}}`, decoded without the
/// watcher around it (so the decoding can be tested and fuzzed on its own).
struct WatchEvent {
    /// ADDED, MODIFIED, DELETED, BOOKMARK or ERROR (others are passed on and ignored).
    let type: String
    let object: JSONValue

    /// Nil for a blank line; a line that is not an event throws.
    static func parse(_ line: ArraySlice<UInt8>) throws -> WatchEvent? {
        guard line.contains(where: { $0 != 0x20 && $0 != 0x09 }) else { return nil }
        let fields = try JSONFields(try JSONParser.parse(Array(line)))
        let type = try fields.string("type")
        guard let object = fields["object"] else { throw JSONShapeError(path: "", reason: "missing \"object\"") }
        return WatchEvent(type: type, object: object)
    }

    /// The object's `metadata.resourceVersion`, when it has a non-empty one.
    var resourceVersion: String? {
        let rv = (try? JSONFields(object).optionalObject("metadata")?.optionalString("resourceVersion")) ?? nil
        return rv?.isEmpty == false ? rv : nil
    }
}
