// Replica daemons in one process: real Ed25519 keys and the real effect order, with the network
// replaced by ordered in-memory queues. What the transport adds is tested in GeoNetTests.

import GeoCore
import GeoCrypto
@testable import GeoNode
import GeoTopology
import Logging
import Synchronization
import Testing
import GeoTestKit
import GeoWire
import Foundation

/// Per destination, one ordered queue drained by one task: messages between two nodes keep
/// their order, as on a TCP connection.
final class InMemoryNetwork: MessageSink {
    let from: NodeID
    init(from: NodeID) { self.from = from }
    func send(_ message: Message, to node: NodeID) {
        _ = Self.shared.withLock { $0[node]?.yield((message, from)) }
    }
    static let shared: Mutex<[NodeID: AsyncStream<(Message, NodeID)>.Continuation]> = Mutex([:])
}

@Suite(.serialized) struct InProcessClusterTests {
    static let topology = TestKit.localTopology(name: "node-test-1x4", protocol: "{batch_size: 10, batch_delay_ms: 2, window: 64, checkpoint_every: 4, view_timeout_ms: 500}",
                                                devKeys: true)

    @Test func fourReplicasCommitSignedTransactionsInOrder() async throws {
        let topology = Self.topology
        let keys = KeyRing.development(for: topology)
        var nodes: [NodeID: ReplicaNode] = [:]
        var tasks: [Task<Void, Never>] = []
        for info in topology.allReplicas {
            let node = NodeID.replica(number: info.number)
            let verified = VerifiedSignatures()
            let suite = PreverifiedSuite(base: Ed25519Suite(topology: topology, keys: keys,
                signingKey: SigningKey.development(topology: topology.name, identity: info.name)), verified: verified)
            let replica = ReplicaNode(topology: topology, replica: info, suite: suite, log: MemoryLog(), recovered: nil,
                                      sink: InMemoryNetwork(from: node), logger: Logger(label: "test"))
            nodes[node] = replica
            let (stream, continuation) = AsyncStream<(Message, NodeID)>.makeStream()
            InMemoryNetwork.shared.withLock { $0[node] = continuation }
            let preverifier = ClientSignaturePreverifier(keys: keys, verified: verified)
            tasks.append(Task {
                for await (message, from) in stream {
                    preverifier.preverify(message)
                    await replica.receive(message, from: from)
                }
            })
            tasks.append(Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(10))
                    await replica.tick()
                }
            })
        }
        defer { for task in tasks { task.cancel() } }

        // One client, ten requests, each after the previous completed.
        let clientID = ClientID(0)
        let clientNode = NodeID.client(clientID)
        let (replies, replyContinuation) = AsyncStream<(Message, NodeID)>.makeStream()
        InMemoryNetwork.shared.withLock { $0[clientNode] = replyContinuation }
        let cluster = topology.shards[0].clusters[0]
        var client = ClientCore(client: clientID, cluster: cluster.id, quorum: cluster.quorum,
                                signer: SigningKey.development(topology: topology.name, identity: Topology.clientName(clientID)),
                                timeoutTicks: 100)
        let sink = InMemoryNetwork(from: clientNode)
        func carry(_ effects: [ClientEffect]) -> ExecutionResult? {
            var done: ExecutionResult?
            for effect in effects {
                switch effect {
                case let .send(transaction, to: replica):
                    sink.send(.clientTransaction(transaction), to: .replica(number: topology.replica(replica)!.number))
                case let .completed(_, result, _, _):
                    done = result
                }
            }
            return done
        }
        var iterator = replies.makeAsyncIterator()
        for index in 0..<10 {
            var result = carry(client.submit(.add(key: Array("counter".utf8), delta: Int64(index + 1))))
            while result == nil {
                guard let (message, _) = await iterator.next(), case let .reply(reply) = message else { continue }
                result = carry(client.onReply(reply))
            }
        }
        // Every replica executed the same ledger: same height and head once the last block is in.
        var heights: [UInt64] = []
        var heads: Set<Digest> = []
        for _ in 0..<200 {
            heights = []
            heads = []
            for node in nodes.values {
                heights.append(await node.height)
                heads.insert(await node.head)
            }
            if heads.count == 1, Set(heights).count == 1 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(heads.count == 1, "heads differ: \(heads)")
        #expect(heights.allSatisfy { $0 >= 1 }, "heights \(heights)")
        for node in nodes.values {
            #expect(await node.value(of: Array("counter".utf8)) == KeyValueStore.encode(55))
            #expect(await node.committedTransactions == 10)
        }
        try await checkLedgerQueries(nodes: Array(nodes.values), topology: topology, keys: keys)
    }

    /// Every replica answers the ledger queries: each stored block, and each of the client's ten
    /// transactions (the last from the ledger state's position, the others by searching the
    /// block store) with a proof that verifies against the keys alone.
    func checkLedgerQueries(nodes: [ReplicaNode], topology: Topology, keys: KeyRing) async throws {
        let checker = Ed25519Suite(topology: topology, keys: keys, signingKey: nil)
        for node in nodes {
            let service = LedgerService(node: node, topology: topology, replica: await node.info, keys: keys)
            let height = await node.storedBlocks(fromHeight: 1, maxCount: 0).storeLastHeight
            let blocks = await node.storedBlocks(fromHeight: 1, maxCount: Int(height)).blocks
            var proven = 0
            for (offset, certified) in blocks.enumerated() {
                let answer = try #require(await service.answer(path: Substring("/ledger/blocks/\(offset + 1)")))
                #expect(answer.status == 200, "\(answer.body)")
                for transaction in certified.block.transactions {
                    let found = try #require(await service.answer(path: Substring("/ledger/tx/\(TransactionID(transaction))")))
                    #expect(found.status == 200, "\(found.body)")
                    let document = try JSONDecoder().decode(LedgerTransactionDocument.self, from: Data(found.body.utf8))
                    #expect(document.height == UInt64(offset + 1))
                    let proof = try InclusionProofCodec.decode(try #require(Hex.decode(document.proof)))
                    #expect(throws: Never.self) { try InclusionProofCheck.verify(proof, topology: topology, suite: checker) }
                    proven += 1
                }
            }
            #expect(proven == 10)
            #expect(await service.answer(path: Substring("/ledger/blocks/\(height + 1)"))?.status == 404)
            #expect(await service.answer(path: "/ledger/blocks/0")?.status == 400)
            #expect(await service.answer(path: "/ledger/tx/0:999999")?.status == 404)
            #expect(await service.answer(path: "/ledger/tx/7:1")?.status == 404)
            #expect(await service.answer(path: "/ledger/tx/x")?.status == 400)
            #expect(await service.answer(path: "/status") == nil)
            // Below the first stored height (a store restarted after a snapshot): 410, not another block.
            let store = MemoryLedgerStore(clusterCount: 1)
            try store.install(LedgerSnapshot(shard: ShardID(0), round: 5, height: 5, head: .zero, localHead: .zero, state: KeyValueStore(),
                                             lastExecution: [:], crossShard: nil))
            #expect(store.firstStoredHeight == 6)
            #expect(try store.blocks(fromHeight: 3, maxCount: 4).isEmpty)
        }
    }
}
