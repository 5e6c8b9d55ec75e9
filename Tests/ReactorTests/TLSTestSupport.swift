import CShims
import Foundation
import Glibc
import XCTest
@testable import Reactor

/// A throwaway PKI made by Tests/Fixtures/tls/make-pki.sh with the openssl CLI.
struct TLSTestPKI {
    let dir: String
    var ca: String { dir + "/ca.pem" }
    var otherCA: String { dir + "/other-ca.pem" }
    var serverCert: String { dir + "/server.pem" }
    var serverKey: String { dir + "/server.key" }
    var expiredCert: String { dir + "/expired.pem" }
    var expiredKey: String { dir + "/expired.key" }
    var clientCert: String { dir + "/client.pem" }
    var clientKey: String { dir + "/client.key" }

    static func make(file: StaticString = #filePath) throws -> TLSTestPKI {
        let script = URL(fileURLWithPath: "\(file)").deletingLastPathComponent()
            .appendingPathComponent("../Fixtures/tls/make-pki.sh").standardized.path
        let dir = NSTemporaryDirectory() + "reactor-tls-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = [script, dir]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw TestFailure("make-pki.sh failed (is the openssl CLI installed?): \(text)")
        }
        return TLSTestPKI(dir: dir)
    }

    func remove() { try? FileManager.default.removeItem(atPath: dir) }
}


/// An `openssl` CLI process (s_server, s_client) with stdout/stderr captured in files.
final class OpenSSLPeer {
    let process = Process()
    let stdoutPath: String
    let stderrPath: String
    let stdin = Pipe()

    init(_ arguments: [String], workDir: String) throws {
        guard let path = ["/usr/bin/openssl", "/usr/local/bin/openssl", "/bin/openssl"]
            .first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw TestFailure("the openssl CLI is not installed (apt-get install openssl)")
        }
        let tag = "\(arguments.first ?? "x")-\(UInt32.random(in: 0...UInt32.max))"
        stdoutPath = workDir + "/\(tag).out"
        stderrPath = workDir + "/\(tag).err"
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: workDir)
        process.standardInput = stdin
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        try process.run()
    }

    var output: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var errors: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// Starts `openssl s_server` on 127.0.0.1:`port` and waits for it to listen.
    static func server(port: Int, workDir: String, _ extra: [String]) throws -> OpenSSLPeer {
        let peer = try OpenSSLPeer(["s_server", "-accept", "127.0.0.1:\(port)", "-naccept", "1"] + extra, workDir: workDir)
        let limit = Date().addingTimeInterval(10)
        while !peer.output.contains("ACCEPT") {
            guard peer.process.isRunning else { throw TestFailure("s_server exited: \(peer.errors)") }
            guard Date() < limit else { peer.stop(); throw TestFailure("s_server did not start listening: \(peer.errors)") }
            usleep(20_000)
        }
        return peer
    }

    func send(_ text: String) { stdin.fileHandleForWriting.write(Data(text.utf8)) }
    func closeInput() { try? stdin.fileHandleForWriting.close() }

    func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }
}

/// Records what a stream reports.
final class StreamRecorder: ByteStreamDelegate {
    var opened = false
    var received: [UInt8] = []
    var eof = false
    var closed = false
    var closeError: ConnectionError?
    var closeOnEOF = true

    func streamDidOpen(_ stream: ByteStream) { opened = true }
    func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) { received.append(contentsOf: bytes) }
    func streamDidReadEOF(_ stream: ByteStream) {
        eof = true
        if closeOnEOF { stream.close() }
    }
    func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) {
        closed = true
        closeError = error
    }
    var text: String { String(decoding: received, as: UTF8.self) }
}

/// A TLS echo server on the loop, with backpressure: it stops reading while its writes queue up.
final class TLSEchoServer {
    let listener: TCPListener
    let context: TLSContext
    var sessions: [ObjectIdentifier: Session] = [:]
    var handshakes = 0
    var lastVersion: TLSVersion?
    var lastALPN: String?
    var lastPeerSubject: String?
    var failures: [ConnectionError] = []

    final class Session: ByteStreamDelegate {
        unowned let server: TLSEchoServer
        var stream: TLSStream?
        init(server: TLSEchoServer) { self.server = server }

        func streamDidOpen(_ stream: ByteStream) {
            server.handshakes += 1
            if let tls = stream as? TLSStream {
                server.lastVersion = tls.protocolVersion
                server.lastALPN = tls.alpnProtocol
                server.lastPeerSubject = tls.engine.peerCertificateSubject
            }
        }
        func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {
            stream.write(bytes)
            if !stream.isWritable { stream.pauseReading() }
        }
        func stream(_ stream: ByteStream, writabilityChanged writable: Bool) {
            if writable { stream.resumeReading() }
        }
        func streamDidReadEOF(_ stream: ByteStream) { stream.close() }
        func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) {
            if let error { server.failures.append(error) }
            server.sessions[ObjectIdentifier(self)] = nil
        }
    }

    init(loop: EventLoop, context: TLSContext) throws {
        self.context = context
        var accept: ((Int32, SocketAddress?) -> Void)?
        listener = try TCPListener(loop: loop, address: try SocketAddress(ip: "127.0.0.1", port: 0)) { fd, peer in
            accept?(fd, peer)
        }
        accept = { [unowned self, unowned loop] fd, peer in
            let session = Session(server: self)
            self.sessions[ObjectIdentifier(session)] = session
            do throws(ConnectionError) {
                session.stream = try TLSStream.accept(loop: loop, fd: fd, peer: peer, context: self.context, delegate: session)
            } catch {
                self.failures.append(error)
                self.sessions[ObjectIdentifier(session)] = nil
            }
        }
    }

    var address: SocketAddress { listener.address }
    func close() { listener.close() }
}

extension EventLoop {
    /// `run(until:)` for conditions the loop cannot see (an external process's output): a
    /// ticking timer wakes the loop so the condition is checked every few milliseconds.
    func runPolling(until condition: () -> Bool, timeout: TimeAmount) -> Bool {
        final class Ticker {
            var timer: LoopTimer?
            func start(_ loop: EventLoop) {
                timer = loop.schedule(in: .milliseconds(10)) { [weak self, unowned loop] in self?.start(loop) }
            }
        }
        let ticker = Ticker()
        ticker.start(self)
        defer { ticker.timer?.cancel() }
        return run(until: condition, timeout: timeout)
    }
}
