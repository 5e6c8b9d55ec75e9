import Reactor

/// The API server as a pod sees it: `KUBERNETES_SERVICE_HOST`/`_PORT`, the service account's
/// token (re-read as it rotates), its `ca.crt` and its `namespace` file.
enum InClusterAccess {
    static func read(_ settings: KubernetesSettings, environment: [String: String]) throws(KubernetesConfigError) -> KubernetesAccess {
        let origin: HTTPOrigin
        var basePath = ""
        if let url = settings.apiServer {
            (origin, basePath) = try KubernetesAccess.parseServer(url, what: "kubernetes.api_server")
        } else {
            guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty else {
                throw KubernetesConfigError("KUBERNETES_SERVICE_HOST is not set (and no kubernetes.api_server)")
            }
            let portText = environment["KUBERNETES_SERVICE_PORT"] ?? "443"
            guard let port = Int(portText), (1...65535).contains(port) else {
                throw KubernetesConfigError("KUBERNETES_SERVICE_PORT \"\(portText)\" is not a port")
            }
            origin = HTTPOrigin(useTLS: true, host: host, port: port)
        }
        guard SmallFile.exists(settings.tokenFile) else {
            throw KubernetesConfigError("no service-account token at \(settings.tokenFile) (kubernetes.token_file)")
        }
        guard SmallFile.exists(settings.caFile) else {
            throw KubernetesConfigError("no service-account CA at \(settings.caFile) (kubernetes.ca_file)")
        }
        let namespace = readTextFile(settings.namespaceFile).map { $0.trimmingCharacters(in: "\n") }
        return KubernetesAccess(source: .inCluster, server: origin, basePath: basePath,
                                certificateAuthority: .file(settings.caFile), credential: .tokenFile(settings.tokenFile),
                                namespace: namespace)
    }
}
