// The size of a message's frame, computed without encoding it: the simulator charges bandwidth
// for every message it moves, and encoding each one only to measure it dominated its run time.
// The wire tests check it against the real encoder for every kind.

import GeoCore

public enum EncodedSize {
    static let cluster = 4
    static let replica = 6
    static let vote = cluster + 8 + 8 + Digest.byteCount
    static let signer = 2 + Signature.byteCount

    /// Bytes of the whole frame (header included) that `FrameCodec.encode(message, ...)` produces.
    public static func frame(_ message: Message) -> Int {
        WireFormat.headerBytes + body(message)
    }

    public static func body(_ message: Message) -> Int {
        switch message {
        case let .clientTransaction(value): return of(value)
        case let .prePrepare(value): return of(value)
        case .prepare, .commit: return vote + signer
        case let .certifiedBlock(value): return of(value.block) + vote + 4 + value.certificate.signatures.count * signer
        case let .reply(value): return 4 + 8 + replica + 8 + of(value.result) + 8 + 2 + 8
        case .busy: return 4 + 8 + replica + 8 + 4
        case .checkpoint: return cluster + 8 + Digest.byteCount + signer
        case let .viewChange(value): return of(value)
        case let .newView(value):
            return cluster + 8 + 4 + value.viewChanges.reduce(0) { $0 + of($1) } + 4 + value.prePrepares.reduce(0) { $0 + of($1) }
                + Signature.byteCount
        case .blockRequest: return cluster + 8 + 8
        case .remoteViewChange: return 1 + cluster + 8 + 8 + replica + Signature.byteCount
        case let .shardStatement(value): return of(value)
        case .stateCheckpoint: return cluster + 8 + 8 + 3 * Digest.byteCount + signer
        case .stateRequest: return cluster + 8
        // Rare (state transfer only): measured by encoding.
        case let .stateTransfer(snapshot): return SnapshotCodec.encode(snapshot).count
        }
    }

    static func of(_ statement: ShardStatement) -> Int {
        switch statement.kind {
        case let .prepare(transaction): return 2 + 2 + 1 + of(transaction)
        case .vote, .decision: return 2 + 2 + 1 + (2 + 4 + 8) + 1
        }
    }

    static func of(_ proof: ShardStatementProof) -> Int {
        of(proof.statement) + cluster + 4 + proof.signatures.count * signer
    }

    static func of(_ operation: Operation) -> Int {
        switch operation {
        case let .put(key, value): return 1 + 4 + key.count + 4 + value.count
        case let .get(key): return 1 + 4 + key.count
        case let .add(key, _): return 1 + 4 + key.count + 8
        case let .transfer(from, to, _): return 1 + 4 + from.count + 4 + to.count + 8
        }
    }

    static func of(_ transaction: ClientTransaction) -> Int { 4 + 8 + of(transaction.operation) + Signature.byteCount }

    static func of(_ block: Block) -> Int {
        let statements = block.statements.isEmpty ? 0 : 4 + block.statements.reduce(0) { $0 + of($1) }
        return cluster + 8 + 4 + block.transactions.reduce(0) { $0 + of($1) } + statements
    }

    /// Bytes of a block's canonical encoding (what its digest is computed over, less the domain tag).
    public static func block(_ block: Block) -> Int { of(block) }
    public static func transaction(_ transaction: ClientTransaction) -> Int { of(transaction) }

    static func of(_ prePrepare: PrePrepare) -> Int { 8 + Digest.byteCount + of(prePrepare.block) + Signature.byteCount }

    static func of(_ result: ExecutionResult) -> Int {
        switch result {
        case .stored: return 1
        case let .value(value): return 2 + (value.map { 4 + $0.count } ?? 0)
        case .number: return 1 + 8
        case .transferred: return 1 + 16
        case .refused: return 2
        case .crossShardCommitted: return 1
        case .crossShardAborted: return 2
        }
    }

    static func of(_ viewChange: ViewChange) -> Int {
        let checkpoint = cluster + 8 + Digest.byteCount + 4 + viewChange.checkpoint.checkpoints.count * signer
        let prepared = viewChange.prepared.reduce(0) { $0 + of($1.prePrepare) + 4 + $1.prepares.count * signer }
        return cluster + 8 + checkpoint + 4 + prepared + 2 + Signature.byteCount
    }
}
