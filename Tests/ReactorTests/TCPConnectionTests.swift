import CShims
import Glibc
import XCTest
@testable import Reactor

final class TCPConnectionTests: XCTestCase {
    /// Accepts connections and keeps them, reading nothing until told to.
    final class SilentServer: ByteStreamDelegate {
        let loop: EventLoop
        var listener: TCPListener!
        var accepted: [TCPConnection] = []
        var drained = 0
        init(loop: EventLoop) throws {
            self.loop = loop
            listener = try TCPListener(loop: loop, address: SocketAddress(ip: "127.0.0.1", port: 0)) { [unowned self] fd, peer in
                guard let c = try? TCPConnection(loop: self.loop, acceptedFD: fd, peer: peer, delegate: self) else { return }
                c.pauseReading()
                self.accepted.append(c)
            }
        }
        func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) { drained += bytes.count }
        func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) {}
    }

    func testBackpressureStopsAtHighWaterMarkAndResumesWhenPeerDrains() throws {
        let loop = try makeLoop()
        let server = try SilentServer(loop: loop)
        let client = Recorder()
        let conn = try TCPConnection.connect(loop: loop, to: SocketAddress(ip: "127.0.0.1", port: server.listener.port),
                                             timeout: .seconds(5), delegate: client)
        conn.highWaterMark = 256 * 1024
        conn.lowWaterMark = 64 * 1024
        let block = [UInt8](repeating: 0x5a, count: 16 * 1024)
        var produced = 0
        // The producer writes only while the connection says it is writable.
        func produce(_ s: ByteStream) {
            while s.isWritable && produced < 512 * 1024 * 1024 { s.write(block); produced += block.count }
        }
        client.onOpen = produce
        client.onWritable = { s, writable in if writable { produce(s) } }
        XCTAssertTrue(loop.run(until: { client.writabilityEvents == [false] }, timeout: .seconds(20)))
        XCTAssertTrue(loop.run(until: { !server.accepted.isEmpty }, timeout: .seconds(5)))
        // Give the socket every chance to flush; the queue must stay put since nobody reads.
        loop.run(until: { false }, timeout: .milliseconds(200))
        XCTAssertGreaterThanOrEqual(conn.queuedBytes, conn.highWaterMark)
        XCTAssertLessThan(conn.queuedBytes, conn.highWaterMark + block.count, "the producer kept writing past the mark")
        let stalledAt = produced
        XCTAssertLessThan(stalledAt, 64 * 1024 * 1024, "the kernel buffers should not hold this much")

        server.accepted[0].resumeReading()
        XCTAssertTrue(loop.run(until: { client.writabilityEvents.count >= 2 }, timeout: .seconds(20)))
        XCTAssertEqual(client.writabilityEvents.prefix(2), [false, true])
        XCTAssertGreaterThan(produced, stalledAt, "writing resumed")
        conn.close(nil)
    }

    /// Vectored writes: pieces go out in order with writev, and what the socket does not take
    /// (the echo server stops reading while its replies back up) is queued from the right piece
    /// and offset.
    func testVectorWriteKeepsOrderThroughPartialWrites() throws {
        let loop = try makeLoop()
        let server = try EchoServer(loop: loop)
        let client = Recorder()
        let conn = try TCPConnection.connect(loop: loop, to: server.address, timeout: .seconds(5), delegate: client)
        XCTAssertTrue(loop.run(until: { client.opened }, timeout: .seconds(5)))
        var expected: [UInt8] = []
        var pieces: [[UInt8]] = []
        for i in 0..<40 {
            let piece = makePattern(count: [0, 1, 777, 32 * 1024, 100_000][i % 5] + i, seed: i)
            pieces.append(piece)
            expected.append(contentsOf: piece)
        }
        for _ in 0..<4 {
            // Pointers stay valid for the call only, as with a channel's batch.
            func withAll(_ i: Int, _ acc: [UnsafeRawBufferPointer], _ body: ([UnsafeRawBufferPointer]) -> Void) {
                if i == pieces.count { body(acc); return }
                pieces[i].withUnsafeBytes { withAll(i + 1, acc + [$0], body) }
            }
            withAll(0, []) { conn.write(vector: $0) }
        }
        XCTAssertGreaterThan(conn.queuedBytes, 0, "the socket should not take it all at once")
        let all = expected + expected + expected + expected
        XCTAssertTrue(loop.run(until: { client.received.count >= all.count }, timeout: .seconds(20)))
        XCTAssertTrue(client.received == all)
        conn.close(nil)
    }

    func testClientHalfCloseStillReceivesTheReply() throws {
        let loop = try makeLoop()
        // Server: read until EOF, then answer with what it got, reversed, and close.
        final class ReplyAfterEOF: ByteStreamDelegate {
            var got: [UInt8] = []
            func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) { got.append(contentsOf: bytes) }
            func streamDidReadEOF(_ stream: ByteStream) {
                stream.write(Array(got.reversed()))
                (stream as! TCPConnection).closeWhenFlushed()
            }
            func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) {}
        }
        let handler = ReplyAfterEOF()
        var serverConns: [TCPConnection] = []
        let listener = try TCPListener(loop: loop, address: SocketAddress(ip: "127.0.0.1", port: 0)) { fd, peer in
            serverConns.append(try! TCPConnection(loop: loop, acceptedFD: fd, peer: peer, delegate: handler))
        }
        let client = Recorder()
        client.onOpen = { s in s.write(Array("hello".utf8)); s.shutdownWrite() }
        let conn = try TCPConnection.connect(loop: loop, to: listener.address, timeout: .seconds(5), delegate: client)
        XCTAssertTrue(loop.run(until: { client.isClosed }, timeout: .seconds(5)))
        XCTAssertEqual(String(decoding: client.received, as: UTF8.self), "olleh")
        XCTAssertTrue(client.eof)
        XCTAssertNil(client.closedError)
        _ = conn
        listener.close()
    }

    /// A server that writes "unread" and shuts its write side, and a client that pauses reading
    /// as soon as it is connected (and, with `clientShutsWrite`, shuts its own write side too).
    private final class PausedClientAgainstHalfClosingServer {
        let serverSide = Recorder()
        let client = Recorder()
        var serverConn: TCPConnection?
        let listener: TCPListener
        let conn: TCPConnection

        init(loop: EventLoop, clientShutsWrite: Bool) throws {
            serverSide.onEOF = { _ in }
            var accepted: ((TCPConnection) -> Void)?
            listener = try TCPListener(loop: loop, address: SocketAddress(ip: "127.0.0.1", port: 0)) { [serverSide] fd, peer in
                let c = try! TCPConnection(loop: loop, acceptedFD: fd, peer: peer, delegate: serverSide)
                c.write(Array("unread".utf8))
                c.shutdownWrite()
                accepted?(c)
            }
            client.onOpen = { s in
                s.pauseReading()
                if clientShutsWrite { s.shutdownWrite() }
            }
            conn = try TCPConnection.connect(loop: loop, to: listener.address, timeout: .seconds(5), delegate: client)
            accepted = { [unowned self] c in self.serverConn = c }
        }

        /// Turns of the loop over a quiet stretch: a handful, not one per wait that returns at once.
        func quietTurns(_ loop: EventLoop) -> UInt64 {
            let before = loop.iterations
            _ = loop.run(until: { false }, timeout: .milliseconds(300))
            return loop.iterations - before
        }
    }

    /// Both directions shut while our reader is paused: epoll reports the hangup whatever the
    /// interest, which once woke the loop on every turn (a busy spin) until reading resumed.
    func testHangupWhilePausedDoesNotSpinAndResumeDeliversTheRest() throws {
        let loop = try makeLoop()
        let pair = try PausedClientAgainstHalfClosingServer(loop: loop, clientShutsWrite: true)
        XCTAssertTrue(loop.run(until: { pair.serverSide.eof && pair.serverConn != nil }, timeout: .seconds(5)))
        XCTAssertLessThan(pair.quietTurns(loop), 50, "the loop kept waking for the hangup")
        XCTAssertEqual(pair.client.received, [])
        pair.conn.resumeReading()
        XCTAssertTrue(loop.run(until: { pair.client.isClosed }, timeout: .seconds(5)))
        XCTAssertEqual(String(decoding: pair.client.received, as: UTF8.self), "unread")
        XCTAssertTrue(pair.client.eof)
        pair.listener.close()
    }

    /// The peer shut only its write side while our reader is paused: epoll reports nothing for
    /// that, io_uring's poll always reports EPOLLRDHUP, which must not wake the loop on every
    /// turn either; writing and resuming still work afterwards.
    func testPeerHalfCloseWhilePausedDoesNotSpin() throws {
        let loop = try makeLoop()
        let pair = try PausedClientAgainstHalfClosingServer(loop: loop, clientShutsWrite: false)
        XCTAssertTrue(loop.run(until: { pair.serverConn != nil && pair.client.opened }, timeout: .seconds(5)))
        _ = loop.run(until: { false }, timeout: .milliseconds(50))   // the FIN arrives
        XCTAssertLessThan(pair.quietTurns(loop), 50, "the loop kept waking for the half-close")
        pair.conn.write(Array("still open".utf8))
        pair.conn.shutdownWrite()
        XCTAssertTrue(loop.run(until: { pair.serverSide.eof }, timeout: .seconds(5)))
        XCTAssertEqual(String(decoding: pair.serverSide.received, as: UTF8.self), "still open")
        pair.conn.resumeReading()
        XCTAssertTrue(loop.run(until: { pair.client.isClosed }, timeout: .seconds(5)))
        XCTAssertEqual(String(decoding: pair.client.received, as: UTF8.self), "unread")
        pair.listener.close()
    }

    func testServerHalfCloseStillReceivesTheClientsData() throws {
        let loop = try makeLoop()
        // The server says its piece and shuts down writing, then keeps reading until the client ends.
        let serverSide = Recorder()
        serverSide.onEOF = { s in s.close(nil) }
        var serverConn: TCPConnection?
        let listener = try TCPListener(loop: loop, address: SocketAddress(ip: "127.0.0.1", port: 0)) { fd, peer in
            let c = try! TCPConnection(loop: loop, acceptedFD: fd, peer: peer, delegate: serverSide)
            c.write(Array("greeting".utf8))
            c.shutdownWrite()
            serverConn = c
        }
        let client = Recorder()
        client.onEOF = { s in
            // The server finished; we may still send.
            s.write(Array("late reply".utf8))
            s.shutdownWrite()
        }
        let conn = try TCPConnection.connect(loop: loop, to: listener.address, timeout: .seconds(5), delegate: client)
        XCTAssertTrue(loop.run(until: { serverSide.isClosed && client.isClosed }, timeout: .seconds(5)))
        XCTAssertEqual(String(decoding: client.received, as: UTF8.self), "greeting")
        XCTAssertEqual(String(decoding: serverSide.received, as: UTF8.self), "late reply")
        XCTAssertNil(client.closedError)
        _ = (conn, serverConn)
        listener.close()
    }

    func testConnectRefusedIsConnectErrorRefused() throws {
        let loop = try makeLoop()
        // Take a free port, then release it so nothing listens there.
        let probe = try TCPListener(loop: loop, address: SocketAddress(ip: "127.0.0.1", port: 0)) { fd, _ in Glibc.close(fd) }
        let port = probe.port
        probe.close()
        let client = Recorder()
        do {
            _ = try TCPConnection.connect(loop: loop, to: SocketAddress(ip: "127.0.0.1", port: port), timeout: .seconds(5), delegate: client)
            XCTAssertTrue(loop.run(until: { client.isClosed }, timeout: .seconds(5)))
            XCTAssertEqual(client.closedError, .connect(.refused(target: "127.0.0.1:\(port)")))
            XCTAssertEqual(client.closedError?.description, "connect to 127.0.0.1:\(port): ECONNREFUSED (Connection refused)")
        } catch let e as ConnectError {
            XCTAssertEqual(e, .refused(target: "127.0.0.1:\(port)"))
        }
        XCTAssertFalse(client.opened)
    }

    func testConnectTimeoutAgainstAFullAcceptQueue() throws {
        let loop = try makeLoop()
        // listen(fd, 0) and never accept: once the queue is full, further SYNs go unanswered.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = try SocketAddress(ip: "127.0.0.1", port: 0)
        XCTAssertEqual(shim_bind(fd, &addr.storage, addr.length), 0)
        XCTAssertEqual(listen(fd, 0), 0)
        defer { Glibc.close(fd) }
        let target = Socket.localAddress(fd: fd)!
        var fillers: [Recorder] = []
        var conns: [TCPConnection] = []
        for _ in 0..<3 {
            let r = Recorder()
            fillers.append(r)
            conns.append(try TCPConnection.connect(loop: loop, to: target, timeout: .seconds(30), delegate: r))
        }
        loop.run(until: { false }, timeout: .milliseconds(300))
        let client = Recorder()
        _ = try TCPConnection.connect(loop: loop, to: target, timeout: .milliseconds(500), delegate: client)
        XCTAssertTrue(loop.run(until: { client.isClosed }, timeout: .seconds(10)))
        XCTAssertEqual(client.closedError, .connect(.timedOut(target: "\(target)", after: .milliseconds(500))))
        for c in conns { c.close(nil) }
    }

    func testPeerResetDuringWriteClosesWithAnError() throws {
        let loop = try makeLoop()
        var accepted: Int32 = -1
        let listener = try TCPListener(loop: loop, address: SocketAddress(ip: "127.0.0.1", port: 0)) { fd, _ in accepted = fd }
        let client = Recorder()
        let block = [UInt8](repeating: 1, count: 64 * 1024)
        var writes = 0
        func produce(_ s: ByteStream) { while s.isWritable && writes < 10_000 { s.write(block); writes += 1 } }
        client.onOpen = produce
        client.onWritable = { s, w in if w { produce(s) } }
        let conn = try TCPConnection.connect(loop: loop, to: listener.address, timeout: .seconds(5), delegate: client)
        XCTAssertTrue(loop.run(until: { accepted >= 0 && writes > 0 }, timeout: .seconds(5)))
        // SO_LINGER with a zero timeout makes close() send RST.
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(accepted, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        Glibc.close(accepted)
        // Keep writing so the reset is met mid-write.
        client.onRead = nil
        XCTAssertTrue(loop.run(until: { client.isClosed }, timeout: .seconds(10)))
        guard case .system(let e)? = client.closedError else { return XCTFail("expected a system error, got \(String(describing: client.closedError))") }
        XCTAssertTrue(["ECONNRESET", "EPIPE"].contains(e.errnoName), e.description)
        XCTAssertEqual(conn.state, .closed)
        listener.close()
    }
}
