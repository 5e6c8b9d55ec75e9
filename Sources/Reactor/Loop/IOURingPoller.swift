import CShims
import Glibc

/// The loop on io_uring, using its poll operations: the drop-in first step of issue 14, before
/// any socket call moves to completion I/O. Design choices:
///
/// * **Level-triggered by re-arming.** io_uring's multishot poll fires on wake-ups (edges), but
///   the handlers rely on epoll's level-triggered contract (`Poller`): `TCPConnection` reads at
///   most 8 times per wake-up and `TCPListener` accepts at most 64. So an fd gets a one-shot
///   `IORING_OP_POLL_ADD`, and after its completion is dispatched it is armed again, with the
///   interest of that moment, in the next turn's submission; arming checks readiness, so an fd
///   that is still ready completes again at once, just as epoll would report it again.
/// * **Multishot where it is safe.** Handlers that drain everything each time (the post
///   queue's eventfd, the signalfd: `drainsEachWake`) get a multishot poll that stays armed; a
///   completion without `IORING_CQE_F_MORE` (the kernel ended it) re-arms it. The probe
///   (`shim_uring_create`) refuses kernels without multishot poll (before 5.13).
/// * **Half-closed peers.** io_uring always adds `EPOLLRDHUP` to a poll's mask, which epoll
///   reports only when asked. A socket whose peer shut its write side while the loop is not
///   reading would complete every re-armed one-shot poll at once and spin the loop; so a
///   completion with nothing the handler asked for (nor error, nor hangup) moves the fd to a
///   multishot poll that wakes on changes only (writable again, reset, full hangup), and the
///   next interest change moves it back.
/// * **One system call per turn.** Arming, re-arming and cancelling only fill submission
///   slots; `wait` hands them to the kernel and waits for the first completion in one
///   `io_uring_enter`, with the nearest timer as its timeout. Interest changes cost no system
///   call (epoll pays an `epoll_ctl` for each).
/// * **Stale completions by arm id.** An interest change cancels the poll in flight and arms a
///   new one; a removed fd's poll is cancelled. Each arm gets its own id in the completion's
///   `user_data` (fd in the low 32 bits, arm id in the high ones), so a completion of a poll
///   that is no longer the armed one (cancelled, or finished before its cancellation) is
///   dropped, also when the fd number was reused meanwhile.
/// * **Idle cost.** 24 bytes per fd here plus one pending poll request in the kernel (not in
///   the process's RSS); no buffer per connection: reads still land in the loop's shared
///   buffer. A closed fd's file stays referenced by its poll until the cancellation is
///   submitted at the end of the same turn.
/// * **COOP_TASKRUN** (kernel 5.19+, dropped on older kernels): completions are run when the
///   loop enters the kernel anyway instead of interrupting it; the loop is single-threaded.
final class IOURingPoller: Poller {
    private enum Mode: UInt8 {
        case unused
        /// One-shot polls, re-armed after each completion: epoll's level-triggered contract.
        case level
        /// A multishot poll, for handlers that drain everything each time.
        case edge
        /// A multishot poll for an fd whose peer half-closed while nothing reads it.
        case halfClosed
    }

    private struct Slot {
        var token: UInt64 = 0
        var interest: UInt32 = 0
        /// The id of the poll in flight for this fd; 0 when none is.
        var armed: UInt32 = 0
        var mode: Mode = .unused
    }

    private let ring: OpaquePointer
    private var slots: [Slot] = []
    private var rearm: [Int32] = []
    private var nextArmID: UInt32 = 0
    private let completions: UnsafeMutableBufferPointer<shim_uring_completion>
    var backend: LoopBackend { .ioUring }

    /// Sets up the ring; the error names what refused it (`io_uring_setup: EPERM`, ...).
    init(entries: UInt32 = 1024, completionBatch: Int = 256) throws(SocketError) {
        var error: Int32 = 0
        guard let ring = shim_uring_create(entries, &error) else {
            throw SocketError(operation: error == EOPNOTSUPP ? "io_uring poll" : "io_uring_setup", errno: error)
        }
        self.ring = ring
        completions = .allocate(capacity: completionBatch)
    }

    deinit {
        shim_uring_destroy(ring)
        completions.deallocate()
    }

    func add(fd: Int32, interest: IOEvents, token: UInt64, drainsEachWake: Bool) throws(SocketError) {
        let index = Int(fd)
        guard fd >= 0 else { throw SocketError(operation: "io_uring poll (fd=\(fd))", errno: EBADF) }
        if index >= slots.count {
            slots.append(contentsOf: repeatElement(Slot(), count: max(index + 1 - slots.count, 64)))
        }
        guard slots[index].mode == .unused else { throw SocketError(operation: "io_uring poll (fd=\(fd))", errno: EEXIST) }
        slots[index] = Slot(token: token, interest: interest.rawValue, armed: 0,
                            mode: drainsEachWake ? .edge : .level)
        try arm(fd)
    }

    func modify(fd: Int32, interest: IOEvents, token: UInt64) throws(SocketError) {
        let index = Int(fd)
        guard index < slots.count, slots[index].mode != .unused else {
            throw SocketError(operation: "io_uring poll update (fd=\(fd))", errno: ENOENT)
        }
        slots[index].interest = interest.rawValue
        slots[index].token = token
        if slots[index].mode == .halfClosed { slots[index].mode = .level }
        // Not armed: its completion is being dispatched and the re-arm takes the new interest.
        guard slots[index].armed != 0 else { return }
        try disarm(fd)
        try arm(fd)
    }

    func remove(fd: Int32) {
        let index = Int(fd)
        guard index < slots.count, slots[index].mode != .unused else { return }
        try? disarm(fd)
        slots[index] = Slot()
    }

    func wait(into events: UnsafeMutableBufferPointer<shim_epoll_event>, timeoutMilliseconds: Int32) throws(SocketError) -> Int {
        for fd in rearm where Int(fd) < slots.count && slots[Int(fd)].mode != .unused && slots[Int(fd)].armed == 0 {
            try arm(fd)
        }
        rearm.removeAll(keepingCapacity: true)
        let rc = shim_uring_submit_and_wait(ring, timeoutMilliseconds)
        if rc < 0 { throw SocketError(operation: "io_uring_enter", errno: -rc) }
        let reaped = Int(shim_uring_reap(ring, completions.baseAddress, Int32(min(events.count, completions.count))))
        var count = 0
        for i in 0..<reaped {
            let c = completions[i]
            guard c.user_data != 0 else { continue }   // a cancellation's own completion
            let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: c.user_data))
            let armID = UInt32(truncatingIfNeeded: c.user_data >> 32)
            let index = Int(fd)
            guard index < slots.count, slots[index].armed == armID else { continue }   // stale
            let multishot = slots[index].mode != .level
            if !(multishot && c.res >= 0 && c.flags & shim_uring_cqe_more() != 0) {
                slots[index].armed = 0
                // A failed poll (a bad fd) is reported once as an error and not re-armed.
                if c.res >= 0 { rearm.append(fd) }
            }
            // What epoll would report: the interest, plus error and hangup.
            let ready = c.res >= 0 ? UInt32(c.res) & (slots[index].interest | Self.alwaysReported) : IOEvents.error.rawValue
            if ready == 0 {
                // Only EPOLLRDHUP: from now on wake on changes, not on that level (it is in
                // `rearm` already and is armed again as multishot).
                if slots[index].mode == .level { slots[index].mode = .halfClosed }
                continue
            }
            events[count] = shim_epoll_event(events: ready, data: slots[index].token)
            count += 1
        }
        return count
    }

    private static let alwaysReported = IOEvents.error.rawValue | IOEvents.hangup.rawValue

    private func arm(_ fd: Int32) throws(SocketError) {
        nextArmID &+= 1
        if nextArmID == 0 { nextArmID = 1 }
        let slot = slots[Int(fd)]
        let rc = shim_uring_poll_add(ring, fd, slot.interest, userData(fd, nextArmID), slot.mode == .level ? 0 : 1)
        if rc < 0 { throw SocketError(operation: "io_uring poll (fd=\(fd))", errno: -rc) }
        slots[Int(fd)].armed = nextArmID
    }

    private func disarm(_ fd: Int32) throws(SocketError) {
        let armed = slots[Int(fd)].armed
        guard armed != 0 else { return }
        slots[Int(fd)].armed = 0
        let rc = shim_uring_poll_remove(ring, userData(fd, armed))
        if rc < 0 { throw SocketError(operation: "io_uring poll remove (fd=\(fd))", errno: -rc) }
    }

    private func userData(_ fd: Int32, _ armID: UInt32) -> UInt64 {
        UInt64(UInt32(bitPattern: fd)) | UInt64(armID) << 32
    }
}
