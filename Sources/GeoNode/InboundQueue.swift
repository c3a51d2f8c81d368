// The queue between the daemon's signature check and its core: messages of replicas are taken
// before requests of clients, each kind in arrival order.
//
// A replica's core handles one input at a time. With one queue in arrival order, a loaded
// replica's Prepares and Commits waited behind client requests (and behind every client's resend
// to every replica), so blocks committed late, backups blamed a primary that was only busy, and
// the 16-replica PBFT baseline fell into view changes (BaselineUnderLoadScenarios; the simulator
// queues a machine's inputs the same way). Clients are the ones to wait: their requests are only
// worth taking once the cluster keeps up with what it already ordered. Written here because
// AsyncStream has no priorities and merging two streams would still take whichever is ready.

import DequeModule
import GeoCore
import GeoNet
import Synchronization

public final class InboundQueue: Sendable {
    /// Messages of each kind that may wait; past it new ones are dropped (and counted): a
    /// replica retransmits what matters, and a client resends.
    public let capacity: Int

    struct State {
        var replicas = Deque<InboundMessage>()
        var clients = Deque<InboundMessage>()
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
            if inbound.from.isClient {
                if state.clients.count < capacity { state.clients.append(inbound) } else { state.dropped += 1 }
            } else {
                if state.replicas.count < capacity { state.replicas.append(inbound) } else { state.dropped += 1 }
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

    /// The next message: a replica's if any waits, else a client's; nil once finished and empty.
    /// One consumer at a time.
    public func next() async -> InboundMessage? {
        await withCheckedContinuation { (continuation: CheckedContinuation<InboundMessage?, Never>) in
            let ready: InboundMessage?? = state.withLock { state in
                if let message = state.replicas.popFirst() ?? state.clients.popFirst() { return .some(message) }
                if state.finished { return .some(nil) }
                state.waiter = continuation
                return .none
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Messages waiting, and messages dropped because their kind's queue was full.
    public var counts: (waiting: Int, dropped: Int) {
        state.withLock { ($0.replicas.count + $0.clients.count, $0.dropped) }
    }
}
