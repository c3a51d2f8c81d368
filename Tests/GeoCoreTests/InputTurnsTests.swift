import GeoCore
import Testing

/// The order a replica's machine takes its waiting inputs in (the daemon and the simulator share it).
@Suite struct InputTurnsTests {
    @Test func kindsTakeTurnsAndEachKeepsArrivalOrderPastCompaction() {
        var turns = InputTurns<Int>()
        // 3,000 of each kind: well past the point where a line drops what was taken.
        for value in 0..<3_000 {
            turns.append(value, fromClient: false)
            turns.append(-value - 1, fromClient: true)
        }
        #expect(turns.replicaCount == 3_000 && turns.clientCount == 3_000)
        var taken: [Int] = []
        while let next = turns.next() { taken.append(next) }
        #expect(taken.count == 6_000 && turns.isEmpty)
        #expect(taken.enumerated().allSatisfy { index, value in index % 2 == 0 ? value == index / 2 : value == -(index / 2) - 1 })
    }

    @Test func oneKindAloneIsTakenInArrivalOrderAndRemoveAllEmpties() {
        var turns = InputTurns<Int>()
        for value in 0..<5 { turns.append(value, fromClient: true) }
        #expect(turns.next() == 0 && turns.next() == 1)
        turns.append(9, fromClient: false)
        // Two takes since the start: the replicas' turn, so the new message goes first.
        #expect([turns.next(), turns.next(), turns.next()] == [9, 2, 3])
        turns.removeAll()
        #expect(turns.isEmpty && turns.next() == nil)
    }
}
