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
    static func mac(secret: UInt64, _ payload: [UInt8]) -> Signature {
        var random = SeededRandom(seed: KeyHash.fnv1a64(payload) ^ secret)
        var bytes = [UInt8]()
        bytes.reserveCapacity(64)
        for _ in 0..<8 {
            var word = random.next()
            for _ in 0..<8 {
                bytes.append(UInt8(truncatingIfNeeded: word))
                word >>= 8
            }
        }
        return Signature(bytes: bytes)!
    }

    public func digest(of block: Block) -> Digest {
        let bytes = SigningPayload.block(block)
        let base = KeyHash.fnv1a64(bytes)
        // Four differently seeded lanes: collisions need a 64-bit FNV collision first.
        return Digest(w0: base, w1: Self.mix(base ^ 1), w2: Self.mix(base ^ 2), w3: Self.mix(base ^ 3))
    }

    public func chain(previous: Digest, cluster: ClusterID, round: UInt64, digest: Digest) -> Digest {
        var writer = ByteWriter(capacity: 80)
        writer.digest(previous)
        writer.u16(cluster.shard.rawValue)
        writer.u16(cluster.index)
        writer.u64(round)
        writer.digest(digest)
        let base = KeyHash.fnv1a64(writer.bytes)
        return Digest(w0: base, w1: Self.mix(base ^ 11), w2: Self.mix(base ^ 12), w3: Self.mix(base ^ 13))
    }

    public func sign(_ statement: SignedStatement) -> Signature {
        guard let owner else { preconditionFailure("this suite has no signing identity") }
        return Self.mac(secret: Self.secret(owner), SigningPayload.statement(statement))
    }

    public func isValid(_ signature: Signature, of statement: SignedStatement, by replica: ReplicaID) -> Bool {
        signature == Self.mac(secret: Self.secret(replica), SigningPayload.statement(statement))
    }

    public func isValid(_ transaction: ClientTransaction) -> Bool {
        guard Int(transaction.client.rawValue) < clientCount else { return false }
        let payload = SigningPayload.transaction(client: transaction.client, requestID: transaction.requestID, operation: transaction.operation)
        return transaction.signature == Self.mac(secret: Self.secret(transaction.client), payload)
    }

    public func signTransaction(client: ClientID, requestID: UInt64, operation: Operation) -> ClientTransaction {
        let payload = SigningPayload.transaction(client: client, requestID: requestID, operation: operation)
        return ClientTransaction(client: client, requestID: requestID, operation: operation,
                                 signature: Self.mac(secret: Self.secret(client), payload))
    }
}
