// The encoding of a LedgerSnapshot: the shard ledger's executed state at a snapshot round, as a
// replica writes it to disk (GeoStore's SnapshotStore holds the bytes) and reads it back on
// restart. Canonical: every map is written sorted by key, so two replicas with equal states write
// equal bytes (what a digest of the state, compared across replicas, needs). Decoding is as strict
// as a frame's: lengths are checked against what is left before anything is allocated, unknown
// tags and leftover bytes are refused.
//
//   u8   snapshot format version (SnapshotCodec.version)
//   u16  shard; u64 round; u64 height; 32-byte head; 32-byte local head
//   u32  count, then per key-value pair (keys ascending, bytewise): blob key, blob value
//   u32  count, then per client (ascending): u32 client, u64 request id, u8 has result,
//        [result], position (u64 round, u16 cluster index, u64 height)
//   u8   cross-shard state present (0/1), then: locks (u32 count; blob key, id), coordinations
//        (u32 count; id, transaction, u16 home cluster, position, u32 count of participant
//        shards u16, u32 count of votes (u16 shard, vote), u64 started round), participations
//        (u32 count; id, transaction, vote), watermarks (u32 count; u16 coordinator, u32 client,
//        u64 request id), decisions (u32 count; id, vote, ascending by id), decision order
//        (u32 count; id, oldest first)

import GeoCore

public enum SnapshotCodec {
    public static let version: UInt8 = 1

    public static func encode(_ snapshot: LedgerSnapshot) -> [UInt8] {
        var writer = ByteWriter(capacity: 4096 + snapshot.state.values.count * 32)
        writer.u8(version)
        writer.u16(snapshot.shard.rawValue)
        writer.u64(snapshot.round)
        writer.u64(snapshot.height)
        writer.digest(snapshot.head)
        writer.digest(snapshot.localHead)
        let values = snapshot.state.values.sorted { $0.key.lexicographicallyPrecedes($1.key) }
        writer.u32(UInt32(values.count))
        for (key, value) in values {
            writer.blob(key)
            writer.blob(value)
        }
        writer.u32(UInt32(snapshot.lastExecution.count))
        for (client, last) in snapshot.lastExecution.sorted(by: { $0.key < $1.key }) {
            writer.u32(client.rawValue)
            writer.u64(last.requestID)
            if let result = last.result {
                writer.u8(1)
                MessageCodec.encode(result, into: &writer)
            } else {
                writer.u8(0)
            }
            encode(last.position, into: &writer)
        }
        if let crossShard = snapshot.crossShard {
            writer.u8(1)
            encode(crossShard, into: &writer)
        } else {
            writer.u8(0)
        }
        return writer.bytes
    }

    static func encode(_ position: LedgerPosition, into writer: inout ByteWriter) {
        writer.u64(position.round)
        writer.u16(position.clusterIndex)
        writer.u64(position.height)
    }

    static func encode(_ state: CrossShardState, into writer: inout ByteWriter) {
        let locks = state.locks.sorted { $0.key.lexicographicallyPrecedes($1.key) }
        writer.u32(UInt32(locks.count))
        for (key, id) in locks {
            writer.blob(key)
            MessageCodec.encode(id, into: &writer)
        }
        writer.u32(UInt32(state.coordinating.count))
        for (id, coordination) in state.coordinating.sorted(by: { $0.key < $1.key }) {
            MessageCodec.encode(id, into: &writer)
            MessageCodec.encode(coordination.transaction, into: &writer)
            writer.u16(coordination.homeCluster)
            encode(coordination.position, into: &writer)
            writer.u32(UInt32(coordination.participants.count))
            for shard in coordination.participants { writer.u16(shard.rawValue) }
            writer.u32(UInt32(coordination.votes.count))
            for (shard, vote) in coordination.votes.sorted(by: { $0.key < $1.key }) {
                writer.u16(shard.rawValue)
                MessageCodec.encode(vote, into: &writer)
            }
            writer.u64(coordination.startedRound)
        }
        writer.u32(UInt32(state.participating.count))
        for (id, participation) in state.participating.sorted(by: { $0.key < $1.key }) {
            MessageCodec.encode(id, into: &writer)
            MessageCodec.encode(participation.transaction, into: &writer)
            MessageCodec.encode(participation.vote, into: &writer)
        }
        writer.u32(UInt32(state.watermarks.count))
        for (key, requestID) in state.watermarks.sorted(by: { ($0.key.coordinator, $0.key.client) < ($1.key.coordinator, $1.key.client) }) {
            writer.u16(key.coordinator.rawValue)
            writer.u32(key.client.rawValue)
            writer.u64(requestID)
        }
        writer.u32(UInt32(state.decisions.count))
        for (id, vote) in state.decisions.sorted(by: { $0.key < $1.key }) {
            MessageCodec.encode(id, into: &writer)
            MessageCodec.encode(vote, into: &writer)
        }
        writer.u32(UInt32(state.decisionOrder.count))
        for id in state.decisionOrder { MessageCodec.encode(id, into: &writer) }
    }

    // MARK: Decoding

    /// Decodes a snapshot; `layout` is the replica's cross-shard layout (nil with one shard),
    /// which the snapshot does not hold. A snapshot with cross-shard state and no layout, or the
    /// reverse, is refused.
    public static func decode(_ bytes: [UInt8], layout: CrossShardLayout?, limits: WireLimits = WireLimits()) throws(WireError) -> LedgerSnapshot {
        let result: Result<LedgerSnapshot, WireError> = bytes.withUnsafeBytes { buffer in
            do throws(WireError) {
                var reader = ByteReader(buffer)
                let snapshot = try decode(&reader, layout: layout, limits: limits)
                guard reader.remaining == 0 else { throw .trailingBytes(count: reader.remaining) }
                return .success(snapshot)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// The layout a snapshot decoded from the wire carries until its receiver puts in its own.
    public static let placeholderLayout = CrossShardLayout(placement: .single, quorums: [], nearestCluster: [])

    static func decode(_ reader: inout ByteReader, layout: CrossShardLayout?, limits: WireLimits,
                       crossShardOptional: Bool = false) throws(WireError) -> LedgerSnapshot {
        let format = try reader.u8("snapshot.version")
        guard format == version else { throw .invalidTag(field: "snapshot.version", value: UInt64(format)) }
        let shard = ShardID(try reader.u16("snapshot.shard"))
        let round = try reader.u64("snapshot.round")
        let height = try reader.u64("snapshot.height")
        let head = try reader.digest("snapshot.head")
        let localHead = try reader.digest("snapshot.localHead")
        let valueCount = try reader.count("snapshot.values", minimumElementBytes: 8, limit: .max)
        var values: [[UInt8]: [UInt8]] = [:]
        values.reserveCapacity(valueCount)
        var previous: [UInt8]?
        for _ in 0..<valueCount {
            let key = try reader.blob("snapshot.key", limit: limits.maxKeyBytes)
            // Strictly ascending: a canonical encoding, and no key twice.
            if let previous, !previous.lexicographicallyPrecedes(key) { throw .invalidValue(field: "snapshot.key", reason: "keys out of order or repeated") }
            previous = key
            values[key] = try reader.blob("snapshot.value", limit: limits.maxValueBytes)
        }
        let clientCount = try reader.count("snapshot.clients", minimumElementBytes: 4 + 8 + 1 + 18, limit: .max)
        var lastExecution: [ClientID: LastExecution] = [:]
        lastExecution.reserveCapacity(clientCount)
        var previousClient: ClientID?
        for _ in 0..<clientCount {
            let client = ClientID(try reader.u32("snapshot.client"))
            try ascending(&previousClient, client, "snapshot.client")
            let requestID = try reader.u64("snapshot.requestID")
            let hasResult = try reader.u8("snapshot.hasResult")
            guard hasResult <= 1 else { throw .invalidTag(field: "snapshot.hasResult", value: UInt64(hasResult)) }
            let result = hasResult == 1 ? try MessageCodec.decodeResult(&reader, limits: limits) : nil
            lastExecution[client] = LastExecution(requestID: requestID, result: result, position: try decodePosition(&reader))
        }
        let hasCrossShard = try reader.u8("snapshot.crossShard")
        guard hasCrossShard <= 1 else { throw .invalidTag(field: "snapshot.crossShard", value: UInt64(hasCrossShard)) }
        var crossShard: CrossShardState?
        switch (hasCrossShard == 1, layout) {
        case (false, nil): crossShard = nil
        case (false, _) where crossShardOptional: crossShard = nil
        case let (true, layout?): crossShard = try decodeCrossShard(&reader, layout: layout, limits: limits)
        default: throw .invalidTag(field: "snapshot.crossShard.layout", value: UInt64(hasCrossShard))
        }
        return LedgerSnapshot(shard: shard, round: round, height: height, head: head, localHead: localHead,
                              state: KeyValueStore(values: values), lastExecution: lastExecution, crossShard: crossShard)
    }

    /// Canonical form: every map's keys strictly ascending (so no key twice, and one encoding per state).
    static func ascending<Key: Comparable>(_ previous: inout Key?, _ key: Key, _ field: String) throws(WireError) {
        if let previous, !(previous < key) { throw .invalidValue(field: field, reason: "keys out of order or repeated") }
        previous = key
    }

    static func ascendingBytes(_ previous: inout [UInt8]?, _ key: [UInt8], _ field: String) throws(WireError) {
        if let previous, !previous.lexicographicallyPrecedes(key) { throw .invalidValue(field: field, reason: "keys out of order or repeated") }
        previous = key
    }

    static func decodePosition(_ reader: inout ByteReader) throws(WireError) -> LedgerPosition {
        LedgerPosition(round: try reader.u64("position.round"), clusterIndex: try reader.u16("position.cluster"),
                       height: try reader.u64("position.height"))
    }

    static func decodeCrossShard(_ reader: inout ByteReader, layout: CrossShardLayout, limits: WireLimits) throws(WireError) -> CrossShardState {
        var locks: [[UInt8]: CrossShardID] = [:]
        var previousKey: [UInt8]?
        for _ in 0..<(try reader.count("snapshot.locks", minimumElementBytes: 4 + 14, limit: .max)) {
            let key = try reader.blob("snapshot.lock.key", limit: limits.maxKeyBytes)
            try ascendingBytes(&previousKey, key, "snapshot.lock.key")
            locks[key] = try MessageCodec.decodeCrossShardID(&reader)
        }
        var coordinating: [CrossShardID: CrossShardState.Coordination] = [:]
        var previousID: CrossShardID?
        for _ in 0..<(try reader.count("snapshot.coordinating", minimumElementBytes: 14, limit: .max)) {
            let id = try MessageCodec.decodeCrossShardID(&reader)
            try ascending(&previousID, id, "snapshot.coordinating")
            let transaction = try MessageCodec.decodeTransaction(&reader, limits: limits)
            let homeCluster = try reader.u16("snapshot.homeCluster")
            let position = try decodePosition(&reader)
            var participants: [ShardID] = []
            for _ in 0..<(try reader.count("snapshot.participants", minimumElementBytes: 2, limit: 65_536)) {
                participants.append(ShardID(try reader.u16("snapshot.participant")))
            }
            var votes: [ShardID: CrossShardVote] = [:]
            var previousShard: ShardID?
            for _ in 0..<(try reader.count("snapshot.votes", minimumElementBytes: 3, limit: 65_536)) {
                let shard = ShardID(try reader.u16("snapshot.vote.shard"))
                try ascending(&previousShard, shard, "snapshot.vote.shard")
                votes[shard] = try MessageCodec.decodeVote(&reader)
            }
            coordinating[id] = CrossShardState.Coordination(transaction: transaction, homeCluster: homeCluster, position: position,
                                                            participants: participants, votes: votes,
                                                            startedRound: try reader.u64("snapshot.startedRound"))
        }
        var participating: [CrossShardID: CrossShardState.Participation] = [:]
        previousID = nil
        for _ in 0..<(try reader.count("snapshot.participating", minimumElementBytes: 14, limit: .max)) {
            let id = try MessageCodec.decodeCrossShardID(&reader)
            try ascending(&previousID, id, "snapshot.participating")
            let transaction = try MessageCodec.decodeTransaction(&reader, limits: limits)
            participating[id] = CrossShardState.Participation(transaction: transaction, vote: try MessageCodec.decodeVote(&reader))
        }
        var watermarks: [CrossShardState.WatermarkKey: UInt64] = [:]
        var previousWatermark: WatermarkOrder?
        for _ in 0..<(try reader.count("snapshot.watermarks", minimumElementBytes: 14, limit: .max)) {
            let key = CrossShardState.WatermarkKey(coordinator: ShardID(try reader.u16("snapshot.watermark.shard")),
                                                   client: ClientID(try reader.u32("snapshot.watermark.client")))
            try ascending(&previousWatermark, WatermarkOrder(key), "snapshot.watermark")
            watermarks[key] = try reader.u64("snapshot.watermark")
        }
        var decisions: [CrossShardID: CrossShardVote] = [:]
        previousID = nil
        for _ in 0..<(try reader.count("snapshot.decisions", minimumElementBytes: 15, limit: .max)) {
            let id = try MessageCodec.decodeCrossShardID(&reader)
            try ascending(&previousID, id, "snapshot.decisions")
            decisions[id] = try MessageCodec.decodeVote(&reader)
        }
        var decisionOrder: [CrossShardID] = []
        for _ in 0..<(try reader.count("snapshot.decisionOrder", minimumElementBytes: 14, limit: .max)) {
            decisionOrder.append(try MessageCodec.decodeCrossShardID(&reader))
        }
        return CrossShardState(layout: layout, locks: locks, coordinating: coordinating, participating: participating,
                               watermarks: watermarks, decisions: decisions, decisionOrder: decisionOrder)
    }
}

/// The watermarks' order in a snapshot: by coordinator shard, then client.
struct WatermarkOrder: Comparable {
    var coordinator: ShardID
    var client: ClientID
    init(_ key: CrossShardState.WatermarkKey) {
        coordinator = key.coordinator
        client = key.client
    }
    static func < (lhs: WatermarkOrder, rhs: WatermarkOrder) -> Bool { (lhs.coordinator, lhs.client) < (rhs.coordinator, rhs.client) }
}
