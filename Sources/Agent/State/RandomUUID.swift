import Glibc

/// Random (version 4) UUIDs for agent IDs, from the kernel's CSPRNG (/dev/urandom). Not
/// `SecureRandom`: the agent makes its ID at start, and a first RAND_bytes call sets up
/// libcrypto's generator, 2 MiB of resident memory an idle agent otherwise never pays.
public enum RandomUUID {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// A lowercase UUID v4, e.g. `3f1c2b9e-7d4a-4c1e-9b2f-0a1b2c3d4e5f`.
    public static func v4() throws(Failure) -> String {
        var bytes = try randomBytes(16)
        bytes[6] = (bytes[6] & 0x0F) | 0x40 // version 4
        bytes[8] = (bytes[8] & 0x3F) | 0x80 // RFC 4122 variant
        return format(bytes)
    }

    /// True for the 8-4-4-4-12 hex form (any version).
    public static func isValid(_ text: String) -> Bool {
        let groups = text.split(separator: "-", omittingEmptySubsequences: false)
        guard groups.map(\.count) == [8, 4, 4, 4, 12] else { return false }
        return groups.allSatisfy { $0.allSatisfy(\.isHexDigit) }
    }

    static func format(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        var out = ""
        for (i, byte) in bytes.enumerated() {
            if i == 4 || i == 6 || i == 8 || i == 10 { out.append("-") }
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return out
    }

    static func randomBytes(_ count: Int) throws(Failure) -> [UInt8] {
        let fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: "cannot open /dev/urandom: \(SmallFile.errnoText())") }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let n = bytes.withUnsafeMutableBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return read(fd, base + filled, count - filled)
            }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw Failure(description: "cannot read /dev/urandom: \(SmallFile.errnoText())") }
            filled += n
        }
        return bytes
    }
}
