import Glibc
import Reactor

/// The bearer token for API calls: fixed (kubeconfig `token`) or read from a file (the
/// service account's, or kubeconfig `tokenFile`). A file is checked for changes at most once
/// a second (inode, size and mtime: kubelet replaces the projected token about hourly, through
/// a symlink swap) and re-read at once after a 401.
final class BearerToken {
    private let fixed: String?
    let file: String?
    private var cached: String?
    private var stamp: FileStamp?
    private var lastCheck: Deadline?
    private(set) var reads = 0
    /// Why the file could not be read, for `/ready`.
    private(set) var lastError: String?

    init(_ credential: KubernetesAccess.Credential) {
        switch credential {
        case .none: fixed = nil; file = nil
        case .token(let t): fixed = t; file = nil
        case .tokenFile(let f): fixed = nil; file = f
        }
    }

    /// The token to send now, nil for anonymous access (or an unreadable file).
    func current(now: Deadline = .now()) -> String? {
        if let fixed { return fixed }
        guard file != nil else { return nil }
        if let last = lastCheck, now - last < .seconds(1), cached != nil { return cached }
        lastCheck = now
        let s = FileStamp(path: file!)
        if s == nil || s != stamp || cached == nil { reload(stamp: s) }
        return cached
    }

    /// After a 401: read the file again whatever its stamp says. True when the token changed.
    @discardableResult
    func refresh() -> Bool {
        guard file != nil else { return false }
        let before = cached
        lastCheck = .now()
        reload(stamp: FileStamp(path: file!))
        return cached != before
    }

    private func reload(stamp s: FileStamp?) {
        guard let file else { return }
        reads += 1
        do {
            let bytes = try SmallFile.read(file, limit: 64 * 1024)
            var text = String(decoding: bytes, as: UTF8.self)
            while let last = text.last, last == "\n" || last == "\r" || last == " " { text.removeLast() }
            guard !text.isEmpty else { lastError = "token file \(file) is empty"; return }
            cached = text
            stamp = s
            lastError = nil
        } catch {
            lastError = "token file \(file) cannot be read: \(error)"
        }
    }
}

/// What identifies one version of a file: a replaced file has a new inode or mtime.
struct FileStamp: Equatable {
    let inode: UInt64
    let size: Int64
    let mtimeSeconds: Int
    let mtimeNanoseconds: Int

    init?(path: String) {
        var s = stat()
        guard stat(path, &s) == 0 else { return nil }
        inode = UInt64(s.st_ino)
        size = Int64(s.st_size)
        mtimeSeconds = Int(s.st_mtim.tv_sec)
        mtimeNanoseconds = Int(s.st_mtim.tv_nsec)
    }
}
