// The workload of `geofabric bench`: YCSB-style reads and updates over a fixed key space, with
// uniform or Zipfian key choice, plus transfers between two keys of one shard and (with several
// shards) cross-shard transfers from a key of the client's shard to a key of another. Everything is drawn
// from a seeded generator per client, so two runs with the same options send the same operations.

import Foundation
import GeoCore

/// SplitMix64: tiny, fast and good enough to pick keys; seeded so a run can be repeated.
struct BenchRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }
}

/// Ranks 0 ..< count, rank 0 the most frequent, with P(rank i) proportional to 1 / (i + 1)^theta
/// (theta 0: uniform). The constant-time method of Gray et al., "Quickly generating billion-record
/// synthetic databases" (SIGMOD 1994), as YCSB's ZipfianGenerator uses it; it needs theta < 1.
struct ZipfGenerator: Sendable {
    let count: Int
    let theta: Double
    let zetaN: Double
    let alpha: Double
    let eta: Double
    let secondThreshold: Double

    init(count: Int, theta: Double) {
        precondition(count >= 1 && theta >= 0 && theta < 1, "Zipf needs count >= 1 and 0 <= theta < 1")
        self.count = count
        self.theta = theta
        func zeta(_ n: Int) -> Double { (1...max(1, n)).reduce(0) { $0 + 1 / pow(Double($1), theta) } }
        zetaN = zeta(count)
        alpha = 1 / (1 - theta)
        let zeta2 = zeta(min(2, count))
        eta = count < 2 ? 0 : (1 - pow(2 / Double(count), 1 - theta)) / (1 - zeta2 / zetaN)
        secondThreshold = 1 + pow(0.5, theta)
    }

    func next(_ random: inout BenchRandom) -> Int {
        let u = random.unit()
        if theta == 0 || count < 3 { return Int(u * Double(count)) }
        let uz = u * zetaN
        if uz < 1 { return 0 }
        if uz < secondThreshold { return 1 }
        return min(count - 1, Int(Double(count) * pow(eta * u - eta + 1, alpha)))
    }
}

/// What the clients send, shared by all of them.
struct BenchWorkload: Sendable {
    /// The value an update writes: a number, so that transfers between updated keys can succeed.
    static let updateBalance: Int64 = 1_000
    static let transferAmount: UInt64 = 1

    var readFraction: Double
    var transferFraction: Double
    /// Fraction of all operations that are cross-shard transfers (their coordinator is the
    /// client's shard, the shard of the first key).
    var crossShardFraction: Double = 0
    /// The keys of each shard (by shard index), in rank order for the Zipf generator.
    let keysByShard: [[[UInt8]]]
    let generators: [ZipfGenerator]

    /// Spreads `keyCount` YCSB-style keys ("user0", "user1", ...) over the shards of `topology`.
    /// Fails when a shard gets fewer than two keys (a transfer needs two).
    static func make(topology: Topology, keyCount: Int, zipfTheta: Double, readFraction: Double,
                     transferFraction: Double, crossShardFraction: Double = 0) -> Result<BenchWorkload, BenchError> {
        if crossShardFraction > 0, topology.shards.count < 2 {
            return .failure(.invalid("--cross-shard needs a topology of at least two shards; \(topology.name) has one (try topologies/sharded-2x2x4.yaml)"))
        }
        var keys = [[[UInt8]]](repeating: [], count: topology.shards.count)
        for index in 0..<keyCount {
            let key = Array("user\(index)".utf8)
            keys[Int(topology.shardID(forKey: key).rawValue)].append(key)
        }
        if let empty = keys.firstIndex(where: { $0.count < 2 }) {
            return .failure(.invalid("--keys \(keyCount) leaves shard \(topology.shards[empty].name) with \(keys[empty].count) key(s); it needs at least 2"))
        }
        return .success(BenchWorkload(readFraction: readFraction, transferFraction: transferFraction,
                                      crossShardFraction: crossShardFraction, keysByShard: keys,
                                      generators: keys.map { ZipfGenerator(count: $0.count, theta: zipfTheta) }))
    }

    /// The next operation of a client of shard `shard`: a cross-shard transfer, a transfer, else a
    /// read or an update.
    func next(shard: Int, _ random: inout BenchRandom) -> GeoCore.Operation {
        let keys = keysByShard[shard]
        let generator = generators[shard]
        let rank = generator.next(&random)
        let key = keys[rank]
        if crossShardFraction > 0, random.unit() < crossShardFraction {
            // Another shard, uniformly; its key by its own skew.
            let other = (shard + 1 + Int(random.next() % UInt64(keysByShard.count - 1))) % keysByShard.count
            return .transfer(from: key, to: keysByShard[other][generators[other].next(&random)], amount: Self.transferAmount)
        }
        if random.unit() < transferFraction {
            var otherRank = generator.next(&random)
            // A transfer to itself is refused; the neighbour keeps the skew of the draw.
            if otherRank == rank { otherRank = (rank + 1) % keys.count }
            return .transfer(from: key, to: keys[otherRank], amount: Self.transferAmount)
        }
        if random.unit() < readFraction { return .get(key: key) }
        return .put(key: key, value: KeyValueStore.encode(Self.updateBalance))
    }
}

enum BenchError: Error, CustomStringConvertible {
    case invalid(String)
    case deployment(String)

    var description: String {
        switch self {
        case let .invalid(message), let .deployment(message): return message
        }
    }
}
