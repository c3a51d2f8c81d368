import GeoCore
import GeoTestKit
import Testing

/// ReplyDuty: who answers a client (f + 1 designated, everyone for a while after a resend).
@Suite struct ReplyDutyTests {
    func transaction(client: UInt32 = 1, requestID: UInt64 = 1, seed: UInt64) -> ClientTransaction {
        var bytes = [UInt8](repeating: 0, count: Signature.byteCount)
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        for index in bytes.indices {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            bytes[index] = UInt8(truncatingIfNeeded: state)
        }
        return ClientTransaction(client: ClientID(client), requestID: requestID, operation: .get(key: [1]),
                                 signature: Signature(bytes: bytes)!)
    }

    @Test func fPlusOneDistinctRepliersSpreadOverTheCluster() {
        for (n, f) in [(4, 1), (7, 2), (16, 5)] {
            let duty = ReplyDuty(quorum: Quorum(n: n)!)
            var load = [Int](repeating: 0, count: n)
            for seed in 0..<4_000 as Range<UInt64> {
                let repliers = duty.designatedRepliers(transaction(seed: seed), primary: 0)
                #expect(repliers.count == f + 1)
                #expect(Set(repliers).count == f + 1)
                #expect(repliers.allSatisfy { Int($0) < n && $0 != 0 })
                for replier in repliers { load[Int(replier)] += 1 }
            }
            // Each backup answers about (f + 1) / (n - 1) of the requests, the primary none.
            let expected = 4_000.0 * Double(f + 1) / Double(n - 1)
            #expect(load[0] == 0)
            #expect(load.dropFirst().allSatisfy { abs(Double($0) - expected) < expected * 0.15 }, "n = \(n): \(load)")
        }
    }

    @Test func onlyTheDesignatedAnswerUntilTheClientResends() {
        var duty = ReplyDuty(quorum: Quorum(n: 4)!)
        let first = transaction(requestID: 5, seed: 1)
        let designated = Set(duty.designatedRepliers(first, primary: 0))
        for index in 0..<4 as Range<UInt16> {
            let answers = duty.answers(first, replica: index, primary: 0)
            #expect(answers == designated.contains(index))
        }
        duty.clientRetransmitted(first)
        // Everyone answers this client's requests up to 5 + stickyRequests, then only the designated again.
        let outsider = (0..<4 as Range<UInt16>).first { !designated.contains($0) }!
        let resent = duty.answers(first, replica: outsider, primary: 0)
        #expect(resent)
        let later = duty.answers(transaction(requestID: 5 + ReplyDuty.stickyRequests, seed: 1), replica: outsider, primary: 0)
        #expect(later)
        let past = duty.answers(transaction(requestID: 6 + ReplyDuty.stickyRequests, seed: 1), replica: outsider, primary: 0)
        #expect(!past)
        // The window is forgotten: an earlier id is back to the designated only.
        let forgotten = duty.answers(first, replica: outsider, primary: 0)
        #expect(!forgotten)
        // Another client is not affected by this one's resend.
        var other = ReplyDuty(quorum: Quorum(n: 4)!)
        other.clientRetransmitted(transaction(client: 2, requestID: 5, seed: 1))
        let unaffected = other.answers(first, replica: outsider, primary: 0)
        #expect(!unaffected)
    }

    @Test func inAClusterSpreadOverRegionsEveryoneAnswers() throws {
        var duty = ReplyDuty(quorum: Quorum(n: 4)!, everyoneAnswersAlways: true)
        let request = transaction(seed: 3)
        for index in 0..<4 as Range<UInt16> {
            let answers = duty.answers(request, replica: index, primary: 0)
            #expect(answers)
        }
        // The topology says which clusters those are: the PBFT baseline's one cluster spans regions.
        let topology = TestKit.localTopology(name: "one-region", replicas: 4, protocol: "{}")
        let configuration = try #require(PBFTConfiguration(topology: topology, replica: ReplicaID(cluster: topology.shards[0].clusters[0].id, index: 0)))
        #expect(!configuration.everyoneReplies)
        let geo = TestKit.shippedTopology("geo-4x4")
        let spread = geo.pbftBaseline()
        let baseline = try #require(PBFTConfiguration(topology: spread, replica: ReplicaID(cluster: spread.shards[0].clusters[0].id, index: 0)))
        #expect(baseline.everyoneReplies)
        let local = try #require(PBFTConfiguration(topology: geo, replica: ReplicaID(cluster: geo.shards[0].clusters[0].id, index: 0)))
        #expect(!local.everyoneReplies)
    }
}
