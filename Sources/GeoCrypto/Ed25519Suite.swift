// The real CryptoSuite: Ed25519 over GeoWire's signing payloads, SHA-256 digests.

import GeoCore
import GeoWire

public struct Ed25519Suite: CryptoSuite {
    let key: SigningKey?
    let keys: KeyRing
    let topology: Topology

    /// A suite for `topology` that signs with `key` (nil: verification only, as for a client or tool).
    public init(topology: Topology, keys: KeyRing, signingKey key: SigningKey?) {
        self.topology = topology
        self.keys = keys
        self.key = key
    }

    public func digest(of block: Block) -> GeoCore.Digest { Hashing.blockDigest(block) }
    public func digest(of header: BlockHeader) -> GeoCore.Digest { Hashing.headerDigest(header) }
    public func leafDigest(of transaction: ClientTransaction) -> GeoCore.Digest { Hashing.merkleLeaf(transaction) }
    public func nodeDigest(left: GeoCore.Digest, right: GeoCore.Digest) -> GeoCore.Digest { Hashing.merkleNode(left: left, right: right) }
    public func statementsDigest(of statements: [ShardStatementProof]) -> GeoCore.Digest { Hashing.statementsDigest(statements) }

    public func digest(of snapshot: LedgerSnapshot) -> GeoCore.Digest { Hashing.stateDigest(snapshot) }

    public func chain(previous: GeoCore.Digest, cluster: ClusterID, round: UInt64, digest: GeoCore.Digest) -> GeoCore.Digest {
        Hashing.ledgerHead(previous: previous, cluster: cluster, round: round, blockDigest: digest)
    }

    public func sign(_ statement: SignedStatement) -> Signature {
        guard let key else { preconditionFailure("this suite has no signing key") }
        return key.sign(SigningPayload.statement(statement))
    }

    public func isValid(_ signature: Signature, of statement: SignedStatement, by replica: ReplicaID) -> Bool {
        guard let info = topology.replica(replica), let publicKey = keys.replicaKey(number: info.number) else { return false }
        return publicKey.isValid(signature, for: SigningPayload.statement(statement))
    }

    public func isValid(_ transaction: ClientTransaction) -> Bool {
        guard let publicKey = keys.clientKey(transaction.client) else { return false }
        return publicKey.isValid(transaction)
    }
}
