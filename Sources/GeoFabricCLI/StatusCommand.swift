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
            Exits 0 when at least one replica of every shard answered, 1 otherwise.
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
    }

    struct ShardLine: Encodable {
        var shard: String
        var height: UInt64
        var agreement: Bool
        var replicas: [ReplicaLine]
    }

    struct Report: Encodable {
        var topology: String
        var shards: [ShardLine]
    }

    func run() async throws {
        let loaded = try LoadedTopology.load(topology)
        let model = loaded.topology
        let replicas = model.allReplicas
        // Over HTTPS, each replica's certificate pinned to its topology key, unless TLS is off.
        var keys: KeyRing?
        if model.transport.tls, !plainHTTP {
            do {
                keys = try KeyRing.load(for: model, baseDirectory: loaded.directory)
            } catch {
                FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                throw ExitCode(1)
            }
        }
        let targets = replicas.map { StatusTarget($0, key: keys?.replicaKey(number: $0.number)) }
        let results = await StatusClient.fetchAll(targets, timeout: .milliseconds(Int64(timeout * 1000)))
        var lines: [String: ReplicaLine] = [:]
        for (info, entry) in zip(replicas, results) {
            switch entry.result {
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
        var report = Report(topology: model.name, shards: [])
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
            }
        }
        if report.shards.contains(where: { !$0.replicas.contains(where: \.reachable) }) { throw ExitCode(1) }
    }
}
