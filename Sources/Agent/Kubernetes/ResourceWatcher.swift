import Logging
import Reactor

/// Keeps one resource's store current, the way client-go's reflector does (the Kubernetes API
/// concepts, "Efficient detection of changes" and "Retrieving large results sets in chunks"):
///
/// * list in pages (`limit`/`continue`), each page's items parsed one by one as they stream in;
/// * then watch from the list's `resourceVersion` with `allowWatchBookmarks` and a server-side
///   `timeoutSeconds`, remembering the newest version seen (events and bookmarks);
/// * a watch that ends is resumed from that version, without a relist; one that goes silent
///   past its timeout plus slack is dropped and resumed the same way;
/// * `410 Gone` (an HTTP status, or an `ERROR` event) means the version was compacted away:
///   relist, which replaces the store's contents without counting anything twice;
/// * any other failure waits with backoff and tries again; the store keeps what it had.
final class ResourceWatcher {
    struct Options {
        var pageSize = 500
        /// Asked of the server as `timeoutSeconds`; it ends the watch then and we resume.
        var watchTimeout = TimeAmount.seconds(300)
        /// A watch silent for `watchTimeout + idleSlack` is dropped.
        var idleSlack = TimeAmount.seconds(30)
        /// Each list page's deadline.
        var pageTimeout = TimeAmount.seconds(60)
        var maxEventBytes = 4 << 20
        var maxItemBytes = 4 << 20
        var backoff = Backoff(initial: .milliseconds(500), maximum: .seconds(30))
    }

    enum Phase: Equatable { case idle, listing, watching, waiting, stopped }

    struct Stats: Equatable {
        /// Full lists started (the first one, relists after 410 and after failed lists).
        var lists = 0
        var pages = 0
        var relistsAfterGone = 0
        var watches = 0
        /// Watches that the server ended normally and that were resumed from the last version.
        var resumes = 0
        var events = 0
        var bookmarks = 0
        var idleTimeouts = 0
        var failures = 0
        var malformedObjects = 0
    }

    let resource: String
    let path: String
    unowned let loop: EventLoop
    let client: KubernetesClient
    let sink: WatchSink
    let options: Options
    let logger: Logger
    private(set) var phase: Phase = .idle
    private(set) var resourceVersion: String?
    /// True once a whole list went into the store; stays true through outages.
    private(set) var synced = false
    private(set) var stats = Stats()
    private(set) var lastError: KubernetesError?
    private var call: KubernetesClient.Call?
    private var timer: LoopTimer?
    private var backoff: Backoff
    /// Bumped per request so lines of a dropped watch are ignored.
    private var requestID = 0
    private var lastActivity = Deadline.now()
    private var watchOpenedAt = Deadline.now()
    private var watchEvents = 0

    init(resource: String, path: String, loop: EventLoop, client: KubernetesClient, sink: WatchSink,
         options: Options, logger: Logger) {
        self.resource = resource
        self.path = path
        self.loop = loop
        self.client = client
        self.sink = sink
        self.options = options
        self.backoff = options.backoff
        self.logger = logger
    }

    func start() {
        guard phase == .idle else { return }
        list(continueToken: nil)
    }

    func stop() {
        phase = .stopped
        dropRequest()
    }

    private func dropRequest() {
        requestID += 1
        call?.cancel()
        call = nil
        timer?.cancel()
        timer = nil
    }

    // MARK: list

    private func list(continueToken: String?) {
        guard phase != .stopped else { return }
        dropRequest()
        phase = .listing
        if continueToken == nil {
            stats.lists += 1
            sink.beginList()
        }
        stats.pages += 1
        let id = requestID
        let limit = sink.wantsListItems ? options.pageSize : 1
        let target = KubernetesQuery.path(path, [("limit", "\(limit)"), ("continue", continueToken)])
        var splitter = ListBodySplitter(maxItemBytes: options.maxItemBytes)
        let wantsItems = sink.wantsListItems
        call = client.stream(target, verb: "list", timeout: options.pageTimeout, handler: .init(
            onBody: { [weak self] chunk in
                guard let self, self.requestID == id else { return }
                do {
                    try splitter.feed(chunk) { item in if wantsItems, self.requestID == id { self.listItem(item) } }
                } catch {
                    self.fail(KubernetesError(kind: .badResponse, message: "list \(self.resource): \(error)"), then: .relist)
                }
            },
            onEnd: { [weak self] error in
                guard let self, self.requestID == id else { return }
                self.call = nil
                if let error {
                    // 410 here is an expired continue token: start the list again at once.
                    self.fail(error, then: error.code == 410 ? .relistAfterGone : .relist)
                    return
                }
                self.pageDone(try? splitter.finish())
            }))
    }

    private func listItem(_ bytes: [UInt8]) {
        do { try sink.apply(.listed, try JSONParser.parse(bytes)) } catch {
            stats.malformedObjects += 1
            logger.debug("skipping a malformed list item", metadata: ["resource": "\(resource)", "error": "\(error)"])
        }
    }

    private func pageDone(_ envelope: [UInt8]?) {
        guard let envelope, let value = try? JSONParser.parse(envelope), let fields = try? JSONFields(value),
              let meta = try? fields.optionalObject("metadata") else {
            fail(KubernetesError(kind: .badResponse, message: "list \(resource): the body is not a list"), then: .relist)
            return
        }
        let next = (try? meta.optionalString("continue")) ?? nil
        if let next, !next.isEmpty, sink.wantsListItems {
            list(continueToken: next)
            return
        }
        guard let rv = (try? meta.optionalString("resourceVersion")) ?? nil, !rv.isEmpty else {
            fail(KubernetesError(kind: .badResponse, message: "list \(resource): no metadata.resourceVersion"), then: .relist)
            return
        }
        resourceVersion = rv
        sink.endList()
        if !synced { logger.info("Kubernetes \(resource) synced", metadata: ["resource_version": "\(rv)"]) }
        synced = true
        lastError = nil
        backoff.reset()
        watch()
    }

    // MARK: watch

    private func watch() {
        guard phase != .stopped, let rv = resourceVersion else { return }
        dropRequest()
        phase = .watching
        stats.watches += 1
        let id = requestID
        // A little jitter so the watches of one agent do not all end in the same second.
        let seconds = max(1, options.watchTimeout.seconds * Double.random(in: 1.0..<1.1))
        let timeoutSeconds = Int(seconds.rounded())
        let target = KubernetesQuery.path(path, [("watch", "1"), ("resourceVersion", rv), ("allowWatchBookmarks", "true"),
                                                 ("timeoutSeconds", "\(timeoutSeconds)")])
        var lines = LineSplitter(maxLineBytes: options.maxEventBytes, overlong: .fail)
        watchOpenedAt = .now()
        watchEvents = 0
        lastActivity = .now()
        armIdleTimer(id: id, limit: .seconds(Int64(timeoutSeconds)) + options.idleSlack)
        call = client.stream(target, verb: "watch", timeout: nil, retry: .none, handler: .init(
            onOpen: { [weak self] _ in
                guard let self, self.requestID == id else { return }
                self.lastError = nil
            },
            onBody: { [weak self] chunk in
                guard let self, self.requestID == id else { return }
                self.lastActivity = .now()
                do {
                    try lines.feed(chunk) { line in if self.requestID == id { self.watchLine(line) } }
                } catch {
                    self.fail(KubernetesError(kind: .badResponse, message: "watch \(self.resource): \(error)"), then: .rewatch)
                }
            },
            onEnd: { [weak self] error in
                guard let self, self.requestID == id else { return }
                self.call = nil
                if let error {
                    self.fail(error, then: error.code == 410 ? .relistAfterGone : .rewatch)
                    return
                }
                self.watchEnded()
            }))
    }

    /// The server closed the watch (its `timeoutSeconds`): resume from the newest version. One
    /// that ends at once with nothing in it waits first, so a misbehaving server is not hammered.
    private func watchEnded() {
        stats.resumes += 1
        if watchEvents == 0 && Deadline.now() - watchOpenedAt < .seconds(1) {
            fail(KubernetesError(kind: .badResponse, message: "watch \(resource) ended at once"), then: .rewatch)
            return
        }
        logger.debug("watch ended; resuming", metadata: ["resource": "\(resource)", "resource_version": "\(resourceVersion ?? "")"])
        watch()
    }

    private func armIdleTimer(id: Int, limit: TimeAmount) {
        timer?.cancel()
        // Lazy: the timer re-arms for what is left instead of moving on every chunk.
        timer = loop.schedule(at: lastActivity + limit) { [weak self] in
            guard let self, self.requestID == id, self.phase == .watching else { return }
            let silent = Deadline.now() - self.lastActivity
            if silent < limit {
                self.armIdleTimer(id: id, limit: limit)
                return
            }
            self.stats.idleTimeouts += 1
            self.logger.warning("watch went silent; resuming", metadata: ["resource": "\(self.resource)", "silent": "\(silent)"])
            self.watch()
        }
    }

    private func watchLine(_ line: ArraySlice<UInt8>) {
        let event: WatchEvent
        do {
            guard let e = try WatchEvent.parse(line) else { return }
            event = e
        } catch {
            fail(KubernetesError(kind: .badResponse, message: "watch \(resource): bad event: \(error)"), then: .rewatch)
            return
        }
        let object = event.object
        switch event.type {
        case "ERROR":
            let status = try? JSONFields(object)
            let code = (try? status?.optionalInt("code")) ?? nil
            let error = KubernetesError(kind: .status(code: code ?? 500), reason: (try? status?.optionalString("reason")) ?? nil,
                                        message: ((try? status?.optionalString("message")) ?? nil) ?? "watch error event")
            fail(error, then: code == 410 ? .relistAfterGone : .rewatch)
            return
        case "BOOKMARK":
            stats.bookmarks += 1
        case "ADDED", "MODIFIED", "DELETED":
            stats.events += 1
            watchEvents += 1
            do { try sink.apply(WatchEventType(rawValue: event.type) ?? .modified, object) } catch {
                stats.malformedObjects += 1
                logger.debug("skipping a malformed watch object", metadata: ["resource": "\(resource)", "error": "\(error)"])
            }
        default:
            return
        }
        if let rv = event.resourceVersion { resourceVersion = rv }
    }

    // MARK: failure

    private enum Next { case relist, relistAfterGone, rewatch }

    private func fail(_ error: KubernetesError, then next: Next) {
        guard phase != .stopped else { return }
        dropRequest()
        lastError = error
        switch next {
        case .relistAfterGone:
            // Not a failure of the server: our version is too old. Relist at once.
            stats.relistsAfterGone += 1
            logger.info("watch version expired (410 Gone); relisting", metadata: ["resource": "\(resource)", "error": "\(error)"])
            list(continueToken: nil)
        case .relist, .rewatch:
            stats.failures += 1
            phase = .waiting
            let delay = backoff.next()
            logger.warning("Kubernetes \(next == .rewatch ? "watch" : "list") failed; retrying",
                           metadata: ["resource": "\(resource)", "error": "\(error)", "retry_in": "\(delay)"])
            let relist = next == .relist || resourceVersion == nil
            timer = loop.schedule(in: delay) { [weak self] in
                guard let self, self.phase == .waiting else { return }
                self.timer = nil
                if relist { self.list(continueToken: nil) } else { self.watch() }
            }
        }
    }
}
