// Real replica daemons over loopback TCP in this process: the durable log, the transport's
// handshake, the client library. A replica stopped and started again on its data directory
// resumes its ledger.

import Foundation
import GeoClient
import GeoCore
import GeoCrypto
import GeoNode
import GeoTopology
import Logging
import Testing
import GeoTestKit

@Suite(.serialized) struct LoopbackDeploymentTests {
    /// A topology on a port range of its own (other suites and a running `geofabric up` use 7000+).
    static func topology(basePort: Int) -> Topology {
        TestKit.localTopology(name: "loopback-1x4", protocol: "{batch_size: 20, batch_delay_ms: 2, window: 64, checkpoint_every: 4, view_timeout_ms: 400}",
                              basePort: basePort, devKeys: true)
    }

    static let quiet: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return logger
    }()

    func start(_ topology: Topology, _ name: String, data: String) async throws -> ReplicaDaemon {
        try await ReplicaDaemon.start(topology: topology, replica: name, options: DaemonOptions(dataDirectory: data, topologyDirectory: data),
                                      logger: Self.quiet)
    }

    func client(_ topology: Topology, id: UInt32 = 0) async -> FabricClient { await Self.client(topology, id: id) }

    static func client(_ topology: Topology, id: UInt32 = 0) async -> FabricClient {
        let clientID = ClientID(id)
        let client = FabricClient(topology: topology, keys: KeyRing.development(for: topology), client: clientID,
                                  key: SigningKey.development(topology: topology.name, identity: Topology.clientName(clientID)),
                                  cluster: topology.shards[0].clusters[0], logger: Self.quiet)
        await client.start()
        return client
    }

    @Test func commitsOverTCPAndAReplicaRestartsFromItsLog() async throws {
        let topology = Self.topology(basePort: 17_400)
        let data = TestKit.temporaryDirectory("geofabric-node")
        defer { try? FileManager.default.removeItem(atPath: data) }
        var daemons: [String: ReplicaDaemon] = [:]
        for replica in topology.allReplicas { daemons[replica.name] = try await start(topology, replica.name, data: data) }

        let client = await client(topology)
        var last: Completion?
        for index in 1...20 {
            last = try await client.submit(.add(key: Array("k".utf8), delta: Int64(index)), timeout: .seconds(20))
        }
        #expect(last?.result == .number(210))

        // Stop a backup, commit more without it, start it again on the same directory.
        let backup = topology.shards[0].clusters[0].replicas[2].name
        let heightBefore = await daemons[backup]!.node.height
        #expect(heightBefore >= 1)
        await daemons[backup]!.shutdown()
        daemons[backup] = nil
        for index in 21...30 {
            last = try await client.submit(.add(key: Array("k".utf8), delta: Int64(index)), timeout: .seconds(20))
        }
        #expect(last?.result == .number(465))
        let restarted = try await start(topology, backup, data: data)
        daemons[backup] = restarted
        // It found its ledger on disk at once, and catches up on what it missed from its peers.
        #expect(await restarted.node.height >= heightBefore)
        let primary = daemons[topology.shards[0].clusters[0].replicas[0].name]!.node
        var caughtUp = false
        for _ in 0..<150 {
            if await restarted.node.height == primary.height, await restarted.node.head == primary.head {
                caughtUp = true
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let (restartedHeight, primaryHeight) = (await restarted.node.height, await primary.height)
        #expect(caughtUp, "restarted \(restartedHeight) vs primary \(primaryHeight)")
        #expect(await restarted.node.value(of: Array("k".utf8)) == KeyValueStore.encode(465))

        await client.shutdown()
        for daemon in daemons.values { await daemon.shutdown() }
    }

    @Test func aLogOfAnotherTopologyIsRefused() async throws {
        let data = TestKit.temporaryDirectory("geofabric-node")
        defer { try? FileManager.default.removeItem(atPath: data) }
        let first = Self.topology(basePort: 17_500)
        let name = first.allReplicas[0].name
        let daemon = try await start(first, name, data: data)
        await daemon.shutdown()
        // Same replica name, other ports: another deployment. Its log must not be taken over.
        let second = Self.topology(basePort: 17_600)
        await #expect(throws: DaemonError.self) { _ = try await start(second, name, data: data) }
    }

    @Test func aCorruptLogStopsTheReplicaAtStartAndATornTailIsCut() async throws {
        let topology = Self.topology(basePort: 17_700)
        let data = TestKit.temporaryDirectory("geofabric-node")
        defer { try? FileManager.default.removeItem(atPath: data) }
        var daemons: [ReplicaDaemon] = []
        for replica in topology.allReplicas { daemons.append(try await start(topology, replica.name, data: data)) }
        let client = await client(topology)
        for index in 1...10 { _ = try await client.submit(.add(key: Array("k".utf8), delta: Int64(index)), timeout: .seconds(20)) }
        await client.shutdown()
        for daemon in daemons { await daemon.shutdown() }

        let name = topology.allReplicas[1].name
        let path = "\(data)/\(name)/replica.log"
        let original = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(original.count > 1_000)
        // A torn tail (a crash mid-append): cut, and the replica starts with what came before.
        try original.prefix(original.count - 3).write(to: URL(fileURLWithPath: path))
        let restarted = try await start(topology, name, data: data)
        #expect(await restarted.node.height >= 1)
        await restarted.shutdown()
        // A flipped byte in the middle: refused with the file and offset, and the file is unchanged.
        var damaged = try Data(contentsOf: URL(fileURLWithPath: path))
        damaged[damaged.count / 2] ^= 0xFF
        try damaged.write(to: URL(fileURLWithPath: path))
        do {
            _ = try await start(topology, name, data: data)
            Issue.record("a corrupt log must stop the replica")
        } catch let error as DaemonError {
            #expect("\(error)".contains("corrupt"), "\(error)")
            #expect("\(error)".contains(path), "\(error)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == damaged)
    }
}
