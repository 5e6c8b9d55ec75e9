import CShims
import Glibc
import Logging

/// swift-log handler that writes one line per record with a single `write(2)` to stderr, so log
/// lines never interleave and read cleanly next to `strace -f` output. URL userinfo in the
/// message or a metadata value (`http://user:password@host`) is written as `***`.
///   json:    {"time":"2026-01-15T10:30:00.123Z","level":"info","msg":"...","component":"...",...}
///   console: 10:30:00.123 INFO  [component] msg key=value ...   (when stderr is a terminal)
public struct LineLogHandler: LogHandler {
    public enum Format: String, Sendable { case json, console }

    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    public let label: String
    public let format: Format
    private let fd: Int32
    /// Also gets every record written (the live log stream); nil: stderr only.
    private let tap: LogTap?

    public init(label: String, level: Logger.Level, format: Format, fd: Int32 = 2, tap: LogTap? = nil) {
        self.label = label
        self.logLevel = level
        self.format = format
        self.fd = fd
        self.tap = tap
    }

    /// Installs this handler for every logger in the process.
    public static func bootstrap(level: Logger.Level, format: Format, tap: LogTap? = nil) {
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, level: level, format: format, tap: tap) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let component = merged.removeValue(forKey: "component").map { "\($0)" } ?? label
        var line = format == .json
            ? Self.jsonLine(level: event.level, message: "\(event.message)", component: component, metadata: merged)
            : Self.consoleLine(level: event.level, message: "\(event.message)", component: component, metadata: merged)
        line.withUTF8 { buf in
            var off = 0
            while off < buf.count {
                let n = Glibc.write(fd, buf.baseAddress! + off, buf.count - off)
                if n <= 0 { if n < 0 && shim_errno() == EINTR { continue }; return }
                off += n
            }
        }
        tap?.record(time: shim_realtime_ns(), level: Self.levelName(event.level), component: component,
                    message: "\(event.message)", metadata: merged.sorted { $0.key < $1.key }.map { ($0.key, "\($0.value)") },
                    urgent: event.level >= .warning)
    }

    static func jsonLine(level: Logger.Level, message: String, component: String, metadata: Logger.Metadata) -> String {
        var s = "{\"time\":\"\(Timestamp.rfc3339(nanoseconds: shim_realtime_ns()))\",\"level\":\"\(levelName(level))\",\"msg\":"
        JSONText.appendQuoted(URLUserinfo.redacted(message), to: &s)
        s += ",\"component\":"
        JSONText.appendQuoted(component, to: &s)
        for key in metadata.keys.sorted() {
            s += ","
            JSONText.appendQuoted(key, to: &s)
            s += ":"
            JSONText.appendQuoted(URLUserinfo.redacted("\(metadata[key]!)"), to: &s)
        }
        s += "}\n"
        return s
    }

    static func consoleLine(level: Logger.Level, message: String, component: String, metadata: Logger.Metadata) -> String {
        let ts = Timestamp.rfc3339(nanoseconds: shim_realtime_ns())
        let time = ts.dropFirst(11).dropLast()   // HH:MM:SS.mmm
        var name = levelName(level).uppercased()
        while name.count < 5 { name += " " }
        var s = "\(time) \(name) [\(component)] \(URLUserinfo.redacted(message))"
        for key in metadata.keys.sorted() { s += " \(key)=\(URLUserinfo.redacted("\(metadata[key]!)"))" }
        s += "\n"
        return s
    }

    static func levelName(_ level: Logger.Level) -> String {
        switch level {
        case .trace: return "trace"
        case .debug: return "debug"
        case .info: return "info"
        case .notice: return "notice"
        case .warning: return "warning"
        case .error: return "error"
        case .critical: return "critical"
        }
    }
}
