import Reactor

/// The agent's client TLS context, built on first use: loading the system roots and
/// initialising OpenSSL costs a few MiB of resident memory that a standalone agent, or one
/// whose control plane is plain http, never needs.
final class LazyTLSContext {
    private let configuration: TLSConfiguration
    private var built: TLSContext?

    init(_ configuration: TLSConfiguration) { self.configuration = configuration }

    func context() throws(TLSConfigurationError) -> TLSContext {
        if let built { return built }
        let c = try TLSContext(configuration)
        built = c
        return c
    }
}
