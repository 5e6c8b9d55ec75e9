/// How a client gets a stream: a TCP connect and, for https, a TLS step on top of it.
///
/// `connectTCP` returns a stream that is still connecting, with `delegate` set; the delegate
/// hears `streamDidOpen` (or `didCloseWith`). `startTLS` wraps an open stream — a direct TCP connection or a tunnel
/// through a proxy — and its delegate hears `streamDidOpen` when the handshake is done.
///
/// Name resolution seam: when `resolve` is set, the dialer first turns the host (origin or
/// proxy) into an address with it — asynchronously, on the loop — and gives `connectTCP` that
/// address; TLS still gets the original name for SNI and verification. Without it, `tcp()`
/// accepts numeric IPs and `localhost`. The agent's non-blocking `Resolver` plugs in here.
public struct HTTPConnector {
    public typealias Resolve = (_ host: String, _ completion: @escaping (Result<String, ConnectionError>) -> Void) -> Void

    public var connectTCP: (_ host: String, _ port: Int, _ timeout: TimeAmount, _ delegate: ByteStreamDelegate) throws -> ByteStream
    public var startTLS: ((_ stream: ByteStream, _ serverName: String) throws -> ByteStream)?
    public var resolve: Resolve?

    public init(connectTCP: @escaping (String, Int, TimeAmount, ByteStreamDelegate) throws -> ByteStream,
                startTLS: ((ByteStream, String) throws -> ByteStream)? = nil, resolve: Resolve? = nil) {
        self.connectTCP = connectTCP
        self.startTLS = startTLS
        self.resolve = resolve
    }

    /// Plain TCP to numeric addresses and `localhost` (127.0.0.1). Resolver seam: replace
    /// `resolve` (or the whole `connectTCP`) once `Resolver` exists.
    public static func tcp(loop: EventLoop, resolve: @escaping (String) -> String? = HTTPConnector.numericOrLocalhost) -> HTTPConnector {
        HTTPConnector(connectTCP: { host, port, timeout, delegate in
            guard let ip = resolve(host) else {
                throw ConnectionError.closedLocally("cannot resolve '\(host)': only numeric addresses and localhost are supported here")
            }
            let address = try SocketAddress(ip: ip, port: port)
            return try TCPConnection.connect(loop: loop, to: address, timeout: timeout, delegate: delegate)
        })
    }

    public static func numericOrLocalhost(_ host: String) -> String? {
        if host == "localhost" { return "127.0.0.1" }
        return (try? SocketAddress(ip: host, port: 0)) != nil ? host : nil
    }
}

