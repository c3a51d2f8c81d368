// The exact bytes that are signed or hashed. Each starts with a domain tag, so a signature made
// for one purpose (a Commit) can never be replayed as another (a client transaction).

import GeoCore

public enum SigningPayload {
    static let transactionTag = Array("geofabric/transaction/v1".utf8)
    static let prePrepareTag = Array("geofabric/preprepare/v1".utf8)
    static let prepareTag = Array("geofabric/prepare/v1".utf8)
    static let commitTag = Array("geofabric/commit/v1".utf8)
    static let checkpointTag = Array("geofabric/checkpoint/v1".utf8)
    static let viewChangeTag = Array("geofabric/view-change/v1".utf8)
    static let newViewTag = Array("geofabric/new-view/v1".utf8)
    static let remoteViewChangeTag = Array("geofabric/remote-view-change/v1".utf8)
    static let blockTag = Array("geofabric/block/v2".utf8)
    static let blockStatementsTag = Array("geofabric/block-statements/v2".utf8)
    /// Merkle leaf and interior-node prefixes (one byte each, as RFC 9162): a leaf's bytes can
    /// never be read as a node's.
    public static let merkleLeafPrefix: UInt8 = 0x00
    public static let merkleNodePrefix: UInt8 = 0x01
    static let shardStatementTag = Array("geofabric/shard-statement/v1".utf8)
    static let stateCheckpointTag = Array("geofabric/state-checkpoint/v1".utf8)
    static let stateTag = Array("geofabric/state/v1".utf8)

    /// What a client signs: its id, the request id and the operation.
    public static func transaction(client: ClientID, requestID: UInt64, operation: Operation) -> [UInt8] {
        var writer = ByteWriter(capacity: 96)
        writer.raw(transactionTag)
        writer.u32(client.rawValue)
        writer.u64(requestID)
        MessageCodec.encode(operation, into: &writer)
        return writer.bytes
    }

    /// What a replica signs in its Commit: (shard, cluster, view, round, digest).
    public static func commit(_ vote: VoteStatement) -> [UInt8] {
        statement(.commit(vote))
    }

    /// The bytes of any replica-signed statement, each kind under its own domain tag.
    public static func statement(_ statement: SignedStatement) -> [UInt8] {
        var writer = ByteWriter(capacity: 96)
        switch statement {
        case let .prePrepare(vote):
            writer.raw(prePrepareTag)
            MessageCodec.encode(vote, into: &writer)
        case let .prepare(vote):
            writer.raw(prepareTag)
            MessageCodec.encode(vote, into: &writer)
        case let .commit(vote):
            writer.raw(commitTag)
            MessageCodec.encode(vote, into: &writer)
        case let .checkpoint(checkpoint):
            writer.raw(checkpointTag)
            MessageCodec.encode(checkpoint, into: &writer)
        case let .viewChange(viewChange):
            writer.raw(viewChangeTag)
            MessageCodec.encode(viewChange, signed: false, into: &writer)
        case let .newView(newView):
            writer.raw(newViewTag)
            MessageCodec.encode(newView, signed: false, into: &writer)
        case let .remoteViewChange(message):
            writer.raw(remoteViewChangeTag)
            MessageCodec.encode(message, signed: false, into: &writer)
        case let .shardStatement(statement):
            writer.raw(shardStatementTag)
            MessageCodec.encode(statement, into: &writer)
        case let .stateCheckpoint(statement):
            writer.raw(stateCheckpointTag)
            MessageCodec.encode(statement, into: &writer)
        }
        return writer.bytes
    }

    /// What a state digest is computed over: the snapshot's canonical encoding with the
    /// replica's own cluster chain head zeroed (it differs between clusters of one shard; the
    /// state checkpoint signs it apart).
    public static func state(_ snapshot: LedgerSnapshot) -> [UInt8] {
        var shared = snapshot
        shared.localHead = .zero
        return stateTag + SnapshotCodec.encode(shared)
    }

    /// What a block digest is computed over (block format v2): the tag, the cluster, the round,
    /// the transaction count, the transactions' Merkle root and the statements' digest; 84 bytes
    /// after the tag. (v1 hashed the whole block's encoding.)
    public static func blockHeader(_ header: BlockHeader) -> [UInt8] {
        var writer = ByteWriter(capacity: blockTag.count + 84)
        writer.raw(blockTag)
        MessageCodec.encode(header.cluster, into: &writer)
        writer.u64(header.round)
        writer.u32(header.transactionCount)
        writer.digest(header.transactionsRoot)
        writer.digest(header.statementsDigest)
        return writer.bytes
    }

    /// A Merkle leaf's bytes: 0x00, then the transaction's canonical encoding (client, request id,
    /// operation and signature, so the leaf pins the signed transaction exactly).
    public static func merkleLeaf(_ transaction: ClientTransaction) -> [UInt8] {
        var writer = ByteWriter(capacity: 128)
        writer.u8(merkleLeafPrefix)
        MessageCodec.encode(transaction, into: &writer)
        return writer.bytes
    }

    /// A Merkle interior node's bytes: 0x01, the left child, the right child.
    public static func merkleNode(left: Digest, right: Digest) -> [UInt8] {
        var writer = ByteWriter(capacity: 65)
        writer.u8(merkleNodePrefix)
        writer.digest(left)
        writer.digest(right)
        return writer.bytes
    }

    /// What a block's statements digest is computed over: the tag, the count, each statement
    /// proof's encoding.
    public static func blockStatements(_ statements: [ShardStatementProof]) -> [UInt8] {
        var writer = ByteWriter(capacity: blockStatementsTag.count + 4 + statements.count * 256)
        writer.raw(blockStatementsTag)
        writer.u32(UInt32(statements.count))
        for statement in statements { MessageCodec.encode(statement, into: &writer) }
        return writer.bytes
    }
}
