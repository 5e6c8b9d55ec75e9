/// Splits a byte stream into newline-terminated lines, sans I/O: a Kubernetes watch body
/// (one JSON event per line) or a pod log. Bytes go in as they arrive, in pieces of any size;
/// complete lines come out in order, without the `\n` (and without a `\r` before it).
///
/// Memory is bounded by `maxLineBytes`: a longer line is either an error (`.fail`, for watch
/// events, which must be whole to parse) or handed on in pieces of at most that size
/// (`.split`, for log lines, where a piece of a huge line is still worth showing).
/// No dependency on the rest of the agent, so the fuzz target builds it alone.
struct LineSplitter {
    enum Overlong { case fail, split }

    struct LineTooLong: Error, Equatable, CustomStringConvertible {
        let limit: Int
        var description: String { "a line is longer than \(limit) bytes" }
    }

    let maxLineBytes: Int
    let overlong: Overlong
    /// The start of a line whose end has not arrived yet.
    private(set) var partial: [UInt8] = []
    /// Set once a line was too long in `.fail` mode: everything after is refused.
    private(set) var failed = false

    init(maxLineBytes: Int, overlong: Overlong) {
        precondition(maxLineBytes > 0)
        self.maxLineBytes = maxLineBytes
        self.overlong = overlong
    }

    /// Feeds bytes; `line` is called for each complete line, in order.
    mutating func feed(_ bytes: UnsafeRawBufferPointer, _ line: (ArraySlice<UInt8>) -> Void) throws(LineTooLong) {
        guard !failed else { throw LineTooLong(limit: maxLineBytes) }
        var start = 0
        let count = bytes.count
        while start < count {
            // The next newline at or after `start`.
            var end = start
            while end < count && bytes[end] != 0x0A { end += 1 }
            if end == count {
                // No newline: keep the rest for later.
                try keep(bytes, start..<count, line)
                return
            }
            if partial.isEmpty {
                let slice = Array(bytes[start..<end])
                if slice.count > maxLineBytes {
                    partial = slice
                    try spill(line)
                    emit(partial[...], line)
                } else {
                    emit(slice[...], line)
                }
            } else {
                try keep(bytes, start..<end, line)
                emit(partial[...], line)
            }
            partial.removeAll(keepingCapacity: partial.capacity <= 64 * 1024)
            start = end + 1
        }
    }

    mutating func feed(_ bytes: [UInt8], _ line: (ArraySlice<UInt8>) -> Void) throws(LineTooLong) {
        var failure: LineTooLong?
        bytes.withUnsafeBytes { raw in
            do throws(LineTooLong) { try feed(raw, line) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// The end of the stream: a last line without a newline, if any.
    mutating func finish() -> [UInt8]? {
        guard !failed, !partial.isEmpty else { return nil }
        defer { partial = [] }
        var last = partial
        if last.last == 0x0D { last.removeLast() }
        return last
    }

    private mutating func keep(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>,
                               _ line: (ArraySlice<UInt8>) -> Void) throws(LineTooLong) {
        partial.append(contentsOf: bytes[range])
        try spill(line)
    }

    /// Past the limit: fail, or hand on whole pieces of `maxLineBytes` and keep the rest.
    private mutating func spill(_ line: (ArraySlice<UInt8>) -> Void) throws(LineTooLong) {
        guard partial.count > maxLineBytes else { return }
        switch overlong {
        case .fail:
            failed = true
            partial = []
            throw LineTooLong(limit: maxLineBytes)
        case .split:
            var offset = 0
            while partial.count - offset > maxLineBytes {
                line(partial[offset..<offset + maxLineBytes])
                offset += maxLineBytes
            }
            partial.removeFirst(offset)
        }
    }

    private func emit(_ bytes: ArraySlice<UInt8>, _ line: (ArraySlice<UInt8>) -> Void) {
        if bytes.last == 0x0D { line(bytes.dropLast()) } else { line(bytes) }
    }
}
