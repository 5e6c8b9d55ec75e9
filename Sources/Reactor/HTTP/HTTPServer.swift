import Glibc
import Logging

public struct HTTPServerConfiguration: Sendable {
    /// The whole head must arrive within this time of its first byte (slowloris): 408. A new
    /// connection's first head counts from accept: one that sends nothing is closed after this
    /// long, not held for the idle timeout.
    public var headTimeout: TimeAmount = .seconds(10)
    /// A keep-alive connection with no request in flight (after its first) is closed after this long.
    public var idleTimeout: TimeAmount = .seconds(60)
    /// The body must keep arriving: no gap longer than this (408).
    public var bodyTimeout: TimeAmount = .seconds(30)
    /// And the whole body must arrive within this long of its head (408): a body trickled a
    /// byte at a time never has a gap, but it cannot hold a connection for ever either.
    public var bodyTotalTimeout: TimeAmount = .seconds(60)
    /// After an answer that ends the connection, how long the client's leftover input is drained.
    public var lingerTimeout: TimeAmount = .seconds(2)
    /// At this many open HTTP connections, a new one takes the place of the connection that has
    /// been idle longest (as nginx reuses keep-alive connections), or, when none is idle, gets
    /// 503 and is closed. Hits are logged at warning, once per `limitLogInterval`.
    public var maxConnections = 1024
    public var limitLogInterval: TimeAmount = .seconds(10)
    public var limits = HTTPParser.Limits()
    /// Pipelined bytes held while a response is pending, before reading pauses.
    public var maxBufferedInput = 64 * 1024
    /// Added to every answer a handler sends (e.g. `Access-Control-Allow-Origin`).
    public var responseHeaders = HTTPHeaders()

    public init() {}
}

/// An HTTP/1.1 server on the loop: a listener plus one `HTTPServerConnection` per client.
public final class HTTPServer {
    public unowned let loop: EventLoop
    public let configuration: HTTPServerConfiguration
    public let handler: HTTPHandler
    /// Set: every connection speaks TLS (server side) under HTTP.
    public let tls: TLSContext?
    private var listener: TCPListener?
    private var connections: [ObjectIdentifier: HTTPServerConnection] = [:]
    let dateCache = HTTPDateCache()
    /// Connections refused with 503 at the connection limit.
    public private(set) var rejectedConnections: UInt64 = 0
    /// Idle connections closed to make room for new ones at the connection limit.
    public private(set) var shedConnections: UInt64 = 0
    private lazy var limitLog = LimitHitLog(loop: loop, interval: configuration.limitLogInterval) { [unowned self] hits, interval in
        self.loop.logger.warning("http: connection limit reached", metadata: [
            "limit": "\(self.configuration.maxConnections)", "hits": "\(hits)", "interval": "\(interval)",
            "shed_idle_total": "\(self.shedConnections)", "refused_total": "\(self.rejectedConnections)"])
    }
    let stats = HTTPServerStats()
    public var requestsServed: UInt64 { stats.requests }
    /// Told once per answer (metrics): set it any time, connections read it from `stats`.
    public var onResponse: HTTPResponseObserver? {
        get { stats.onResponse }
        set { stats.onResponse = newValue }
    }

    public var port: Int { listener?.port ?? 0 }
    public var address: SocketAddress? { listener?.address }
    public var connectionCount: Int { connections.count }
    /// Bytes held for all open connections: unparsed input, answers not yet written, and what
    /// their streams have queued. Bounded per connection by backpressure; 0 once they close.
    public var bufferedBytes: Int { connections.values.reduce(0) { $0 + $1.bufferedBytes } }

    public convenience init(loop: EventLoop, address: SocketAddress, configuration: HTTPServerConfiguration = HTTPServerConfiguration(),
                            router: HTTPRouter) throws(SocketError) {
        try self.init(loop: loop, address: address, configuration: configuration, handler: router.handle)
    }

    public init(loop: EventLoop, address: SocketAddress, configuration: HTTPServerConfiguration = HTTPServerConfiguration(),
                tls: TLSContext? = nil, handler: @escaping HTTPHandler) throws(SocketError) {
        self.loop = loop
        self.configuration = configuration
        self.handler = handler
        self.tls = tls
        listener = try TCPListener(loop: loop, address: address) { [weak self] fd, peer in
            self?.accept(fd: fd, peer: peer)
        }
    }

    /// Stops listening and closes every connection.
    public func close() {
        listener?.close()
        listener = nil
        for c in Array(connections.values) { c.stream.close(.closedLocally("server shutting down")) }
    }

    private func accept(fd: Int32, peer: SocketAddress?) {
        let tcp: TCPConnection
        do {
            tcp = try TCPConnection(loop: loop, acceptedFD: fd, peer: peer)
        } catch {
            Glibc.close(fd)
            loop.logger.warning("http: cannot register connection", metadata: ["error": "\(error)"])
            return
        }
        var conn: ByteStream = tcp
        if let tls {
            // The TLS handshake must finish within the head timeout, like a slow request head.
            do { conn = try TLSStream(lower: tcp, context: tls, handshakeTimeout: configuration.headTimeout, delegate: nil) } catch {
                tcp.close(.closedLocally("TLS setup failed"))
                loop.logger.warning("http: cannot start TLS", metadata: ["error": "\(error)"])
                return
            }
        }
        if connections.count >= configuration.maxConnections {
            limitLog.record()
            if let idle = longestIdleConnection() {
                shedConnections &+= 1
                idle.shed()
            } else {
                refuse(conn)
                return
            }
        }
        let c = HTTPServerConnection(server: self, stream: conn, peer: peer)
        connections[ObjectIdentifier(c)] = c
        conn.delegate = c.streamDelegate
        c.start()
    }

    /// The connection that has waited longest with nothing in progress: between requests
    /// (or before its first), lingering after its last answer, or not reading its answers.
    /// A linear scan, made only at the limit.
    private func longestIdleConnection() -> HTTPServerConnection? {
        var best: HTTPServerConnection?
        for c in connections.values {
            guard let since = c.idleSince else { continue }
            if let b = best, let bestSince = b.idleSince, bestSince <= since { continue }
            best = c
        }
        return best
    }

    private func refuse(_ conn: ByteStream) {
        rejectedConnections &+= 1
        stats.onResponse?(HTTPResponseRecord(method: "", route: nil, status: 503))
        var out: [UInt8] = []
        let body = JSONText.errorBody("too many connections (limit \(configuration.maxConnections))", status: 503)
        HTTPServerConnection.appendSimpleResponse(503, body: Array(body.utf8), extra: HTTPHeaders(), close: true,
                                                  date: dateCache.current(), into: &out)
        conn.write(out)
        if let f = conn as? FlushClosable { f.closeWhenFlushed() } else { conn.shutdownWrite() }
    }

    func connectionEnded(_ c: HTTPServerConnection) {
        connections.removeValue(forKey: ObjectIdentifier(c))
    }
}

/// Counters and the response observer shared by a server's connections.
final class HTTPServerStats {
    var requests: UInt64 = 0
    var onResponse: HTTPResponseObserver?
}
