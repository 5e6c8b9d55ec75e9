import Glibc

/// Replaces a file so that a crash leaves either the old or the new content, never a mix:
/// write a temp file in the same directory, fsync it, rename it over the target, fsync the
/// directory (so the rename itself is durable). Blocking; used for the small state file.
enum AtomicFile {
    struct Failure: Error, Equatable {
        let message: String
    }

    /// Writes `bytes` to `path` with `mode`, creating missing parent directories with
    /// `directoryMode`.
    static func write(_ bytes: [UInt8], to path: String, mode: mode_t = 0o600,
                      directoryMode: mode_t = 0o700) throws(Failure) {
        let directory = parentDirectory(of: path)
        try makeDirectories(directory, mode: directoryMode)

        let name = path.split(separator: "/").last.map(String.init) ?? "state"
        var template = Array("\(directory)/.\(name).tmp-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { buffer -> Int32 in
            guard let base = buffer.baseAddress else { return -1 }
            return mkstemp(base)
        }
        guard fd >= 0 else { throw fail("cannot create a temporary file in \(directory)") }
        let tempPath = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var renamed = false
        defer { if !renamed { unlink(tempPath) } }

        let written = Result { () throws(Failure) in
            guard fchmod(fd, mode) == 0 else { throw fail("cannot set mode of \(tempPath)") }
            try writeAll(fd, bytes, path: tempPath)
            guard fsync(fd) == 0 else { throw fail("cannot fsync \(tempPath)") }
        }
        close(fd)
        try written.get()
        guard rename(tempPath, path) == 0 else { throw fail("cannot rename \(tempPath) to \(path)") }
        renamed = true
        syncDirectory(directory)
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(Failure) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return Glibc.write(fd, base + offset, buffer.count - offset)
            }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw fail("cannot write \(path)") }
            offset += n
        }
    }

    /// Best effort: some filesystems refuse fsync on a directory; the rename already happened.
    private static func syncDirectory(_ directory: String) {
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { return }
        _ = fsync(dfd)
        close(dfd)
    }

    /// `mkdir -p` with `mode` for each directory it creates.
    static func makeDirectories(_ directory: String, mode: mode_t) throws(Failure) {
        var info = stat()
        if stat(directory, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFDIR else { throw Failure(message: "\(directory) is not a directory") }
            return
        }
        guard errno == ENOENT else { throw fail("cannot inspect \(directory)") }
        let parent = parentDirectory(of: directory)
        if parent != directory { try makeDirectories(parent, mode: mode) }
        if mkdir(directory, mode) != 0 && errno != EEXIST { throw fail("cannot create directory \(directory)") }
    }

    /// `/a/b/c` -> `/a/b`, `c` -> `.`, `/c` -> `/`.
    static func parentDirectory(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        if slash == trimmed.startIndex { return "/" }
        return String(trimmed[..<slash])
    }

    private static func fail(_ what: String) -> Failure {
        Failure(message: "\(what): \(SmallFile.errnoText())")
    }
}
