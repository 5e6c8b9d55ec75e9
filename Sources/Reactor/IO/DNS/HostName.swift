/// What is wrong with a host name DNS cannot carry, checked before any query: a typo gets a
/// reason at once, and a near-address such as `127.1` or `fe80:1` is never sent to a server.
enum HostName {
    static func problem(_ name: String) -> String? {
        let dot = UInt8(ascii: ".")
        if name.isEmpty { return "empty" }
        let bytes = Array(name.utf8)
        let body = bytes.last == dot ? bytes.dropLast() : bytes[...]
        if body.count > 253 { return "longer than 253 characters" }
        var label = 0
        for byte in body {
            if byte == dot {
                if label == 0 { return "an empty label" }
                label = 0
                continue
            }
            if byte <= 0x20 || byte == 0x7f { return "a space or control character" }
            if byte == UInt8(ascii: ":") { return "a ':' but not an IPv6 address" }
            label += 1
            if label > 63 { return "a label longer than 63 characters" }
        }
        if label == 0 { return "an empty label" }
        if body.allSatisfy({ $0 == dot || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) {
            return "digits and dots but not an IPv4 address"
        }
        return nil
    }
}
