import Reactor

/// Reads a kubeconfig (libyaml, through `YAMLReader`) the way kubectl does for what the agent
/// needs: the current context's cluster (server, CA file or data, `insecure-skip-tls-verify`,
/// `tls-server-name`) and user (token or token file, client certificate and key as files or
/// data). Several files (`$KUBECONFIG=a:b`) merge: the first `current-context` and the first
/// entry of each name win. Relative paths are relative to the file that names them.
/// Credential plugins (`exec`, `auth-provider`) and basic auth are refused by name: they would
/// need a program or a password flow the agent does not run.
enum KubeconfigReader {
    static let maxBytes = 1 << 20

    static func read(files: [String]) throws(KubernetesConfigError) -> KubernetesAccess {
        var documents: [(file: String, root: YAMLNode)] = []
        for file in files {
            let bytes: [UInt8]
            do { bytes = try SmallFile.read(file, limit: maxBytes) } catch {
                throw KubernetesConfigError("kubeconfig \(file): \(describe(error))")
            }
            if let root = try document(bytes, file: file) { documents.append((file, root)) }
        }
        return try access(from: documents, shown: files.joined(separator: ":"))
    }

    /// One kubeconfig's YAML; nil when it is empty.
    static func document(_ bytes: [UInt8], file: String) throws(KubernetesConfigError) -> YAMLNode? {
        let root: YAMLNode?
        do { root = try YAMLReader.parse(bytes, file: file) } catch {
            throw KubernetesConfigError("kubeconfig \(error)")
        }
        guard let root, !root.isNull else { return nil }
        return root
    }

    /// The access the merged documents describe; `shown` names them all in errors.
    static func access(from documents: [(file: String, root: YAMLNode)], shown: String) throws(KubernetesConfigError) -> KubernetesAccess {
        guard let current = documents.first(where: { !($0.root["current-context"]?.scalarText ?? "").isEmpty }),
              let contextName = current.root["current-context"]?.scalarText else {
            throw KubernetesConfigError("kubeconfig \(shown): no current-context is set")
        }
        let contextFile = current.file
        guard let context = entry(documents, "contexts", "context", contextName)?.1 else {
            throw KubernetesConfigError("kubeconfig \(shown): current-context \"\(contextName)\" is not among its contexts")
        }
        guard let clusterName = context["cluster"]?.scalarText, !clusterName.isEmpty else {
            throw KubernetesConfigError("kubeconfig \(contextFile): context \"\(contextName)\" names no cluster")
        }
        guard let clusterEntry = entry(documents, "clusters", "cluster", clusterName) else {
            throw KubernetesConfigError("kubeconfig \(shown): cluster \"\(clusterName)\" (of context \"\(contextName)\") is not defined")
        }
        let (clusterFile, cluster) = clusterEntry
        guard let server = cluster["server"]?.scalarText, !server.isEmpty else {
            throw KubernetesConfigError("kubeconfig \(clusterFile): cluster \"\(clusterName)\" has no server")
        }
        let (origin, basePath) = try KubernetesAccess.parseServer(server, what: "kubeconfig \(clusterFile): cluster \"\(clusterName)\" server")
        var access = KubernetesAccess(source: .kubeconfig(file: contextFile, context: contextName), server: origin, basePath: basePath)
        access.namespace = context["namespace"]?.scalarText
        let where_ = "kubeconfig \(clusterFile): cluster \"\(clusterName)\""
        access.certificateAuthority = try pem(cluster, file: "certificate-authority", data: "certificate-authority-data",
                                              base: clusterFile, where_: where_)
        if let insecure = cluster["insecure-skip-tls-verify"]?.scalarText {
            guard let b = ConfigKeys.parseBool(insecure) else {
                throw KubernetesConfigError("\(where_): insecure-skip-tls-verify: expected true or false, got \"\(insecure)\"")
            }
            access.insecureSkipVerify = b
        }
        access.tlsServerName = cluster["tls-server-name"]?.scalarText.flatMap { $0.isEmpty ? nil : $0 }
        if let proxy = cluster["proxy-url"]?.scalarText, !proxy.isEmpty {
            throw KubernetesConfigError("\(where_): proxy-url is not supported (use HTTPS_PROXY)")
        }

        // A context without a user is anonymous access (kubectl allows it).
        guard let userName = context["user"]?.scalarText, !userName.isEmpty else { return access }
        guard let userEntry = entry(documents, "users", "user", userName) else {
            throw KubernetesConfigError("kubeconfig \(shown): user \"\(userName)\" (of context \"\(contextName)\") is not defined")
        }
        let (userFile, user) = userEntry
        let whereUser = "kubeconfig \(userFile): user \"\(userName)\""
        if let exec = user["exec"], !exec.isNull {
            let command = exec["command"]?.scalarText ?? "?"
            throw KubernetesConfigError("\(whereUser) uses an exec credential plugin (command \"\(command)\"), which the agent does not run; "
                                        + "give it a token, a token file or a client certificate instead")
        }
        if let provider = user["auth-provider"], !provider.isNull {
            let name = provider["name"]?.scalarText ?? "?"
            throw KubernetesConfigError("\(whereUser) uses the \"\(name)\" auth-provider plugin, which the agent does not support; "
                                        + "give it a token, a token file or a client certificate instead")
        }
        if user["username"] != nil || user["password"] != nil {
            throw KubernetesConfigError("\(whereUser) uses basic auth (username/password), which the agent does not support")
        }
        access.clientCertificate = try pem(user, file: "client-certificate", data: "client-certificate-data", base: userFile, where_: whereUser)
        access.clientKey = try pem(user, file: "client-key", data: "client-key-data", base: userFile, where_: whereUser)
        if (access.clientCertificate == nil) != (access.clientKey == nil) {
            throw KubernetesConfigError("\(whereUser): a client certificate needs both client-certificate and client-key")
        }
        if let token = user["token"]?.scalarText, !token.isEmpty {
            access.credential = .token(token)
        } else if let file = user["tokenFile"]?.scalarText, !file.isEmpty {
            access.credential = .tokenFile(resolvePath(file, base: userFile))
        }
        return access
    }

    /// The named entry of a list (`clusters`, `contexts`, `users`) across the documents: the
    /// first one wins, as in kubectl's merge.
    private static func entry(_ documents: [(file: String, root: YAMLNode)], _ list: String, _ field: String,
                              _ name: String) -> (String, YAMLNode)? {
        for d in documents {
            guard case .sequence(let items)? = d.root[list]?.value else { continue }
            for item in items where item["name"]?.scalarText == name {
                if let body = item[field] { return (d.file, body) }
            }
        }
        return nil
    }

    private static func pem(_ node: YAMLNode, file fileKey: String, data dataKey: String, base: String,
                            where_: String) throws(KubernetesConfigError) -> KubernetesAccess.PEM? {
        if let data = node[dataKey]?.scalarText, !data.isEmpty {
            let compact = String(data.filter { !$0.isWhitespace })
            guard let bytes = Base64.decode(compact), !bytes.isEmpty else {
                throw KubernetesConfigError("\(where_): \(dataKey) is not valid base64")
            }
            return .data(bytes)
        }
        if let file = node[fileKey]?.scalarText, !file.isEmpty {
            let path = resolvePath(file, base: base)
            guard SmallFile.exists(path) else { throw KubernetesConfigError("\(where_): \(fileKey) \(path) does not exist") }
            return .file(path)
        }
        return nil
    }

    /// A path relative to the kubeconfig's own directory, as kubectl resolves it.
    static func resolvePath(_ path: String, base: String) -> String {
        guard !path.hasPrefix("/"), let slash = base.lastIndex(of: "/") else { return path }
        return String(base[...slash]) + path
    }

    private static func describe(_ error: SmallFile.ReadError) -> String {
        switch error {
        case .notFound: return "no such file"
        case .tooLarge(let limit): return "larger than \(limit) bytes"
        case .system(let text): return text
        }
    }
}
