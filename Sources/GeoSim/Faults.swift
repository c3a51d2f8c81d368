// The fault model: what the simulated network and nodes can do wrong, all drawn from one seed.

import GeoCore

/// A node of the simulation.
public enum Endpoint: Hashable, Sendable, CustomStringConvertible {
    case replica(ReplicaID)
    case client(ClientID)
    public var description: String {
        switch self {
        case let .replica(id): return "\(id)"
        case let .client(id): return "\(id)"
        }
    }
}

/// Probabilistic faults of every link.
public struct NetworkFaults: Hashable, Sendable {
    /// Probability that a message is dropped.
    public var loss: Double = 0
    /// Probability that a message is delivered twice.
    public var duplication: Double = 0
    /// Extra random delay, as a fraction of the one-way latency (messages overtake each other).
    public var jitter: Double = 0.05
    public init(loss: Double = 0, duplication: Double = 0, jitter: Double = 0.05) {
        self.loss = loss
        self.duplication = duplication
        self.jitter = jitter
    }
    public static let none = NetworkFaults()
}

/// A partition: the endpoints inside (some replicas and/or whole regions, with their clients) are
/// cut from those outside, both ways, or only outwards (`oneWay`: inside cannot send out).
public struct Partition: Hashable, Sendable {
    public var replicas: Set<ReplicaID>
    public var regions: Set<String>
    public var oneWay: Bool
    public init(replicas: Set<ReplicaID> = [], regions: Set<String> = [], oneWay: Bool = false) {
        self.replicas = replicas
        self.regions = regions
        self.oneWay = oneWay
    }
}

/// What a Byzantine replica does (at most f per cluster for the guarantees to hold).
public enum ByzantineBehaviour: String, CaseIterable, Hashable, Sendable {
    /// Sends nothing at all.
    case silent
    /// Sends nothing while it is the primary (a primary that stops proposing).
    case silentPrimary
    /// Delays everything it sends by a large, fixed amount while it is the primary.
    case slowPrimary
    /// As primary, sends one block to half its backups and another to the rest, and votes for both.
    case equivocatingPrimary
    /// Replaces the signatures of what it sends with random bytes.
    case forgedSignatures
    /// Signs its votes over another round than the one they claim.
    case wrongBinding
    /// Sends copies of messages it sent long ago.
    case replay
    /// Prepares and commits every proposal it sees, conflicting or not.
    case votesForEverything
    /// Ignores every transaction of client 0 (as primary: censors that client).
    case censoring
    /// Refuses to forward remote blocks to its cluster (GeoBFT receivers; a correct replica for local PBFT).
    case nonForwarding
    /// As primary, shares certified blocks with only some regions (GeoBFT; a correct replica for local PBFT).
    case selectiveSharing
    /// Sends other clusters certified blocks with bad certificates: too few signers, signers of
    /// another cluster, signatures over another round or digest.
    case forgedCertificates
    /// Ignores every cross-shard statement it receives: as a participant's primary it never orders
    /// a Prepare, so its shard votes only once a view change replaces it.
    case withholdsVotes
    /// As primary, adds a client transaction with a forged signature to every block it proposes
    /// (SignatureDuty.swift: its designated verifiers must stop it; with `votesForEverything`
    /// accomplices, up to f - 1 of them collude).
    case forgedClientTransaction

    /// The behaviours of the random fault plans before `forgedClientTransaction`, in their order:
    /// plans draw from these, so that every seed replays the plan it always had, and then swap
    /// in the forging primary from a stream of their own (`FaultPlan.random`).
    public static let shardedCases: [ByzantineBehaviour] = allCases.filter { $0 != .forgedClientTransaction }
    /// The behaviours that matter with one shard, in their original order.
    public static let singleShardCases: [ByzantineBehaviour] = shardedCases.filter { $0 != .withholdsVotes }
}

/// What a Byzantine replica does when a peer asks it for a snapshot (state transfer).
public enum SnapshotFault: String, CaseIterable, Hashable, Sendable {
    /// Serves its snapshot with one value of the state changed.
    case forged
    /// Serves the first snapshot it ever took instead of the one asked for (a stale state).
    case stale
}

/// Something that happens at a point of simulated time.
public enum SimulationAction: Hashable, Sendable {
    case crash(ReplicaID)
    case restart(ReplicaID)
    /// The replica crashes and loses its disk: log, block store and snapshots (it comes back
    /// empty with `restart`, and must rejoin by state transfer).
    case wipe(ReplicaID)
    /// From now on the replica serves forged or stale snapshots (it counts as Byzantine).
    case snapshotFault(ReplicaID, SnapshotFault)
    case partition(Partition)
    case healPartitions
    case network(NetworkFaults)
    /// Every message to and from the replica takes `milliseconds` longer each way (a replica on
    /// an overloaded host or behind a slow link); 0 ends it.
    case slowLink(ReplicaID, milliseconds: Int)
    case byzantine(ReplicaID, ByzantineBehaviour)
}
