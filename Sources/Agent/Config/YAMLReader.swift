import CShims

/// Reads one YAML document into a `YAMLNode` tree using libyaml's event parser.
///
/// Deliberately small: anchors, aliases and custom tags are rejected (a config file does not
/// need them, and aliases are how "billion laughs" inputs blow up), keys must be scalars and
/// unique, and input and nesting are bounded.
public enum YAMLReader {
    /// Largest accepted input.
    public static let maxBytes = 1 << 20
    /// Deepest accepted nesting of sequences and mappings.
    public static let maxDepth = 64

    /// Parses `bytes`. `file` names the input in errors (`config.yaml:12: ...`).
    /// An empty document (or only comments) gives nil.
    public static func parse(_ bytes: [UInt8], file: String) throws(YAMLError) -> YAMLNode? {
        guard bytes.count <= maxBytes else {
            throw YAMLError(file: file, line: nil,
                            message: "file is \(bytes.count) bytes, over the \(maxBytes >> 20) MiB limit")
        }
        if bytes.isEmpty { return nil }
        var builder = TreeBuilder(file: file)
        try bytes.withUnsafeBufferPointer { (buffer) throws(YAMLError) in
            let outOfMemory = YAMLError(file: file, line: nil, message: "out of memory starting the YAML parser")
            guard let base = buffer.baseAddress, let parser = shim_yaml_parser_new(base, buffer.count) else {
                throw outOfMemory
            }
            defer { shim_yaml_parser_free(parser) }
            guard let event = shim_yaml_event_new() else { throw outOfMemory }
            defer { shim_yaml_event_free(event) }
            var done = false
            while !done {
                guard yaml_parser_parse(parser, event) == 1 else { throw parserError(parser, file: file) }
                // Deleting zeroes the event, so the next parse starts clean even after a throw.
                defer { yaml_event_delete(event) }
                done = try builder.consume(shim_yaml_event_info_of(event))
            }
        }
        return builder.root
    }

    /// Parses a string (tests, and config text from elsewhere).
    public static func parse(_ text: String, file: String) throws(YAMLError) -> YAMLNode? {
        try parse(Array(text.utf8), file: file)
    }

    private static func parserError(_ parser: UnsafeMutablePointer<yaml_parser_t>, file: String) -> YAMLError {
        let p = parser.pointee
        let problem = p.problem.map { String(cString: $0) } ?? "invalid YAML"
        if p.error == YAML_READER_ERROR {
            return YAMLError(file: file, line: nil, message: "\(problem) at byte offset \(p.problem_offset)")
        }
        if p.error == YAML_MEMORY_ERROR {
            return YAMLError(file: file, line: nil, message: "out of memory while parsing")
        }
        var detail = "column \(p.problem_mark.column + 1)"
        if let context = p.context {
            detail += ", \(String(cString: context)) at line \(p.context_mark.line + 1)"
        }
        return YAMLError(file: file, line: Int(p.problem_mark.line) + 1, message: "\(problem) (\(detail))")
    }
}

/// Turns the event stream into a tree with an explicit stack (no recursion on input depth).
private struct TreeBuilder {
    private enum Frame {
        case sequence(line: Int, column: Int, items: [YAMLNode])
        case mapping(line: Int, column: Int, pairs: [YAMLPair], pendingKey: (String, Int)?, seen: [String: Int])
    }

    let file: String
    var root: YAMLNode?
    private var stack: [Frame] = []
    private var documents = 0

    init(file: String) { self.file = file }

    /// Returns true at the end of the stream.
    mutating func consume(_ e: shim_yaml_event_info) throws(YAMLError) -> Bool {
        let line = Int(e.line) + 1
        let column = Int(e.column) + 1
        switch yaml_event_type_t(UInt32(e.type)) {
        case YAML_STREAM_END_EVENT:
            return true
        case YAML_DOCUMENT_START_EVENT:
            documents += 1
            if documents > 1 { throw fail(line, "expected a single YAML document, found a second one") }
        case YAML_ALIAS_EVENT:
            throw fail(line, "aliases (*\(text(e.anchor))) are not supported in the config file")
        case YAML_SCALAR_EVENT:
            try checkAnchorAndTag(e, line: line)
            let value = e.length == 0 || e.value == nil
                ? "" : String(decoding: UnsafeBufferPointer(start: e.value, count: e.length), as: UTF8.self)
            try deliver(YAMLNode(.scalar(value, plain: e.plain != 0), line: line, column: column))
        case YAML_SEQUENCE_START_EVENT:
            try checkAnchorAndTag(e, line: line)
            try push(.sequence(line: line, column: column, items: []), line: line)
        case YAML_MAPPING_START_EVENT:
            try checkAnchorAndTag(e, line: line)
            try push(.mapping(line: line, column: column, pairs: [], pendingKey: nil, seen: [:]), line: line)
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            guard let frame = stack.popLast() else { throw fail(line, "unbalanced collection end") }
            switch frame {
            case .sequence(let l, let c, let items):
                try deliver(YAMLNode(.sequence(items), line: l, column: c))
            case .mapping(let l, let c, let pairs, _, _):
                try deliver(YAMLNode(.mapping(pairs), line: l, column: c))
            }
        default:
            break // stream start, document end
        }
        return false
    }

    private mutating func push(_ frame: Frame, line: Int) throws(YAMLError) {
        guard stack.count < YAMLReader.maxDepth else {
            throw fail(line, "nesting deeper than \(YAMLReader.maxDepth) levels")
        }
        stack.append(frame)
    }

    private mutating func deliver(_ node: YAMLNode) throws(YAMLError) {
        guard let top = stack.popLast() else {
            root = node
            return
        }
        switch top {
        case .sequence(let l, let c, var items):
            items.append(node)
            stack.append(.sequence(line: l, column: c, items: items))
        case .mapping(let l, let c, var pairs, let pendingKey, var seen):
            if let (key, keyLine) = pendingKey {
                pairs.append(YAMLPair(key: key, keyLine: keyLine, value: node))
                stack.append(.mapping(line: l, column: c, pairs: pairs, pendingKey: nil, seen: seen))
            } else {
                guard let key = node.scalarText else {
                    throw fail(node.line, "mapping keys must be plain text, not \(node.kindDescription)")
                }
                if let first = seen[key] {
                    throw fail(node.line, "duplicate key \"\(key)\" (first at line \(first))")
                }
                seen[key] = node.line
                stack.append(.mapping(line: l, column: c, pairs: pairs, pendingKey: (key, node.line), seen: seen))
            }
        }
    }

    private func checkAnchorAndTag(_ e: shim_yaml_event_info, line: Int) throws(YAMLError) {
        if e.anchor != nil {
            throw fail(line, "anchors (&\(text(e.anchor))) are not supported in the config file")
        }
        if e.tag != nil {
            let tag = text(e.tag)
            // Standard tags (!!str, !!int, ...) only restate what the key expects; others mean
            // something this reader cannot honour.
            if !tag.hasPrefix("tag:yaml.org,2002:") {
                throw fail(line, "tag \(tag) is not supported in the config file")
            }
        }
    }

    private func text(_ p: UnsafePointer<UInt8>?) -> String {
        guard let p else { return "" }
        return String(cString: p)
    }

    private func fail(_ line: Int, _ message: String) -> YAMLError {
        YAMLError(file: file, line: line, message: message)
    }
}
