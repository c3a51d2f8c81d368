// A ClientSession against real replica daemons over loopback TCP in this process: many client
// identities over one connection per replica, each committing its own requests and getting its
// own replies.

import Foundation
import GeoClient
import GeoCore
import GeoCrypto
import GeoNode
import GeoTopology
import Testing
import GeoTestKit

@Suite(.serialized) struct ClientSessionTests {
    @Test func manyClientsOfOneSessionCommitAndGetTheirOwnReplies() async throws {
        let topology = LoopbackDeploymentTests.topology(basePort: 21_400)
        let data = TestKit.temporaryDirectory("geofabric-session")
        defer { try? FileManager.default.removeItem(atPath: data) }
        var daemons: [ReplicaDaemon] = []
        for replica in topology.allReplicas {
            daemons.append(try await ReplicaDaemon.start(topology: topology, replica: replica.name,
                                                         options: DaemonOptions(dataDirectory: data, topologyDirectory: data),
                                                         logger: LoopbackDeploymentTests.quiet))
        }
        let identities = (0..<12).map { index in
            let client = ClientID(UInt32(index))
            return (client: client, key: SigningKey.development(topology: topology.name, identity: Topology.clientName(client)))
        }
        let session = ClientSession(topology: topology, keys: KeyRing.development(for: topology), identities: identities,
                                    cluster: topology.shards[0].clusters[0], logger: LoopbackDeploymentTests.quiet)
        await session.start()
        // Every client adds its own number to its own key, three times, all at once: each result
        // is its own running sum, so a reply delivered to the wrong client would show.
        let results = try await withThrowingTaskGroup(of: (UInt32, [ExecutionResult]).self) { group in
            for client in session.ordered {
                let id = session.ordered.firstIndex { $0 === client }.map { UInt32($0) }!
                group.addTask {
                    var results: [ExecutionResult] = []
                    for _ in 0..<3 {
                        let completion = try await client.submit(.add(key: Array("k\(id)".utf8), delta: Int64(id) + 1), timeout: .seconds(30))
                        results.append(completion.result)
                    }
                    return (id, results)
                }
            }
            var all: [UInt32: [ExecutionResult]] = [:]
            for try await (id, results) in group { all[id] = results }
            return all
        }
        #expect(results.count == 12)
        for (id, values) in results {
            let step = Int64(id) + 1
            #expect(values == [.number(step), .number(2 * step), .number(3 * step)])
        }
        await session.shutdown()
        for daemon in daemons { await daemon.shutdown() }
    }
}
