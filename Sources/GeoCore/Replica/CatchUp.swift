// Catching up: a replica that missed its cluster's blocks (a lost message, a restart, a partition)
// learns how far the cluster got and fetches the certified blocks it lacks; a replica serves the
// blocks others ask for, its cluster's and those it holds of other clusters.
//
// A sub-machine of the replica. It owns what is known of the cluster's progress (the highest round
// known committed by a correct replica), the blocks fetched ahead of delivery (bounded to one
// fetch batch above the delivered prefix), whom to ask next, and when each requester was last
// served from the block store. Every fetched block is checked by its certificate before it is
// kept. When to ask (the fetch timer) and whether a snapshot beats the blocks (state transfer) are
// the composer's.

struct CatchUp: Sendable {
    let configuration: PBFTConfiguration
    let suite: any CryptoSuite

    /// The highest round of this cluster known to be committed by a correct replica.
    private(set) var knownCommitted: UInt64 = 0
    /// Certified blocks fetched ahead of delivery (bounded to one fetch batch above the delivered prefix).
    private var fetched: [UInt64: CertifiedBlock] = [:]
    /// The last round the latest block request asked for: catching up asks for the next batch
    /// once this one has landed (blocks of a batch arrive one by one, in order over TCP).
    private var requestedThrough: UInt64 = 0
    /// The peer asked last (requests rotate over the cluster; global sharing's fetches share it).
    var peer: UInt16
    /// When each requester was last served blocks from the store (one entry per replica of the
    /// shard: bounded), so that no peer can make this replica read its disk at will.
    private var lastStoredServed: [ReplicaID: UInt64] = [:]

    /// Ticks between two reads of the block store for one requester: a replica catching up asks
    /// once a round trip for `fetchBatch` blocks; a peer asking faster is not served faster.
    static let storedServeIntervalTicks: UInt64 = 2

    init(configuration: PBFTConfiguration, suite: any CryptoSuite) {
        self.configuration = configuration
        self.suite = suite
        peer = configuration.index
    }

    var cluster: ClusterID { configuration.cluster }
    var fetchBatch: UInt64 { configuration.fetchBatch }

    /// A round of this cluster is known to be committed (certified, delivered, checkpointed).
    mutating func noteCommitted(_ round: UInt64) {
        knownCommitted = max(knownCommitted, round)
    }

    /// Whether the cluster is known to have committed past what this replica delivered.
    func isBehind(lastDelivered: UInt64, stable: UInt64) -> Bool {
        knownCommitted > lastDelivered || stable > lastDelivered
    }

    // MARK: Fetching

    /// A certified block of this cluster from a peer. Kept when it is the next few rounds to
    /// deliver, not held already (`certifiedHere`: the slot has its certificate) and its
    /// certificate checks.
    mutating func receive(_ certified: CertifiedBlock, lastDelivered: UInt64, certifiedHere: Bool) throws(Rejection) -> Bool {
        let round = certified.block.round
        guard round > lastDelivered, round <= lastDelivered + fetchBatch else { return false }
        guard !certifiedHere, fetched[round] == nil else { return false }
        guard CertificateCheck.isValid(certified, quorum: configuration.quorum, suite: suite) else { throw .invalidCertificate }
        fetched[round] = certified
        noteCommitted(round)
        return true
    }

    /// The fetched block of `round`, removed (delivery takes it).
    mutating func take(_ round: UInt64) -> CertifiedBlock? {
        fetched.removeValue(forKey: round)
    }

    /// Forgets fetched blocks at or below `round` (a snapshot installed past them).
    mutating func dropFetched(through round: UInt64) {
        fetched = fetched.filter { $0.key > round }
    }

    /// After a fetched block was delivered: the whole batch asked for has landed and more is missing.
    func batchLanded(lastDelivered: UInt64, stable: UInt64) -> Bool {
        lastDelivered >= requestedThrough && isBehind(lastDelivered: lastDelivered, stable: stable) && fetched.isEmpty
    }

    /// The next block request, to the next peer in turn: from the round after the delivered
    /// prefix up to what is known committed, at most a fetch batch.
    mutating func nextRequest(lastDelivered: UInt64, stable: UInt64) -> (BlockRequest, to: ReplicaID) {
        peer = configuration.nextPeer(after: peer)
        let target = max(knownCommitted, stable, lastDelivered + 1)
        let request = BlockRequest(cluster: cluster, fromRound: lastDelivered + 1, toRound: min(target, lastDelivered + fetchBatch))
        requestedThrough = request.toRound
        return (request, configuration.replica(peer))
    }

    /// The fetched rounds wait above the delivered prefix (an invariant the composer checks).
    func fetchedAbove(_ lastDelivered: UInt64) -> Bool {
        fetched.keys.allSatisfy { $0 > lastDelivered }
    }

    // MARK: Serving

    /// A peer asks for blocks of `request.cluster`, of which this replica holds `store` in memory
    /// and everything through `held` (executed rounds below memory are in the block store). Sends
    /// what memory holds, at most a fetch batch, and asks the shell to serve the older ones from
    /// the store, at most once per `storedServeIntervalTicks` per requester.
    mutating func serve(_ request: BlockRequest, from: ReplicaID, store: [UInt64: CertifiedBlock], held: UInt64,
                        ledgerRound: UInt64, now: UInt64, effects: inout [Effect]) {
        // Peer-supplied rounds: bound them by what we hold before any arithmetic.
        guard request.fromRound >= 1, request.fromRound <= held else { return }
        let last = min(request.toRound, held, request.fromRound + fetchBatch - 1)
        var firstInMemory = request.fromRound
        while firstInMemory <= last, firstInMemory < ledgerRound, store[firstInMemory] == nil { firstInMemory += 1 }
        if firstInMemory > request.fromRound,
           lastStoredServed[from].map({ now - $0 >= Self.storedServeIntervalTicks }) ?? true {
            lastStoredServed[from] = now
            let stored = BlockRequest(cluster: request.cluster, fromRound: request.fromRound, toRound: firstInMemory - 1)
            effects.append(.serveStored(stored, to: from))
        }
        guard firstInMemory <= last else { return }
        for round in firstInMemory...last {
            if let block = store[round] { effects.append(.send(.certifiedBlock(block), to: from)) }
        }
    }
}
