// Block format v2: what a block's digest covers. The digest is the suite's hash of this header,
// and the header commits to the transactions through their Merkle root (MerkleTree.swift) and to
// the cross-shard statements through one digest of them all, so a transaction's inclusion is
// proven by the header, a Merkle path and the certificate, without the rest of the block.
//
// The certificate still signs (cluster, view, round, block digest) and the ledger chain still
// links H(previous || cluster || round || block digest): both keep their meaning, only what the
// digest is computed over changed (v1 hashed the whole block's encoding in one piece).

public struct BlockHeader: Hashable, Sendable {
    /// The format version this build writes and reads (bound in the topology hash, so replicas
    /// of builds with other versions refuse each other at the handshake and at start).
    public static let formatVersion = 2

    public var cluster: ClusterID
    public var round: UInt64
    public var transactionCount: UInt32
    /// MerkleTree.root over the transactions' leaf digests (Digest.zero when there are none).
    public var transactionsRoot: Digest
    /// The suite's digest of the block's statements (cross-shard steps), in order.
    public var statementsDigest: Digest

    public init(cluster: ClusterID, round: UInt64, transactionCount: UInt32, transactionsRoot: Digest, statementsDigest: Digest) {
        self.cluster = cluster
        self.round = round
        self.transactionCount = transactionCount
        self.transactionsRoot = transactionsRoot
        self.statementsDigest = statementsDigest
    }

    /// The header of `block` under `suite`.
    public init(_ block: Block, suite: some CryptoSuite) {
        self.init(cluster: block.cluster, round: block.round, transactionCount: UInt32(block.transactions.count),
                  transactionsRoot: suite.transactionsRoot(of: block.transactions),
                  statementsDigest: suite.statementsDigest(of: block.statements))
    }
}

extension CryptoSuite {
    /// The Merkle root over `transactions`' leaf digests.
    public func transactionsRoot(of transactions: [ClientTransaction]) -> Digest {
        MerkleTree.root(transactions.map { leafDigest(of: $0) }, node: { nodeDigest(left: $0, right: $1) })
    }

    /// The Merkle path of the transaction at `index` of `transactions`, nearest sibling first.
    public func transactionPath(of transactions: [ClientTransaction], index: Int) -> [Digest] {
        MerkleTree.path(transactions.map { leafDigest(of: $0) }, index: index, node: { nodeDigest(left: $0, right: $1) })
    }

    /// A block's digest: the digest of its v2 header.
    public func blockDigest(of block: Block) -> Digest {
        digest(of: BlockHeader(block, suite: self))
    }
}
