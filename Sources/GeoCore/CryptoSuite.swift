// What the core asks of cryptography. GeoCore has no crypto of its own: the shell hands each
// replica a suite that holds that replica's private key and everyone's public keys.
//
// Signing is a synchronous request to the suite rather than an effect: Ed25519 signing is
// deterministic and takes tens of microseconds, so an asynchronous round trip through the shell
// would add states to the protocol for nothing. The daemon uses GeoCrypto's Ed25519 suite; the
// simulator uses a fast keyed-hash suite so that thousands of seeds run in minutes, and charges the
// measured Ed25519 costs to its CPU model instead.

public protocol CryptoSuite: Sendable {
    /// The digest of a block: of its v2 header (Proofs/BlockHeader.swift), which commits to the
    /// transactions through their Merkle root. Suites implement it as `blockDigest(of:)`; a
    /// suite that wraps another forwards it (and may count it).
    func digest(of block: Block) -> Digest
    /// The digest of a block header (block format v2).
    func digest(of header: BlockHeader) -> Digest
    /// A Merkle leaf: the digest of one transaction, domain-separated from `nodeDigest`.
    func leafDigest(of transaction: ClientTransaction) -> Digest
    /// A Merkle interior node over two children, domain-separated from `leafDigest`.
    func nodeDigest(left: Digest, right: Digest) -> Digest
    /// The digest of a block's cross-shard statements, in order.
    func statementsDigest(of statements: [ShardStatementProof]) -> Digest
    /// The next link of a hash chain: H(previous || cluster || round || digest).
    func chain(previous: Digest, cluster: ClusterID, round: UInt64, digest: Digest) -> Digest
    /// Signs `statement` with the key of the replica that owns this suite.
    func sign(_ statement: SignedStatement) -> Signature
    /// Whether `signature` is `replica`'s signature over `statement` (false for unknown replicas).
    func isValid(_ signature: Signature, of statement: SignedStatement, by replica: ReplicaID) -> Bool
    /// Whether the client signature of `transaction` is valid (false for unknown clients).
    func isValid(_ transaction: ClientTransaction) -> Bool
    /// The digest of a snapshot's state (its canonical encoding; the replica's own chain head
    /// and the cross-shard layout excluded, so every replica of the shard computes the same one).
    func digest(of snapshot: LedgerSnapshot) -> Digest
}
