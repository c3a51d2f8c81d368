// The daemon's inbound path: what waits for the core (replicas' messages first) and what the
// signature cache lets through (only what was checked, byte for byte).

import GeoCore
import GeoCrypto
import GeoNet
@testable import GeoNode
import GeoTopology
import Testing

@Suite struct InboundQueueTests {
    func inbound(_ from: NodeID, _ tag: UInt64) -> InboundMessage {
        InboundMessage(from: from, message: .clientTransaction(ClientTransaction(
            client: ClientID(0), requestID: tag, operation: .get(key: []), signature: Signature(bytes: Array(repeating: 0, count: 64))!)))
    }

    @Test func theKindsTakeTurnsEachInArrivalOrder() async {
        let queue = InboundQueue()
        for client in 1...3 { queue.push(inbound(.client(ClientID(UInt32(client))), 0)) }
        for replica in 4...6 { queue.push(inbound(.replica(number: UInt32(replica)), 0)) }
        queue.push(inbound(.replica(number: 7), 0))
        var order: [NodeID] = []
        for _ in 0..<7 { if let next = await queue.next() { order.append(next.from) } }
        // Clients arrived first, yet a replica's message waits behind one request at most.
        #expect(order == [.replica(number: 4), .client(ClientID(1)), .replica(number: 5), .client(ClientID(2)),
                          .replica(number: 6), .client(ClientID(3)), .replica(number: 7)])
        queue.finish()
        #expect(await queue.next() == nil)
    }

    @Test func aWaitingConsumerGetsTheNextMessageAndFinishEndsIt() async {
        let queue = InboundQueue()
        let consumer = Task { () -> [NodeID] in
            var seen: [NodeID] = []
            while let next = await queue.next() { seen.append(next.from) }
            return seen
        }
        try? await Task.sleep(for: .milliseconds(20))
        queue.push(inbound(.client(ClientID(7)), 1))
        try? await Task.sleep(for: .milliseconds(20))
        queue.push(inbound(.replica(number: 1), 2))
        queue.finish()
        #expect(await consumer.value == [.client(ClientID(7)), .replica(number: 1)])
    }

    @Test func aFullKindDropsNewMessagesAndCountsThem() async {
        let queue = InboundQueue(capacity: 2)
        for tag in 0..<3 { queue.push(inbound(.client(ClientID(1)), UInt64(tag))) }
        queue.push(inbound(.replica(number: 0), 9))
        #expect(queue.counts.waiting == 3 && queue.counts.dropped == 1, "a full client queue leaves room for replicas")
    }
}

@Suite struct VerifiedSignatureCacheTests {
    static let topology = try! TopologyLoader.parse(text: """
        name: cache-1x4
        regions: [local]
        shards: [{name: s0, clusters: [{region: local, replicas: 4}]}]
        keys: dev
        """, file: "cache-1x4")

    /// A valid signature replayed over another operation under the same request id: the cache
    /// must not vouch for it (it once keyed on client, request and signature alone).
    @Test func aCheckedSignatureDoesNotVouchForAnotherOperation() {
        let topology = Self.topology
        let keys = KeyRing.development(for: topology)
        let client = ClientID(0)
        let key = SigningKey.development(topology: topology.name, identity: Topology.clientName(client))
        let genuine = key.signTransaction(client: client, requestID: 5, operation: .add(key: Array("a".utf8), delta: 1))
        var forged = genuine
        forged.operation = .add(key: Array("a".utf8), delta: 1_000_000)

        let verified = VerifiedSignatures()
        let preverifier = ClientSignaturePreverifier(keys: keys, verified: verified)
        #expect(preverifier.preverify(.clientTransaction(genuine)) == 0)
        #expect(verified.contains(genuine))
        #expect(!verified.contains(forged))
        #expect(preverifier.preverify(.clientTransaction(forged)) == 1, "the forged copy is checked, and fails")
        let suite = PreverifiedSuite(base: Ed25519Suite(topology: topology, keys: keys,
                                                        signingKey: SigningKey.development(topology: topology.name, identity: "s0-local-0")),
                                     verified: verified)
        #expect(suite.isValid(genuine))
        #expect(!suite.isValid(forged))
    }

    /// f + 1 verifiers per signature (SignatureDuty): a backup checks only the transactions of a
    /// PrePrepare it is designated for, a client's own request always; every check is counted.
    @Test func aBackupChecksOnlyItsShareOfAPrePrepare() throws {
        let topology = Self.topology
        let keys = KeyRing.development(for: topology)
        let transactions = (0..<60).map { number -> ClientTransaction in
            let client = ClientID(UInt32(number % 3))
            let key = SigningKey.development(topology: topology.name, identity: Topology.clientName(client))
            return key.signTransaction(client: client, requestID: UInt64(number), operation: .put(key: Array("k\(number)".utf8), value: [1]))
        }
        let block = Block(cluster: ClusterID(shard: ShardID(0), index: 0), round: 1, transactions: transactions)
        let prePrepare = PrePrepare(view: 0, digest: .zero, block: block, signature: Signature(bytes: [UInt8](repeating: 0, count: 64))!)
        var checkedByBackup: [Int] = []
        for index in 1..<4 {
            let replica = try #require(topology.allReplicas.first { $0.id.index == UInt16(index) })
            let configuration = try #require(PBFTConfiguration(topology: topology, replica: replica.id))
            let metrics = NodeMetrics()
            let verified = VerifiedSignatures(metrics: metrics)
            let preverifier = ClientSignaturePreverifier(keys: keys, verified: verified, configuration: configuration)
            #expect(preverifier.preverify(.prePrepare(prePrepare)) == 0)
            let duty = configuration.signatureDuty
            let mine = transactions.filter { duty.isDesignated(UInt16(index), for: $0, primary: 0) }
            #expect(verified.count == mine.count)
            #expect(mine.allSatisfy(verified.contains))
            #expect(metrics.render().contains("geofabric_client_signature_verifications_total \(mine.count)"), "\(metrics.render())")
            checkedByBackup.append(mine.count)
            // A client's own request to this replica is always checked.
            #expect(preverifier.preverify(.clientTransaction(transactions.first { !mine.contains($0) }!)) == 0)
            #expect(verified.count == mine.count + 1)
        }
        // f = 1: each transaction has exactly one designated backup, so the backups share the block.
        #expect(checkedByBackup.reduce(0, +) == transactions.count, "\(checkedByBackup)")
        #expect(checkedByBackup.allSatisfy { $0 < transactions.count }, "\(checkedByBackup)")
    }
}
