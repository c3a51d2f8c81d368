// The messages of the protocol, as typed values. GeoWire gives each one a binary encoding;
// the table of kinds (who sends what to whom) is in the README.
//
// Keys and values are raw bytes, not Strings: Swift compares Strings by canonical equivalence, so
// two different byte sequences could compare equal and then hash differently on the wire.

/// What a client asks the replicated state machine to do.
public enum Operation: Hashable, Sendable {
    /// Set `key` to `value`.
    case put(key: [UInt8], value: [UInt8])
    /// Read `key`.
    case get(key: [UInt8])
    /// Add `delta` to the integer stored at `key` (absent counts as 0).
    case add(key: [UInt8], delta: Int64)
    /// Move `amount` from account `from` to account `to`; refused without enough balance.
    case transfer(from: [UInt8], to: [UInt8], amount: UInt64)

    /// Every key the operation reads or writes, in a fixed order (the declared read/write set).
    public var keys: [[UInt8]] {
        switch self {
        case let .put(key, _), let .get(key), let .add(key, _): return [key]
        case let .transfer(from, to, _): return [from, to]
        }
    }
}

/// A client's signed request. `(client, requestID)` identifies it; it executes at most once.
public struct ClientTransaction: Hashable, Sendable {
    public var client: ClientID
    /// Increases with each new request of the client.
    public var requestID: UInt64
    public var operation: Operation
    /// Ed25519 over `SigningPayload.transaction(...)` (GeoWire) with the client's key.
    public var signature: Signature
    public init(client: ClientID, requestID: UInt64, operation: Operation, signature: Signature) {
        self.client = client
        self.requestID = requestID
        self.operation = operation
        self.signature = signature
    }
}

/// What one cluster orders in one round: a batch of client transactions and of proven statements
/// of other shards (cross-shard steps, CrossShard.swift), executed in that order; none of either
/// is a no-op block, proposed so that rounds keep moving when a cluster has nothing to order.
/// The view is not part of the block, so a block re-proposed after a view change keeps its digest.
public struct Block: Hashable, Sendable {
    public var cluster: ClusterID
    public var round: UInt64
    public var transactions: [ClientTransaction]
    /// Statements of other shards with their proofs (empty unless the deployment has several shards).
    public var statements: [ShardStatementProof]
    public init(cluster: ClusterID, round: UInt64, transactions: [ClientTransaction], statements: [ShardStatementProof] = []) {
        self.cluster = cluster
        self.round = round
        self.transactions = transactions
        self.statements = statements
    }
    public var isNoOp: Bool { transactions.isEmpty && statements.isEmpty }
}

/// What a PrePrepare, Prepare or Commit signature is bound to: (shard, cluster, view, round, digest).
/// Anyone with the cluster's public keys can check it.
public struct VoteStatement: Hashable, Sendable {
    public var cluster: ClusterID
    public var view: UInt64
    public var round: UInt64
    public var digest: Digest
    public init(cluster: ClusterID, view: UInt64, round: UInt64, digest: Digest) {
        self.cluster = cluster
        self.view = view
        self.round = round
        self.digest = digest
    }
}

/// The primary's signed proposal of `block` (whose digest is `digest`) in `view`.
public struct PrePrepare: Hashable, Sendable {
    public var view: UInt64
    public var digest: Digest
    public var block: Block
    /// The primary's signature over `.prePrepare(statement)`: a PrePrepare is evidence in view changes.
    public var signature: Signature
    public init(view: UInt64, digest: Digest, block: Block, signature: Signature) {
        self.view = view
        self.digest = digest
        self.block = block
        self.signature = signature
    }
    public var statement: VoteStatement {
        VoteStatement(cluster: block.cluster, view: view, round: block.round, digest: digest)
    }
}

/// A backup's signed acceptance of the primary's proposal. Signed (not MACed) because n-f-1 of them
/// with the PrePrepare form the prepared proof a view change carries to other replicas.
public struct Prepare: Hashable, Sendable {
    public var statement: VoteStatement
    public var replicaIndex: UInt16
    public var signature: Signature
    public init(statement: VoteStatement, replicaIndex: UInt16, signature: Signature) {
        self.statement = statement
        self.replicaIndex = replicaIndex
        self.signature = signature
    }
}

/// A replica's signed Commit. n - f of them, from distinct replicas, make the commit certificate.
public struct Commit: Hashable, Sendable {
    public var statement: VoteStatement
    /// Index of the signer inside `statement.cluster`.
    public var replicaIndex: UInt16
    public var signature: Signature
    public init(statement: VoteStatement, replicaIndex: UInt16, signature: Signature) {
        self.statement = statement
        self.replicaIndex = replicaIndex
        self.signature = signature
    }
    public var replica: ReplicaID { ReplicaID(cluster: statement.cluster, index: replicaIndex) }
}

/// What a checkpoint vouches for: after executing round `round` of its cluster, the chain of the
/// cluster's committed block digests has head `digest`.
public struct CheckpointStatement: Hashable, Sendable {
    public var cluster: ClusterID
    public var round: UInt64
    public var digest: Digest
    public init(cluster: ClusterID, round: UInt64, digest: Digest) {
        self.cluster = cluster
        self.round = round
        self.digest = digest
    }
}

/// A replica's signed checkpoint; n - f matching ones make it stable.
public struct Checkpoint: Hashable, Sendable {
    public var statement: CheckpointStatement
    public var replicaIndex: UInt16
    public var signature: Signature
    public init(statement: CheckpointStatement, replicaIndex: UInt16, signature: Signature) {
        self.statement = statement
        self.replicaIndex = replicaIndex
        self.signature = signature
    }
}

/// A stable checkpoint with its proof: n - f matching signed checkpoints (none for the genesis, round 0).
public struct CheckpointProof: Hashable, Sendable {
    public var statement: CheckpointStatement
    public var checkpoints: [Checkpoint]
    public init(statement: CheckpointStatement, checkpoints: [Checkpoint]) {
        self.statement = statement
        self.checkpoints = checkpoints
    }
    public static func genesis(_ cluster: ClusterID) -> CheckpointProof {
        CheckpointProof(statement: CheckpointStatement(cluster: cluster, round: 0, digest: .zero), checkpoints: [])
    }
}

/// What a state checkpoint vouches for: after executing every round up to `round` (height
/// `height`), the shard ledger's head is `ledgerHead`, the digest of the executed state (its
/// snapshot's canonical encoding: key-value state, clients' last replies, cross-shard locks and
/// transactions in progress) is `stateDigest`, and the cluster's own chain head is `localHead`.
/// Replicas sign one at every snapshot round; f + 1 matching ones (a correct replica among them)
/// let a replica that lost or lacks the history install a snapshot a peer serves.
public struct StateStatement: Hashable, Sendable {
    public var cluster: ClusterID
    public var round: UInt64
    public var height: UInt64
    public var ledgerHead: Digest
    public var localHead: Digest
    public var stateDigest: Digest
    public init(cluster: ClusterID, round: UInt64, height: UInt64, ledgerHead: Digest, localHead: Digest, stateDigest: Digest) {
        self.cluster = cluster
        self.round = round
        self.height = height
        self.ledgerHead = ledgerHead
        self.localHead = localHead
        self.stateDigest = stateDigest
    }
}

/// A replica's signed state checkpoint.
public struct StateCheckpoint: Hashable, Sendable {
    public var statement: StateStatement
    public var replicaIndex: UInt16
    public var signature: Signature
    public init(statement: StateStatement, replicaIndex: UInt16, signature: Signature) {
        self.statement = statement
        self.replicaIndex = replicaIndex
        self.signature = signature
    }
}

/// State transfer, asked of a peer of the same cluster: with `height` 0, "send me your latest
/// state checkpoint"; otherwise "send me your snapshot at this height".
public struct StateRequest: Hashable, Sendable {
    public var cluster: ClusterID
    public var height: UInt64
    public init(cluster: ClusterID, height: UInt64) {
        self.cluster = cluster
        self.height = height
    }
}

/// Evidence that a round was prepared: the PrePrepare and n - f - 1 matching Prepares of distinct backups.
public struct PreparedProof: Hashable, Sendable {
    public var prePrepare: PrePrepare
    public var prepares: [Prepare]
    public init(prePrepare: PrePrepare, prepares: [Prepare]) {
        self.prePrepare = prePrepare
        self.prepares = prepares
    }
    public var round: UInt64 { prePrepare.block.round }
    public var view: UInt64 { prePrepare.view }
}

/// A replica's request to move its cluster to `newView`, with what it knows: its stable checkpoint
/// and every round above it that it prepared.
public struct ViewChange: Hashable, Sendable {
    public var cluster: ClusterID
    public var newView: UInt64
    public var checkpoint: CheckpointProof
    public var prepared: [PreparedProof]
    public var replicaIndex: UInt16
    /// Over the whole message but this field (`.viewChange(self)`).
    public var signature: Signature
    public init(cluster: ClusterID, newView: UInt64, checkpoint: CheckpointProof, prepared: [PreparedProof],
                replicaIndex: UInt16, signature: Signature) {
        self.cluster = cluster
        self.newView = newView
        self.checkpoint = checkpoint
        self.prepared = prepared
        self.replicaIndex = replicaIndex
        self.signature = signature
    }
}

/// The new primary's announcement of `view`: n - f ViewChanges and the PrePrepares they imply
/// (re-proposals of prepared blocks, no-op blocks for gaps). Replicas check it by recomputing.
public struct NewView: Hashable, Sendable {
    public var cluster: ClusterID
    public var view: UInt64
    public var viewChanges: [ViewChange]
    public var prePrepares: [PrePrepare]
    /// Over the whole message but this field (`.newView(self)`).
    public var signature: Signature
    public init(cluster: ClusterID, view: UInt64, viewChanges: [ViewChange], prePrepares: [PrePrepare], signature: Signature) {
        self.cluster = cluster
        self.view = view
        self.viewChanges = viewChanges
        self.prePrepares = prePrepares
        self.signature = signature
    }
}

/// A lagging replica's request for the certified blocks of `cluster` in `fromRound...toRound`.
/// Answered with CertifiedBlock messages, which the requester checks by their certificates.
public struct BlockRequest: Hashable, Sendable {
    public var cluster: ClusterID
    public var fromRound: UInt64
    public var toRound: UInt64
    public init(cluster: ClusterID, fromRound: UInt64, toRound: UInt64) {
        self.cluster = cluster
        self.fromRound = fromRound
        self.toRound = toRound
    }
}

/// Remote view change (GeoBFT). `detect` (DRvc) goes to the sender's own cluster: "cluster
/// `target`'s block of `round` is late"; with n - f of them, replica i sends `request` (Rvc) to
/// replica i of `target`, which forwards it inside its cluster. `attempt` counts the remote view
/// changes asked of `target`, so duplicates and stale requests are harmless. Signed by `sender`,
/// because a forwarded Rvc must still prove which remote replica asked.
public struct RemoteViewChange: Hashable, Sendable {
    public enum Phase: UInt8, Hashable, Sendable { case detect = 1, request = 2 }
    public var phase: Phase
    public var target: ClusterID
    public var round: UInt64
    public var attempt: UInt64
    public var sender: ReplicaID
    /// Over the whole message but this field (`.remoteViewChange(self)`).
    public var signature: Signature
    public init(phase: Phase, target: ClusterID, round: UInt64, attempt: UInt64, sender: ReplicaID, signature: Signature) {
        self.phase = phase
        self.target = target
        self.round = round
        self.attempt = attempt
        self.sender = sender
        self.signature = signature
    }
}

/// One signer of a certificate.
public struct CertificateSignature: Hashable, Sendable {
    public var replicaIndex: UInt16
    public var signature: Signature
    public init(replicaIndex: UInt16, signature: Signature) {
        self.replicaIndex = replicaIndex
        self.signature = signature
    }
}

/// n - f Commit signatures of distinct replicas of one cluster over one statement.
/// Checking it (threshold, distinct members, signatures) is the receiver's job; see GeoCrypto.
public struct CommitCertificate: Hashable, Sendable {
    public var statement: VoteStatement
    public var signatures: [CertificateSignature]
    public init(statement: VoteStatement, signatures: [CertificateSignature]) {
        self.statement = statement
        self.signatures = signatures
    }
}

/// A block with its commit certificate: what clusters of a shard share with each other.
public struct CertifiedBlock: Hashable, Sendable {
    public var block: Block
    public var certificate: CommitCertificate
    public init(block: Block, certificate: CommitCertificate) {
        self.block = block
        self.certificate = certificate
    }
}

/// Why the state machine refused an operation (deterministically, on every replica).
public enum Refusal: UInt8, Hashable, Sendable, CaseIterable {
    case insufficientBalance = 1
    case overflow = 2
    case notANumber = 3
    case sameAccount = 4
    /// A key is locked by a cross-shard transaction in progress (CrossShard.swift).
    case locked = 5
    /// The transaction's first key is not on this shard (its coordinator is another shard).
    case wrongShard = 6
}

/// What executing an operation produced.
public enum ExecutionResult: Hashable, Sendable {
    /// A put took effect.
    case stored
    /// A get: the value, or nil when the key is absent.
    case value([UInt8]?)
    /// An add: the new number.
    case number(Int64)
    /// A transfer: the balances after it.
    case transferred(fromBalance: Int64, toBalance: Int64)
    case refused(Refusal)
    /// A cross-shard transaction committed on all of its shards (the coordinator's answer).
    case crossShardCommitted
    /// A cross-shard transaction aborted on all of its shards, and why.
    case crossShardAborted(CrossShardAbort)
}

/// Where a transaction landed in its shard ledger.
public struct LedgerPosition: Hashable, Sendable {
    public var round: UInt64
    /// The proposing cluster's index in the shard: blocks of a round execute in cluster order.
    public var clusterIndex: UInt16
    /// The shard ledger height once this block was appended.
    public var height: UInt64
    public init(round: UInt64, clusterIndex: UInt16, height: UInt64) {
        self.round = round
        self.clusterIndex = clusterIndex
        self.height = height
    }
}

/// A home-cluster replica's answer to a client; the client accepts f + 1 matching ones.
public struct Reply: Hashable, Sendable {
    public var client: ClientID
    public var requestID: UInt64
    public var replica: ReplicaID
    public var view: UInt64
    public var result: ExecutionResult
    public var position: LedgerPosition
    public init(client: ClientID, requestID: UInt64, replica: ReplicaID, view: UInt64,
                result: ExecutionResult, position: LedgerPosition) {
        self.client = client
        self.requestID = requestID
        self.replica = replica
        self.view = view
        self.result = result
        self.position = position
    }
}

/// A replica's refusal of a client request it has no room for (admission control, Intake.swift):
/// the client backs off and sends it again after about `retryAfterTicks` (topology ticks). Like a
/// Reply it is not signed: it travels on the client's authenticated channel (TLS, whose records
/// carry a MAC), and a client gives a primary that keeps saying busy only a fair number of
/// chances before it asks every replica (ClientCore).
public struct Busy: Hashable, Sendable {
    public var client: ClientID
    public var requestID: UInt64
    public var replica: ReplicaID
    public var view: UInt64
    public var retryAfterTicks: UInt32
    public init(client: ClientID, requestID: UInt64, replica: ReplicaID, view: UInt64, retryAfterTicks: UInt32) {
        self.client = client
        self.requestID = requestID
        self.replica = replica
        self.view = view
        self.retryAfterTicks = retryAfterTicks
    }
}

/// Every message that travels between nodes.
public enum Message: Hashable, Sendable {
    case clientTransaction(ClientTransaction)
    case prePrepare(PrePrepare)
    case prepare(Prepare)
    case commit(Commit)
    case certifiedBlock(CertifiedBlock)
    case reply(Reply)
    case busy(Busy)
    case checkpoint(Checkpoint)
    case viewChange(ViewChange)
    case newView(NewView)
    case blockRequest(BlockRequest)
    case remoteViewChange(RemoteViewChange)
    /// A cross-shard statement with one signature (replica to replica) or a proof (to a primary).
    case shardStatement(ShardStatementProof)
    case stateCheckpoint(StateCheckpoint)
    case stateRequest(StateRequest)
    /// A snapshot a peer serves for state transfer; checked against f + 1 state checkpoints.
    case stateTransfer(LedgerSnapshot)
}

extension Message {
    /// The client transactions this message carries whose client signatures a replica checks
    /// before acting on it: the one place that says which messages carry them (the daemon's
    /// parallel pre-verification reads it; the core checks each of these when it handles the
    /// message).
    public var clientTransactions: [ClientTransaction] {
        switch self {
        case let .clientTransaction(transaction): return [transaction]
        case let .prePrepare(prePrepare): return prePrepare.block.transactions
        case let .newView(newView): return newView.prePrepares.flatMap(\.block.transactions)
        default: return []
        }
    }
}

/// Everything that carries a signature made by a replica, as it is signed.
public enum SignedStatement: Hashable, Sendable {
    case prePrepare(VoteStatement)
    case prepare(VoteStatement)
    case commit(VoteStatement)
    case checkpoint(CheckpointStatement)
    /// The view change with its signature field ignored.
    case viewChange(ViewChange)
    /// The new view with its signature field ignored.
    case newView(NewView)
    /// The remote view change message with its signature field ignored.
    case remoteViewChange(RemoteViewChange)
    /// A cross-shard statement its shard produced at execution.
    case shardStatement(ShardStatement)
    case stateCheckpoint(StateStatement)
}
