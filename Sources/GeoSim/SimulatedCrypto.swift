// A fast stand-in for Ed25519 and SHA-256, for the simulator only.
//
// Signatures are a keyed hash of the exact bytes GeoWire signs (so every binding the real scheme
// has, this one has too), keyed by a per-identity secret that only that simulated node uses.
// Simulated Byzantine nodes never read another node's secret, so within the simulation they cannot
// forge; what they can do is send random bytes, which fail verification as real forgeries would.
// It is about a thousand times cheaper than Ed25519, which is what lets a test run hundreds of seeds.
// The CPU a real replica would spend is charged by the cost model, not by this code.

import GeoCore
import GeoWire

public struct SimulatedCrypto: CryptoSuite, TransactionSigner {
    /// The identity whose secret signs (nil: verify only).
    let owner: ReplicaID?
    /// Client ids below this are known clients.
    let clientCount: Int

    public init(owner: ReplicaID?, clientCount: Int) {
        self.owner = owner
        self.clientCount = clientCount
    }

    static func secret(_ replica: ReplicaID) -> UInt64 {
        mix(0x5EC2_E7A1 ^ UInt64(replica.cluster.shard.rawValue) << 40 ^ UInt64(replica.cluster.index) << 20 ^ UInt64(replica.index))
    }

    static func secret(_ client: ClientID) -> UInt64 { mix(0xC11E_47 ^ UInt64(client.rawValue) << 1) }

    static func mix(_ value: UInt64) -> UInt64 {
        var random = SeededRandom(seed: value)
        return random.next()
    }

    /// 64 bytes from a 64-bit fingerprint of the payload and the secret.
    static func mac(secret: UInt64, _ fingerprint: UInt64) -> Signature {
        var random = SeededRandom(seed: fingerprint ^ secret)
        var bytes = [UInt8](repeating: 0, count: 64)
        for word in 0..<8 {
            let value = random.next()
            for byte in 0..<8 { bytes[word * 8 + byte] = UInt8(truncatingIfNeeded: value >> UInt64(byte * 8)) }
        }
        return Signature(bytes: bytes)!
    }

    /// A fingerprint of exactly what the real scheme signs, computed from the fields rather than
    /// from their encoding where that is cheap (votes, checkpoints, transactions).
    static func fingerprint(_ statement: SignedStatement) -> UInt64 {
        var print = Fingerprint()
        switch statement {
        case let .prePrepare(vote): print.add(1); print.add(vote)
        case let .prepare(vote): print.add(2); print.add(vote)
        case let .commit(vote): print.add(3); print.add(vote)
        case let .checkpoint(checkpoint):
            print.add(4)
            print.add(checkpoint.cluster)
            print.add(checkpoint.round)
            print.add(checkpoint.digest)
        case .viewChange, .newView, .remoteViewChange, .shardStatement, .stateCheckpoint:
            print.add(5)
            print.add(SigningPayload.statement(statement))
        }
        return print.value
    }

    static func fingerprint(client: ClientID, requestID: UInt64, operation: Operation) -> UInt64 {
        var print = Fingerprint()
        print.add(6)
        print.add(UInt64(client.rawValue))
        print.add(requestID)
        print.add(operation)
        return print.value
    }

    /// Block format v2 as the daemon computes it (header over a Merkle root, MerkleTree.swift),
    /// each hash a fingerprint: the simulator runs the same tree code.
    public func digest(of block: Block) -> Digest { blockDigest(of: block) }

    public func digest(of header: BlockHeader) -> Digest {
        var print = Fingerprint()
        print.add(7)
        print.add(header.cluster)
        print.add(header.round)
        print.add(UInt64(header.transactionCount))
        print.add(header.transactionsRoot)
        print.add(header.statementsDigest)
        return Self.widen(print.value, lanes: (1, 2, 3))
    }

    public func leafDigest(of transaction: ClientTransaction) -> Digest {
        var print = Fingerprint()
        print.add(10)
        print.add(UInt64(transaction.client.rawValue))
        print.add(transaction.requestID)
        print.add(transaction.operation)
        print.add(transaction.signature.bytes)
        return Self.widen(print.value, lanes: (31, 32, 33))
    }

    public func nodeDigest(left: Digest, right: Digest) -> Digest {
        var print = Fingerprint()
        print.add(11)
        print.add(left)
        print.add(right)
        return Self.widen(print.value, lanes: (41, 42, 43))
    }

    public func statementsDigest(of statements: [ShardStatementProof]) -> Digest {
        // No statements (every block of a one-shard deployment) costs one word, not an encoding.
        guard !statements.isEmpty else { return Self.widen(12, lanes: (51, 52, 53)) }
        return Self.digest(of: SigningPayload.blockStatements(statements))
    }

    /// Four differently seeded lanes: collisions need a 64-bit collision first.
    static func widen(_ base: UInt64, lanes: (UInt64, UInt64, UInt64)) -> Digest {
        Digest(w0: base, w1: mix(base ^ lanes.0), w2: mix(base ^ lanes.1), w3: mix(base ^ lanes.2))
    }

    public func digest(of snapshot: LedgerSnapshot) -> Digest { Self.digest(of: SigningPayload.state(snapshot)) }

    static func digest(of bytes: [UInt8]) -> Digest {
        var print = Fingerprint()
        print.add(9)
        print.add(bytes)
        let base = print.value
        return Digest(w0: base, w1: Self.mix(base ^ 21), w2: Self.mix(base ^ 22), w3: Self.mix(base ^ 23))
    }

    public func chain(previous: Digest, cluster: ClusterID, round: UInt64, digest: Digest) -> Digest {
        var print = Fingerprint()
        print.add(8)
        print.add(previous)
        print.add(cluster)
        print.add(round)
        print.add(digest)
        let base = print.value
        return Digest(w0: base, w1: Self.mix(base ^ 11), w2: Self.mix(base ^ 12), w3: Self.mix(base ^ 13))
    }

    public func sign(_ statement: SignedStatement) -> Signature {
        guard let owner else { preconditionFailure("this suite has no signing identity") }
        return Self.mac(secret: Self.secret(owner), Self.fingerprint(statement))
    }

    public func isValid(_ signature: Signature, of statement: SignedStatement, by replica: ReplicaID) -> Bool {
        signature == Self.mac(secret: Self.secret(replica), Self.fingerprint(statement))
    }

    public func isValid(_ transaction: ClientTransaction) -> Bool {
        guard Int(transaction.client.rawValue) < clientCount else { return false }
        let print = Self.fingerprint(client: transaction.client, requestID: transaction.requestID, operation: transaction.operation)
        return transaction.signature == Self.mac(secret: Self.secret(transaction.client), print)
    }

    public func signTransaction(client: ClientID, requestID: UInt64, operation: Operation) -> ClientTransaction {
        let print = Self.fingerprint(client: client, requestID: requestID, operation: operation)
        return ClientTransaction(client: client, requestID: requestID, operation: operation,
                                 signature: Self.mac(secret: Self.secret(client), print))
    }
}

/// A 64-bit FNV-1a-style fingerprint fed with words and byte strings (not cryptographic).
struct Fingerprint {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
    static let prime: UInt64 = 0x0000_0100_0000_01b3

    mutating func add(_ word: UInt64) {
        value = (value ^ word) &* Self.prime
        value ^= value >> 29
    }

    mutating func add(_ bytes: [UInt8]) {
        add(UInt64(bytes.count))
        var word: UInt64 = 0
        var shift: UInt64 = 0
        for byte in bytes {
            word |= UInt64(byte) << shift
            shift += 8
            if shift == 64 {
                add(word)
                word = 0
                shift = 0
            }
        }
        if shift > 0 { add(word) }
    }

    mutating func add(_ cluster: ClusterID) { add(UInt64(cluster.shard.rawValue) << 16 | UInt64(cluster.index)) }

    mutating func add(_ digest: Digest) {
        add(digest.w0)
        add(digest.w1)
        add(digest.w2)
        add(digest.w3)
    }

    mutating func add(_ vote: VoteStatement) {
        add(vote.cluster)
        add(vote.view)
        add(vote.round)
        add(vote.digest)
    }

    mutating func add(_ operation: Operation) {
        switch operation {
        case let .put(key, value): add(1); add(key); add(value)
        case let .get(key): add(2); add(key)
        case let .add(key, delta): add(3); add(key); add(UInt64(bitPattern: delta))
        case let .transfer(from, to, amount): add(4); add(from); add(to); add(amount)
        }
    }
}
