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
    static let blockTag = Array("geofabric/block/v1".utf8)
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

    /// What a block digest is computed over: the block's canonical encoding (which includes the
    /// client signatures, so a block's digest pins exactly which signed transactions it holds).
    public static func block(_ block: Block) -> [UInt8] {
        var writer = ByteWriter(capacity: 64 + block.transactions.count * 120)
        writer.raw(blockTag)
        MessageCodec.encode(block, into: &writer)
        return writer.bytes
    }
}
