import Foundation
import GeoCore
@testable import GeoStore
import GeoWire
import Testing

extension TemporaryDirectory {
    var snapshotsDirectory: String { replicaDirectory + "/" + SnapshotFormat.directoryName }
    func snapshotPath(_ height: UInt64) -> String { snapshotsDirectory + "/" + SnapshotFormat.fileName(height: height) }
}

func openSnapshots(_ directory: TemporaryDirectory, identity: LogIdentity = blockStoreIdentity, keep: Int = 2,
                   maximumPayloadBytes: Int = 1 << 30) throws -> SnapshotStore {
    try SnapshotStore.open(directory: directory.replicaDirectory, identity: identity, keep: keep,
                           maximumPayloadBytes: maximumPayloadBytes)
}

@Suite struct SnapshotStoreTests {
    @Test func snapshotsRoundTripAndOnlyTheLatestTwoAreKept() throws {
        let directory = TemporaryDirectory("snap-roundtrip")
        var random = SeededRandom(seed: 1)
        let store = try openSnapshots(directory)
        #expect(try store.latest() == nil && store.list().isEmpty && store.removedTemporaryFiles == 0)
        let payloads = (0..<4).map { index in random.bytes(count: 1000 * index + 17) }
        for (index, payload) in payloads.enumerated() {
            let height = UInt64(100 * (index + 1))
            try store.write(height: height, round: UInt64(10 * (index + 1)), payload: payload)
            let latest = try #require(try store.latest())
            #expect(latest == StoredSnapshot(height: height, round: UInt64(10 * (index + 1)), payload: payload,
                                             path: directory.snapshotPath(height)))
            #expect(store.list().count == min(index + 1, 2))
        }
        #expect(store.list().map(\.height) == [300, 400])
        // A peer's state transfer: the height asked for, or else the oldest kept above it.
        #expect(try store.snapshot(atOrAbove: 300)?.payload == payloads[2])
        #expect(try store.snapshot(atOrAbove: 400)?.payload == payloads[3])
        #expect(try store.snapshot(atOrAbove: 100)?.height == 300)
        #expect(try store.snapshot(atOrAbove: 301)?.height == 400)
        #expect(try store.snapshot(atOrAbove: 401) == nil)
        #expect(store.list().map(\.path) == [directory.snapshotPath(300), directory.snapshotPath(400)])
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.snapshotsDirectory).sorted()
        #expect(names == [SnapshotFormat.lockFileName, SnapshotFormat.fileName(height: 300), SnapshotFormat.fileName(height: 400)])
        #expect(readBytes(directory.snapshotPath(400)).count
                == SnapshotFormat.headerBytes + payloads[3].count + SnapshotFormat.trailerBytes)

        // An empty payload, and a rewrite at the same height.
        try store.write(height: 400, round: 41, payload: [])
        #expect(try store.latest() == StoredSnapshot(height: 400, round: 41, payload: [], path: directory.snapshotPath(400)))
        store.close()
        #expect(throws: StoreError.self) { _ = try store.latest() }

        let reopened = try openSnapshots(directory, keep: 1)
        #expect(try reopened.latest()?.round == 41)
        try reopened.write(height: 500, round: 50, payload: payloads[1])
        #expect(reopened.list().map(\.height) == [500])
        #expect(try reopened.latest()?.payload == payloads[1])
    }

    @Test(arguments: ["partial", "complete"])
    func aLeftoverTemporaryFileIsRemovedAndNeverRead(leftover: String) throws {
        let directory = TemporaryDirectory("snap-tmp")
        let first = try openSnapshots(directory)
        try first.write(height: 10, round: 2, payload: [1, 2, 3])
        first.close()
        // A crash during a write of a newer snapshot: before or after its sync, but before the rename.
        let temporary = directory.snapshotPath(20) + ".tmp"
        var header = ByteWriter()
        SnapshotStore.encodeHeader(blockStoreIdentity, height: 20, round: 4, payloadBytes: 3, into: &header)
        var whole = header.bytes + [7, 8, 9]
        whole += withUnsafeBytes(of: CRC32C.checksum([UInt8]([7, 8, 9])).littleEndian) { Array($0) }
        try writeBytes(leftover == "complete" ? whole : Array(whole.prefix(40)), to: temporary)

        let store = try openSnapshots(directory)
        #expect(store.removedTemporaryFiles == 1)
        #expect(!FileManager.default.fileExists(atPath: temporary))
        #expect(try store.latest() == StoredSnapshot(height: 10, round: 2, payload: [1, 2, 3], path: directory.snapshotPath(10)))
    }

    @Test(arguments: [0, 1, 500, 999])
    func aFlippedPayloadByteIsRefused(byte: Int) throws {
        let directory = TemporaryDirectory("snap-flip")
        var random = SeededRandom(seed: 2)
        let store = try openSnapshots(directory)
        try store.write(height: 5, round: 1, payload: random.bytes(count: 1000))
        try store.write(height: 9, round: 3, payload: random.bytes(count: 1000))
        let path = directory.snapshotPath(9)
        var file = readBytes(path)
        file[SnapshotFormat.headerBytes + byte] ^= 0x08
        try writeBytes(file, to: path)

        let error = #expect(throws: StoreError.self) { _ = try store.latest() }
        guard case let .corrupt(foundPath, offset, reason) = error else {
            Issue.record("expected .corrupt, got \(String(describing: error))")
            return
        }
        #expect(foundPath == path)
        #expect(offset >= SnapshotFormat.headerBytes && offset < SnapshotFormat.headerBytes + 1000)
        #expect(reason.contains("payload checksum"))
        #expect(readBytes(path) == file)
        // No silent fall back to the older snapshot, but it is listed.
        #expect(store.list().map(\.height) == [5, 9])
    }

    @Test(arguments: [1, 4, 500, 1000 + SnapshotFormat.trailerBytes - 1, 1000 + SnapshotFormat.trailerBytes + 10])
    func aTruncatedSnapshotIsRefused(cut: Int) throws {
        let directory = TemporaryDirectory("snap-short")
        var random = SeededRandom(seed: 3)
        let store = try openSnapshots(directory)
        try store.write(height: 7, round: 2, payload: random.bytes(count: 1000))
        let path = directory.snapshotPath(7)
        let file = readBytes(path)
        let short = Array(file.dropLast(cut))
        try writeBytes(short, to: path)
        let error = #expect(throws: StoreError.self) { _ = try store.latest() }
        // Shorter than the header: the header is bad (offset 0); otherwise the file ends early.
        expectCorrupt(error, path: path, offset: short.count < SnapshotFormat.headerBytes ? 0 : short.count)
    }

    @Test func trailingBytesAreRefused() throws {
        let directory = TemporaryDirectory("snap-trailing")
        let store = try openSnapshots(directory)
        try store.write(height: 7, round: 2, payload: [1, 2, 3, 4])
        let path = directory.snapshotPath(7)
        let file = readBytes(path)
        try writeBytes(file + [0], to: path)
        let error = #expect(throws: StoreError.self) { _ = try store.latest() }
        expectCorrupt(error, path: path, offset: file.count, reasonContains: "follow")
    }

    @Test(arguments: ["magic", "header checksum", "reserved", "height"])
    func aBadHeaderIsRefused(damage: String) throws {
        let directory = TemporaryDirectory("snap-header")
        let store = try openSnapshots(directory)
        try store.write(height: 7, round: 2, payload: [1, 2, 3, 4])
        let path = directory.snapshotPath(7)
        var file = readBytes(path)
        var offset = 0
        switch damage {
        case "magic": file[2] ^= 0x01
        case "header checksum": file[53] ^= 0x01
        default:
            // A valid header checksum over a wrong field.
            var header = ByteWriter()
            SnapshotStore.encodeHeader(blockStoreIdentity, height: damage == "height" ? 8 : 7, round: 2, payloadBytes: 4, into: &header)
            var bytes = header.bytes
            if damage == "reserved" {
                bytes[6] = 1
                let checksum = CRC32C.checksum(Array(bytes[0..<68]))
                bytes.replaceSubrange(68..<72, with: withUnsafeBytes(of: checksum.littleEndian) { Array($0) })
                offset = 6
            } else {
                offset = 44
            }
            file.replaceSubrange(0..<SnapshotFormat.headerBytes, with: bytes)
        }
        try writeBytes(file, to: path)
        let error = #expect(throws: StoreError.self) { _ = try store.latest() }
        expectCorrupt(error, path: path, offset: offset)
    }

    @Test func anotherReplicasSnapshotIsRefused() throws {
        let directory = TemporaryDirectory("snap-identity")
        let store = try openSnapshots(directory)
        try store.write(height: 3, round: 1, payload: [9])
        store.close()
        let other = LogIdentity(replicaNumber: 99, topologyDigest: blockStoreIdentity.topologyDigest)
        let foreign = try openSnapshots(directory, identity: other)
        #expect(throws: StoreError.identityMismatch(path: directory.snapshotPath(3), expected: other, found: blockStoreIdentity)) {
            _ = try foreign.latest()
        }
    }

    @Test func thePayloadLimitHolds() throws {
        let directory = TemporaryDirectory("snap-limit")
        let large = try openSnapshots(directory)
        try large.write(height: 3, round: 1, payload: [UInt8](repeating: 7, count: 200))
        large.close()
        let small = try openSnapshots(directory, maximumPayloadBytes: 100)
        #expect(throws: StoreError.recordTooLarge(bytes: 101, limit: 100)) {
            try small.write(height: 4, round: 1, payload: [UInt8](repeating: 7, count: 101))
        }
        #expect(small.list().map(\.height) == [3])
        let error = #expect(throws: StoreError.self) { _ = try small.latest() }
        expectCorrupt(error, path: directory.snapshotPath(3), offset: 60, reasonContains: "exceeds")
    }

    @Test func aSecondOpenIsRefused() throws {
        let directory = TemporaryDirectory("snap-lock")
        let store = try openSnapshots(directory)
        #expect(throws: StoreError.locked(path: directory.snapshotsDirectory + "/" + SnapshotFormat.lockFileName)) {
            _ = try openSnapshots(directory)
        }
        store.close()
        _ = try openSnapshots(directory)
    }
}
