/// Where received bytes wait to become frames or packets: one block of memory that a TCP stream
/// reads into directly (other streams' bytes are copied in), and that a decoder works on in
/// place (an SSH packet is decrypted there, a WebSocket payload unmasked there). Whole units
/// are consumed where they lie, so their payloads can be handed on without a copy; only an
/// unfinished one stays behind, and it moves to the front when a read needs the room.
///
/// Unlike `ByteBuffer` (an array), its room can be read into before it holds anything, and
/// the bytes stay where they are until the next `space` or `append`: consumed payloads from one
/// read may be handed on together after the read is decoded.
final class ReceiveBuffer {
    /// The size of the loop's shared read buffer, so a read here is as large as one there.
    static let readSize = 256 * 1024

    private var base: UnsafeMutableRawPointer?
    private(set) var capacity = 0
    private var start = 0
    private var end = 0
    /// The first allocation: a stream that reads in here wants `readSize`; one that only
    /// collects small messages starts small and grows.
    private let initialCapacity: Int
    /// While pinned, bytes already there stay where they are: consumed ones are not
    /// overwritten and a full buffer grows into a new block, the old one kept until `unpin`.
    /// Payloads handed on from a batch of appends stay valid until the batch is delivered.
    private var pinned = false
    private var retired: [UnsafeMutableRawPointer] = []

    init(initialCapacity: Int = ReceiveBuffer.readSize) { self.initialCapacity = initialCapacity }

    deinit {
        base?.deallocate()
        for b in retired { b.deallocate() }
    }

    var count: Int { end - start }
    var isEmpty: Bool { start == end }

    /// The bytes not consumed yet, changeable in place. Valid until the next `space` or `append`.
    var bytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base.map { $0 + start }, count: end - start)
    }

    func consume(_ n: Int) {
        start += min(n, end - start)
        if start == end && !pinned { start = 0; end = 0 }
    }

    /// Keeps the bytes in place until `unpin` (see `pinned`).
    func pin() { pinned = true }

    func unpin() {
        pinned = false
        for b in retired { b.deallocate() }
        retired.removeAll()
        if start == end { start = 0; end = 0 }
    }

    /// Big-endian integer `offset` bytes into the unconsumed bytes, or nil if not all there.
    func peekInteger<T: FixedWidthInteger>(at offset: Int, as: T.Type = T.self) -> T? {
        let size = MemoryLayout<T>.size
        guard let b = base, offset >= 0, count - offset >= size else { return nil }
        return T(bigEndian: (b + start + offset).loadUnaligned(as: T.self))
    }

    /// Free room after the unconsumed bytes, at least `minimum` (and at least one) bytes. The
    /// unconsumed bytes (at most one unfinished unit) move to the front once the room behind
    /// them is down to half the buffer, so reads stay large; the buffer grows only for a unit
    /// bigger than it.
    func space(atLeast minimum: Int) -> UnsafeMutableRawBufferPointer {
        let want = max(minimum, 1)
        if pinned {
            if capacity - end < want { grow(to: max(end - start + want, initialCapacity, capacity * 2)) }
        } else if capacity - end < want || (start > 0 && capacity - end < capacity / 2) {
            if start > 0, let b = base {
                if end > start { b.copyMemory(from: b + start, byteCount: end - start) }
                end -= start
                start = 0
            }
            if capacity - end < want { grow(to: max(end + want, initialCapacity, capacity * 2)) }
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

    /// Gives the memory back while nothing is buffered (an idle connection then holds none).
    func releaseMemory() {
        guard isEmpty, let b = base else { return }
        b.deallocate()
        base = nil
        capacity = 0
    }

    private func grow(to newCapacity: Int) {
        let fresh = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        if let old = base {
            if end > start { fresh.copyMemory(from: old + start, byteCount: end - start) }
            if pinned { retired.append(old) } else { old.deallocate() }
        }
        base = fresh
        end -= start
        start = 0
        capacity = newCapacity
    }
}
