import Reactor

/// `GET /api/status/connectivity` (agent-http-api.md): runs the connectivity checks now and
/// answers with their report (200 whether the agent is healthy or degraded: the body says which).
/// Off with `features.connectivity_testing: false` (then 404). Access control is the router's.
struct ConnectivityRoutes {
    unowned let agent: Agent

    func install(on router: HTTPRouter) {
        guard agent.config.features.connectivityTesting else { return }
        let checker = ConnectivityChecker(loop: agent.loop, resolver: agent.resolver, connector: agent.connector,
                                          httpClient: agent.httpClient)
        router.add("GET", "/api/status/connectivity") { [agent] _, responder in
            checker.report(ConnectivityChecks.plan(config: agent.config, tunnelEndpoint: agent.tunnel?.desired?.endpoint,
                                                   proxies: agent.proxies, kubernetes: agent.kubernetes?.client)) { report in
                responder.sendJSON(200, bytes: report.json.bytes)
            }
        }
    }
}
