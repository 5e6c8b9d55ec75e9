/// Typed reading of one JSON object's members, with errors that name the member's path
/// (`forwards[1].remote_port: expected an integer, found a string`). Unknown members are
/// ignored and null counts as absent, as the control-plane contract expects of clients.
public struct JSONFields {
    public let members: [JSONMember]
    public let path: String

    public init(_ value: JSONValue, path: String = "") throws(JSONShapeError) {
        guard case .object(let members) = value else {
            throw JSONShapeError(path: path, reason: "expected an object, found \(value.kindName)")
        }
        self.members = members
        self.path = path
    }

    /// The member's value; the last one wins when a name repeats. Null reads as absent.
    public subscript(key: String) -> JSONValue? {
        guard let v = members.last(where: { $0.key == key })?.value, v != .null else { return nil }
        return v
    }

    private func childPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    private func mismatch(_ key: String, _ expected: String, _ found: JSONValue) -> JSONShapeError {
        JSONShapeError(path: childPath(key), reason: "expected \(expected), found \(found.kindName)")
    }

    private func required<T>(_ key: String, _ read: (String) throws(JSONShapeError) -> T?) throws(JSONShapeError) -> T {
        guard let v = try read(key) else { throw JSONShapeError(path: path, reason: "missing \"\(key)\"") }
        return v
    }

    public func optionalString(_ key: String) throws(JSONShapeError) -> String? {
        guard let v = self[key] else { return nil }
        guard case .string(let s) = v else { throw mismatch(key, "a string", v) }
        return s
    }

    public func string(_ key: String) throws(JSONShapeError) -> String { try required(key, optionalString) }

    public func optionalDouble(_ key: String) throws(JSONShapeError) -> Double? {
        guard let v = self[key] else { return nil }
        guard case .number(let text) = v, let d = Double(text) else { throw mismatch(key, "a number", v) }
        return d
    }

    /// Integers only: `8000` and `8000.0` are accepted, `8000.5` and `"8000"` are not.
    public func optionalInt(_ key: String) throws(JSONShapeError) -> Int? {
        guard let v = self[key] else { return nil }
        guard case .number(let text) = v else { throw mismatch(key, "an integer", v) }
        if let i = Int(text) { return i }
        guard let d = Double(text), d.rounded() == d, let i = Int(exactly: d) else {
            throw JSONShapeError(path: childPath(key), reason: "expected an integer, found \(text)")
        }
        return i
    }

    public func int(_ key: String) throws(JSONShapeError) -> Int { try required(key, optionalInt) }

    public func optionalObject(_ key: String) throws(JSONShapeError) -> JSONFields? {
        guard let v = self[key] else { return nil }
        return try JSONFields(v, path: childPath(key))
    }

    /// Each element of an array of objects, with its index in the path.
    public func optionalObjects(_ key: String) throws(JSONShapeError) -> [JSONFields]? {
        guard let v = self[key] else { return nil }
        guard case .array(let elements) = v else { throw mismatch(key, "an array", v) }
        var out: [JSONFields] = []
        for (i, e) in elements.enumerated() { out.append(try JSONFields(e, path: "\(childPath(key))[\(i)]")) }
        return out
    }
}

/// The JSON parses but is not the shape we need.
public struct JSONShapeError: Error, Sendable, Equatable, CustomStringConvertible {
    public let path: String
    public let reason: String
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
    public var description: String { path.isEmpty ? reason : "\(path): \(reason)" }
}
