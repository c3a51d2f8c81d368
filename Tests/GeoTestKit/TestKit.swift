// What the test suites share: the repository's files, temporary directories, small topologies
// that say only what a test changes, and waiting for a condition. One copy here instead of one per
// test file (issue 13: the suites had four `eventually`s, three temporary-directory helpers and
// inline topologies that repeated each other and topologies/).

import Foundation
import GeoCore
import GeoTopology

public enum TestKit {
    /// The package's root directory, found from this file's path (Tests/GeoTestKit/TestKit.swift).
    public static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The path of a topology of the repository's topologies/ folder.
    public static func shippedTopologyPath(_ name: String) -> String {
        "\(repositoryRoot)/topologies/\(name).yaml"
    }

    /// A topology of topologies/, so a test runs exactly what users deploy.
    public static func shippedTopology(_ name: String) -> Topology {
        let path = shippedTopologyPath(name)
        do {
            return try TopologyLoader.load(path: path)
        } catch {
            fatalError("the shipped topology \(path) does not load: \(error)")
        }
    }

    /// A fresh path under the system's temporary directory, not created (for a command that
    /// must create it itself).
    public static func temporaryPath(_ prefix: String = "geofabric-test") -> String {
        NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString)"
    }

    /// A fresh, empty directory under the system's temporary directory.
    public static func temporaryDirectory(_ prefix: String = "geofabric-test") -> String {
        let path = temporaryPath(prefix)
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            fatalError("cannot create the temporary directory \(path): \(error)")
        }
        return path
    }

    /// Writes `text` to a file named `name` in a fresh temporary directory; returns its path.
    public static func writeTemporary(_ text: String, name: String = "t.yaml") throws -> String {
        let path = temporaryDirectory("geofabric-file") + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The protocol settings of the bounded-state tests: a small window and frequent
    /// checkpoints and snapshots, so that a few hundred transactions cross several of each.
    public static let boundedStateProtocol =
        "{batch_size: 20, batch_delay_ms: 2, window: 16, checkpoint_every: 4, snapshot_every: 8, view_timeout_ms: 400}"

    /// A one-shard, one-cluster topology in region `local`: the shape most tests need, with only
    /// what they change said. `basePort` places its replicas (real-process and loopback tests);
    /// `devKeys` gives it the development keys.
    public static func localTopology(name: String, replicas: Int = 4, protocol settings: String,
                                     basePort: Int? = nil, devKeys: Bool = false) -> Topology {
        var lines = ["name: \(name)", "regions: [local]"]
        if let basePort { lines.append("base_port: \(basePort)") }
        lines.append("shards: [{name: s0, clusters: [{region: local, replicas: \(replicas)}]}]")
        lines.append("protocol: \(settings)")
        if devKeys { lines.append("keys: dev") }
        do {
            return try TopologyLoader.parse(text: lines.joined(separator: "\n") + "\n", file: name)
        } catch {
            fatalError("the test topology \(name) does not load: \(error)")
        }
    }
}

/// True once `condition` holds, false if it does not within `timeout` (polled every `interval`).
public func eventually(_ timeout: Duration = .seconds(60), interval: Duration = .milliseconds(10),
                       _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return await condition()
}

/// Runs CPU-bound simulation on a thread of its own. `swift test` runs every test target in one
/// process, and a synchronous test holds one of the few cooperative threads (two on a two-core
/// machine) for as long as it runs: a 200-seed sweep held one for a minute, and the real-process
/// tests of other suites, whose status polls resume on those threads, timed out waiting for
/// replicas that had been ready all along (a CI run: "not ready after 60 s").
public func offTheCooperativePool<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: work()) }
        thread.stackSize = 16 << 20
        thread.start()
    }
}
