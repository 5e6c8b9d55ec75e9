import Logging
import Reactor

/// One active agent per cluster: leader election on the `coordination.k8s.io/v1` Lease
/// `pipeops-agent` in `kubernetes.namespace`, the scheme of client-go's `leaderelection`:
///
/// * Read the Lease. None: create it holding it. Held by us, or expired: update it (its
///   `resourceVersion`, so of two candidates only one wins; the other gets a 409) with us as
///   `holderIdentity`, a fresh `renewTime`, `acquireTime` and `leaseTransitions + 1` when it
///   changes hands.
/// * Expired means: the record (holder, renewTime, version) has not changed for
///   `leaseDurationSeconds` as measured on our own monotonic clock since we first saw it, as
///   client-go does, so clocks that disagree between nodes do not matter.
/// * The holder renews every `renewInterval`; a candidate, or a holder whose renewal failed,
///   tries again every `retryInterval`. A holder that has not renewed for `renewDeadline`
///   (shorter than the lease duration) stops leading: it may no longer be the leader.
final class LeaseElection {
    static let name = "pipeops-agent"

    struct Timing {
        var leaseDuration = TimeAmount.seconds(15)
        var renewInterval = TimeAmount.seconds(5)
        var retryInterval = TimeAmount.seconds(2)
        var renewDeadline = TimeAmount.seconds(10)
        var callTimeout = TimeAmount.seconds(5)
    }

    enum Role: Equatable {
        /// No answer yet (or the last attempt failed and we did not lead).
        case candidate(lastError: String?)
        /// Someone else holds an unexpired Lease; `until` is its renewTime plus its duration.
        case standby(holder: String, until: String)
        case leading
    }

    /// What the Lease said when we last read it; a change restarts the expiry clock.
    struct Record: Equatable {
        var holder: String
        var durationSeconds: Int
        var acquireTime: String?
        var renewTime: String?
        var transitions: Int
        var resourceVersion: String
    }

    unowned let loop: EventLoop
    let client: KubernetesClient
    let namespace: String
    let identity: String
    let timing: Timing
    let logger: Logger
    var onStartedLeading: () -> Void = {}
    var onStoppedLeading: (_ why: String) -> Void = { _ in }
    private(set) var role: Role = .candidate(lastError: nil)
    private var observed: (record: Record, at: Deadline)?
    private var lastRenewal: Deadline?
    private var timer: LoopTimer?
    private var call: KubernetesClient.Call?
    private var stopped = false

    init(loop: EventLoop, client: KubernetesClient, namespace: String, identity: String, timing: Timing = Timing(), logger: Logger) {
        self.loop = loop
        self.client = client
        self.namespace = namespace
        self.identity = identity
        self.timing = timing
        self.logger = logger
    }

    var collectionPath: String { "/apis/coordination.k8s.io/v1/namespaces/\(KubernetesQuery.encode(namespace))/leases" }
    var objectPath: String { collectionPath + "/" + Self.name }

    func start() {
        logger.info("leader election: competing for the Lease", metadata: ["lease": "\(namespace)/\(Self.name)", "identity": "\(identity)"])
        attempt()
    }

    func stop() {
        stopped = true
        timer?.cancel()
        timer = nil
        call?.cancel()
        call = nil
    }

    private func schedule(in delay: TimeAmount) {
        timer?.cancel()
        timer = loop.schedule(in: delay) { [weak self] in
            self?.timer = nil
            self?.attempt()
        }
    }

    /// One round: read the Lease, then create, renew, take over, or stand by.
    private func attempt() {
        guard !stopped else { return }
        // get leases pipeops-agent: the holder and its expiry, before every renewal or takeover.
        call = client.get(objectPath, verb: "get", timeout: timing.callTimeout) { [weak self] result in
            guard let self, !self.stopped else { return }
            self.call = nil
            switch result {
            case .failure(let error) where error.code == 404:
                // create leases: nobody ever held it (a lost race answers 409 AlreadyExists).
                self.call = self.client.write("POST", self.collectionPath, object: self.lease(from: nil), verb: "create",
                                              timeout: self.timing.callTimeout) { [weak self] in self?.written($0) }
            case .failure(let error):
                self.failed("cannot read the Lease: \(error)")
            case .success(let object):
                self.read(object)
            }
        }
    }

    private func read(_ object: JSONValue) {
        let record: Record
        do { record = try Self.record(object) } catch {
            failed("the Lease is not one we can read: \(error)")
            return
        }
        let now = loop.now
        if observed?.record != record { observed = (record, now) }
        let observedAt = observed?.at ?? now
        let expired = now - observedAt >= .seconds(Int64(max(1, record.durationSeconds)))
        if !record.holder.isEmpty, record.holder != identity, !expired {
            let until = record.renewTime.flatMap { Timestamp.parseRFC3339($0) }
                .map { Timestamp.rfc3339(seconds: $0 + Int64(record.durationSeconds)) } ?? "unknown"
            let standby = Role.standby(holder: record.holder, until: until)
            if role == .leading { stopLeading("the Lease is held by \(record.holder)") }
            if case .standby(let previous, _) = role, previous == record.holder {} else {
                logger.info("leader election: standing by", metadata: ["holder": "\(record.holder)", "until": "\(until)"])
            }
            role = standby
            schedule(in: timing.retryInterval)
            return
        }
        if record.holder != identity && !record.holder.isEmpty {
            logger.info("leader election: the Lease expired; taking it over", metadata: ["previous_holder": "\(record.holder)"])
        }
        // update leases pipeops-agent: renew ours, or take over an expired one (resourceVersion).
        call = client.write("PUT", objectPath, object: lease(from: (object, record)), verb: "update",
                            timeout: timing.callTimeout) { [weak self] in self?.written($0) }
    }

    /// The answer to a create or an update: we hold the Lease now, or we do not know.
    private func written(_ result: Result<JSONValue, KubernetesError>) {
        guard !stopped else { return }
        call = nil
        switch result {
        case .success(let object):
            lastRenewal = loop.now
            if let record = try? Self.record(object) { observed = (record, loop.now) }
            if role != .leading {
                role = .leading
                logger.info("leader election: leading", metadata: ["identity": "\(identity)"])
                onStartedLeading()
            }
            schedule(in: timing.renewInterval)
        case .failure(let error):
            failed(error.code == 409 ? "another agent wrote the Lease first (\(error))" : "cannot write the Lease: \(error)")
        }
    }

    private func failed(_ why: String) {
        if role == .leading, let last = lastRenewal, loop.now - last < timing.renewDeadline {
            logger.warning("leader election: renewal failed; retrying", metadata: ["error": "\(why)"])
        } else {
            if role == .leading { stopLeading("not renewed for \(timing.renewDeadline): \(why)") }
            logger.debug("leader election: attempt failed", metadata: ["error": "\(why)"])
            if case .standby = role {} else { role = .candidate(lastError: why) }
        }
        schedule(in: timing.retryInterval)
    }

    private func stopLeading(_ why: String) {
        role = .candidate(lastError: why)
        logger.error("leader election: no longer leading; stopping the tunnel and the control-plane work", metadata: ["reason": "\(why)"])
        onStoppedLeading(why)
    }

    /// The Lease to write: a new one, or `current` renewed (ours) or taken over (expired).
    private func lease(from current: (object: JSONValue, record: Record)?) -> JSONValue {
        let now = Timestamp.rfc3339(nanoseconds: Timestamp.nowNanoseconds(), fractionDigits: 6)
        let ours = current?.record.holder == identity
        let spec: JSONValue = .object([
            "holderIdentity": .string(identity),
            "leaseDurationSeconds": .int(timing.leaseDuration.nanoseconds / 1_000_000_000),
            "acquireTime": .string(ours ? current?.record.acquireTime ?? now : now),
            "renewTime": .string(now),
            "leaseTransitions": .int((current?.record.transitions ?? 0) + (current == nil || ours ? 0 : 1)),
        ])
        guard let current, case .object(var members) = current.object else {
            return .object([
                "apiVersion": .string("coordination.k8s.io/v1"), "kind": .string("Lease"),
                "metadata": .object(["name": .string(Self.name), "namespace": .string(namespace)]),
                "spec": spec,
            ])
        }
        members.removeAll { $0.key == "spec" }
        members.append(JSONMember("spec", spec))
        return .object(members)
    }

    static func record(_ lease: JSONValue) throws(JSONShapeError) -> Record {
        let fields = try JSONFields(lease)
        let spec = try fields.optionalObject("spec")
        let rv = try fields.optionalObject("metadata")?.optionalString("resourceVersion") ?? ""
        return Record(holder: try spec?.optionalString("holderIdentity") ?? "",
                      durationSeconds: try spec?.optionalInt("leaseDurationSeconds") ?? 15,
                      acquireTime: try spec?.optionalString("acquireTime"),
                      renewTime: try spec?.optionalString("renewTime"),
                      transitions: try spec?.optionalInt("leaseTransitions") ?? 0,
                      resourceVersion: rv)
    }
}
