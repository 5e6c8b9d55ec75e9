/// How the resolver asks DNS. The defaults suit the agent: servers, search domains and ndots
/// from /etc/resolv.conf (as glibc would), 5 s per lookup in all, two attempts. Tests point
/// `servers` at a DNS server on loopback and `resolvConfPath`/`hostsPath` at files of their own.
public struct ResolverSettings: Sendable {
    /// The whole lookup's deadline, every attempt and search domain included.
    public var timeout: TimeAmount = .seconds(5)
    /// Attempts per server before c-ares gives up (each waits twice as long as the one before).
    public var attempts: Int = 2
    /// Distinct names waiting for DNS at once (same-name lookups share one query and count once);
    /// more fail at once with `tooManyLookups`, as do callers past 8 times this many.
    public var maxLookups: Int = 256
    /// Names whose answers are kept; the oldest go first when full.
    public var cacheSize: Int = 1_024
    /// How long NXDOMAIN and NODATA answers are kept (c-ares 1.18 does not hand us the SOA).
    public var negativeTTL: TimeAmount = .seconds(5)
    /// An answer's TTL is cut to this, so a zone with a week-long TTL still gets re-asked.
    public var maxTTL: TimeAmount = .seconds(300)
    /// `host:port` or `[v6]:port` entries replacing resolv.conf's name servers; nil keeps them.
    public var servers: [String]?
    /// Read instead of /etc/resolv.conf (search, ndots, nameserver, options).
    public var resolvConfPath: String?
    /// Replace resolv.conf's `search` list and `options ndots`.
    public var searchDomains: [String]?
    public var ndots: Int?
    /// The hosts file answered from before any DNS (reloaded by `invalidateHostsCache`).
    public var hostsPath = "/etc/hosts"

    public init() {}
}
