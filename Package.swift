// swift-tools-version:6.0
import PackageDescription

// Dependencies are kept short on purpose: each one costs build minutes on CI and bytes in the pod.
let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]
// The loop's hot paths run on one thread; dynamic exclusivity checks there cost a few percent
// of request throughput in release builds (debug builds and tests keep them).
let hotPath: [SwiftSetting] = strict + [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "pipeops-agent",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "pipeops-agent", targets: ["pipeops-agent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .target(
            name: "CShims",
            linkerSettings: [
                .linkedLibrary(":libssl.a"), .linkedLibrary(":libcrypto.a"),
                .linkedLibrary(":liburing.a"), .linkedLibrary(":libyaml.a"),
                .linkedLibrary(":libcares.a"),
            ]
        ),
        .target(
            name: "Reactor",
            dependencies: ["CShims", .product(name: "Logging", package: "swift-log")],
            swiftSettings: hotPath
        ),
        .target(
            name: "Agent",
            dependencies: ["Reactor", "CShims", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "pipeops-agent",
            dependencies: [
                "Agent", "Reactor",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "reactor-bench",
            dependencies: ["Reactor", "CShims"],
            path: "bench/reactor-bench",
            swiftSettings: strict
        ),
        .testTarget(
            name: "ReactorTests",
            dependencies: ["Reactor", "CShims"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "AgentTests",
            dependencies: ["Agent", "Reactor"],
            swiftSettings: strict
        ),
    ]
)
