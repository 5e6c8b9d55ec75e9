/// One answer as the server reports it to an observer (request counters by route and status):
/// once per request, when its status goes out. A stream reports its head's status when it
/// starts, an upgrade 101; answers the server gives itself (400, 408, 503 at accept) have
/// no route and, when no request head was read, an empty method.
public struct HTTPResponseRecord: Sendable, Equatable {
    public var method: String
    /// The pattern the router matched (`/health`, or a prefix such as `/api/realtime/`), nil
    /// for an unknown path, so a label made of it stays bounded whatever clients ask for.
    public var route: String?
    public var status: Int

    public init(method: String, route: String?, status: Int) {
        self.method = method
        self.route = route
        self.status = status
    }
}

public typealias HTTPResponseObserver = (HTTPResponseRecord) -> Void
