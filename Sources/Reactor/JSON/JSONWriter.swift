/// Writes a `JSONValue` as text: compact for the wire, or pretty (two-space indent, `"key" : value`
/// as JSONEncoder prints it) for files people read.
extension JSONValue {
    public func text(pretty: Bool = false) -> String {
        var out = ""
        write(to: &out, pretty: pretty, indent: 0)
        return out
    }

    public var bytes: [UInt8] { Array(text().utf8) }

    private func write(to out: inout String, pretty: Bool, indent: Int) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let text): out += text
        case .string(let s): JSONText.appendQuoted(s, to: &out)
        case .array(let elements):
            writeContainer(elements, open: "[", close: "]", to: &out, pretty: pretty, indent: indent) { element, out in
                element.write(to: &out, pretty: pretty, indent: indent + 1)
            }
        case .object(let members):
            writeContainer(members, open: "{", close: "}", to: &out, pretty: pretty, indent: indent) { member, out in
                JSONText.appendQuoted(member.key, to: &out)
                out += pretty ? " : " : ":"
                member.value.write(to: &out, pretty: pretty, indent: indent + 1)
            }
        }
    }

    private func writeContainer<T>(_ items: [T], open: String, close: String, to out: inout String, pretty: Bool,
                                   indent: Int, _ item: (T, inout String) -> Void) {
        out += open
        guard !items.isEmpty else { out += close; return }
        for (i, element) in items.enumerated() {
            if i > 0 { out += "," }
            if pretty { out += "\n" + String(repeating: "  ", count: indent + 1) }
            item(element, &out)
        }
        if pretty { out += "\n" + String(repeating: "  ", count: indent) }
        out += close
    }
}
