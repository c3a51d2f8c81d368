// Scenarios that read like traces ("at 0.3 s crash s0-local-0; at 1.2 s restart it; heal at 1.5 s"),
// and random fault plans for seed sweeps. Both produce SimulationSettings; one seed replays a run.

import GeoCore

public struct Scenario: Sendable {
    public var settings: SimulationSettings

    /// A run of `seconds` simulated seconds on `topology`, with faults healed from the start unless
    /// `healed(at:)` says otherwise.
    public init(_ topology: Topology, seed: UInt64 = 1, seconds: Double) {
        settings = SimulationSettings(topology: topology, seed: seed, duration: Self.microseconds(seconds))
    }

    static func microseconds(_ seconds: Double) -> UInt64 { UInt64(seconds * 1_000_000) }

    /// The replica called `name` in the topology ("s0-local-2").
    public func replica(_ name: String) -> ReplicaID {
        guard let info = settings.topology.replica(named: name) else { preconditionFailure("no replica \(name)") }
        return info.id
    }

    /// The primary of view `view` of the first cluster of the first shard.
    public func primary(view: UInt64 = 0, cluster: Int = 0) -> ReplicaID {
        let cluster = settings.topology.shards[0].clusters[cluster]
        return cluster.replicas[Int(view % UInt64(cluster.n))].id
    }

    public mutating func at(_ seconds: Double, _ action: SimulationAction) {
        settings.actions.append((Self.microseconds(seconds), action))
    }

    /// From `seconds` on, faults are over: liveness is judged from then, within `bound` seconds.
    public mutating func healed(at seconds: Double, within bound: Double = 4) {
        settings.healTime = Self.microseconds(seconds)
        settings.livenessBound = Self.microseconds(bound)
    }

    public mutating func clients(perCluster count: Int) { settings.clientsPerCluster = count }

    /// The bank workload, with `fraction` of its transfers across shards.
    public mutating func bank(crossShard fraction: Double) { settings.crossShardFraction = fraction }

    public func run() -> SimulationReport { Simulation(settings: settings).run() }
}

/// Random faults for a seed sweep, every one drawn from the seed: a lossy, duplicating, reordering
/// network, then one or two of crashes, partitions (of replicas, a region, one way) and Byzantine
/// replicas (at most f per cluster), all healed at `healSeconds`, then a clean stretch in which
/// liveness must show.
public enum FaultPlan {
    public static let faultStart = 0.2
    public static let healSeconds = 2.0
    public static let livenessSeconds = 6.0

    public static var durationSeconds: Double { healSeconds + livenessSeconds + 0.5 }

    /// With `crossShard`, the bank workload with that fraction of cross-shard transfers, and the
    /// faults that matter to it as well: Byzantine replicas that withhold votes, partitions
    /// between shards, a client that signs conflicting versions of its requests. Without it, the
    /// plan is drawn exactly as it always was (the same seed gives the same plan).
    public static func random(topology: Topology, seed: UInt64, crossShard: Double? = nil) -> Scenario {
        var random = SeededRandom(seed: seed ^ 0xFA17_FA17)
        var scenario = Scenario(topology, seed: seed, seconds: durationSeconds)
        let sharded = crossShard != nil && topology.shards.count > 1
        scenario.settings.crossShardFraction = crossShard
        scenario.healed(at: healSeconds, within: livenessSeconds)
        let losses = [0, 0, 0.01, 0.05, 0.1]
        let network = NetworkFaults(loss: losses[Int(random.next() % UInt64(losses.count))],
                                    duplication: random.next() % 3 == 0 ? 0.05 : 0,
                                    jitter: [0.05, 0.5, 2.0][Int(random.next() % 3)])
        scenario.at(0, .network(network))
        scenario.at(healSeconds, .network(.none))
        scenario.at(healSeconds, .healPartitions)

        func time(_ random: inout SeededRandom) -> Double {
            faultStart + Double(random.next() % 1000) / 1000 * (healSeconds - faultStart - 0.2)
        }
        // Byzantine replicas: at most f per cluster, and they stay Byzantine.
        var byzantine: [ClusterID: Set<Int>] = [:]
        // Behaviours added since the plans were first drawn come from a stream of their own.
        var later = SeededRandom(seed: seed ^ 0x5167_0016)
        for shard in topology.shards {
            for cluster in shard.clusters where random.next() % 2 == 0 {
                let count = Int(random.next() % UInt64(cluster.f + 1))
                var chosen = Set<Int>()
                while chosen.count < count { chosen.insert(Int(random.next() % UInt64(cluster.n))) }
                byzantine[cluster.id] = chosen
                for index in chosen.sorted() {
                    let behaviours = sharded ? ByzantineBehaviour.shardedCases : ByzantineBehaviour.singleShardCases
                    var behaviour = behaviours[Int(random.next() % UInt64(behaviours.count))]
                    if later.next() % UInt64(behaviours.count + 1) == 0 { behaviour = .forgedClientTransaction }
                    scenario.at(0, .byzantine(cluster.replicas[index].id, behaviour))
                }
            }
        }
        // Crashes and partitions of correct or Byzantine replicas, all over by the heal time.
        let all = topology.allReplicas
        for _ in 0..<Int(random.next() % 3) {
            let start = time(&random)
            let end = min(healSeconds, start + 0.1 + Double(random.next() % 1000) / 1000)
            switch random.next() % (sharded ? 5 : 4) {
            case 0:
                let victim = all[Int(random.next() % UInt64(all.count))].id
                scenario.at(start, .crash(victim))
                scenario.at(end, .restart(victim))
            case 1:
                let victim = all[Int(random.next() % UInt64(all.count))].id
                scenario.at(start, .partition(Partition(replicas: [victim], oneWay: random.next() % 2 == 0)))
            case 2:
                let region = topology.regions[Int(random.next() % UInt64(topology.regions.count))].name
                scenario.at(start, .partition(Partition(regions: [region])))
            case 3:
                // The current primary of the first cluster is the most damaging replica to lose.
                let victim = topology.shards[0].clusters[0].replicas[0].id
                scenario.at(start, .crash(victim))
                scenario.at(end, .restart(victim))
            default:
                // A partition between shards: every region of one shard cut from the others.
                let shard = topology.shards[Int(random.next() % UInt64(topology.shards.count))]
                scenario.at(start, .partition(Partition(regions: Set(shard.clusters.map(\.region)))))
            }
        }
        if sharded, random.next() % 3 == 0 {
            scenario.settings.conflictingClients = [Int(random.next() % UInt64(max(1, topology.allReplicas.count / 4)))]
        }
        addStorageFaults(to: &scenario, topology: topology, seed: seed, byzantine: byzantine, time: time)
        return scenario
    }

    /// Faults of disks and of state transfer, drawn from a generator of their own so that the
    /// rest of every seed's plan is what it was before they existed: a replica that loses its
    /// disk under load and comes back empty (it must rejoin by state transfer or by fetching
    /// blocks from its peers' stores), and replicas that serve forged or stale snapshots. Both
    /// count against f with the plan's Byzantine replicas: a wiped replica forgot what it signed.
    static func addStorageFaults(to scenario: inout Scenario, topology: Topology, seed: UInt64,
                                 byzantine: [ClusterID: Set<Int>], time: (inout SeededRandom) -> Double) {
        var random = SeededRandom(seed: seed ^ 0xD15C_FA17)
        var faulty = byzantine
        let clusters = topology.shards.flatMap(\.clusters)
        if random.next() % 3 == 0 {
            let cluster = clusters[Int(random.next() % UInt64(clusters.count))]
            if faulty[cluster.id, default: []].count < cluster.f {
                let correct = (0..<cluster.n).filter { !faulty[cluster.id, default: []].contains($0) }
                let index = correct[Int(random.next() % UInt64(correct.count))]
                faulty[cluster.id, default: []].insert(index)
                let start = time(&random)
                let end = min(healSeconds, start + 0.2 + Double(random.next() % 1000) / 1000)
                scenario.at(start, .wipe(cluster.replicas[index].id))
                scenario.at(end, .restart(cluster.replicas[index].id))
            }
        }
        if random.next() % 3 == 0 {
            let cluster = clusters[Int(random.next() % UInt64(clusters.count))]
            let fault = SnapshotFault.allCases[Int(random.next() % UInt64(SnapshotFault.allCases.count))]
            // A Byzantine replica of the plan serves bad snapshots too; or one more, within f.
            if let index = faulty[cluster.id]?.sorted().first {
                scenario.at(0, .snapshotFault(cluster.replicas[index].id, fault))
            } else if cluster.f > 0 {
                scenario.at(0, .snapshotFault(cluster.replicas[Int(random.next() % UInt64(cluster.n))].id, fault))
            }
        }
    }
}

/// Runs many seeds and summarises them.
public struct SweepSummary: Sendable {
    public var seedsRun = 0
    public var failingSeeds: [(seed: UInt64, violations: [Violation])] = []
    public var committed = 0
    public var events = 0
    public var viewChanges = 0
    /// Bank workload: cross-shard transactions decided, by outcome.
    public var crossShardOutcomes: [String: Int] = [:]
}

public enum SeedSweep {
    public static func run(topology: Topology, seeds: Range<UInt64>, crossShard: Double? = nil,
                           progress: ((UInt64, SimulationReport) -> Void)? = nil) -> SweepSummary {
        var summary = SweepSummary()
        for seed in seeds {
            let report = FaultPlan.random(topology: topology, seed: seed, crossShard: crossShard).run()
            summary.seedsRun += 1
            summary.committed += report.committed
            summary.events += report.events
            summary.viewChanges += report.viewChanges
            for (outcome, count) in report.crossShardOutcomes { summary.crossShardOutcomes[outcome, default: 0] += count }
            if !report.ok { summary.failingSeeds.append((seed, report.violations)) }
            progress?(seed, report)
        }
        return summary
    }
}
