import Glibc
import Logging

public struct HTTPServerConfiguration: Sendable {
    /// The whole head must arrive within this time of its first byte (slowloris): 408.
    public var headTimeout: TimeAmount = .seconds(10)
    /// A keep-alive connection with no request in flight is closed after this long.
    public var idleTimeout: TimeAmount = .seconds(60)
    /// The body must keep arriving: no gap longer than this (408).
    public var bodyTimeout: TimeAmount = .seconds(30)
    /// After an answer that ends the connection, how long the client's leftover input is drained.
    public var lingerTimeout: TimeAmount = .seconds(2)
    /// Over this many open HTTP connections, new ones get 503 and are closed.
    public var maxConnections = 1024
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
    public private(set) var rejectedConnections: UInt64 = 0
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
            rejectedConnections &+= 1
            stats.onResponse?(HTTPResponseRecord(method: "", route: nil, status: 503))
            var out: [UInt8] = []
            let body = JSONText.errorBody("too many connections (limit \(configuration.maxConnections))", status: 503)
            HTTPServerConnection.appendSimpleResponse(503, body: Array(body.utf8), extra: HTTPHeaders(), close: true,
                                                      date: dateCache.current(), into: &out)
            conn.write(out)
            if let f = conn as? FlushClosable { f.closeWhenFlushed() } else { conn.shutdownWrite() }
            return
        }
        let c = HTTPServerConnection(server: self, stream: conn, peer: peer)
        connections[ObjectIdentifier(c)] = c
        conn.delegate = c.streamDelegate
        c.start()
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
