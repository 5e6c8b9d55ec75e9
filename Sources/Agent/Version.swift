public enum AgentVersion { public static let version = "0.1.0" }
