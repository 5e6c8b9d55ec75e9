import Reactor

/// The dashboard as served: the markup with its style and script inlined, and the
/// Content-Security-Policy that allows exactly those two texts by their SHA-256 and nothing from
/// any other origin. Built once when the agent starts, so a change to the page can never leave
/// the policy's hashes behind.
struct DashboardPage {
    let html: [UInt8]
    let contentSecurityPolicy: String

    init(markup: String = DashboardMarkup.html, style: String = DashboardStyle.css, script: String = DashboardScript.js) {
        html = Array(markup.replacing("{{STYLE}}", with: style).replacing("{{SCRIPT}}", with: script).utf8)
        contentSecurityPolicy = [
            "default-src 'none'",
            "script-src \(Self.hashSource(script))",
            "style-src \(Self.hashSource(style))",
            "connect-src 'self'",        // the page's own /ws (CSP 3: 'self' covers ws: and wss: to this host)
            "img-src 'self' data:",      // the data: favicon
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ].joined(separator: "; ")
    }

    /// `'sha256-<base64>'` of the element's exact text, as CSP Level 2 compares it.
    static func hashSource(_ text: String) -> String {
        "'sha256-\(Base64.encode(SSHDigest.sha256.hash(Array(text.utf8))))'"
    }
}
