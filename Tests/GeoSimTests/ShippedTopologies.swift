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
