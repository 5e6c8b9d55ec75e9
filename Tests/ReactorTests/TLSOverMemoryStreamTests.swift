import XCTest
@testable import Reactor

/// TLSStream over a lower stream that is not TCP: an in-memory pair on the loop. This takes
/// the path where TLSStream decrypts into a buffer of its own.
final class TLSOverMemoryStreamTests: XCTestCase {
    func testHandshakeDataAndCloseNotifyOverAnInMemoryPair() throws {
        let pki = try TLSTestPKI.make()
        defer { pki.remove() }
        let loop = try makeLoop()
        let (a, b) = MemoryStream.pair(loop: loop)
        let clientEvents = StreamRecorder()
        let serverEvents = StreamRecorder()
        let client = try TLSStream(lower: a, context: TLSContext(.client(alpn: ["x-test"], additionalCAFile: pki.ca)),
                                   serverName: "localhost", peerDescription: "memory peer", delegate: clientEvents)
        let server = try TLSStream(lower: b, context: TLSContext(.server(certificateChainFile: pki.serverCert,
                                                                         privateKeyFile: pki.serverKey, alpn: ["x-test"])),
                                   peerDescription: "memory client", delegate: serverEvents)
        client.write("sent before the handshake finished")
        XCTAssertTrue(loop.run(until: { clientEvents.opened && serverEvents.opened }, timeout: .seconds(10)),
                      "\(String(describing: clientEvents.closeError)) \(String(describing: serverEvents.closeError))")
        XCTAssertEqual(client.alpnProtocol, "x-test")
        XCTAssertEqual(server.protocolVersion, .tls13)
        XCTAssertTrue(loop.run(until: { serverEvents.text == "sent before the handshake finished" }, timeout: .seconds(10)))

        let big = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 % 251) }
        let writesBefore = b.writeCount
        server.write(big)
        XCTAssertTrue(loop.run(until: { clientEvents.received.count >= big.count }, timeout: .seconds(10)))
        XCTAssertTrue(clientEvents.received == big)
        // Each 64 KiB plaintext chunk leaves as one lower write (its records whole), not two.
        XCTAssertEqual(b.writeCount - writesBefore, (big.count + TLSStream.writeChunk - 1) / TLSStream.writeChunk)

        client.close()
        XCTAssertTrue(clientEvents.closed)
        XCTAssertNil(clientEvents.closeError)
        XCTAssertTrue(loop.run(until: { serverEvents.closed }, timeout: .seconds(10)))
        XCTAssertTrue(serverEvents.eof, "the server hears our close_notify as EOF")
        XCTAssertNil(serverEvents.closeError)
    }
}

/// Two ByteStreams joined in memory; bytes written to one arrive at the other on a later
/// loop phase (like a socket). Flow control is not modelled.
final class MemoryStream: ByteStream {
    unowned let loop: EventLoop
    weak var delegate: ByteStreamDelegate?
    weak var peer: MemoryStream?
    var isWritable: Bool { !closed }
    /// Bytes go to the peer on the next loop phase; none wait here.
    var queuedBytes: Int { 0 }
    private var closed = false

    init(loop: EventLoop) { self.loop = loop }

    static func pair(loop: EventLoop) -> (MemoryStream, MemoryStream) {
        let a = MemoryStream(loop: loop), b = MemoryStream(loop: loop)
        a.peer = b
        b.peer = a
        return (a, b)
    }

    private(set) var writeCount = 0

    func write(_ bytes: UnsafeRawBufferPointer) {
        guard !closed else { return }
        writeCount += 1
        let copy = Array(bytes)
        loop.deferred { [weak peer] in
            guard let peer, !peer.closed else { return }
            copy.withUnsafeBytes { peer.delegate?.stream(peer, didRead: $0) }
        }
    }

    func shutdownWrite() {
        loop.deferred { [weak peer] in
            guard let peer, !peer.closed else { return }
            peer.delegate?.streamDidReadEOF(peer)
        }
    }

    func close(_ reason: ConnectionError?) {
        guard !closed else { return }
        closed = true
        let d = delegate
        delegate = nil
        d?.stream(self, didCloseWith: reason)
        loop.deferred { [weak peer] in peer?.close(nil) }
    }

    func pauseReading() {}
    func resumeReading() {}
}
