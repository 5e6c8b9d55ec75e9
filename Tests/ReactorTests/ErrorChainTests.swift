import CShims
import Foundation
import Glibc
import XCTest
@testable import Reactor

/// Cause chains: how they render, and that each layer hands its typed error up instead of a
/// flattened string (real peers on 127.0.0.1: a closed port, openssl s_server, our resolver).
final class ErrorChainTests: XCTestCase {
    /// Stands for any error that knows nothing of chains (a resolver's, say).
    struct LookupError: Error, CustomStringConvertible {
        var description: String { "resolve t.example: NXDOMAIN" }
    }

    struct Outer: ChainedError {
        var cause: (any Error)?
        var layer: String { "tunnel" }
        var message: String { "cannot reach the tunnel server wss://t.example:443" }
        var description: String { chainDescription }
    }

    /// A chain whose cause is itself: rendering must still end.
    final class Loop: ChainedError {
        var layer: String { "loop" }
        var message: String { "again" }
        var cause: (any Error)? { self }
        var description: String { "loop" }
    }

    // MARK: Rendering

    func testChainRendersEveryLayerOutermostFirst() {
        let e = Outer(cause: ConnectionError.connect(.resolve(target: "t.example:443", UnderlyingError(LookupError()))))
        XCTAssertEqual(e.description,
                       "cannot reach the tunnel server wss://t.example:443: connect to t.example:443: resolve t.example: NXDOMAIN")
        XCTAssertEqual(ErrorChain.links(e), [
            ErrorLink(layer: "tunnel", message: "cannot reach the tunnel server wss://t.example:443"),
            ErrorLink(layer: "connect", message: "connect to t.example:443"),
            ErrorLink(layer: "lookup", message: "resolve t.example: NXDOMAIN"),
        ])
        XCTAssertEqual(ErrorChain.json(e).bytes, Array("""
            [{"layer":"tunnel","message":"cannot reach the tunnel server wss://t.example:443"},\
            {"layer":"connect","message":"connect to t.example:443"},\
            {"layer":"lookup","message":"resolve t.example: NXDOMAIN"}]
            """.utf8))
    }

    /// `ConnectionError` and `HTTPError` only carry the connect or TLS error: no link of their own.
    func testUmbrellaErrorsTakeNoPlaceInTheChain() {
        let verify = TLSError.verify(peer: "api.example:443", TLSVerifyFailure(
            code: TLSVerifyFailure.certificateExpired, reason: "certificate verify failed: certificate has expired"))
        let http = HTTPError(ConnectionError.tls(verify))
        XCTAssertEqual(http, .tls(verify))
        XCTAssertEqual(ErrorChain.links(http), [ErrorLink(layer: "tls", message:
            "TLS handshake with api.example:443 failed: certificate verify failed: certificate has expired")])
        let ssh = SSHError.transport(.connect(.refused(target: "127.0.0.1:22")))
        XCTAssertEqual(ErrorChain.links(ssh).map(\.layer), ["ssh", "connect"])
        XCTAssertEqual(ssh.description, "ssh: connection lost: connect to 127.0.0.1:22: ECONNREFUSED (Connection refused)")
    }

    func testAChainThatLoopsIsCut() {
        XCTAssertEqual(ErrorChain.links(Loop()).count, ErrorChain.maxDepth)
    }

    func testUnderlyingErrorsCompareByTypeAndText() {
        XCTAssertEqual(UnderlyingError(LookupError()), UnderlyingError(LookupError()))
        XCTAssertNotEqual(UnderlyingError(LookupError()), UnderlyingError(TestFailure("resolve t.example: NXDOMAIN")))
    }

    // MARK: Each layer surfaces its typed error

    /// The resolver's own error is kept whole as the cause (whatever type it is).
    func testResolveFailureIsAConnectErrorWithTheResolverErrorAsCause() throws {
        let loop = try makeLoop()
        let resolver = try Resolver(loop: loop)
        let recorder = StreamRecorder()
        let connection = HostConnection(loop: loop, resolver: resolver, host: "", port: 443, timeout: .seconds(5), delegate: recorder)
        XCTAssertTrue(loop.run(until: { recorder.closed }, timeout: .seconds(10)))
        withExtendedLifetime(connection) {}
        guard case .connect(.resolve(let target, let cause))? = recorder.closeError else {
            return XCTFail("\(String(describing: recorder.closeError))")
        }
        XCTAssertEqual(target, ":443")
        XCTAssertTrue(cause.error is ResolveError, "\(type(of: cause.error))")
        XCTAssertEqual(ErrorChain.links(recorder.closeError!).map(\.layer), ["connect", "resolve"])
    }

    func testRefusedPortThroughHostConnectionIsConnectErrorRefused() throws {
        let loop = try makeLoop()
        let port = try freeLocalPort()
        let recorder = StreamRecorder()
        let connection = HostConnection(loop: loop, resolver: try Resolver(loop: loop), host: "127.0.0.1", port: port,
                                        timeout: .seconds(5), delegate: recorder)
        XCTAssertTrue(loop.run(until: { recorder.closed }, timeout: .seconds(10)))
        withExtendedLifetime(connection) {}
        XCTAssertEqual(recorder.closeError, .connect(.refused(target: "127.0.0.1:\(port)")))
    }

    /// Runs `body` with openssl s_server on 127.0.0.1:`port` presenting an expired certificate.
    private func withExpiredCertificateServer(_ body: (TLSTestPKI, Int) throws -> Void) throws {
        let pki = try TLSTestPKI.make()
        defer { pki.remove() }
        let port = try freeLocalPort()
        let server = try OpenSSLPeer.server(port: port, workDir: pki.dir, ["-cert", pki.expiredCert, "-key", pki.expiredKey, "-www"])
        defer { server.stop() }
        try body(pki, port)
    }

    /// openssl s_server presenting an expired certificate: the X509 verify result comes up typed.
    func testExpiredCertificateFromOpenSSLServerIsTLSVerifyExpired() throws {
        try withExpiredCertificateServer { pki, port in
            let loop = try makeLoop()
            let recorder = StreamRecorder()
            _ = try TLSStream.connect(loop: loop, to: loopback(port), serverName: "localhost",
                                      context: TLSContext(.client(additionalCAFile: pki.ca)), timeout: .seconds(10), delegate: recorder)
            XCTAssertTrue(loop.run(until: { recorder.closed }, timeout: .seconds(15)))
            guard case .tls(.verify(let peer, let failure))? = recorder.closeError else {
                return XCTFail("\(String(describing: recorder.closeError))")
            }
            XCTAssertEqual(peer, "127.0.0.1:\(port)")
            XCTAssertTrue(failure.isExpired, "\(failure.code): \(failure.reason)")
            XCTAssertEqual(failure.code, X509_V_ERR_CERT_HAS_EXPIRED)
        }
    }

    /// Through the HTTP client the TLS error stays typed: `.tls(.verify)`, not a string.
    func testHTTPSToAnExpiredCertificateIsHTTPErrorTLSVerify() throws {
        try withExpiredCertificateServer { pki, port in
            let loop = try makeLoop()
            let context = try TLSContext(.client(additionalCAFile: pki.ca))
            var connector = HTTPConnector.tcp(loop: loop)
            connector.startTLS = { stream, name in try TLSStream(lower: stream, context: context, serverName: name, delegate: nil) }
            let client = HTTPClient(loop: loop, connector: connector)
            var result: Result<HTTPClientResponse, HTTPError>?
            client.fetch(HTTPClientRequest(origin: HTTPOrigin(useTLS: true, host: "127.0.0.1", port: port)), timeout: .seconds(10)) { result = $0 }
            XCTAssertTrue(loop.run(until: { result != nil }, timeout: .seconds(15)))
            guard case .failure(.tls(.verify(_, let failure)))? = result else { return XCTFail("\(String(describing: result))") }
            XCTAssertTrue(failure.isExpired, failure.reason)
        }
    }

    /// SSH over a stream that could not connect: the connect error is the cause, not `.crypto`.
    func testSSHOverARefusedPortIsTransportWithTheConnectError() throws {
        let loop = try makeLoop()
        let port = try freeLocalPort()
        let stream = HostConnection(loop: loop, resolver: try Resolver(loop: loop), host: "127.0.0.1", port: port,
                                    timeout: .seconds(5), delegate: nil)
        let delegate = RecordingSSHDelegate()
        let conn = SSHConnection(loop: loop, stream: stream, config: passwordConfig(), delegate: delegate)
        XCTAssertTrue(loop.run(until: { delegate.disconnected }, timeout: .seconds(10)))
        XCTAssertEqual(delegate.error, .transport(.connect(.refused(target: "127.0.0.1:\(port)"))))
        _ = conn
    }
}
