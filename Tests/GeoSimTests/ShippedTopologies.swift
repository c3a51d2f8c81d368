import Foundation
import GeoCore
import GeoTopology

/// A topology of the repository's topologies/ folder, so a scenario runs exactly what users
/// deploy (and a change to the shipped file shows in the seeds that replay it).
func shippedTopology(_ name: String) -> Topology {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    let path = url.appendingPathComponent("topologies/\(name).yaml").path
    do {
        return try TopologyLoader.load(path: path)
    } catch {
        fatalError("the shipped topology \(path) does not load: \(error)")
    }
}

/// Runs CPU-bound simulation on a thread of its own. `swift test` runs every test target in one
/// process, and a synchronous test holds one of the few cooperative threads (two on a two-core
/// machine) for as long as it runs: a 200-seed sweep held one for a minute, and the real-process
/// tests of other suites, whose status polls resume on those threads, timed out waiting for
/// replicas that had been ready all along (a CI run: "not ready after 60 s").
func offTheCooperativePool<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: work()) }
        thread.stackSize = 16 << 20
        thread.start()
    }
}
