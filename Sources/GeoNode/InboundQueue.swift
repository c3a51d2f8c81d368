// The queue between the daemon's signature check and its core: replicas' messages and clients'
// requests wait apart, each kind in arrival order, and are taken in turns while both wait.
//
// A replica's core handles one input at a time. With one queue in arrival order, a loaded
// primary's Prepares and Commits waited behind every client request that arrived before them, so
// blocks committed late and the backups blamed a primary that was only busy: the simulated
// 16-replica PBFT baseline, queued for two seconds, fell to 0 txn/s with 17 view changes
// (LoadedGeoScenarios; the simulator queues a machine's inputs the same way). Taking replicas'
// messages strictly first kept that baseline alive but starved request intake, so blocks
// shrank: simulated GeoBFT on geo-4x4 lost half its throughput at 128 clients per region, and
// local-1x4 5%. Turns (Aardvark's answer: neither kind can starve the other) kept the baseline
// alive and cost nothing measurable elsewhere (BENCHMARKS.md). Written here because AsyncStream
// has no notion of two sources taken in turns.

import GeoCore
import GeoNet
import Synchronization

public final class InboundQueue: Sendable {
    /// Messages of each kind that may wait; past it new ones are dropped (and counted): a
    /// replica retransmits what matters, and a client resends.
    public let capacity: Int

    struct State {
        var waiting = InputTurns<InboundMessage>()
        var waiter: CheckedContinuation<InboundMessage?, Never>?
        var finished = false
        var dropped = 0
    }

    let state = Mutex(State())

    public init(capacity: Int = 65_536) { self.capacity = max(1, capacity) }

    /// Queues a message, or hands it straight to a waiting `next()`.
    public func push(_ inbound: InboundMessage) {
        let waiter: CheckedContinuation<InboundMessage?, Never>? = state.withLock { state in
            guard !state.finished else { return nil }
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            let fromClient = inbound.from.isClient
            if (fromClient ? state.waiting.clientCount : state.waiting.replicaCount) < capacity {
                state.waiting.append(inbound, fromClient: fromClient)
            } else {
                state.dropped += 1
            }
            return nil
        }
        waiter?.resume(returning: inbound)
    }

    /// No more messages: a waiting `next()` and every later one return nil once the queue is empty.
    public func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<InboundMessage?, Never>? in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// The next message, the kinds in turns while both wait; nil once finished and empty. One
    /// consumer at a time.
    public func next() async -> InboundMessage? {
        // The usual case under load, without a continuation: something is waiting already.
        let ready: InboundMessage?? = state.withLock { state in
            if let next = state.waiting.next() { return .some(next) }
            return state.finished ? .some(nil) : .none
        }
        if let ready { return ready }
        return await withCheckedContinuation { (continuation: CheckedContinuation<InboundMessage?, Never>) in
            let ready: InboundMessage?? = state.withLock { state in
                if let next = state.waiting.next() { return .some(next) }
                if state.finished { return .some(nil) }
                state.waiter = continuation
                return .none
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Messages waiting, and messages dropped because their kind's queue was full.
    public var counts: (waiting: Int, dropped: Int) {
        state.withLock { ($0.waiting.replicaCount + $0.waiting.clientCount, $0.dropped) }
    }
}

extension InboundQueue {
    /// Client requests waiting for the core.
    public var clientsWaiting: Int { state.withLock { $0.waiting.clientCount } }
}

/// The daemon's admission control at the door (GeoCore's InboxAdmission): the node publishes, after
/// every step, how many client requests may wait for its core and what a refused client should
/// be told; the loop that takes frames off the network answers `busy` to a client request past
/// that before its signature is checked, so an overloaded replica spends a frame's read and a
/// busy answer on it, not a verification and a place in the queue.
public final class AdmissionDoor: Sendable {
    struct State {
        var limit = Int.max
        var replica: ReplicaID?
        var view: UInt64 = 0
        var retryAfterTicks: UInt32 = 1
        var refused = 0
        /// The core's clock at the last publish, and the refusals per period of it (they lengthen
        /// the hint: `InboxAdmission.retryAfter`).
        var now: UInt64 = 0
        var refusals: PeriodCount?
    }

    let state = Mutex(State())

    public init() {}

    func publish(limit: Int, replica: ReplicaID, view: UInt64, retryAfterTicks: UInt32, now: UInt64) {
        state.withLock { state in
            state.limit = limit
            state.replica = replica
            state.view = view
            state.retryAfterTicks = retryAfterTicks
            state.now = now
        }
    }

    /// Requests refused at the door in the last period of `period` ticks, as of `now`.
    func recentRefusals(now: UInt64, period: UInt64) -> Int {
        state.withLock { state in
            if state.refusals == nil { state.refusals = PeriodCount(period: period) }
            return state.refusals?.recent(now: now) ?? 0
        }
    }

    /// The busy answer to `transaction` when `waiting` client requests wait already; nil: let it in.
    public func refusal(of transaction: ClientTransaction, waiting: Int) -> Busy? {
        state.withLock { state in
            guard waiting >= state.limit, let replica = state.replica else { return nil }
            state.refused += 1
            state.refusals?.add(1, now: state.now)
            return Busy(client: transaction.client, requestID: transaction.requestID, replica: replica, view: state.view,
                        retryAfterTicks: state.retryAfterTicks)
        }
    }

    /// Client requests answered busy at the door so far.
    public var refused: Int { state.withLock { $0.refused } }
}
