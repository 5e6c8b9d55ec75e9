/// One request in flight. `cancel()` stops it; no callback runs after that.
public final class HTTPClientTask {
    let request: HTTPClientRequest
    var onHead: ((HTTPResponseHead) -> Void)?
    var onBody: (([UInt8]) -> Void)?
    var onComplete: ((Result<HTTPHeaders, HTTPError>) -> Void)?
    var timer: LoopTimer?
    var dialer: StreamDialer?
    /// Set while dialling: the client counts the dial against the origin's cap.
    var onDialAbandoned: (() -> Void)?
    weak var connection: HTTPClientConnection?
    var attempts = 0
    /// No response byte for this long fails the request (zero: no limit).
    var readIdleTimeout: TimeAmount = .zero
    public private(set) var isFinished = false
    /// Set by `pauseReading`; a connection that takes the request later starts paused.
    private(set) var readingPaused = false

    init(request: HTTPClientRequest, onHead: @escaping (HTTPResponseHead) -> Void, onBody: @escaping ([UInt8]) -> Void,
         onComplete: @escaping (Result<HTTPHeaders, HTTPError>) -> Void) {
        self.request = request
        self.onHead = onHead
        self.onBody = onBody
        self.onComplete = onComplete
    }

    /// Stops reading the response: a consumer of a streamed body that cannot keep up lets TCP
    /// push back on the server instead of buffering. Bytes already read are still delivered.
    public func pauseReading() {
        guard !isFinished, !readingPaused else { return }
        readingPaused = true
        connection?.stream.pauseReading()
    }

    public func resumeReading() {
        guard !isFinished, readingPaused else { return }
        readingPaused = false
        connection?.stream.resumeReading()
    }

    public func cancel() {
        guard !isFinished else { return }
        clear()
        let c = connection
        connection = nil
        c?.abandon(.closedLocally("request cancelled"))
    }

    func complete(_ result: Result<HTTPHeaders, HTTPError>) {
        guard !isFinished else { return }
        let cb = onComplete
        clear()
        cb?(result)
    }

    private func clear() {
        isFinished = true
        timer?.cancel()
        timer = nil
        dialer?.cancel()
        dialer = nil
        let abandoned = onDialAbandoned
        onDialAbandoned = nil
        onHead = nil
        onBody = nil
        onComplete = nil
        abandoned?()
    }
}
