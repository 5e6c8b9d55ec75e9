import CShims
import Glibc
import Reactor

/// How the Kubernetes client dials: host names through the agent's resolver, and TLS with the
/// cluster's own trust (the service account's CA or the kubeconfig's), client certificate and
/// server name, apart from the control plane's (`Connectors` and `LazyTLSContext`).
enum KubernetesConnector {
    static func make(loop: EventLoop, resolver: Resolver, access: KubernetesAccess) throws(KubernetesConfigError) -> HTTPConnector {
        let context = access.server.useTLS ? try tlsContext(access) : nil
        let serverName = access.tlsServerName
        return HTTPConnector(
            connectTCP: { host, port, timeout, delegate in
                HostConnection(loop: loop, resolver: resolver, host: host, port: port, timeout: timeout, delegate: delegate)
            },
            startTLS: { stream, host in
                guard let context else { throw ConnectionError.closedLocally("no TLS context for \(host)") }
                return try TLSStream(lower: stream, context: context, serverName: serverName ?? host, delegate: nil)
            })
    }

    /// The client context: the cluster CA only when one is given (else the system roots, as
    /// kubectl does), our certificate for mutual TLS, no verification when insecure.
    static func tlsContext(_ access: KubernetesAccess) throws(KubernetesConfigError) -> TLSContext {
        var files = InlinePEMFiles()
        defer { files.close() }
        var c = TLSConfiguration(role: .client)
        c.insecureSkipVerify = access.insecureSkipVerify
        c.alpnProtocols = ["http/1.1"]
        if let ca = access.certificateAuthority {
            c.trustSystemRoots = false
            c.additionalCAFile = try files.path(for: ca, what: "certificate authority")
        }
        if let cert = access.clientCertificate, let key = access.clientKey {
            c.certificateChainFile = try files.path(for: cert, what: "client certificate")
            c.privateKeyFile = try files.path(for: key, what: "client key")
        }
        do { return try TLSContext(c) } catch {
            throw KubernetesConfigError("TLS for \(access.server): \(files.hideMemoryPaths(error.message))")
        }
    }
}

/// Inline PEM (kubeconfig `*-data`) handed to OpenSSL's file loaders through anonymous memory
/// files (`/proc/self/fd/N`), closed as soon as the context is built: keys never touch a disk.
struct InlinePEMFiles {
    private var fds: [(fd: Int32, what: String)] = []

    mutating func path(for pem: KubernetesAccess.PEM, what: String) throws(KubernetesConfigError) -> String {
        switch pem {
        case .file(let path):
            return path
        case .data(let bytes):
            let fd = shim_memfd_create("pipeops-\(what)")
            guard fd >= 0 else { throw KubernetesConfigError("cannot hold the \(what) in memory: \(SmallFile.errnoText())") }
            fds.append((fd, what))
            var offset = 0
            while offset < bytes.count {
                let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw KubernetesConfigError("cannot hold the \(what) in memory: \(SmallFile.errnoText())") }
                offset += n
            }
            return "/proc/self/fd/\(fd)"
        }
    }

    /// OpenSSL's messages name the file; an fd path means nothing to a person.
    func hideMemoryPaths(_ message: String) -> String {
        var text = message
        for (fd, what) in fds {
            text = text.replacingAll("/proc/self/fd/\(fd)", with: "the inline \(what) (kubeconfig data)")
        }
        return text
    }

    mutating func close() {
        for (fd, _) in fds { Glibc.close(fd) }
        fds = []
    }
}

extension String {
    /// Every occurrence of `target` replaced (no Foundation).
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = ""
        var rest = Substring(self)
        while let r = rest.firstRange(of: target) {
            out += rest[..<r.lowerBound]
            out += replacement
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}
