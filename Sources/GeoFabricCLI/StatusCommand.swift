// `geofabric status [TOPOLOGY] [--json]`: per-shard ledger heights, from every replica's status
// endpoint. An unreachable replica is one line of the table, not a failure of the command.

import ArgumentParser
import Foundation
import GeoCore
import GeoCrypto
import GeoNode

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Query every replica and print per-shard ledger heights.",
        discussion: """
            A shard's height is the highest height any of its replicas reports; each replica's \
            line shows its region, cluster, view, height, head hash prefix and whether it answered. \
            Each answer must come from the replica the topology names, running this topology (its \
            name and topology hash in /status; over HTTPS its pinned key): one from another \
            deployment on the same address is shown as such. Exits 0 when at least one replica of \
            every shard answered and none answered as another deployment, 1 otherwise.
            """)

    @Argument(help: "The topology file (default: the embedded default topology).")
    var topology: String?

    @Option(help: "Seconds to wait for each replica.")
    var timeout: Double = 2

    @Flag(help: "Print JSON: {topology, shards: [{shard, height, replicas: [...]}]}.")
    var json = false

    @Flag(name: .customLong("plain-http"),
          help: "Read the status over plain HTTP (by default HTTPS, each replica's certificate pinned to its topology key, unless the topology sets transport: {tls: false}).")
    var plainHTTP = false

    struct ReplicaLine: Encodable {
        var replica: String
        var region: String
        var cluster: Int
        var view: UInt64?
        var height: UInt64?
        var head: String?
        var status: String?
        /// With several shards: keys locked and cross-shard transactions unfinished at this replica.
        var cross_shard_locks: Int?
        var cross_shard_in_progress: Int?
        /// The oldest of those, described by the replica.
        var cross_shard_unfinished: [String]?
        var reachable: Bool
        var error: String?
        /// Set when what answered at this replica's address is not this replica of this
        /// topology (another name or topology hash, or another key): what it is instead.
        var other_deployment: String?
    }

    struct ShardLine: Encodable {
        var shard: String
        var height: UInt64
        var agreement: Bool
        var replicas: [ReplicaLine]
    }

    struct Report: Encodable {
        var topology: String
        /// This topology's hash (hex), which every replica's /status must report.
        var topology_hash: String
        var shards: [ShardLine]
    }

    func run() async throws {
        let loaded = try LoadedTopology.load(topology)
        let model = loaded.topology
        let replicas = model.allReplicas
        let ring: KeyRing
        do {
            ring = try KeyRing.load(for: model, baseDirectory: loaded.directory)
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let ours = TopologyFingerprint.digest(of: model, keys: ring)
        // Over HTTPS, each replica's certificate pinned to its topology key, unless TLS is off.
        let keys: KeyRing? = model.transport.tls && !plainHTTP ? ring : nil
        let targets = replicas.map { StatusTarget($0, key: keys?.replicaKey(number: $0.number)) }
        let results = await StatusClient.fetchAll(targets, timeout: .milliseconds(Int64(timeout * 1000)))
        var lines: [String: ReplicaLine] = [:]
        for (info, entry) in zip(replicas, results) {
            switch entry.result {
            case let .success(status) where status.replica != info.name || status.topologyHash != ours.hex:
                let hash = status.topologyHash.map { String($0.prefix(12)) } ?? "none (an older GeoFabric?)"
                lines[info.name] = ReplicaLine(replica: info.name, region: info.region, cluster: Int(info.id.cluster.index),
                                               reachable: false, error: nil,
                                               other_deployment: "answered by \(status.replica) of topology \(status.topology ?? "?") "
                                                   + "(hash \(hash)), not \(info.name) of \(model.name) (hash \(ours.shortHex))")
            case let .failure(.wrongCertificate(hash)):
                lines[info.name] = ReplicaLine(replica: info.name, region: info.region, cluster: Int(info.id.cluster.index),
                                               reachable: false, error: nil,
                                               other_deployment: "its certificate is not \(info.name)'s key in \(model.name)"
                                                   + (hash.map { "; it names topology hash \($0.shortHex) (this one: \(ours.shortHex))" } ?? ""))
            case let .success(status):
                lines[info.name] = ReplicaLine(replica: info.name, region: info.region, cluster: Int(info.id.cluster.index),
                                               view: status.view, height: status.height, head: status.head,
                                               status: status.status.rawValue, cross_shard_locks: status.crossShardLocks,
                                               cross_shard_in_progress: status.crossShardInProgress,
                                               cross_shard_unfinished: status.crossShardUnfinished, reachable: true, error: nil)
            case let .failure(error):
                lines[info.name] = ReplicaLine(replica: info.name, region: info.region, cluster: Int(info.id.cluster.index),
                                               reachable: false, error: "\(error)")
            }
        }
        var report = Report(topology: model.name, topology_hash: ours.hex, shards: [])
        for shard in model.shards {
            let shardLines = shard.clusters.flatMap(\.replicas).compactMap { lines[$0.name] }
            let height = shardLines.compactMap(\.height).max() ?? 0
            // Replicas at the shard's height must hold the same head: the ledger is one chain.
            let heads = Set(shardLines.filter { $0.height == height }.compactMap(\.head))
            report.shards.append(ShardLine(shard: shard.name, height: height, agreement: heads.count <= 1, replicas: shardLines))
        }
        if json {
            print(JSONOutput.encode(report))
        } else {
            for shard in report.shards {
                let reachable = shard.replicas.filter(\.reachable).count
                print("shard \(shard.shard): height \(shard.height) (\(reachable)/\(shard.replicas.count) replicas answered"
                      + (shard.agreement ? ")" : "; HEADS DIFFER at this height)"))
                let sharded = model.shards.count > 1
                let rows = shard.replicas.map { line -> [String] in
                    if line.other_deployment != nil {
                        return [line.replica, line.region, "\(line.cluster)", "-", "-", "-", "OTHER DEPLOYMENT"] + (sharded ? ["-"] : [])
                    }
                    guard line.reachable else {
                        return [line.replica, line.region, "\(line.cluster)", "-", "-", "-", "unreachable"] + (sharded ? ["-"] : [])
                    }
                    return [line.replica, line.region, "\(line.cluster)", "\(line.view ?? 0)", "\(line.height ?? 0)",
                            String((line.head ?? "").prefix(12)), line.status ?? ""]
                        + (sharded ? ["\(line.cross_shard_locks ?? 0)/\(line.cross_shard_in_progress ?? 0)"] : [])
                }
                let header = ["replica", "region", "cluster", "view", "height", "head", "state"] + (sharded ? ["locks/xs"] : [])
                let table = TextTable.render(header: header, rows: rows)
                print(table.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
                for line in shard.replicas {
                    for unfinished in line.cross_shard_unfinished ?? [] { print("  \(line.replica): \(unfinished)") }
                }
                for line in shard.replicas {
                    if let other = line.other_deployment { print("  \(line.replica): \(other)") }
                }
            }
        }
        let others = report.shards.flatMap(\.replicas).filter { $0.other_deployment != nil }
        if !others.isEmpty {
            FileHandle.standardError.write(Data(("error: \(others.count) replica address(es) answered as another deployment: "
                + "is another topology running on these ports? (`geofabric status TOPOLOGY` with the deployment's file)\n").utf8))
            throw ExitCode(1)
        }
        if report.shards.contains(where: { !$0.replicas.contains(where: \.reachable) }) { throw ExitCode(1) }
    }
}
