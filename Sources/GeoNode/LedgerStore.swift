// Where the shell keeps the executed shard ledger and its state snapshots, so that the core keeps
// only a window of blocks and a restart starts from the latest snapshot instead of genesis.
//
// The daemon's store is GeoStore's BlockStore (blocks in ledger order, in segment files) and
// SnapshotStore (the latest two snapshots, each written atomically), with the snapshot encoded by
// GeoWire's SnapshotCodec; tests use the in-memory store. Owned by one ReplicaNode, never shared.

import GeoCore
import GeoStore
import GeoWire

public protocol LedgerStore: AnyObject {
    /// Appends an executed block at its ledger height; durable after `sync`.
    func append(_ block: CertifiedBlock, height: UInt64) throws
    func sync() throws
    /// The highest height appended (0 when empty).
    var storedHeight: UInt64 { get }
    /// The lowest height held (above storedHeight when empty; blocks below it were pruned or
    /// skipped by a state transfer).
    var firstStoredHeight: UInt64 { get }
    /// Up to `maxCount` blocks from `height` on, in ledger order (for ledger queries).
    func blocks(fromHeight height: UInt64, maxCount: Int) throws -> [CertifiedBlock]
    /// The blocks of `cluster` for `rounds`, those the store holds, in round order.
    func blocks(cluster: UInt16, rounds: ClosedRange<UInt64>) throws -> [CertifiedBlock]
    /// Writes a snapshot durably, then prunes what the retention setting allows.
    func write(_ snapshot: LedgerSnapshot) throws
    /// The snapshot at `height`, or else the oldest held above it (to serve a peer's state transfer).
    func snapshot(atOrAbove height: UInt64) throws -> LedgerSnapshot?
    /// Writes a snapshot state transfer installed, and goes on storing blocks after it.
    func install(_ snapshot: LedgerSnapshot) throws
    func close()
}

/// A ledger store in memory: for tests and tools that need no durability.
public final class MemoryLedgerStore: LedgerStore {
    /// Blocks from height `firstHeight` on.
    public private(set) var stored: [CertifiedBlock] = []
    public private(set) var firstHeight: UInt64 = 1
    public private(set) var snapshots: [LedgerSnapshot] = []
    let clusterCount: Int
    public init(clusterCount: Int) { self.clusterCount = clusterCount }
    public func append(_ block: CertifiedBlock, height: UInt64) throws {
        precondition(height == storedHeight + 1, "blocks are stored in ledger order")
        stored.append(block)
    }
    public func sync() throws {}
    public var storedHeight: UInt64 { firstHeight - 1 + UInt64(stored.count) }
    public var firstStoredHeight: UInt64 { firstHeight }
    public func blocks(fromHeight height: UInt64, maxCount: Int) throws -> [CertifiedBlock] {
        guard height >= firstHeight, height <= storedHeight, maxCount > 0 else { return [] }
        let start = Int(height - firstHeight)
        return Array(stored[start..<min(stored.count, start + maxCount)])
    }
    public func blocks(cluster: UInt16, rounds: ClosedRange<UInt64>) throws -> [CertifiedBlock] {
        var result: [CertifiedBlock] = []
        for round in rounds where round >= 1 {
            let height = ShardLedger.height(round: round, cluster: cluster, clusterCount: clusterCount)
            guard height <= storedHeight else { break }
            guard height >= firstHeight else { continue }
            result.append(stored[Int(height - firstHeight)])
        }
        return result
    }
    public func write(_ snapshot: LedgerSnapshot) throws { snapshots = Array((snapshots + [snapshot]).suffix(2)) }
    public func snapshot(atOrAbove height: UInt64) throws -> LedgerSnapshot? { snapshots.first { $0.height >= height } }
    /// Heights below the installed snapshot are kept as empty slots' worth of nothing: the array
    /// restarts, and `firstHeight` says where.
    public func install(_ snapshot: LedgerSnapshot) throws {
        try write(snapshot)
        stored = []
        firstHeight = snapshot.height + 1
    }
    public func close() {}
}

/// GeoStore's block and snapshot stores, in `DIR/blocks/` and `DIR/snapshots/` beside the log.
public final class DiskLedgerStore: LedgerStore {
    let blocks: BlockStore
    let snapshots: SnapshotStore
    let clusterCount: Int
    /// Rounds of blocks kept below the latest snapshot; 0 keeps every block.
    let retainRounds: UInt64
    let layout: CrossShardLayout?
    let limits: WireLimits
    let directory: String

    /// What a restart needs: the latest snapshot and the blocks the store holds after it.
    public struct Recovery {
        public var snapshot: LedgerSnapshot?
        public var blocksAfterSnapshot: [CertifiedBlock]
        public var blockStore: BlockStoreRecovery
        /// The block store ended below the snapshot and was restarted after it.
        public var blockStoreRestarted: Bool
    }

    /// Opens both stores in `directory` and reads what a restart needs. A snapshot that does not
    /// decode, or a block store that ends below the latest snapshot, is refused: the replica
    /// must not start from a state it cannot account for.
    /// `syncedRound`: the last round the log was told the store holds durably (above it, the log
    /// still holds the blocks, so a torn store there is cut, not refused).
    public static func open(directory: String, identity: LogIdentity, clusterCount: Int, layout: CrossShardLayout?,
                            limits: WireLimits, retainRounds: Int, syncedRound: UInt64) throws(StoreError) -> (DiskLedgerStore, Recovery) {
        let installing = try InstallIntent.pending(directory: directory)
        let (blocks, blockRecovery) = try BlockStore.open(directory: directory, identity: identity, clusterCount: clusterCount,
                                                         limits: limits, syncedThrough: syncedRound * UInt64(clusterCount))
        let snapshots: SnapshotStore
        let stored: StoredSnapshot?
        do throws(StoreError) {
            snapshots = try SnapshotStore.open(directory: directory, identity: identity)
            stored = try snapshots.latest()
        } catch {
            blocks.close()
            throw error
        }
        // From here every refusal must release both stores' locks.
        func refuse(_ error: StoreError) -> StoreError {
            blocks.close()
            snapshots.close()
            return error
        }
        var snapshot: LedgerSnapshot?
        var restartedAfterSnapshot = false
        if let stored {
            do throws(WireError) {
                snapshot = try SnapshotCodec.decode(stored.payload, layout: layout, limits: limits)
            } catch {
                throw refuse(.corrupt(path: stored.path, offset: SnapshotFormat.headerBytes,
                               reason: "the snapshot's checksum holds but its state does not decode: \(error)"))
            }
            guard snapshot!.height == stored.height else {
                throw refuse(.corrupt(path: stored.path, offset: 44, reason: "the header says height \(stored.height) but the state is at \(snapshot!.height)"))
            }
        }
        do throws(StoreError) {
            if let installing {
                // A state transfer's install was cut short: finish it if its snapshot is on disk.
                if stored?.height == installing, blocks.nextHeight != installing + 1 {
                    try blocks.restart(atNextHeight: installing + 1)
                    restartedAfterSnapshot = true
                }
                try InstallIntent.end(directory: directory)
            }
        } catch {
            throw refuse(error)
        }
        if let stored, blocks.lastHeight < stored.height {
            throw refuse(.corrupt(path: directory + "/" + BlockStoreFormat.directoryName, offset: 0,
                                  reason: "the block store ends at height \(blocks.lastHeight), below the latest snapshot "
                                  + "(\(stored.path), height \(stored.height)): blocks are missing (restore them, or remove the "
                                  + "data directory so that the replica rejoins by state transfer)"))
        }
        let from = (snapshot?.height ?? 0) + 1
        var after: [CertifiedBlock] = []
        if blocks.lastHeight >= from {
            do throws(StoreError) {
                guard blocks.firstHeight <= from else {
                    throw .corrupt(path: directory + "/blocks", offset: 0, reason: "the block store starts at height \(blocks.firstHeight), "
                                   + "above the latest snapshot's \(from - 1): blocks are missing")
                }
                after = try blocks.blocks(fromHeight: from, maxCount: Int(blocks.lastHeight - from + 1))
            } catch {
                throw refuse(error)
            }
        }
        let store = DiskLedgerStore(blocks: blocks, snapshots: snapshots, clusterCount: clusterCount, retainRounds: UInt64(retainRounds),
                                    layout: layout, limits: limits, directory: directory)
        return (store, Recovery(snapshot: snapshot, blocksAfterSnapshot: after, blockStore: blockRecovery,
                                blockStoreRestarted: restartedAfterSnapshot))
    }

    init(blocks: BlockStore, snapshots: SnapshotStore, clusterCount: Int, retainRounds: UInt64, layout: CrossShardLayout?,
         limits: WireLimits, directory: String) {
        self.directory = directory
        self.blocks = blocks
        self.snapshots = snapshots
        self.layout = layout
        self.limits = limits
        self.clusterCount = clusterCount
        self.retainRounds = retainRounds
    }

    public func append(_ block: CertifiedBlock, height: UInt64) throws { try blocks.append(block, height: height) }
    public func sync() throws { try blocks.sync() }
    public var storedHeight: UInt64 { blocks.lastHeight }
    public var firstStoredHeight: UInt64 { blocks.firstHeight }
    public func blocks(fromHeight height: UInt64, maxCount: Int) throws -> [CertifiedBlock] {
        try blocks.blocks(fromHeight: height, maxCount: maxCount)
    }
    public var diskBytes: Int { blocks.diskBytes }

    public func blocks(cluster: UInt16, rounds: ClosedRange<UInt64>) throws -> [CertifiedBlock] {
        var result: [CertifiedBlock] = []
        for round in rounds where round >= 1 {
            guard let block = try blocks.block(cluster: cluster, round: round) else { continue }
            result.append(block)
        }
        return result
    }

    public func write(_ snapshot: LedgerSnapshot) throws {
        try snapshots.write(height: snapshot.height, round: snapshot.round, payload: SnapshotCodec.encode(snapshot))
        guard retainRounds > 0, snapshot.round > retainRounds else { return }
        let keepFrom = ShardLedger.height(round: snapshot.round - retainRounds, cluster: 0, clusterCount: clusterCount)
        _ = try blocks.prune(belowHeight: keepFrom)
    }

    public func snapshot(atOrAbove height: UInt64) throws -> LedgerSnapshot? {
        guard let stored = try snapshots.snapshot(atOrAbove: height) else { return nil }
        do {
            return try SnapshotCodec.decode(stored.payload, layout: layout, limits: limits)
        } catch {
            throw StoreError.corrupt(path: stored.path, offset: SnapshotFormat.headerBytes,
                                     reason: "the snapshot's checksum holds but its state does not decode: \(error)")
        }
    }

    public func install(_ snapshot: LedgerSnapshot) throws {
        try InstallIntent.begin(directory: directory, height: snapshot.height)
        try snapshots.write(height: snapshot.height, round: snapshot.round, payload: SnapshotCodec.encode(snapshot))
        try blocks.restart(atNextHeight: snapshot.height + 1)
        try InstallIntent.end(directory: directory)
    }

    public func close() {
        blocks.close()
        snapshots.close()
    }

    deinit { close() }
}
