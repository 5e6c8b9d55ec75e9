/// `${NAME}` in the config file's values is replaced by the environment variable NAME, so a
/// manifest's config can say `local_addr: "${NODE_IP}:10250"`. An unset or empty variable is an
/// error naming the key and the line (a silently empty address would fail later, less clearly).
/// `$${` writes a literal `${`; any other `$` is kept as it is. Only the file's values are
/// expanded: keys, environment variables and command-line overrides are taken as they are.
enum EnvironmentExpansion {
    static func expand(_ root: YAMLNode, environment: [String: String], file: String) throws(ConfigError) -> YAMLNode {
        try expand(root, path: "", environment: environment, file: file)
    }

    private static func expand(_ node: YAMLNode, path: String, environment: [String: String],
                               file: String) throws(ConfigError) -> YAMLNode {
        var node = node
        switch node.value {
        case .scalar(let text, _):
            guard mentionsVariable(text) else { return node }
            let origin = ConfigOrigin.file(file, line: node.line)
            // The result is text even when it reads like YAML's null (`~`).
            node.value = .scalar(try substitute(text, key: path, origin: origin, environment: environment), plain: false)
        case .sequence(let items):
            var expanded: [YAMLNode] = []
            for (index, item) in items.enumerated() {
                expanded.append(try expand(item, path: "\(path)[\(index)]", environment: environment, file: file))
            }
            node.value = .sequence(expanded)
        case .mapping(let pairs):
            var expanded: [YAMLPair] = []
            for var pair in pairs {
                let key = path.isEmpty ? pair.key : "\(path).\(pair.key)"
                pair.value = try expand(pair.value, path: key, environment: environment, file: file)
                expanded.append(pair)
            }
            node.value = .mapping(expanded)
        }
        return node
    }

    /// Works on UTF-8 bytes, not Characters: `$`, `{` and `}` are ASCII, and a Character would
    /// fold a combining mark after `{` into a grapheme that no longer equals `{` (the printer,
    /// which escapes scalar by scalar, would then disagree with this reader).
    static func substitute(_ text: String, key: String, origin: ConfigOrigin,
                           environment: [String: String]) throws(ConfigError) -> String {
        let dollar = UInt8(ascii: "$"), open = UInt8(ascii: "{"), close = UInt8(ascii: "}")
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            let byte = bytes[i]
            let next = i + 1 < bytes.count ? bytes[i + 1] : nil
            if byte == dollar, next == dollar, i + 2 < bytes.count, bytes[i + 2] == open {   // $${ -> a literal ${
                out += [dollar, open]
                i += 3
            } else if byte == dollar, next == open {
                guard let end = bytes[(i + 2)...].firstIndex(of: close) else {
                    throw ConfigError(origin, key: key, "unterminated \"${\" in \"\(text)\" (write $${ for a literal ${)")
                }
                let name = String(decoding: bytes[(i + 2)..<end], as: UTF8.self)
                guard isVariableName(name) else {
                    throw ConfigError(origin, key: key, "\"${\(name)}\" is not an environment variable name")
                }
                guard let value = environment[name], !value.isEmpty else {
                    throw ConfigError(origin, key: key, "${\(name)}: the environment variable \(name) is not set")
                }
                out += value.utf8
                i = end + 1
            } else {
                out.append(byte)
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether a value holds `${` (and so needs `substitute`), compared byte by byte as it does.
    static func mentionsVariable(_ text: String) -> Bool {
        var previous: UInt8 = 0
        for byte in text.utf8 {
            if previous == UInt8(ascii: "$") && byte == UInt8(ascii: "{") { return true }
            previous = byte
        }
        return false
    }

    /// A POSIX shell variable name: a letter or underscore, then letters, digits, underscores.
    private static func isVariableName(_ name: String) -> Bool {
        guard let first = name.utf8.first, first == UInt8(ascii: "_") || isLetter(first) else { return false }
        return name.utf8.allSatisfy { $0 == UInt8(ascii: "_") || isLetter($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }

    private static func isLetter(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }
}
