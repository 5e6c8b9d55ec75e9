import Reactor

/// How the agent dials out: host names through the non-blocking resolver, TLS with the
/// control plane's trust settings (`tls` is asked for the context when a TLS connection starts).
enum Connectors {
    static func make(loop: EventLoop, resolver: Resolver, tls: @escaping () throws -> TLSContext) -> HTTPConnector {
        HTTPConnector(
            connectTCP: { host, port, timeout, delegate in
                HostConnection(loop: loop, resolver: resolver, host: host, port: port, timeout: timeout, delegate: delegate)
            },
            startTLS: { stream, serverName in
                try TLSStream(lower: stream, context: try tls(), serverName: serverName, delegate: nil)
            })
    }
}
