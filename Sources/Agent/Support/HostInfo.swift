import Glibc

/// Facts about the machine for registration: node name, CPU, memory, disk and OS,
/// read from the downward API variable, /proc, statvfs and /etc/os-release.
struct HostInfo: Equatable {
    var hostname: String
    var cpuCores: Int
    var memoryGB: Double
    var diskGB: Double
    var os: String

    static func current(environment: [String: String]) -> HostInfo {
        HostInfo(hostname: nodeName(environment: environment), cpuCores: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))),
                 memoryGB: memoryGB(), diskGB: diskGB(path: "/"), os: osName())
    }

    static func nodeName(environment: [String: String]) -> String {
        if let n = environment["NODE_NAME"], !n.isEmpty { return n }
        return systemHostname()
    }

    /// The pod's name (`POD_NAME` from the downward API), else the host name (a pod's own).
    static func podName(environment: [String: String]) -> String {
        if let n = environment["POD_NAME"], !n.isEmpty { return n }
        return systemHostname()
    }

    static func systemHostname() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        guard gethostname(&buf, buf.count - 1) == 0 else { return "unknown" }
        return String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func memoryGB() -> Double {
        // MemTotal:       24567890 kB
        for line in readTextFile("/proc/meminfo")?.split(separator: "\n") ?? [] where line.hasPrefix("MemTotal:") {
            let kb = Double(line.split(separator: " ").dropFirst().first ?? "") ?? 0
            return (kb / 1024 / 1024 * 10).rounded() / 10
        }
        return 0
    }

    static func diskGB(path: String) -> Double {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return 0 }
        return (Double(s.f_blocks) * Double(s.f_frsize) / 1_073_741_824 * 10).rounded() / 10
    }

    static func osName() -> String {
        for line in readTextFile("/etc/os-release")?.split(separator: "\n") ?? [] where line.hasPrefix("PRETTY_NAME=") {
            return String(line.dropFirst("PRETTY_NAME=".count)).trimmingCharacters(in: "\"")
        }
        var u = utsname()
        uname(&u)
        return withUnsafeBytes(of: &u.sysname) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
    }
}

/// A small text file, or nil when it cannot be read (procfs included: SmallFile reads to EOF).
func readTextFile(_ path: String) -> String? {
    (try? SmallFile.read(path, limit: 1 << 20)).map { String(decoding: $0, as: UTF8.self) }
}

extension StringProtocol {
    func trimmingCharacters(in set: Character) -> String {
        var s = Substring(self)
        while s.first == set { s = s.dropFirst() }
        while s.last == set { s = s.dropLast() }
        return String(s)
    }
}
