// SHA-256 and HMAC-SHA256 through swift-crypto, producing GeoCore's types.

import Crypto
import Foundation
import GeoCore
import GeoWire

/// GeoCore's digest (swift-crypto has a protocol of the same name).
public typealias Digest = GeoCore.Digest

public enum Hashing {
    public static func sha256<D: DataProtocol>(_ bytes: D) -> Digest {
        let digest = SHA256.hash(data: bytes)
        return digest.withUnsafeBytes { Digest(bytes: $0)! }
    }

    /// The digest of a block (format v2): SHA-256 over its header (GeoWire.SigningPayload.blockHeader),
    /// which commits to the transactions through their Merkle root.
    public static func blockDigest(_ block: Block) -> Digest {
        headerDigest(BlockHeader(cluster: block.cluster, round: block.round, transactionCount: UInt32(block.transactions.count),
                                 transactionsRoot: MerkleTree.root(block.transactions.map(merkleLeaf), node: merkleNode),
                                 statementsDigest: statementsDigest(block.statements)))
    }

    /// SHA-256 of a v2 block header.
    public static func headerDigest(_ header: BlockHeader) -> Digest { sha256(SigningPayload.blockHeader(header)) }

    /// A Merkle leaf: SHA-256(0x00 || transaction encoding).
    public static func merkleLeaf(_ transaction: ClientTransaction) -> Digest { sha256(SigningPayload.merkleLeaf(transaction)) }

    /// A Merkle interior node: SHA-256(0x01 || left || right).
    public static func merkleNode(left: Digest, right: Digest) -> Digest { sha256(SigningPayload.merkleNode(left: left, right: right)) }

    /// SHA-256 of a block's statements (GeoWire.SigningPayload.blockStatements).
    public static func statementsDigest(_ statements: [ShardStatementProof]) -> Digest {
        sha256(SigningPayload.blockStatements(statements))
    }

    /// The digest of a snapshot's state: SHA-256 over GeoWire.SigningPayload.state.
    public static func stateDigest(_ snapshot: LedgerSnapshot) -> Digest {
        sha256(SigningPayload.state(snapshot))
    }

    /// The next shard-ledger head: H(previous || cluster || round || block digest) (DESIGN 2.3).
    /// The certificate is kept out: correct replicas may hold different valid signer sets.
    public static func ledgerHead(previous: Digest, cluster: ClusterID, round: UInt64, blockDigest: Digest) -> Digest {
        var writer = ByteWriter(capacity: 80)
        writer.digest(previous)
        writer.u16(cluster.shard.rawValue)
        writer.u16(cluster.index)
        writer.u64(round)
        writer.digest(blockDigest)
        return sha256(writer.bytes)
    }

    /// HMAC-SHA256 of `message` under `key`: the cheap authenticator for intra-cluster messages
    /// that need not be checkable by third parties.
    public static func hmac(key: [UInt8], message: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
    }

    /// Constant-time check of an HMAC.
    public static func isValidHMAC(_ code: [UInt8], key: [UInt8], message: [UInt8]) -> Bool {
        HMAC<SHA256>.isValidAuthenticationCode(code, authenticating: message, using: SymmetricKey(data: key))
    }
}
