import Reactor

/// `pipeops-agent tunnel-server`'s settings: chisel's server flags and environment variables
/// (chisel-v3-protocol.md §12-13) so one can replace the other, plus the limits chisel lacks.
/// Flags win over the environment, the environment over the defaults, as in chisel.
public struct TunnelServerOptions: Sendable, Equatable {
    public var host = "0.0.0.0"
    public var port = 8080
    /// `--key`: a seed the host key is derived from (the same seed gives chisel's key).
    public var keySeed = ""
    /// `--keyfile`: a PEM `EC PRIVATE KEY` file, a file holding a `ck-` key, or a `ck-` key inline.
    public var keyFile = ""
    /// `--auth user:pass`: one user allowed everything.
    public var auth = ""
    /// `--authfile`: JSON `{"user:pass": ["regex", ...]}`.
    public var authFile = ""
    public var reverse = false
    /// How often the server pings each client; 0 turns it off.
    public var keepalive: TimeAmount = .seconds(25)
    public var tlsCert = ""
    public var tlsKey = ""
    public var verbose = false
    /// Authenticated clients must send `config` within this (chisel: CHISEL_CONFIG_TIMEOUT).
    public var configTimeout: TimeAmount = .seconds(10)
    /// WebSocket upgrade to SSH authentication.
    public var handshakeTimeout: TimeAmount = .seconds(30)
    /// Tunnel connections open at once from one client address.
    public var maxConnectionsPerClient = 64
    /// SSH channels open at once on one tunnel connection (each proxied TCP connection is one).
    public var maxChannelsPerConnection = 2048
    /// Longest SSH packet accepted before authentication.
    public var maxPreAuthPacket = 32 * 1024

    public init() {}

    public static let usage = """
        USAGE: pipeops-agent tunnel-server [options]

        A chisel-v3 server (reverse remotes only) that chisel clients and the agent can use.

        OPTIONS (as chisel's; the environment variable in brackets):
          --host <host>            Listen address (default 0.0.0.0) [HOST]
          --port, -p <port>        Listen port (default 8080) [PORT]
          --key <seed>             Derive the host key from a seed [CHISEL_KEY]
          --keyfile <path|ck-...>  PEM "EC PRIVATE KEY" or chisel key file, or a ck- key [CHISEL_KEY_FILE]
          --auth <user:pass>       One user allowed every remote [AUTH]
          --authfile <path>        JSON object {"user:pass": ["regex", ...]}
          --reverse                Allow reverse remotes (R:); nothing else is served
          --keepalive <duration>   Server pings (default 25s, 0 off)
          --tls-cert <path>        Serve wss (with --tls-key)
          --tls-key <path>
          -v                       Debug logs
        LIMITS (not in chisel):
          --config-timeout <d>     Wait for the config request (default 10s) [CHISEL_CONFIG_TIMEOUT]
          --handshake-timeout <d>  WebSocket upgrade to SSH authentication (default 30s)
          --max-connections-per-client <n>   Tunnel connections per client address (default 64)
          --max-channels-per-connection <n>  Proxied connections per tunnel connection (default 2048)
          --max-preauth-packet <bytes>       Longest SSH packet before authentication (default 32768)
        """

    /// Parses the words after `tunnel-server`. `--help` gives nil (print `usage`).
    public static func parse(_ arguments: [String], environment: [String: String]) throws(TunnelServerOptionsError) -> TunnelServerOptions? {
        var o = TunnelServerOptions()
        var seen: Set<String> = []
        var args = arguments[...]
        while let arg = args.popFirst() {
            var name = arg, inline: String?
            if arg.hasPrefix("--"), let eq = arg.firstIndex(of: "=") {
                name = String(arg[..<eq])
                inline = String(arg[arg.index(after: eq)...])
            }
            if name.hasPrefix("--") == false && name.hasPrefix("-") && name.count > 2 { name = "-" + name }   // Go accepts -flag
            func value() throws(TunnelServerOptionsError) -> String {
                if let inline { return inline }
                guard let v = args.popFirst() else { throw TunnelServerOptionsError("\(name) needs a value") }
                return v
            }
            seen.insert(name)
            switch name {
            case "-h", "--help": return nil
            case "--host": o.host = try value()
            case "--port", "-p": o.port = try port(try value(), name)
            case "--key": o.keySeed = try value()
            case "--keyfile": o.keyFile = try value()
            case "--auth": o.auth = try value()
            case "--authfile": o.authFile = try value()
            case "--reverse": o.reverse = true
            case "--keepalive": o.keepalive = try duration(try value(), name, allowZero: true)
            case "--tls-cert": o.tlsCert = try value()
            case "--tls-key": o.tlsKey = try value()
            case "-v": o.verbose = true
            case "--config-timeout": o.configTimeout = try duration(try value(), name, allowZero: false)
            case "--handshake-timeout": o.handshakeTimeout = try duration(try value(), name, allowZero: false)
            case "--max-connections-per-client": o.maxConnectionsPerClient = try positive(try value(), name)
            case "--max-channels-per-connection": o.maxChannelsPerConnection = try positive(try value(), name)
            case "--max-preauth-packet":
                o.maxPreAuthPacket = try positive(try value(), name)
                guard o.maxPreAuthPacket >= 4096 else { throw TunnelServerOptionsError("\(name) must be at least 4096 (a client's KEXINIT must fit)") }
            case "--backend", "--proxy", "--socks5", "--tls-domain", "--tls-ca", "--keygen", "--pid":
                throw TunnelServerOptionsError("\(name) is a chisel server option this server does not support")
            default:
                throw TunnelServerOptionsError("unknown option '\(arg)' (see --help)")
            }
        }
        // The environment fills what no flag set.
        if !seen.contains("--host"), let v = environment["HOST"], !v.isEmpty { o.host = v }
        if !seen.contains("--port") && !seen.contains("-p"), let v = environment["PORT"], !v.isEmpty { o.port = try port(v, "PORT") }
        if o.keySeed.isEmpty, let v = environment["CHISEL_KEY"] { o.keySeed = v }
        if o.keyFile.isEmpty, let v = environment["CHISEL_KEY_FILE"] { o.keyFile = v }
        if o.auth.isEmpty, let v = environment["AUTH"] { o.auth = v }
        if !seen.contains("--config-timeout"), let v = environment["CHISEL_CONFIG_TIMEOUT"], !v.isEmpty {
            o.configTimeout = try duration(v, "CHISEL_CONFIG_TIMEOUT", allowZero: false)
        }
        if o.tlsCert.isEmpty != o.tlsKey.isEmpty { throw TunnelServerOptionsError("--tls-cert and --tls-key go together") }
        return o
    }

    private static func port(_ text: String, _ name: String) throws(TunnelServerOptionsError) -> Int {
        guard let p = Int(text), (0...65535).contains(p) else { throw TunnelServerOptionsError("\(name): '\(text)' is not a port") }
        return p
    }

    private static func positive(_ text: String, _ name: String) throws(TunnelServerOptionsError) -> Int {
        guard let n = Int(text), n > 0 else { throw TunnelServerOptionsError("\(name): '\(text)' is not a positive number") }
        return n
    }

    private static func duration(_ text: String, _ name: String, allowZero: Bool) throws(TunnelServerOptionsError) -> TimeAmount {
        if allowZero && text == "0" { return .zero }
        guard let d = DurationText.parse(text), allowZero || d > .zero else {
            throw TunnelServerOptionsError("\(name): expected a duration like \"25s\", got \"\(text)\"")
        }
        return d
    }
}

public struct TunnelServerOptionsError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
