/// Opens a ready-to-use stream to an origin: TCP (to the origin, or to a proxy and then
/// `CONNECT host:port`), then the connector's TLS step for https. Hands the open stream over
/// with no delegate; the caller sets its own. Used by `HTTPClient` and for WebSocket clients.
public final class StreamDialer: ByteStreamDelegate {
    public typealias Completion = (Result<ByteStream, ConnectionError>) -> Void

    enum Stage { case connecting, proxyConnect, tls, done }

    private unowned let loop: EventLoop
    private let origin: HTTPOrigin
    private let connector: HTTPConnector
    private let proxy: HTTPProxySettings.Proxy?
    private var completion: Completion?
    private var stage: Stage = .connecting
    private var stream: ByteStream?
    private var parser = HTTPParser(kind: .response, limits: HTTPParser.Limits(maxBodyBytes: 64 * 1024))
    private var proxyStatus: Int?
    private var timer: LoopTimer?
    private var selfRef: StreamDialer?

    @discardableResult
    public static func dial(loop: EventLoop, origin: HTTPOrigin, connector: HTTPConnector, proxies: HTTPProxySettings = .none,
                            timeout: TimeAmount, completion: @escaping Completion) -> StreamDialer {
        let d = StreamDialer(loop: loop, origin: origin, connector: connector, proxy: proxies.proxy(for: origin), completion: completion)
        d.timer = loop.schedule(in: timeout) { [weak d] in
            d?.fail(.timedOut("connecting to \(origin)\(d?.proxy.map { " via proxy \($0.host):\($0.port)" } ?? "") after \(timeout)"))
        }
        d.start(timeout: timeout)
        return d
    }

    private init(loop: EventLoop, origin: HTTPOrigin, connector: HTTPConnector, proxy: HTTPProxySettings.Proxy?, completion: @escaping Completion) {
        self.loop = loop
        self.origin = origin
        self.connector = connector
        self.proxy = proxy
        self.completion = completion
        parser.requestMethod = "CONNECT"
        selfRef = self
    }

    /// Abandons the attempt (the completion is not called).
    public func cancel() {
        completion = nil
        timer?.cancel()
        stream?.delegate = nil
        stream?.close(.closedLocally("cancelled"))
        selfRef = nil
    }

    private func start(timeout: TimeAmount) {
        let host = proxy?.host ?? origin.host
        let port = proxy?.port ?? origin.port
        guard let resolve = connector.resolve else {
            connect(host, port, timeout: timeout)
            return
        }
        resolve(host) { [weak self] result in
            guard let self, self.completion != nil else { return }
            switch result {
            case .success(let address): self.connect(address, port, timeout: timeout)
            case .failure(let e): self.fail(e)
            }
        }
    }

    private func connect(_ host: String, _ port: Int, timeout: TimeAmount) {
        do {
            stream = try connector.connectTCP(host, port, timeout, self)
        } catch let e as ConnectionError {
            failSoon(e)
        } catch let e as ConnectError {
            failSoon(.connect(e))
        } catch let e as SocketError {
            failSoon(.system(e))
        } catch {
            failSoon(.closedLocally("connect to \(host):\(port): \(error)"))
        }
    }

    /// Reports a synchronous failure on the next turn, so callers always hear back asynchronously.
    private func failSoon(_ e: ConnectionError) {
        loop.deferred { [weak self] in self?.fail(e) }
    }

    public func streamDidOpen(_ stream: ByteStream) {
        switch stage {
        case .connecting:
            if let proxy {
                stage = .proxyConnect
                var h = HTTPHeaders()
                h.add("Host", origin.authority)
                if let c = proxy.credentials { h.add("Proxy-Authorization", "Basic " + Base64.encode(Array(c.utf8))) }
                var out: [UInt8] = []
                HTTPWriter.appendRequestHead(HTTPRequestHead(method: "CONNECT", target: origin.authority, headers: h), into: &out)
                stream.write(out)
            } else {
                tunnelReady(stream)
            }
        case .tls:
            succeed(stream)
        default:
            break
        }
    }

    public func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {
        guard stage == .proxyConnect else { return }
        parser.feed(bytes)
        while stage == .proxyConnect {
            let event: HTTPParserEvent?
            do { event = try parser.next() } catch {
                fail(.protocolViolation("proxy answered CONNECT with a bad response: \(error.message)"))
                return
            }
            guard let event else { return }
            switch event {
            case .responseHead(let h): proxyStatus = h.status
            case .end:
                guard let status = proxyStatus, (200..<300).contains(status) else {
                    fail(.protocolViolation("proxy refused CONNECT \(origin.authority): HTTP \(proxyStatus ?? 0)"))
                    return
                }
                if parser.isStopped && parser.bufferedBytes > 0 {
                    fail(.protocolViolation("proxy sent bytes after its CONNECT answer"))
                    return
                }
                tunnelReady(stream)
            case .body:
                break
            case .requestHead:
                break
            }
        }
    }

    private func tunnelReady(_ tcp: ByteStream) {
        guard origin.useTLS else { succeed(tcp); return }
        guard let startTLS = connector.startTLS else {
            fail(.closedLocally("https to \(origin) needs a TLS connector"))
            return
        }
        stage = .tls
        do {
            let tls = try startTLS(tcp, origin.host)
            stream = tls
            tls.delegate = self
        } catch let e as ConnectionError {
            fail(e)
        } catch {
            fail(.tls(.setup(peer: origin.authority, reason: "\(error)")))
        }
    }

    public func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) {
        if stage == .tls && stream !== self.stream { return }   // the TCP under a TLS stream
        fail(error ?? .closedLocally("connection to \(origin) closed while connecting"))
    }

    private func succeed(_ s: ByteStream) {
        stage = .done
        timer?.cancel()
        let cb = completion
        completion = nil
        selfRef = nil
        s.delegate = nil
        cb?(.success(s))
    }

    private func fail(_ e: ConnectionError) {
        guard let cb = completion else { return }
        completion = nil
        stage = .done
        timer?.cancel()
        stream?.delegate = nil
        stream?.close(e)
        selfRef = nil
        cb(.failure(e))
    }
}
