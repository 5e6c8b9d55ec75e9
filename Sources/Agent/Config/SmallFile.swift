import Glibc

/// Reading small local files (config, state) with a size limit, without Foundation.
/// These are blocking reads; they happen at start-up and for files of a few KiB.
enum SmallFile {
    enum ReadError: Error, Equatable {
        case notFound
        case tooLarge(limit: Int)
        /// errno text, e.g. "Permission denied", or what the file is when only a regular file
        /// will do ("it is a FIFO, not a regular file").
        case system(String)
    }

    /// The whole file, or an error when it is missing, unreadable or larger than `limit` bytes.
    /// `regularFileOnly` refuses anything but a regular file, and opens without blocking so
    /// that a FIFO cannot hang the caller waiting for a writer (signals are blocked for
    /// signalfd by then, so not even SIGTERM would end that wait). Config files may be pipes
    /// (`--config <(...)`); the state file may not.
    static func read(_ path: String, limit: Int, regularFileOnly: Bool = false) throws(ReadError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | (regularFileOnly ? O_NONBLOCK : 0))
        guard fd >= 0 else {
            if errno == ENOENT { throw .notFound }
            throw .system(errnoText())
        }
        defer { close(fd) }
        if regularFileOnly {
            var info = stat()
            guard fstat(fd, &info) == 0 else { throw .system(errnoText()) }
            let type = info.st_mode & S_IFMT
            guard type == S_IFREG else { throw .system("it is \(fileTypeName(type)), not a regular file") }
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .system(errnoText())
            }
            if n == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<n])
            if bytes.count > limit { throw .tooLarge(limit: limit) }
        }
    }

    private static func fileTypeName(_ type: mode_t) -> String {
        switch type {
        case S_IFIFO: return "a FIFO"
        case S_IFDIR: return "a directory"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "a special file"
        }
    }

    static func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    static func errnoText(_ code: Int32 = errno) -> String {
        guard let text = strerror(code) else { return "errno \(code)" }
        return String(cString: text)
    }
}
