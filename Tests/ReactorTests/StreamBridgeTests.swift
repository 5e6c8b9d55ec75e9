import XCTest
@testable import Reactor

final class StreamBridgeTests: XCTestCase {
    /// The source sends everything and ends while the local service is not reading yet: the
    /// bridge must let the HostConnection (how tunnels dial local services) send what it still
    /// holds before closing. `close` there once dropped up to its high-water mark of data.
    func testEndOfStreamFlushesWhatAHostConnectionStillHolds() throws {
        let loop = try makeLoop()
        let resolver = try Resolver(loop: loop)
        let payload = makePattern(count: 4 << 20, seed: 7)

        let service = Recorder()
        service.onEOF = { s in s.close(nil) }
        var serviceConn: TCPConnection?
        let serviceListener = try TCPListener(loop: loop, address: SocketAddress(ip: "127.0.0.1", port: 0)) { fd, peer in
            guard let c = try? TCPConnection(loop: loop, acceptedFD: fd, peer: peer, delegate: service) else { return }
            c.pauseReading()   // a slow local service: reads only later
            serviceConn = c
        }
        var bridge: StreamBridge?
        var inbound: TCPConnection?
        let bridgeListener = try TCPListener(loop: loop, address: SocketAddress(ip: "127.0.0.1", port: 0)) { fd, peer in
            guard let a = try? TCPConnection(loop: loop, acceptedFD: fd, peer: peer, delegate: nil) else { return }
            let h = HostConnection(loop: loop, resolver: resolver, host: "127.0.0.1", port: serviceListener.address.port,
                                   timeout: .seconds(5), delegate: nil)
            let b = StreamBridge(a, h)
            b.start()
            bridge = b
            inbound = a
        }
        let source = Recorder()
        source.onOpen = { s in s.write(payload); s.shutdownWrite() }
        source.onEOF = { s in s.close(nil) }
        let client = try TCPConnection.connect(loop: loop, to: bridgeListener.address, timeout: .seconds(5), delegate: source)
        // Everything has left the source and the bridge has seen its end.
        XCTAssertTrue(loop.run(until: { client.queuedBytes == 0 && serviceConn != nil && inbound?.state == .closed },
                               timeout: .seconds(20)))
        serviceConn?.resumeReading()
        XCTAssertTrue(loop.run(until: { service.isClosed }, timeout: .seconds(20)), "received \(service.received.count)")
        XCTAssertEqual(service.received.count, payload.count)
        XCTAssertTrue(service.received == payload)
        XCTAssertTrue(bridge?.isFinished ?? false)
        serviceListener.close()
        bridgeListener.close()
    }

    /// Two bridges sharing one meter (a forward's total): the bytes are in the meter as soon as
    /// they move, while both connections are still open, and each bridge keeps its own count.
    func testASharedMeterCountsBytesOfOpenConnectionsAsTheyMove() throws {
        let loop = try makeLoop()
        let resolver = try Resolver(loop: loop)
        let echo = try EchoServer(loop: loop)
        defer { echo.close() }
        let meter = TrafficMeter()
        var bridges: [StreamBridge] = []
        let listener = try TCPListener(loop: loop, address: SocketAddress(ip: "127.0.0.1", port: 0)) { fd, peer in
            guard let a = try? TCPConnection(loop: loop, acceptedFD: fd, peer: peer, delegate: nil) else { return }
            let h = HostConnection(loop: loop, resolver: resolver, host: "127.0.0.1", port: echo.port, timeout: .seconds(5), delegate: nil)
            let b = StreamBridge(a, h, meter: meter)
            b.start()
            bridges.append(b)
        }
        defer { listener.close() }
        let sizes = [300_000, 700_001]
        var clients: [(TCPConnection, Recorder)] = []
        for (i, n) in sizes.enumerated() {
            let r = Recorder()
            let payload = makePattern(count: n, seed: i)
            r.onOpen = { s in s.write(payload) }
            clients.append((try TCPConnection.connect(loop: loop, to: listener.address, timeout: .seconds(5), delegate: r), r))
        }
        XCTAssertTrue(loop.run(until: { zip(clients, sizes).allSatisfy { $0.0.1.received.count == $0.1 } }, timeout: .seconds(20)))
        let total = UInt64(sizes.reduce(0, +))
        XCTAssertEqual(meter.firstToSecond, total)
        XCTAssertEqual(meter.secondToFirst, total)
        XCTAssertEqual(bridges.count, 2)
        XCTAssertFalse(bridges.contains { $0.isFinished })
        XCTAssertEqual(Set(bridges.map(\.bytesFirstToSecond)), Set(sizes.map(UInt64.init)))
        for (c, _) in clients { c.close(nil) }
        XCTAssertTrue(loop.run(until: { bridges.allSatisfy(\.isFinished) }, timeout: .seconds(10)))
        XCTAssertEqual(meter.firstToSecond, total)
    }

    /// The tunnel side sends ~2 MB and closes (as an SSH channel's CLOSE arrives, after data
    /// the window allowed) while the local service is alive but never reads: the bridge may
    /// not hold that service's socket and the bytes queued for it forever. At its flush
    /// deadline it closes the service's side and ends. Before, ten such connections kept
    /// ~2 MB each for as long as the service lived.
    func testFlushToAPeerThatNeverReadsEndsAtItsDeadline() throws {
        let loop = try makeLoop()
        let resolver = try Resolver(loop: loop)
        let service = Recorder()
        var serviceConn: TCPConnection?
        let serviceListener = try TCPListener(loop: loop, address: SocketAddress(ip: "127.0.0.1", port: 0)) { fd, peer in
            guard let c = try? TCPConnection(loop: loop, acceptedFD: fd, peer: peer, delegate: service) else { return }
            c.pauseReading()   // alive, never reads
            serviceConn = c
        }
        defer { serviceListener.close() }
        let (tunnelPeer, channel) = MemoryStream.pair(loop: loop)
        let local = HostConnection(loop: loop, resolver: resolver, host: "127.0.0.1", port: serviceListener.address.port,
                                   timeout: .seconds(5), delegate: nil)
        let bridge = StreamBridge(channel, local)
        bridge.flushTimeout = .milliseconds(300)
        bridge.start()
        XCTAssertTrue(loop.run(until: { serviceConn != nil && local.connection != nil }, timeout: .seconds(10)))

        tunnelPeer.write([UInt8](repeating: 0x5A, count: 16 << 20))
        tunnelPeer.close(nil)
        // The bridge saw the tunnel side end with bytes still queued for the service.
        var heldAtEnd = 0
        XCTAssertTrue(loop.run(until: {
            if heldAtEnd == 0 { heldAtEnd = local.queuedBytes }
            return bridge.isFinished
        }, timeout: .seconds(20)), "the bridge still holds \(local.queuedBytes) bytes for a service that does not read")
        XCTAssertGreaterThan(heldAtEnd, 1 << 20, "nothing was left to flush: the test proves nothing")
        XCTAssertEqual(local.queuedBytes, 0)
        serviceConn?.close(nil)
    }
}
