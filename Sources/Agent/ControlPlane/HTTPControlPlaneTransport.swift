import Reactor

/// `ControlPlaneTransport` over the reactor's HTTP client: joins paths to `pipeops.api_url`,
/// adds the standard headers, enforces the deadline and the 1 MiB body limit.
final class HTTPControlPlaneTransport: ControlPlaneTransport {
    static let maxBodyBytes = 1 << 20
    let client: HTTPClient
    let baseURL: String

    init(client: HTTPClient, baseURL: String) {
        self.client = client
        self.baseURL = baseURL
    }

    func send(_ request: ControlPlaneRequest, token: String,
              completion: @escaping (Result<ControlPlaneResponse, ControlPlaneError>) -> Void) {
        var headers = HTTPHeaders()
        headers.add("Authorization", "Bearer \(token)")
        headers.add("User-Agent", "pipeops-agent/\(AgentVersion.version)")
        headers.add("Accept", "application/json")
        if request.body != nil { headers.add("Content-Type", "application/json") }
        let url = joinURL(baseURL, request.path)
        let http: HTTPClientRequest
        do { http = try HTTPClientRequest(method: request.method, url: url, headers: headers, body: request.body ?? []) } catch {
            completion(.failure(.badURL(call: request.call, "bad control-plane URL \(URLUserinfo.redacted(url)): \(error)")))
            return
        }
        client.fetch(http, timeout: request.timeout, maxBodyBytes: Self.maxBodyBytes) { result in
            switch result {
            case .success(let r): completion(.success(ControlPlaneResponse(status: r.status, body: r.body)))
            case .failure(let e): completion(.failure(.http(call: request.call, e)))
            }
        }
    }
}
