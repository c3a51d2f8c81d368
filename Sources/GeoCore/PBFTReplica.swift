// One replica of a PBFT cluster (Castro and Liskov), as a value that steps.
//
// `step(input) -> [Effect]` is the only way in. The replica orders its cluster's client
// transactions into blocks (PrePrepare, Prepare, signed Commit), assembles a commit certificate of
// n - f Commits, delivers certified blocks in round order to the shard ledger, checkpoints every K
// rounds, changes view when the primary stops making progress, and fetches certified blocks it
// missed. Timing (when to give up on a primary) lives in `tick` and the progress timer; the safety
// rules (what may be signed, what counts as prepared or committed, what a new view must re-propose)
// live in the message handlers and in NewViewPlan.

public struct PBFTReplica: Sendable {
    public enum Status: Hashable, Sendable {
        case normal
        /// Waiting for the NewView of this view.
        case changingView(to: UInt64)
    }

    public let configuration: PBFTConfiguration
    let suite: any CryptoSuite

    public private(set) var view: UInt64 = 0
    public private(set) var status: Status = .normal
    /// The latest stable checkpoint (n - f matching checkpoints).
    public var stable: CheckpointProof { agreement.stable }
    /// The last round of this cluster delivered to the ledger.
    public var lastDelivered: UInt64 { execution.lastDelivered }
    /// Head of the chain of this cluster's delivered block digests (what checkpoints vouch for).
    public var localHead: Digest { execution.localHead }
    /// The shard ledger this replica executes.
    public var ledger: ShardLedger { execution.ledger }
    /// Ticks since the replica started: the clock of its timer table.
    public var now: UInt64 { timers.now }
    /// Every timer of the replica and its sub-machines (TimerTable.swift).
    var timers = TimerTable()
    /// Counts of ignored inputs by reason (the simulator's report reads them; the shell counts
    /// the `rejected` events instead).
    public private(set) var rejections: [Rejection: Int] = [:]
    /// The rejections of the step under way, told as events at its end.
    var rejectionsThisStep: [Rejection] = []
    public var viewChangesStarted: Int { viewChanger.started }
    /// Why this replica started each of those (joining others counts as `.joined`).
    public var viewChangeReasons: [ViewChangeReason: Int] { viewChanger.reasons }
    public var lastViewChangeReason: ViewChangeReason? { viewChanger.lastReason }

    /// PBFT's normal case and checkpoints: slots, signing records, the stable checkpoint (Agreement.swift).
    var agreement: Agreement
    /// Delivery of this cluster's blocks and execution of the shard ledger (Execution.swift).
    var execution: Execution
    /// What is known of the cluster's progress, blocks fetched and served (CatchUp.swift).
    var catchUp: CatchUp
    /// PBFT's view change: ViewChanges, claimed views, the timeout (ViewChange.swift).
    var viewChanger: ViewChanger

    /// Client requests: the primary's queue, what it proposed, what was ordered, the request timers (Intake.swift).
    var intake: Intake

    /// GeoBFT's global sharing and remote view change (GlobalSharing.swift).
    var sharing: GlobalSharing

    /// Cross-shard statements: proofs assembled, watched, queued and re-sent (StatementRelay.swift).
    var relay: StatementRelay

    /// State checkpoints and state transfer (StateTransfer.swift).
    var transfer: StateTransfer
    var replies: ReplyDuty  // who answers a client: f + 1, or all after a resend (ReplyDuty.swift)
    /// Snapshots installed by state transfer.
    public var snapshotsInstalled: Int { transfer.installed }
    var knownCommitted: UInt64 { catchUp.knownCommitted }

    /// A fresh replica.
    public init(configuration: PBFTConfiguration, suite: any CryptoSuite) {
        self.configuration = configuration
        self.suite = suite
        agreement = Agreement(configuration: configuration, suite: suite)
        intake = Intake(limit: configuration.pendingLimit, admission: Admission(configuration: configuration))
        execution = Execution(configuration: configuration, suite: suite)
        catchUp = CatchUp(configuration: configuration, suite: suite)
        relay = StatementRelay(configuration: configuration, suite: suite)
        transfer = StateTransfer(configuration: configuration, suite: suite)
        sharing = GlobalSharing(configuration: configuration, suite: suite)
        viewChanger = ViewChanger(configuration: configuration, suite: suite)
        replies = ReplyDuty(quorum: configuration.quorum, everyoneAnswersAlways: configuration.everyoneReplies)
        // Paces that count from the replica's start, not from a first event.
        timers.start(.heartbeat)
        timers.start(.statementRetransmit)
    }

    /// A replica restarted from what it had made durable before it crashed (see `recover`).
    public init(configuration: PBFTConfiguration, suite: any CryptoSuite, recovering durable: DurableState,
                snapshot: LedgerSnapshot? = nil, storedBlocks: [CertifiedBlock] = []) {
        self = Self.recover(configuration: configuration, suite: suite, durable: durable, snapshot: snapshot,
                            storedBlocks: storedBlocks).replica
    }

    /// A replica restarted from what it had made durable: the latest snapshot of its ledger, the
    /// blocks its block store holds after it (`storedBlocks`, in ledger order), and its log's
    /// records. The blocks are executed again without replies. Returns, with the replica, the
    /// blocks executed from the log's records rather than from `storedBlocks`: the shell appends
    /// them to its block store (a crash may have come between the log's sync and the store's).
    public static func recover(configuration: PBFTConfiguration, suite: any CryptoSuite, durable: DurableState,
                               snapshot: LedgerSnapshot?, storedBlocks: [CertifiedBlock]) -> (replica: PBFTReplica, executed: [ExecutedBlock]) {
        var replica = PBFTReplica(configuration: configuration, suite: suite)
        let executed = replica.restore(durable, snapshot: snapshot, storedBlocks: storedBlocks)
        return (replica, executed)
    }

    private mutating func restore(_ durable: DurableState, snapshot: LedgerSnapshot?, storedBlocks: [CertifiedBlock]) -> [ExecutedBlock] {
        view = durable.view
        status = durable.targetView > durable.view ? .changingView(to: durable.targetView) : .normal
        agreement.signed = durable.signed
        if let snapshot, snapshot.shard == cluster.shard {
            var ignored: [Effect] = []
            transfer.sign(snapshot, effects: &ignored)
        }
        execution.restore(snapshot: snapshot, stored: storedBlocks, logged: durable.delivered)
        catchUp.noteCommitted(lastDelivered)
        for block in durable.remote where block.block.round >= ledger.round {
            sharing.restore(block)
            execution.addRemote(block)
        }
        let executed = execution.finishRestore()
        if let floor = execution.forgetFloor { sharing.forget(below: floor, limit: 2 * Int(configuration.blocksInMemoryRounds)) }
        // The stable checkpoint may be above what was delivered (adopted from peers, blocks still
        // to fetch): keep it anyway, since the signing records below it were dropped with it.
        if let proof = durable.stable {
            agreement.stable = proof
            catchUp.noteCommitted(proof.statement.round)
        }
        for (round, proof) in durable.prepared where round > stable.statement.round {
            agreement.slots[round, default: Slot()].prepared = proof
            agreement.slots[round, default: Slot()].blocks[proof.prePrepare.digest] = proof.prePrepare.block
        }
        intake.nextProposalRound = max(lastDelivered, stable.statement.round) + 1
        if case .changingView = status { timers.setDeadline(.viewChange, at: configuration.viewTimeoutTicks) }
        return executed
    }

    /// Certified blocks the core holds for serving and re-sharing (bounded: `blocksInMemoryRounds`).
    public var blocksInMemory: Int { execution.delivered.count + sharing.blocksInMemory }

    public var isPrimary: Bool { configuration.primary(of: view) == configuration.index }
    public var primary: ReplicaID { configuration.replica(configuration.primary(of: view)) }
    var quorum: Quorum { configuration.quorum }
    var window: UInt64 { configuration.window }
    var cluster: ClusterID { configuration.cluster }

    // MARK: Stepping

    public mutating func step(_ input: Input) -> [Effect] {
        var effects: [Effect] = []
        let rejectionsBefore = rejectionsThisStep.count
        switch input {
        case let .client(transaction):
            onClient(transaction, forwarded: false, effects: &effects)
        case let .message(message, from):
            onMessage(message, from: from, effects: &effects)
        case .tick:
            onTick(effects: &effects)
        }
        checkInvariants()
        // What was ignored, told to the shell (which counts it) after what was done.
        if rejectionsThisStep.count > rejectionsBefore {
            for reason in rejectionsThisStep { effects.append(.event(.rejected(reason))) }
        }
        rejectionsThisStep.removeAll(keepingCapacity: true)
        return effects
    }

    mutating func reject(_ reason: Rejection) {
        rejections[reason, default: 0] += 1
        rejectionsThisStep.append(reason)
    }

    /// Cheap invariants, checked after every step.
    func checkInvariants() {
        precondition(ledger.round <= lastDelivered + 1, "the ledger never executes a round this cluster has not delivered")
        precondition(agreement.slots.keys.allSatisfy { $0 > stable.statement.round }, "no slot at or below the stable checkpoint")
        precondition(catchUp.fetchedAbove(lastDelivered), "fetched blocks wait above the delivered prefix")
    }

    mutating func onMessage(_ message: Message, from: ReplicaID, effects: inout [Effect]) {
        do throws(Rejection) {
            if case let .shardStatement(proof) = message {
                if let proven = try relay.receive(proof, from: from, now: now, ledger: ledger, effects: &effects) {
                    self.proven(proven, effects: &effects)
                }
            } else if from.cluster != cluster {
                // Other clusters of the shard talk to us only through global sharing.
                try onRemoteMessage(message, from: from, effects: &effects)
            } else {
                guard Int(from.index) < quorum.n, from.index != configuration.index else { throw Rejection.wrongCluster }
                try onClusterMessage(message, from: from, effects: &effects)
            }
        } catch {
            reject(error)
        }
    }

    /// A message from a peer of our own cluster.
    mutating func onClusterMessage(_ message: Message, from: ReplicaID, effects: inout [Effect]) throws(Rejection) {
        switch message {
        case let .clientTransaction(transaction): onClient(transaction, forwarded: true, effects: &effects, from: from)
        case let .busy(busy): try intake.refusedByPrimary(busy, from: from, primary: primary, view: status == .normal ? view : nil)
        case let .prePrepare(prePrepare): try onPrePrepare(prePrepare, from: from, effects: &effects)
        case let .prepare(prepare): try onPrepare(prepare, from: from, effects: &effects)
        case let .commit(commit): try onCommit(commit, from: from, effects: &effects)
        case let .checkpoint(checkpoint):
            if try agreement.check(checkpoint, from: from) { recordCheckpoint(checkpoint, effects: &effects) }
        case let .viewChange(viewChange): try onViewChange(viewChange, from: from, effects: &effects)
        case let .newView(newView): onNewView(newView, from: from, effects: &effects)
        case let .certifiedBlock(block): onCertifiedBlock(block, effects: &effects)
        case let .blockRequest(request): onBlockRequest(request, from: from, effects: &effects)
        case let .remoteViewChange(message) where message.phase == .detect:
            try sharing.onDetection(message, from: from, effects: &effects)
        case let .remoteViewChange(message):
            remoteRequested(try sharing.onRequest(message, forwarded: true, lastDelivered: lastDelivered, effects: &effects),
                            effects: &effects)
        case let .stateCheckpoint(checkpoint):
            transferred(try transfer.onCheckpoint(checkpoint, from: from, position: position, timers: &timers, effects: &effects), effects: &effects)
        case let .stateRequest(request): try transfer.onRequest(request, from: from, position: position, timers: &timers, effects: &effects)
        case let .stateTransfer(snapshot):
            transferred(try transfer.onSnapshot(snapshot, from: from, position: position, timers: &timers, effects: &effects), effects: &effects)
        case .reply, .shardStatement: throw .unexpected
        }
    }

    // MARK: Global sharing

    /// A message from a replica of another cluster: a shared block, or a remote view change request.
    mutating func onRemoteMessage(_ message: Message, from: ReplicaID, effects: inout [Effect]) throws(Rejection) {
        guard from.cluster.shard == cluster.shard, Int(from.cluster.index) < configuration.clustersInShard,
              Int(from.index) < configuration.shardQuorums[Int(from.cluster.index)].n else { throw .wrongCluster }
        switch message {
        case let .certifiedBlock(block) where block.block.cluster == from.cluster:
            try acceptRemote(block, forward: true, effects: &effects)
        case let .remoteViewChange(request) where request.phase == .request && request.sender == from:
            remoteRequested(try sharing.onRequest(request, forwarded: false, lastDelivered: lastDelivered, effects: &effects),
                            effects: &effects)
        case let .blockRequest(request) where request.cluster == cluster:
            // A replica of another cluster missing our blocks: serve them, certificates and all.
            onBlockRequest(request, from: from, effects: &effects)
        default:
            throw .wrongCluster
        }
    }

    /// A remote cluster's certified block: once checked and new, the ledger takes it.
    mutating func acceptRemote(_ certified: CertifiedBlock, forward: Bool, effects: inout [Effect]) throws(Rejection) {
        guard try sharing.accept(certified, forward: forward, ledger: ledger, effects: &effects) else { return }
        execution.addRemote(certified)
        executeLedger(effects: &effects)
        propose(partial: false, effects: &effects)
    }

    /// f + 1 replicas of a remote cluster asked for a view change (`honored`): change view.
    mutating func remoteRequested(_ honored: Bool, effects: inout [Effect]) {
        guard honored else { return }
        // One view change answers every asking cluster, since the new primary re-shares to all of
        // them. Requests that arrive while a view change is under way, or soon after one started or
        // ended (for whatever reason: a local timeout, peers we joined, another cluster's request),
        // are the same complaint: honouring each with a view change of its own moved a cluster
        // several views at once, back onto the faulty primary whenever the count was a multiple of
        // n (the simulator found it on geo-4x4: seeds 1321 and 1740). A remote cluster asks again
        // only a whole remote timeout later, past this grace, if the new primary did not deliver.
        if case .changingView = status { return }
        if let since = timers.elapsed(.sinceViewChange), since < configuration.remoteTimeoutTicks / 2 {
            if isPrimary { sharing.reshare(lastDelivered: lastDelivered, delivered: execution.delivered, effects: &effects) }
            return
        }
        startViewChange(to: view + 1, reason: .remoteRequest, effects: &effects)
    }

    // MARK: State transfer

    /// Where the replica stands, for state transfer.
    var position: ReplicaPosition {
        ReplicaPosition(ledgerRound: ledger.round, ledgerHeight: ledger.height, committed: max(knownCommitted, stable.statement.round),
                        lastDelivered: lastDelivered)
    }

    mutating func transferred(_ outcome: TransferOutcome, effects: inout [Effect]) {
        switch outcome {
        case .none: break
        case let .install(snapshot): install(snapshot, effects: &effects)
        case .refused: reject(.invalidSnapshot)
        }
    }

    /// Replaces the ledger's state with a checked snapshot and goes on from the round after it.
    mutating func install(_ snapshot: LedgerSnapshot, effects: inout [Effect]) {
        // Blocks above the snapshot this replica already holds go back to the new ledger.
        guard execution.install(snapshot, remote: sharing.remoteBlocks) else { return }
        catchUp.noteCommitted(snapshot.round)
        catchUp.dropFetched(through: lastDelivered)
        // Requests executed in the installed state are done.
        intake.installed(lastExecution: ledger.lastExecution)
        if intake.nextProposalRound <= snapshot.round { intake.nextProposalRound = snapshot.round + 1 }
        effects.append(.installedSnapshot(snapshot))
        executeLedger(effects: &effects)
        deliverReady(effects: &effects)
        if isBehind { requestBlocks(effects: &effects) }
    }

    // MARK: Cross-shard statements

    /// A proven statement: the primary queues it for a block; everyone watches it until it is ordered.
    mutating func proven(_ proof: ShardStatementProof, effects: inout [Effect]) {
        guard relay.watch(proof, now: now) else { return }
        armProgressTimer()
        guard status == .normal else { return }
        if isPrimary {
            guard relay.queue(proof) else { return }
            timers.startIfIdle(.batch)
            propose(partial: false, effects: &effects)
        } else {
            effects.append(.send(.shardStatement(proof), to: primary))
        }
    }

    // MARK: Client requests

    mutating func onClient(_ transaction: ClientTransaction, forwarded: Bool, effects: inout [Effect], from: ReplicaID? = nil) {
        let key = RequestKey(transaction)
        // Copies of a request this replica holds already (a client's resend to every replica and
        // the backups' forwards of it: up to n copies at the primary) are dropped before their
        // signature is checked: whatever a copy carries, the replica keeps the version it has,
        // so checking each cost a primary already behind n verifications per resend for nothing.
        // (A backup acts on no forward, and on a client's copy only once.)
        let leading = status == .normal && isPrimary
        if !forwarded && !isPrimary { replies.clientRetransmitted(transaction) }
        if intake.holds(key, asPrimary: leading, forwarded: forwarded) { return }
        let last = ledger.lastExecution[transaction.client]
        let executed = last.map { transaction.requestID <= $0.requestID } ?? false
        // No room (Admission.swift): refuse before the signature check, which is what a busy
        // replica cannot afford for requests it will not take.
        if !executed, status == .normal, let retryAfter = intake.refusal(asPrimary: leading, forwarded: forwarded, now: now) {
            reject(.busy)
            let busy = Busy(client: transaction.client, requestID: transaction.requestID, replica: configuration.me, view: view, retryAfterTicks: retryAfter)
            effects.append(.busy(busy))
            // The backup that forwarded it stops watching it (Intake.refusedByPrimary): the client retries.
            if let from, leading { effects.append(.send(.busy(busy), to: from)) }
            return
        }
        guard suite.isValid(transaction) else {
            reject(.badClientSignature)
            return
        }
        if executed, let last {
            // Executed already: resend the cached reply (only the latest one is kept).
            if last.requestID == transaction.requestID && !forwarded, let result = last.result {
                replies.clientRetransmitted(transaction)
                effects.append(.reply(Reply(to: transaction, from: configuration.me, view: view, result: result, position: last.position)))
            }
            return
        }
        do throws(Rejection) {
            if leading {
                try intake.enqueue(transaction, now: now)
                timers.startIfIdle(.batch)
                propose(partial: false, effects: &effects)
            } else if !forwarded {
                // A client that timed out sends to every replica: pass it to the primary and watch it
                // (`holds` above: unless our cluster already ordered it and it only waits for execution).
                try intake.watch(transaction, now: now)
                if status == .normal { effects.append(.send(.clientTransaction(transaction), to: primary)) }
                armProgressTimer()
            }
        } catch {
            reject(error)
        }
    }

    /// Primary: turns pending transactions into blocks while the window allows. A partial batch
    /// goes out only when `partial` (on a tick: the batch delay has passed).
    mutating func propose(partial: Bool, heartbeat: Bool = false, effects: inout [Effect]) {
        guard status == .normal, isPrimary else { return }
        var heartbeat = heartbeat
        // Never more than a window above the stable checkpoint, nor above the shard ledger (so a
        // cluster cannot run further ahead of the slowest cluster than its peers keep blocks for).
        while intake.nextProposalRound <= stable.statement.round + window, intake.nextProposalRound <= ledger.round + window {
            let round = intake.nextProposalRound
            // Another cluster reached this round: propose, if need be a no-op block, so that the
            // shard's rounds never wait for us.
            let needed = sharing.remoteHighestRound >= round || heartbeat
            heartbeat = false
            let inFlight = round > lastDelivered + 1 ? round - 1 - lastDelivered : 0
            let partialAllowed = partial && inFlight < configuration.partialBatchesInFlight
            let nothingWaits = intake.queued == 0 && relay.pending.isEmpty
            guard intake.queued >= configuration.batchSize || (partialAllowed && !nothingWaits) || needed else { break }
            let transactions = intake.takeBatch(configuration.batchSize)
            let statements = relay.takeBatch()
            let block = Block(cluster: cluster, round: round, transactions: transactions, statements: statements)
            intake.nextProposalRound += 1
            sendPrePrepare(block, effects: &effects)
        }
        if intake.queued == 0 && relay.pending.isEmpty { timers.cancel(.batch) } else { timers.startIfIdle(.batch) }
    }

    /// Signs and broadcasts a PrePrepare of the current view, and takes it as accepted.
    mutating func sendPrePrepare(_ block: Block, effects: inout [Effect]) {
        guard let prePrepare = agreement.signPrePrepare(block, view: view, effects: &effects) else { return }
        effects.append(.broadcast(.prePrepare(prePrepare)))
        timers.start(.heartbeat)
        agreement.accept(prePrepare)
        armProgressTimer()
        checkPrepared(block.round, effects: &effects)
    }

    // MARK: Normal case (Agreement.swift decides; the composer delivers)

    mutating func onPrePrepare(_ prePrepare: PrePrepare, from: ReplicaID, effects: inout [Effect]) throws(Rejection) {
        guard try agreement.check(prePrepare, from: from, view: view, normal: status == .normal, lastDelivered: lastDelivered) else { return }
        try relay.checkProposed(prePrepare.block.statements)
        guard agreement.prepare(prePrepare, view: view, effects: &effects) else { return }
        // The primary proposed what we watched for it: those request timers stop (Intake).
        intake.seenProposed(prePrepare.block.transactions, full: prePrepare.block.transactions.count * 2 >= configuration.batchSize)
        armProgressTimer()
        let round = prePrepare.block.round
        checkPrepared(round, effects: &effects)
        checkCommitted(round, effects: &effects)
    }

    mutating func onPrepare(_ prepare: Prepare, from: ReplicaID, effects: inout [Effect]) throws(Rejection) {
        guard try agreement.check(prepare, from: from, view: view) else { return }
        noteView(prepare.statement.view, from: from.index, effects: &effects)
        try agreement.record(prepare)
        checkPrepared(prepare.statement.round, effects: &effects)
    }

    mutating func checkPrepared(_ round: UInt64, effects: inout [Effect]) {
        let now = self.now
        if agreement.checkPrepared(round, view: view, normal: status == .normal, now: now, effects: &effects) {
            checkCommitted(round, effects: &effects)
        }
    }

    mutating func onCommit(_ commit: Commit, from: ReplicaID, effects: inout [Effect]) throws(Rejection) {
        guard try agreement.check(commit, from: from, lastDelivered: lastDelivered) else { return }
        noteView(commit.statement.view, from: from.index, effects: &effects)
        try agreement.record(commit)
        checkCommitted(commit.statement.round, effects: &effects)
    }

    /// A round committed: known to be (fetch its block if it is missing), and delivered once certified.
    mutating func checkCommitted(_ round: UInt64, effects: inout [Effect]) {
        let check = agreement.checkCommitted(round, lastDelivered: lastDelivered)
        if check.committed { catchUp.noteCommitted(round) }
        if check.certified { deliverReady(effects: &effects) }
    }

    // MARK: Delivery and execution

    mutating func deliverReady(effects: inout [Effect]) {
        while true {
            let round = lastDelivered + 1
            let fetched = catchUp.take(round)
            guard let block = agreement.slots[round]?.certified ?? fetched else { break }
            deliver(block, effects: &effects)
        }
        // A block of ours committed: a partial batch held back by the blocks in flight may go now.
        propose(partial: batchDelayPassed, effects: &effects)
    }

    /// The oldest pending transaction or statement has waited the batch delay: a partial batch may go.
    var batchDelayPassed: Bool { timers.hasRun(.batch, ticks: configuration.batchDelayTicks, idle: false) }

    mutating func deliver(_ block: CertifiedBlock, effects: inout [Effect]) {
        execution.deliver(block)
        catchUp.noteCommitted(lastDelivered)
        effects.append(.persist(.delivered(block)))
        intake.delivered(block.block.transactions, now: now)
        if !block.block.statements.isEmpty { relay.ordered(block.block.statements) }
        executeLedger(effects: &effects)
        if isPrimary { sharing.share(block, effects: &effects) }
        // Progress: the primary is doing its job.
        viewChanger.consecutive = 0
        if hasOutstandingWork { timers.start(.progress) } else { timers.cancel(.progress) }
        if block.block.round % configuration.checkpointEvery == 0 {
            sendCheckpoint(round: block.block.round, effects: &effects)
        }
    }

    /// Executes every complete round of the shard ledger: results, replies for our own clients,
    /// and the bookkeeping of requests that are now done; at each snapshot round, the snapshot.
    mutating func executeLedger(effects: inout [Effect]) {
        let outputs = execution.execute()
        guard !outputs.isEmpty else { return }
        for output in outputs {
            switch output {
            case let .executed(batch): record(batch, effects: &effects)
            case let .snapshot(snapshot):
                effects.append(.snapshot(snapshot))
                transfer.sign(snapshot, effects: &effects)
            }
        }
        // Executed blocks older than `blocksInMemoryRounds` leave memory (the block store has them).
        execution.forget()
        if let floor = execution.forgetFloor { sharing.forget(below: floor, limit: 2 * Int(configuration.blocksInMemoryRounds)) }
    }

    mutating func record(_ batch: [ExecutedBlock], effects: inout [Effect]) {
        for executed in batch {
            effects.append(.executed(executed))
            for statement in executed.outgoing { relay.send(statement, effects: &effects) }
            for completion in executed.completions where completion.homeCluster == cluster.index
                && replies.answers(completion.transaction, replica: configuration.index, primary: primary.index) {
                effects.append(.reply(Reply(to: completion.transaction, from: configuration.me, view: view, result: completion.result, position: completion.position)))
            }
            guard executed.certified.block.cluster == cluster else { continue }
            for (transaction, result) in zip(executed.certified.block.transactions, executed.results) {
                intake.executed(transaction)
                if let result, replies.answers(transaction, replica: configuration.index, primary: primary.index) {
                    effects.append(.reply(Reply(to: transaction, from: configuration.me, view: view, result: result, position: executed.position)))
                }
            }
        }
    }

    // MARK: Checkpoints

    mutating func sendCheckpoint(round: UInt64, effects: inout [Effect]) {
        let checkpoint = agreement.signCheckpoint(round: round, head: localHead, effects: &effects)
        if round > stable.statement.round { recordCheckpoint(checkpoint, effects: &effects) }
    }

    /// f + 1 checkpoints tell a replica that restarted or was cut off how far the cluster got;
    /// n - f matching ones make a stable checkpoint, which such a replica adopts and then fetches
    /// the blocks below it.
    mutating func recordCheckpoint(_ checkpoint: Checkpoint, effects: inout [Effect]) {
        let (reached, proof) = agreement.record(checkpoint)
        catchUp.noteCommitted(reached)
        if let proof { makeStable(proof, effects: &effects) }
    }

    mutating func makeStable(_ proof: CheckpointProof, effects: inout [Effect]) {
        guard agreement.makeStable(proof, effects: &effects) else { return }
        let round = proof.statement.round
        catchUp.noteCommitted(round)
        if intake.nextProposalRound <= round { intake.nextProposalRound = round + 1 }
        propose(partial: false, effects: &effects)
    }

    /// A peer votes in `claimed`: f + 1 peers in a higher view make a replica that missed a
    /// NewView ask to change to it.
    mutating func noteView(_ claimed: UInt64, from index: UInt16, effects: inout [Effect]) {
        guard let target = viewChanger.noteView(claimed, from: index, view: view) else { return }
        if case let .changingView(current) = status, current >= target { return }
        startViewChange(to: target, reason: .peersInLaterView, effects: &effects)
    }

    // MARK: Catching up

    mutating func onBlockRequest(_ request: BlockRequest, from: ReplicaID, effects: inout [Effect]) {
        guard request.cluster.shard == cluster.shard, Int(request.cluster.index) < configuration.clustersInShard else {
            return reject(.wrongCluster)
        }
        let own = request.cluster == cluster
        let store = own ? execution.delivered : sharing.remoteBlocks[request.cluster.index, default: [:]]
        // Every executed round is held, in memory or in the block store.
        let held = max(own ? lastDelivered : (store.keys.max() ?? 0), ledger.round - 1)
        let now = self.now
        catchUp.serve(request, from: from, store: store, held: held, ledgerRound: ledger.round, now: now, effects: &effects)
    }

    mutating func onCertifiedBlock(_ certified: CertifiedBlock, effects: inout [Effect]) {
        guard certified.block.cluster == cluster else {
            // Forwarded by a peer of our cluster that received it from the remote cluster.
            do { try acceptRemote(certified, forward: false, effects: &effects) } catch { reject(error) }
            return
        }
        let certifiedHere = agreement.slots[certified.block.round]?.certified != nil
        do {
            guard try catchUp.receive(certified, lastDelivered: lastDelivered, certifiedHere: certifiedHere) else { return }
        } catch {
            return reject(error)
        }
        let before = lastDelivered
        deliverReady(effects: &effects)
        // Catching up: as soon as a batch has landed, ask for the next one (not at every block
        // of it: that asked for a whole batch again per block, quadratic in the batch).
        if lastDelivered > before, catchUp.batchLanded(lastDelivered: lastDelivered, stable: stable.statement.round) {
            requestBlocks(effects: &effects)
        }
    }

    /// Ticks between two reads of the block store for one requester (CatchUp.swift).
    public static var storedServeIntervalTicks: UInt64 { CatchUp.storedServeIntervalTicks }

    var isBehind: Bool { catchUp.isBehind(lastDelivered: lastDelivered, stable: stable.statement.round) }

    mutating func requestBlocks(effects: inout [Effect]) {
        timers.start(.fetch)
        // Far behind, a snapshot beats the blocks: they wait while one is fetched, or while the
        // first answers to the state query come (StateTransfer.swift).
        if transfer.attempt == nil { transfer.noteFarBehind(position: position, timers: &timers, effects: &effects) }
        if transfer.prefersTransfer(timers: timers) { return }
        let (request, peer) = catchUp.nextRequest(lastDelivered: lastDelivered, stable: stable.statement.round)
        effects.append(.send(.blockRequest(request), to: peer))
    }

    // MARK: Timers

    var hasOutstandingWork: Bool {
        if intake.hasWork || !relay.watched.isEmpty { return true }
        return agreement.hasWorkInFlight(above: lastDelivered)
    }

    mutating func armProgressTimer() {
        timers.startIfIdle(.progress)
    }

    var currentTimeout: UInt64 { viewChanger.currentTimeout }

    mutating func onTick(effects: inout [Effect]) {
        timers.advance()
        // The composer fires the deadlines it owns: a paused state transfer may start again.
        if timers.isDue(.transferPause) { timers.cancel(.transferPause) }
        if batchDelayPassed { propose(partial: true, effects: &effects) }
        // Prepared blocks whose client signatures wait to be vouched for: the fallback may be due.
        for round in agreement.awaitingVouch(view: view) { checkPrepared(round, effects: &effects) }
        let fetchDue = timers.hasRun(.fetch, ticks: configuration.fetchIntervalTicks, idle: true)
        // Remote blocks are awaited whatever our own view is doing.
        sharing.tick(ledger: ledger, lastDelivered: lastDelivered, timers: &timers, fetchPeer: &catchUp.peer, effects: &effects)
        if let layout = configuration.crossShard {
            relay.tick(timers: &timers, ledger: ledger, effects: &effects)
            // Keep the coordinator's rounds moving while it waits for votes.
            if ledger.crossShard?.hasPendingCoordination == true, timers.hasRun(.heartbeat, ticks: layout.heartbeatTicks, idle: true) {
                propose(partial: true, heartbeat: true, effects: &effects)
            }
        }
        transfer.tick(position: position, timers: &timers, effects: &effects)
        switch status {
        case .normal:
            if !hasOutstandingWork { timers.cancel(.progress) }
            if isBehind && fetchDue { requestBlocks(effects: &effects) }
            // A request watched after it was ordered (a late retransmission) needs no timer.
            intake.settleWatches(lastExecution: ledger.lastExecution)
            let oldestStatement = relay.oldestWatch
            if let oldest = intake.oldestWatch.map({ min($0, oldestStatement ?? $0) }) ?? oldestStatement,
               now - oldest >= currentTimeout + intake.watchAllowance(now: now) {
                // A request waited a whole timeout while others committed: the primary censors it.
                startViewChange(to: view + 1, reason: .requestTimeout, effects: &effects)
                return
            }
            guard let waited = timers.elapsed(.progress) else { return }
            // Never a primary for want of its own progress: a backlog is no fault (Admission.swift).
            if waited >= currentTimeout && !isPrimary {
                startViewChange(to: view + 1, reason: .noProgress, effects: &effects)
            } else if waited >= currentTimeout / 8 && fetchDue && timers.backedOff(.retransmit, waited: waited) {
                // Before blaming the primary: say again what we said (a message may have been lost),
                // and ask whether the others committed what we are missing.
                timers.start(.retransmit)
                agreement.retransmit(view: view, isPrimary: isPrimary, lastDelivered: lastDelivered, effects: &effects)
                // Not twice in one tick (the catch-up above may have asked already).
                if timers.started(.fetch) != now { requestBlocks(effects: &effects) }
            }
        case let .changingView(target):
            if isBehind && fetchDue { requestBlocks(effects: &effects) }
            switch viewChanger.tick(target: target, timers: &timers, fetchDue: fetchDue) {
            case .wait: break
            case .nextView: startViewChange(to: target + 1, reason: .newViewLate, effects: &effects)
            case let .rebroadcast(sent):
                timers.start(.fetch)
                let mine = sent ?? makeViewChange(target)
                viewChanger.viewChanges[configuration.index] = mine
                effects.append(.broadcast(.viewChange(mine)))
            }
        }
    }

    // MARK: View change

    mutating func startViewChange(to newView: UInt64, reason: ViewChangeReason, effects: inout [Effect]) {
        if case let .changingView(target) = status, target >= newView { return }
        guard newView > view else { return }
        status = .changingView(to: newView)
        viewChanger.begin(reason: reason, timers: &timers)
        effects.append(.persist(.view(newView, normal: false)))
        effects.append(.event(.viewChangeStarted(from: view, to: newView, reason: reason, round: ledger.round)))
        let viewChange = makeViewChange(newView)
        viewChanger.viewChanges[configuration.index] = viewChange
        effects.append(.broadcast(.viewChange(viewChange)))
        tryNewView(effects: &effects)
    }

    /// Our signed ViewChange for `newView`: the stable checkpoint and every prepared round above it.
    func makeViewChange(_ newView: UInt64) -> ViewChange {
        viewChanger.make(newView, stable: stable, prepared: agreement.preparedAboveStable)
    }

    mutating func onViewChange(_ viewChange: ViewChange, from: ReplicaID, effects: inout [Effect]) throws(Rejection) {
        guard viewChange.cluster == cluster else { throw .wrongCluster }
        guard viewChange.replicaIndex == from.index else { throw .senderMismatch }
        if viewChange.newView <= view {
            // The sender is behind: show it the view we are in, if it came from a NewView.
            if let newView = viewChanger.lastNewView, newView.view == view, status == .normal {
                effects.append(.send(.newView(newView), to: from))
            }
            return
        }
        let target: UInt64
        if case let .changingView(to) = status { target = to } else { target = view }
        // f + 1 replicas want a higher view: at least one correct replica timed out, so join.
        if let join = try viewChanger.record(viewChange, from: from, target: target) {
            startViewChange(to: join, reason: .joined, effects: &effects)
        }
        tryNewView(effects: &effects)
    }

    /// The new primary: with n - f ViewChanges for its view, announce the NewView.
    mutating func tryNewView(effects: inout [Effect]) {
        guard case let .changingView(target) = status, configuration.primary(of: target) == configuration.index,
              let chosen = viewChanger.newViewQuorum(target) else { return }
        let plan = NewViewPlan(viewChanges: chosen, cluster: cluster, isValid: suite.isValid)
        var prePrepares: [PrePrepare] = []
        for block in plan.blocks {
            let digest = suite.digest(of: block)
            guard agreement.claim(SignSlot(phase: .prePrepare, view: target, round: block.round), digest, effects: &effects) else { return }
            let statement = VoteStatement(cluster: cluster, view: target, round: block.round, digest: digest)
            prePrepares.append(PrePrepare(view: target, digest: digest, block: block, signature: suite.sign(.prePrepare(statement))))
        }
        var newView = NewView(cluster: cluster, view: target, viewChanges: chosen, prePrepares: prePrepares,
                              signature: Signature(bytes: [UInt8](repeating: 0, count: 64))!)
        newView.signature = suite.sign(.newView(newView))
        viewChanger.newViewSentFor = target
        effects.append(.broadcast(.newView(newView)))
        enter(newView, plan: plan, effects: &effects)
    }

    mutating func onNewView(_ newView: NewView, from: ReplicaID, effects: inout [Effect]) {
        guard newView.cluster == cluster else { return reject(.wrongCluster) }
        let acceptable: Bool
        if case let .changingView(target) = status { acceptable = newView.view >= target } else { acceptable = newView.view > view }
        guard acceptable else { return reject(.staleView) }
        // Any replica may relay a NewView to one that missed it: the new primary's signature,
        // checked with the rest of the plan, is what makes it valid.
        guard let plan = NewViewCheck.validPlan(newView, configuration: configuration, suite: suite) else {
            return reject(.invalidNewView)
        }
        enter(newView, plan: plan, effects: &effects)
    }

    /// Moves to the new view: adopt its stable checkpoint, take its PrePrepares, prepare them.
    mutating func enter(_ newView: NewView, plan: NewViewPlan, effects: inout [Effect]) {
        view = newView.view
        status = .normal
        viewChanger.entered(newView, timers: &timers)
        effects.append(.persist(.view(view, normal: true)))
        effects.append(.event(.enteredView(view, round: ledger.round)))
        if plan.checkpoint.statement.round > stable.statement.round {
            makeStable(plan.checkpoint, effects: &effects)
        }
        agreement.resetForNewView()
        timers.start(.progress)
        for prePrepare in newView.prePrepares where prePrepare.block.round > stable.statement.round {
            if isPrimary {
                agreement.accept(prePrepare)
            } else {
                _ = agreement.prepare(prePrepare, view: view, effects: &effects)
            }
            // The plan's check verified every client signature the re-proposals carry.
            agreement.verifiedByPlan(prePrepare)
        }
        for prePrepare in newView.prePrepares where prePrepare.block.round > stable.statement.round {
            checkPrepared(prePrepare.block.round, effects: &effects)
            checkCommitted(prePrepare.block.round, effects: &effects)
        }
        // Requests the old primary left waiting: the new primary proposes them, the others forward them.
        if isPrimary {
            intake.nextProposalRound = max(plan.lastRound, lastDelivered, stable.statement.round) + 1
            // Only rounds still to deliver: a key of a round this replica already delivered would
            // never be removed (delivery removes it), and would keep the progress timer running
            // on an idle primary until it asked, alone, to leave its own view (seed 1643 of the
            // cross-shard sweep: the shard's rounds then stopped for a whole remote timeout).
            let toDeliver = newView.prePrepares.filter { $0.block.round > lastDelivered }
            let queued = intake.takeOver(reproposed: toDeliver.flatMap(\.block.transactions), now: now)
            relay.queueWatched(reproposed: toDeliver.flatMap(\.block.statements))
            if queued || !relay.pending.isEmpty { timers.start(.batch) }
            sharing.reshare(lastDelivered: lastDelivered, delivered: execution.delivered, effects: &effects)
            propose(partial: false, effects: &effects)
        } else {
            // The new primary gets a full timeout for each request it inherits.
            for transaction in intake.handOver(now: now) { effects.append(.send(.clientTransaction(transaction), to: primary)) }
            for proof in relay.handOver(now: now) { effects.append(.send(.shardStatement(proof), to: primary)) }
        }
    }
}

extension PBFTReplica {
    /// One line of the internal state that decides timers and proposals, for traces and reports.
    public var debugSummary: String {
        let outstanding = agreement.slots.filter { $0.key > lastDelivered && ($0.value.prePrepare != nil || $0.value.certified != nil) }.keys.sorted()
        return "\(status) view \(view) delivered \(lastDelivered) knownCommitted \(knownCommitted) next \(intake.nextProposalRound) "
            + "stable \(stable.statement.round) watched \(intake.watched.count) pending \(intake.queued) proposed \(intake.proposed.count) "
            + "watchedStatements \(relay.watched.keys.map(\.description)) pendingStatements \(relay.pending.count) "
            + "outstandingSlots \(outstanding) timers \(timers.summary) now \(now)"
    }
}

