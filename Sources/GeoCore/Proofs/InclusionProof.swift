// An inclusion proof: one transaction, the Merkle path from it to its block's transactions root,
// the block's v2 header and the block's commit certificate. Whoever holds the topology's public
// keys can check it alone (InclusionProofCheck), trusting no replica: the n - f signed Commits
// bind (cluster, view, round, block digest), the digest is the header's, the header holds the
// root, and the path leads from the transaction's leaf to that root.

public struct InclusionProof: Hashable, Sendable {
    public var header: BlockHeader
    /// The block's shard-ledger height (derived from cluster and round; checked, not trusted).
    public var height: UInt64
    /// The transaction's index in the block.
    public var position: UInt32
    public var transaction: ClientTransaction
    /// Merkle siblings, nearest the leaf first.
    public var path: [Digest]
    public var certificate: CommitCertificate

    public init(header: BlockHeader, height: UInt64, position: UInt32, transaction: ClientTransaction, path: [Digest],
                certificate: CommitCertificate) {
        self.header = header
        self.height = height
        self.position = position
        self.transaction = transaction
        self.path = path
        self.certificate = certificate
    }

    /// The proof of the transaction at `position` of `certified`, stored at `height`.
    public init(certified: CertifiedBlock, height: UInt64, position: Int, suite: some CryptoSuite) {
        let transactions = certified.block.transactions
        precondition(transactions.indices.contains(position), "the transaction must be in the block")
        self.init(header: BlockHeader(certified.block, suite: suite), height: height, position: UInt32(position),
                  transaction: transactions[position], path: suite.transactionPath(of: transactions, index: position),
                  certificate: certified.certificate)
    }

    /// The digest every check comes back to: what the certificate signs.
    public var blockDigest: Digest { certificate.statement.digest }
}

/// Why a proof was refused, first failing check first.
public enum InclusionProofError: Error, Hashable, Sendable, CustomStringConvertible {
    case unknownCluster(ClusterID)
    case heightMismatch(claimed: UInt64, expected: UInt64)
    /// The certificate is for another (cluster, round) than the header.
    case certificateNotForBlock
    /// The header does not hash to the digest the certificate signs.
    case blockDigestMismatch
    /// Fewer than n - f distinct members of the cluster with valid signatures (or one invalid).
    case certificateInvalid(required: Int)
    case positionOutOfRange(position: UInt32, count: UInt32)
    /// The path from the transaction's leaf does not lead to the header's transactions root.
    case pathMismatch
    case clientSignatureInvalid

    public var description: String {
        switch self {
        case let .unknownCluster(cluster): "the proof names cluster \(cluster.index) of shard \(cluster.shard.rawValue), which this topology has not"
        case let .heightMismatch(claimed, expected): "the proof claims height \(claimed); its cluster and round are at height \(expected)"
        case .certificateNotForBlock: "the certificate is for another cluster or round than the block header"
        case .blockDigestMismatch: "the block header does not hash to the digest the certificate signs"
        case let .certificateInvalid(required):
            "the certificate does not hold \(required) valid Commit signatures of distinct replicas of the cluster"
        case let .positionOutOfRange(position, count): "position \(position) is outside the block's \(count) transactions"
        case .pathMismatch: "the Merkle path from the transaction does not lead to the block's transactions root"
        case .clientSignatureInvalid: "the transaction's client signature does not verify"
        }
    }
}

public enum InclusionProofCheck {
    /// Checks `proof` against `topology` and the keys behind `suite`; throws the first failure.
    /// The cheap checks run first, the signatures last.
    public static func verify(_ proof: InclusionProof, topology: Topology, suite: some CryptoSuite) throws(InclusionProofError) {
        let header = proof.header
        guard let shard = topology.shard(header.cluster.shard), let cluster = topology.cluster(header.cluster) else {
            throw .unknownCluster(header.cluster)
        }
        guard header.round >= 1 else { throw .heightMismatch(claimed: proof.height, expected: 0) }
        let expected = ShardLedger.height(round: header.round, cluster: header.cluster.index, clusterCount: shard.clusters.count)
        guard proof.height == expected else { throw .heightMismatch(claimed: proof.height, expected: expected) }
        let statement = proof.certificate.statement
        guard statement.cluster == header.cluster, statement.round == header.round else { throw .certificateNotForBlock }
        guard suite.digest(of: header) == statement.digest else { throw .blockDigestMismatch }
        guard proof.position < header.transactionCount else {
            throw .positionOutOfRange(position: proof.position, count: header.transactionCount)
        }
        let root = MerkleTree.root(leaf: suite.leafDigest(of: proof.transaction), index: Int(proof.position),
                                   count: Int(header.transactionCount), path: proof.path,
                                   node: { suite.nodeDigest(left: $0, right: $1) })
        guard root == header.transactionsRoot else { throw .pathMismatch }
        let signers = proof.certificate.signatures.map { ($0.replicaIndex, $0.signature) }
        guard CertificateCheck.hasQuorum(signers, of: .commit(statement), cluster: header.cluster, threshold: cluster.quorum.decide,
                                         quorum: cluster.quorum, suite: suite) else {
            throw .certificateInvalid(required: cluster.quorum.decide)
        }
        guard suite.isValid(proof.transaction) else { throw .clientSignatureInvalid }
    }
}
