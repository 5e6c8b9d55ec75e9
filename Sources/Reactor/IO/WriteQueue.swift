import CShims
import Glibc

/// A fixed-size block of memory for outgoing bytes. Chunks are recycled through the loop's
/// `ChunkPool`, so the steady state of a busy connection allocates nothing per write.
public final class Chunk {
    public static let size = 64 * 1024
    let base: UnsafeMutableRawPointer
    var start = 0
    var end = 0

    init() { base = .allocate(byteCount: Chunk.size, alignment: 16) }
    deinit { base.deallocate() }

    var count: Int { end - start }
    var room: Int { Chunk.size - end }
}

/// Free chunks kept for reuse, bounded so an idle loop gives memory back.
public final class ChunkPool {
    private var free: [Chunk] = []
    public var limit = 32   // 2 MiB kept for reuse; beyond that, bursts give their memory back

    func take() -> Chunk {
        if let c = free.popLast() { c.start = 0; c.end = 0; return c }
        return Chunk()
    }

    func give(_ chunk: Chunk) {
        if free.count < limit { free.append(chunk) }
    }

}

/// Bytes waiting to be written to one socket, flushed with writev.
struct WriteQueue {
    private var chunks: [Chunk] = []
    private var head = 0
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    mutating func append(_ bytes: UnsafeRawBufferPointer, pool: ChunkPool) {
        var offset = 0
        while offset < bytes.count {
            if head == chunks.count || chunks[chunks.count - 1].room == 0 {
                chunks.append(pool.take())
            }
            let tail = chunks[chunks.count - 1]
            let n = min(tail.room, bytes.count - offset)
            (tail.base + tail.end).copyMemory(from: bytes.baseAddress! + offset, byteCount: n)
            tail.end += n
            offset += n
        }
        count += bytes.count
    }

    /// Writes as much as the socket takes. Returns bytes written, or the error (EAGAIN: 0).
    mutating func flush(fd: Int32, pool: ChunkPool) -> Result<Int, SocketError> {
        var total = 0
        while count > 0 {
            var asked = 0
            let n = withUnsafeTemporaryAllocation(of: iovec.self, capacity: 64) { iov -> Int in
                var used = 0
                var i = head
                while i < chunks.count && used < 64 {
                    let c = chunks[i]
                    iov[used] = iovec(iov_base: c.base + c.start, iov_len: c.count)
                    asked += c.count
                    used += 1
                    i += 1
                }
                return shim_writev(fd, iov.baseAddress, Int32(used))
            }
            if n < 0 {
                let e = shim_errno()
                if e == EAGAIN || e == EWOULDBLOCK { return .success(total) }
                if e == EINTR { continue }
                return .failure(SocketError(operation: "writev", errno: e))
            }
            consume(n, pool: pool)
            total += n
            if n < asked { break }   // the socket buffer is full: another try would be EAGAIN
        }
        return .success(total)
    }

    private mutating func consume(_ written: Int, pool: ChunkPool) {
        var left = written
        count -= written
        while left > 0 {
            let c = chunks[head]
            let n = min(left, c.count)
            c.start += n
            left -= n
            if c.count == 0 {
                pool.give(c)
                head += 1
            }
        }
        if head == chunks.count {
            // A few references are kept for the next burst; a big backlog's array is let go.
            chunks.removeAll(keepingCapacity: chunks.capacity <= 64)
            head = 0
        } else if head > 32 {
            chunks.removeFirst(head)
            head = 0
        }
    }

    mutating func release(pool: ChunkPool) {
        for i in head..<chunks.count { pool.give(chunks[i]) }
        chunks = []
        head = 0
        count = 0
    }
}
