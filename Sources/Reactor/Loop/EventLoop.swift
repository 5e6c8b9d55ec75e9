import CShims
import Glibc
import Logging

/// One thread, one poller (epoll or io_uring: `Poller`). Each turn of `run()` has four named phases:
///   1. poll      wait for readiness, with a timeout set by the nearest timer (none: wait forever)
///   2. dispatch  ready file descriptors to their handlers
///   3. timers    fire every timer whose deadline has passed, in (deadline, FIFO) order
///   4. deferred  run closures queued with `deferred(_:)` during this turn
/// Posted closures from other threads arrive through an eventfd and run during dispatch.
///
/// Invariant: everything here is touched only by the thread that calls `run()`. The type is
/// deliberately not Sendable; `handle` is the only thing that may cross threads.
public final class EventLoop {
    struct Registration {
        let handler: IOHandler
        let generation: UInt32
        var interest: IOEvents
    }

    private let poller: any Poller
    private var registrations: [Registration?] = []   // indexed by fd
    private var nextGeneration: UInt32 = 1
    var timers = TimerHeap()
    private var timerSequence: UInt64 = 0
    private var deferredTasks: [() -> Void] = []
    private let postQueue: PostQueue
    private var postDrainer: PostDrainer?
    private var signalWatcher: SignalWatcher?
    private var stopRequested = false
    fileprivate var wakeTargets: [Int: () -> Void] = [:]
    private var nextWakeTarget = 0
    private var events: [shim_epoll_event]

    /// One read buffer shared by every connection on this loop: a read lands here and is handed
    /// to the protocol at once, so an idle connection holds no read memory of its own.
    public let sharedReadBuffer: UnsafeMutableRawBufferPointer

    /// Cached at the start of each turn; cheap to read from handlers.
    public private(set) var now: Deadline
    public private(set) var iterations: UInt64 = 0
    public private(set) var eventsDispatched: UInt64 = 0
    public private(set) var timersFired: UInt64 = 0
    /// How late the last timers fired; measured from the clock read the timer phase does anyway.
    public private(set) var timerLag = TimerLag()
    public let logger: Logger
    public let chunkPool = ChunkPool()

    /// The kernel interface this loop waits on.
    public var backend: LoopBackend { poller.backend }
    public var handle: EventLoopHandle { EventLoopHandle(queue: postQueue) }
    public var registeredCount: Int { registrations.reduce(0) { $0 + ($1 == nil ? 0 : 1) } }
    public var pendingTimerCount: Int { timers.count }

    /// `backend`: `.ioUring` throws when the kernel, seccomp or `kernel.io_uring_disabled`
    /// refuses it; the error names the reason (`io_uring_setup: EPERM ...`).
    public init(backend: LoopBackend = .epoll, readBufferSize: Int = 256 * 1024, logger: Logger = Logger(label: "reactor")) throws(SocketError) {
        switch backend {
        case .epoll: poller = try EpollPoller()
        case .ioUring: poller = try IOURingPoller()
        }
        postQueue = try PostQueue()
        events = Array(repeating: shim_epoll_event(), count: 256)
        sharedReadBuffer = .allocate(byteCount: readBufferSize, alignment: 16)
        now = .now()
        var l = logger
        l[metadataKey: "component"] = "loop"
        self.logger = l
        let drainer = PostDrainer(queue: postQueue)
        postDrainer = drainer
        try register(fd: postQueue.eventFD, interest: .readable, handler: drainer, drainsEachWake: true)
        drainer.loop = self
    }

    deinit {
        sharedReadBuffer.deallocate()
    }

    // MARK: File descriptors

    /// Starts watching `fd`. The loop keeps `handler` alive until `deregister(fd:)`.
    public func register(fd: Int32, interest: IOEvents, handler: IOHandler) throws(SocketError) {
        try register(fd: fd, interest: interest, handler: handler, drainsEachWake: false)
    }

    /// `drainsEachWake`: the handler consumes all readiness on each call, so the poller may
    /// notify it on edges only (see `Poller.add`).
    func register(fd: Int32, interest: IOEvents, handler: IOHandler, drainsEachWake: Bool) throws(SocketError) {
        let index = Int(fd)
        if index >= registrations.count {
            registrations.append(contentsOf: repeatElement(nil, count: max(index + 1 - registrations.count, 64)))
        }
        let generation = nextGeneration
        nextGeneration &+= 1
        if nextGeneration == 0 { nextGeneration = 1 }
        try poller.add(fd: fd, interest: interest, token: Self.token(fd, generation), drainsEachWake: drainsEachWake)
        registrations[index] = Registration(handler: handler, generation: generation, interest: interest)
    }

    /// Changes what `fd` is watched for; no system call when nothing changes.
    public func setInterest(fd: Int32, _ interest: IOEvents) {
        let index = Int(fd)
        guard index < registrations.count, var reg = registrations[index], reg.interest != interest else { return }
        do {
            try poller.modify(fd: fd, interest: interest, token: Self.token(fd, reg.generation))
            reg.interest = interest
            registrations[index] = reg
        } catch {
            logger.error("interest change failed", metadata: ["fd": "\(fd)", "error": "\(error)"])
        }
    }

    public func interest(fd: Int32) -> IOEvents? {
        Int(fd) < registrations.count ? registrations[Int(fd)]?.interest : nil
    }

    /// Stops watching `fd`. Call it before closing the descriptor.
    public func deregister(fd: Int32) {
        let index = Int(fd)
        guard index < registrations.count, registrations[index] != nil else { return }
        poller.remove(fd: fd)
        registrations[index] = nil
    }

    private static func token(_ fd: Int32, _ generation: UInt32) -> UInt64 {
        UInt64(UInt32(bitPattern: fd)) | (UInt64(generation) << 32)
    }

    // MARK: Timers and deferred work

    /// Runs `callback` once, `delay` from now. Keep the returned timer to cancel it.
    @discardableResult
    public func schedule(in delay: TimeAmount, _ callback: @escaping () -> Void) -> LoopTimer {
        schedule(at: Deadline.now() + delay, callback)
    }

    @discardableResult
    public func schedule(at deadline: Deadline, _ callback: @escaping () -> Void) -> LoopTimer {
        timerSequence &+= 1
        let timer = LoopTimer(loop: self, deadline: deadline, sequence: timerSequence, callback: callback)
        timers.insert(timer)
        return timer
    }

    /// Runs `task` at the end of the current turn (after I/O and timers), before waiting again.
    public func deferred(_ task: @escaping () -> Void) {
        deferredTasks.append(task)
    }

    /// A handle that other threads may keep to have `body` run on this loop (through the post
    /// queue, the loop's only cross-thread door). `body` stays registered for the loop's life.
    public func makeWaker(_ body: @escaping () -> Void) -> LoopWaker {
        nextWakeTarget += 1
        wakeTargets[nextWakeTarget] = body
        return LoopWaker(handle: handle, target: nextWakeTarget)
    }

    // MARK: Signals

    /// SIGINT/SIGTERM call `onShutdown`, SIGHUP calls `onReload`; SIGPIPE is ignored.
    /// Call this from the main thread before any other thread starts, so every thread
    /// inherits the blocked signal mask and the signals arrive only through the signalfd.
    public func watchLifecycleSignals(onShutdown: @escaping (Int32) -> Void, onReload: @escaping () -> Void) throws(SocketError) {
        let watcher = try SignalWatcher(onShutdown: onShutdown, onReload: onReload)
        try register(fd: watcher.fd, interest: .readable, handler: watcher, drainsEachWake: true)
        signalWatcher = watcher
    }

    // MARK: Running

    /// Turns the loop until `stop()` is called.
    public func run() {
        stopRequested = false
        while !stopRequested {
            runOnce()
        }
        runDeferred()
    }

    /// Turns until `condition` holds or `timeout` passes; returns whether the condition held.
    /// Meant for tests and tools that drive a loop to a goal.
    @discardableResult
    public func run(until condition: () -> Bool, timeout: TimeAmount) -> Bool {
        let limit = Deadline.now() + timeout
        stopRequested = false
        while !condition() {
            if Deadline.now() >= limit || stopRequested { return condition() }
            runOnce(maxWait: limit)
        }
        return true
    }

    public func stop() { stopRequested = true }

    /// One turn: poll, dispatch, timers, deferred.
    public func runOnce(maxWait: Deadline? = nil) {
        iterations &+= 1
        // Phase 1: poll.
        let timeout = pollTimeout(maxWait: maxWait)
        let count: Int
        do {
            count = try events.withUnsafeMutableBufferPointer { buf throws(SocketError) in
                try poller.wait(into: buf, timeoutMilliseconds: timeout)
            }
        } catch {
            logger.critical("waiting for events failed", metadata: ["backend": "\(backend)", "error": "\(error)"])
            count = 0
        }
        now = .now()
        // Phase 2: dispatch.
        for i in 0..<count {
            let ev = events[i]
            let fd = Int(UInt32(truncatingIfNeeded: ev.data))
            let generation = UInt32(truncatingIfNeeded: ev.data >> 32)
            // A handler earlier in this batch may have closed this fd (and another
            // registration may have reused it): the generation tells stale events apart.
            guard fd < registrations.count, let reg = registrations[fd], reg.generation == generation else { continue }
            eventsDispatched &+= 1
            reg.handler.handleIO(IOEvents(rawValue: ev.events))
        }
        // Phase 3: timers.
        runDueTimers()
        // Phase 4: deferred.
        runDeferred()
    }

    private func pollTimeout(maxWait: Deadline?) -> Int32 {
        if !deferredTasks.isEmpty { return 0 }
        var wake = timers.first?.deadline
        if let m = maxWait { wake = wake.map { min($0, m) } ?? m }
        guard let target = wake else { return -1 }
        let current = Deadline.now()
        if target <= current { return 0 }
        // Round up so a timer is never woken for a fraction of a millisecond too early.
        let ms = (target.uptimeNanoseconds - current.uptimeNanoseconds + 999_999) / 1_000_000
        return Int32(min(ms, UInt64(Int32.max)))
    }

    /// Fires the timers that are due. `now` is refreshed first, so a callback never sees a time
    /// before its own deadline; and only timers that existed when the phase began fire in it: a
    /// callback that schedules a timer already due (re-arming at a past deadline) gets it on the
    /// next turn, after a poll, instead of spinning here forever.
    private func runDueTimers() {
        let current = Deadline.now()
        now = current
        let lastSequence = timerSequence
        while let top = timers.first, top.deadline <= current, top.sequence <= lastSequence {
            _ = timers.popFirst()
            let callback = top.callback
            top.callback = nil
            timersFired &+= 1
            timerLag.record(current - top.deadline)
            callback?()
        }
    }

    private func runDeferred() {
        while !deferredTasks.isEmpty {
            let tasks = deferredTasks
            deferredTasks.removeAll(keepingCapacity: true)
            for task in tasks { task() }
        }
    }

    fileprivate func runPosted(_ tasks: [PostQueue.Task]) {
        for task in tasks { task(self) }
    }
}

/// Wakes for the post queue's eventfd and runs what other threads posted.
private final class PostDrainer: IOHandler {
    let queue: PostQueue
    // Not `weak`: a weak reference moves the loop's reference counts to a side table, which
    // makes every `unowned` use of the loop slower. The loop owns this drainer, so it outlives it.
    unowned(unsafe) var loop: EventLoop?
    init(queue: PostQueue) { self.queue = queue }
    func handleIO(_ events: IOEvents) {
        loop?.runPosted(queue.drain())
    }
}

/// Reads the lifecycle signalfd and turns signals into callbacks.
private final class SignalWatcher: IOHandler {
    let fd: Int32
    let onShutdown: (Int32) -> Void
    let onReload: () -> Void

    init(onShutdown: @escaping (Int32) -> Void, onReload: @escaping () -> Void) throws(SocketError) {
        let fd = shim_signalfd_for_lifecycle()
        guard fd >= 0 else { throw SocketError(operation: "signalfd") }
        self.fd = fd
        self.onShutdown = onShutdown
        self.onReload = onReload
    }

    deinit { Glibc.close(fd) }

    func handleIO(_ events: IOEvents) {
        while true {
            let signo = shim_signalfd_read(fd)
            if signo <= 0 { return }
            if signo == SIGHUP { onReload() } else { onShutdown(signo) }
        }
    }
}

/// Runs a loop-side closure registered with `EventLoop.makeWaker`, from any thread.
public struct LoopWaker: Sendable {
    let handle: EventLoopHandle
    let target: Int
    public func wake() {
        let target = self.target
        handle.post { loop in loop.wakeTargets[target]?() }
    }
}
