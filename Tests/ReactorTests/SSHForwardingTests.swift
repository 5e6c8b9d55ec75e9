import Foundation
import XCTest
@testable import Reactor

/// Sends `total` bytes of a known pattern and checks that the same bytes come back.
final class TransferClient: ByteStreamDelegate {
    let total: Int
    let seed: Int
    private(set) var sent = 0
    private(set) var received = 0
    private(set) var mismatchAt: Int?
    private(set) var closed = false
    private(set) var error: ConnectionError?
    var conn: TCPConnection?
    private var chunk = [UInt8](repeating: 0, count: 64 * 1024)

    init(total: Int, seed: Int) { self.total = total; self.seed = seed }

    static func byte(_ i: Int, _ seed: Int) -> UInt8 { UInt8(truncatingIfNeeded: (i &* 2654435761 &+ seed) >> 11) }

    var done: Bool { received >= total || mismatchAt != nil || closed }
    var ok: Bool { received == total && mismatchAt == nil }

    func start(loop: EventLoop, port: Int) throws {
        conn = try TCPConnection.connect(loop: loop, to: SocketAddress(ip: "127.0.0.1", port: port), timeout: .seconds(5), delegate: self)
    }

    func streamDidOpen(_ stream: ByteStream) { pump(stream) }
    func stream(_ stream: ByteStream, writabilityChanged writable: Bool) { if writable { pump(stream) } }

    private func pump(_ stream: ByteStream) {
        while sent < total && stream.isWritable {
            let n = min(chunk.count, total - sent)
            for i in 0..<n { chunk[i] = Self.byte(sent + i, seed) }
            chunk.withUnsafeBytes { stream.write(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            sent += n
        }
    }

    func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {
        for (i, b) in bytes.enumerated() where mismatchAt == nil && b != Self.byte(received + i, seed) {
            mismatchAt = received + i
        }
        received += bytes.count
        if received >= total { stream.close() }
    }

    func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) { closed = true; self.error = error; conn = nil }
}

final class SSHForwardingTests: XCTestCase {
    /// A test sshd, a loop, a connection with password auth, and one reverse forward to a local
    /// echo server on `port`. `stop` ends the echo server and sshd.
    private struct Forwarding {
        let sshd: SSHDPeer, loop: EventLoop, conn: SSHConnection, fwd: SSHReverseForwarder
        let d: RecordingSSHDelegate, echo: EchoServer, port: Int, events: BridgeEvents
        func stop() { echo.close(); sshd.stop() }
    }

    /// Starts a `Forwarding`; nil (after recording why) when the forward could not be set up.
    /// `localPort` replaces the echo server as the forward's target.
    private func forwarding(config: SSHClientConfig? = nil, sshdConfig: String = "", localPort: Int? = nil,
                            dialTimeout: TimeAmount? = nil) throws -> Forwarding? {
        let sshd = try SSHDPeer(extraConfig: sshdConfig)
        let loop: EventLoop, echo: EchoServer
        do {
            loop = try makeLoop()
            echo = try EchoServer(loop: loop)
        } catch { sshd.stop(); throw error }
        func giveUp() { echo.close(); sshd.stop() }
        let d = RecordingSSHDelegate()
        let conn: SSHConnection
        do { conn = try sshConnect(loop: loop, port: sshd.port, config: config ?? passwordConfig(), delegate: d) } catch { giveUp(); throw error }
        XCTAssertTrue(d.authenticated, "\(String(describing: d.error))\n\(sshd.log)")
        let resolver: Resolver
        do { resolver = try Resolver(loop: loop) } catch { giveUp(); throw error }
        let bridges = ChannelBridges(loop: loop, resolver: resolver)
        let events = BridgeEvents()
        bridges.observer = events
        let fwd = SSHReverseForwarder(connection: conn, forwards: [
            SSHForward(remoteAddress: "127.0.0.1", remotePort: 0, localHost: "127.0.0.1", localPort: localPort ?? echo.port, name: "echo",
                       dialTimeout: dialTimeout)],
                                      bridges: bridges)
        d.onChannelOpen = { request in
            if !fwd.handle(request) { request.reject(text: "unexpected") }
        }
        var results: [Result<Int, SSHError>]?
        fwd.start { results = $0 }
        XCTAssertTrue(loop.run(until: { results != nil }, timeout: .seconds(10)), "no tcpip-forward reply")
        guard case .success(let port)? = results?.first else {
            XCTFail("tcpip-forward failed: \(String(describing: results))")
            giveUp()
            return nil
        }
        XCTAssertGreaterThan(port, 0)
        guard port > 0 else { giveUp(); return nil }
        return Forwarding(sshd: sshd, loop: loop, conn: conn, fwd: fwd, d: d, echo: echo, port: port, events: events)
    }

    private func transfer(loop: EventLoop, port: Int, clients: Int, bytes: Int, timeout: Int64 = 60) throws -> [TransferClient] {
        let all = (0..<clients).map { TransferClient(total: bytes, seed: $0 * 977) }
        for c in all { try c.start(loop: loop, port: port) }
        XCTAssertTrue(loop.run(until: { all.allSatisfy { $0.done } }, timeout: .seconds(timeout)), "transfer did not finish")
        for (i, c) in all.enumerated() {
            XCTAssertTrue(c.ok, "client \(i): received \(c.received)/\(bytes), mismatch at \(String(describing: c.mismatchAt)), error \(String(describing: c.error))")
        }
        return all
    }

    func testReverseForwardMovesDataBothWays() throws {
        guard let f = try forwarding() else { return }
        defer { f.stop() }
        let (loop, conn, fwd, d, port) = (f.loop, f.conn, f.fwd, f.d, f.port)
        // 100 MiB each way, content checked (the issue's size; SSH_TRANSFER_MIB changes it).
        let mib = Int(ProcessInfo.processInfo.environment["SSH_TRANSFER_MIB"] ?? "") ?? 100
        let started = Date()
        _ = try transfer(loop: loop, port: port, clients: 1, bytes: mib * 1024 * 1024, timeout: 300)
        print("ssh reverse forward: \(mib) MiB each way in \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
        XCTAssertTrue(loop.run(until: { fwd.bridges.active == 0 }, timeout: .seconds(10)), "bridge still open")
        XCTAssertEqual(fwd.bridges.started, 1)
        // The echo sends everything back as fast as it comes: encoded output waiting for the
        // link stays within the limit (plus one packet), not the 2 MiB window sshd gives.
        let peak = conn.session.transport.peakOutput
        XCTAssertGreaterThan(peak, 0)
        XCTAssertLessThanOrEqual(peak, SSHSession.outputLimit + 36 * 1024, "output peaked at \(peak) bytes")
        var cancelled: Bool?
        conn.cancelTCPIPForward(address: "127.0.0.1", port: port) { cancelled = $0 }
        XCTAssertTrue(loop.run(until: { cancelled != nil }, timeout: .seconds(5)))
        XCTAssertEqual(cancelled, true)
        XCTAssertFalse(canConnect(port), "sshd still listens after cancel-tcpip-forward")
        XCTAssertFalse(d.disconnected, "\(String(describing: d.error))")
        conn.close()
    }

    func testHundredConcurrentForwardedConnections() throws {
        guard let f = try forwarding() else { return }
        defer { f.stop() }
        let (loop, conn, fwd, d, port) = (f.loop, f.conn, f.fwd, f.d, f.port)
        // The hundred channels open in a burst, so their dials overlap: more than the default
        // 64 dials in progress would be refused (testDialsOverTheLimitAreRefusedWithResourceShortage).
        fwd.bridges.maxPendingDials = 100
        _ = try transfer(loop: loop, port: port, clients: 100, bytes: 64 * 1024, timeout: 60)
        XCTAssertTrue(loop.run(until: { fwd.bridges.active == 0 && conn.openChannelCount == 0 }, timeout: .seconds(10)),
                      "bridges \(fwd.bridges.active) channels \(conn.openChannelCount) still open")
        XCTAssertEqual(fwd.bridges.started, 100)
        // The owner heard of every connection, with what each moved (64 KiB there and back).
        XCTAssertEqual(f.events.opened, 100)
        XCTAssertEqual(f.events.closed, 100)
        XCTAssertEqual(f.events.traffic["echo"], ForwardTraffic(toLocal: 100 * 65536, toTunnel: 100 * 65536))
        XCTAssertTrue(f.events.dialFailures.isEmpty)
        XCTAssertFalse(d.disconnected, "\(String(describing: d.error))")
        conn.close()
    }

    /// The remote client leaves while its local connection is still being dialled: the dial is
    /// abandoned with the channel. (A dial that completed later once started a bridge on the
    /// closed channel, which then held the local connection open for good.)
    func testClientThatLeavesDuringTheDialAbandonsIt() throws {
        let slowService = try FullAcceptQueue()
        defer { slowService.close() }
        guard let f = try forwarding(localPort: slowService.port) else { return }
        defer { f.stop() }
        let bridges = f.fwd.bridges
        let client = TransferClient(total: 0, seed: 0)
        try client.start(loop: f.loop, port: f.port)
        XCTAssertTrue(f.loop.run(until: { bridges.dialsInProgress == 1 }, timeout: .seconds(10)), "no dial started")
        client.conn?.close()
        // From now on a dial still going completes in about a second; an abandoned one never.
        slowService.release()
        XCTAssertTrue(f.loop.run(until: { bridges.dialsInProgress == 0 }, timeout: .seconds(10)), "the dial goes on")
        f.loop.run(until: { bridges.active > 0 }, timeout: .seconds(2))
        XCTAssertEqual(bridges.active, 0)
        XCTAssertEqual(f.events.opened, 0)
        XCTAssertTrue(f.events.dialFailures.isEmpty, "\(f.events.dialFailures)")
        XCTAssertTrue(f.loop.run(until: { f.conn.openChannelCount == 0 }, timeout: .seconds(10)), "channel still open")
        XCTAssertFalse(f.d.disconnected, "\(String(describing: f.d.error))")
        f.conn.close()
    }

    /// A forward whose local address refuses: the forwarded connection is closed, the owner
    /// hears which forward and target failed, and the SSH connection carries on.
    func testRefusedLocalAddressClosesOnlyThatConnection() throws {
        let refusingPort = try freeLocalPort()   // nothing listens there
        guard let f = try forwarding(localPort: refusingPort) else { return }
        defer { f.stop() }
        let client = TransferClient(total: 1024, seed: 1)
        try client.start(loop: f.loop, port: f.port)
        XCTAssertTrue(f.loop.run(until: { client.closed && f.events.dialFailures.count == 1 }, timeout: .seconds(10)),
                      "closed \(client.closed), failures \(f.events.dialFailures)")
        XCTAssertEqual(client.received, 0)
        XCTAssertEqual(f.events.dialFailures.first?.forward, "echo")
        XCTAssertEqual(f.events.dialFailures.first?.target, "127.0.0.1:\(refusingPort)")
        XCTAssertEqual(f.events.opened, 0)
        XCTAssertTrue(f.loop.run(until: { f.conn.openChannelCount == 0 }, timeout: .seconds(10)), "channel still open")
        XCTAssertFalse(f.d.disconnected, "\(String(describing: f.d.error))")
        // The connection still works: a global request is answered.
        var replied = false
        f.conn.sendGlobalRequest("keepalive@openssh.com", wantReply: true) { _ in replied = true }
        XCTAssertTrue(f.loop.run(until: { replied }, timeout: .seconds(10)))
        f.conn.close()
    }

    /// A client connection to the forward's remote port; `Recorder` hears what comes back.
    private func openClient(_ f: Forwarding) throws -> (TCPConnection, Recorder) {
        let r = Recorder()
        let c = try TCPConnection.connect(loop: f.loop, to: SocketAddress(ip: "127.0.0.1", port: f.port), timeout: .seconds(5), delegate: r)
        return (c, r)
    }

    /// At `maxChannels`, sshd's next channel is refused with RFC 4254's `resource shortage`
    /// before anything is dialled (its client is disconnected), and counted; the open ones carry
    /// on, and once one closes a new channel is taken again. Before, nothing capped channels.
    func testChannelsOverTheLimitAreRefusedWithResourceShortage() throws {
        guard let f = try forwarding() else { return }
        defer { f.stop() }
        let bridges = f.fwd.bridges
        bridges.maxChannels = 2
        let first = try openClient(f), second = try openClient(f)
        XCTAssertTrue(f.loop.run(until: { bridges.active == 2 }, timeout: .seconds(10)))
        let (_, third) = try openClient(f)
        XCTAssertTrue(f.loop.run(until: { third.isClosed }, timeout: .seconds(10)), "the channel over the limit was not refused")
        XCTAssertEqual(bridges.refusedAtChannelLimit, 1)
        XCTAssertEqual(bridges.meters.meter("echo").refusedAtChannelLimit, 1, "the forward's meter (kept across sessions) counts it")
        XCTAssertEqual(f.events.refused.map(\.limit), [.channels])
        XCTAssertEqual(f.events.refused.first?.forward, "echo")
        XCTAssertEqual(bridges.started, 2)
        XCTAssertEqual(f.echo.accepted, 2, "a local connection was dialled for the refused channel")
        // sshd heard why: its log names the reason code we sent.
        XCTAssertTrue(f.loop.spin(until: { f.sshd.log.contains("resource shortage") }, timeout: .seconds(10)), f.sshd.log.suffix(800).description)
        // The open channels still work.
        first.0.write("ping")
        XCTAssertTrue(f.loop.run(until: { first.1.received == Array("ping".utf8) }, timeout: .seconds(10)))
        // Room again once one closes.
        first.0.close(nil)
        XCTAssertTrue(f.loop.run(until: { bridges.active == 1 }, timeout: .seconds(10)))
        let fourth = try openClient(f)
        XCTAssertTrue(f.loop.run(until: { bridges.active == 2 && bridges.started == 3 }, timeout: .seconds(10)))
        XCTAssertFalse(f.d.disconnected, "\(String(describing: f.d.error))")
        second.0.close(nil)
        fourth.0.close(nil)
        f.conn.close()
    }

    /// At `maxPendingDials` (here one dial hangs on a full accept queue), the next channel is
    /// refused the same way and counted apart.
    func testDialsOverTheLimitAreRefusedWithResourceShortage() throws {
        let slowService = try FullAcceptQueue()
        defer { slowService.close() }
        guard let f = try forwarding(localPort: slowService.port) else { return }
        defer { f.stop() }
        let bridges = f.fwd.bridges
        bridges.maxPendingDials = 1
        let waiting = try openClient(f)
        XCTAssertTrue(f.loop.run(until: { bridges.dialsInProgress == 1 }, timeout: .seconds(10)), "no dial started")
        let (_, refused) = try openClient(f)
        XCTAssertTrue(f.loop.run(until: { refused.isClosed }, timeout: .seconds(10)), "the channel over the dial limit was not refused")
        XCTAssertEqual(bridges.refusedAtDialLimit, 1)
        XCTAssertEqual(bridges.meters.meter("echo").refusedAtDialLimit, 1)
        XCTAssertEqual(bridges.refusedAtChannelLimit, 0)
        XCTAssertEqual(f.events.refused.map(\.limit), [.pendingDials])
        XCTAssertEqual(bridges.dialsInProgress, 1)
        XCTAssertTrue(f.loop.spin(until: { f.sshd.log.contains("resource shortage") }, timeout: .seconds(10)), f.sshd.log.suffix(800).description)
        waiting.0.close(nil)
        f.conn.close()
    }

    /// A forward's own dial timeout ends a dial that hangs (a full accept queue), and the
    /// failure names the forward. Before, every dial had the same fixed 10 s.
    func testEachForwardHasItsOwnDialTimeout() throws {
        let slowService = try FullAcceptQueue()
        defer { slowService.close() }
        guard let f = try forwarding(localPort: slowService.port, dialTimeout: .milliseconds(300)) else { return }
        defer { f.stop() }
        f.fwd.bridges.dialTimeout = .seconds(60)   // the default the forward's own timeout overrides
        let (_, client) = try openClient(f)
        XCTAssertTrue(f.loop.run(until: { f.events.dialFailures.count == 1 && client.isClosed }, timeout: .seconds(5)),
                      "the dial did not end at the forward's timeout")
        XCTAssertEqual(f.events.dialFailures.first?.forward, "echo")
        XCTAssertEqual(f.fwd.bridges.dialsInProgress, 0)
        f.conn.close()
    }

    /// Many channels sending at once keep the TCP write queue above its high-water mark, so
    /// writability flips in the middle of our writes (this once sent packets twice: MAC errors).
    func testSixteenBusyChannelsAtOnce() throws {
        guard let f = try forwarding() else { return }
        defer { f.stop() }
        let (loop, conn, d, port) = (f.loop, f.conn, f.d, f.port)
        // Tiny water marks on the SSH connection's socket: writability changes all the time.
        let tcp = try XCTUnwrap(conn.stream as? TCPConnection)
        tcp.highWaterMark = 8 * 1024
        tcp.lowWaterMark = 2 * 1024
        var small: Int32 = 16 * 1024   // and a small socket buffer, so writes are only partly taken
        setsockopt(tcp.fd, SOL_SOCKET, SO_SNDBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        _ = try transfer(loop: loop, port: port, clients: 16, bytes: 2 << 20, timeout: 120)
        XCTAssertFalse(d.disconnected, "\(String(describing: d.error))\n\(f.sshd.log.suffix(500))")
        conn.close()
    }

    func testServerRekeyMidTransfer() throws {
        guard let f = try forwarding(sshdConfig: "RekeyLimit 1M") else { return }
        defer { f.stop() }
        let (loop, conn, d, port) = (f.loop, f.conn, f.d, f.port)
        _ = try transfer(loop: loop, port: port, clients: 2, bytes: 4 * 1024 * 1024)
        XCTAssertGreaterThan(conn.keyExchangeCount, 3, "expected several re-exchanges with RekeyLimit 1M")
        XCTAssertFalse(d.disconnected, "\(String(describing: d.error))")
        conn.close()
    }

    func testClientRekeyMidTransfer() throws {
        var config = rekeyEveryMiBConfig()
        config.transport.algorithms.ciphers = ["chacha20-poly1305@openssh.com"]
        guard let f = try forwarding(config: config) else { return }
        defer { f.stop() }
        let (loop, conn, d, port) = (f.loop, f.conn, f.d, f.port)
        _ = try transfer(loop: loop, port: port, clients: 2, bytes: 4 * 1024 * 1024)
        XCTAssertGreaterThan(conn.keyExchangeCount, 2, "expected client-started re-exchanges")
        XCTAssertFalse(d.disconnected, "\(String(describing: d.error))")
        conn.close()
    }

    /// Password auth, and we ask for new keys after every MiB either way.
    private func rekeyEveryMiBConfig() -> SSHClientConfig {
        var config = passwordConfig()
        config.transport.rekeyAfterBytes = 1024 * 1024
        return config
    }

    /// Streams `bytes` one way through the forward into the echo server, set to only count.
    private func streamIntoSink(loop: EventLoop, port: Int, sink: EchoServer, bytes: Int,
                                eachTurn: @escaping () -> Void = {}) throws -> TCPConnection {
        sink.echoes = false
        let start = sink.receivedBytes
        let sender = Recorder()
        let payload = [UInt8](repeating: 7, count: bytes)
        sender.onOpen = { s in payload.withUnsafeBytes { s.write($0) } }
        let client = try TCPConnection.connect(loop: loop, to: SocketAddress(ip: "127.0.0.1", port: port), timeout: .seconds(5), delegate: sender)
        XCTAssertTrue(loop.run(until: { eachTurn(); return sink.receivedBytes - start >= bytes }, timeout: .seconds(30)),
                      "the sink got \(sink.receivedBytes - start) of \(bytes) bytes")
        return client
    }

    /// Our re-exchanges wait until sshd has (almost) no window left on the channels data flows
    /// to, so it does not buffer its side of the forwards during the exchange; windows reopen
    /// after. With adjusts going on, the window would never drain while the stream lasts.
    func testClientRekeyWaitsForBusyChannelsToDrain() throws {
        var config = rekeyEveryMiBConfig()
        config.acknowledgesPromptly = false
        guard let f = try forwarding(config: config) else { return }
        defer { f.stop() }
        let (loop, conn, d, echo, port) = (f.loop, f.conn, f.d, f.echo, f.port)
        let before = conn.keyExchangeCount
        // With delayed ACKs configured, ACKs are still prompt exactly while keys are exchanged
        // (sshd's kex replies must not wait on our delayed ACKs), and delayed for the bulk data.
        guard let tcp = conn.stream as? TCPConnection else { return XCTFail("not over TCP") }
        var turnsExchanging = 0, promptWhileExchanging = 0, promptOtherwise = 0
        let client = try streamIntoSink(loop: loop, port: port, sink: echo, bytes: 16 * 1024 * 1024) {
            if conn.session.transport.isExchangingKeys {
                turnsExchanging += 1
                if tcp.acknowledgesPromptly { promptWhileExchanging += 1 }
            } else if !conn.session.holdsWindowAdjusts && tcp.acknowledgesPromptly {
                promptOtherwise += 1
            }
        }
        XCTAssertGreaterThan(turnsExchanging, 0)
        XCTAssertEqual(promptWhileExchanging, turnsExchanging)
        XCTAssertEqual(promptOtherwise, 0)
        let drained = conn.session.rekeysStartedDrained, timedOut = conn.session.rekeysStartedOnTimeout
        XCTAssertGreaterThanOrEqual(conn.keyExchangeCount - before, 3, "drained: \(drained), on timeout: \(timedOut)")
        XCTAssertGreaterThanOrEqual(drained, 3, "re-exchanges started drained: \(drained), on timeout: \(timedOut)")
        XCTAssertGreaterThan(drained, timedOut, "re-exchanges started drained: \(drained), on timeout: \(timedOut)")
        XCTAssertTrue(loop.run(until: { !conn.session.holdsWindowAdjusts }, timeout: .seconds(5)))
        client.close(nil)
        XCTAssertFalse(d.disconnected, "\(String(describing: d.error))")
        conn.close()
    }

    /// By default every read of the link is ACKed at once, bulk data included.
    func testAcknowledgementsArePromptByDefault() throws {
        guard let f = try forwarding() else { return }
        defer { f.stop() }
        guard let tcp = f.conn.stream as? TCPConnection else { return XCTFail("not over TCP") }
        var turns = 0, delayed = 0
        let client = try streamIntoSink(loop: f.loop, port: f.port, sink: f.echo, bytes: 8 * 1024 * 1024) {
            turns += 1
            if !tcp.acknowledgesPromptly { delayed += 1 }
        }
        XCTAssertGreaterThan(turns, 0)
        XCTAssertEqual(delayed, 0, "delayed ACKs on \(delayed) of \(turns) loop turns")
        client.close(nil)
        f.conn.close()
    }

    /// A channel whose data stops with window left cannot drain, and with the forward one-way
    /// nothing else arrives: the re-exchange starts once no data came for the drain patience,
    /// instead of never, and the windows reopen.
    func testClientRekeyStartsAfterDrainTimeoutWhenDataStops() throws {
        guard let f = try forwarding(config: rekeyEveryMiBConfig()) else { return }
        defer { f.stop() }
        let (loop, conn, d, echo, port) = (f.loop, f.conn, f.d, f.echo, f.port)
        let before = conn.keyExchangeCount
        // 1.5 MiB: the limit is reached a third of the way into the 2 MiB window, and the rest
        // arrives while adjusts are held, leaving far more than the drain limit unused.
        let client = try streamIntoSink(loop: loop, port: port, sink: echo, bytes: 1536 * 1024)
        XCTAssertTrue(loop.run(until: { conn.keyExchangeCount > before }, timeout: .seconds(10)), "the re-exchange never started")
        XCTAssertEqual(conn.session.rekeysStartedOnTimeout, 1)
        XCTAssertEqual(conn.session.rekeysStartedDrained, 0)
        XCTAssertTrue(loop.run(until: { !conn.session.holdsWindowAdjusts }, timeout: .seconds(5)))
        client.close(nil)
        // The windows work again: a transfer over the same connection completes.
        echo.echoes = true
        _ = try transfer(loop: loop, port: port, clients: 1, bytes: 3 * 1024 * 1024)
        XCTAssertFalse(d.disconnected, "\(String(describing: d.error))")
        conn.close()
    }
}

/// A listener whose accept queue is full: connects to it hang (their SYNs are dropped) until
/// `release` accepts the connection that fills it; then the waiting ones go through (the
/// kernel resends their SYN after about a second). They are never accepted.
final class FullAcceptQueue {
    let port: Int
    private let fd: Int32
    private let filler: Int32
    init() throws {
        let lfd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(lfd, $0, len) } }
        guard bound == 0, listen(lfd, 0) == 0 else { Glibc.close(lfd); throw TestFailure("bind/listen failed") }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(lfd, $0, &len) } }
        let cfd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        let connected = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(cfd, $0, len) } }
        guard connected == 0 else { Glibc.close(cfd); Glibc.close(lfd); throw TestFailure("filler connect failed") }
        fd = lfd
        filler = cfd
        port = Int(UInt16(bigEndian: addr.sin_port))
    }
    func release() {
        let c = accept(fd, nil, nil)
        if c >= 0 { Glibc.close(c) }
    }
    func close() {
        Glibc.close(filler)
        Glibc.close(fd)
    }
}

/// Records what a ChannelBridges tells its owner.
final class BridgeEvents: ChannelBridgesObserver {
    var opened = 0, closed = 0
    var traffic: [String: ForwardTraffic] = [:]
    var dialFailures: [(forward: String, target: String)] = []
    func channelBridgeOpened(forward: String, id: Int) { opened += 1 }
    func channelBridgeDialFailed(forward: String, target: String, error: ConnectionError?) { dialFailures.append((forward, target)) }
    var refused: [(forward: String, limit: ChannelBridges.Limit)] = []
    func channelBridgeRefused(forward: String, limit: ChannelBridges.Limit) { refused.append((forward, limit)) }
    func channelBridgeClosed(forward: String, id: Int, traffic t: ForwardTraffic) {
        closed += 1
        traffic[forward, default: ForwardTraffic()].toLocal += t.toLocal
        traffic[forward, default: ForwardTraffic()].toTunnel += t.toTunnel
    }
}
