import Glibc

/// An /etc/hosts table, read once and kept until `invalidateHostsCache` (SIGHUP). We answer from
/// it ourselves rather than through c-ares' "f" lookup: c-ares 1.18 re-reads the file on every
/// lookup and takes another path only from the process environment (CARES_HOSTS), which tests
/// and a multi-resolver process cannot set per resolver.
struct HostsFile {
    /// Lower-cased name -> addresses, in file order.
    let table: [String: [String]]

    init(path: String) {
        table = Self.parse(path: path)
    }

    func addresses(of name: String, port: Int) -> [SocketAddress]? {
        guard let ips = table[name.lowercased()] else { return nil }
        let addrs = ips.compactMap { try? SocketAddress(ip: $0, port: port) }
        // IPv4 first, as the old getaddrinfo path did: most peers here listen on 127.0.0.1.
        return addrs.isEmpty ? nil : addrs.sorted { !$0.isIPv6 && $1.isIPv6 }
    }

    private static func parse(path: String) -> [String: [String]] {
        guard let file = fopen(path, "r") else { return [:] }
        defer { fclose(file) }
        var table: [String: [String]] = [:]
        var line: UnsafeMutablePointer<CChar>?
        var cap = 0
        while getline(&line, &cap, file) > 0 {
            guard let l = line else { break }
            var text = String(cString: l)
            if let hash = text.firstIndex(of: "#") { text = String(text[..<hash]) }
            let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
            guard fields.count >= 2 else { continue }
            for name in fields.dropFirst() { table[name.lowercased(), default: []].append(String(fields[0])) }
        }
        free(line)
        return table
    }
}
