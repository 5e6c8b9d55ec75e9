import CShims
import Glibc
import Reactor

/// The process's own numbers, read from /proc/self as `ps` and the Prometheus client libraries
/// read them: a few small reads into stack buffers, no allocation but the fd directory's.
/// A value that cannot be read (no /proc), or was not asked for, is nil: left out, not 0.
struct ProcessStats: Equatable {
    var residentBytes: UInt64?
    /// The most RSS the process ever had (VmHWM); detailed reads only.
    var peakResidentBytes: UInt64?
    var userCPUSeconds: Double?
    var systemCPUSeconds: Double?
    var openFDs: Int?
    var maxFDs: Int?
    /// What the allocator has handed out and not taken back; detailed reads only.
    var heapBytes: UInt64?

    var cpuSeconds: Double? {
        guard let u = userCPUSeconds, let s = systemCPUSeconds else { return nil }
        return u + s
    }

    static let clockTicks = Double(max(sysconf(Int32(_SC_CLK_TCK)), 1))
    static let pageSize = UInt64(max(sysconf(Int32(_SC_PAGESIZE)), 1))

    /// `detailed` adds the peak RSS (/proc/self/status, the dearest read) and the heap; the
    /// Prometheus `process_*` families need neither.
    static func read(detailed: Bool = true) -> ProcessStats {
        var stats = ProcessStats()
        if let f = statFields() {
            stats.userCPUSeconds = f.utime.map { Double($0) / clockTicks }
            stats.systemCPUSeconds = f.stime.map { Double($0) / clockTicks }
            stats.residentBytes = f.rssPages.map { $0 * pageSize }
        }
        if detailed {
            readProcFile("/proc/self/status", capacity: 8192) { text in
                stats.peakResidentBytes = statusKiB(text, "VmHWM:").map { $0 * 1024 }
            }
            stats.heapBytes = shim_heap_in_use_bytes()
        }
        stats.openFDs = countOpenFDs()
        let limit = shim_nofile_limit()
        stats.maxFDs = limit >= 0 ? limit : nil
        return stats
    }

    /// When the process started, in seconds since the epoch: boot time (`btime` in /proc/stat)
    /// plus the start tick in /proc/self/stat. Read once; it does not change.
    static func startTimeSeconds() -> Double? {
        guard let start = statFields()?.starttime,
              let stat = try? SmallFile.read("/proc/stat", limit: 4 << 20) else { return nil }
        let boot: UInt64? = stat.withUnsafeBytes { text in
            var result: UInt64?
            forEachLine(text) { line in
                if result == nil, let v = valueAfter(prefix: "btime ", in: line) { result = v }
            }
            return result
        }
        guard let boot else { return nil }
        return Double(boot) + Double(start) / clockTicks
    }

    // MARK: /proc parsing

    typealias StatFields = (utime: UInt64?, stime: UInt64?, starttime: UInt64?, rssPages: UInt64?)

    static func statFields() -> StatFields? {
        var out: StatFields?
        readProcFile("/proc/self/stat", capacity: 1024) { out = parseStat($0) }
        return out
    }

    /// utime, stime, starttime and rss: fields 14, 15, 22 and 24 of /proc/PID/stat, counted after the
    /// command name (field 2), which may itself hold spaces and parentheses: it ends at the
    /// last ')'.
    static func parseStat(_ text: UnsafeRawBufferPointer) -> StatFields? {
        guard let close = text.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        var found: StatFields = (nil, nil, nil, nil)
        var field = 2
        var value: UInt64 = 0
        var inNumber = false
        func fieldEnded() {
            switch field {
            case 14: found.utime = value
            case 15: found.stime = value
            case 22: found.starttime = value
            case 24: found.rssPages = value
            default: break
            }
        }
        for b in text[(close + 1)...] {
            if b == 0x20 || b == 0x0A {
                if inNumber { fieldEnded() }
                inNumber = false
                continue
            }
            if !inNumber { field += 1; value = 0; inNumber = true }
            if b >= 0x30 && b <= 0x39 { value = value &* 10 &+ UInt64(b - 0x30) }
        }
        if inNumber { fieldEnded() }
        return found
    }

    /// `VmRSS:     6624 kB` -> 6624.
    static func statusKiB(_ text: UnsafeRawBufferPointer, _ key: String) -> UInt64? {
        var result: UInt64?
        forEachLine(text) { line in
            if result == nil, let v = valueAfter(prefix: key, in: line) { result = v }
        }
        return result
    }

    /// The number that follows `prefix` (after blanks) when the line starts with it.
    static func valueAfter(prefix: String, in line: UnsafeRawBufferPointer.SubSequence) -> UInt64? {
        var it = line.makeIterator()
        for p in prefix.utf8 { guard it.next() == p else { return nil } }
        var value: UInt64 = 0
        var digits = 0
        while let b = it.next() {
            if b == 0x20 || b == 0x09 { if digits == 0 { continue } else { break } }
            guard b >= 0x30 && b <= 0x39 else { break }
            value = value &* 10 &+ UInt64(b - 0x30)
            digits += 1
        }
        return digits > 0 ? value : nil
    }

    static func forEachLine(_ text: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer.SubSequence) -> Void) {
        var start = 0
        for i in 0..<text.count where text[i] == 0x0A {
            body(text[start..<i])
            start = i + 1
        }
        if start < text.count { body(text[start...]) }
    }

    /// Entries of /proc/self/fd, less the one `opendir` itself holds while reading.
    static func countOpenFDs() -> Int? {
        guard let dir = opendir("/proc/self/fd") else { return nil }
        defer { closedir(dir) }
        var n = 0
        while let entry = readdir(dir) {
            let first = withUnsafeBytes(of: entry.pointee.d_name) { $0[0] }
            if first != UInt8(ascii: ".") { n += 1 }
        }
        return max(n - 1, 0)
    }

    /// Reads a whole small /proc file into a stack buffer and runs `body` on it; nothing when
    /// it cannot be opened. Longer files are cut at `capacity` (ours are far shorter).
    static func readProcFile(_ path: String, capacity: Int, _ body: (UnsafeRawBufferPointer) -> Void) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        withUnsafeTemporaryAllocation(byteCount: capacity, alignment: 1) { buf in
            guard let base = buf.baseAddress else { return }
            var used = 0
            while used < capacity {
                let n = Glibc.read(fd, base + used, capacity - used)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                used += n
            }
            body(UnsafeRawBufferPointer(rebasing: buf[0..<used]))
        }
    }
}
