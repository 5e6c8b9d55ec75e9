/// Our direction of an SSH channel (RFC 4254 section 5.3): data, then EOF, then CLOSE. An EOF
/// or close asked for while data waits for the peer's window goes out after that data; once
/// either is asked for, no more data is taken. Every rule for moving on is here.
enum SSHChannelSendSide: Equatable {
    case open
    case eofWhenDrained
    case closeWhenDrained(eofFirst: Bool)
    case eofSent
    case closeSent

    /// What the channel must send or do after a transition.
    enum Action: Equatable { case none, sendEOF, close }

    var acceptsData: Bool { self == .open }
    var isCloseSent: Bool { self == .closeSent }

    /// `shutdownWrite()`. `drained`: nothing is queued.
    mutating func shutdown(drained: Bool) -> Action {
        switch self {
        case .open:
            if drained { self = .eofSent; return .sendEOF }
            self = .eofWhenDrained
        case .closeWhenDrained(eofFirst: false): self = .closeWhenDrained(eofFirst: true)
        case .eofWhenDrained, .closeWhenDrained, .eofSent, .closeSent: break   // already on its way, or past it
        }
        return .none
    }

    /// `closeWhenFlushed()`: a waiting EOF still goes first.
    mutating func closeWhenDrained(drained: Bool) -> Action {
        if drained { return .close }
        switch self {
        case .open: self = .closeWhenDrained(eofFirst: false)
        case .eofWhenDrained: self = .closeWhenDrained(eofFirst: true)
        case .eofSent: self = .closeWhenDrained(eofFirst: false)
        case .closeWhenDrained, .closeSent: break
        }
        return .none
    }

    /// The queue has just emptied. A close that also waited for an EOF sends it first
    /// (`.sendEOF` now, `.close` on the call that follows).
    mutating func drained() -> Action {
        switch self {
        case .eofWhenDrained: self = .eofSent; return .sendEOF
        case .closeWhenDrained(eofFirst: true): self = .closeWhenDrained(eofFirst: false); return .sendEOF
        case .closeWhenDrained(eofFirst: false): return .close
        case .open, .eofSent, .closeSent: return .none
        }
    }

    /// CLOSE is going out now (ours, or in answer to the peer's). False if it already went.
    mutating func sendClose() -> Bool {
        guard self != .closeSent else { return false }
        self = .closeSent
        return true
    }
}

/// The peer's direction of an SSH channel: data, then EOF, then CLOSE (EOF may be skipped).
enum SSHChannelReceiveSide: Equatable {
    case open
    case eofReceived
    case closeReceived

    /// No more data may come.
    var isFinished: Bool { self != .open }
}
