// What the topology hash binds (README, "What a topology edit may change"), and how a data
// directory of the build before the binding (hash v1: the whole topology) is refused.

import Foundation
import GeoCore
import GeoCrypto
import GeoNode
import GeoStore
import GeoTopology
import Logging
import Testing

@Suite struct TopologyBindingTests {
    static func topology(_ extra: String = "", name: String = "binding-1x4") -> Topology {
        try! TopologyLoader.parse(text: """
            name: \(name)
            regions: [local, far]
            wan: [{between: [local, far], rtt_ms: 40, mbit_s: 500}]
            base_port: 19480
            shards:
              - name: s0
                clusters:
                  - {region: local, replicas: 4}
            keys: dev
            \(extra)
            """, file: "binding")
    }

    static func hash(_ topology: Topology) -> Digest {
        TopologyFingerprint.digest(of: topology, keys: KeyRing.development(for: topology))
    }

    @Test(arguments: [
        "protocol: {view_timeout_ms: 900, remote_timeout_ms: 5000, tick_ms: 20, batch_delay_ms: 7, retain_rounds: 2000}",
        "clients: 1000",
        "lan: {rtt_ms: 2, mbit_s: 100}",
        "status_port_offset: 300",
        "transport: {tls: false}",
    ])
    func aFreeFieldKeepsTheHash(edit: String) {
        #expect(Self.hash(Self.topology(edit)) == Self.hash(Self.topology()))
    }

    @Test(arguments: [
        "protocol: {batch_size: 50}",
        "protocol: {window: 128}",
        "protocol: {checkpoint_every: 8}",
        "protocol: {snapshot_every: 256}",
        "protocol: {max_message_bytes: 1048576}",
        "key_buckets: 32",
    ])
    func aBoundFieldChangesTheHash(edit: String) {
        #expect(Self.hash(Self.topology(edit)) != Self.hash(Self.topology()))
    }

    @Test func theNameTheAddressesAndTheKeysAreBound() {
        let base = Self.topology()
        #expect(Self.hash(Self.topology(name: "binding-other")) != Self.hash(base))
        var moved = base
        moved.shards[0].clusters[0].replicas[2].port += 1
        #expect(Self.hash(moved) != Self.hash(base))
        var ring = KeyRing.development(for: base)
        ring = KeyRing(replicaKeys: ring.replicaKeys.reversed(), clientKeys: ring.clientKeys)
        #expect(TopologyFingerprint.digest(of: base, keys: ring) != Self.hash(base))
    }

    @Test func aDataDirectoryOfTheWholeTopologyHashIsNamedAsSuch() async throws {
        let topology = Self.topology()
        let data = NSTemporaryDirectory() + "geofabric-binding-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: data) }
        let info = try #require(topology.replica(named: "s0-local-1"))
        // What the build before the binding wrote: a log whose header carries the v1 hash.
        let (old, _) = try ReplicaLog.open(directory: data + "/" + info.name,
                                           identity: LogIdentity(replicaNumber: info.number,
                                                                 topologyDigest: TopologyFingerprint.legacyDigest(of: topology)))
        old.close()
        guard let error = await Self.startError(topology, replica: info.name, data: data, on: "a log of the v1 hash") else { return }
        guard case .legacyDataDirectory = error else {
            Issue.record("expected legacyDataDirectory, got \(error)")
            return
        }
        #expect("\(error)".contains("written by an older GeoFabric under the whole-topology hash (v1)"))
    }

    @Test func aDataDirectoryOfBlockFormatOneIsNamedAsSuch() async throws {
        let topology = Self.topology()
        let keys = KeyRing.development(for: topology)
        // The block format is part of the binding: v1 (the binding before it was) and v2 differ.
        #expect(TopologyFingerprint.digest(of: topology, keys: keys, blockFormat: 1) != Self.hash(topology))
        #expect(!TopologyFingerprint.canonicalText(of: topology, replicaKeys: keys.replicaKeys, blockFormat: 1).contains("block-format"))
        #expect(TopologyFingerprint.canonicalText(of: topology, replicaKeys: keys.replicaKeys).contains("block-format 2\n"))
        let data = NSTemporaryDirectory() + "geofabric-binding-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: data) }
        let info = try #require(topology.replica(named: "s0-local-2"))
        // What the build before block format v2 wrote: a log whose header carries that binding.
        let (old, _) = try ReplicaLog.open(directory: data + "/" + info.name,
                                           identity: LogIdentity(replicaNumber: info.number,
                                                                 topologyDigest: TopologyFingerprint.digest(of: topology, keys: keys, blockFormat: 1)))
        old.close()
        guard let error = await Self.startError(topology, replica: info.name, data: data, on: "a log of block format v1") else { return }
        guard case .oldBlockFormat(_, found: 1) = error else {
            Issue.record("expected oldBlockFormat, got \(error)")
            return
        }
        #expect("\(error)".contains("under block format v1"))
    }

    /// Starts `replica` on `data` and returns the error it refused to start with; records an issue
    /// (and returns nil) when it started on `what`.
    static func startError(_ topology: Topology, replica: String, data: String, on what: String) async -> DaemonError? {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        do {
            let daemon = try await ReplicaDaemon.start(topology: topology, replica: replica,
                                                       options: DaemonOptions(dataDirectory: data, topologyDirectory: data), logger: logger)
            await daemon.shutdown()
            Issue.record("the replica started on \(what)")
            return nil
        } catch {
            return error
        }
    }
}
