/// Opens a WebSocket to a `ws://` or `wss://` URL: dial (direct or through a CONNECT proxy,
/// TLS from the connector for wss), then the opening handshake.
public enum WebSocketClient {
    /// The Host header carries the port even when it is the default, as gorilla/websocket (and
    /// so chisel) sends it; pass a `Host` in `headers` to override.
    public static func connect(loop: EventLoop, url: String, connector: HTTPConnector, proxies: HTTPProxySettings = .none,
                               subprotocols: [String] = [], headers: HTTPHeaders = HTTPHeaders(),
                               timeout: TimeAmount = .seconds(45), maxMessageSize: Int = 16 << 20,
                               completion: @escaping (Result<WebSocketConnection, WebSocketHandshakeError>) -> Void) {
        let origin: HTTPOrigin
        let target: String
        do {
            (origin, target) = try HTTPClientRequest.parseURL(url)
        } catch {
            loop.deferred { completion(.failure(WebSocketHandshakeError(reason: error.message, status: nil))) }
            return
        }
        let start = loop.now
        StreamDialer.dial(loop: loop, origin: origin, connector: connector, proxies: proxies, timeout: timeout) { result in
            switch result {
            case .failure(let e):
                completion(.failure(WebSocketHandshakeError(reason: "cannot reach \(origin)", status: nil, underlying: e)))
            case .success(let stream):
                let left = timeout.nanoseconds - (loop.now - start).nanoseconds
                WebSocketClientHandshake.start(stream: stream, host: origin.authority, path: target, subprotocols: subprotocols,
                                               headers: headers, timeout: .nanoseconds(max(left, 1_000_000)),
                                               maxMessageSize: maxMessageSize, completion: completion)
            }
        }
    }
}
