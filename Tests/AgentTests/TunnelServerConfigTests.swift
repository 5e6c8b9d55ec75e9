import XCTest
@testable import Agent
@testable import Reactor

/// The tunnel server's inputs: chisel's flags and environment, the `config` JSON as Go decodes
/// it, users and their ACL, and chisel's key derivations.
final class TunnelServerConfigTests: XCTestCase {
    func testFlagsWinOverTheEnvironmentWhichWinsOverDefaults() throws {
        let env = ["HOST": "127.0.0.2", "PORT": "9000", "AUTH": "env:pw", "CHISEL_KEY": "envseed", "CHISEL_CONFIG_TIMEOUT": "3s"]
        let fromEnv = try XCTUnwrap(try TunnelServerOptions.parse([], environment: env))
        XCTAssertEqual(fromEnv.host, "127.0.0.2")
        XCTAssertEqual(fromEnv.port, 9000)
        XCTAssertEqual(fromEnv.auth, "env:pw")
        XCTAssertEqual(fromEnv.keySeed, "envseed")
        XCTAssertEqual(fromEnv.configTimeout, .seconds(3))
        let flags = try XCTUnwrap(try TunnelServerOptions.parse(["--host", "127.0.0.1", "-p", "8081", "--auth=a:b", "-key", "s", "--reverse"],
                                                                 environment: env))
        XCTAssertEqual(flags.host, "127.0.0.1")
        XCTAssertEqual(flags.port, 8081)
        XCTAssertEqual(flags.auth, "a:b")
        XCTAssertEqual(flags.keySeed, "s")
        XCTAssertTrue(flags.reverse)
        let defaults = try XCTUnwrap(try TunnelServerOptions.parse([], environment: [:]))
        XCTAssertEqual(defaults.host, "0.0.0.0")
        XCTAssertEqual(defaults.port, 8080)
        XCTAssertFalse(defaults.reverse)
        XCTAssertNil(try TunnelServerOptions.parse(["--help"], environment: [:]))
    }

    func testBadOptionsSayWhatIsWrong() {
        func error(_ args: [String]) -> String {
            do { _ = try TunnelServerOptions.parse(args, environment: [:]); return "no error" } catch { return error.description }
        }
        XCTAssertEqual(error(["--port", "70000"]), "--port: '70000' is not a port")
        XCTAssertEqual(error(["--tls-cert", "c.pem"]), "--tls-cert and --tls-key go together")
        XCTAssertEqual(error(["--backend", "http://x"]), "--backend is a chisel server option this server does not support")
        XCTAssertEqual(error(["--keepalive", "soon"]), "--keepalive: expected a duration like \"25s\", got \"soon\"")
        XCTAssertEqual(error(["--max-preauth-packet", "100"]), "--max-preauth-packet must be at least 4096 (a client's KEXINIT must fit)")
        XCTAssertEqual(error(["--auth"]), "--auth needs a value")
        XCTAssertEqual(error(["--nope"]), "unknown option '--nope' (see --help)")
    }

    func testConfigIsDecodedAsGoDecodesIt() throws {
        let go = #"{"Version":"1.11.5","Remotes":[{"LocalHost":"0.0.0.0","LocalPort":"18001","LocalProto":"tcp","RemoteHost":"127.0.0.1","RemotePort":"18002","RemoteProto":"tcp","Socks":false,"Reverse":true,"Stdio":false}]}"#
        let c = try ChiselConfigRequest.decode(Array(go.utf8))
        XCTAssertEqual(c.version, "1.11.5")
        XCTAssertEqual(c.remotes.count, 1)
        XCTAssertEqual(c.remotes[0].display, "R:18001=>18002")
        XCTAssertEqual(c.remotes[0].aclAddress, "R:0.0.0.0:18001")
        XCTAssertEqual(c.remotes[0].target, "127.0.0.1:18002")
        // Any case, unknown fields ignored, null and missing left empty.
        let loose = #"{"remotes":[{"localhost":"127.0.0.1","LOCALPORT":"1","localproto":"tcp","remotePort":"2","reverse":true,"extra":1,"Socks":null}]}"#
        let l = try ChiselConfigRequest.decode(Array(loose.utf8))
        XCTAssertEqual(l.version, "")
        XCTAssertEqual(l.remotes[0].localHost, "127.0.0.1")
        XCTAssertEqual(l.remotes[0].localPort, "1")
        XCTAssertEqual(l.remotes[0].remoteHost, "")
        XCTAssertTrue(l.remotes[0].reverse)
        XCTAssertFalse(l.remotes[0].socks)
        XCTAssertEqual(l.remotes[0].display, "R:127.0.0.1:1=>2")
        for bad in [#"{"Remotes":[{"LocalPort":1}]}"#, #"{"Remotes":{}}"#, #"[1]"#, "not json", #"{"Remotes":[{"Reverse":"yes"}]}"#] {
            XCTAssertThrowsError(try ChiselConfigRequest.decode(Array(bad.utf8)), bad)
        }
    }

    func testBindAddressesAndWhatCannotBeBound() throws {
        var r = ChiselServerRemote(localHost: "", localPort: "8000", localProto: "tcp", remoteHost: "", remotePort: "80")
        XCTAssertEqual(try TunnelServerSession.bindAddress(r).description, "0.0.0.0:8000")
        r.localHost = "[::1]"
        XCTAssertEqual(try TunnelServerSession.bindAddress(r).description, "[::1]:8000")
        r.localHost = "localhost"
        XCTAssertEqual(try TunnelServerSession.bindAddress(r).description, "127.0.0.1:8000")
        r.localHost = "example.com"
        XCTAssertThrowsError(try TunnelServerSession.bindAddress(r))
        r.localHost = "127.0.0.1"
        r.localProto = "udp"
        XCTAssertThrowsError(try TunnelServerSession.bindAddress(r))
        r.localProto = "tcp"
        r.localPort = "99999"
        XCTAssertThrowsError(try TunnelServerSession.bindAddress(r))
    }

    func testUsersPasswordsAndUnanchoredACLs() throws {
        let file = #"{"alice:pw:with:colons": ["^R:127\\.0\\.0\\.1:80[0-9]{2}$"], "bob:x": ["*"], "carol:y": []}"#
        let users = try TunnelUsers(auth: "dave:z", authFileText: file)
        XCTAssertTrue(users.authenticate(user: "alice", password: "pw:with:colons"))
        XCTAssertFalse(users.authenticate(user: "alice", password: "pw"))
        XCTAssertFalse(users.authenticate(user: "nobody", password: ""))
        XCTAssertTrue(users.allows(user: "alice", address: "R:127.0.0.1:8042"))
        XCTAssertFalse(users.allows(user: "alice", address: "R:0.0.0.0:8042"))
        XCTAssertTrue(users.allows(user: "bob", address: "R:0.0.0.0:1"))
        XCTAssertFalse(users.allows(user: "carol", address: "R:0.0.0.0:1"))
        XCTAssertTrue(users.allows(user: "dave", address: "anything"))
        let open = try TunnelUsers(auth: "", authFileText: nil)
        XCTAssertTrue(open.authenticate(user: "x", password: "y"))
        XCTAssertThrowsError(try TunnelUsers(auth: "", authFileText: #"{"a:b": ["("]}"#))
        XCTAssertThrowsError(try TunnelUsers(auth: "", authFileText: #"{"nocolon": []}"#))
    }

    func testChiselKeyDerivations() throws {
        XCTAssertEqual(try ChiselHostKey.fromSeed("testseed").publicKey.fingerprintSHA256Base64, "r7LNBdVzSS2DaRPmLtRsZV5OtFFTZEpMmbQ3QiEFIbQ=")
        XCTAssertThrowsError(try ChiselHostKey.fromChiselKey("ck-!!!"))
        XCTAssertThrowsError(try ChiselHostKey.fromKeyFile("/nonexistent/key"))
    }
}
