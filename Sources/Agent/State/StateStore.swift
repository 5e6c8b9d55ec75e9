import Reactor

/// Loads and saves `AgentState` as JSON at `state.path`: written atomically (see AtomicFile),
/// mode 0600 (it may hold the cluster token), its directory created 0700 when missing.
public struct StateStore: Sendable {
    /// A state file is a few hundred bytes; anything near this is not ours.
    public static let maxBytes = 64 * 1024

    public let path: String

    public init(path: String) { self.path = path }

    /// The saved state, nil when there is none yet. A file that cannot be understood gives a
    /// `.corrupt` error: the agent can log it and start fresh (`loadOrStartFresh`).
    public func load() throws(StateError) -> AgentState? {
        let bytes: [UInt8]
        do {
            bytes = try SmallFile.read(path, limit: Self.maxBytes)
        } catch {
            switch error {
            case .notFound: return nil
            case .tooLarge(let limit): throw StateError(.corrupt, path: path, "larger than \(limit / 1024) KiB")
            case .system(let text): throw StateError(.unreadable, path: path, text)
            }
        }
        guard bytes.contains(where: { !$0.isJSONSpace }) else { throw StateError(.corrupt, path: path, "the file is empty") }
        let state: AgentState
        do {
            state = try AgentState(json: try JSONParser.parse(bytes))
        } catch let error as JSONParseError {
            throw StateError(.corrupt, path: path, "not valid JSON (\(error))")
        } catch {
            throw StateError(.corrupt, path: path, "\(error)")
        }
        guard !state.agentID.isEmpty else { throw StateError(.corrupt, path: path, "agent_id is empty") }
        return state
    }

    /// Like `load`, but a corrupt or unreadable file gives nil plus the message to log.
    public func loadOrStartFresh() -> (state: AgentState?, warning: String?) {
        do {
            return (try load(), nil)
        } catch {
            return (nil, error.description)
        }
    }

    /// Replaces the file atomically with `state`.
    public func save(_ state: AgentState) throws(StateError) {
        do {
            try AtomicFile.write(Array((state.json.text(pretty: true) + "\n").utf8), to: path, mode: 0o600, directoryMode: 0o700)
        } catch {
            throw StateError(.unwritable, path: path, error.message)
        }
    }

    /// The agent ID to use and the state to run with, following control-plane-api.md:
    /// `agent.id` from the config, else the saved one, else a new UUID v4. The state is saved
    /// when it changed. Warnings (a corrupt file that was replaced) are returned for the log.
    public func bootstrap(configuredAgentID: String?, now: Int64 = Timestamp.nowSeconds()) throws(StateError)
        -> (state: AgentState, warnings: [String]) {
        var warnings: [String] = []
        let (loaded, warning) = loadOrStartFresh()
        if let warning { warnings.append(warning) }
        var state: AgentState
        if let loaded {
            state = loaded
        } else {
            let id: String
            if let configuredAgentID {
                id = configuredAgentID
            } else {
                do { id = try RandomUUID.v4() } catch { throw StateError(.unwritable, path: path, error.description) }
            }
            state = AgentState(agentID: id, updatedAt: now)
        }
        if let configuredAgentID, configuredAgentID != state.agentID {
            // The configured ID wins; the cluster registration stays (same machine, same cluster).
            state.agentID = configuredAgentID
            state.updatedAt = now
        }
        if state != loaded {
            try save(state)
        }
        return (state, warnings)
    }
}

/// A problem with the state file; `description` is the whole message for the log.
public struct StateError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The content cannot be understood; starting fresh (and overwriting it) is safe.
        case corrupt
        case unreadable
        case unwritable
    }

    public let kind: Kind
    public let path: String
    public let reason: String

    init(_ kind: Kind, path: String, _ reason: String) {
        self.kind = kind
        self.path = path
        self.reason = reason
    }

    public var description: String {
        switch kind {
        case .corrupt: return "state file \(path) is corrupt (\(reason)); starting with a fresh state, it will be overwritten"
        case .unreadable: return "cannot read state file \(path): \(reason); starting with a fresh state"
        case .unwritable: return "cannot write state file \(path): \(reason)"
        }
    }
}

private extension UInt8 {
    var isJSONSpace: Bool { self == 0x20 || self == 0x0A || self == 0x0D || self == 0x09 }
}
