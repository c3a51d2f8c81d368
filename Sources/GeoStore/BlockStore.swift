// The executed blocks of a replica's shard ledger, in ledger order, on disk, so that the replica's
// memory does not grow with the ledger.
//
// Ledger height h (1-based) holds exactly one certified block. Every round of a shard has exactly
// one block per cluster, executed in cluster order, so height and (cluster index, round) map one to
// one: height = (round - 1) * clusterCount + clusterIndex + 1. The store knows clusterCount and
// refuses to append a block whose cluster and round do not belong at the height.
//
// Directory layout (DIR/blocks, beside the replica log):
//   segment-<first height, 20 digits>.blk   segments of the ledger, in height order
//   *.tmp                                   a segment being created; never read, removed at open
//   LOCK                                    held with flock while the store is open
// Files with other names are ignored.
//
// A segment, all integers little-endian:
//
//   header, 66 bytes
//   offset size field
//   0      4    magic "GFBS"
//   4      2    format version (BlockStoreFormat.version)
//   6      2    reserved, zero
//   8      4    replica number (LogIdentity)
//   12     32   topology digest (LogIdentity)
//   44     8    first height (the height of the segment's first record; equals the file name's)
//   52     2    cluster count
//   54     8    size of the segment before this one when this one began (0 for the first): a
//                sealed segment's size must equal it, which catches a missing or cut segment
//                without reading the sealed one
//   62     4    CRC-32C of bytes 0..<62
//
//   then records, back to back, each framed as
//   0      4    payload length n (BlockStoreFormat.minimumPayloadBytes ... maximumPayloadBytes)
//   4      4    CRC-32C of the payload
//   8      n    payload: u64 height, then the CertifiedBlock (MessageCodec)
//
// The records of a segment hold consecutive heights from its first height on, and each segment
// starts where the one before it ends. A new segment starts when the current one has reached
// `segmentBytes`; its header reaches the disk through a synced temporary file and a rename, so a
// segment never lacks a complete header. The segment before it is synced first, so only the last
// segment can ever end in a torn write.
//
// Recovery rules, as in the replica log (ReplicaLog.swift): a broken frame (cut short, or failing
// its checksum, or zeros where the filesystem grew the file) with no valid record anywhere after it
// in the last segment is a torn tail: it is cut off and reported. Anything else is damage and is
// refused with StoreError.corrupt, naming the segment and the byte offset, with nothing on disk
// changed: a bad header, a broken frame with a valid record after it, a broken frame anywhere in a
// segment that is not the last, a record whose checksum holds but which does not decode or holds
// the wrong height (a gap or a repeat) or a block that does not belong at its height.
//
// Restart time does not grow with the ledger either: at open only the last segment (at most
// `segmentBytes`) is scanned record by record. A sealed segment (one with a successor) was synced
// before its successor began, so it cannot hold a torn write; open checks its header and that the
// heights run on (its record count is the next segment's first height minus its own), and its
// records are scanned, checksums and all, the first time one of them is read, or by `verify()`.
// Damage found then is refused as at open: `.corrupt` with the segment and the offset.
//
// Memory does not grow per block: the store keeps, per segment, its first height, its size, its
// record count and a sparse index holding the offset of every `indexStride`-th record (heights
// within a segment are consecutive, so the index needs no heights). Reading height h reads at most
// `indexStride - 1` frame headers (8 bytes each) forward from the nearest indexed record, then the
// record itself. With 64 MiB segments and 256-record strides the index is a few KiB per segment.
//
// Pruning removes whole segments, oldest first, syncing the directory after each removal, so that
// after any crash the segments left still hold contiguous heights.

import GeoCore
import GeoWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

public enum BlockStoreFormat {
    /// "GFBS" as the first four bytes of a segment.
    public static let magic: UInt32 = 0x5342_4647
    public static let version: UInt16 = 1
    public static let headerBytes = 66
    /// Length and checksum before each record's payload.
    public static let recordFrameBytes = 8
    public static let directoryName = "blocks"
    public static let lockFileName = "LOCK"
    static let segmentPrefix = "segment-"
    static let segmentSuffix = ".blk"

    /// The smallest payload: the height and a certified block with no transactions and no
    /// signers (block: cluster 4, round 8, count 4; certificate: statement 52, count 4). A frame
    /// declaring less is broken, which also keeps a zero-filled tail (length 0, checksum 0, the CRC
    /// of nothing) from reading as a record.
    public static let minimumPayloadBytes = 8 + 16 + 56

    /// The largest payload recovery accepts, and so the largest append accepts: the height, a
    /// certified block that fits in one frame, plus a full list of signers (a certificate assembled
    /// locally never went over the wire whole), as DurableRecordCodec allows for a delivered block.
    public static func maximumPayloadBytes(_ limits: WireLimits) -> Int {
        8 + limits.maxBodyBytes + limits.maxCertificateSignatures * (2 + Signature.byteCount)
    }

    public static func segmentFileName(firstHeight: UInt64) -> String {
        segmentPrefix + POSIXFile.paddedNumber(firstHeight) + segmentSuffix
    }

    /// One index entry per this many records of a segment (see the top of this file).
    static let indexStride = 256
}

/// What `BlockStore.open` found.
public struct BlockStoreRecovery: Hashable, Sendable {
    /// The lowest stored height (after pruning it can be above 1); `nextHeight` when empty.
    public var firstHeight: UInt64
    /// The height the next append must have.
    public var nextHeight: UInt64
    /// Blocks stored.
    public var blocks: Int
    public var segments: Int
    /// Bytes of a torn tail cut off the end of the last segment (0 when it ended cleanly).
    public var truncatedBytes: Int
    /// Why the tail counted as torn, for the daemon's log line.
    public var truncationReason: String?
    /// The store held no segment and was created empty.
    public var created: Bool
    /// `*.tmp` files left by a crash while creating a segment, now removed.
    public var removedTemporaryFiles: Int
}

/// The executed blocks of one replica's shard ledger.
///
/// Not Sendable, on purpose, like ReplicaLog: it owns file descriptors and a write position, so
/// exactly one owner makes every call, in order. Appends are durable only after `sync()`; reads
/// see appended records whether synced or not.
///
/// After any failed write, sync or removal the store refuses further use (`StoreError.unusable`):
/// what reached the disk is then unknown, and restarting recovers from what is on disk.
public final class BlockStore {
    /// DIR/blocks.
    public let directory: String
    public let identity: LogIdentity
    public let clusterCount: Int
    public let limits: WireLimits
    public let segmentBytes: Int

    struct Segment {
        let firstHeight: UInt64
        let path: String
        /// Size of the file (up to the last valid record), synced or not.
        var bytes: Int
        var records: Int
        /// index[k] is the offset of the record at height firstHeight + k * indexStride.
        var index: [Int]
        /// Whether its records were scanned (the last segment at open; a sealed one when first read).
        var scanned = true
        var nextHeight: UInt64 { firstHeight + UInt64(records) }
    }

    /// Ascending by first height, never empty while open; the last one is the one appended to.
    private var segments: [Segment]
    /// The last segment, open read-write.
    private var descriptor: Int32
    private var lockDescriptor: Int32
    /// One older segment kept open for reading, so that reading a run of heights does not reopen it.
    private var reader: (firstHeight: UInt64, descriptor: Int32)?
    /// Bytes of the last segment known durable.
    private var syncedBytes: Int
    /// A segment was created since the last sync: the directory entry is not durable yet.
    private var directoryDirty = false
    private var failure: String?
    private let maximumPayloadBytes: Int

    private init(directory: String, identity: LogIdentity, clusterCount: Int, limits: WireLimits, segmentBytes: Int,
                 segments: [Segment], descriptor: Int32, lockDescriptor: Int32) {
        self.directory = directory
        self.identity = identity
        self.clusterCount = clusterCount
        self.limits = limits
        self.segmentBytes = segmentBytes
        self.segments = segments
        self.descriptor = descriptor
        self.lockDescriptor = lockDescriptor
        self.syncedBytes = segments[segments.count - 1].bytes
        self.maximumPayloadBytes = BlockStoreFormat.maximumPayloadBytes(limits)
    }

    deinit { close() }

    // MARK: Heights

    /// The lowest stored height (above 1 after pruning); `nextHeight` when the store is empty.
    public var firstHeight: UInt64 { segments[0].firstHeight }
    /// The highest stored height, 0 when the store is empty.
    /// The height the store has reached: its last block, or, empty after `restart`, the height
    /// before its first (0 for a new store).
    public var lastHeight: UInt64 { nextHeight - 1 }
    /// The height the next append must have.
    public var nextHeight: UInt64 { segments[segments.count - 1].nextHeight }
    /// Bytes of every segment, synced or not.
    public var diskBytes: Int { segments.reduce(0) { $0 + $1.bytes } }
    /// Entries of the in-memory index: one per segment plus one per `indexStride` records of each.
    var indexEntryCount: Int { segments.reduce(segments.count) { $0 + $1.index.count } }
    var segmentCount: Int { segments.count }
    var segmentPaths: [String] { segments.map(\.path) }

    /// The cluster index and round of the block at `height` (>= 1).
    static func position(ofHeight height: UInt64, clusterCount: Int) -> (cluster: UInt16, round: UInt64) {
        let count = UInt64(clusterCount)
        return (UInt16((height - 1) % count), (height - 1) / count + 1)
    }

    /// The height of the block of `cluster` in `round`; nil when there is none.
    static func height(cluster: UInt16, round: UInt64, clusterCount: Int) -> UInt64? {
        guard round >= 1, Int(cluster) < clusterCount else { return nil }
        let (product, overflow) = (round - 1).multipliedReportingOverflow(by: UInt64(clusterCount))
        guard !overflow, product < UInt64.max - UInt64(cluster) else { return nil }
        return product + UInt64(cluster) + 1
    }

    // MARK: Opening

    /// Opens the store in `directory`/blocks, creating it when missing, otherwise recovering: every
    /// segment and record is checked, a torn tail of the last segment is cut off (and reported), and
    /// any other damage is refused with `.corrupt` without changing anything on disk.
    ///
    /// `syncedThrough`: the caller knows the store was synced through this height and no further
    /// (its durable log still holds every block above it). A broken record above it, in the last
    /// segment, is a torn tail even when valid records follow: without a sync, the disk may have
    /// written a later page before an earlier one. Below it, that is damage.
    public static func open(directory: String, identity: LogIdentity, clusterCount: Int, limits: WireLimits = WireLimits(),
                            segmentBytes: Int = 64 << 20, syncedThrough: UInt64 = .max) throws(StoreError) -> (BlockStore, BlockStoreRecovery) {
        precondition(clusterCount >= 1 && clusterCount <= Int(UInt16.max), "a shard has 1 ... 65535 clusters")
        precondition(segmentBytes > 0, "segments need a positive size")
        let blocks = directory + "/" + BlockStoreFormat.directoryName
        try POSIXFile.makeDirectories(blocks)
        let lockDescriptor = try POSIXFile.lock(blocks + "/" + BlockStoreFormat.lockFileName)
        do throws(StoreError) {
            let files = try POSIXFile.listDirectory(blocks).compactMap { name -> (UInt64, String)? in
                POSIXFile.numberedName(name, prefix: BlockStoreFormat.segmentPrefix, suffix: BlockStoreFormat.segmentSuffix)
                    .map { ($0, blocks + "/" + name) }
            }.sorted { $0.0 < $1.0 }
            var scans: [SegmentScan] = []
            for (position, (firstHeight, path)) in files.enumerated() {
                if position < files.count - 1 {
                    scans.append(try checkSealedSegment(path, firstHeight: firstHeight, next: files[position + 1],
                                                        identity: identity, clusterCount: clusterCount))
                    continue
                }
                scans.append(try scanSegment(path, firstHeight: firstHeight, after: scans.last?.segment,
                                             isLast: true, identity: identity,
                                             clusterCount: clusterCount, limits: limits, syncedThrough: syncedThrough))
            }
            // Only now that every segment checked out may anything on disk change.
            let removed = try POSIXFile.removeTemporaryFiles(in: blocks)
            let descriptor: Int32
            var segments = scans.map(\.segment)
            var recovery = BlockStoreRecovery(firstHeight: 1, nextHeight: 1, blocks: 0, segments: 0, truncatedBytes: 0,
                                              truncationReason: nil, created: false, removedTemporaryFiles: removed)
            if let last = scans.last {
                descriptor = try POSIXFile.openFile(last.segment.path, flags: O_RDWR)
                if last.segment.bytes < last.fileBytes {
                    do throws(StoreError) {
                        try POSIXFile.truncate(descriptor, to: last.segment.bytes, path: last.segment.path)
                        try POSIXFile.syncData(descriptor, path: last.segment.path)
                    } catch {
                        POSIXFile.closeFile(descriptor)
                        throw error
                    }
                    recovery.truncatedBytes = last.fileBytes - last.segment.bytes
                    recovery.truncationReason = last.tornReason
                }
            } else {
                descriptor = try createSegment(in: blocks, firstHeight: 1, identity: identity, clusterCount: clusterCount,
                                               syncDirectory: true)
                segments = [Segment(firstHeight: 1, path: blocks + "/" + BlockStoreFormat.segmentFileName(firstHeight: 1),
                                    bytes: BlockStoreFormat.headerBytes, records: 0, index: [])]
                recovery.created = true
            }
            let store = BlockStore(directory: blocks, identity: identity, clusterCount: clusterCount, limits: limits,
                                   segmentBytes: segmentBytes, segments: segments, descriptor: descriptor,
                                   lockDescriptor: lockDescriptor)
            recovery.firstHeight = store.firstHeight
            recovery.nextHeight = store.nextHeight
            recovery.blocks = Int(store.nextHeight - store.firstHeight)
            recovery.segments = segments.count
            return (store, recovery)
        } catch {
            POSIXFile.closeFile(lockDescriptor)
            throw error
        }
    }

    /// Writes a segment holding only its header through a temporary file, so that a crash never
    /// leaves a segment without a complete header. Returns the new segment, open read-write.
    private static func createSegment(in directory: String, firstHeight: UInt64, identity: LogIdentity,
                                      clusterCount: Int, previousBytes: Int = 0, syncDirectory: Bool) throws(StoreError) -> Int32 {
        let path = directory + "/" + BlockStoreFormat.segmentFileName(firstHeight: firstHeight)
        let temporary = path + ".tmp"
        let descriptor = try POSIXFile.openFile(temporary, flags: O_RDWR | O_CREAT | O_TRUNC)
        do throws(StoreError) {
            var writer = ByteWriter(capacity: BlockStoreFormat.headerBytes)
            encodeHeader(identity, firstHeight: firstHeight, clusterCount: clusterCount, previousBytes: previousBytes, into: &writer)
            try POSIXFile.writeFully(descriptor, writer.bytes, at: 0, path: temporary)
            try POSIXFile.syncAll(descriptor, path: temporary)
            try POSIXFile.renameFile(temporary, to: path)
            if syncDirectory { try POSIXFile.syncDirectory(directory) }
            return descriptor
        } catch {
            POSIXFile.closeFile(descriptor)
            try? POSIXFile.removeFile(temporary)
            throw error
        }
    }

    private struct SegmentScan {
        /// The segment as it will be once a torn tail is cut (bytes: where the last valid record ends).
        var segment: Segment
        var fileBytes: Int
        var tornReason: String?
    }

    /// A sealed segment at open: its header, and heights that run on to the next segment's. Its
    /// records are scanned when first read (`scanSealed`).
    private static func checkSealedSegment(_ path: String, firstHeight: UInt64, next: (firstHeight: UInt64, path: String),
                                           identity: LogIdentity, clusterCount: Int) throws(StoreError) -> SegmentScan {
        let (size, _) = try readHeader(path, firstHeight: firstHeight, identity: identity, clusterCount: clusterCount)
        let (_, previousBytes) = try readHeader(next.path, firstHeight: next.firstHeight, identity: identity, clusterCount: clusterCount)
        guard previousBytes == size else {
            throw .corrupt(path: next.path, offset: 54, reason: "this segment began after a segment of \(previousBytes) bytes, but the one "
                           + "before it (\(path)) is \(size) bytes: a segment is missing or was cut, and heights must be contiguous")
        }
        let nextFirstHeight = next.firstHeight
        guard nextFirstHeight > firstHeight, size > BlockStoreFormat.headerBytes else {
            throw .corrupt(path: path, offset: BlockStoreFormat.headerBytes,
                           reason: "a sealed segment holds no block (the next one starts at height \(nextFirstHeight))")
        }
        var segment = Segment(firstHeight: firstHeight, path: path, bytes: size, records: Int(nextFirstHeight - firstHeight), index: [])
        segment.scanned = false
        return SegmentScan(segment: segment, fileBytes: size, tornReason: nil)
    }

    /// Reads and checks a segment's header; returns the file's size and the size the header says
    /// the segment before it had.
    private static func readHeader(_ path: String, firstHeight: UInt64, identity: LogIdentity,
                                   clusterCount: Int) throws(StoreError) -> (size: Int, previousBytes: Int) {
        let descriptor = try POSIXFile.openFile(path, flags: O_RDONLY)
        defer { POSIXFile.closeFile(descriptor) }
        let size = try POSIXFile.size(descriptor, path: path)
        guard let header = try POSIXFile.read(descriptor, count: BlockStoreFormat.headerBytes, at: 0, path: path) else {
            throw .corrupt(path: path, offset: 0,
                           reason: "the file is \(size) bytes, shorter than the \(BlockStoreFormat.headerBytes)-byte header")
        }
        let checked: Result<Int, StoreError> = header.withUnsafeBytes { buffer in
            do throws(StoreError) {
                try checkHeader(buffer, path: path, identity: identity, clusterCount: clusterCount, firstHeight: firstHeight)
                return .success(Int(exactly: UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: 54, as: UInt64.self))) ?? -1)
            } catch {
                return .failure(error)
            }
        }
        return (size, try checked.get())
    }

    /// Scans a sealed segment's records the first time it is read: every checksum, the heights it
    /// must hold, and its sparse index. Damage is refused as at open.
    private func scanSealed(_ number: Int) throws(StoreError) {
        guard !segments[number].scanned else { return }
        let sealed = segments[number]
        let scan = try Self.scanSegment(sealed.path, firstHeight: sealed.firstHeight, after: nil, isLast: false, identity: identity,
                                        clusterCount: clusterCount, limits: limits, syncedThrough: .max)
        guard scan.segment.records == sealed.records else {
            throw .corrupt(path: sealed.path, offset: scan.segment.bytes,
                           reason: "the segment holds \(scan.segment.records) blocks, but the next one starts \(sealed.records) heights "
                           + "after it: heights must be contiguous")
        }
        segments[number] = scan.segment
    }

    /// Scans every sealed segment not scanned yet (a full check of the store's checksums; open
    /// scans only the last segment, so that restart time does not grow with the ledger).
    public func verify() throws(StoreError) {
        try checkUsable()
        for number in segments.indices { try scanSealed(number) }
    }

    /// Reads and checks one segment; `previous` is the segment before it, if any. Changes nothing.
    private static func scanSegment(_ path: String, firstHeight: UInt64, after previous: Segment?, isLast: Bool,
                                    identity: LogIdentity, clusterCount: Int, limits: WireLimits,
                                    syncedThrough: UInt64) throws(StoreError) -> SegmentScan {
        let descriptor = try POSIXFile.openFile(path, flags: O_RDONLY)
        defer { POSIXFile.closeFile(descriptor) }
        let size = try POSIXFile.size(descriptor, path: path)
        guard size >= BlockStoreFormat.headerBytes else {
            // Never a torn write: the header reaches a segment only through a synced rename.
            throw .corrupt(path: path, offset: 0,
                           reason: "the file is \(size) bytes, shorter than the \(BlockStoreFormat.headerBytes)-byte header")
        }
        let file = try POSIXFile.map(descriptor, length: size, path: path)
        defer { POSIXFile.unmap(file) }
        try checkHeader(file, path: path, identity: identity, clusterCount: clusterCount, firstHeight: firstHeight)
        if let previous, previous.nextHeight != firstHeight {
            throw .corrupt(path: path, offset: 44, reason: "the segment starts at height \(firstHeight), but the one before it "
                           + "(\(previous.path)) ends at height \(previous.nextHeight - 1): heights must be contiguous")
        }
        let maximum = BlockStoreFormat.maximumPayloadBytes(limits)
        var segment = Segment(firstHeight: firstHeight, path: path, bytes: size, records: 0, index: [])
        var offset = BlockStoreFormat.headerBytes
        while offset < size {
            let height = segment.nextHeight
            switch readFrame(file, at: offset, maximumPayloadBytes: maximum, limits: limits) {
            case let .record(found, block, end):
                if let problem = misplacement(found: found, block: block, expected: height, clusterCount: clusterCount) {
                    throw .corrupt(path: path, offset: offset, reason: problem)
                }
                if segment.records % BlockStoreFormat.indexStride == 0 { segment.index.append(offset) }
                segment.records += 1
                offset = end
            case let .undecodable(error):
                throw .corrupt(path: path, offset: offset, reason: "the record's checksum holds but it does not decode: \(error)")
            case let .broken(reason):
                if isLast && height > syncedThrough {
                    segment.bytes = offset
                    return SegmentScan(segment: segment, fileBytes: size, tornReason: reason + " (above the last synced height)")
                }
                if let next = firstValidRecord(file, after: offset, expectedHeight: height, maximumPayloadBytes: maximum,
                                               limits: limits) {
                    throw .corrupt(path: path, offset: offset, reason: "\(reason), and a valid record follows at byte \(next)")
                }
                guard isLast else {
                    throw .corrupt(path: path, offset: offset, reason: "\(reason), in a segment that is not the last "
                                   + "(a segment is synced before the next one starts, so no crash leaves this)")
                }
                segment.bytes = offset
                return SegmentScan(segment: segment, fileBytes: size, tornReason: reason)
            }
        }
        return SegmentScan(segment: segment, fileBytes: size, tornReason: nil)
    }

    private static func checkHeader(_ file: UnsafeRawBufferPointer, path: String, identity: LogIdentity, clusterCount: Int,
                                    firstHeight: UInt64) throws(StoreError) {
        let magic = loadU32(file, at: 0)
        guard magic == BlockStoreFormat.magic else {
            throw .corrupt(path: path, offset: 0, reason: "bad magic 0x\(String(magic, radix: 16)) (not a GeoFabric block segment)")
        }
        // The version is checked before the checksum: a later version may lay out the rest differently.
        let version = UInt16(littleEndian: file.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
        guard version == BlockStoreFormat.version else {
            throw .unsupportedVersion(path: path, found: version, supported: BlockStoreFormat.version)
        }
        let declared = loadU32(file, at: 62)
        let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: file[0..<62]))
        guard declared == computed else {
            throw .corrupt(path: path, offset: 0,
                           reason: "header checksum mismatch (declared 0x\(String(declared, radix: 16)), computed 0x\(String(computed, radix: 16)))")
        }
        let reserved = UInt16(littleEndian: file.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
        guard reserved == 0 else { throw .corrupt(path: path, offset: 6, reason: "reserved header field is \(reserved), not 0") }
        // 32 bytes always make a Digest.
        let found = LogIdentity(replicaNumber: loadU32(file, at: 8), topologyDigest: Digest(bytes: file[12..<44])!)
        guard found == identity else { throw .identityMismatch(path: path, expected: identity, found: found) }
        let declaredHeight = UInt64(littleEndian: file.loadUnaligned(fromByteOffset: 44, as: UInt64.self))
        guard declaredHeight == firstHeight, firstHeight >= 1 else {
            throw .corrupt(path: path, offset: 44,
                           reason: "the header's first height is \(declaredHeight), but the file name says \(firstHeight)")
        }
        let declaredClusters = Int(UInt16(littleEndian: file.loadUnaligned(fromByteOffset: 52, as: UInt16.self)))
        guard declaredClusters == clusterCount else {
            throw .corrupt(path: path, offset: 52, reason: "the segment was written for \(declaredClusters) clusters per round, "
                           + "but the store was opened for \(clusterCount)")
        }
    }

    private static func loadU32(_ file: UnsafeRawBufferPointer, at offset: Int) -> UInt32 {
        UInt32(littleEndian: file.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    private static func loadU64(_ file: UnsafeRawBufferPointer, at offset: Int) -> UInt64 {
        UInt64(littleEndian: file.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// Why a valid record does not belong where it was found; nil when it does.
    private static func misplacement(found: UInt64, block: CertifiedBlock, expected: UInt64, clusterCount: Int) -> String? {
        guard found == expected else {
            return "the record holds height \(found) where height \(expected) belongs (a \(found > expected ? "gap" : "repeat") in the heights)"
        }
        let (cluster, round) = position(ofHeight: expected, clusterCount: clusterCount)
        guard block.block.cluster.index == cluster && block.block.round == round else {
            return "the record at height \(expected) holds the block of cluster \(block.block.cluster.index) round "
                + "\(block.block.round), but that height belongs to cluster \(cluster) round \(round)"
        }
        return nil
    }

    private enum FrameRead {
        case record(height: UInt64, block: CertifiedBlock, end: Int)
        /// The frame is cut short or fails its checksum: what a torn write leaves.
        case broken(String)
        /// The frame is intact but its payload is not a record: never a torn write.
        case undecodable(WireError)
    }

    private static func readFrame(_ file: UnsafeRawBufferPointer, at offset: Int, maximumPayloadBytes: Int,
                                  limits: WireLimits) -> FrameRead {
        let frame = BlockStoreFormat.recordFrameBytes
        let available = file.count - offset
        guard available >= frame else {
            return .broken("the file ends \(available) bytes into a record's \(frame)-byte frame")
        }
        let length = Int(loadU32(file, at: offset))
        let declared = loadU32(file, at: offset + 4)
        if let problem = lengthProblem(length, maximumPayloadBytes: maximumPayloadBytes) { return .broken(problem) }
        let start = offset + frame
        guard length <= file.count - start else {
            return .broken("the file ends inside a record (\(length)-byte payload, \(file.count - start) bytes left)")
        }
        let payload = UnsafeRawBufferPointer(rebasing: file[start..<(start + length)])
        let computed = CRC32C.checksum(payload)
        guard computed == declared else {
            return .broken("checksum mismatch (declared 0x\(String(declared, radix: 16)), computed 0x\(String(computed, radix: 16)))")
        }
        do throws(WireError) {
            let (height, block) = try decodePayload(payload, limits: limits)
            return .record(height: height, block: block, end: start + length)
        } catch {
            return .undecodable(error)
        }
    }

    private static func lengthProblem(_ length: Int, maximumPayloadBytes: Int) -> String? {
        if length < BlockStoreFormat.minimumPayloadBytes {
            return "record length \(length) is below the minimum of \(BlockStoreFormat.minimumPayloadBytes)"
        }
        if length > maximumPayloadBytes { return "record length \(length) exceeds the maximum of \(maximumPayloadBytes)" }
        return nil
    }

    /// Decodes exactly one payload: the height and the certified block, with nothing left over.
    private static func decodePayload(_ payload: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) -> (UInt64, CertifiedBlock) {
        var reader = ByteReader(payload)
        let height = try reader.u64("record.height")
        let block = try MessageCodec.decodeCertifiedBlock(&reader, limits: limits)
        guard reader.remaining == 0 else { throw .trailingBytes(count: reader.remaining) }
        return (height, block)
    }

    /// The offset of the first valid record that starts after `offset`, at any byte. ("Valid": its
    /// checksum holds and it decodes.) A cheap filter comes before the checksum: the length must be
    /// possible and the height one that could follow `expectedHeight` in the bytes left, so a long
    /// run of garbage costs little more than one pass over it.
    private static func firstValidRecord(_ file: UnsafeRawBufferPointer, after offset: Int, expectedHeight: UInt64,
                                         maximumPayloadBytes: Int, limits: WireLimits) -> Int? {
        let frame = BlockStoreFormat.recordFrameBytes
        let lastStart = file.count - frame - BlockStoreFormat.minimumPayloadBytes
        guard offset < lastStart else { return nil }
        let highest = expectedHeight + UInt64((file.count - offset) / (frame + BlockStoreFormat.minimumPayloadBytes))
        for candidate in (offset + 1)...lastStart {
            let length = Int(loadU32(file, at: candidate))
            guard lengthProblem(length, maximumPayloadBytes: maximumPayloadBytes) == nil,
                  length <= file.count - candidate - frame else { continue }
            let height = loadU64(file, at: candidate + frame)
            guard height >= expectedHeight && height <= highest else { continue }
            if case .record = readFrame(file, at: candidate, maximumPayloadBytes: maximumPayloadBytes, limits: limits) {
                return candidate
            }
        }
        return nil
    }

    static func encodeHeader(_ identity: LogIdentity, firstHeight: UInt64, clusterCount: Int, previousBytes: Int = 0,
                             into writer: inout ByteWriter) {
        let start = writer.bytes.count
        writer.u32(BlockStoreFormat.magic)
        writer.u16(BlockStoreFormat.version)
        writer.u16(0)
        writer.u32(identity.replicaNumber)
        writer.digest(identity.topologyDigest)
        writer.u64(firstHeight)
        writer.u16(UInt16(clusterCount))
        writer.u64(UInt64(previousBytes))
        writer.u32(CRC32C.checksum(writer.bytes[start...]))
    }

    /// Appends one framed record; refuses (before anything is written) one that recovery would refuse.
    static func frame(_ block: CertifiedBlock, height: UInt64, into writer: inout ByteWriter,
                      maximumPayloadBytes: Int) throws(StoreError) {
        let start = writer.bytes.count
        writer.u32(0)  // payload length, patched below
        writer.u32(0)  // payload checksum, patched below
        writer.u64(height)
        MessageCodec.encode(block, into: &writer)
        let payloadStart = start + BlockStoreFormat.recordFrameBytes
        let length = writer.bytes.count - payloadStart
        guard length <= maximumPayloadBytes else { throw .recordTooLarge(bytes: length, limit: maximumPayloadBytes) }
        writer.patchU32(UInt32(length), at: start)
        writer.patchU32(CRC32C.checksum(writer.bytes[payloadStart...]), at: start + 4)
    }

    // MARK: Appending

    /// Writes `block` at `height`, which must be `nextHeight`, and must be the height of the
    /// block's cluster and round. Durable only after `sync()`. A wrong height is refused with
    /// `.io(errno: EINVAL)` and nothing is written (the store stays usable).
    public func append(_ block: CertifiedBlock, height: UInt64) throws(StoreError) {
        try checkUsable()
        let last = segments.count - 1
        guard height == nextHeight else {
            throw .io(path: segments[last].path,
                      operation: "append at height \(height), where the next height is \(nextHeight) (nothing written)", errno: EINVAL)
        }
        let (cluster, round) = Self.position(ofHeight: height, clusterCount: clusterCount)
        guard block.block.cluster.index == cluster && block.block.round == round else {
            throw .io(path: segments[last].path, operation: "append of the block of cluster \(block.block.cluster.index) round "
                      + "\(block.block.round) at height \(height), which belongs to cluster \(cluster) round \(round) "
                      + "(nothing written)", errno: EINVAL)
        }
        var writer = ByteWriter(capacity: 512)
        try Self.frame(block, height: height, into: &writer, maximumPayloadBytes: maximumPayloadBytes)
        if segments[last].records > 0 && segments[last].bytes >= segmentBytes { try startSegment(at: height) }
        let current = segments.count - 1
        let offset = segments[current].bytes
        do throws(StoreError) {
            try POSIXFile.writeFully(descriptor, writer.bytes, at: offset, path: segments[current].path)
        } catch {
            // Cut a partly written record off so the file ends on a record boundary; recovery would
            // cut it anyway, and the store is unusable from here on.
            try? POSIXFile.truncate(descriptor, to: offset, path: segments[current].path)
            throw poison(error)
        }
        if segments[current].records % BlockStoreFormat.indexStride == 0 { segments[current].index.append(offset) }
        segments[current].records += 1
        segments[current].bytes += writer.bytes.count
    }

    /// Syncs the current segment (so that it can never end in a torn write once a later segment
    /// exists), then starts a new one whose first record is at `height`.
    private func startSegment(at height: UInt64) throws(StoreError) {
        let last = segments.count - 1
        do throws(StoreError) {
            if syncedBytes < segments[last].bytes {
                try POSIXFile.syncData(descriptor, path: segments[last].path)
                syncedBytes = segments[last].bytes
            }
            let newDescriptor = try Self.createSegment(in: directory, firstHeight: height, identity: identity,
                                                       clusterCount: clusterCount, previousBytes: segments[last].bytes,
                                                       syncDirectory: false)
            POSIXFile.closeFile(descriptor)
            descriptor = newDescriptor
            segments.append(Segment(firstHeight: height,
                                    path: directory + "/" + BlockStoreFormat.segmentFileName(firstHeight: height),
                                    bytes: BlockStoreFormat.headerBytes, records: 0, index: []))
            syncedBytes = BlockStoreFormat.headerBytes
            directoryDirty = true
        } catch {
            throw poison(error)
        }
    }

    /// Makes everything appended so far durable: syncs the current segment, and the directory when
    /// a segment was created since the last sync.
    public func sync() throws(StoreError) {
        try checkUsable()
        let last = segments.count - 1
        do throws(StoreError) {
            if syncedBytes < segments[last].bytes {
                try POSIXFile.syncData(descriptor, path: segments[last].path)
                syncedBytes = segments[last].bytes
            }
            if directoryDirty {
                try POSIXFile.syncDirectory(directory)
                directoryDirty = false
            }
        } catch {
            throw poison(error)
        }
    }

    // MARK: Reading

    /// The block at `height`; nil when it is not stored (never appended, or pruned).
    public func block(atHeight height: UInt64) throws(StoreError) -> CertifiedBlock? {
        try checkUsable()
        guard height >= firstHeight && height < nextHeight else { return nil }
        let number = segmentNumber(containing: height)
        try scanSealed(number)
        let segment = segments[number]
        let descriptor = try readDescriptor(number)
        let offset = try locate(height, in: segment, descriptor: descriptor)
        return try readRecord(descriptor, path: segment.path, at: offset, height: height).block
    }

    /// The block of `cluster` in `round`; nil when it is not stored.
    public func block(cluster: UInt16, round: UInt64) throws(StoreError) -> CertifiedBlock? {
        guard let height = Self.height(cluster: cluster, round: round, clusterCount: clusterCount) else {
            try checkUsable()
            return nil
        }
        return try block(atHeight: height)
    }

    /// The blocks at `height`, `height + 1`, ... : at most `maxCount` of them, fewer when the store
    /// ends first; empty when `height` itself is not stored.
    public func blocks(fromHeight height: UInt64, maxCount: Int) throws(StoreError) -> [CertifiedBlock] {
        try checkUsable()
        guard maxCount > 0, height >= firstHeight && height < nextHeight else { return [] }
        var result: [CertifiedBlock] = []
        result.reserveCapacity(Int(min(UInt64(maxCount), nextHeight - height)))
        var next = height
        var number = segmentNumber(containing: height)
        while result.count < maxCount && number < segments.count {
            try scanSealed(number)
            let segment = segments[number]
            if next < segment.nextHeight {
                let descriptor = try readDescriptor(number)
                var offset = try locate(next, in: segment, descriptor: descriptor)
                while result.count < maxCount && next < segment.nextHeight {
                    let (block, end) = try readRecord(descriptor, path: segment.path, at: offset, height: next)
                    result.append(block)
                    offset = end
                    next += 1
                }
            }
            number += 1
        }
        return result
    }

    /// The position in `segments` of the segment holding `height` (firstHeight <= height < nextHeight).
    private func segmentNumber(containing height: UInt64) -> Int {
        // The last segment whose first height is at or below `height`.
        var low = 0
        var high = segments.count - 1
        while low < high {
            let middle = (low + high + 1) / 2
            if segments[middle].firstHeight <= height { low = middle } else { high = middle - 1 }
        }
        return low
    }

    private func readDescriptor(_ number: Int) throws(StoreError) -> Int32 {
        if number == segments.count - 1 { return descriptor }
        let segment = segments[number]
        if let reader, reader.firstHeight == segment.firstHeight { return reader.descriptor }
        closeReader()
        let opened = try POSIXFile.openFile(segment.path, flags: O_RDONLY)
        reader = (segment.firstHeight, opened)
        return opened
    }

    private func closeReader() {
        if let reader { POSIXFile.closeFile(reader.descriptor) }
        reader = nil
    }

    /// The offset of the record at `height` in `segment`: from the nearest indexed record, at most
    /// `indexStride - 1` frame headers are read to step forward.
    private func locate(_ height: UInt64, in segment: Segment, descriptor: Int32) throws(StoreError) -> Int {
        let position = Int(height - segment.firstHeight)
        var offset = segment.index[position / BlockStoreFormat.indexStride]
        for _ in 0..<(position % BlockStoreFormat.indexStride) {
            let length = try readFrameHeader(descriptor, path: segment.path, at: offset).length
            offset += BlockStoreFormat.recordFrameBytes + length
        }
        return offset
    }

    private func readFrameHeader(_ descriptor: Int32, path: String, at offset: Int) throws(StoreError) -> (length: Int, checksum: UInt32) {
        var header: (UInt32, UInt32) = (0, 0)
        let got = try withUnsafeMutableBytes(of: &header) { (buffer) throws(StoreError) -> Int in
            try POSIXFile.read(descriptor, into: buffer, at: offset, path: path)
        }
        guard got == BlockStoreFormat.recordFrameBytes else {
            throw .corrupt(path: path, offset: offset, reason: "the file ends inside the frame of a record it held when opened")
        }
        let length = Int(UInt32(littleEndian: header.0))
        if let problem = Self.lengthProblem(length, maximumPayloadBytes: maximumPayloadBytes) {
            throw .corrupt(path: path, offset: offset, reason: "\(problem), in a record that was valid when opened")
        }
        return (length, UInt32(littleEndian: header.1))
    }

    /// Reads, checks and decodes the record at `offset`, which must hold `height`. Damage here means
    /// the file changed after it was checked (or appended), so it is refused as corrupt.
    private func readRecord(_ descriptor: Int32, path: String, at offset: Int,
                            height: UInt64) throws(StoreError) -> (block: CertifiedBlock, end: Int) {
        let (length, declared) = try readFrameHeader(descriptor, path: path, at: offset)
        let start = offset + BlockStoreFormat.recordFrameBytes
        guard let payload = try POSIXFile.read(descriptor, count: length, at: start, path: path) else {
            throw .corrupt(path: path, offset: offset, reason: "the file ends inside a record it held when opened")
        }
        let computed = CRC32C.checksum(payload)
        guard computed == declared else {
            throw .corrupt(path: path, offset: offset, reason: "checksum mismatch (declared 0x\(String(declared, radix: 16)), "
                           + "computed 0x\(String(computed, radix: 16))) in a record that was valid when opened")
        }
        let decoded: Result<(UInt64, CertifiedBlock), WireError> = payload.withUnsafeBytes { buffer in
            do throws(WireError) { return .success(try Self.decodePayload(buffer, limits: limits)) } catch { return .failure(error) }
        }
        switch decoded {
        case let .success((found, block)):
            if let problem = Self.misplacement(found: found, block: block, expected: height, clusterCount: clusterCount) {
                throw .corrupt(path: path, offset: offset, reason: problem)
            }
            return (block, start + length)
        case let .failure(error):
            throw .corrupt(path: path, offset: offset, reason: "the record's checksum holds but it does not decode: \(error)")
        }
    }

    // MARK: Pruning

    /// Removes every whole segment all of whose blocks are below `height`, oldest first, never the
    /// segment being appended to; syncs the directory after each removal (so the segments left
    /// after a crash are always contiguous). Returns the bytes freed.
    @discardableResult
    public func prune(belowHeight height: UInt64) throws(StoreError) -> Int {
        try checkUsable()
        var freed = 0
        do throws(StoreError) {
            // Every block of segments[0] is below segments[1].firstHeight.
            while segments.count > 1 && segments[1].firstHeight <= height {
                let victim = segments[0]
                if reader?.firstHeight == victim.firstHeight { closeReader() }
                try POSIXFile.removeFile(victim.path)
                segments.removeFirst()
                freed += victim.bytes
                try POSIXFile.syncDirectory(directory)
            }
        } catch {
            throw poison(error)
        }
        return freed
    }

    /// Forgets every block and goes on at `nextHeight`: after state transfer installed a snapshot
    /// at `nextHeight - 1`, the blocks below it are not this replica's to serve. The old segments
    /// are removed first, then a segment starting at `nextHeight` is created; a crash in between
    /// leaves fewer blocks than the snapshot needs, which the caller's open repairs the same way
    /// (DiskLedgerStore: a store ending below the latest snapshot restarts after it).
    public func restart(atNextHeight height: UInt64) throws(StoreError) {
        try checkUsable()
        precondition(height >= 1, "heights start at 1")
        do throws(StoreError) {
            closeReader()
            POSIXFile.closeFile(descriptor)
            descriptor = -1
            for segment in segments.reversed() { try POSIXFile.removeFile(segment.path) }
            try POSIXFile.syncDirectory(directory)
            descriptor = try Self.createSegment(in: directory, firstHeight: height, identity: identity, clusterCount: clusterCount,
                                                syncDirectory: true)
            segments = [Segment(firstHeight: height, path: directory + "/" + BlockStoreFormat.segmentFileName(firstHeight: height),
                                bytes: BlockStoreFormat.headerBytes, records: 0, index: [])]
            syncedBytes = BlockStoreFormat.headerBytes
            directoryDirty = false
        } catch {
            throw poison(error)
        }
    }

    // MARK: Closing

    /// Closes the files and releases the directory's lock. Appended blocks not yet synced may or
    /// may not survive a crash that follows.
    public func close() {
        closeReader()
        if descriptor >= 0 {
            POSIXFile.closeFile(descriptor)
            descriptor = -1
        }
        if lockDescriptor >= 0 {
            POSIXFile.closeFile(lockDescriptor)
            lockDescriptor = -1
        }
        if failure == nil { failure = "the store was closed" }
    }

    private func checkUsable() throws(StoreError) {
        if let failure { throw .unusable(path: directory, cause: failure) }
    }

    private func poison(_ error: StoreError) -> StoreError {
        if failure == nil { failure = error.description }
        return error
    }
}
