// Benchmark tool for the reactor, driven by scripts/bench.sh (never by tests).
//   reactor-bench echo-server PORT            echo every byte back, with backpressure
//   reactor-bench echo-client PORT SECONDS    stream through the echo for SECONDS; print bytes/s
//   reactor-bench sink-server PORT            read and discard (iperf3's shape)
//   reactor-bench send-client PORT SECONDS    write only for SECONDS; print bytes/s
//   reactor-bench hold-clients PORT COUNT     open COUNT idle connections, print "ready", wait for stdin EOF
// The loop runs on PIPEOPS_REACTOR_BACKEND (epoll, the default, or io_uring), as the agent's would.
import CShims
import Glibc
import Reactor

/// print() to a pipe is buffered; the harness waits for these lines, so write them directly.
func say(_ line: String) {
    let text = line + "\n"
    _ = text.withCString { Glibc.write(1, $0, strlen($0)) }
}

func fail(_ message: String) -> Never {
    let line = "reactor-bench: \(message)\n"
    _ = line.withCString { Glibc.write(2, $0, strlen($0)) }
    exit(2)
}

final class Sink: ByteStreamDelegate {
    var conns: [ObjectIdentifier: TCPConnection] = [:]
    func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {}
    func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) { conns.removeValue(forKey: ObjectIdentifier(stream)) }
}

final class Echo: ByteStreamDelegate {
    var conns: [ObjectIdentifier: TCPConnection] = [:]
    func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {
        stream.write(bytes)
        if !stream.isWritable { stream.pauseReading() }
    }
    func stream(_ stream: ByteStream, writabilityChanged writable: Bool) { if writable { stream.resumeReading() } }
    func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) { conns.removeValue(forKey: ObjectIdentifier(stream)) }
}

/// Keeps the pipe full: writes while writable, counts what comes back.
final class Streamer: ByteStreamDelegate {
    let block = [UInt8](repeating: 0x61, count: 64 * 1024)
    var received = 0
    var failed: ConnectionError?
    func pump(_ s: ByteStream) { while s.isWritable { s.write(block) } }
    func streamDidOpen(_ stream: ByteStream) { pump(stream) }
    func stream(_ stream: ByteStream, writabilityChanged writable: Bool) { if writable { pump(stream) } }
    func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) { received += bytes.count }
    func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) { failed = error ?? .closedLocally("closed") }
}

final class Idle: ByteStreamDelegate {
    var open = 0
    var closed = 0
    func streamDidOpen(_ stream: ByteStream) { open += 1 }
    func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {}
    func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) { closed += 1 }
}

let args = CommandLine.arguments
guard args.count >= 3, let port = Int(args[2]) else { fail("usage: reactor-bench echo-server|echo-client|hold-clients PORT [ARG]") }
Socket.raiseOpenFileLimit()
let loop: EventLoop
let backendName = getenv("PIPEOPS_REACTOR_BACKEND").map { String(cString: $0) } ?? "epoll"
guard let backend = LoopBackend(rawValue: backendName) else { fail("PIPEOPS_REACTOR_BACKEND=\(backendName): expected epoll or io_uring") }
do { loop = try EventLoop(backend: backend) } catch { fail("\(error)") }
let target: SocketAddress
do { target = try SocketAddress(ip: "127.0.0.1", port: port) } catch { fail("\(error)") }

switch args[1] {
case "echo-server", "sink-server":
    let echo: ByteStreamDelegate = args[1] == "echo-server" ? Echo() : Sink()
    var conns: [ObjectIdentifier: TCPConnection] = [:]
    let listener: TCPListener
    do {
        listener = try TCPListener(loop: loop, address: target) { fd, peer in
            if let c = try? TCPConnection(loop: loop, acceptedFD: fd, peer: peer, delegate: echo) {
                c.highWaterMark = 1 << 20
                c.lowWaterMark = 256 << 10
                conns[ObjectIdentifier(c)] = c
            }
        }
    } catch { fail("\(error)") }
    say("listening \(listener.port)")
    try? loop.watchLifecycleSignals(onShutdown: { _ in loop.stop() }, onReload: {})
    loop.run()
case "echo-client", "send-client":
    let sendOnly = args[1] == "send-client"
    let seconds = args.count > 3 ? Double(args[3]) ?? 4 : 4
    let s = Streamer()
    let conn: TCPConnection
    do { conn = try TCPConnection.connect(loop: loop, to: target, timeout: .seconds(5), delegate: s) } catch { fail("\(error)") }
    conn.highWaterMark = 1 << 20
    conn.lowWaterMark = 256 << 10
    // Warm up for half a second, then measure.
    loop.run(until: { s.failed != nil }, timeout: .milliseconds(500))
    let start = Deadline.now()
    func moved() -> Int { sendOnly ? Int(conn.bytesWritten) : s.received }
    let startBytes = moved()
    loop.run(until: { s.failed != nil }, timeout: .fractionalSeconds(seconds))
    let elapsed = (Deadline.now() - start).seconds
    if let f = s.failed { fail("connection failed: \(f)") }
    let bytes = moved() - startBytes
    say("{\"bytes\": \(bytes), \"seconds\": \(elapsed), \"bytes_per_second\": \(Double(bytes) / elapsed)}")
    conn.close(nil)
case "hold-clients":
    let count = args.count > 3 ? Int(args[3]) ?? 1000 : 1000
    let idle = Idle()
    var conns: [TCPConnection] = []
    conns.reserveCapacity(count)
    var started = 0
    // Open in waves so the server's accept backlog is never overrun.
    while started < count {
        let wave = min(500, count - started)
        for _ in 0..<wave {
            do { conns.append(try TCPConnection.connect(loop: loop, to: target, timeout: .seconds(30), delegate: idle)) } catch { fail("\(error)") }
        }
        started += wave
        loop.run(until: { idle.open + idle.closed >= started }, timeout: .seconds(30))
    }
    if idle.closed > 0 { fail("\(idle.closed) connections closed early") }
    say("ready \(idle.open)")
    var b: UInt8 = 0
    _ = read(0, &b, 1)   // hold until the harness closes stdin
default:
    fail("unknown mode \(args[1])")
}
