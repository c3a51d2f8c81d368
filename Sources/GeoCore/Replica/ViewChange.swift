// PBFT's view change, the liveness half of the cluster's agreement: the ViewChanges each peer
// sent, the views peers vote in, the NewView this replica entered, and the timeout that doubles
// with each consecutive view change.
//
// A sub-machine of the replica. What may be signed in a view (the signing records, the slots and
// their prepared proofs) belongs to the agreement in the composer; this machine decides when to
// leave a view and which ViewChanges make the next one, and returns those decisions as values:
// a view to join, the n - f ViewChanges a new primary announces, a ViewChange to say again.

/// What a tick of a view change under way asks the composer to do.
enum ViewChangeTick: Sendable, Equatable {
    case wait
    /// n - f wanted this view and its primary did not deliver: try the next one.
    case nextView
    /// Say our ViewChange again (alone so far, or it may have been lost): the one we sent for
    /// this view, or nil when the composer must make it.
    case rebroadcast(ViewChange?)
}

struct ViewChanger: Sendable {
    let configuration: PBFTConfiguration
    let suite: any CryptoSuite

    /// Each replica's latest ViewChange.
    var viewChanges: [UInt16: ViewChange] = [:]
    /// The NewView of the view this replica entered last (shown to peers still asking for it).
    var lastNewView: NewView?
    /// New primary: the view it announced a NewView for.
    var newViewSentFor: UInt64?
    /// The highest view each peer votes in: one entry per replica, so a Byzantine peer cannot grow
    /// it. f + 1 claims include a correct one.
    var claimedViews: [UInt16: UInt64] = [:]
    /// View changes since the last delivery: the timeout doubles with each.
    var consecutive = 0
    // Its timers are in the replica's table: `.viewChange` (its deadline gives up on the new
    // primary) and `.sinceViewChange` (remote requests coalesce around the last view change).
    /// View changes this replica started, and why (joining others counts as `.joined`).
    var started = 0
    var reasons: [ViewChangeReason: Int] = [:]
    var lastReason: ViewChangeReason?

    init(configuration: PBFTConfiguration, suite: any CryptoSuite) {
        self.configuration = configuration
        self.suite = suite
    }

    var quorum: Quorum { configuration.quorum }

    /// The view-change timeout doubles with each consecutive view change, up to 8x: enough to
    /// outgrow any delay the base timeout underestimated, without leaving a cluster that went
    /// through a bad patch waiting minutes for its next attempt (the simulator found that 256x
    /// could keep correct replicas in different views long after the network healed).
    var currentTimeout: UInt64 {
        configuration.viewTimeoutTicks << UInt64(min(consecutive, 3))
    }

    /// A peer voted in `claimed`. Returns the view f + 1 peers vote in when it is above `view`: a
    /// replica that missed a NewView (it was down or cut off) asks to change to it, and the peers
    /// answer its ViewChange with their NewView.
    mutating func noteView(_ claimed: UInt64, from index: UInt16, view: UInt64) -> UInt64? {
        guard claimed > view, claimed > claimedViews[index] ?? 0 else { return nil }
        claimedViews[index] = claimed
        let target = quorum.weakValue(of: claimedViews)
        return target > view ? target : nil
    }

    /// Records that this replica starts a view change, and why.
    mutating func begin(reason: ViewChangeReason, timers: inout TimerTable) {
        timers.start(.sinceViewChange)
        started += 1
        reasons[reason, default: 0] += 1
        lastReason = reason
        consecutive += 1
        timers.start(.viewChange, deadlineAfter: currentTimeout)
    }

    /// Our signed ViewChange for `newView`: the stable checkpoint and the prepared rounds above it.
    func make(_ newView: UInt64, stable: CheckpointProof, prepared: [PreparedProof]) -> ViewChange {
        var viewChange = ViewChange(cluster: configuration.cluster, newView: newView, checkpoint: stable, prepared: prepared,
                                    replicaIndex: configuration.index, signature: .unsigned)
        viewChange.signature = suite.sign(.viewChange(viewChange))
        return viewChange
    }

    /// A peer's ViewChange for a view above ours, once checked. Returns the view to join when
    /// f + 1 replicas want one above `target` (the view we are in or changing to): at least one
    /// correct replica timed out.
    mutating func record(_ viewChange: ViewChange, from: ReplicaID, target: UInt64) throws(Rejection) -> UInt64? {
        if let existing = viewChanges[from.index], existing.newView >= viewChange.newView { return nil }
        guard ViewChangeCheck.isValid(viewChange, configuration: configuration, suite: suite) else { throw .invalidViewChange }
        viewChanges[from.index] = viewChange
        let higher = viewChanges.values.filter { $0.newView > target }
        guard higher.count >= quorum.weak else { return nil }
        return higher.map(\.newView).min()
    }

    /// New primary of `target`: the n - f ViewChanges its NewView carries, once it has them.
    func newViewQuorum(_ target: UInt64) -> [ViewChange]? {
        guard newViewSentFor != target else { return nil }
        let changes = viewChanges.values.filter { $0.newView == target }.sorted { $0.replicaIndex < $1.replicaIndex }
        guard changes.count >= quorum.decide else { return nil }
        return Array(changes.prefix(quorum.decide))
    }

    /// Entered the view of `newView`.
    mutating func entered(_ newView: NewView, timers: inout TimerTable) {
        timers.start(.sinceViewChange)
        timers.cancel(.viewChange)
        lastNewView = newView
        viewChanges = viewChanges.filter { $0.value.newView > newView.view }
    }

    /// A tick while changing to `target`.
    func tick(target: UInt64, timers: inout TimerTable, fetchDue: Bool) -> ViewChangeTick {
        let late = timers.isDue(.viewChange)
        // Replicas that asked for this view or a later one all want to leave the current one.
        let supporters = viewChanges.values.filter { $0.newView >= target }.count
        if late && supporters >= quorum.decide { return .nextView }
        guard late || (fetchDue && viewChanges[configuration.index]?.newView == target) else { return .wait }
        // Alone (so far) in wanting this view, or a ViewChange may have been lost: say it
        // again rather than run ahead of the others, which would leave us in a view nobody
        // else reaches (PBFT moves on only with a quorum behind the stalled view).
        if late { timers.setDeadline(.viewChange, at: timers.now + currentTimeout) }
        return .rebroadcast(viewChanges[configuration.index].flatMap { $0.newView == target ? $0 : nil })
    }
}
