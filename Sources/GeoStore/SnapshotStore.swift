// State snapshots a replica takes at stable checkpoints. The store treats the payload as opaque
// bytes (the state's encoding is someone else's); it makes each snapshot atomic, checksummed and
// tied to the replica's identity, and keeps the latest few.
//
// Directory layout (DIR/snapshots, beside the replica log):
//   snapshot-<ledger height, 20 digits>.snap       one snapshot each
//   snapshot-<ledger height, 20 digits>.snap.tmp   a snapshot being written; never read, removed at open
//   LOCK                                           held with flock while the store is open
// Files with other names are ignored.
//
// A snapshot file, all integers little-endian:
//
//   header, 72 bytes
//   offset size field
//   0      4    magic "GFSN"
//   4      2    format version (SnapshotFormat.version)
//   6      2    reserved, zero
//   8      4    replica number (LogIdentity)
//   12     32   topology digest (LogIdentity)
//   44     8    ledger height (equals the file name's)
//   52     8    round
//   60     8    payload length n
//   68     4    CRC-32C of bytes 0..<68
//   72     n    payload
//   72+n   4    CRC-32C of the payload
//
// Writing goes through the .tmp file, which is synced, renamed over the final name, and the
// directory synced: rename is atomic, so a snapshot file is either absent or complete. Any damage
// in the newest snapshot is refused with StoreError.corrupt, naming the file and the offset of the
// first bad field (for a payload checksum mismatch, the payload's first byte: the checksum cannot
// tell which byte changed). It never falls back silently to an older snapshot: an operator must see
// the damage; `list()` shows what else is there.

import GeoCore
import GeoWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

public enum SnapshotFormat {
    /// "GFSN" as the first four bytes of a snapshot.
    public static let magic: UInt32 = 0x4E53_4647
    public static let version: UInt16 = 1
    public static let headerBytes = 72
    /// The payload's checksum after it.
    public static let trailerBytes = 4
    public static let directoryName = "snapshots"
    public static let lockFileName = "LOCK"
    static let filePrefix = "snapshot-"
    static let fileSuffix = ".snap"

    public static func fileName(height: UInt64) -> String {
        filePrefix + POSIXFile.paddedNumber(height) + fileSuffix
    }
}

/// A snapshot read back from disk.
public struct StoredSnapshot: Hashable, Sendable {
    public var height: UInt64
    public var round: UInt64
    public var payload: [UInt8]
    public var path: String

    public init(height: UInt64, round: UInt64, payload: [UInt8], path: String) {
        self.height = height
        self.round = round
        self.payload = payload
        self.path = path
    }
}

/// The snapshots of one replica. Not Sendable, like ReplicaLog: one owner makes every call.
///
/// Every write is self-contained (a new file, installed by an atomic rename), so a failed write
/// leaves the snapshots that were there and the store stays usable.
public final class SnapshotStore {
    /// DIR/snapshots.
    public let directory: String
    public let identity: LogIdentity
    /// Snapshots kept after a write: the newest `keep`, by height.
    public let keep: Int
    /// The largest payload `latest()` reads (checked before allocating) and so `write` accepts.
    public let maximumPayloadBytes: Int
    /// `*.tmp` files `open` removed.
    public let removedTemporaryFiles: Int

    private var lockDescriptor: Int32

    private init(directory: String, identity: LogIdentity, keep: Int, maximumPayloadBytes: Int, lockDescriptor: Int32,
                 removedTemporaryFiles: Int) {
        self.directory = directory
        self.identity = identity
        self.keep = keep
        self.maximumPayloadBytes = maximumPayloadBytes
        self.lockDescriptor = lockDescriptor
        self.removedTemporaryFiles = removedTemporaryFiles
    }

    deinit { close() }

    /// Opens the store in `directory`/snapshots, creating it when missing, and removes the `*.tmp`
    /// files a crash during a write left behind.
    public static func open(directory: String, identity: LogIdentity, keep: Int = 2,
                            maximumPayloadBytes: Int = 1 << 30) throws(StoreError) -> SnapshotStore {
        precondition(keep >= 1, "a snapshot store keeps at least the latest snapshot")
        precondition(maximumPayloadBytes >= 0)
        let snapshots = directory + "/" + SnapshotFormat.directoryName
        try POSIXFile.makeDirectories(snapshots)
        let lockDescriptor = try POSIXFile.lock(snapshots + "/" + SnapshotFormat.lockFileName)
        do throws(StoreError) {
            let removed = try POSIXFile.removeTemporaryFiles(in: snapshots)
            if removed > 0 { try POSIXFile.syncDirectory(snapshots) }
            return SnapshotStore(directory: snapshots, identity: identity, keep: keep, maximumPayloadBytes: maximumPayloadBytes,
                                 lockDescriptor: lockDescriptor, removedTemporaryFiles: removed)
        } catch {
            POSIXFile.closeFile(lockDescriptor)
            throw error
        }
    }

    public func path(height: UInt64) -> String { directory + "/" + SnapshotFormat.fileName(height: height) }

    // MARK: Writing

    /// Writes the snapshot at `height` atomically (see the top of this file), replacing one at the
    /// same height, then removes all but the newest `keep` snapshots. Durable when it returns.
    public func write(height: UInt64, round: UInt64, payload: [UInt8]) throws(StoreError) {
        try checkOpen()
        guard payload.count <= maximumPayloadBytes else {
            throw .recordTooLarge(bytes: payload.count, limit: maximumPayloadBytes)
        }
        let path = path(height: height)
        let temporary = path + ".tmp"
        let descriptor = try POSIXFile.openFile(temporary, flags: O_WRONLY | O_CREAT | O_TRUNC)
        do throws(StoreError) {
            var header = ByteWriter(capacity: SnapshotFormat.headerBytes)
            Self.encodeHeader(identity, height: height, round: round, payloadBytes: payload.count, into: &header)
            // Header, payload and trailer go out separately, so a large payload is never copied.
            try POSIXFile.writeFully(descriptor, header.bytes, at: 0, path: temporary)
            try POSIXFile.writeFully(descriptor, payload, at: SnapshotFormat.headerBytes, path: temporary)
            var trailer = ByteWriter(capacity: SnapshotFormat.trailerBytes)
            trailer.u32(CRC32C.checksum(payload))
            try POSIXFile.writeFully(descriptor, trailer.bytes, at: SnapshotFormat.headerBytes + payload.count, path: temporary)
            try POSIXFile.syncAll(descriptor, path: temporary)
            POSIXFile.closeFile(descriptor)
        } catch {
            POSIXFile.closeFile(descriptor)
            try? POSIXFile.removeFile(temporary)
            throw error
        }
        do throws(StoreError) {
            try POSIXFile.renameFile(temporary, to: path)
        } catch {
            try? POSIXFile.removeFile(temporary)
            throw error
        }
        try POSIXFile.syncDirectory(directory)
        let stale = list().dropLast(keep)
        guard !stale.isEmpty else { return }
        for snapshot in stale { try POSIXFile.removeFile(snapshot.path) }
        try POSIXFile.syncDirectory(directory)
    }

    static func encodeHeader(_ identity: LogIdentity, height: UInt64, round: UInt64, payloadBytes: Int,
                             into writer: inout ByteWriter) {
        let start = writer.bytes.count
        writer.u32(SnapshotFormat.magic)
        writer.u16(SnapshotFormat.version)
        writer.u16(0)
        writer.u32(identity.replicaNumber)
        writer.digest(identity.topologyDigest)
        writer.u64(height)
        writer.u64(round)
        writer.u64(UInt64(payloadBytes))
        writer.u32(CRC32C.checksum(writer.bytes[start...]))
    }

    // MARK: Reading

    /// The snapshots on disk, oldest first (by height). Unreadable directories list as empty.
    public func list() -> [(height: UInt64, path: String)] {
        let names = (try? POSIXFile.listDirectory(directory)) ?? []
        return names.compactMap { name -> (height: UInt64, path: String)? in
            POSIXFile.numberedName(name, prefix: SnapshotFormat.filePrefix, suffix: SnapshotFormat.fileSuffix)
                .map { (height: $0, path: directory + "/" + name) }
        }.sorted { $0.height < $1.height }
    }

    /// The newest snapshot by height, checked whole; nil when there is none. Damage in it is
    /// refused (`.corrupt`, `.identityMismatch`, `.unsupportedVersion`), never skipped.
    public func latest() throws(StoreError) -> StoredSnapshot? {
        try checkOpen()
        guard let newest = list().last else { return nil }
        return try Self.read(newest.path, height: newest.height, identity: identity, maximumPayloadBytes: maximumPayloadBytes)
    }

    /// The snapshot at `height`, or else the oldest the store holds above it; nil when it holds
    /// none at or above `height` (state transfer serves one a peer asked for by height, and a
    /// newer one when that one rotated away). Damage throws as for `latest()`.
    public func snapshot(atOrAbove height: UInt64) throws(StoreError) -> StoredSnapshot? {
        try checkOpen()
        guard let entry = list().first(where: { $0.height >= height }) else { return nil }
        return try Self.read(entry.path, height: entry.height, identity: identity, maximumPayloadBytes: maximumPayloadBytes)
    }

    static func read(_ path: String, height: UInt64, identity: LogIdentity,
                     maximumPayloadBytes: Int) throws(StoreError) -> StoredSnapshot {
        let descriptor = try POSIXFile.openFile(path, flags: O_RDONLY)
        defer { POSIXFile.closeFile(descriptor) }
        let size = try POSIXFile.size(descriptor, path: path)
        guard size >= SnapshotFormat.headerBytes else {
            throw .corrupt(path: path, offset: 0,
                           reason: "the file is \(size) bytes, shorter than the \(SnapshotFormat.headerBytes)-byte header")
        }
        // Mapped, so the header and the payload's checksum are checked before a payload-sized
        // buffer is allocated, and the payload is copied exactly once, into the result.
        let file = try POSIXFile.map(descriptor, length: size, path: path)
        defer { POSIXFile.unmap(file) }
        func u16(_ offset: Int) -> UInt16 { UInt16(littleEndian: file.loadUnaligned(fromByteOffset: offset, as: UInt16.self)) }
        func u32(_ offset: Int) -> UInt32 { UInt32(littleEndian: file.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
        func u64(_ offset: Int) -> UInt64 { UInt64(littleEndian: file.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }

        let magic = u32(0)
        guard magic == SnapshotFormat.magic else {
            throw .corrupt(path: path, offset: 0, reason: "bad magic 0x\(String(magic, radix: 16)) (not a GeoFabric snapshot)")
        }
        let version = u16(4)
        guard version == SnapshotFormat.version else {
            throw .unsupportedVersion(path: path, found: version, supported: SnapshotFormat.version)
        }
        let declared = u32(68)
        let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: file[0..<68]))
        guard declared == computed else {
            throw .corrupt(path: path, offset: 0,
                           reason: "header checksum mismatch (declared 0x\(String(declared, radix: 16)), computed 0x\(String(computed, radix: 16)))")
        }
        guard u16(6) == 0 else { throw .corrupt(path: path, offset: 6, reason: "reserved header field is \(u16(6)), not 0") }
        // 32 bytes always make a Digest.
        let found = LogIdentity(replicaNumber: u32(8), topologyDigest: Digest(bytes: file[12..<44])!)
        guard found == identity else { throw .identityMismatch(path: path, expected: identity, found: found) }
        guard u64(44) == height else {
            throw .corrupt(path: path, offset: 44, reason: "the header's height is \(u64(44)), but the file name says \(height)")
        }
        let round = u64(52)
        let length = u64(60)
        guard length <= UInt64(maximumPayloadBytes) else {
            throw .corrupt(path: path, offset: 60, reason: "payload length \(length) exceeds the maximum of \(maximumPayloadBytes)")
        }
        let payloadBytes = Int(length)
        let expected = SnapshotFormat.headerBytes + payloadBytes + SnapshotFormat.trailerBytes
        guard size >= expected else {
            throw .corrupt(path: path, offset: size, reason: "the file ends at byte \(size), but a \(payloadBytes)-byte payload "
                           + "and its checksum need \(expected) bytes (truncated)")
        }
        guard size == expected else {
            throw .corrupt(path: path, offset: expected, reason: "\(size - expected) bytes follow the payload's checksum")
        }
        let payload = UnsafeRawBufferPointer(rebasing: file[SnapshotFormat.headerBytes..<(SnapshotFormat.headerBytes + payloadBytes)])
        let declaredPayload = u32(SnapshotFormat.headerBytes + payloadBytes)
        let computedPayload = CRC32C.checksum(payload)
        guard declaredPayload == computedPayload else {
            throw .corrupt(path: path, offset: SnapshotFormat.headerBytes,
                           reason: "payload checksum mismatch over bytes \(SnapshotFormat.headerBytes)..<\(SnapshotFormat.headerBytes + payloadBytes) "
                           + "(declared 0x\(String(declaredPayload, radix: 16)), computed 0x\(String(computedPayload, radix: 16)))")
        }
        return StoredSnapshot(height: height, round: round, payload: Array(payload), path: path)
    }

    // MARK: Closing

    /// Releases the directory's lock; the store refuses further use.
    public func close() {
        if lockDescriptor >= 0 {
            POSIXFile.closeFile(lockDescriptor)
            lockDescriptor = -1
        }
    }

    private func checkOpen() throws(StoreError) {
        if lockDescriptor < 0 { throw .unusable(path: directory, cause: "the store was closed") }
    }
}
