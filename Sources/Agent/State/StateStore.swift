import Glibc
import Reactor

/// Loads and saves `AgentState` as JSON at `state.path`: written atomically (see AtomicFile),
/// mode 0600 (it may hold the cluster token), its directory created 0700 when missing.
public struct StateStore: Sendable {
    /// A state file is a few hundred bytes; anything near this is not ours.
    public static let maxBytes = 64 * 1024

    public let path: String

    public init(path: String) { self.path = path }

    /// The saved state, nil when there is none yet. Errors say what is wrong:
    /// * `.corrupt`: valid JSON whose content is not a state (a field missing or mistyped), or
    ///   an empty file: nothing in it can be used, so it may be replaced (`bootstrap` keeps a
    ///   `.corrupt` copy);
    /// * `.unparseable`: not JSON at all, so perhaps not ours: it is left alone;
    /// * `.unreadable`: permissions, too large, not a regular file (a FIFO would block the
    ///   start for ever): left alone too.
    /// The last two stop the start: the agent would otherwise make a new identity and
    /// register as a new cluster, and overwrite the file that held the old one.
    public func load() throws(StateError) -> AgentState? {
        let bytes: [UInt8]
        do {
            bytes = try SmallFile.read(path, limit: Self.maxBytes, regularFileOnly: true)
        } catch {
            switch error {
            case .notFound: return nil
            case .tooLarge(let limit): throw StateError(.unreadable, path: path, "larger than \(limit / 1024) KiB, so not a state file")
            case .system(let text): throw StateError(.unreadable, path: path, text)
            }
        }
        guard bytes.contains(where: { !$0.isJSONSpace }) else { throw StateError(.corrupt, path: path, "the file is empty") }
        let json: JSONValue
        do {
            json = try JSONParser.parse(bytes)
        } catch {
            throw StateError(.unparseable, path: path, "not valid JSON (\(error))")
        }
        let state: AgentState
        do {
            state = try AgentState(json: json)
        } catch {
            throw StateError(.corrupt, path: path, "\(error)")
        }
        guard !state.agentID.isEmpty else { throw StateError(.corrupt, path: path, "agent_id is empty") }
        return state
    }

    /// Where a corrupt file is moved before a fresh state replaces it.
    public var corruptCopyPath: String { path + ".corrupt" }

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
    /// when it changed. Warnings (a corrupt file that was replaced) are returned for the log;
    /// a file that cannot be read or parsed is an error (see `load`).
    public func bootstrap(configuredAgentID: String?, now: Int64 = Timestamp.nowSeconds()) throws(StateError)
        -> (state: AgentState, warnings: [String]) {
        var warnings: [String] = []
        var loaded: AgentState?
        do {
            loaded = try load()
        } catch {
            guard error.kind == .corrupt else { throw error }
            // Kept for a person to look at; a rename, so the bytes are exactly what was there.
            guard rename(path, corruptCopyPath) == 0 else {
                throw StateError(.unwritable, path: path, "cannot move the corrupt file to \(corruptCopyPath): \(SmallFile.errnoText())")
            }
            warnings.append(error.description)
        }
        let state: AgentState
        do { state = try AgentState.starting(from: loaded, configuredAgentID: configuredAgentID, now: now) } catch {
            throw StateError(.unwritable, path: path, error.description)
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
        /// Valid JSON that is not a state, or empty: starting fresh (the file kept as
        /// `.corrupt`) loses nothing that could be used.
        case corrupt
        /// Not JSON: perhaps not ours, so never replaced.
        case unparseable
        /// Cannot be read (permissions, size, kind of file): never replaced.
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
        case .corrupt: return "state file \(path) is corrupt (\(reason)); kept as \(path).corrupt, starting with a fresh state"
        case .unparseable: return "state file \(path) is \(reason); it is left as it is: fix it, or remove it to start as a new agent (state.path)"
        case .unreadable: return "cannot read state file \(path): \(reason); it holds the agent's identity: fix its permissions, or point state.path elsewhere"
        case .unwritable: return "cannot write state file \(path): \(reason)"
        }
    }
}

private extension UInt8 {
    var isJSONSpace: Bool { self == 0x20 || self == 0x0A || self == 0x0D || self == 0x09 }
}
