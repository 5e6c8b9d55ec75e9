import Glibc
import Logging
import Reactor

/// One bound reverse remote (`R:`) of one tunnel connection: each TCP connection accepted here
/// is held paused while a `chisel` channel with the remote's target is opened to the client,
/// then piped to it (chisel-v3-protocol.md §7). A refused or impossible channel closes the TCP
/// connection. Everything ends with `close()`, when the tunnel connection goes.
final class ReverseListener {
    let remote: ChiselServerRemote
    private var listener: TCPListener?
    private weak var connection: SSHConnection?
    private let logger: Logger
    /// Connections waiting for their channel, and those being piped.
    private var waiting: [ObjectIdentifier: TCPConnection] = [:]
    private var bridges: [ObjectIdentifier: StreamBridge] = [:]
    private(set) var accepted = 0
    var port: Int { listener?.port ?? 0 }
    var activeConnections: Int { waiting.count + bridges.count }

    /// Binds `address` now; throws when it cannot (a port in use, an address not ours).
    init(loop: EventLoop, remote: ChiselServerRemote, address: SocketAddress, connection: SSHConnection, logger: Logger) throws(SocketError) {
        self.remote = remote
        self.connection = connection
        self.logger = logger
        listener = try TCPListener(loop: loop, address: address) { [weak self] fd, peer in
            guard let self else { Glibc.close(fd); return }
            self.accept(loop: loop, fd: fd, peer: peer)
        }
    }

    private func accept(loop: EventLoop, fd: Int32, peer: SocketAddress?) {
        let tcp: TCPConnection
        do { tcp = try TCPConnection(loop: loop, acceptedFD: fd, peer: peer, delegate: nil) } catch {
            Glibc.close(fd)
            logger.warning("cannot register an accepted connection", metadata: ["error": "\(error)"])
            return
        }
        guard let connection else { tcp.close(.closedLocally("tunnel gone")); return }
        accepted += 1
        let key = ObjectIdentifier(tcp)
        let hold = HeldConnection()
        tcp.delegate = hold
        tcp.pauseReading()   // until the channel is open; the client's data waits in the kernel
        waiting[key] = tcp
        // The completion holds `hold` (a stream's delegate is weak) until the channel is settled.
        connection.openChannel(type: "chisel", data: Array(remote.target.utf8), delegate: nil) { [weak self] result in
            guard let self else {
                if case .success(let channel) = result { channel.close(nil) }
                tcp.close(nil)
                return
            }
            self.waiting.removeValue(forKey: key)
            switch result {
            case .success(let channel):
                if hold.ended { channel.close(nil); return }   // the TCP peer gave up meanwhile
                let bridge = StreamBridge(channel, tcp)
                self.bridges[key] = bridge
                bridge.onFinish = { [weak self] _, _ in self?.bridges.removeValue(forKey: key) }
                bridge.start()
                tcp.resumeReading()
            case .failure(let error):
                self.logger.info("Stream error: \(error)", metadata: ["remote": "\(self.remote.display)"])
                tcp.close(.closedLocally("\(error)"))
            }
        }
    }

    /// Unbinds and ends every connection it carried (their channels close with the tunnel).
    func close() {
        listener?.close()
        listener = nil
        let held = waiting.values, piped = bridges.values
        waiting = [:]
        bridges = [:]
        for tcp in held { tcp.close(.closedLocally("tunnel closed")) }
        for b in piped { b.second.close(.closedLocally("tunnel closed")); b.first.close(nil) }
    }
}

/// A TCP connection's delegate while its channel is being opened: notes that it ended.
private final class HeldConnection: ByteStreamDelegate {
    var ended = false
    func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {}
    func streamDidReadEOF(_ stream: ByteStream) { ended = true; stream.close(nil) }
    func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) { ended = true }
}
