import CShims

/// Random bytes from libcrypto's RAND_bytes: the one source for key exchange, packet padding,
/// WebSocket keys and masks. A failure (no entropy) is reported, never papered over with zeros.
public enum SecureRandom {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String { "RAND_bytes failed: libcrypto has no random bytes to give" }
    }

    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) throws(Failure) {
        guard filled(buffer) else { throw Failure() }
    }

    public static func bytes(_ count: Int) throws(Failure) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: max(count, 0))
        guard out.withUnsafeMutableBytes({ filled($0) }) else { throw Failure() }
        return out
    }

    private static func filled(_ buffer: UnsafeMutableRawBufferPointer) -> Bool {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return true }
        return shim_random(base.assumingMemoryBound(to: UInt8.self), buffer.count) == 1
    }
}
