import GeoCore
import GeoWire
import Testing

@Suite struct SnapshotCodecTests {
    let layout = CrossShardLayout(placement: KeyPlacementTable(keyBuckets: 4, shards: [(ShardID(0), .hashBuckets(lower: 0, upper: 1)),
                                                                                    (ShardID(1), .hashBuckets(lower: 2, upper: 3))]),
                                  quorums: [[Quorum(n: 4)!], [Quorum(n: 4)!]], nearestCluster: [0, 0])

    /// A snapshot with something in every field, cross-shard state included.
    func sample(seed: UInt64) -> LedgerSnapshot {
        var generator = MessageGenerator(seed: seed)
        var values: [[UInt8]: [UInt8]] = [:]
        for _ in 0..<generator.int(0...50) { values[generator.bytes(max: 16)] = generator.bytes(max: 40) }
        var lastExecution: [ClientID: LastExecution] = [:]
        for client in 0..<UInt32(generator.int(0...20)) {
            let position = LedgerPosition(round: generator.u64(), clusterIndex: UInt16(generator.int(0...3)), height: generator.u64())
            lastExecution[ClientID(client)] = LastExecution(requestID: generator.u64(), result: client % 3 == 0 ? nil : generator.result(),
                                                            position: position)
        }
        var coordinating: [CrossShardID: CrossShardState.Coordination] = [:]
        var participating: [CrossShardID: CrossShardState.Participation] = [:]
        var locks: [[UInt8]: CrossShardID] = [:]
        var decisions: [CrossShardID: CrossShardVote] = [:]
        var order: [CrossShardID] = []
        for _ in 0..<generator.int(0...6) {
            let id = generator.crossShardID()
            locks[generator.bytes(max: 8)] = id
            coordinating[id] = CrossShardState.Coordination(
                transaction: generator.transaction(), homeCluster: 1, position: LedgerPosition(round: 3, clusterIndex: 0, height: 9),
                participants: [ShardID(1)], votes: [ShardID(1): generator.vote()], startedRound: generator.u64())
            participating[generator.crossShardID()] = CrossShardState.Participation(transaction: generator.transaction(), vote: generator.vote())
            let decided = generator.crossShardID()
            decisions[decided] = generator.vote()
            order.append(decided)
        }
        let watermarks = [CrossShardState.WatermarkKey(coordinator: ShardID(1), client: ClientID(4)): generator.u64()]
        let crossShard = CrossShardState(layout: layout, locks: locks, coordinating: coordinating, participating: participating,
                                         watermarks: watermarks, decisions: decisions, decisionOrder: order)
        return LedgerSnapshot(shard: ShardID(0), round: 64, height: 128, head: generator.digest(), localHead: generator.digest(),
                              state: KeyValueStore(values: values), lastExecution: lastExecution, crossShard: crossShard)
    }

    @Test(arguments: 1...20 as ClosedRange<UInt64>)
    func roundTrip(seed: UInt64) throws {
        let snapshot = sample(seed: seed)
        let bytes = SnapshotCodec.encode(snapshot)
        #expect(try SnapshotCodec.decode(bytes, layout: layout) == snapshot)
        // Canonical: equal states encode to equal bytes, whatever the dictionaries' order.
        #expect(SnapshotCodec.encode(try SnapshotCodec.decode(bytes, layout: layout)) == bytes)
    }

    @Test func singleShardSnapshotRoundTrips() throws {
        var snapshot = sample(seed: 99)
        snapshot.crossShard = nil
        #expect(try SnapshotCodec.decode(SnapshotCodec.encode(snapshot), layout: nil) == snapshot)
    }

    @Test func truncatedOrExtendedBytesAreRefused() {
        let bytes = SnapshotCodec.encode(sample(seed: 5))
        for cut in [1, bytes.count / 2, bytes.count - 1] {
            #expect(throws: WireError.self) { try SnapshotCodec.decode(Array(bytes.prefix(cut)), layout: layout) }
        }
        #expect(throws: WireError.self) { try SnapshotCodec.decode(bytes + [0], layout: layout) }
        // A cross-shard snapshot read without a layout (a topology that lost its shards) is refused.
        #expect(throws: WireError.self) { try SnapshotCodec.decode(bytes, layout: nil) }
    }

    @Test func aHugeDeclaredCountIsRefusedBeforeAllocating() {
        var bytes = SnapshotCodec.encode(LedgerSnapshot(shard: ShardID(0), round: 0, height: 0, head: .zero, localHead: .zero,
                                                        state: KeyValueStore(), lastExecution: [:], crossShard: nil))
        // The key-value count sits after version, shard, round, height and the two heads.
        let offset = 1 + 2 + 8 + 8 + 32 + 32
        for index in 0..<4 { bytes[offset + index] = 0xFF }
        #expect(throws: WireError.self) { try SnapshotCodec.decode(bytes, layout: nil) }
    }
}
