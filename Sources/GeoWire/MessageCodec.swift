// The body encoding of each message kind: hand-written little-endian, one encoder and one decoder
// per type. No Codable or JSON here: this is the hot path, and both are 20-50x slower.
//
// The encoding is canonical: every value has exactly one encoding, and the decoder refuses any
// other (unknown tags, booleans other than 0/1, unsorted or repeated certificate signers, bytes
// left over). So "decodes" implies "re-encodes to the same bytes", which the fuzz test checks,
// and digests over encodings are well defined.

import GeoCore

public enum MessageCodec {
    // MARK: Encoding

    public static func encodeBody(_ message: Message, into writer: inout ByteWriter) {
        switch message {
        case let .clientTransaction(value): encode(value, into: &writer)
        case let .prePrepare(value): encode(value, into: &writer)
        case let .prepare(value): encode(value, into: &writer)
        case let .commit(value): encode(value, into: &writer)
        case let .certifiedBlock(value): encode(value, into: &writer)
        case let .reply(value): encode(value, into: &writer)
        case let .busy(value): encode(value, into: &writer)
        case let .checkpoint(value): encode(value, into: &writer)
        case let .viewChange(value): encode(value, signed: true, into: &writer)
        case let .newView(value): encode(value, signed: true, into: &writer)
        case let .blockRequest(value): encode(value, into: &writer)
        case let .remoteViewChange(value): encode(value, signed: true, into: &writer)
        case let .shardStatement(value): encode(value, into: &writer)
        case let .stateCheckpoint(value): encode(value, into: &writer)
        case let .stateRequest(value):
            encode(value.cluster, into: &writer)
            writer.u64(value.height)
        case let .stateTransfer(snapshot): writer.raw(SnapshotCodec.encode(snapshot))
        }
    }

    public static func encode(_ statement: StateStatement, into writer: inout ByteWriter) {
        encode(statement.cluster, into: &writer)
        writer.u64(statement.round)
        writer.u64(statement.height)
        writer.digest(statement.ledgerHead)
        writer.digest(statement.localHead)
        writer.digest(statement.stateDigest)
    }

    static func encode(_ value: StateCheckpoint, into writer: inout ByteWriter) {
        encode(value.statement, into: &writer)
        writer.u16(value.replicaIndex)
        writer.signature(value.signature)
    }

    /// The flag in a block's transaction count saying a statement list follows. A block without
    /// statements keeps exactly the encoding (and digest) it had before cross-shard transactions.
    static let blockStatementsFlag: UInt32 = 0x8000_0000

    static func encode(_ id: CrossShardID, into writer: inout ByteWriter) {
        writer.u16(id.coordinator.rawValue)
        writer.u32(id.client.rawValue)
        writer.u64(id.requestID)
    }

    static func encode(_ vote: CrossShardVote, into writer: inout ByteWriter) {
        switch vote {
        case .commit: writer.u8(0)
        case let .abort(reason): writer.u8(reason.rawValue)
        }
    }

    /// A cross-shard statement (what its signers sign, after the domain tag).
    public static func encode(_ statement: ShardStatement, into writer: inout ByteWriter) {
        writer.u16(statement.source.rawValue)
        writer.u16(statement.target.rawValue)
        switch statement.kind {
        case let .prepare(transaction):
            writer.u8(StatementTag.prepare.rawValue)
            encode(transaction, into: &writer)
        case let .vote(id, vote):
            writer.u8(StatementTag.vote.rawValue)
            encode(id, into: &writer)
            encode(vote, into: &writer)
        case let .decision(id, decision):
            writer.u8(StatementTag.decision.rawValue)
            encode(id, into: &writer)
            encode(decision, into: &writer)
        }
    }

    public static func encode(_ proof: ShardStatementProof, into writer: inout ByteWriter) {
        encode(proof.statement, into: &writer)
        encode(proof.cluster, into: &writer)
        writer.u32(UInt32(proof.signatures.count))
        for signer in proof.signatures {
            writer.u16(signer.replicaIndex)
            writer.signature(signer.signature)
        }
    }

    /// A remote view change; `signed: false` leaves out the signature (the bytes that are signed).
    public static func encode(_ value: RemoteViewChange, signed: Bool, into writer: inout ByteWriter) {
        writer.u8(value.phase.rawValue)
        encode(value.target, into: &writer)
        writer.u64(value.round)
        writer.u64(value.attempt)
        encode(value.sender, into: &writer)
        if signed { writer.signature(value.signature) }
    }

    static func encode(_ id: ClusterID, into writer: inout ByteWriter) {
        writer.u16(id.shard.rawValue)
        writer.u16(id.index)
    }

    static func encode(_ id: ReplicaID, into writer: inout ByteWriter) {
        encode(id.cluster, into: &writer)
        writer.u16(id.index)
    }

    static func encode(_ operation: Operation, into writer: inout ByteWriter) {
        switch operation {
        case let .put(key, value):
            writer.u8(OperationTag.put.rawValue)
            writer.blob(key)
            writer.blob(value)
        case let .get(key):
            writer.u8(OperationTag.get.rawValue)
            writer.blob(key)
        case let .add(key, delta):
            writer.u8(OperationTag.add.rawValue)
            writer.blob(key)
            writer.i64(delta)
        case let .transfer(from, to, amount):
            writer.u8(OperationTag.transfer.rawValue)
            writer.blob(from)
            writer.blob(to)
            writer.u64(amount)
        }
    }

    public static func encode(_ transaction: ClientTransaction, into writer: inout ByteWriter) {
        writer.u32(transaction.client.rawValue)
        writer.u64(transaction.requestID)
        encode(transaction.operation, into: &writer)
        writer.signature(transaction.signature)
    }

    public static func encode(_ block: Block, into writer: inout ByteWriter) {
        encode(block.cluster, into: &writer)
        writer.u64(block.round)
        writer.u32(UInt32(block.transactions.count) | (block.statements.isEmpty ? 0 : blockStatementsFlag))
        for transaction in block.transactions { encode(transaction, into: &writer) }
        guard !block.statements.isEmpty else { return }
        writer.u32(UInt32(block.statements.count))
        for proof in block.statements { encode(proof, into: &writer) }
    }

    static func encode(_ value: PrePrepare, into writer: inout ByteWriter) {
        writer.u64(value.view)
        writer.digest(value.digest)
        encode(value.block, into: &writer)
        writer.signature(value.signature)
    }

    static func encode(_ value: Prepare, into writer: inout ByteWriter) {
        encode(value.statement, into: &writer)
        writer.u16(value.replicaIndex)
        writer.signature(value.signature)
    }

    public static func encode(_ statement: CheckpointStatement, into writer: inout ByteWriter) {
        encode(statement.cluster, into: &writer)
        writer.u64(statement.round)
        writer.digest(statement.digest)
    }

    static func encode(_ value: Checkpoint, into writer: inout ByteWriter) {
        encode(value.statement, into: &writer)
        writer.u16(value.replicaIndex)
        writer.signature(value.signature)
    }

    public static func encode(_ value: CheckpointProof, into writer: inout ByteWriter) {
        encode(value.statement, into: &writer)
        writer.u32(UInt32(value.checkpoints.count))
        for checkpoint in value.checkpoints {
            writer.u16(checkpoint.replicaIndex)
            writer.signature(checkpoint.signature)
        }
    }

    public static func encode(_ value: PreparedProof, into writer: inout ByteWriter) {
        encode(value.prePrepare, into: &writer)
        writer.u32(UInt32(value.prepares.count))
        for prepare in value.prepares {
            writer.u16(prepare.replicaIndex)
            writer.signature(prepare.signature)
        }
    }

    /// A view change; `signed: false` leaves out the signature (the bytes that are signed).
    public static func encode(_ value: ViewChange, signed: Bool, into writer: inout ByteWriter) {
        encode(value.cluster, into: &writer)
        writer.u64(value.newView)
        encode(value.checkpoint, into: &writer)
        writer.u32(UInt32(value.prepared.count))
        for proof in value.prepared { encode(proof, into: &writer) }
        writer.u16(value.replicaIndex)
        if signed { writer.signature(value.signature) }
    }

    /// A new view; `signed: false` leaves out the outer signature (the bytes that are signed).
    public static func encode(_ value: NewView, signed: Bool, into writer: inout ByteWriter) {
        encode(value.cluster, into: &writer)
        writer.u64(value.view)
        writer.u32(UInt32(value.viewChanges.count))
        for viewChange in value.viewChanges { encode(viewChange, signed: true, into: &writer) }
        writer.u32(UInt32(value.prePrepares.count))
        for prePrepare in value.prePrepares { encode(prePrepare, into: &writer) }
        if signed { writer.signature(value.signature) }
    }

    static func encode(_ value: BlockRequest, into writer: inout ByteWriter) {
        encode(value.cluster, into: &writer)
        writer.u64(value.fromRound)
        writer.u64(value.toRound)
    }

    public static func encode(_ statement: VoteStatement, into writer: inout ByteWriter) {
        encode(statement.cluster, into: &writer)
        writer.u64(statement.view)
        writer.u64(statement.round)
        writer.digest(statement.digest)
    }

    static func encode(_ value: Commit, into writer: inout ByteWriter) {
        encode(value.statement, into: &writer)
        writer.u16(value.replicaIndex)
        writer.signature(value.signature)
    }

    static func encode(_ value: CommitCertificate, into writer: inout ByteWriter) {
        encode(value.statement, into: &writer)
        writer.u32(UInt32(value.signatures.count))
        for signer in value.signatures {
            writer.u16(signer.replicaIndex)
            writer.signature(signer.signature)
        }
    }

    public static func encode(_ value: CertifiedBlock, into writer: inout ByteWriter) {
        encode(value.block, into: &writer)
        encode(value.certificate, into: &writer)
    }

    static func encode(_ result: ExecutionResult, into writer: inout ByteWriter) {
        switch result {
        case .stored:
            writer.u8(ResultTag.stored.rawValue)
        case let .value(value):
            writer.u8(ResultTag.value.rawValue)
            if let value {
                writer.u8(1)
                writer.blob(value)
            } else {
                writer.u8(0)
            }
        case let .number(number):
            writer.u8(ResultTag.number.rawValue)
            writer.i64(number)
        case let .transferred(fromBalance, toBalance):
            writer.u8(ResultTag.transferred.rawValue)
            writer.i64(fromBalance)
            writer.i64(toBalance)
        case let .refused(refusal):
            writer.u8(ResultTag.refused.rawValue)
            writer.u8(refusal.rawValue)
        case .crossShardCommitted:
            writer.u8(ResultTag.crossShardCommitted.rawValue)
        case let .crossShardAborted(reason):
            writer.u8(ResultTag.crossShardAborted.rawValue)
            writer.u8(reason.rawValue)
        }
    }

    static func encode(_ value: Reply, into writer: inout ByteWriter) {
        writer.u32(value.client.rawValue)
        writer.u64(value.requestID)
        encode(value.replica, into: &writer)
        writer.u64(value.view)
        encode(value.result, into: &writer)
        writer.u64(value.position.round)
        writer.u16(value.position.clusterIndex)
        writer.u64(value.position.height)
    }

    static func encode(_ value: Busy, into writer: inout ByteWriter) {
        writer.u32(value.client.rawValue)
        writer.u64(value.requestID)
        encode(value.replica, into: &writer)
        writer.u64(value.view)
        writer.u32(value.retryAfterTicks)
    }

    // MARK: Decoding

    public static func decodeBody(kind: MessageKind, from reader: inout ByteReader, limits: WireLimits) throws(WireError) -> Message {
        switch kind {
        case .clientTransaction: return .clientTransaction(try decodeTransaction(&reader, limits: limits))
        case .prePrepare: return .prePrepare(try decodePrePrepare(&reader, limits: limits))
        case .prepare: return .prepare(try decodePrepare(&reader))
        case .commit: return .commit(try decodeCommit(&reader))
        case .certifiedBlock: return .certifiedBlock(try decodeCertifiedBlock(&reader, limits: limits))
        case .reply: return .reply(try decodeReply(&reader, limits: limits))
        case .busy: return .busy(try decodeBusy(&reader))
        case .checkpoint: return .checkpoint(try decodeCheckpoint(&reader))
        case .viewChange: return .viewChange(try decodeViewChange(&reader, limits: limits))
        case .newView: return .newView(try decodeNewView(&reader, limits: limits))
        case .blockRequest: return .blockRequest(try decodeBlockRequest(&reader))
        case .remoteViewChange: return .remoteViewChange(try decodeRemoteViewChange(&reader))
        case .shardStatement: return .shardStatement(try decodeStatementProof(&reader, limits: limits))
        case .stateCheckpoint:
            let statement = StateStatement(cluster: try decodeClusterID(&reader), round: try reader.u64("state.round"),
                                           height: try reader.u64("state.height"), ledgerHead: try reader.digest("state.ledger_head"),
                                           localHead: try reader.digest("state.local_head"), stateDigest: try reader.digest("state.digest"))
            return .stateCheckpoint(StateCheckpoint(statement: statement, replicaIndex: try reader.u16("state.replica_index"),
                                                    signature: try reader.signature("state.signature")))
        case .stateRequest:
            return .stateRequest(StateRequest(cluster: try decodeClusterID(&reader), height: try reader.u64("state_request.height")))
        case .stateTransfer:
            // The receiver puts its own cross-shard layout in; the wire does not carry one.
            return .stateTransfer(try SnapshotCodec.decode(&reader, layout: SnapshotCodec.placeholderLayout, limits: limits,
                                                           crossShardOptional: true))
        }
    }

    static func decodeCrossShardID(_ reader: inout ByteReader) throws(WireError) -> CrossShardID {
        let coordinator = ShardID(try reader.u16("cross_shard.coordinator"))
        let client = ClientID(try reader.u32("cross_shard.client"))
        guard client.rawValue < 0x8000_0000 else {
            throw .invalidValue(field: "cross_shard.client", reason: "client id \(client.rawValue) has the top bit set")
        }
        return CrossShardID(coordinator: coordinator, client: client, requestID: try reader.u64("cross_shard.request_id"))
    }

    static func decodeVote(_ reader: inout ByteReader) throws(WireError) -> CrossShardVote {
        let raw = try reader.u8("cross_shard.vote")
        if raw == 0 { return .commit }
        guard let reason = CrossShardAbort(rawValue: raw) else { throw .invalidTag(field: "cross_shard.vote", value: UInt64(raw)) }
        return .abort(reason)
    }

    public static func decodeShardStatement(_ reader: inout ByteReader, limits: WireLimits) throws(WireError) -> ShardStatement {
        let source = ShardID(try reader.u16("shard_statement.source"))
        let target = ShardID(try reader.u16("shard_statement.target"))
        let tag = try reader.u8("shard_statement.kind")
        let kind: ShardStatement.Kind
        switch StatementTag(rawValue: tag) {
        case .prepare: kind = .prepare(try decodeTransaction(&reader, limits: limits))
        case .vote: kind = .vote(try decodeCrossShardID(&reader), try decodeVote(&reader))
        case .decision: kind = .decision(try decodeCrossShardID(&reader), try decodeVote(&reader))
        case nil: throw .invalidTag(field: "shard_statement.kind", value: UInt64(tag))
        }
        return ShardStatement(source: source, target: target, kind: kind)
    }

    public static func decodeStatementProof(_ reader: inout ByteReader, limits: WireLimits) throws(WireError) -> ShardStatementProof {
        let statement = try decodeShardStatement(&reader, limits: limits)
        let cluster = try decodeClusterID(&reader)
        let signers = try decodeSigners(&reader, field: "shard_statement.signatures", limit: limits.maxCertificateSignatures)
        return ShardStatementProof(statement: statement, cluster: cluster, signatures: signers.map {
            CertificateSignature(replicaIndex: $0.0, signature: $0.1)
        })
    }

    /// The smallest encoded statement proof: a vote with no signers.
    static let minimumStatementProofBytes = 2 + 2 + 1 + 14 + 1 + 4 + 4

    static func decodeRemoteViewChange(_ reader: inout ByteReader) throws(WireError) -> RemoteViewChange {
        let raw = try reader.u8("remote_view_change.phase")
        guard let phase = RemoteViewChange.Phase(rawValue: raw) else {
            throw .invalidTag(field: "remote_view_change.phase", value: UInt64(raw))
        }
        return RemoteViewChange(phase: phase, target: try decodeClusterID(&reader), round: try reader.u64("remote_view_change.round"),
                                attempt: try reader.u64("remote_view_change.attempt"), sender: try decodeReplicaID(&reader),
                                signature: try reader.signature("remote_view_change.signature"))
    }

    static func decodeClusterID(_ reader: inout ByteReader) throws(WireError) -> ClusterID {
        ClusterID(shard: ShardID(try reader.u16("cluster.shard")), index: try reader.u16("cluster.index"))
    }

    static func decodeReplicaID(_ reader: inout ByteReader) throws(WireError) -> ReplicaID {
        ReplicaID(cluster: try decodeClusterID(&reader), index: try reader.u16("replica.index"))
    }

    static func decodeOperation(_ reader: inout ByteReader, limits: WireLimits) throws(WireError) -> Operation {
        let tag = try reader.u8("operation.tag")
        switch OperationTag(rawValue: tag) {
        case .put:
            return .put(key: try reader.blob("operation.key", limit: limits.maxKeyBytes),
                        value: try reader.blob("operation.value", limit: limits.maxValueBytes))
        case .get:
            return .get(key: try reader.blob("operation.key", limit: limits.maxKeyBytes))
        case .add:
            return .add(key: try reader.blob("operation.key", limit: limits.maxKeyBytes), delta: try reader.i64("operation.delta"))
        case .transfer:
            return .transfer(from: try reader.blob("operation.from", limit: limits.maxKeyBytes),
                             to: try reader.blob("operation.to", limit: limits.maxKeyBytes),
                             amount: try reader.u64("operation.amount"))
        case nil:
            throw .invalidTag(field: "operation.tag", value: UInt64(tag))
        }
    }

    static func decodeTransaction(_ reader: inout ByteReader, limits: WireLimits) throws(WireError) -> ClientTransaction {
        let client = ClientID(try reader.u32("transaction.client"))
        guard client.rawValue < 0x8000_0000 else {
            throw .invalidValue(field: "transaction.client", reason: "client id \(client.rawValue) has the top bit set")
        }
        let requestID = try reader.u64("transaction.request_id")
        let operation = try decodeOperation(&reader, limits: limits)
        let signature = try reader.signature("transaction.signature")
        return ClientTransaction(client: client, requestID: requestID, operation: operation, signature: signature)
    }

    /// The smallest encoded transaction: client, request id, a get of an empty key, signature.
    static let minimumTransactionBytes = 4 + 8 + 1 + 4 + Signature.byteCount

    public static func decodeBlock(_ reader: inout ByteReader, limits: WireLimits) throws(WireError) -> Block {
        let cluster = try decodeClusterID(&reader)
        let round = try reader.u64("block.round")
        let raw = try reader.u32("block.transactions")
        let count = try reader.checked(count: Int(raw & ~blockStatementsFlag), "block.transactions",
                                       minimumElementBytes: minimumTransactionBytes, limit: limits.maxTransactionsPerBlock)
        var transactions = [ClientTransaction]()
        transactions.reserveCapacity(count)
        for _ in 0..<count { transactions.append(try decodeTransaction(&reader, limits: limits)) }
        guard raw & blockStatementsFlag != 0 else { return Block(cluster: cluster, round: round, transactions: transactions) }
        let statementCount = try reader.count("block.statements", minimumElementBytes: minimumStatementProofBytes,
                                              limit: limits.maxTransactionsPerBlock)
        // Canonical: an empty list is encoded by leaving the flag off, never as a zero count.
        guard statementCount > 0 else { throw .invalidValue(field: "block.statements", reason: "an empty statement list must be left out") }
        var statements: [ShardStatementProof] = []
        statements.reserveCapacity(statementCount)
        for _ in 0..<statementCount { statements.append(try decodeStatementProof(&reader, limits: limits)) }
        return Block(cluster: cluster, round: round, transactions: transactions, statements: statements)
    }

    static func decodePrePrepare(_ reader: inout ByteReader, limits: WireLimits) throws(WireError) -> PrePrepare {
        let view = try reader.u64("preprepare.view")
        let digest = try reader.digest("preprepare.digest")
        let block = try decodeBlock(&reader, limits: limits)
        return PrePrepare(view: view, digest: digest, block: block, signature: try reader.signature("preprepare.signature"))
    }

    static func decodePrepare(_ reader: inout ByteReader) throws(WireError) -> Prepare {
        Prepare(statement: try decodeStatement(&reader), replicaIndex: try reader.u16("prepare.replica_index"),
                signature: try reader.signature("prepare.signature"))
    }

    static func decodeCheckpointStatement(_ reader: inout ByteReader) throws(WireError) -> CheckpointStatement {
        CheckpointStatement(cluster: try decodeClusterID(&reader), round: try reader.u64("checkpoint.round"),
                            digest: try reader.digest("checkpoint.digest"))
    }

    static func decodeCheckpoint(_ reader: inout ByteReader) throws(WireError) -> Checkpoint {
        Checkpoint(statement: try decodeCheckpointStatement(&reader), replicaIndex: try reader.u16("checkpoint.replica_index"),
                   signature: try reader.signature("checkpoint.signature"))
    }

    /// Signers of a proof: (index, signature) pairs with strictly increasing indices.
    static func decodeSigners(_ reader: inout ByteReader, field: StaticString, limit: Int) throws(WireError) -> [(UInt16, Signature)] {
        let count = try reader.count(field, minimumElementBytes: 2 + Signature.byteCount, limit: limit)
        var signers: [(UInt16, Signature)] = []
        signers.reserveCapacity(count)
        for _ in 0..<count {
            let index = try reader.u16(field)
            if let previous = signers.last, index <= previous.0 {
                throw .invalidValue(field: String(describing: field),
                                    reason: "signer indices must be strictly increasing (\(index) after \(previous.0))")
            }
            signers.append((index, try reader.signature(field)))
        }
        return signers
    }

    public static func decodeCheckpointProof(_ reader: inout ByteReader, limits: WireLimits) throws(WireError) -> CheckpointProof {
        let statement = try decodeCheckpointStatement(&reader)
        let signers = try decodeSigners(&reader, field: "checkpoint_proof.signers", limit: limits.maxCertificateSignatures)
        return CheckpointProof(statement: statement, checkpoints: signers.map {
            Checkpoint(statement: statement, replicaIndex: $0.0, signature: $0.1)
        })
    }

    public static func decodePreparedProof(_ reader: inout ByteReader, limits: WireLimits) throws(WireError) -> PreparedProof {
        let prePrepare = try decodePrePrepare(&reader, limits: limits)
        let signers = try decodeSigners(&reader, field: "prepared_proof.prepares", limit: limits.maxCertificateSignatures)
        return PreparedProof(prePrepare: prePrepare, prepares: signers.map {
            Prepare(statement: prePrepare.statement, replicaIndex: $0.0, signature: $0.1)
        })
    }

    /// Smallest prepared proof: an empty no-op PrePrepare and no prepares.
    static let minimumPreparedProofBytes = 8 + 32 + 4 + 8 + 4 + Signature.byteCount + 4

    static func decodeViewChangeBody(_ reader: inout ByteReader, limits: WireLimits) throws(WireError) -> ViewChange {
        let cluster = try decodeClusterID(&reader)
        let newView = try reader.u64("view_change.new_view")
        let checkpoint = try decodeCheckpointProof(&reader, limits: limits)
        let count = try reader.count("view_change.prepared", minimumElementBytes: minimumPreparedProofBytes, limit: limits.maxProofRounds)
        var prepared: [PreparedProof] = []
        prepared.reserveCapacity(count)
        for _ in 0..<count {
            let proof = try decodePreparedProof(&reader, limits: limits)
            if let previous = prepared.last, proof.round <= previous.round {
                throw .invalidValue(field: "view_change.prepared", reason: "rounds must be strictly increasing")
            }
            prepared.append(proof)
        }
        let index = try reader.u16("view_change.replica_index")
        return ViewChange(cluster: cluster, newView: newView, checkpoint: checkpoint, prepared: prepared,
                          replicaIndex: index, signature: try reader.signature("view_change.signature"))
    }

    static func decodeViewChange(_ reader: inout ByteReader, limits: WireLimits) throws(WireError) -> ViewChange {
        try decodeViewChangeBody(&reader, limits: limits)
    }

    static func decodeNewView(_ reader: inout ByteReader, limits: WireLimits) throws(WireError) -> NewView {
        let cluster = try decodeClusterID(&reader)
        let view = try reader.u64("new_view.view")
        let minimumViewChangeBytes = 4 + 8 + (4 + 8 + 32 + 4) + 4 + 2 + Signature.byteCount
        let changes = try reader.count("new_view.view_changes", minimumElementBytes: minimumViewChangeBytes,
                                       limit: limits.maxCertificateSignatures)
        var viewChanges: [ViewChange] = []
        viewChanges.reserveCapacity(changes)
        for _ in 0..<changes {
            let viewChange = try decodeViewChangeBody(&reader, limits: limits)
            if let previous = viewChanges.last, viewChange.replicaIndex <= previous.replicaIndex {
                throw .invalidValue(field: "new_view.view_changes", reason: "senders must be strictly increasing")
            }
            viewChanges.append(viewChange)
        }
        let count = try reader.count("new_view.preprepares", minimumElementBytes: minimumPreparedProofBytes - 4,
                                     limit: limits.maxProofRounds)
        var prePrepares: [PrePrepare] = []
        prePrepares.reserveCapacity(count)
        for _ in 0..<count {
            let prePrepare = try decodePrePrepare(&reader, limits: limits)
            if let previous = prePrepares.last, prePrepare.block.round <= previous.block.round {
                throw .invalidValue(field: "new_view.preprepares", reason: "rounds must be strictly increasing")
            }
            prePrepares.append(prePrepare)
        }
        return NewView(cluster: cluster, view: view, viewChanges: viewChanges, prePrepares: prePrepares,
                       signature: try reader.signature("new_view.signature"))
    }

    static func decodeBlockRequest(_ reader: inout ByteReader) throws(WireError) -> BlockRequest {
        let cluster = try decodeClusterID(&reader)
        let from = try reader.u64("block_request.from_round")
        let to = try reader.u64("block_request.to_round")
        guard from <= to else { throw .invalidValue(field: "block_request", reason: "from_round \(from) is after to_round \(to)") }
        return BlockRequest(cluster: cluster, fromRound: from, toRound: to)
    }

    static func decodeStatement(_ reader: inout ByteReader) throws(WireError) -> VoteStatement {
        VoteStatement(cluster: try decodeClusterID(&reader), view: try reader.u64("statement.view"),
                        round: try reader.u64("statement.round"), digest: try reader.digest("statement.digest"))
    }

    static func decodeCommit(_ reader: inout ByteReader) throws(WireError) -> Commit {
        Commit(statement: try decodeStatement(&reader), replicaIndex: try reader.u16("commit.replica_index"),
               signature: try reader.signature("commit.signature"))
    }

    static func decodeCertificate(_ reader: inout ByteReader, limits: WireLimits) throws(WireError) -> CommitCertificate {
        let statement = try decodeStatement(&reader)
        let signers = try decodeSigners(&reader, field: "certificate.signatures", limit: limits.maxCertificateSignatures)
        return CommitCertificate(statement: statement, signatures: signers.map {
            CertificateSignature(replicaIndex: $0.0, signature: $0.1)
        })
    }

    public static func decodeCertifiedBlock(_ reader: inout ByteReader, limits: WireLimits) throws(WireError) -> CertifiedBlock {
        CertifiedBlock(block: try decodeBlock(&reader, limits: limits),
                       certificate: try decodeCertificate(&reader, limits: limits))
    }

    static func decodeResult(_ reader: inout ByteReader, limits: WireLimits) throws(WireError) -> ExecutionResult {
        let tag = try reader.u8("result.tag")
        switch ResultTag(rawValue: tag) {
        case .stored:
            return .stored
        case .value:
            let present = try reader.u8("result.present")
            switch present {
            case 0: return .value(nil)
            case 1: return .value(try reader.blob("result.value", limit: limits.maxValueBytes))
            default: throw .invalidTag(field: "result.present", value: UInt64(present))
            }
        case .number:
            return .number(try reader.i64("result.number"))
        case .transferred:
            return .transferred(fromBalance: try reader.i64("result.from_balance"), toBalance: try reader.i64("result.to_balance"))
        case .refused:
            let raw = try reader.u8("result.refusal")
            guard let refusal = Refusal(rawValue: raw) else { throw .invalidTag(field: "result.refusal", value: UInt64(raw)) }
            return .refused(refusal)
        case .crossShardCommitted:
            return .crossShardCommitted
        case .crossShardAborted:
            let raw = try reader.u8("result.abort_reason")
            guard let reason = CrossShardAbort(rawValue: raw) else { throw .invalidTag(field: "result.abort_reason", value: UInt64(raw)) }
            return .crossShardAborted(reason)
        case nil:
            throw .invalidTag(field: "result.tag", value: UInt64(tag))
        }
    }

    static func decodeReply(_ reader: inout ByteReader, limits: WireLimits) throws(WireError) -> Reply {
        let client = ClientID(try reader.u32("reply.client"))
        let requestID = try reader.u64("reply.request_id")
        let replica = try decodeReplicaID(&reader)
        let view = try reader.u64("reply.view")
        let result = try decodeResult(&reader, limits: limits)
        let position = LedgerPosition(round: try reader.u64("reply.round"), clusterIndex: try reader.u16("reply.cluster_index"),
                                      height: try reader.u64("reply.height"))
        return Reply(client: client, requestID: requestID, replica: replica, view: view, result: result, position: position)
    }

    static func decodeBusy(_ reader: inout ByteReader) throws(WireError) -> Busy {
        let client = ClientID(try reader.u32("busy.client"))
        let requestID = try reader.u64("busy.request_id")
        let replica = try decodeReplicaID(&reader)
        return Busy(client: client, requestID: requestID, replica: replica, view: try reader.u64("busy.view"),
                    retryAfterTicks: try reader.u32("busy.retry_after_ticks"))
    }
}

enum OperationTag: UInt8 {
    case put = 1, get = 2, add = 3, transfer = 4
}

enum ResultTag: UInt8 {
    case stored = 1, value = 2, number = 3, transferred = 4, refused = 5, crossShardCommitted = 6, crossShardAborted = 7
}

enum StatementTag: UInt8 {
    case prepare = 1, vote = 2, decision = 3
}
