/// A growable byte buffer with a read cursor: append at the end, consume from the front.
/// Protocol cores use it to collect input until a whole frame or packet has arrived.
/// Consumed space is reclaimed lazily (when everything is read, or when an append would
/// otherwise have to grow the storage), so reading a stream costs amortised O(1) per byte.
public struct ByteBuffer: Sendable, Equatable {
    public private(set) var storage: [UInt8]
    public private(set) var readerIndex: Int = 0

    public init() { storage = [] }
    public init(capacity: Int) { storage = []; storage.reserveCapacity(capacity) }
    public init<S: Sequence>(_ bytes: S) where S.Element == UInt8 { storage = Array(bytes) }
    public init(string: String) { storage = Array(string.utf8) }

    public var readableBytes: Int { storage.count - readerIndex }
    public var isEmpty: Bool { readableBytes == 0 }
    /// The unread bytes, as a slice (no copy).
    public var readableView: ArraySlice<UInt8> { storage[readerIndex...] }
    public var readableArray: [UInt8] { Array(storage[readerIndex...]) }

    public subscript(offset: Int) -> UInt8 { storage[readerIndex + offset] }

    // MARK: Writing

    /// Makes room for `count` more bytes at once, sparing the copies of step-by-step growth.
    public mutating func reserveCapacity(_ count: Int) {
        storage.reserveCapacity(storage.count + count)
    }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        makeRoom(for: bytes.count)
        storage.append(contentsOf: bytes)
    }

    /// Reclaims the consumed prefix only when the bytes would not fit otherwise: the move is
    /// then of the unread tail, which saves a reallocation, instead of happening on every read.
    private mutating func makeRoom(for count: Int) {
        if readerIndex > 0 && storage.count + count > storage.capacity {
            storage.removeFirst(readerIndex)
            readerIndex = 0
        }
    }
    public mutating func append<C: Collection>(contentsOf bytes: C) where C.Element == UInt8 {
        makeRoom(for: bytes.count)
        storage.append(contentsOf: bytes)
    }
    public mutating func append(_ byte: UInt8) { makeRoom(for: 1); storage.append(byte) }
    public mutating func append(string: String) { append(contentsOf: string.utf8) }
    public mutating func appendInteger<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.bigEndian) { append($0) }
    }

    // MARK: Reading

    public func withReadableBytes<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try storage.withUnsafeBytes { raw in
            try body(UnsafeRawBufferPointer(rebasing: raw[readerIndex...]))
        }
    }

    public mutating func withMutableReadableBytes<T>(_ body: (UnsafeMutableRawBufferPointer) throws -> T) rethrows -> T {
        let start = readerIndex
        return try storage.withUnsafeMutableBytes { raw in
            try body(UnsafeMutableRawBufferPointer(rebasing: raw[start...]))
        }
    }

    /// Big-endian integer at `offset` from the read cursor, or nil if not all of it has arrived.
    public func peekInteger<T: FixedWidthInteger>(at offset: Int = 0, as: T.Type = T.self) -> T? {
        let size = MemoryLayout<T>.size
        guard offset >= 0, readableBytes - offset >= size else { return nil }
        var value: T = 0
        for i in 0..<size { value = (value << 8) | T(storage[readerIndex + offset + i]) }
        return value
    }

    public mutating func readInteger<T: FixedWidthInteger>(as: T.Type = T.self) -> T? {
        guard let v: T = peekInteger() else { return nil }
        moveReaderIndex(by: MemoryLayout<T>.size)
        return v
    }

    public func peekBytes(at offset: Int = 0, count: Int) -> ArraySlice<UInt8>? {
        guard offset >= 0, count >= 0, readableBytes - offset >= count else { return nil }
        return storage[(readerIndex + offset)..<(readerIndex + offset + count)]
    }

    public mutating func readBytes(_ count: Int) -> [UInt8]? {
        guard let slice = peekBytes(count: count) else { return nil }
        moveReaderIndex(by: count)
        return Array(slice)
    }

    /// Consumes `count` bytes.
    public mutating func moveReaderIndex(by count: Int) {
        precondition(count >= 0 && count <= readableBytes, "ByteBuffer: consumed past the end")
        readerIndex += count
        if readerIndex == storage.count {
            storage.removeAll(keepingCapacity: true)
            readerIndex = 0
        }
    }

    public mutating func clear() {
        storage.removeAll(keepingCapacity: true)
        readerIndex = 0
    }

    /// Drops the storage entirely (an idle connection then holds no buffer memory).
    public mutating func releaseMemory() {
        if readableBytes == 0 { storage = []; readerIndex = 0 }
    }

    public static func == (a: ByteBuffer, b: ByteBuffer) -> Bool { a.readableView == b.readableView }
}
