// The order in which a replica's machine takes the inputs that wait for it: replicas' messages and
// clients' requests apart, each kind in arrival order, the kinds in turns while both wait. The
// daemon's InboundQueue and the simulator's machines both hold their waiting inputs in this, so
// they take them in the same order. (Why turns, and what the other orders cost: InboundQueue.swift
// in GeoNode, BENCHMARKS.md.) Written here rather than on swift-collections' Deque because GeoCore
// imports nothing; a head index over an array is all a FIFO needs.

public struct InputTurns<Element> {
    /// One kind's FIFO: elements before `head` were taken and are dropped in batches.
    struct Line {
        var elements: [Element] = []
        var head = 0
        var count: Int { elements.count - head }

        mutating func take() -> Element? {
            guard head < elements.count else { return nil }
            let element = elements[head]
            head += 1
            if head == elements.count {
                elements.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 1_024, head * 2 >= elements.count {
                elements.removeFirst(head)
                head = 0
            }
            return element
        }
    }

    var replicas = Line()
    var clients = Line()
    var clientTurn = false

    public init() {}

    public var replicaCount: Int { replicas.count }
    public var clientCount: Int { clients.count }
    public var isEmpty: Bool { replicas.count == 0 && clients.count == 0 }

    public mutating func append(_ element: Element, fromClient: Bool) {
        if fromClient { clients.elements.append(element) } else { replicas.elements.append(element) }
    }

    /// The next input: a replica's message and a client's request in turns while both wait,
    /// whichever waits otherwise.
    public mutating func next() -> Element? {
        let next = clientTurn ? clients.take() ?? replicas.take() : replicas.take() ?? clients.take()
        if next != nil { clientTurn.toggle() }
        return next
    }

    public mutating func removeAll() {
        replicas = Line()
        clients = Line()
    }
}

extension InputTurns: Sendable where Element: Sendable {}
extension InputTurns.Line: Sendable where Element: Sendable {}
