import Foundation
import GeoCore
@testable import GeoStore
import GeoWire
import Testing

let blockStoreIdentity = LogIdentity(replicaNumber: 3, topologyDigest: Digest(bytes: [UInt8](repeating: 0x5C, count: 32))!)

/// The certified blocks of heights 1...count of a shard with `clusterCount` clusters.
func ledgerBlocks(_ count: Int, clusterCount: Int, seed: UInt64) -> [CertifiedBlock] {
    var generator = RecordGenerator(seed: seed)
    return (1...UInt64(count)).map { height in
        let position = BlockStore.position(ofHeight: height, clusterCount: clusterCount)
        return generator.certified(ClusterID(shard: ShardID(0), index: position.cluster), view: 0, round: position.round)
    }
}

func openBlocks(_ directory: TemporaryDirectory, clusterCount: Int = 3, limits: WireLimits = WireLimits(),
                segmentBytes: Int = 4096, identity: LogIdentity = blockStoreIdentity) throws -> (BlockStore, BlockStoreRecovery) {
    try BlockStore.open(directory: directory.replicaDirectory, identity: identity, clusterCount: clusterCount, limits: limits,
                        segmentBytes: segmentBytes)
}

/// A store holding `blocks` at heights 1..., synced and closed.
func writeBlocks(_ directory: TemporaryDirectory, _ blocks: [CertifiedBlock], clusterCount: Int = 3,
                 segmentBytes: Int = 4096) throws {
    let (store, recovery) = try openBlocks(directory, clusterCount: clusterCount, segmentBytes: segmentBytes)
    #expect(recovery.created)
    for (index, block) in blocks.enumerated() { try store.append(block, height: UInt64(index + 1)) }
    try store.sync()
    store.close()
}

extension TemporaryDirectory {
    var blocksDirectory: String { replicaDirectory + "/" + BlockStoreFormat.directoryName }

    /// The segment files, in height order.
    var segmentPaths: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: blocksDirectory)) ?? []
        return names.filter { $0.hasPrefix("segment-") && $0.hasSuffix(".blk") }.sorted().map { blocksDirectory + "/" + $0 }
    }
}

/// The offset of every record frame in a segment file, found by following the length fields.
func segmentRecordOffsets(_ file: [UInt8]) -> [Int] {
    var offsets: [Int] = []
    var offset = BlockStoreFormat.headerBytes
    while offset + BlockStoreFormat.recordFrameBytes <= file.count {
        offsets.append(offset)
        let length = (0..<4).reduce(0) { $0 | Int(file[offset + $1]) << (8 * $1) }
        offset += BlockStoreFormat.recordFrameBytes + length
    }
    return offsets
}

func expectCorrupt(_ error: StoreError?, path: String, offset: Int, reasonContains: String? = nil,
                   sourceLocation: SourceLocation = #_sourceLocation) {
    guard case let .corrupt(foundPath, foundOffset, reason) = error else {
        Issue.record("expected .corrupt, got \(String(describing: error))", sourceLocation: sourceLocation)
        return
    }
    #expect(foundPath == path, sourceLocation: sourceLocation)
    #expect(foundOffset == offset, "reason: \(reason)", sourceLocation: sourceLocation)
    if let reasonContains { #expect(reason.contains(reasonContains), "reason: \(reason)", sourceLocation: sourceLocation) }
}

@Suite struct BlockStoreTests {
    @Test func heightsAndPositionsMapOneToOne() {
        for clusterCount in [1, 2, 5] {
            for height in UInt64(1)...40 {
                let position = BlockStore.position(ofHeight: height, clusterCount: clusterCount)
                #expect(BlockStore.height(cluster: position.cluster, round: position.round, clusterCount: clusterCount) == height)
            }
            #expect(BlockStore.height(cluster: UInt16(clusterCount), round: 1, clusterCount: clusterCount) == nil)
            #expect(BlockStore.height(cluster: 0, round: 0, clusterCount: clusterCount) == nil)
        }
        #expect(BlockStore.height(cluster: 1, round: .max, clusterCount: 3) == nil)
    }

    @Test func blocksRoundTripAcrossSegmentsAndReopen() throws {
        let directory = TemporaryDirectory("blocks-roundtrip")
        let blocks = ledgerBlocks(600, clusterCount: 3, seed: 1)
        let (store, created) = try openBlocks(directory)
        #expect(created.created && created.blocks == 0 && created.firstHeight == 1 && created.nextHeight == 1)
        #expect(store.firstHeight == 1 && store.lastHeight == 0 && store.nextHeight == 1)
        #expect(try store.block(atHeight: 1) == nil)
        for (index, block) in blocks.enumerated() {
            try store.append(block, height: UInt64(index + 1))
            // Reads see appended records before any sync.
            if index % 97 == 0 { #expect(try store.block(atHeight: UInt64(index + 1)) == block) }
        }
        #expect(store.segmentCount > 5)
        #expect(store.lastHeight == 600 && store.nextHeight == 601)

        func checkReads(_ store: BlockStore) throws {
            for (index, block) in blocks.enumerated() {
                #expect(try store.block(atHeight: UInt64(index + 1)) == block)
            }
            for round in UInt64(1)...200 {
                for cluster in UInt16(0)..<3 {
                    let height = Int((round - 1) * 3) + Int(cluster) + 1
                    #expect(try store.block(cluster: cluster, round: round) == blocks[height - 1])
                }
            }
            #expect(try store.block(cluster: 0, round: 201) == nil)
            #expect(try store.block(cluster: 3, round: 1) == nil)
            #expect(try store.block(atHeight: 0) == nil && store.block(atHeight: 601) == nil)
            #expect(try store.blocks(fromHeight: 1, maxCount: 1000) == blocks)
            #expect(try store.blocks(fromHeight: 37, maxCount: 150) == Array(blocks[36..<186]))
            #expect(try store.blocks(fromHeight: 590, maxCount: 50) == Array(blocks[589...]))
            #expect(try store.blocks(fromHeight: 601, maxCount: 5) == [])
            #expect(try store.blocks(fromHeight: 5, maxCount: 0) == [])
        }
        try checkReads(store)
        try store.sync()
        let segments = store.segmentCount
        #expect(store.diskBytes == directory.segmentPaths.reduce(0) { $0 + readBytes($1).count })
        #expect(directory.segmentPaths == store.segmentPaths)
        store.close()
        #expect(throws: StoreError.self) { try store.append(blocks[0], height: 601) }

        let (reopened, recovery) = try openBlocks(directory)
        #expect(!recovery.created && recovery.blocks == 600 && recovery.segments == segments)
        #expect(recovery.firstHeight == 1 && recovery.nextHeight == 601 && recovery.truncatedBytes == 0)
        #expect(recovery.truncationReason == nil && recovery.removedTemporaryFiles == 0)
        try checkReads(reopened)

        // Appending goes on after a reopen.
        let more = ledgerBlocks(603, clusterCount: 3, seed: 1).suffix(3)
        for (offset, block) in more.enumerated() { try reopened.append(block, height: UInt64(601 + offset)) }
        try reopened.sync()
        #expect(try reopened.blocks(fromHeight: 599, maxCount: 10) == Array(blocks.suffix(2)) + more)
    }

    @Test func appendAtTheWrongHeightOrPositionIsRefusedAndNothingIsWritten() throws {
        let directory = TemporaryDirectory("blocks-wrong")
        let blocks = ledgerBlocks(10, clusterCount: 3, seed: 2)
        let (store, _) = try openBlocks(directory)
        for index in 0..<5 { try store.append(blocks[index], height: UInt64(index + 1)) }
        try store.sync()
        let before = readBytes(directory.segmentPaths.last!)
        let attempts: [(CertifiedBlock, UInt64)] = [
            (blocks[5], 7),  // a gap
            (blocks[4], 5),  // a repeat
            (blocks[6], 6),  // the block of height 7 (cluster 0, round 3) at height 6 (cluster 2, round 2)
            (blocks[7], 6),  // cluster 1 round 3 at height 6
        ]
        for (block, height) in attempts {
            let error = #expect(throws: StoreError.self) { try store.append(block, height: height) }
            guard case let .io(_, _, code) = error else {
                Issue.record("expected .io(EINVAL), got \(String(describing: error))")
                continue
            }
            #expect(code == EINVAL)
        }
        var wrongRound = blocks[5]
        wrongRound.block.round += 1
        #expect(throws: StoreError.self) { try store.append(wrongRound, height: 6) }
        #expect(readBytes(directory.segmentPaths.last!) == before)
        #expect(store.nextHeight == 6)
        // The store is still usable.
        try store.append(blocks[5], height: 6)
        try store.sync()
        #expect(try store.block(atHeight: 6) == blocks[5])
    }

    /// Cuts the last record of the last segment short by `k` bytes, as a crash during an append would.
    @Test(arguments: [1, 4, 8, 9, 40])
    func aTornTailIsCutAndAppendsGoOn(k: Int) throws {
        let directory = TemporaryDirectory("blocks-torn")
        let blocks = ledgerBlocks(120, clusterCount: 3, seed: 3)
        try writeBlocks(directory, Array(blocks.prefix(100)))
        let last = directory.segmentPaths.last!
        let file = readBytes(last)
        let lastRecordBytes = file.count - segmentRecordOffsets(file).last!
        #expect(k < lastRecordBytes)
        try writeBytes(Array(file.dropLast(k)), to: last)

        let (store, recovery) = try openBlocks(directory)
        #expect(recovery.nextHeight == 100 && recovery.blocks == 99)
        #expect(recovery.truncatedBytes == lastRecordBytes - k && recovery.truncationReason != nil)
        #expect(readBytes(last) == Array(file.dropLast(lastRecordBytes)))
        #expect(try store.block(atHeight: 100) == nil && store.block(atHeight: 99) == blocks[98])

        for height in 100...120 { try store.append(blocks[height - 1], height: UInt64(height)) }
        try store.sync()
        store.close()
        let (again, clean) = try openBlocks(directory)
        #expect(clean.truncatedBytes == 0 && clean.nextHeight == 121)
        #expect(try again.blocks(fromHeight: 1, maxCount: 200) == blocks)
    }

    @Test(arguments: ["zeros", "short", "random"])
    func garbageAfterTheLastRecordIsCut(garbage: String) throws {
        let directory = TemporaryDirectory("blocks-garbage")
        let blocks = ledgerBlocks(40, clusterCount: 3, seed: 4)
        try writeBlocks(directory, blocks)
        let last = directory.segmentPaths.last!
        let file = readBytes(last)
        var generator = RecordGenerator(seed: 44)
        let tail: [UInt8]
        switch garbage {
        case "zeros": tail = [UInt8](repeating: 0, count: 4096)  // the filesystem grew the file, the data never came
        case "short": tail = [1, 2, 3]
        default: tail = generator.random.bytes(count: 999)
        }
        try writeBytes(file + tail, to: last)
        let (store, recovery) = try openBlocks(directory)
        #expect(recovery.truncatedBytes == tail.count && recovery.nextHeight == 41)
        #expect(readBytes(last) == file)
        try store.append(ledgerBlocks(41, clusterCount: 3, seed: 4)[40], height: 41)
        #expect(store.lastHeight == 41)
    }

    /// A damaged record with a valid record after it, in the last segment: refused, file untouched.
    @Test(arguments: [BlockStoreFormat.recordFrameBytes + 5, 2, 5])
    func damageInTheMiddleOfTheLastSegmentIsRefused(byteInRecord: Int) throws {
        let directory = TemporaryDirectory("blocks-middle")
        let blocks = ledgerBlocks(30, clusterCount: 3, seed: 5)
        try writeBlocks(directory, blocks, segmentBytes: 1 << 20)
        let paths = directory.segmentPaths
        #expect(paths.count == 1)
        var file = readBytes(paths[0])
        let offsets = segmentRecordOffsets(file)
        let damaged = offsets[offsets.count / 2]
        file[damaged + byteInRecord] ^= 0x01
        try writeBytes(file, to: paths[0])

        let error = #expect(throws: StoreError.self) { _ = try openBlocks(directory, segmentBytes: 1 << 20) }
        expectCorrupt(error, path: paths[0], offset: damaged, reasonContains: "a valid record follows")
        #expect(error?.description.contains("\(paths[0]): corrupt at byte \(damaged)") == true)
        #expect(readBytes(paths[0]) == file)
        #expect(directory.segmentPaths == paths)
    }

    /// Above the height the caller knows was synced, the disk may have written a later page before
    /// an earlier one: a broken record there is a torn tail, cut, even with valid records after it.
    @Test func aBrokenRecordAboveTheSyncedHeightIsATornTail() throws {
        let directory = TemporaryDirectory("blocks-unsynced")
        let blocks = ledgerBlocks(30, clusterCount: 3, seed: 5)
        try writeBlocks(directory, blocks, segmentBytes: 1 << 20)
        let path = directory.segmentPaths[0]
        var file = readBytes(path)
        let offsets = segmentRecordOffsets(file)
        file[offsets[15] + 3] ^= 0x01
        try writeBytes(file, to: path)
        // Synced through height 20: height 16 is below, so this is damage.
        #expect(throws: StoreError.self) {
            _ = try BlockStore.open(directory: directory.replicaDirectory, identity: blockStoreIdentity, clusterCount: 3, segmentBytes: 1 << 20, syncedThrough: 20)
        }
        #expect(readBytes(path) == file)
        // Synced through height 10: heights 16 on were never synced; cut there.
        let (store, recovery) = try BlockStore.open(directory: directory.replicaDirectory, identity: blockStoreIdentity, clusterCount: 3,
                                                    segmentBytes: 1 << 20, syncedThrough: 10)
        #expect(store.lastHeight == 15 && recovery.truncatedBytes > 0)
        #expect(try store.block(atHeight: 15) == blocks[14])
        store.close()
    }

    /// Damage in a segment that is not the last is never a torn write, even with nothing valid after it.
    @Test(arguments: ["first record", "last record"])
    func damageInAnEarlierSegmentIsRefused(which: String) throws {
        let directory = TemporaryDirectory("blocks-earlier")
        let blocks = ledgerBlocks(100, clusterCount: 3, seed: 6)
        try writeBlocks(directory, blocks)
        let paths = directory.segmentPaths
        #expect(paths.count >= 3)
        let victim = paths[1]
        var file = readBytes(victim)
        let offsets = segmentRecordOffsets(file)
        #expect(offsets.count >= 2)
        let damaged = which == "first record" ? offsets.first! : offsets.last!
        file[damaged + BlockStoreFormat.recordFrameBytes + 20] ^= 0x40
        try writeBytes(file, to: victim)
        let last = readBytes(paths.last!)

        // Open reads a sealed segment's header only (restart time must not grow with the ledger);
        // its records are checked when first read, or by verify(), and refused the same way.
        let (store, _) = try openBlocks(directory)
        let height = firstHeight(of: victim, in: directory) + UInt64(which == "first record" ? 0 : offsets.count - 1)
        let error = #expect(throws: StoreError.self) { _ = try store.block(atHeight: height) }
        expectCorrupt(error, path: victim, offset: damaged,
                      reasonContains: which == "first record" ? "a valid record follows" : "not the last")
        let verified = #expect(throws: StoreError.self) { try store.verify() }
        expectCorrupt(verified, path: victim, offset: damaged)
        // Blocks of the sound segments are still served.
        #expect(try store.block(atHeight: 1) == blocks[0])
        store.close()
        #expect(readBytes(victim) == file && readBytes(paths.last!) == last)
    }

    @Test func aRecordThatChecksButDoesNotBelongIsRefused() throws {
        let directory = TemporaryDirectory("blocks-misplaced")
        let blocks = ledgerBlocks(12, clusterCount: 3, seed: 7)
        try writeBlocks(directory, Array(blocks.prefix(10)), segmentBytes: 1 << 20)
        let path = directory.segmentPaths[0]
        let file = readBytes(path)
        for (name, height, block) in [("repeat", UInt64(10), blocks[9]), ("gap", 12, blocks[11]), ("position", 11, blocks[11])] {
            var writer = ByteWriter()
            try BlockStore.frame(block, height: height, into: &writer, maximumPayloadBytes: .max)
            try writeBytes(file + writer.bytes, to: path)
            let error = #expect(throws: StoreError.self) { _ = try openBlocks(directory, segmentBytes: 1 << 20) }
            expectCorrupt(error, path: path, offset: file.count, reasonContains: name == "position" ? "belongs to cluster" : name)
            #expect(readBytes(path) == file + writer.bytes)
        }
        // Well framed, but the payload does not decode: written by a newer build, or a bug; never torn.
        var payload = [UInt8](repeating: 0, count: 8) + [UInt8](repeating: 0xEE, count: BlockStoreFormat.minimumPayloadBytes)
        payload[0] = 11
        var writer = ByteWriter()
        writer.u32(UInt32(payload.count))
        writer.u32(CRC32C.checksum(payload))
        writer.raw(payload)
        try writeBytes(file + writer.bytes, to: path)
        let error = #expect(throws: StoreError.self) { _ = try openBlocks(directory, segmentBytes: 1 << 20) }
        expectCorrupt(error, path: path, offset: file.count, reasonContains: "does not decode")
    }

    @Test func aMissingSegmentIsAGap() throws {
        let directory = TemporaryDirectory("blocks-gap")
        try writeBlocks(directory, ledgerBlocks(100, clusterCount: 3, seed: 8))
        let paths = directory.segmentPaths
        #expect(paths.count >= 3)
        try FileManager.default.removeItem(atPath: paths[1])
        let error = #expect(throws: StoreError.self) { _ = try openBlocks(directory) }
        expectCorrupt(error, path: paths[2], offset: 54, reasonContains: "contiguous")
    }

    @Test func anotherReplicasOrShardsBlocksAreRefused() throws {
        let directory = TemporaryDirectory("blocks-identity")
        try writeBlocks(directory, ledgerBlocks(5, clusterCount: 3, seed: 9))
        let path = directory.segmentPaths[0]
        let file = readBytes(path)
        let others = [
            LogIdentity(replicaNumber: 4, topologyDigest: blockStoreIdentity.topologyDigest),
            LogIdentity(replicaNumber: blockStoreIdentity.replicaNumber, topologyDigest: .zero),
        ]
        for other in others {
            #expect(throws: StoreError.identityMismatch(path: path, expected: other, found: blockStoreIdentity)) {
                _ = try openBlocks(directory, identity: other)
            }
        }
        let error = #expect(throws: StoreError.self) { _ = try openBlocks(directory, clusterCount: 4) }
        expectCorrupt(error, path: path, offset: 52)
        #expect(readBytes(path) == file)
    }

    @Test(arguments: ["magic", "checksum", "version", "short"])
    func aBadSegmentHeaderIsRefused(damage: String) throws {
        let directory = TemporaryDirectory("blocks-header")
        try writeBlocks(directory, ledgerBlocks(5, clusterCount: 3, seed: 10))
        let path = directory.segmentPaths[0]
        var file = readBytes(path)
        switch damage {
        case "magic": file[1] ^= 0xFF
        case "checksum": file[50] ^= 0x01
        case "version": file[4] = 7
        default: file = Array(file.prefix(30))
        }
        try writeBytes(file, to: path)
        let error = #expect(throws: StoreError.self) { _ = try openBlocks(directory) }
        if damage == "version" {
            #expect(error == .unsupportedVersion(path: path, found: 7, supported: BlockStoreFormat.version))
        } else {
            expectCorrupt(error, path: path, offset: 0)
        }
        #expect(readBytes(path) == file)
    }

    @Test func pruneRemovesOnlyWholeOldSegments() throws {
        let directory = TemporaryDirectory("blocks-prune")
        let blocks = ledgerBlocks(300, clusterCount: 3, seed: 11)
        let (store, _) = try openBlocks(directory)
        for (index, block) in blocks.enumerated() { try store.append(block, height: UInt64(index + 1)) }
        try store.sync()
        let paths = directory.segmentPaths
        let firstHeights = paths.map { UInt64($0.dropFirst(directory.blocksDirectory.count + 9).prefix(20))! }
        #expect(paths.count >= 4)
        // A height in the middle of the third segment: the first two go, the third stays.
        let cut = firstHeights[2] + 1
        let sizes = paths.map { readBytes($0).count }
        let diskBefore = store.diskBytes
        let freed = try store.prune(belowHeight: cut)
        #expect(freed == sizes[0] + sizes[1])
        #expect(store.diskBytes == diskBefore - freed)
        #expect(directory.segmentPaths == Array(paths.dropFirst(2)))
        #expect(store.firstHeight == firstHeights[2] && store.lastHeight == 300)
        #expect(try store.block(atHeight: 1) == nil && store.block(atHeight: firstHeights[2] - 1) == nil)
        #expect(try store.block(cluster: 0, round: 1) == nil)
        #expect(try store.blocks(fromHeight: 1, maxCount: 10) == [])
        #expect(try store.block(atHeight: firstHeights[2]) == blocks[Int(firstHeights[2]) - 1])
        #expect(try store.blocks(fromHeight: firstHeights[2], maxCount: 1000) == Array(blocks[(Int(firstHeights[2]) - 1)...]))
        #expect(try store.prune(belowHeight: cut) == 0)

        // Never the segment being appended to.
        try store.prune(belowHeight: .max)
        #expect(directory.segmentPaths == [paths.last!])
        #expect(try store.firstHeight == firstHeights.last! && store.block(atHeight: 300) == blocks[299])
        try store.append(ledgerBlocks(301, clusterCount: 3, seed: 11)[300], height: 301)
        try store.sync()
        store.close()

        let (reopened, recovery) = try openBlocks(directory)
        #expect(recovery.firstHeight == firstHeights.last! && recovery.nextHeight == 302)
        #expect(try reopened.block(atHeight: 1) == nil && reopened.block(atHeight: 300) == blocks[299])
    }

    @Test func theIndexStaysSparse() throws {
        let directory = TemporaryDirectory("blocks-index")
        let count = 3000
        let blocks = ledgerBlocks(count, clusterCount: 4, seed: 12)
        let (store, _) = try openBlocks(directory, clusterCount: 4, segmentBytes: 64 << 20)
        for (index, block) in blocks.enumerated() { try store.append(block, height: UInt64(index + 1)) }
        // One segment: one entry for it and one per 256 records.
        let expected = 1 + (count + BlockStoreFormat.indexStride - 1) / BlockStoreFormat.indexStride
        #expect(store.indexEntryCount == expected)
        #expect(store.indexEntryCount * 100 < count)
        // Heights around the indexed records, which step forward from the nearest one.
        for height in [1, 2, 255, 256, 257, 258, 511, 512, 513, 2999, 3000] {
            #expect(try store.block(atHeight: UInt64(height)) == blocks[height - 1])
        }
        try store.sync()
        store.close()
        let (reopened, _) = try openBlocks(directory, clusterCount: 4, segmentBytes: 64 << 20)
        #expect(reopened.indexEntryCount == expected)
        #expect(try reopened.blocks(fromHeight: 250, maxCount: 300) == Array(blocks[249..<549]))

        // With many small segments: two entries per segment (each holds fewer than 256 records).
        let small = TemporaryDirectory("blocks-index-small")
        try writeBlocks(small, Array(blocks.prefix(500)), clusterCount: 4)
        let (many, _) = try openBlocks(small, clusterCount: 4)
        // Open indexes the last segment only; the sealed ones are indexed when first read.
        #expect(many.indexEntryCount == many.segmentCount + 1)
        try many.verify()
        #expect(many.indexEntryCount == 2 * many.segmentCount && many.segmentCount < 500 / 4)
    }

    @Test func temporaryFilesAreRemovedAndOtherFilesIgnored() throws {
        let directory = TemporaryDirectory("blocks-tmp")
        let blocks = ledgerBlocks(20, clusterCount: 3, seed: 13)
        try writeBlocks(directory, blocks)
        let temporary = directory.blocksDirectory + "/" + BlockStoreFormat.segmentFileName(firstHeight: 21) + ".tmp"
        let other = directory.blocksDirectory + "/README"
        try writeBytes([1, 2, 3], to: temporary)
        try writeBytes([4, 5, 6], to: other)
        let (store, recovery) = try openBlocks(directory)
        #expect(recovery.removedTemporaryFiles == 1 && recovery.nextHeight == 21)
        #expect(!FileManager.default.fileExists(atPath: temporary))
        #expect(readBytes(other) == [4, 5, 6])
        #expect(try store.blocks(fromHeight: 1, maxCount: 100) == blocks)
    }

    @Test func aSecondOpenIsRefusedAndAnOversizedBlockIsNotWritten() throws {
        let directory = TemporaryDirectory("blocks-lock")
        var limits = WireLimits(maxBodyBytes: 1024)
        limits.maxCertificateSignatures = 4
        let (store, _) = try openBlocks(directory, limits: limits)
        #expect(throws: StoreError.locked(path: directory.blocksDirectory + "/" + BlockStoreFormat.lockFileName)) {
            _ = try openBlocks(directory, limits: limits)
        }
        var generator = RecordGenerator(seed: 14)
        var block = generator.certified(ClusterID(shard: ShardID(0), index: 0), view: 0, round: 1)
        block.block.transactions = (0..<200).map { _ in generator.transaction() }
        let error = #expect(throws: StoreError.self) { try store.append(block, height: 1) }
        guard case .recordTooLarge = error else {
            Issue.record("expected .recordTooLarge, got \(String(describing: error))")
            return
        }
        #expect(store.nextHeight == 1 && store.diskBytes == BlockStoreFormat.headerBytes)
        block.block.transactions = []
        try store.append(block, height: 1)
        try store.sync()
        store.close()
        let (_, recovery) = try openBlocks(directory, limits: limits)
        #expect(recovery.nextHeight == 2)
    }
}

/// The first height of the segment at `path` (its file name says it).
func firstHeight(of path: String, in directory: TemporaryDirectory) -> UInt64 {
    UInt64(path.dropFirst(directory.blocksDirectory.count + 9).prefix(20))!
}
