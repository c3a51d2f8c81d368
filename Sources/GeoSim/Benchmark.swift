// The simulated cross-cluster throughput benchmark: the same closed-loop clients in every region,
// no faults, GeoBFT against the single-cluster PBFT baseline over the same replicas, WAN and CPU
// cost model. Throughput and latency follow from the model; nothing here is tuned to a result.

import GeoCore

public struct BenchmarkSettings: Sendable {
    public var topology: Topology
    public var seed: UInt64 = 1
    public var durationSeconds: Double = 10
    public var warmupSeconds: Double = 2
    /// Closed-loop clients per region that hosts a cluster.
    public var clientsPerRegion = 100
    public var cores = 4
    public var batchSize: Int?
    public var costModel = CostModel.measured
    /// Override the clients' resend timeout (nil: the real client's rule).
    public var clientTimeoutMilliseconds: Int?
    /// Sample the run every this many milliseconds (`ProtocolResult.timeline`; nil: no timeline).
    public var timelineMilliseconds: Int?

    public init(topology: Topology) { self.topology = topology }
}

public struct Percentiles: Hashable, Sendable, Codable {
    public var p50: Double
    public var p90: Double
    public var p99: Double

    /// Milliseconds, from latencies in microseconds.
    public init(microseconds values: [UInt64]) {
        let sorted = values.sorted()
        func at(_ fraction: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            let index = min(sorted.count - 1, Int((Double(sorted.count) * fraction).rounded(.up)) - 1)
            return Double(sorted[max(0, index)]) / 1000
        }
        p50 = at(0.5)
        p90 = at(0.9)
        p99 = at(0.99)
    }
}

public struct RegionResult: Hashable, Sendable, Codable {
    public var region: String
    public var throughput_tps: Double
    public var latency_ms: Percentiles
    /// Busy answers its clients got (admission control) and the backoffs they waited.
    public var busy_answers = 0
    public var backoffs = 0
}

public struct ProtocolResult: Hashable, Sendable, Codable {
    public var `protocol`: String
    public var throughput_tps: Double
    public var latency_ms: Percentiles
    public var committed: Int
    public var regions: [RegionResult]
    public var clusters: Int
    public var replicas_per_cluster: [Int]
    public var busiest_replica_cpu: Double
    /// window x batch / p50 latency: what the pipeline allows, before CPU or bandwidth.
    public var window_bound_tps: Double
    public var view_changes: Int
    public var view_change_reasons: [String: Int]
    /// Requests clients resent to every replica of their cluster after a timeout.
    public var client_retransmissions: Int
    /// Busy answers clients got and the backoffs they waited (admission control), all regions.
    public var busy_answers = 0
    public var backoffs = 0
    public var invariants_ok: Bool
    public var violations: [String]
    /// With `BenchmarkSettings.timelineMilliseconds`: the run interval by interval.
    public var timeline: [TimelineSample]?
}

public enum SimulatedBenchmark {
    /// Runs one protocol over the benchmark settings.
    public static func run(_ settings: BenchmarkSettings, protocol kind: ProtocolKind) -> ProtocolResult {
        var topology = settings.topology
        if let batch = settings.batchSize { topology.parameters.batchSize = batch }
        var simulation = SimulationSettings(topology: topology, seed: settings.seed,
                                            duration: UInt64(settings.durationSeconds * 1_000_000))
        simulation.protocolKind = kind
        simulation.clientsPerCluster = settings.clientsPerRegion
        simulation.costModel = settings.costModel
        simulation.cores = settings.cores
        simulation.clientTimeoutMilliseconds = settings.clientTimeoutMilliseconds
        simulation.warmup = UInt64(settings.warmupSeconds * 1_000_000)
        simulation.timelineInterval = settings.timelineMilliseconds.map { UInt64($0) * 1000 }
        // No faults: liveness is not judged, but every safety checker runs.
        simulation.healTime = simulation.duration
        simulation.livenessBound = simulation.duration + 1
        simulation.accounts = 10_000
        let report = Simulation(settings: simulation).run()
        let measured = max(0.001, settings.durationSeconds - settings.warmupSeconds)
        let all = report.regionLatencies.values.flatMap { $0 }
        let latency = Percentiles(microseconds: all)
        let shown = kind == .pbft ? topology.pbftBaseline() : topology
        let regions = topology.regions.map(\.name).compactMap { region -> RegionResult? in
            guard let latencies = report.regionLatencies[region] else { return nil }
            var result = RegionResult(region: region, throughput_tps: Double(latencies.count) / measured,
                                      latency_ms: Percentiles(microseconds: latencies))
            result.busy_answers = report.regionBusyAnswers[region] ?? 0
            result.backoffs = report.regionBackoffs[region] ?? 0
            return result
        }
        let window = Double(topology.parameters.window * topology.parameters.batchSize)
        var result = ProtocolResult(
            protocol: kind.rawValue, throughput_tps: Double(all.count) / measured, latency_ms: latency,
            committed: report.committed, regions: regions,
            clusters: shown.shards.reduce(0) { $0 + $1.clusters.count },
            replicas_per_cluster: shown.shards.flatMap { $0.clusters.map(\.n) },
            busiest_replica_cpu: report.busiestReplicaUtilisation,
            window_bound_tps: latency.p50 > 0 ? window * Double(shown.shards.reduce(0) { $0 + $1.clusters.count }) / (latency.p50 / 1000) : 0,
            view_changes: report.viewChanges, view_change_reasons: report.viewChangeReasons, client_retransmissions: report.clientRetransmissions, invariants_ok: report.ok, violations: report.violations.map(\.description),
            timeline: settings.timelineMilliseconds == nil ? nil : report.timeline)
        result.busy_answers = regions.reduce(0) { $0 + $1.busy_answers }
        result.backoffs = regions.reduce(0) { $0 + $1.backoffs }
        return result
    }

    /// The paper's experiment: `total` replicas of one shard split into 1...`maxClusters` clusters
    /// over the first regions of `topology` (whose WAN figures are used).
    public static func clusterLayouts(from topology: Topology, total: Int) -> [Topology] {
        (1...topology.regions.count).compactMap { count -> Topology? in
            guard total % count == 0, total / count >= 4 else { return nil }
            var layout = topology
            let regions = Array(topology.regions.prefix(count))
            layout.name = "\(topology.name)-\(count)x\(total / count)"
            layout.regions = regions
            var number: UInt32 = 0
            let shardID = ShardID(0)
            let clusters = regions.enumerated().map { index, region -> Cluster in
                let id = ClusterID(shard: shardID, index: UInt16(index))
                let replicas = (0..<(total / count)).map { replica -> ReplicaInfo in
                    defer { number += 1 }
                    return ReplicaInfo(id: ReplicaID(cluster: id, index: UInt16(replica)), name: "s0-\(region.name)-\(replica)",
                                       number: number, region: region.name, host: "127.0.0.1", port: 7000 + Int(number),
                                       statusPort: 8000 + Int(number))
                }
                return Cluster(id: id, region: region.name, quorum: Quorum(n: total / count)!, replicas: replicas)
            }
            layout.shards = [Shard(id: shardID, name: "s0", placement: .all, clusters: clusters)]
            return layout
        }
    }
}
