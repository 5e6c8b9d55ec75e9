/// Binary packet framing (RFC 4253 section 6), sans I/O. The decoder keeps received bytes in
/// a `ReceiveBuffer` (a TCP stream reads straight into it), finds whole packets there, and
/// checks and decrypts them in place; the encoder builds packets in place at the end of an
/// output array (header, payload, padding, tag) and seals them there.
final class SSHPacketDecoder {
    static let defaultMaxPacketLength = 256 * 1024

    var cipher: SSHPacketCipher = SSHNoCipher()
    var sequence: UInt32 = 0
    var maxPacketLength = SSHPacketDecoder.defaultMaxPacketLength
    private(set) var bytesSinceKex: UInt64 = 0
    let input = ReceiveBuffer()
    private var pendingLength: Int?      // known once the header has been read (and, for CTR, decrypted)

    var bufferedBytes: Int { input.count }

    private var resetSequenceAfterPacket = false

    /// Copies bytes in (streams that cannot read into `readSpace`).
    func append(_ bytes: UnsafeRawBufferPointer) { input.append(bytes) }

    /// Room for the next read, enough for the unfinished packet at least; report it with `didRead`.
    /// Payloads handed out by `next` are invalid after this call.
    func readSpace() -> UnsafeMutableRawBufferPointer {
        let c = cipher
        let have = input.count
        let need = pendingLength.map { 4 + $0 + c.tagLength } ?? c.headerLength
        return input.space(atLeast: need - have)
    }

    func didRead(_ count: Int) { input.didFill(count) }

    func resetKexCounters() { bytesSinceKex = 0 }
    /// Strict kex: the packet being handled (NEWKEYS) is the last of the old numbering.
    func resetSequenceAfterThisPacket() { resetSequenceAfterPacket = true }

    /// Hands the next whole packet's payload to `body`; returns false when more bytes are needed.
    /// The payload lies in the receive buffer, decrypted: it stays valid until the next
    /// `readSpace` or `append`, so a batch of packets from one read can be handed on uncopied.
    func next(_ body: (UnsafeRawBufferPointer) throws -> Void) throws -> Bool {
        guard let total = try nextPacket(in: input.bytes, body) else { return false }
        input.consume(total)
        return true
    }

    /// Decodes the packets in `bytes` where they lie (memory the caller lets us change: a
    /// WebSocket message's payload), handing each payload to `body` with its sequence number;
    /// only an unfinished packet is copied into the buffer. When the buffer already holds one,
    /// just the bytes it lacks are copied in first. Payloads stay valid while `bytes` does.
    func receive(inPlace bytes: UnsafeMutableRawBufferPointer, _ body: (UnsafeRawBufferPointer, UInt32) throws -> Void) throws {
        var rest = bytes
        while !input.isEmpty && !rest.isEmpty {
            let c = cipher
            let want = pendingLength.map { 4 + $0 + c.tagLength } ?? c.headerLength
            let n = min(max(want - input.count, 1), rest.count)
            input.append(UnsafeRawBufferPointer(rebasing: rest.prefix(n)))
            rest = UnsafeMutableRawBufferPointer(rebasing: rest.dropFirst(n))
            while true {
                let seq = sequence
                guard try next({ try body($0, seq) }) else { break }
            }
        }
        while !rest.isEmpty {
            let seq = sequence
            guard let total = try nextPacket(in: rest, { try body($0, seq) }) else { break }
            rest = UnsafeMutableRawBufferPointer(rebasing: rest.dropFirst(total))
        }
        input.append(UnsafeRawBufferPointer(rest))
    }

    /// The packet at the start of `raw`, checked, decrypted in place and handed to `body`;
    /// returns its length on the wire, or nil while it is incomplete.
    private func nextPacket(in raw: UnsafeMutableRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> Void) throws -> Int? {
        let c = cipher
        let seq = sequence
        if pendingLength == nil {
            guard raw.count >= c.headerLength else { return nil }
            let length = try c.packetLength(seq: seq, header: UnsafeMutableRawBufferPointer(rebasing: raw[0..<c.headerLength]))
            try validate(length: Int(length), cipher: c)
            pendingLength = Int(length)
        }
        guard let length = pendingLength else { return nil }
        let total = 4 + length + c.tagLength
        guard raw.count >= total else { return nil }
        let packet = UnsafeMutableRawBufferPointer(rebasing: raw[0..<total])
        try c.open(seq: seq, packet: packet)
        let padding = Int(packet[4])
        guard padding >= 4, padding < length else {
            throw SSHError.malformed("packet \(seq): padding length \(padding) invalid for packet length \(length) (must be 4...\(length - 1))")
        }
        try body(UnsafeRawBufferPointer(rebasing: packet[5..<(4 + length - padding)]))
        pendingLength = nil
        sequence &+= 1
        if resetSequenceAfterPacket { sequence = 0; resetSequenceAfterPacket = false }
        bytesSinceKex &+= UInt64(total)
        return total
    }

    private func validate(length: Int, cipher c: SSHPacketCipher) throws {
        guard length <= maxPacketLength else {
            throw SSHError.limitExceeded("packet length \(length) exceeds the limit of \(maxPacketLength) bytes")
        }
        guard length >= 5 else { throw SSHError.malformed("packet length \(length) is below the minimum of 5") }
        let aligned = c.lengthIsAAD ? length : length + 4
        guard aligned % c.blockSize == 0, 4 + length >= c.headerLength else {
            throw SSHError.malformed("packet length \(length) is not a multiple of the cipher block size \(c.blockSize)")
        }
    }
}

struct SSHPacketEncoder {
    var cipher: SSHPacketCipher = SSHNoCipher()
    var sequence: UInt32 = 0
    private(set) var bytesSinceKex: UInt64 = 0
    /// Random padding is taken from here, refilled 4 KiB at a time: one RAND_bytes call (and its
    /// getpid fork check) per few hundred packets, not one for every small window adjust.
    private var randomPool: [UInt8] = []
    private var randomUsed = 0

    mutating func resetKexCounters() { bytesSinceKex = 0 }

    /// Reserves the 5-byte header; append the payload after it, then call `finish`.
    func begin(_ out: inout [UInt8]) -> Int {
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: 5))
        return start
    }

    mutating func finish(_ out: inout [UInt8], start: Int) throws {
        let c = cipher
        let payloadLength = out.count - start - 5
        let unaligned = (c.lengthIsAAD ? 1 : 5) + payloadLength
        var padding = c.blockSize - unaligned % c.blockSize
        if padding < 4 { padding += c.blockSize }
        let length = 1 + payloadLength + padding
        out[start] = UInt8(truncatingIfNeeded: length >> 24)
        out[start + 1] = UInt8(truncatingIfNeeded: length >> 16)
        out[start + 2] = UInt8(truncatingIfNeeded: length >> 8)
        out[start + 3] = UInt8(truncatingIfNeeded: length)
        out[start + 4] = UInt8(padding)
        let padStart = out.count
        out.append(contentsOf: repeatElement(0, count: padding + c.tagLength))
        let seq = sequence
        try out.withUnsafeMutableBytes { raw in
            try randomFill(UnsafeMutableRawBufferPointer(rebasing: raw[padStart..<(padStart + padding)]))
            try c.seal(seq: seq, packet: UnsafeMutableRawBufferPointer(rebasing: raw[start...]))
        }
        sequence &+= 1
        bytesSinceKex &+= UInt64(out.count - start)
    }

    private mutating func randomFill(_ p: UnsafeMutableRawBufferPointer) throws {
        if randomPool.count - randomUsed < p.count {
            if randomPool.count < max(p.count, 4096) { randomPool = [UInt8](repeating: 0, count: max(p.count, 4096)) }
            do { try randomPool.withUnsafeMutableBytes { try SecureRandom.fill($0) } } catch {
                throw SSHError.crypto("\(error)")
            }
            randomUsed = 0
        }
        let from = randomUsed
        randomPool.withUnsafeBytes { p.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[from..<(from + p.count)])) }
        randomUsed += p.count
    }
}
