/// The sending direction of a `TCPConnection`, with every rule for moving between its states
/// here: once a FIN or a close is asked for, no more bytes are taken, and a FIN or close asked
/// for while bytes are queued waits for the queue to drain.
enum TCPSendSide: Equatable {
    case open
    case finWhenDrained        // shutdownWrite() with bytes queued: FIN goes after them
    case closeWhenDrained      // closeWhenFlushed() with bytes queued: close after them
    case finSent

    /// What the connection must do after a transition.
    enum Action: Equatable { case none, sendFIN, close }

    var acceptsWrites: Bool { self == .open }
    var isFinSent: Bool { self == .finSent }

    /// `shutdownWrite()`. `canSendNow`: connected with nothing queued.
    mutating func shutdown(canSendNow: Bool) -> Action {
        guard self == .open else { return .none }   // already finishing: the first request stands
        if canSendNow { self = .finSent; return .sendFIN }
        self = .finWhenDrained
        return .none
    }

    /// `closeWhenFlushed()`: closing wins over a FIN still waiting.
    mutating func closeWhenDrained(canCloseNow: Bool) -> Action {
        if canCloseNow { return .close }
        if self != .finSent { self = .closeWhenDrained }
        return .none
    }

    /// The write queue has just emptied.
    mutating func drained() -> Action {
        switch self {
        case .finWhenDrained: self = .finSent; return .sendFIN
        case .closeWhenDrained: return .close
        case .open, .finSent: return .none
        }
    }
}
