/// Where received SSH bytes wait to become packets: one block of memory that a TCP stream reads
/// into directly (other streams' bytes are copied in), and that the packet decoder decrypts in
/// place. Whole packets are consumed where they lie, so their payloads can be handed on without
/// a copy; only an unfinished packet stays behind, and it moves to the front when a read needs
/// the room.
final class SSHReceiveBuffer {
    /// The size of the loop's shared read buffer, so a read here is as large as one there.
    static let defaultCapacity = 256 * 1024

    private var base: UnsafeMutableRawPointer?
    private(set) var capacity = 0
    private var start = 0
    private var end = 0

    deinit { base?.deallocate() }

    var count: Int { end - start }
    var isEmpty: Bool { start == end }

    /// The bytes not consumed yet, changeable in place. Valid until the next `space` or `append`.
    var bytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base.map { $0 + start }, count: end - start)
    }

    func consume(_ n: Int) {
        start += min(n, end - start)
        if start == end { start = 0; end = 0 }
    }

    /// Free room after the unconsumed bytes, at least `minimum` (and at least one) bytes. The
    /// unconsumed bytes (at most one unfinished packet) move to the front once the room behind
    /// them is down to half the buffer, so reads stay large; the buffer grows only for a packet
    /// bigger than it.
    func space(atLeast minimum: Int) -> UnsafeMutableRawBufferPointer {
        let want = max(minimum, 1)
        if capacity - end < want || (start > 0 && capacity - end < capacity / 2) {
            if start > 0, let b = base {
                if end > start { b.copyMemory(from: b + start, byteCount: end - start) }
                end -= start
                start = 0
            }
            if capacity - end < want { grow(to: max(end + want, SSHReceiveBuffer.defaultCapacity, capacity * 2)) }
        }
        return UnsafeMutableRawBufferPointer(start: base.map { $0 + end }, count: capacity - end)
    }

    /// `n` bytes were written at the start of the room `space` returned.
    func didFill(_ n: Int) { end = min(end + max(n, 0), capacity) }

    func append(_ bytes: UnsafeRawBufferPointer) {
        guard let from = bytes.baseAddress, bytes.count > 0 else { return }
        let room = space(atLeast: bytes.count)
        room.baseAddress?.copyMemory(from: from, byteCount: bytes.count)
        didFill(bytes.count)
    }

    private func grow(to newCapacity: Int) {
        let fresh = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        if let old = base {
            if end > start { fresh.copyMemory(from: old + start, byteCount: end - start) }
            old.deallocate()
        }
        base = fresh
        end -= start
        start = 0
        capacity = newCapacity
    }
}
