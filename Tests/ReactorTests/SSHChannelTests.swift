import XCTest
@testable import Reactor

/// The channel's receive side against a fake host: data from one read goes out in one
/// vectored call, kept aside (in order) when it cannot, and never lost to a CLOSE.
final class SSHChannelTests: XCTestCase {
    final class FakeHost: SSHChannelHost {
        let loop: EventLoop
        var canSendChannelData = true
        var collectsChannelData = false
        var receiveBatch: UInt64 = 0
        var holdsWindowAdjusts = false
        var sent: [[UInt8]] = []
        var collected: [SSHChannel] = []
        init(loop: EventLoop) { self.loop = loop }
        func channelSend(_ build: (inout [UInt8]) -> Void) { var m: [UInt8] = []; build(&m); sent.append(m) }
        func channelDidFinish(_ channel: SSHChannel) {}
        func channelHasCollectedData(_ channel: SSHChannel) { collected.append(channel) }
        /// One read's worth of channel messages, then the end-of-read delivery.
        func batch(_ body: () throws -> Void) rethrows {
            receiveBatch += 1
            collectsChannelData = true
            defer {
                collectsChannelData = false
                let c = collected
                collected = []
                for ch in c { ch.deliverBatch() }
            }
            try body()
        }
    }

    final class VectorRecorder: ByteStreamDelegate {
        var received: [UInt8] = []
        var calls: [Int] = []         // pieces per call (1 for didRead)
        var events: [String] = []
        var pauseAfterRead = false
        func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {
            received.append(contentsOf: bytes); calls.append(1); events.append("data")
            if pauseAfterRead { stream.pauseReading() }
        }
        func stream(_ stream: ByteStream, didReadVector parts: [UnsafeRawBufferPointer]) {
            for p in parts { received.append(contentsOf: p) }
            calls.append(parts.count); events.append("data")
            if pauseAfterRead { stream.pauseReading() }
        }
        func streamDidReadEOF(_ stream: ByteStream) { events.append("eof") }
        func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) { events.append("close") }
    }

    private func makeChannel(_ host: FakeHost) -> SSHChannel {
        SSHChannel(host: host, loop: host.loop, type: "forwarded-tcpip", localID: 0, remoteID: 7, remoteWindow: 1 << 20,
                   remoteMaxPacket: 32768, initialWindow: 1 << 20, maxPacket: 32768)
    }

    func testOneReadIsOneVectoredDelivery() throws {
        let host = FakeHost(loop: try makeLoop())
        let channel = makeChannel(host)
        let r = VectorRecorder()
        channel.delegate = r
        let parts = (0..<5).map { makePattern(count: 1000 + $0, seed: $0) }
        // The pieces must be read during delivery, as they would be from the receive buffer.
        var storage = parts
        try host.batch {
            for i in storage.indices { try storage[i].withUnsafeBytes { try channel.receiveData($0) } }
        }
        XCTAssertEqual(r.calls, [5])
        XCTAssertEqual(r.received, parts.flatMap { $0 })
        storage = []
    }

    func testPausedMidReadKeepsOrder() throws {
        let host = FakeHost(loop: try makeLoop())
        let channel = makeChannel(host)
        let r = VectorRecorder()
        channel.delegate = r
        let a = makePattern(count: 3000, seed: 1), b = makePattern(count: 2000, seed: 2), c = makePattern(count: 1000, seed: 3)
        try host.batch {
            try a.withUnsafeBytes { try channel.receiveData($0) }
            channel.pauseReading()             // the consumer fills up mid-read
            try b.withUnsafeBytes { try channel.receiveData($0) }
        }
        XCTAssertEqual(r.received, [])
        try host.batch { try c.withUnsafeBytes { try channel.receiveData($0) } }
        XCTAssertEqual(r.received, [])
        channel.resumeReading()
        XCTAssertEqual(r.received, a + b + c)
    }

    func testDataEOFAndCloseInOneReadDeliversTheDataFirst() throws {
        let host = FakeHost(loop: try makeLoop())
        let channel = makeChannel(host)
        let r = VectorRecorder()
        channel.delegate = r
        let data = makePattern(count: 5000, seed: 4)
        try host.batch {
            try data.withUnsafeBytes { try channel.receiveData($0) }
            channel.receiveEOF()
            channel.receiveClose()
        }
        XCTAssertEqual(r.received, data)
        XCTAssertEqual(r.events, ["data", "eof", "close"])
    }

    func testCloseWhilePausedStillDeliversWhatWasHeld() throws {
        let host = FakeHost(loop: try makeLoop())
        let channel = makeChannel(host)
        let r = VectorRecorder()
        r.pauseAfterRead = true
        channel.delegate = r
        let a = makePattern(count: 1000, seed: 5), b = makePattern(count: 1000, seed: 6)
        try host.batch { try a.withUnsafeBytes { try channel.receiveData($0) } }
        try host.batch { try b.withUnsafeBytes { try channel.receiveData($0) } }
        XCTAssertEqual(r.received, a)
        host.batch { channel.receiveClose() }
        XCTAssertEqual(r.received, a + b)
        XCTAssertEqual(r.events.last, "close")
    }

    func testWindowIsEnforcedAndToppedUp() throws {
        let host = FakeHost(loop: try makeLoop())
        let channel = SSHChannel(host: host, loop: host.loop, type: "x", localID: 0, remoteID: 7, remoteWindow: 0,
                                 remoteMaxPacket: 32768, initialWindow: 65536, maxPacket: 16384)
        let r = VectorRecorder()
        channel.delegate = r
        let chunk = [UInt8](repeating: 1, count: 16384)
        try host.batch { for _ in 0..<3 { try chunk.withUnsafeBytes { try channel.receiveData($0) } } }
        XCTAssertEqual(host.sent.count, 1, "one WINDOW_ADJUST after three packets")
        XCTAssertEqual(host.sent.first?.first, SSHMsg.channelWindowAdjust)
        try host.batch {
            let big = [UInt8](repeating: 2, count: 65536 + 1)
            XCTAssertThrowsError(try big.withUnsafeBytes { try channel.receiveData($0) }) { e in
                XCTAssertTrue("\(e)".contains("bytes of window"), "\(e)")
            }
        }
    }

    /// With the default 2 MiB window the peer gets more window once a quarter is consumed, in
    /// one adjust, not every three packets: each adjust costs the (busy) server a message.
    func testWindowIsToppedUpByQuarters() throws {
        let host = FakeHost(loop: try makeLoop())
        let channel = SSHChannel(host: host, loop: host.loop, type: "x", localID: 0, remoteID: 7, remoteWindow: 0,
                                 remoteMaxPacket: 32768, initialWindow: 2 << 20, maxPacket: 32768)
        let r = VectorRecorder()
        channel.delegate = r
        let packet = [UInt8](repeating: 1, count: 32768)
        for _ in 0..<15 { try host.batch { try packet.withUnsafeBytes { try channel.receiveData($0) } } }
        XCTAssertEqual(host.sent.count, 0, "no adjust before 512 KiB is consumed")
        try host.batch { try packet.withUnsafeBytes { try channel.receiveData($0) } }
        XCTAssertEqual(host.sent.count, 1)
        let adjust = host.sent[0]
        XCTAssertEqual(adjust.first, SSHMsg.channelWindowAdjust)
        XCTAssertEqual(Array(adjust[5..<9]), [0, 8, 0, 0], "grants the 512 KiB consumed")
        XCTAssertEqual(channel.localWindow, 2 << 20)
    }
}
