import Logging
import Reactor

/// The agent's Kubernetes API client, on the loop: HTTP/1.1 over the Reactor's client (a
/// keep-alive pool, a connector and TLS context of its own), a bearer token that follows its
/// file, `Status` bodies turned into errors, `429`/`5xx` and refused connections retried with
/// backoff (honouring `Retry-After`), and every call counted by verb and code.
///
/// Responses stream: `stream` hands on body bytes as they arrive (lists are split item by item,
/// watches and logs line by line, by the callers); only error bodies are collected, bounded.
final class KubernetesClient {
    /// One finished call as `pipeops_kubernetes_api_calls_total{verb,code}` counts it; `code`
    /// is the HTTP status, or `error` when no answer came.
    struct CallKey: Hashable, Sendable {
        let verb: String
        let code: String
    }

    struct Retry {
        var attempts = 4
        var backoff = Backoff(initial: .milliseconds(500), maximum: .seconds(8))
        /// A longer Retry-After than this is cut to it.
        var maxRetryAfter = TimeAmount.seconds(30)
        static let none = Retry(attempts: 1)
    }

    unowned let loop: EventLoop
    let access: KubernetesAccess
    let http: HTTPClient
    let token: BearerToken
    let logger: Logger
    /// Hears every call as it finishes (the order of calls, for tests); `/metrics` reads the
    /// totals in `calls` when it is scraped.
    var onAPICall: ((_ verb: String, _ code: String) -> Void)?
    private(set) var calls: [CallKey: Int] = [:]
    /// The latest outcome of any call: nil after a 2xx head, else why the last call failed.
    private(set) var lastFailure: KubernetesError?
    private(set) var everReached = false
    static let maxErrorBody = 64 * 1024
    static let userAgent = "pipeops-agent/\(AgentVersion.version)"

    init(loop: EventLoop, access: KubernetesAccess, connector: HTTPConnector, proxies: HTTPProxySettings, logger: Logger) {
        self.loop = loop
        self.access = access
        self.http = HTTPClient(loop: loop, connector: connector, proxies: proxies)
        self.token = BearerToken(access.credential)
        self.logger = logger
        http.maxIdlePerOrigin = 4
        // Every watch and every followed pod log holds a connection for as long as it lasts:
        // room for them all (followers are capped by realtime.max_connections) before a call waits.
        http.maxConnectionsPerOrigin = 256
        http.name = "kubernetes client"
    }

    /// A call in flight; `cancel` stops it (no callback after), `pause`/`resume` push back on a
    /// streamed body.
    final class Call {
        fileprivate var task: HTTPClientTask?
        fileprivate var retryTimer: LoopTimer?
        fileprivate(set) var cancelled = false
        fileprivate var paused = false

        func cancel() {
            cancelled = true
            retryTimer?.cancel()
            retryTimer = nil
            task?.cancel()
            task = nil
        }

        func pause() {
            paused = true
            task?.pauseReading()
        }

        func resume() {
            paused = false
            task?.resumeReading()
        }
    }

    struct StreamHandler {
        /// A 2xx head arrived; the body follows.
        var onOpen: (HTTPResponseHead) -> Void = { _ in }
        var onBody: ([UInt8]) -> Void
        /// nil: the body ended normally. Called once, unless the call was cancelled.
        var onEnd: (KubernetesError?) -> Void
    }

    /// `GET basePath + path` with its body streamed to `handler`. `timeout` covers the whole
    /// response (nil: none, for watches and logs, whose callers keep their own idle timers).
    @discardableResult
    func stream(_ path: String, verb: String, timeout: TimeAmount?, retry: Retry = Retry(),
                handler: StreamHandler) -> Call {
        stream(Outgoing(method: "GET", path: path), verb: verb, timeout: timeout, retry: retry, handler: handler)
    }

    /// What goes out: the method, the path under `basePath`, and a JSON body for writes.
    struct Outgoing {
        var method: String
        var path: String
        var body: [UInt8] = []
    }

    private func stream(_ outgoing: Outgoing, verb: String, timeout: TimeAmount?, retry: Retry,
                        handler: StreamHandler) -> Call {
        let call = Call()
        attempt(call, outgoing, verb: verb, timeout: timeout, retry: retry, refreshedToken: false, handler: handler)
        return call
    }

    /// A whole small response (`/version`, one object), body bounded by `maxBytes`.
    @discardableResult
    func get(_ path: String, verb: String = "get", timeout: TimeAmount = .seconds(30), maxBytes: Int = 1 << 20,
             completion: @escaping (Result<JSONValue, KubernetesError>) -> Void) -> Call {
        send(Outgoing(method: "GET", path: path), verb: verb, timeout: timeout, maxBytes: maxBytes, completion: completion)
    }

    /// `POST` (create) or `PUT` (update) of one object, answered with the object as stored.
    /// A `409` (`Conflict`, `AlreadyExists`) comes back as an error for the caller to resolve.
    @discardableResult
    func write(_ method: String, _ path: String, object: JSONValue, verb: String, timeout: TimeAmount = .seconds(30),
               completion: @escaping (Result<JSONValue, KubernetesError>) -> Void) -> Call {
        send(Outgoing(method: method, path: path, body: object.bytes), verb: verb, timeout: timeout, maxBytes: 1 << 20,
             completion: completion)
    }

    private func send(_ outgoing: Outgoing, verb: String, timeout: TimeAmount, maxBytes: Int,
                      completion: @escaping (Result<JSONValue, KubernetesError>) -> Void) -> Call {
        let path = outgoing.path
        var body: [UInt8] = []
        var callRef: Call?
        var done = false
        let call = stream(outgoing, verb: verb, timeout: timeout, retry: Retry(), handler: StreamHandler(
            onBody: { chunk in
                guard !done else { return }
                if body.count + chunk.count > maxBytes {
                    done = true
                    callRef?.cancel()
                    completion(.failure(KubernetesError(kind: .badResponse, message: "\(path): the response is larger than \(maxBytes) bytes")))
                    return
                }
                body.append(contentsOf: chunk)
            },
            onEnd: { error in
                guard !done else { return }
                done = true
                callRef = nil
                if let error { completion(.failure(error)); return }
                do { completion(.success(try JSONParser.parse(body))) } catch {
                    completion(.failure(KubernetesError(kind: .badResponse, message: "\(path): the response is not JSON: \(error)")))
                }
            }))
        if !call.cancelled { callRef = call }
        return call
    }

    private func attempt(_ call: Call, _ outgoing: Outgoing, verb: String, timeout: TimeAmount?, retry: Retry,
                         refreshedToken: Bool, handler: StreamHandler) {
        guard !call.cancelled else { return }
        let path = outgoing.path
        var headers = HTTPHeaders()
        headers.add("Accept", "application/json")
        headers.add("User-Agent", Self.userAgent)
        if !outgoing.body.isEmpty { headers.add("Content-Type", "application/json") }
        if let t = token.current() { headers.add("Authorization", "Bearer \(t)") }
        let request = HTTPClientRequest(method: outgoing.method, origin: access.server, target: access.basePath + path,
                                        headers: headers, body: outgoing.body)
        var head: HTTPResponseHead?
        var errorBody: [UInt8] = []
        var opened = false
        // A call without a deadline is a watch or a followed log: silent for minutes by nature
        // (ResourceWatcher times its watches itself), so no read-idle limit either.
        call.task = http.execute(request, timeout: timeout, readIdleTimeout: timeout == nil ? .zero : nil, onHead: { h in
            head = h
            if (200..<300).contains(h.status) {
                opened = true
                self.record(verb, code: "\(h.status)", failure: nil)
                handler.onOpen(h)
            }
        }, onBody: { chunk in
            if opened {
                handler.onBody(chunk)
            } else if errorBody.count < Self.maxErrorBody {
                errorBody.append(contentsOf: chunk.prefix(Self.maxErrorBody - errorBody.count))
            }
        }, onComplete: { [weak self] result in
            guard let self, !call.cancelled else { return }
            call.task = nil
            if opened {
                switch result {
                case .success: handler.onEnd(nil)
                case .failure(let e): handler.onEnd(.transport(e, "\(verb) \(path)"))
                }
                return
            }
            var retryAfter: TimeAmount?
            let error: KubernetesError
            switch (result, head) {
            case (.success, let h?):
                error = .fromResponse(code: h.status, body: errorBody)
                self.record(verb, code: "\(h.status)", failure: error)
                if h.status == 401, !refreshedToken, self.token.refresh() {
                    self.logger.info("the API server refused the token; using the re-read token file")
                    self.attempt(call, outgoing, verb: verb, timeout: timeout, retry: retry, refreshedToken: true, handler: handler)
                    return
                }
                guard h.status == 429 || (500...599).contains(h.status) else {
                    handler.onEnd(self.explain(error))
                    return
                }
                retryAfter = h.headers["Retry-After"].flatMap { Int($0.trimmingSpaces) }.map { .seconds(Int64(max(0, $0))) }
            case (.success, nil):
                error = KubernetesError(kind: .badResponse, message: "\(verb) \(path): no response head")
                self.record(verb, code: "error", failure: error)
            case (.failure(let e), _):
                error = .transport(e, "\(verb) \(path)")
                self.record(verb, code: "error", failure: error)
            }
            var r = retry
            r.attempts -= 1
            guard r.attempts > 0 else { handler.onEnd(error); return }
            var delay = r.backoff.next()
            if let ra = retryAfter { delay = min(ra, r.maxRetryAfter) }
            self.logger.debug("Kubernetes call failed; retrying", metadata: ["call": "\(verb) \(path)", "error": "\(error)", "retry_in": "\(delay)"])
            call.retryTimer = self.loop.schedule(in: delay) { [weak self] in
                call.retryTimer = nil
                self?.attempt(call, outgoing, verb: verb, timeout: timeout, retry: r, refreshedToken: refreshedToken, handler: handler)
            }
        })
        if call.paused { call.task?.pauseReading() }
    }

    /// A 401 with a token file names the file, so `/ready` says where the bad token came from.
    private func explain(_ error: KubernetesError) -> KubernetesError {
        guard error.code == 401 else { return error }
        var message = error.message
        if let file = token.file {
            message += " (token from \(file)" + (token.lastError.map { "; \($0)" } ?? "") + ")"
        } else if case .none = access.credential, access.clientCertificate == nil {
            message += " (no credentials configured)"
        }
        return KubernetesError(kind: error.kind, reason: error.reason, message: message)
    }

    private func record(_ verb: String, code: String, failure: KubernetesError?) {
        calls[CallKey(verb: verb, code: code), default: 0] += 1
        if failure == nil { everReached = true }
        lastFailure = failure.map(explain)
        onAPICall?(verb, code)
    }

    func close() { http.closeIdle() }
}

/// Query strings for API paths: values percent-encoded (continue tokens are base64).
enum KubernetesQuery {
    static func path(_ base: String, _ items: [(String, String?)]) -> String {
        let parts = items.compactMap { k, v in v.map { "\(k)=\(encode($0))" } }
        return parts.isEmpty ? base : base + "?" + parts.joined(separator: "&")
    }

    static func encode(_ value: String) -> String {
        var out = ""
        for b in value.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                let hex = String(b, radix: 16, uppercase: true)
                out += "%" + (hex.count < 2 ? "0" : "") + hex
            }
        }
        return out
    }
}
