// `geofabric topology validate FILE [--json]` and `geofabric topology default`.

import ArgumentParser
import Foundation
import GeoCore
import GeoCrypto
import GeoNet
import GeoTopology

struct TopologyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology",
        abstract: "Check topology files.",
        subcommands: [Validate.self, Default.self])

    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a topology file and print its summary.",
            discussion: """
                Exits 1 with the file, line and field of the first problem when the file is invalid. With an \
                operator PKI (transport: {ca, certificates}) it also reads the key directory's public keys, the CA \
                bundle and every node's certificate, and checks each as a peer would.
                """)

        @Argument(help: "The topology YAML file.")
        var file: String

        @Flag(help: "Print the summary (or the error) as JSON.")
        var json = false

        func run() async throws {
            try await TopologyValidation.run(path: file, json: json).emit()
        }
    }

    struct Default: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the embedded default topology (a starting point for your own file).")

        func run() {
            print(EmbeddedTopology.yaml, terminator: "")
        }
    }
}

/// The validate command's work, separate from argument parsing so tests can call it.
public enum TopologyValidation {
    public static func run(path: String, json: Bool) async -> CommandOutput {
        var output = CommandOutput()
        do {
            let topology = try TopologyLoader.load(path: path)
            if let failure = await checkOperatorPKI(topology, path: path) {
                output.exitCode = 1
                if json {
                    output.out(JSONOutput.encode(failure))
                } else {
                    output.err("error: \(failure.error.text)")
                }
                return output
            }
            for warning in [LoadedTopology.developmentKeyWarning(topology, source: path),
                            LoadedTopology.plaintextWarning(topology, source: path)].compactMap({ $0 }) {
                output.err(warning)
            }
            if json {
                output.out(JSONOutput.encode(TopologySummary(file: path, topology: topology)))
            } else {
                for line in TopologySummary.text(file: path, topology: topology) { output.out(line) }
            }
        } catch {
            output.exitCode = 1
            if json {
                output.out(JSONOutput.encode(TopologyFailure(file: path, error: error)))
            } else {
                output.err("error: \(error)")
            }
        }
        return output
    }
}

struct TopologySummary: Encodable {
    struct ReplicaSummary: Encodable {
        var name: String
        var address: String
        var status_port: Int
    }
    struct ClusterSummary: Encodable {
        var index: Int
        var region: String
        var n: Int
        var f: Int
        var replicas: [ReplicaSummary]
    }
    struct ShardSummary: Encodable {
        var name: String
        var keys: String
        var clusters: [ClusterSummary]
    }
    var file: String
    var valid = true
    var name: String
    var regions: [String]
    var wan_links: Int
    var keys: String
    var shards: [ShardSummary]
    var clusters: Int
    var replicas: Int

    init(file: String, topology: Topology) {
        self.file = file
        name = topology.name
        regions = topology.regions.map(\.name)
        wan_links = topology.wan.count
        keys = Self.describe(topology.keys)
        shards = topology.shards.map { shard in
            ShardSummary(name: shard.name, keys: Self.describe(shard.placement, buckets: topology.keyBuckets),
                         clusters: shard.clusters.map { cluster in
                             ClusterSummary(index: Int(cluster.id.index), region: cluster.region, n: cluster.n, f: cluster.f,
                                            replicas: cluster.replicas.map {
                                                ReplicaSummary(name: $0.name, address: $0.address, status_port: $0.statusPort)
                                            })
                         })
        }
        clusters = topology.shards.reduce(0) { $0 + $1.clusters.count }
        replicas = topology.allReplicas.count
    }

    static func describe(_ keys: KeySource) -> String {
        switch keys {
        case .development: return "dev"
        case let .directory(path): return "directory \(path)"
        }
    }

    static func describe(_ placement: KeyPlacement, buckets: Int) -> String {
        switch placement {
        case .all: return "all keys"
        case let .hashBuckets(lower, upper): return "hash buckets \(lower)...\(upper) of \(buckets)"
        case let .prefixes(prefixes): return "prefixes " + prefixes.map { "\"\($0)\"" }.joined(separator: ", ")
        }
    }

    static func text(file: String, topology: Topology) -> [String] {
        let summary = TopologySummary(file: file, topology: topology)
        var lines = [
            "\(file): valid topology '\(summary.name)'",
            "  regions: \(summary.regions.joined(separator: ", ")) (\(summary.wan_links) WAN links)",
            "  \(summary.shards.count) shard(s), \(summary.clusters) cluster(s), \(summary.replicas) replicas; keys: \(summary.keys)"
                + (topology.keys == .development ? " (development keys: local use only)" : ""),
        ]
        for shard in summary.shards {
            lines.append("  shard \(shard.name): \(shard.keys)")
            for cluster in shard.clusters {
                lines.append("    cluster \(cluster.index) in \(cluster.region): n=\(cluster.n) f=\(cluster.f) quorum=\(cluster.n - cluster.f)")
                for replica in cluster.replicas {
                    lines.append("      \(replica.name.padding(toLength: 22, withPad: " ", startingAt: 0)) \(replica.address)  status :\(replica.status_port)")
                }
            }
        }
        return lines
    }
}

extension TopologyValidation {
    /// The files of the topology's operator PKI, checked as a peer would check them (nil when
    /// there is no PKI, or when it is sound).
    static func checkOperatorPKI(_ topology: Topology, path: String) async -> TopologyFailure? {
        guard topology.transport.tls, topology.transport.authority != nil else { return nil }
        let base = (path as NSString).deletingLastPathComponent
        let directory = base.isEmpty ? "." : base
        let keys: KeyRing
        do {
            keys = try KeyRing.load(for: topology, baseDirectory: directory)
        } catch {
            return TopologyFailure(file: path, detail: .init(problem: "keys", line: nil, column: nil, field: "keys", message: "\(error)",
                                                             text: "\(path): keys: \(error) (the certificates are checked against these keys)"))
        }
        do {
            _ = try await OperatorPKI.load(topology: topology, keyRing: keys, baseDirectory: directory)
            return nil
        } catch {
            return TopologyFailure(file: error.file, detail: .init(problem: error.problem.rawValue, line: nil, column: nil,
                                                                   field: error.field, message: error.message, text: error.description))
        }
    }
}

struct TopologyFailure: Encodable {
    struct Detail: Encodable {
        var problem: String
        var line: Int?
        var column: Int?
        var field: String
        var message: String
        var text: String
    }
    var file: String
    var valid = false
    var error: Detail

    init(file: String, error: TopologyError) {
        self.file = file
        self.error = Detail(problem: error.problem.rawValue, line: error.line, column: error.column,
                            field: error.field, message: error.message, text: error.description)
    }

    init(file: String, detail: Detail) {
        self.file = file
        error = detail
    }
}
