// Real replica daemons over loopback TCP in this process, with their block stores, snapshots and
// state transfer: a restart replays only the blocks after the latest snapshot; a replica whose
// data directory was deleted rejoins by state transfer while load continues; a damaged snapshot
// or block segment stops a replica at start, naming the file and the offset.

import Foundation
import GeoClient
import GeoCore
import GeoCrypto
import GeoNode
import GeoStore
import GeoTopology
import Synchronization
import Testing
import GeoTestKit

@Suite(.serialized) struct BoundedStateDeploymentTests {
    /// Snapshots every 8 rounds, so a short run takes many.
    static func topology(basePort: Int) -> Topology {
        TestKit.localTopology(name: "bounded-1x4", protocol: TestKit.boundedStateProtocol, basePort: basePort, devKeys: true)
    }

    func start(_ topology: Topology, _ name: String, data: String) async throws -> ReplicaDaemon {
        try await ReplicaDaemon.start(topology: topology, replica: name, options: DaemonOptions(dataDirectory: data, topologyDirectory: data),
                                      logger: LoopbackDeploymentTests.quiet)
    }

    func startAll(_ topology: Topology, data: String) async throws -> [String: ReplicaDaemon] {
        var daemons: [String: ReplicaDaemon] = [:]
        for replica in topology.allReplicas { daemons[replica.name] = try await start(topology, replica.name, data: data) }
        return daemons
    }

    /// Adds 1 to `key` `count` times, one at a time; returns the last value.
    func add(_ client: FabricClient, _ count: Int, key: String = "k") async throws -> Int64 {
        var last: Int64 = 0
        for _ in 0..<count {
            let completion = try await client.submit(.add(key: Array(key.utf8), delta: 1), timeout: .seconds(20))
            if case let .number(value) = completion.result { last = value }
        }
        return last
    }

    func files(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    @Test func aRestartReplaysOnlyTheBlocksAfterTheLatestSnapshot() async throws {
        let topology = Self.topology(basePort: 21_100)
        let data = TestKit.temporaryDirectory("geofabric-node")
        defer { try? FileManager.default.removeItem(atPath: data) }
        var daemons = try await startAll(topology, data: data)
        let client = await LoopbackDeploymentTests.client(topology)
        #expect(try await add(client, 120) == 120)
        let name = topology.allReplicas[1].name
        let before = await daemons[name]!.node.height
        await daemons[name]!.shutdown()
        // Two snapshots kept, the blocks in segment files, and a log that holds no executed block.
        let snapshots = files("\(data)/\(name)/snapshots").filter { $0.hasSuffix(".snap") }
        #expect(snapshots.count == 2, "\(snapshots)")
        #expect(files("\(data)/\(name)/blocks").contains { $0.hasSuffix(".blk") })

        let restarted = try await start(topology, name, data: data)
        daemons[name] = restarted
        #expect(await restarted.node.height == before)
        // 8 rounds between snapshots, one block a round: at most 8 blocks to replay.
        let replayed = await restarted.node.blocksReplayedAtStart
        #expect(replayed <= 8, "replayed \(replayed) blocks of \(before)")
        #expect(await restarted.node.value(of: Array("k".utf8)) == KeyValueStore.encode(120))
        #expect(try await add(client, 5) == 125)
        await client.shutdown()
        for daemon in daemons.values { await daemon.shutdown() }
    }

    @Test func aReplicaWhoseDataDirectoryWasDeletedRejoinsByStateTransferUnderLoad() async throws {
        let topology = Self.topology(basePort: 21_150)
        let data = TestKit.temporaryDirectory("geofabric-node")
        defer { try? FileManager.default.removeItem(atPath: data) }
        var daemons = try await startAll(topology, data: data)
        let client = await LoopbackDeploymentTests.client(topology)
        #expect(try await add(client, 20) == 20)
        let name = topology.allReplicas[3].name
        await daemons[name]!.shutdown()
        daemons[name] = nil
        try FileManager.default.removeItem(atPath: "\(data)/\(name)")
        // Far more rounds than peers keep blocks for in memory (2 x 64).
        #expect(try await add(client, 200) == 220)

        let load = Task { try await add(client, 60) }
        let restarted = try await start(topology, name, data: data)
        daemons[name] = restarted
        #expect(try await load.value == 280)
        let others = topology.allReplicas.filter { $0.name != name }.map(\.name)
        var caughtUp = false
        for _ in 0..<200 {
            let target = await daemons[others[0]]!.node.height
            if await restarted.node.height >= target { caughtUp = true; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let height = await restarted.node.height
        #expect(caughtUp, "height \(height)")
        #expect(await restarted.node.value(of: Array("k".utf8)) == KeyValueStore.encode(280))
        // It rejoined by a snapshot, not by replaying the ledger: its block store starts after it.
        #expect(await restarted.node.snapshotsInstalled >= 1)
        #expect(!files("\(data)/\(name)/blocks").contains(BlockStoreFormat.segmentFileName(firstHeight: 1)))
        await client.shutdown()
        for daemon in daemons.values { await daemon.shutdown() }
    }

    @Test func aDamagedSnapshotOrBlockSegmentStopsTheReplicaAtStart() async throws {
        let topology = Self.topology(basePort: 21_200)
        let data = TestKit.temporaryDirectory("geofabric-node")
        defer { try? FileManager.default.removeItem(atPath: data) }
        let daemons = try await startAll(topology, data: data)
        let client = await LoopbackDeploymentTests.client(topology)
        #expect(try await add(client, 60) == 60)
        await client.shutdown()
        for daemon in daemons.values { await daemon.shutdown() }
        let name = topology.allReplicas[2].name

        // A flipped byte in the latest snapshot's state: refused with the file and an offset.
        let snapshot = "\(data)/\(name)/snapshots/" + files("\(data)/\(name)/snapshots").filter { $0.hasSuffix(".snap") }.last!
        let original = try Data(contentsOf: URL(fileURLWithPath: snapshot))
        var damaged = original
        damaged[SnapshotFormat.headerBytes + 5] ^= 0xFF
        try damaged.write(to: URL(fileURLWithPath: snapshot))
        await expectRefused(topology, name, data: data, naming: snapshot)
        #expect(try Data(contentsOf: URL(fileURLWithPath: snapshot)) == damaged, "a refused file is left as it was")
        try original.write(to: URL(fileURLWithPath: snapshot))

        // A flipped byte in the middle of the first block segment.
        let segment = "\(data)/\(name)/blocks/" + BlockStoreFormat.segmentFileName(firstHeight: 1)
        var blocks = try Data(contentsOf: URL(fileURLWithPath: segment))
        blocks[blocks.count / 2] ^= 0xFF
        try blocks.write(to: URL(fileURLWithPath: segment))
        await expectRefused(topology, name, data: data, naming: segment)
    }

    func expectRefused(_ topology: Topology, _ name: String, data: String, naming path: String,
                       sourceLocation: SourceLocation = #_sourceLocation) async {
        do {
            let daemon = try await start(topology, name, data: data)
            await daemon.shutdown()
            Issue.record("a damaged file must stop the replica", sourceLocation: sourceLocation)
        } catch {
            #expect("\(error)".contains("corrupt at byte"), "\(error)", sourceLocation: sourceLocation)
            #expect("\(error)".contains(path), "\(error)", sourceLocation: sourceLocation)
        }
    }
}
