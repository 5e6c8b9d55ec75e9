/// A JSON document in memory, small and Foundation-free: the control plane's bodies, the state
/// file. Numbers keep their literal text so 64-bit counters survive exactly; objects keep their
/// member order so what we write reads the way we built it.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    /// The number's JSON text, already valid (see `int(_:)`, `double(_:)` and the parser).
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([JSONMember])

    public static func int(_ value: some BinaryInteger) -> JSONValue { .number(String(value)) }

    /// JSON has no NaN or infinity: those are written as null.
    public static func double(_ value: Double) -> JSONValue { value.isFinite ? .number(String(value)) : .null }

    /// An object from members in the order given; nil values are left out (as Codable does).
    public static func object(_ members: KeyValuePairs<String, JSONValue?>) -> JSONValue {
        .object(members.compactMap { key, value in value.map { JSONMember(key, $0) } })
    }

    /// An object of strings with its keys sorted, for maps whose order means nothing.
    public static func sortedObject(_ map: [String: String]) -> JSONValue {
        .object(map.sorted { $0.key < $1.key }.map { JSONMember($0.key, .string($0.value)) })
    }

    public static func sortedObject(_ map: [String: Int]) -> JSONValue {
        .object(map.sorted { $0.key < $1.key }.map { JSONMember($0.key, .int($0.value)) })
    }

    /// What a value is, for error messages ("expected a string, found a number").
    public var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

public struct JSONMember: Equatable, Sendable {
    public var key: String
    public var value: JSONValue
    public init(_ key: String, _ value: JSONValue) {
        self.key = key
        self.value = value
    }
}
