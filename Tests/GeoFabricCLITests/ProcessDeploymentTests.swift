// Real replica processes (the `geofabric` binary this package builds) on loopback: commit, query
// heights, kill -9 a backup and then the primary under load, restart them, and check that nothing
// acknowledged was lost and that every replica holds the same ledger again.

import Foundation
import GeoClient
import GeoCore
import GeoCrypto
@testable import GeoFabricCLI
import GeoNode
import GeoTopology
import Logging
import Synchronization
import Testing
import GeoTestKit

/// The tool next to the test bundle: `swift build` / `swift test` build both into one directory.
let builtTool: String = {
    let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for candidate in [directory, directory.deletingLastPathComponent()] {
        let path = candidate.appendingPathComponent("geofabric").path
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return directory.appendingPathComponent("geofabric").path
}()

/// Sums what the replicas acknowledged, for the "nothing acknowledged is lost" check.
final class LoadCounters: Sendable {
    let state = Mutex((acknowledged: Int64(0), failed: 0, stop: false))

    /// Closed-loop load through `client`: one add of 1 to "acked" at a time, counted once
    /// acknowledged, until `stop`; the first failure ends it.
    func run(_ client: FabricClient) -> Task<Void, Never> {
        Task {
            while !state.withLock({ $0.stop }) {
                do {
                    _ = try await client.submit(.add(key: Array("acked".utf8), delta: 1), timeout: .seconds(20))
                    state.withLock { $0.acknowledged += 1 }
                } catch {
                    state.withLock { $0.failed += 1 }
                    return
                }
            }
        }
    }

    var acknowledged: Int64 { state.withLock { $0.acknowledged } }

    /// Waits until `more` adds beyond `count` are acknowledged, polling every 100 ms at most `polls` times.
    func waitForProgress(beyond count: Int64, by more: Int64, polls: Int) async {
        for _ in 0..<polls where acknowledged < count + more { try? await Task.sleep(for: .milliseconds(100)) }
    }
}

@Suite(.serialized) struct ProcessDeploymentTests {
    static let quiet: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }()

    func deploy(_ yaml: String) async throws -> (LocalDeployment, Topology, String) {
        #expect(FileManager.default.isExecutableFile(atPath: builtTool), "build the tool first (swift build): \(builtTool)")
        let path = try TestKit.writeTemporary(yaml, name: "topology.yaml")
        let directory = (path as NSString).deletingLastPathComponent
        let loaded = try LoadedTopology.load(path)
        let deployment = try LocalDeployment.start(loaded, dataDirectory: directory + "/data", emulateWAN: false, executable: builtTool)
        do {
            try await deployment.waitUntilReady(timeout: .seconds(60))
        } catch {
            // Never leave replica processes behind: they would hold this test's ports for the next run.
            await deployment.stop()
            throw error
        }
        return (deployment, loaded.topology, directory)
    }

    func client(_ topology: Topology, id: UInt32, cluster: Int = 0) async -> FabricClient {
        let clientID = ClientID(id)
        let client = FabricClient(topology: topology, keys: KeyRing.development(for: topology), client: clientID,
                                  key: SigningKey.development(topology: topology.name, identity: Topology.clientName(clientID)),
                                  cluster: topology.shards[0].clusters[cluster], logger: Self.quiet)
        await client.start()
        return client
    }

    /// Waits until every replica answers with one height and one head; returns the statuses.
    func settled(_ topology: Topology, within seconds: Int = 60) async -> [ReplicaStatus] {
        var last: [ReplicaStatus] = []
        for _ in 0..<(seconds * 4) {
            let results = await StatusClient.fetchAll(topology.allReplicas.map { StatusTarget($0) }, timeout: .seconds(2))
            last = results.compactMap { try? $0.result.get() }
            if last.count == topology.allReplicas.count, Set(last.map(\.height)).count == 1, Set(last.map(\.head)).count == 1 {
                return last
            }
            try? await Task.sleep(for: .milliseconds(250))
        }
        return last
    }

    @Test func killNineOfABackupAndOfThePrimaryLosesNothingAcknowledged() async throws {
        let (deployment, topology, directory) = try await deploy("""
            name: process-1x4
            regions: [local]
            base_port: 17200
            shards:
              - name: s0
                clusters:
                  - {region: local, replicas: 4}
            protocol: {batch_size: 50, batch_delay_ms: 2, window: 64, checkpoint_every: 8, view_timeout_ms: 400}
            keys: dev
            """)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let names = topology.shards[0].clusters[0].replicas.map(\.name)
        let counters = LoadCounters()
        let client = await client(topology, id: 1)
        // Closed-loop load: one add of 1 at a time; an acknowledged one must never be lost.
        let load = counters.run(client)
        func acknowledged() -> Int64 { counters.acknowledged }
        func waitForProgress(beyond count: Int64, by more: Int64 = 10) async {
            await counters.waitForProgress(beyond: count, by: more, polls: 300)
        }

        await waitForProgress(beyond: 0)
        deployment.crash(names[2])                    // a backup
        await waitForProgress(beyond: acknowledged())
        try deployment.restart(names[2])
        await waitForProgress(beyond: acknowledged())
        deployment.crash(names[0])                    // the primary of view 0
        await waitForProgress(beyond: acknowledged())  // only after a view change
        try deployment.restart(names[0])
        await waitForProgress(beyond: acknowledged())
        counters.state.withLock { $0.stop = true }
        await load.value
        let (acked, failed) = counters.state.withLock { ($0.acknowledged, $0.failed) }
        #expect(failed == 0, "a request failed under the crashes")
        #expect(acked >= 50, "too little progress through the crashes: \(acked)")

        // Every acknowledged add is in the ledger: the counter is at least what was acknowledged
        // (and at most one above: a request whose replies were cut off by the stop).
        let reader = await self.client(topology, id: 2)
        let read = try await reader.submit(.get(key: Array("acked".utf8)), timeout: .seconds(20))
        #expect(read.result == .value(KeyValueStore.encode(acked)) || read.result == .value(KeyValueStore.encode(acked + 1)),
                "acknowledged \(acked), ledger holds \(read.result)")
        let statuses = await settled(topology)
        #expect(statuses.count == 4 && Set(statuses.map(\.height)).count == 1 && Set(statuses.map(\.head)).count == 1,
                "heights \(statuses.map(\.height)) heads \(Set(statuses.map(\.head)).count)")
        #expect(statuses.contains { $0.view >= 1 }, "the primary's crash must have forced a view change")
        await client.shutdown()
        await reader.shutdown()
        await deployment.stop()
    }

    @Test func geo4x4ProcessesCommitFromEveryRegionAndAgree() async throws {
        let geo = try String(contentsOfFile: TestKit.repositoryRoot + "/topologies/geo-4x4.yaml", encoding: .utf8)
            .replacingOccurrences(of: "name: geo-4x4", with: "name: geo-4x4\nbase_port: 17300")
        let (deployment, topology, directory) = try await deploy(geo)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for cluster in 0..<4 {
            let client = await client(topology, id: UInt32(10 + cluster), cluster: cluster)
            for index in 1...3 {
                let done = try await client.submit(.put(key: Array("k\(cluster)-\(index)".utf8), value: [UInt8(index)]), timeout: .seconds(30))
                #expect(done.result == .stored)
            }
            await client.shutdown()
        }
        let statuses = await settled(topology)
        #expect(statuses.count == 16, "every replica answers")
        #expect(Set(statuses.map(\.head)).count == 1, "one ledger in four regions")
        // 12 transactions in blocks of up to 4 clusters per round: at least one round, four blocks.
        #expect((statuses.first?.height ?? 0) >= 4)
        await deployment.stop()
    }

    /// A replica process killed with -9 whose data directory is then deleted comes back empty and
    /// rejoins by state transfer while the load goes on; one killed with -9 and restarted on its
    /// directory starts from its latest snapshot. Nothing acknowledged is lost.
    @Test func aReplicaWithADeletedDataDirectoryRejoinsByStateTransfer() async throws {
        let (deployment, topology, directory) = try await deploy("""
            name: process-state-1x4
            regions: [local]
            base_port: 17250
            shards:
              - name: s0
                clusters:
                  - {region: local, replicas: 4}
            protocol: {batch_size: 50, batch_delay_ms: 2, window: 16, checkpoint_every: 4, snapshot_every: 8, view_timeout_ms: 400}
            keys: dev
            """)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let names = topology.shards[0].clusters[0].replicas.map(\.name)
        let counters = LoadCounters()
        let client = await client(topology, id: 1)
        let load = counters.run(client)
        func acknowledged() -> Int64 { counters.acknowledged }
        func waitForProgress(beyond count: Int64, by more: Int64) async {
            await counters.waitForProgress(beyond: count, by: more, polls: 600)
        }
        await waitForProgress(beyond: 0, by: 20)
        deployment.crash(names[3])
        try FileManager.default.removeItem(atPath: directory + "/data/" + names[3])
        // Far more rounds than the others keep in memory (2 x 64): one add a round or so.
        await waitForProgress(beyond: acknowledged(), by: 300)
        try deployment.restart(names[3])
        await waitForProgress(beyond: acknowledged(), by: 50)
        deployment.crash(names[2])
        try deployment.restart(names[2])
        await waitForProgress(beyond: acknowledged(), by: 30)
        counters.state.withLock { $0.stop = true }
        await load.value
        let (acked, failed) = counters.state.withLock { ($0.acknowledged, $0.failed) }
        #expect(failed == 0, "a request failed")

        let reader = await self.client(topology, id: 2)
        let read = try await reader.submit(.get(key: Array("acked".utf8)), timeout: .seconds(20))
        #expect(read.result == .value(KeyValueStore.encode(acked)) || read.result == .value(KeyValueStore.encode(acked + 1)),
                "acknowledged \(acked), ledger holds \(read.result)")
        let statuses = await settled(topology)
        #expect(statuses.count == 4 && Set(statuses.map(\.height)).count == 1 && Set(statuses.map(\.head)).count == 1,
                "heights \(statuses.map(\.height))")
        let rejoined = statuses.first { $0.replica == names[3] }
        #expect((rejoined?.snapshotsInstalled ?? 0) >= 1, "the emptied replica installed a snapshot: \(String(describing: rejoined))")
        #expect(statuses.allSatisfy { ($0.snapshotHeight ?? 0) > 0 })
        await client.shutdown()
        await reader.shutdown()
        await deployment.stop()
    }
}
