import Logging
import Reactor

/// The agent's state (`state.backend: secret`) in the Secret `pipeops-agent-state` of
/// `kubernetes.namespace`, so it survives the pod: `data` holds `agent_id`, `cluster_id`,
/// `cluster_token` and `updated_at` (base64, as Secrets carry bytes). Read at start, created on
/// the first one, updated with optimistic concurrency: each update carries the
/// `metadata.resourceVersion` it was based on, and a `409 Conflict` (someone else wrote in
/// between) is answered by reading the Secret again and writing on top of that. Fields other
/// writers own (labels, annotations) are kept. On the loop; calls go through `KubernetesClient`.
final class StateSecret {
    static let name = "pipeops-agent-state"
    /// How often one save re-reads and writes again after a conflict before it gives up (a
    /// later save tries again).
    static let conflictAttempts = 5

    unowned let loop: EventLoop
    let client: KubernetesClient
    let namespace: String
    let logger: Logger
    let callTimeout: TimeAmount
    /// The Secret as last read or written: the version the next update is based on.
    private var stored: JSONValue?
    /// A save in flight, and the newest state waiting for it to finish (saves never overlap).
    private var saving = false
    private var queued: AgentState?
    private var retryTimer: LoopTimer?
    private(set) var lastSaveError: String?

    init(loop: EventLoop, client: KubernetesClient, namespace: String, logger: Logger, callTimeout: TimeAmount = .seconds(10)) {
        self.loop = loop
        self.client = client
        self.namespace = namespace
        self.logger = logger
        self.callTimeout = callTimeout
    }

    var collectionPath: String { "/api/v1/namespaces/\(KubernetesQuery.encode(namespace))/secrets" }
    var objectPath: String { collectionPath + "/" + Self.name }
    /// `namespace/name`, for logs and `/ready`.
    var displayName: String { "\(namespace)/\(Self.name)" }

    // MARK: Load

    /// Reads the state (creating the Secret with a fresh state on the first start), applies
    /// `agent.id`, and answers with the state and the warnings to log.
    func load(configuredAgentID: String?, completion: @escaping (Result<(AgentState, [String]), KubernetesError>) -> Void) {
        read { [weak self] result in
            guard let self else { return }
            switch result {
            case .failure(let error):
                completion(.failure(error))
            case .success(let secret):
                var warnings: [String] = []
                var saved: AgentState?
                if let secret {
                    do { saved = try Self.state(in: secret) } catch {
                        warnings.append("Secret \(self.displayName) holds no usable state (\(error)); starting fresh, it will be overwritten")
                    }
                }
                let state: AgentState
                do { state = try AgentState.starting(from: saved, configuredAgentID: configuredAgentID, now: Timestamp.nowSeconds()) } catch {
                    completion(.failure(KubernetesError(kind: .configuration, message: "\(error)")))
                    return
                }
                guard state != saved else { completion(.success((state, warnings))); return }
                self.write(state, attemptsLeft: Self.conflictAttempts) { error in
                    if let error { completion(.failure(error)) } else { completion(.success((state, warnings))) }
                }
            }
        }
    }

    /// GET the Secret: nil when it does not exist yet.
    private func read(_ completion: @escaping (Result<JSONValue?, KubernetesError>) -> Void) {
        // get secrets pipeops-agent-state: the state at start, and again after a conflict.
        client.get(objectPath, verb: "get", timeout: callTimeout) { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(let object):
                self.stored = object
                completion(.success(object))
            case .failure(let error) where error.code == 404:
                self.stored = nil
                completion(.success(nil))
            case .failure(let error):
                completion(.failure(error))
            }
        }
    }

    // MARK: Save

    /// Writes `state` (after any save in flight; only the newest waiting state is written).
    /// Failures are logged and retried in a few seconds; conflicts at once.
    func save(_ state: AgentState) {
        queued = state
        guard !saving else { return }
        saveQueued()
    }

    private func saveQueued() {
        guard let state = queued else { return }
        queued = nil
        saving = true
        retryTimer?.cancel()
        retryTimer = nil
        write(state, attemptsLeft: Self.conflictAttempts) { [weak self] error in
            guard let self else { return }
            self.saving = false
            if let error {
                self.lastSaveError = "\(error)"
                self.logger.error("cannot write the state Secret; retrying", metadata: ["secret": "\(self.displayName)", "error": "\(error)"])
                if self.queued == nil { self.queued = state }
                self.retryTimer = self.loop.schedule(in: .seconds(5)) { [weak self] in
                    guard let self, !self.saving else { return }
                    self.saveQueued()
                }
                return
            }
            self.lastSaveError = nil
            self.saveQueued()
        }
    }

    /// Creates the Secret when none was read, else updates the one read (its resourceVersion);
    /// a conflict or a lost race to create re-reads and tries again.
    private func write(_ state: AgentState, attemptsLeft: Int, completion: @escaping (KubernetesError?) -> Void) {
        let finished: (Result<JSONValue, KubernetesError>) -> Void = { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(let object):
                self.stored = object
                completion(nil)
            case .failure(let error) where error.code == 409 && attemptsLeft > 1:
                self.logger.info("the state Secret changed under us; reading it again",
                                 metadata: ["secret": "\(self.displayName)", "reason": "\(error.reason ?? "-")"])
                self.read { [weak self] reread in
                    guard let self else { return }
                    if case .failure(let e) = reread { completion(e); return }
                    self.write(state, attemptsLeft: attemptsLeft - 1, completion: completion)
                }
            case .failure(let error):
                completion(error)
            }
        }
        if let stored {
            // update secrets pipeops-agent-state: based on the resourceVersion read, a 409 re-reads.
            client.write("PUT", objectPath, object: Self.updated(stored, with: state), verb: "update", timeout: callTimeout,
                         completion: finished)
        } else {
            // create secrets: the first start in this namespace (AlreadyExists when another replica won).
            client.write("POST", collectionPath, object: Self.newSecret(state, namespace: namespace), verb: "create",
                         timeout: callTimeout, completion: finished)
        }
    }

    // MARK: The object

    static func data(_ state: AgentState) -> JSONValue {
        var members = [JSONMember("agent_id", .string(Base64.encode(Array(state.agentID.utf8))))]
        if let c = state.clusterID { members.append(JSONMember("cluster_id", .string(Base64.encode(Array(c.utf8))))) }
        if let t = state.clusterToken { members.append(JSONMember("cluster_token", .string(Base64.encode(Array(t.utf8))))) }
        members.append(JSONMember("updated_at", .string(Base64.encode(Array(Timestamp.rfc3339(seconds: state.updatedAt).utf8)))))
        return .object(members)
    }

    static func newSecret(_ state: AgentState, namespace: String) -> JSONValue {
        .object([
            "apiVersion": .string("v1"), "kind": .string("Secret"),
            "metadata": .object(["name": .string(name), "namespace": .string(namespace),
                                 "labels": .object(["app.kubernetes.io/name": .string("pipeops-agent")])]),
            "type": .string("Opaque"), "data": data(state),
        ])
    }

    /// The Secret as read, with our `data` in place; metadata (and its resourceVersion) kept.
    static func updated(_ secret: JSONValue, with state: AgentState) -> JSONValue {
        guard case .object(var members) = secret else { return secret }
        members.removeAll { $0.key == "data" || $0.key == "stringData" }
        members.append(JSONMember("data", data(state)))
        return .object(members)
    }

    /// The state in a Secret's `data`; a shape error when it is not ours.
    static func state(in secret: JSONValue) throws(JSONShapeError) -> AgentState {
        let data = try JSONFields(secret).optionalObject("data")
        var members: [JSONMember] = []
        for key in ["agent_id", "cluster_id", "cluster_token", "updated_at"] {
            guard let encoded = try data?.optionalString(key) else { continue }
            guard let bytes = Base64.decode(encoded) else { throw JSONShapeError(path: "data.\(key)", reason: "not base64") }
            members.append(JSONMember(key, .string(String(decoding: bytes, as: UTF8.self))))
        }
        let state = try AgentState(json: .object(members))
        guard !state.agentID.isEmpty else { throw JSONShapeError(path: "data.agent_id", reason: "empty") }
        return state
    }
}
