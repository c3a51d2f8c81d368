import GeoCore
import Testing

@Suite struct QuorumTests {
    @Test func classicSizes() throws {
        let four = try #require(Quorum(n: 4))
        #expect((four.f, four.decide, four.prepared, four.weak) == (1, 3, 2, 2))
        let seven = try #require(Quorum(n: 7))
        #expect((seven.f, seven.decide, seven.prepared, seven.weak) == (2, 5, 4, 3))
        let fifteen = try #require(Quorum(n: 15))
        #expect((fifteen.f, fifteen.decide) == (4, 11))
    }

    @Test func largerThanMinimalClustersUseNMinusF() throws {
        // n = 5 tolerates f = 1; 2f + 1 = 3 would let two quorums meet in one (possibly faulty) replica.
        let five = try #require(Quorum(n: 5))
        #expect(five.f == 1)
        #expect(five.decide == 4)
    }

    @Test func anyTwoQuorumsShareACorrectReplica() throws {
        for n in 1...200 {
            let quorum = try #require(Quorum(n: n))
            #expect(n >= 3 * quorum.f + 1)
            // |Q1 ∩ Q2| >= 2(n - f) - n = n - 2f, which must exceed f.
            #expect(2 * quorum.decide - n >= quorum.f + 1, "n=\(n)")
        }
    }

    @Test func explicitFaultBoundMustFit() {
        #expect(Quorum(n: 6, f: 2) == nil)
        #expect(Quorum(n: 7, f: 2) != nil)
        #expect(Quorum(n: 0) == nil)
        #expect(Quorum(n: 4, f: -1) == nil)
    }

    @Test func thresholdPredicates() throws {
        let quorum = try #require(Quorum(n: 4))
        #expect(!quorum.isDecided(2))
        #expect(quorum.isDecided(3))
        #expect(!quorum.isWeak(1))
        #expect(quorum.isWeak(2))
    }
}

@Suite struct IdentifierTests {
    @Test func nodeIDsSeparateReplicasAndClients() {
        let replica = NodeID.replica(number: 42)
        let client = NodeID.client(ClientID(42))
        #expect(replica != client)
        #expect(replica.replicaNumber == 42 && replica.client == nil)
        #expect(client.client == ClientID(42) && client.replicaNumber == nil)
    }

    @Test func digestBytesRoundTrip() throws {
        var random = SeededRandom(seed: 7)
        for _ in 0..<100 {
            let bytes = random.bytes(count: 32)
            let digest = try #require(Digest(bytes: bytes))
            #expect(digest.bytes == bytes)
            #expect(digest.hex == Hex.encode(bytes))
        }
        #expect(Digest(bytes: [UInt8](repeating: 0, count: 31)) == nil)
    }

    @Test func hexRoundTripAndRejects() {
        #expect(Hex.encode([0x00, 0xab, 0xff]) == "00abff")
        #expect(Hex.decode("00ABff") == [0x00, 0xab, 0xff])
        #expect(Hex.decode("abc") == nil)
        #expect(Hex.decode("zz") == nil)
    }

    @Test func seededRandomReplays() {
        var first = SeededRandom(seed: 99)
        var second = SeededRandom(seed: 99)
        var other = SeededRandom(seed: 100)
        let a = (0..<10).map { _ in first.next() }
        #expect(a == (0..<10).map { _ in second.next() })
        #expect(a != (0..<10).map { _ in other.next() })
    }

    @Test func keyHashIsStableFNV1a() {
        // Published FNV-1a 64 test vectors.
        #expect(KeyHash.fnv1a64([UInt8]()) == 0xcbf2_9ce4_8422_2325)
        #expect(KeyHash.fnv1a64(Array("a".utf8)) == 0xaf63_dc4c_8601_ec8c)
        #expect(KeyHash.fnv1a64(Array("foobar".utf8)) == 0x8594_4171_f739_67e8)
    }
}
