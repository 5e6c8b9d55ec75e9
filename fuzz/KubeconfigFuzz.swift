// libFuzzer target for the kubeconfig reader: YAMLReader, then KubeconfigReader's merge of
// one or two files ($KUBECONFIG=a:b) into the access the agent uses. The first byte says
// whether and where the input is cut into two files. Invariants: bad input is a thrown
// KubernetesConfigError, never a trap; an access that comes out has a server with a host and
// a port, a client certificate only with its key, a token only when non-empty; and merging the
// documents with a copy of themselves changes nothing (the first entry of each name wins).
// Built by scripts/fuzz.sh with the YAML reader, the kubeconfig reader and what they use.

let fileA = "/nonexistent-fuzz/a/kubeconfig", fileB = "/nonexistent-fuzz/b/config"

func documents(_ files: [(String, ArraySlice<UInt8>)]) -> [(file: String, root: YAMLNode)]? {
    var out: [(file: String, root: YAMLNode)] = []
    for (file, bytes) in files {
        do { if let root = try KubeconfigReader.document(Array(bytes), file: file) { out.append((file, root)) } } catch { return nil }
    }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzKubeconfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    var files = [(fileA, bytes[...])]
    if data[0] & 1 == 1 {
        let cut = bytes.count * Int(data[0] >> 1) / 128
        files = [(fileA, bytes[..<cut]), (fileB, bytes[cut...])]
    }
    guard let docs = documents(files) else { return 0 }
    let shown = files.map(\.0).joined(separator: ":")
    let access: KubernetesAccess
    do { access = try KubeconfigReader.access(from: docs, shown: shown) } catch {
        precondition((try? KubeconfigReader.access(from: docs + docs, shown: shown)) == nil, "a copy made a bad kubeconfig good")
        return 0
    }
    precondition(!access.server.host.isEmpty && (1...65535).contains(access.server.port), "server \(access.server) has no host or port")
    precondition((access.clientCertificate == nil) == (access.clientKey == nil), "a client certificate without its key")
    if case .token(let t) = access.credential { precondition(!t.isEmpty, "an empty token") }
    do {
        let again = try KubeconfigReader.access(from: docs + docs, shown: shown)
        precondition(again == access, "merging with a copy changed the access")
    } catch {
        preconditionFailure("merging with a copy failed: \(error)")
    }
    return 0
}
