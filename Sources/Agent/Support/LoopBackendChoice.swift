import Glibc
import Reactor

/// Builds the agent's event loop on the backend `reactor.backend` asks for. The rules, so that
/// the choice never surprises:
/// * `epoll`: epoll.
/// * `io_uring`: io_uring, or a startup error that says what refused it (seccomp profiles of
///   container runtimes, `kernel.io_uring_disabled`, kernels before 5.13). Never a quiet fallback.
/// * `auto`: epoll with debug logging (`--log-level debug`, `make strace`), because io_uring's
///   I/O does not show in strace and debugging with strace is one of this agent's jobs. Else
///   `preferred` (the backend bench/reactor.sh measured faster, `measuredFaster`); when that is
///   io_uring the probe is the ring's own set-up, and a refusal falls back to epoll with one
///   note that says why.
/// `PIPEOPS_IO_URING_PROBE_FAIL=EPERM` (or ENOSYS, EACCES, ENOMEM, EOPNOTSUPP) makes the
/// io_uring set-up fail with that errno before it is tried, as a seccomp filter would: the
/// fallback's test hook, usable on a machine that allows io_uring.
public enum LoopBackendChoice {
    /// What `auto` picks where both work: see the README's "Loop backends" for the numbers.
    public static let measuredFaster: LoopBackend = .epoll

    public static let probeFailureVariable = "PIPEOPS_IO_URING_PROBE_FAIL"
    static let injectableErrors: [String: Int32] = [
        "EPERM": EPERM, "ENOSYS": ENOSYS, "EACCES": EACCES, "ENOMEM": ENOMEM, "EOPNOTSUPP": EOPNOTSUPP,
    ]

    public struct StartError: Error, CustomStringConvertible {
        public let description: String
    }

    /// The loop, and the one line to log when `auto` did not get `preferred` (nil otherwise).
    public static func makeLoop(_ setting: ReactorBackendSetting, debugLogging: Bool, environment: [String: String],
                                preferred: LoopBackend = measuredFaster,
                                build: (LoopBackend) throws(SocketError) -> EventLoop) throws(StartError) -> (EventLoop, note: String?) {
        switch setting {
        case .epoll:
            return (try epoll(build), nil)
        case .ioUring:
            switch try ioUring(environment: environment, build) {
            case .success(let loop): return (loop, nil)
            case .failure(let error):
                throw StartError(description: "reactor.backend is io_uring, which this system refuses (\(error)); "
                                 + "set reactor.backend (PIPEOPS_REACTOR_BACKEND) to auto or epoll")
            }
        case .auto:
            if debugLogging {
                return (try epoll(build), preferred == .epoll ? nil
                        : "event loop on epoll, not io_uring: debug logging is on, and io_uring's I/O does not show in strace")
            }
            guard preferred == .ioUring else { return (try epoll(build), nil) }
            switch try ioUring(environment: environment, build) {
            case .success(let loop): return (loop, nil)
            case .failure(let error): return (try epoll(build), "event loop on epoll: io_uring refused (\(error))")
            }
        }
    }

    private static func epoll(_ build: (LoopBackend) throws(SocketError) -> EventLoop) throws(StartError) -> EventLoop {
        do { return try build(.epoll) } catch { throw StartError(description: "cannot start the event loop: \(error)") }
    }

    /// The io_uring loop, or what refused it; throws only for a malformed test hook.
    private static func ioUring(environment: [String: String],
                                _ build: (LoopBackend) throws(SocketError) -> EventLoop) throws(StartError) -> Result<EventLoop, SocketError> {
        if let name = environment[probeFailureVariable], !name.isEmpty {
            guard let code = injectableErrors[name] else {
                throw StartError(description: "\(probeFailureVariable)=\(name): expected one of "
                                 + injectableErrors.keys.sorted().joined(separator: ", "))
            }
            return .failure(SocketError(operation: "io_uring_setup (\(probeFailureVariable))", errno: code))
        }
        do { return .success(try build(.ioUring)) } catch { return .failure(error) }
    }
}
