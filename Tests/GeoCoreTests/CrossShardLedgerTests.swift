import GeoCore
import GeoSim
import Testing

/// The coordinator layer's execution rules, step by step on two ledgers (one per shard, one
/// cluster each), with statements handed over by hand.
@Suite struct CrossShardLedgerTests {
    // Prefix placement: "a/" keys on shard 0, "b/" keys on shard 1.
    let layout = CrossShardLayout(
        placement: KeyPlacementTable(keyBuckets: 1, shards: [(ShardID(0), .prefixes(["a/"])), (ShardID(1), .prefixes(["b/", ""]))]),
        quorums: [[Quorum(n: 4)!], [Quorum(n: 4)!]], nearestCluster: [0, 0])
    let alice = Array("a/alice".utf8), bob = Array("b/bob".utf8), carol = Array("a/carol".utf8)

    func block(_ shard: UInt16, round: UInt64, _ transactions: [ClientTransaction], _ statements: [ShardStatement] = []) -> CertifiedBlock {
        let cluster = ClusterID(shard: ShardID(shard), index: 0)
        let proofs = statements.map { ShardStatementProof(statement: $0, cluster: ClusterID(shard: $0.source, index: 0), signatures: []) }
        return certified(Block(cluster: cluster, round: round, transactions: transactions, statements: proofs))
    }

    func run(_ ledger: inout ShardLedger, _ block: CertifiedBlock) -> ExecutedBlock {
        ledger.add(block, digest: block.certificate.statement.digest)
        return ledger.executeReady(chain: crypto.chain)[0]
    }

    func transfer(_ request: UInt64, from: [UInt8], to: [UInt8], _ amount: UInt64) -> ClientTransaction {
        crypto.signTransaction(client: ClientID(1), requestID: request, operation: .transfer(from: from, to: to, amount: amount))
    }

    @Test func aTransferCommitsOnBothShardsAndReleasesItsLocks() {
        var s0 = ShardLedger(shard: ShardID(0), clusterCount: 1, layout: layout)
        var s1 = ShardLedger(shard: ShardID(1), clusterCount: 1, layout: layout)
        let mint = crypto.signTransaction(client: ClientID(2), requestID: 1, operation: .add(key: alice, delta: 100))
        let move = transfer(1, from: alice, to: bob, 30)
        // The coordinator orders the transfer: it locks alice and asks shard 1 to prepare.
        let ordered = run(&s0, block(0, round: 1, [mint, move]))
        #expect(ordered.results == [.number(100), nil], "the transfer's answer waits for the decision")
        guard case let .prepare(prepared)? = ordered.outgoing.first?.kind else { Issue.record("no prepare"); return }
        #expect(prepared == move)
        #expect(s0.crossShard?.locks[alice] != nil)
        // A local transfer on the locked key is refused; a get is not.
        let local = run(&s0, block(0, round: 2, [crypto.signTransaction(client: ClientID(3), requestID: 1,
                                                                        operation: .transfer(from: alice, to: carol, amount: 1))]))
        #expect(local.results == [.refused(.locked)])
        // The participant orders the Prepare: it locks bob and votes commit.
        let voted = run(&s1, block(1, round: 1, [], ordered.outgoing))
        #expect(voted.outgoing.map(\.kind) == [.vote(ordered.outgoing[0].id, .commit)])
        // Both sides say what they wait for (what `/status` shows of a run that does not settle).
        let id = ordered.outgoing[0].id
        #expect(s0.crossShard!.unfinished(limit: 4) == ["coordinator of \(id) since round 1, waiting for shard#1"])
        #expect(s1.crossShard!.unfinished(limit: 4) == ["participant in \(id), voted commit, waiting for the decision"])
        #expect(s1.crossShard!.unfinished(limit: 0).isEmpty)
        // Ordering the same Prepare again changes nothing.
        let again = run(&s1, block(1, round: 2, [], ordered.outgoing))
        #expect(again.outgoing.isEmpty)
        // The coordinator orders the vote: commit, applied, the client is answered, shard 1 told.
        let decided = run(&s0, block(0, round: 3, [], voted.outgoing))
        #expect(decided.completions.map(\.result) == [.crossShardCommitted])
        #expect(decided.outgoing.map(\.kind) == [.decision(ordered.outgoing[0].id, .commit)])
        #expect(s0.state.number(alice) == 70)
        // The participant applies the decision; a duplicate decision does nothing more.
        _ = run(&s1, block(1, round: 3, [], decided.outgoing))
        _ = run(&s1, block(1, round: 4, [], decided.outgoing))
        #expect(s1.state.number(bob) == 30)
        #expect(s0.crossShard!.isIdle && s1.crossShard!.isIdle)
        #expect(s0.crossShard!.unfinished(limit: 4).isEmpty && s1.crossShard!.unfinished(limit: 4).isEmpty)
        #expect(s0.lastExecution[ClientID(1)]?.result == .crossShardCommitted)
    }

    @Test func aConflictAbortsOnEveryShardAndAMissingVoteTimesOut() {
        var s0 = ShardLedger(shard: ShardID(0), clusterCount: 1, layout: layout)
        var s1 = ShardLedger(shard: ShardID(1), clusterCount: 1, layout: layout)
        let first = transfer(1, from: bob, to: alice, 0)
        let second = crypto.signTransaction(client: ClientID(2), requestID: 1, operation: .transfer(from: alice, to: bob, amount: 0))
        // s1 coordinates the first (bob locked there), s0 the second (alice locked here).
        let firstOrdered = run(&s1, block(1, round: 1, [first]))
        let secondOrdered = run(&s0, block(0, round: 1, [second]))
        // Each prepare finds its key locked by the other transaction: both vote abort(conflict).
        let vote0 = run(&s0, block(0, round: 2, [], firstOrdered.outgoing))
        let vote1 = run(&s1, block(1, round: 2, [], secondOrdered.outgoing))
        #expect(vote0.outgoing.map(\.kind) == [.vote(firstOrdered.outgoing[0].id, .abort(.conflict))])
        let decided = run(&s1, block(1, round: 3, [], vote0.outgoing))
        #expect(decided.completions.map(\.result) == [.crossShardAborted(.conflict)])
        _ = run(&s0, block(0, round: 3, [], decided.outgoing))
        // The second never hears back (its vote is lost for good): it times out after
        // voteTimeoutRounds rounds of its coordinator's ledger.
        _ = vote1
        var round: UInt64 = 4
        var timedOut: [CrossShardCompletion] = []
        while timedOut.isEmpty && round < 4 + layout.voteTimeoutRounds {
            timedOut = run(&s0, block(0, round: round, [])).completions
            round += 1
        }
        #expect(timedOut.map(\.result) == [.crossShardAborted(.timeout)])
        #expect(s0.crossShard!.isIdle)
        // s1 still holds its vote (and no lock: it voted abort) until the decision reaches it.
        #expect(s1.crossShard!.locks.isEmpty)
    }

    @Test func aCoordinatorThatIsNotTheFirstKeysShardIsNotObeyed() {
        var s1 = ShardLedger(shard: ShardID(1), clusterCount: 1, layout: layout)
        // A Prepare "from shard 0" of a transfer whose first key is on shard 1: ignored.
        let forged = ShardStatement(source: ShardID(0), target: ShardID(1), kind: .prepare(transfer(1, from: bob, to: alice, 1)))
        let executed = run(&s1, block(1, round: 1, [], [forged]))
        #expect(executed.outgoing.isEmpty)
        #expect(s1.crossShard!.isIdle)
        // A client request whose first key is on another shard is refused, not executed.
        let misrouted = run(&s1, block(1, round: 2, [transfer(2, from: alice, to: bob, 1)]))
        #expect(misrouted.results == [.refused(.wrongShard)])
    }
}
