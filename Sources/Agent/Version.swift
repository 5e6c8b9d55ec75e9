import CShims

/// Build identity, shown by `--version`, `/version` and the start-up log.
public enum AgentVersion {
    /// The release build (scripts/build-release.sh) stamps version, commit and build date through
    /// CShims' build_stamp.c; a plain `swift build` shows the version below and "unknown".
    public static let version = stamped(shim_build_version()) ?? "0.1.0"
    public static let gitCommit = stamped(shim_build_commit()) ?? "unknown"
    public static let buildDate = stamped(shim_build_date()) ?? "unknown"
    #if swift(>=6.3)
    public static let swiftVersion = "6.3"
    #elseif swift(>=6.0)
    public static let swiftVersion = "6.x"
    #else
    public static let swiftVersion = "5.x"
    #endif
    public static var full: String { "pipeops-agent \(version) (commit \(gitCommit), built \(buildDate), Swift \(swiftVersion))" }

    private static func stamped(_ text: UnsafePointer<CChar>) -> String? {
        let value = String(cString: text)
        return value.isEmpty ? nil : value
    }
}
