// The CPU cost model: what a replica's machine spends on each input, so that simulated
// throughput follows from measured per-operation costs rather than from constants chosen to give
// a result.
//
// Every step of a replica is metered: signatures made and checked, bytes hashed, messages
// handled and sent. Its cost is charged to the replica's machine, which handles one input at a
// time; signature verification is spread over the machine's cores (as the daemon's parallel
// verifier does), the rest runs on one core. An input that arrives while the machine is busy
// waits, and what the step sends leaves when its work is done.

import GeoCore
import GeoWire

public struct CostModel: Hashable, Sendable, Codable {
    public var signMicroseconds: Double
    public var verifyMicroseconds: Double
    public var hashNanosecondsPerByte: Double
    /// Per message handled or sent: framing, checksums, decoding (not the kernel's network stack).
    public var messageMicroseconds: Double
    public var messageNanosecondsPerByte: Double
    /// Where the figures came from.
    public var source: String

    public init(signMicroseconds: Double, verifyMicroseconds: Double, hashNanosecondsPerByte: Double,
                messageMicroseconds: Double, messageNanosecondsPerByte: Double, source: String) {
        self.signMicroseconds = signMicroseconds
        self.verifyMicroseconds = verifyMicroseconds
        self.hashNanosecondsPerByte = hashNanosecondsPerByte
        self.messageMicroseconds = messageMicroseconds
        self.messageNanosecondsPerByte = messageNanosecondsPerByte
        self.source = source
    }

    /// Measured on the project's 2-core development machine with
    /// `swift run -c release geofabric calibrate --seconds 2` on 2026-11-25: Ed25519 sign
    /// 50,639/s and verify 9,160/s per core (swift-crypto), SHA-256 1,404 MB/s, and the frame codec
    /// (encode and decode): 1.35 us for a Prepare and 8.72 ns per byte of a 100-transaction
    /// PrePrepare. Override with `geofabric simulate --cost-model FILE` (a JSON file with these fields).
    public static let measured = CostModel(
        signMicroseconds: 19.7, verifyMicroseconds: 109.2, hashNanosecondsPerByte: 0.71,
        messageMicroseconds: 1.35, messageNanosecondsPerByte: 8.72,
        source: "geofabric calibrate --seconds 2 on the 2-core development machine, 2026-11-25")

    /// The same work on a machine `factor` times slower: a replica that gets only a share of a
    /// core, as when `geofabric bench` runs 16 replica processes on this 2-core machine (factor 8).
    public func slowed(by factor: Double) -> CostModel {
        CostModel(signMicroseconds: signMicroseconds * factor, verifyMicroseconds: verifyMicroseconds * factor,
                  hashNanosecondsPerByte: hashNanosecondsPerByte * factor, messageMicroseconds: messageMicroseconds * factor,
                  messageNanosecondsPerByte: messageNanosecondsPerByte * factor,
                  source: factor == 1 ? source : "\(source), slowed \(factor == factor.rounded() ? "\(Int(factor))" : "\(factor)")x")
    }

    /// Microseconds of work for what a step did, on a machine with `cores` cores.
    public func cost(of work: CostMeter.Counts, cores: Int) -> Double {
        Double(work.signs) * signMicroseconds
            + Double(work.verifies) * verifyMicroseconds / Double(max(1, cores))
            + Double(work.hashedBytes) * hashNanosecondsPerByte / 1000
            + Double(work.messages) * messageMicroseconds
            + Double(work.messageBytes) * messageNanosecondsPerByte / 1000
    }
}

/// Counts the cryptographic work of one replica. The simulator is single-threaded, so a plain
/// class shared between the replica's suite and the simulator is safe here.
public final class CostMeter: @unchecked Sendable {
    public struct Counts: Hashable, Sendable {
        public var signs = 0
        public var verifies = 0
        public var hashedBytes = 0
        public var messages = 0
        public var messageBytes = 0
        public init() {}
    }
    public var counts = Counts()
    /// Client signatures verified over the whole run (not reset by `take`): what SignatureDuty
    /// saves, counted whether or not the cost model is on.
    public var clientVerifications = 0
    public init() {}

    /// The counts so far, and a fresh start.
    public func take() -> Counts {
        defer { counts = Counts() }
        return counts
    }
}

/// A CryptoSuite that does what `base` does and counts it.
struct MeteredCrypto: CryptoSuite {
    let base: SimulatedCrypto
    let meter: CostMeter

    /// Block format v2: a leaf hash per transaction (its encoding, 1 prefix byte and SHA-256's
    /// padding, at most 64 bytes), an interior node per transaction but one (65 bytes, two
    /// compression blocks: 128), the statements and the header (128).
    func digest(of block: Block) -> Digest {
        let count = block.transactions.count
        meter.counts.hashedBytes += 128 + EncodedSize.block(block) + count * 65 + max(0, count - 1) * 128
        return base.digest(of: block)
    }

    func digest(of header: BlockHeader) -> Digest {
        meter.counts.hashedBytes += 128
        return base.digest(of: header)
    }

    func leafDigest(of transaction: ClientTransaction) -> Digest {
        meter.counts.hashedBytes += 65 + EncodedSize.transaction(transaction)
        return base.leafDigest(of: transaction)
    }

    func nodeDigest(left: Digest, right: Digest) -> Digest {
        meter.counts.hashedBytes += 128
        return base.nodeDigest(left: left, right: right)
    }

    func statementsDigest(of statements: [ShardStatementProof]) -> Digest {
        base.statementsDigest(of: statements)
    }

    func digest(of snapshot: LedgerSnapshot) -> Digest {
        let bytes = SigningPayload.state(snapshot)
        meter.counts.hashedBytes += bytes.count
        return SimulatedCrypto.digest(of: bytes)
    }

    func chain(previous: Digest, cluster: ClusterID, round: UInt64, digest: Digest) -> Digest {
        meter.counts.hashedBytes += 80
        return base.chain(previous: previous, cluster: cluster, round: round, digest: digest)
    }

    func sign(_ statement: SignedStatement) -> Signature {
        meter.counts.signs += 1
        return base.sign(statement)
    }

    func isValid(_ signature: Signature, of statement: SignedStatement, by replica: ReplicaID) -> Bool {
        meter.counts.verifies += 1
        return base.isValid(signature, of: statement, by: replica)
    }

    func isValid(_ transaction: ClientTransaction) -> Bool {
        meter.counts.verifies += 1
        meter.clientVerifications += 1
        return base.isValid(transaction)
    }
}

/// A CryptoSuite that does what `base` does and counts only the client signatures it verifies
/// (the cost model off: nothing else is charged).
struct ClientCheckCounter: CryptoSuite {
    let base: SimulatedCrypto
    let meter: CostMeter

    func digest(of block: Block) -> Digest { base.digest(of: block) }
    func digest(of header: BlockHeader) -> Digest { base.digest(of: header) }
    func leafDigest(of transaction: ClientTransaction) -> Digest { base.leafDigest(of: transaction) }
    func nodeDigest(left: Digest, right: Digest) -> Digest { base.nodeDigest(left: left, right: right) }
    func statementsDigest(of statements: [ShardStatementProof]) -> Digest { base.statementsDigest(of: statements) }
    func digest(of snapshot: LedgerSnapshot) -> Digest { base.digest(of: snapshot) }
    func chain(previous: Digest, cluster: ClusterID, round: UInt64, digest: Digest) -> Digest {
        base.chain(previous: previous, cluster: cluster, round: round, digest: digest)
    }
    func sign(_ statement: SignedStatement) -> Signature { base.sign(statement) }
    func isValid(_ signature: Signature, of statement: SignedStatement, by replica: ReplicaID) -> Bool {
        base.isValid(signature, of: statement, by: replica)
    }
    func isValid(_ transaction: ClientTransaction) -> Bool {
        meter.clientVerifications += 1
        return base.isValid(transaction)
    }
}
