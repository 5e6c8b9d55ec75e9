/// A parsed YAML node: a scalar, a sequence or a mapping, with the 1-based line and column
/// where it starts, so config errors can point at the file line.
public struct YAMLNode: Sendable, Equatable {
    public enum Value: Sendable, Equatable {
        /// The scalar's text; `plain` is false when it was quoted or a block scalar.
        case scalar(String, plain: Bool)
        case sequence([YAMLNode])
        /// Pairs in document order. Keys are scalars; duplicates are rejected by the reader.
        case mapping([YAMLPair])
    }

    public var value: Value
    public var line: Int
    public var column: Int

    public init(_ value: Value, line: Int, column: Int) {
        self.value = value
        self.line = line
        self.column = column
    }

    /// The text of a scalar node, nil for sequences and mappings.
    public var scalarText: String? {
        if case .scalar(let text, _) = value { return text }
        return nil
    }

    /// `~`, `null` or nothing at all, written without quotes (YAML's null).
    public var isNull: Bool {
        guard case .scalar(let text, let plain) = value, plain else { return false }
        return text.isEmpty || text == "~" || text == "null" || text == "Null" || text == "NULL"
    }

    /// For error messages: `a mapping`, `a list`, or the scalar in quotes.
    public var kindDescription: String {
        switch value {
        case .scalar(let text, _): return "\"\(text)\""
        case .sequence: return "a list"
        case .mapping: return "a mapping"
        }
    }

    /// The value for `key` when this is a mapping.
    public subscript(key: String) -> YAMLNode? {
        guard case .mapping(let pairs) = value else { return nil }
        return pairs.first(where: { $0.key == key })?.value
    }
}

/// One `key: value` entry of a mapping.
public struct YAMLPair: Sendable, Equatable {
    public var key: String
    public var keyLine: Int
    public var value: YAMLNode

    public init(key: String, keyLine: Int, value: YAMLNode) {
        self.key = key
        self.keyLine = keyLine
        self.value = value
    }
}
