import Reactor

/// Everything needed to talk to one API server: where it is, how to trust it, who we are.
/// Made by `InClusterAccess` or `KubeconfigReader`; `resolve` picks between them.
struct KubernetesAccess: Equatable {
    enum Source: Equatable, CustomStringConvertible {
        case inCluster
        case kubeconfig(file: String, context: String)

        var description: String {
            switch self {
            case .inCluster: return "in-cluster service account"
            case .kubeconfig(let file, let context): return "kubeconfig \(file) (context \(context))"
            }
        }
    }

    /// PEM text from a file or given inline (kubeconfig `*-data`).
    enum PEM: Equatable {
        case file(String)
        case data([UInt8])
    }

    enum Credential: Equatable {
        case none
        case token(String)
        /// Re-read when it changes and after a 401 (bound service-account tokens rotate).
        case tokenFile(String)
    }

    var source: Source
    var server: HTTPOrigin
    /// A path prefix from the server URL (`https://host/k8s/clusters/c-1`); usually empty.
    var basePath: String = ""
    var certificateAuthority: PEM?
    var clientCertificate: PEM?
    var clientKey: PEM?
    var insecureSkipVerify = false
    /// The name the server certificate is checked against, when not the server's host.
    var tlsServerName: String?
    var credential: Credential = .none
    /// The namespace of the context or the service account (informational).
    var namespace: String?

    /// What the agent does about Kubernetes, decided once at start.
    enum Plan: Equatable {
        /// Nothing configured and nothing found: not an error, `/ready` says why.
        case off(String)
        /// Configured (or found) but unusable: `/ready` is not ok and says why.
        case failed(String)
        case use(KubernetesAccess)
    }

    /// In cluster when asked, or (automatic) when the service account's token file exists;
    /// else a kubeconfig (`kubernetes.kubeconfig`, `$KUBECONFIG`, `~/.kube/config`); else off.
    /// An explicitly configured kubeconfig wins over the automatic in-cluster choice.
    static func resolve(_ settings: KubernetesSettings, environment: [String: String],
                        fileExists: (String) -> Bool = SmallFile.exists) -> Plan {
        let explicitKubeconfig = settings.kubeconfig.flatMap { $0.isEmpty ? nil : $0 }
        let inCluster: Bool
        switch settings.inCluster {
        case .some(let v): inCluster = v
        case .none: inCluster = explicitKubeconfig == nil && fileExists(settings.tokenFile)
        }
        if inCluster {
            do { return .use(try InClusterAccess.read(settings, environment: environment)) } catch {
                return .failed("in cluster: \(error.message)")
            }
        }
        let files: [String]
        if let explicitKubeconfig {
            files = [explicitKubeconfig]
        } else if let list = environment["KUBECONFIG"], !list.isEmpty {
            files = list.split(separator: ":").map(String.init).filter { fileExists($0) }
            if files.isEmpty { return .failed("none of the files in $KUBECONFIG (\(list)) exists") }
        } else if let home = environment["HOME"], !home.isEmpty, fileExists(home + "/.kube/config") {
            files = [home + "/.kube/config"]
        } else {
            let why = settings.inCluster == false ? "kubernetes.in_cluster is false and" : "no service-account token at \(settings.tokenFile),"
            return .off("\(why) no kubeconfig (kubernetes.kubeconfig, $KUBECONFIG, ~/.kube/config)")
        }
        do {
            var access = try KubeconfigReader.read(files: files)
            if let override = settings.apiServer { try access.overrideServer(override) }
            return .use(access)
        } catch {
            return .failed(error.message)
        }
    }

    /// `kubernetes.api_server` replaces the server URL (the trust settings stay).
    mutating func overrideServer(_ url: String) throws(KubernetesConfigError) {
        let (origin, path) = try Self.parseServer(url, what: "kubernetes.api_server")
        server = origin
        basePath = path
    }

    static func parseServer(_ url: String, what: String) throws(KubernetesConfigError) -> (HTTPOrigin, String) {
        let parsed: (HTTPOrigin, String)
        do { parsed = try HTTPClientRequest.parseURL(url) } catch {
            throw KubernetesConfigError("\(what) \"\(url)\": \(error.message)")
        }
        var path = parsed.1
        if let q = path.firstIndex(of: "?") { path = String(path[..<q]) }
        while path.hasSuffix("/") { path.removeLast() }
        return (parsed.0, path)
    }
}

/// A Kubernetes setting that cannot be used, with the file or key it came from.
struct KubernetesConfigError: Error, Equatable, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}
