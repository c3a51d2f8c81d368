// The exact bytes that are signed or hashed. Each starts with a domain tag, so a signature made
// for one purpose (a Commit) can never be replayed as another (a client transaction).

import GeoCore

public enum SigningPayload {
    static let transactionTag = Array("geofabric/transaction/v1".utf8)
    static let commitTag = Array("geofabric/commit/v1".utf8)
    static let blockTag = Array("geofabric/block/v1".utf8)

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
    public static func commit(_ statement: CommitStatement) -> [UInt8] {
        var writer = ByteWriter(capacity: 80)
        writer.raw(commitTag)
        MessageCodec.encode(statement, into: &writer)
        return writer.bytes
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
