import CShims
import Foundation
import Glibc
import XCTest
@testable import Reactor

/// A server that echoes every byte back, pausing its reads while the echo can't be written
/// (backpressure), and counting what it saw. With `echoes` off it only counts (a sink).
final class EchoServer: ByteStreamDelegate {
    let loop: EventLoop
    var listener: TCPListener!
    var connections: [ObjectIdentifier: TCPConnection] = [:]
    var closed = 0
    var accepted = 0
    var echoes = true
    var receivedBytes = 0

    init(loop: EventLoop) throws {
        self.loop = loop
        listener = try TCPListener(loop: loop, address: SocketAddress(ip: "127.0.0.1", port: 0)) { [unowned self] fd, peer in
            guard let c = try? TCPConnection(loop: self.loop, acceptedFD: fd, peer: peer, delegate: self) else { return }
            self.accepted += 1
            self.connections[ObjectIdentifier(c)] = c
        }
    }

    var address: SocketAddress { try! SocketAddress(ip: "127.0.0.1", port: listener.port) }
    var port: Int { listener.port }
    func close() { listener.close() }

    func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {
        receivedBytes += bytes.count
        guard echoes else { return }
        stream.write(bytes)
        if !stream.isWritable { stream.pauseReading() }
    }
    func stream(_ stream: ByteStream, writabilityChanged writable: Bool) {
        if writable { stream.resumeReading() }
    }
    func streamDidReadEOF(_ stream: ByteStream) {
        (stream as? TCPConnection)?.closeWhenFlushed()
    }
    func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) {
        connections.removeValue(forKey: ObjectIdentifier(stream))
        closed += 1
    }
}

/// A deterministic byte pattern; `offset` makes every position distinct within 251-byte cycles.
func patternByte(_ i: Int, seed: Int) -> UInt8 { UInt8(truncatingIfNeeded: (i &* 31 &+ seed) % 251) }

func makePattern(count: Int, seed: Int) -> [UInt8] {
    (0..<count).map { patternByte($0, seed: seed) }
}

/// Records everything a stream delivers.
final class Recorder: ByteStreamDelegate {
    var received: [UInt8] = []
    var opened = false
    var eof = false
    var closedError: ConnectionError?
    var isClosed = false
    var writabilityEvents: [Bool] = []
    var onOpen: ((ByteStream) -> Void)?
    var onRead: ((ByteStream) -> Void)?
    var onEOF: ((ByteStream) -> Void)?
    var onWritable: ((ByteStream, Bool) -> Void)?

    func streamDidOpen(_ stream: ByteStream) { opened = true; onOpen?(stream) }
    func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {
        received.append(contentsOf: bytes)
        onRead?(stream)
    }
    func streamDidReadEOF(_ stream: ByteStream) {
        eof = true
        if let onEOF { onEOF(stream) } else { stream.close(nil) }
    }
    func stream(_ stream: ByteStream, writabilityChanged writable: Bool) {
        writabilityEvents.append(writable)
        onWritable?(stream, writable)
    }
    func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) {
        isClosed = true
        closedError = error
    }
}

extension EchoServer {
    /// A throwaway delegate for streams that are handed to a bridge right after they are made.
    typealias Echo = Recorder
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A free TCP port on 127.0.0.1 (bound to port 0, read back, released).
func freeLocalPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket failed") }
    defer { Glibc.close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    guard rc == 0 else { throw TestFailure("bind failed") }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}
