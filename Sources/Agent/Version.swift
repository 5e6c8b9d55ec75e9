/// Build identity, shown by `--version`, `/version` and the start-up log.
public enum AgentVersion {
    public static let version = "0.1.0"
    /// Filled by `make` through -D flags in release images; "unknown" in a plain build.
    public static let gitCommit = "unknown"
    public static let buildDate = "unknown"
    #if swift(>=6.3)
    public static let swiftVersion = "6.3"
    #elseif swift(>=6.0)
    public static let swiftVersion = "6.x"
    #else
    public static let swiftVersion = "5.x"
    #endif
    public static var full: String { "pipeops-agent \(version) (commit \(gitCommit), built \(buildDate), Swift \(swiftVersion))" }
}
