// swift-tools-version: 6.1
// GeoFabric: a geo-aware, sharded, permissioned blockchain fabric (after GeoBFT, PVLDB 2020).
// Targets mirror the architecture (see README "Architecture"): imports only point downwards,
// and GeoCore, the pure protocol core, depends on nothing.
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

/// The protocol core, the codec and the simulator are optimised even in debug builds: the test
/// suite runs hundreds of simulated seeds, and unoptimised generic Swift is about ten times slower.
/// (unsafeFlags are fine here: GeoFabric is an application, never a dependency of another package.)
let optimisedInDebug: [SwiftSetting] = strict + [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
    name: "GeoFabric",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "geofabric", targets: ["geofabric"]),
        .library(name: "GeoCore", targets: ["GeoCore"]),
        .library(name: "GeoWire", targets: ["GeoWire"]),
        .library(name: "GeoCrypto", targets: ["GeoCrypto"]),
        .library(name: "GeoTopology", targets: ["GeoTopology"]),
        .library(name: "GeoSim", targets: ["GeoSim"]),
        .library(name: "GeoNode", targets: ["GeoNode"]),
        .library(name: "GeoNet", targets: ["GeoNet"]),
        .library(name: "GeoClient", targets: ["GeoClient"]),
        .library(name: "GeoStore", targets: ["GeoStore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
    ],
    targets: [
        // Pure protocol core: ids, topology model, messages, quorum math. No I/O, clocks, threads.
        .target(name: "GeoCore", swiftSettings: optimisedInDebug),
        // Binary frame codec for every GeoCore message (hand-written little-endian, bounded).
        .target(name: "GeoWire", dependencies: ["GeoCore"], swiftSettings: optimisedInDebug),
        // Ed25519 keys and signatures, SHA-256, HMAC, parallel verification (swift-crypto).
        .target(
            name: "GeoCrypto",
            dependencies: ["GeoCore", "GeoWire", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),
        // YAML topology loading and validation (Yams); yields GeoCore's typed Topology.
        .target(
            name: "GeoTopology",
            dependencies: ["GeoCore", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict),
        // SwiftNIO transport: framing, handshake binding a connection to an identity, reconnect,
        // bounded outbound queues, optional WAN emulation. The shell's I/O; GeoCore never sees it.
        .target(
            name: "GeoNet",
            dependencies: [
                "GeoCore", "GeoWire", "GeoCrypto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // Deterministic discrete-event simulator running GeoCore replicas under seeded faults.
        .target(
            name: "GeoSim",
            dependencies: ["GeoCore", "GeoWire", .product(name: "HeapModule", package: "swift-collections")],
            swiftSettings: optimisedInDebug),
        // The replica daemon: owns a core, verifies client signatures in parallel, persists, sends.
        .target(
            name: "GeoNode",
            dependencies: [
                "GeoCore", "GeoWire", "GeoCrypto", "GeoStore", "GeoNet",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // The client library: sign, submit, retry, wait for f + 1 matching replies.
        .target(
            name: "GeoClient",
            dependencies: ["GeoCore", "GeoCrypto", "GeoNet", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        // The subcommands of the `geofabric` tool, as a library so tests can drive them.
        .target(
            name: "GeoFabricCLI",
            dependencies: [
                "GeoCore", "GeoWire", "GeoCrypto", "GeoTopology", "GeoSim", "GeoStore", "GeoNet", "GeoNode", "GeoClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "X509", package: "swift-certificates"),
            ],
            swiftSettings: strict),
        // The durable, append-only, checksummed log of one replica (DurableRecords, snapshots).
        .target(name: "GeoStore", dependencies: ["GeoCore", "GeoWire"], swiftSettings: strict),
        .executableTarget(name: "geofabric", dependencies: ["GeoFabricCLI", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),

        // What the test suites share (Tests/GeoTestKit): repository files, temporary directories,
        // small topologies, waiting for a condition.
        .target(name: "GeoTestKit", dependencies: ["GeoCore", "GeoTopology"], path: "Tests/GeoTestKit", swiftSettings: strict),
        .testTarget(name: "GeoCoreTests", dependencies: ["GeoCore", "GeoSim", "GeoTestKit"], swiftSettings: strict),
        .testTarget(name: "GeoWireTests", dependencies: ["GeoWire", "GeoCore"], swiftSettings: strict),
        .testTarget(name: "GeoCryptoTests", dependencies: ["GeoCrypto", "GeoCore", "GeoWire", "GeoTestKit"], swiftSettings: strict),
        .testTarget(name: "GeoTopologyTests", dependencies: ["GeoTopology", "GeoCore", "GeoTestKit"], swiftSettings: strict),
        .testTarget(name: "GeoSimTests", dependencies: ["GeoSim", "GeoCore", "GeoWire", "GeoTopology", "GeoTestKit"], exclude: ["traces"],
                    swiftSettings: strict),
        .testTarget(name: "GeoNodeTests", dependencies: ["GeoNode", "GeoClient", "GeoCore", "GeoCrypto", "GeoWire", "GeoTopology", "GeoTestKit"], swiftSettings: strict),
        .testTarget(name: "GeoStoreTests", dependencies: ["GeoStore", "GeoCore", "GeoWire"], swiftSettings: strict),
        .testTarget(
            name: "GeoNetTests",
            dependencies: [
                "GeoNet", "GeoCore", "GeoWire", "GeoCrypto", "GeoTopology", "GeoTestKit",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "GeoFabricCLITests",
            dependencies: ["GeoFabricCLI", "GeoTopology", "GeoCrypto", "GeoCore", "GeoNet", "GeoNode", "GeoClient", "GeoTestKit",
                           .product(name: "Yams", package: "Yams"), .product(name: "X509", package: "swift-certificates")],
            swiftSettings: strict),
    ]
)
