// The durable log of one replica: every DurableRecord its core asks to persist, appended to one
// file, so that a restarted replica folds them back into the DurableState it had.
//
// Directory layout (one directory per replica):
//   replica.log       the log (below)
//   replica.log.tmp   a log being created or compacted; never read, removed at the next open
//   LOCK              held with flock while the log is open, so two processes never share it
//
// replica.log, all integers little-endian:
//
//   header, 48 bytes
//   offset size field
//   0      4    magic "GFLG"
//   4      2    format version (LogFormat.version)
//   6      2    reserved, zero
//   8      4    replica number (LogIdentity)
//   12     32   topology digest (LogIdentity)
//   44     4    CRC-32C of bytes 0..<44
//
//   then records, back to back, each framed as
//   0      4    payload length n (DurableRecordCodec.minimumPayloadBytes ... maximumPayloadBytes)
//   4      4    CRC-32C of the payload
//   8      n    payload: a DurableRecord (DurableRecordCodec: tag, then fields)
//
// Recovery reads the records in order and folds them with DurableState.apply. A crash during an
// append leaves a torn tail: a last record that is cut short, or whose bytes did not all reach the
// disk (a bad checksum, or zeros where the filesystem grew the file before writing it). So a broken
// frame with no valid record anywhere after it is a torn tail; it is cut off and reported. A broken
// frame with a valid record after it is damage in the middle (a torn write leaves nothing valid
// behind it), and so is a bad header or a record whose checksum holds but whose contents do not
// decode: those are refused with StoreError.corrupt and nothing on disk changes, because cutting
// the log there would silently forget records the replica may have acted on. ("Any valid record
// after it" is searched byte by byte, since a damaged length field loses the record boundaries.)
//
// Compaction rewrites the log as the records of its folded state (DurableRecordCodec.snapshot):
// signed slots and prepared rounds at or below the stable checkpoint, superseded views and
// checkpoints are gone, and so are delivered and remote blocks of rounds the block store already
// holds durably (DurableRecord.ledgerStored): the log keeps protocol state and the blocks not yet
// executed, a window's worth, so its size and the cost of compacting it do not grow with the
// ledger (before format version 2 every block stayed: they were the whole ledger the replica
// re-executed on restart). The new log is written to replica.log.tmp, synced, renamed over
// replica.log, and the directory is synced: rename is atomic, so at every instant replica.log is
// either the complete old log or the complete new one.

import GeoCore
import GeoWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

public enum LogFormat {
    /// "GFLG" as the first four bytes of the file.
    public static let magic: UInt32 = 0x474C_4647
    /// Version 2 added the ledgerStored record (tag 7); version 1 logs are still read.
    public static let version: UInt16 = 2
    public static let readableVersions: ClosedRange<UInt16> = 1...2
    public static let headerBytes = 48
    /// Length and checksum before each record's payload.
    public static let recordFrameBytes = 8
    public static let fileName = "replica.log"
    public static let temporaryFileName = "replica.log.tmp"
    public static let lockFileName = "LOCK"
}

/// When appending a stable checkpoint compacts the log by itself. Compaction rewrites every live
/// byte (protocol state above the stable checkpoint and the blocks not yet in the block store, a
/// window's worth). Waiting until the bytes appended since the last compaction (nearly all dead by
/// then) reach a size and a fraction of the live bytes bounds the rewriting to a constant factor
/// of what was appended, and the log to its live size plus that much.
public struct CompactionPolicy: Hashable, Sendable {
    /// Never compact for less: rewriting costs a full pass over the log, not worth a few megabytes.
    public var minimumDeadBytes: Int
    /// Dead bytes must reach this percentage of the live bytes (the rewrite cost).
    public var minimumDeadPercentOfLive: Int

    public init(minimumDeadBytes: Int, minimumDeadPercentOfLive: Int) {
        self.minimumDeadBytes = minimumDeadBytes
        self.minimumDeadPercentOfLive = minimumDeadPercentOfLive
    }

    /// At most half the live size (or 16 MiB, whichever is more) of dead records;
    /// rewriting then costs at most twice the bytes that became dead.
    public static let `default` = CompactionPolicy(minimumDeadBytes: 16 << 20, minimumDeadPercentOfLive: 50)
    /// At every checkpoint that advances the stable round (tests; tiny deployments).
    public static let everyCheckpoint = CompactionPolicy(minimumDeadBytes: 0, minimumDeadPercentOfLive: 0)
    /// Only when `compact()` is called.
    public static let manual = CompactionPolicy(minimumDeadBytes: .max, minimumDeadPercentOfLive: 0)
}

public struct LogOptions: Hashable, Sendable {
    /// Bounds on what a record may hold; the same as the wire's, since records hold what came over it.
    public var limits: WireLimits
    public var compaction: CompactionPolicy

    public init(limits: WireLimits = WireLimits(), compaction: CompactionPolicy = .default) {
        self.limits = limits
        self.compaction = compaction
    }
}

/// What `ReplicaLog.open` found.
public struct RecoveredState: Hashable, Sendable {
    /// The fold of every record in the log.
    public var state: DurableState
    /// Records read (after a compaction, the snapshot's records, not every record ever appended).
    public var records: Int
    /// Bytes of a torn tail cut off the end of the log (0 when the log ended cleanly).
    public var truncatedBytes: Int
    /// Why the tail counted as torn, for the daemon's log line.
    public var truncationReason: String?
    /// The log did not exist and was created empty.
    public var created: Bool
    /// A replica.log.tmp left by a crash during creation or compaction was removed.
    public var removedTemporaryFile: Bool
}

/// The append-only log of one replica.
///
/// Not Sendable, on purpose: it owns a file descriptor and a write position, so exactly one owner
/// (the daemon's storage actor) makes every call, in order. The order that matters is the core's
/// Effect contract: `append` the persist effects, then `sync`, then carry out sends and replies.
///
/// After any failed write, sync or compaction the log refuses further use (`StoreError.unusable`):
/// once fsync has failed, what reached the disk is unknown (the kernel may have dropped the dirty
/// pages), so the only safe way on is to restart and recover from what is on disk.
public final class ReplicaLog {
    public let directory: String
    public let path: String
    public let identity: LogIdentity
    public let options: LogOptions
    /// The fold of every record appended and recovered: what a restart would recover once synced.
    public private(set) var state: DurableState
    /// Size of the log file, synced or not.
    public private(set) var fileBytes: Int
    /// Records in the log file.
    public private(set) var recordCount: Int
    /// Compactions since open.
    public private(set) var compactions = 0

    private var descriptor: Int32
    private var lockDescriptor: Int32
    /// Bytes of the file after the last compaction (at open: the whole file): what is live, at
    /// most, since nothing appended after it is counted.
    private var liveBytes: Int
    private var syncedBytes: Int
    private var failure: String?
    private let maximumPayloadBytes: Int

    private var temporaryPath: String { directory + "/" + LogFormat.temporaryFileName }

    /// Compaction writes the new log in pieces of this size, so the whole ledger is never encoded
    /// in memory at once.
    static let compactionChunkBytes = 1 << 20

    private init(directory: String, identity: LogIdentity, options: LogOptions, descriptor: Int32, lockDescriptor: Int32,
                 state: DurableState, fileBytes: Int, recordCount: Int) {
        self.directory = directory
        self.path = directory + "/" + LogFormat.fileName
        self.identity = identity
        self.options = options
        self.descriptor = descriptor
        self.lockDescriptor = lockDescriptor
        self.state = state
        self.fileBytes = fileBytes
        self.syncedBytes = fileBytes
        self.recordCount = recordCount
        self.liveBytes = fileBytes
        self.maximumPayloadBytes = DurableRecordCodec.maximumPayloadBytes(options.limits)
    }

    deinit { close() }

    // MARK: Opening

    /// Opens the log in `directory`, creating both when missing, otherwise recovering: the records
    /// are folded, a torn tail is cut off (and reported), and any other damage is refused with
    /// `.corrupt` without changing the file.
    public static func open(directory: String, identity: LogIdentity, options: LogOptions = LogOptions())
        throws(StoreError) -> (ReplicaLog, RecoveredState) {
        try POSIXFile.makeDirectories(directory)
        let lockDescriptor = try POSIXFile.lock(directory + "/" + LogFormat.lockFileName)
        let path = directory + "/" + LogFormat.fileName
        let temporary = directory + "/" + LogFormat.temporaryFileName
        do throws(StoreError) {
            if try POSIXFile.exists(path) {
                let descriptor = try POSIXFile.openFile(path, flags: O_RDWR)
                let scan: Scan
                do throws(StoreError) {
                    scan = try recover(descriptor, path: path, identity: identity, limits: options.limits)
                } catch {
                    POSIXFile.closeFile(descriptor)
                    throw error
                }
                // Only now that the whole log checked out may anything on disk change.
                let hadTemporary = try POSIXFile.exists(temporary)
                if hadTemporary { try POSIXFile.removeFile(temporary) }
                let log = ReplicaLog(directory: directory, identity: identity, options: options, descriptor: descriptor,
                                     lockDescriptor: lockDescriptor, state: scan.state, fileBytes: scan.validEnd,
                                     recordCount: scan.records)
                let recovered = RecoveredState(state: scan.state, records: scan.records,
                                               truncatedBytes: scan.fileBytes - scan.validEnd,
                                               truncationReason: scan.tornReason, created: false, removedTemporaryFile: hadTemporary)
                return (log, recovered)
            } else {
                let hadTemporary = try POSIXFile.exists(temporary)
                let descriptor = try create(path, temporary: temporary, directory: directory, identity: identity)
                let log = ReplicaLog(directory: directory, identity: identity, options: options, descriptor: descriptor,
                                     lockDescriptor: lockDescriptor, state: DurableState(), fileBytes: LogFormat.headerBytes,
                                     recordCount: 0)
                let recovered = RecoveredState(state: DurableState(), records: 0, truncatedBytes: 0, truncationReason: nil,
                                               created: true, removedTemporaryFile: hadTemporary)
                return (log, recovered)
            }
        } catch {
            POSIXFile.closeFile(lockDescriptor)
            throw error
        }
    }

    /// Writes a log holding only the header through the temporary file, so that a crash while
    /// creating never leaves a replica.log without a complete header.
    private static func create(_ path: String, temporary: String, directory: String,
                               identity: LogIdentity) throws(StoreError) -> Int32 {
        let descriptor = try POSIXFile.openFile(temporary, flags: O_RDWR | O_CREAT | O_TRUNC)
        do throws(StoreError) {
            var writer = ByteWriter(capacity: LogFormat.headerBytes)
            encodeHeader(identity, into: &writer)
            try POSIXFile.writeFully(descriptor, writer.bytes, at: 0, path: temporary)
            try POSIXFile.syncAll(descriptor, path: temporary)
            try POSIXFile.renameFile(temporary, to: path)
            try POSIXFile.syncDirectory(directory)
            return descriptor
        } catch {
            POSIXFile.closeFile(descriptor)
            try? POSIXFile.removeFile(temporary)
            throw error
        }
    }

    private struct Scan {
        var state = DurableState()
        var records = 0
        var fileBytes = 0
        /// Where the last valid record ends: the log's length once a torn tail is cut.
        var validEnd = 0
        var tornReason: String?
    }

    /// Reads and checks the whole log; cuts a torn tail off; changes nothing when it throws.
    private static func recover(_ descriptor: Int32, path: String, identity: LogIdentity,
                                limits: WireLimits) throws(StoreError) -> Scan {
        let size = try POSIXFile.size(descriptor, path: path)
        guard size >= LogFormat.headerBytes else {
            // Never a torn write: the header reaches replica.log only through a synced rename.
            throw .corrupt(path: path, offset: 0,
                           reason: "the file is \(size) bytes, shorter than the \(LogFormat.headerBytes)-byte header")
        }
        let file = try POSIXFile.map(descriptor, length: size, path: path)
        defer { POSIXFile.unmap(file) }
        let result = try scan(file, path: path, identity: identity, limits: limits)
        if result.validEnd < size {
            try POSIXFile.truncate(descriptor, to: result.validEnd, path: path)
            try POSIXFile.syncData(descriptor, path: path)
        }
        return result
    }

    private static func scan(_ file: UnsafeRawBufferPointer, path: String, identity: LogIdentity,
                             limits: WireLimits) throws(StoreError) -> Scan {
        try checkHeader(file, path: path, identity: identity)
        var scan = Scan()
        scan.fileBytes = file.count
        var offset = LogFormat.headerBytes
        let maximum = DurableRecordCodec.maximumPayloadBytes(limits)
        while offset < file.count {
            switch readFrame(file, at: offset, maximumPayloadBytes: maximum, limits: limits) {
            case let .record(record, end):
                scan.state.apply(record)
                scan.records += 1
                offset = end
            case let .undecodable(error):
                throw .corrupt(path: path, offset: offset, reason: "the record's checksum holds but it does not decode: \(error)")
            case let .broken(reason):
                if let next = firstValidRecord(file, after: offset, maximumPayloadBytes: maximum, limits: limits) {
                    throw .corrupt(path: path, offset: offset, reason: "\(reason), and a valid record follows at byte \(next)")
                }
                scan.validEnd = offset
                scan.tornReason = reason
                return scan
            }
        }
        scan.validEnd = offset
        return scan
    }

    private static func checkHeader(_ file: UnsafeRawBufferPointer, path: String, identity: LogIdentity) throws(StoreError) {
        let magic = loadU32(file, at: 0)
        guard magic == LogFormat.magic else {
            throw .corrupt(path: path, offset: 0, reason: "bad magic 0x\(String(magic, radix: 16)) (not a GeoFabric replica log)")
        }
        // The version is checked before the checksum: a later version may lay out the rest differently.
        let version = UInt16(littleEndian: file.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
        guard LogFormat.readableVersions.contains(version) else {
            throw .unsupportedVersion(path: path, found: version, supported: LogFormat.version)
        }
        let declared = loadU32(file, at: 44)
        let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: file[0..<44]))
        guard declared == computed else {
            throw .corrupt(path: path, offset: 0,
                           reason: "header checksum mismatch (declared 0x\(String(declared, radix: 16)), computed 0x\(String(computed, radix: 16)))")
        }
        let reserved = UInt16(littleEndian: file.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
        guard reserved == 0 else { throw .corrupt(path: path, offset: 6, reason: "reserved header field is \(reserved), not 0") }
        // 32 bytes always make a Digest.
        let found = LogIdentity(replicaNumber: loadU32(file, at: 8), topologyDigest: Digest(bytes: file[12..<44])!)
        guard found == identity else { throw .identityMismatch(path: path, expected: identity, found: found) }
    }

    private static func loadU32(_ file: UnsafeRawBufferPointer, at offset: Int) -> UInt32 {
        UInt32(littleEndian: file.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    private enum FrameRead {
        case record(DurableRecord, end: Int)
        /// The frame is cut short or fails its checksum: what a torn write leaves.
        case broken(String)
        /// The frame is intact but its payload is not a record: never a torn write.
        case undecodable(WireError)
    }

    private static func readFrame(_ file: UnsafeRawBufferPointer, at offset: Int, maximumPayloadBytes: Int,
                                  limits: WireLimits) -> FrameRead {
        let available = file.count - offset
        guard available >= LogFormat.recordFrameBytes else {
            return .broken("the file ends \(available) bytes into a record's \(LogFormat.recordFrameBytes)-byte frame")
        }
        let length = Int(loadU32(file, at: offset))
        let declared = loadU32(file, at: offset + 4)
        guard length >= DurableRecordCodec.minimumPayloadBytes else {
            return .broken("record length \(length) is below the minimum of \(DurableRecordCodec.minimumPayloadBytes)")
        }
        guard length <= maximumPayloadBytes else {
            return .broken("record length \(length) exceeds the maximum of \(maximumPayloadBytes)")
        }
        let start = offset + LogFormat.recordFrameBytes
        guard length <= file.count - start else {
            return .broken("the file ends inside a record (\(length)-byte payload, \(file.count - start) bytes left)")
        }
        let payload = UnsafeRawBufferPointer(rebasing: file[start..<(start + length)])
        let computed = CRC32C.checksum(payload)
        guard computed == declared else {
            return .broken("checksum mismatch (declared 0x\(String(declared, radix: 16)), computed 0x\(String(computed, radix: 16)))")
        }
        do throws(WireError) {
            return .record(try DurableRecordCodec.decode(payload, limits: limits), end: start + length)
        } catch {
            return .undecodable(error)
        }
    }

    /// The offset of the first valid record that starts after `offset`, at any byte.
    private static func firstValidRecord(_ file: UnsafeRawBufferPointer, after offset: Int, maximumPayloadBytes: Int,
                                         limits: WireLimits) -> Int? {
        let lastStart = file.count - LogFormat.recordFrameBytes - DurableRecordCodec.minimumPayloadBytes
        guard offset < lastStart else { return nil }
        for candidate in (offset + 1)...lastStart {
            // A cheap filter before the checksum: the first payload byte must be a known tag.
            guard DurableRecordCodec.Tag(rawValue: file[candidate + LogFormat.recordFrameBytes]) != nil else { continue }
            if case .record = readFrame(file, at: candidate, maximumPayloadBytes: maximumPayloadBytes, limits: limits) {
                return candidate
            }
        }
        return nil
    }

    static func encodeHeader(_ identity: LogIdentity, into writer: inout ByteWriter) {
        let start = writer.bytes.count
        writer.u32(LogFormat.magic)
        writer.u16(LogFormat.version)
        writer.u16(0)
        writer.u32(identity.replicaNumber)
        writer.digest(identity.topologyDigest)
        writer.u32(CRC32C.checksum(writer.bytes[start...]))
    }

    /// Appends one framed record; refuses (before anything is written) one that recovery would refuse.
    static func frame(_ record: DurableRecord, into writer: inout ByteWriter, maximumPayloadBytes: Int) throws(StoreError) {
        let start = writer.bytes.count
        writer.u32(0)  // payload length, patched below
        writer.u32(0)  // payload checksum, patched below
        DurableRecordCodec.encode(record, into: &writer)
        let payloadStart = start + LogFormat.recordFrameBytes
        let length = writer.bytes.count - payloadStart
        guard length <= maximumPayloadBytes else { throw .recordTooLarge(bytes: length, limit: maximumPayloadBytes) }
        writer.patchU32(UInt32(length), at: start)
        writer.patchU32(CRC32C.checksum(writer.bytes[payloadStart...]), at: start + 4)
    }

    // MARK: Appending

    /// Writes `records` at the end of the log, in order. They are durable only after `sync()`.
    /// A stable checkpoint among them may compact the log (see CompactionPolicy), which syncs it.
    public func append(_ records: [DurableRecord]) throws(StoreError) {
        try checkUsable()
        guard !records.isEmpty else { return }
        var writer = ByteWriter(capacity: 256)
        for record in records {
            try Self.frame(record, into: &writer, maximumPayloadBytes: maximumPayloadBytes)
        }
        do throws(StoreError) {
            try POSIXFile.writeFully(descriptor, writer.bytes, at: fileBytes, path: path)
        } catch {
            // Cut a partly written batch off so the file ends on a record boundary; recovery would
            // cut it anyway, and the log is unusable from here on.
            try? POSIXFile.truncate(descriptor, to: fileBytes, path: path)
            throw poison(error)
        }
        fileBytes += writer.bytes.count
        recordCount += records.count
        let stableBefore = state.stable?.statement.round
        for record in records { state.apply(record) }
        if state.stable?.statement.round != stableBefore && compactionDue { try compact() }
    }

    /// Makes everything appended so far durable. The daemon calls it before any send or reply
    /// that depends on the appended records.
    public func sync() throws(StoreError) {
        try checkUsable()
        guard syncedBytes < fileBytes else { return }
        do throws(StoreError) {
            try POSIXFile.syncData(descriptor, path: path)
        } catch {
            throw poison(error)
        }
        syncedBytes = fileBytes
    }

    public func appendAndSync(_ records: [DurableRecord]) throws(StoreError) {
        try append(records)
        try sync()
    }

    // MARK: Compaction

    /// Bytes appended since the last compaction: an upper bound on the dead bytes (it also counts
    /// the live records among them, at most a window's worth).
    private var appendedBytes: Int { fileBytes - liveBytes }

    private var compactionDue: Bool {
        let policy = options.compaction
        return appendedBytes >= policy.minimumDeadBytes && appendedBytes * 100 >= liveBytes * policy.minimumDeadPercentOfLive
    }

    /// Rewrites the log as the records of its folded state, crash-safely (see the top of this file).
    /// Everything appended before it is durable afterwards.
    public func compact() throws(StoreError) {
        try checkUsable()
        do throws(StoreError) {
            try rewrite()
        } catch {
            throw poison(error)
        }
    }

    private func rewrite() throws(StoreError) {
        let records = DurableRecordCodec.snapshot(of: state)
        assert({
            var folded = DurableState()
            for record in records { folded.apply(record) }
            return folded == self.state
        }(), "a snapshot must fold back to the state it was taken of")
        let temporary = temporaryPath
        let newDescriptor = try POSIXFile.openFile(temporary, flags: O_RDWR | O_CREAT | O_TRUNC)
        var installed = false
        defer {
            if !installed {
                POSIXFile.closeFile(newDescriptor)
                try? POSIXFile.removeFile(temporary)
            }
        }
        var writer = ByteWriter(capacity: Self.compactionChunkBytes + 4096)
        Self.encodeHeader(identity, into: &writer)
        var written = 0
        for record in records {
            try Self.frame(record, into: &writer, maximumPayloadBytes: maximumPayloadBytes)
            if writer.bytes.count >= Self.compactionChunkBytes {
                try POSIXFile.writeFully(newDescriptor, writer.bytes, at: written, path: temporary)
                written += writer.bytes.count
                writer = ByteWriter(capacity: Self.compactionChunkBytes + 4096)
            }
        }
        try POSIXFile.writeFully(newDescriptor, writer.bytes, at: written, path: temporary)
        written += writer.bytes.count
        try POSIXFile.syncAll(newDescriptor, path: temporary)
        try POSIXFile.renameFile(temporary, to: path)
        // From here replica.log names the new file, which the new descriptor already has open.
        installed = true
        POSIXFile.closeFile(descriptor)
        descriptor = newDescriptor
        fileBytes = written
        syncedBytes = written
        recordCount = records.count
        liveBytes = written
        compactions += 1
        try POSIXFile.syncDirectory(directory)
    }

    // MARK: Closing

    /// Closes the file and releases the directory's lock. Appended records not yet synced may or
    /// may not survive a crash that follows.
    public func close() {
        if descriptor >= 0 {
            POSIXFile.closeFile(descriptor)
            descriptor = -1
        }
        if lockDescriptor >= 0 {
            POSIXFile.closeFile(lockDescriptor)
            lockDescriptor = -1
        }
        if failure == nil { failure = "the log was closed" }
    }

    private func checkUsable() throws(StoreError) {
        if let failure { throw .unusable(path: path, cause: failure) }
    }

    private func poison(_ error: StoreError) -> StoreError {
        if failure == nil { failure = error.description }
        return error
    }
}
