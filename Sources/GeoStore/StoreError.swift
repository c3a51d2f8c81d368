// Why the replica log cannot be opened or written. An operator reads these at startup, so each
// one names the file, and for damage the byte offset, and says what to do about it.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

public enum StoreError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The file is damaged somewhere other than a torn tail: a bad header, a damaged record with
    /// valid records after it, or a record whose checksum holds but whose contents do not decode.
    /// Nothing on disk was changed.
    case corrupt(path: String, offset: Int, reason: String)
    /// The log was written by another replica or for another topology.
    case identityMismatch(path: String, expected: LogIdentity, found: LogIdentity)
    /// The log was written in a format version this build does not read.
    case unsupportedVersion(path: String, found: UInt16, supported: UInt16)
    /// Another process (or another open log in this one) holds the directory's lock.
    case locked(path: String)
    /// A system call failed.
    case io(path: String, operation: String, errno: Int32)
    /// A record is larger than recovery would accept, so it was not written.
    case recordTooLarge(bytes: Int, limit: Int)
    /// An earlier write, sync or compaction failed, so what is on disk is no longer known; the
    /// log refuses further use. Restarting the replica recovers from what is on disk.
    case unusable(path: String, cause: String)

    /// A short, stable label for metrics and logs.
    public var reason: String {
        switch self {
        case .corrupt: return "corrupt"
        case .identityMismatch: return "identity_mismatch"
        case .unsupportedVersion: return "unsupported_version"
        case .locked: return "locked"
        case .io: return "io"
        case .recordTooLarge: return "record_too_large"
        case .unusable: return "unusable"
        }
    }

    public var description: String {
        switch self {
        case let .corrupt(path, offset, reason):
            return "\(path): corrupt at byte \(offset): \(reason) (the log is damaged, and not by a torn final write; "
                + "refusing to start and leaving the file untouched: restore it, or remove the data directory so the "
                + "replica rejoins empty)"
        case let .identityMismatch(path, expected, found):
            return "\(path): this log belongs to \(found), but this replica is \(expected) "
                + "(wrong data directory, or the topology changed a field the data is bound to: the shards, clusters, "
                + "replicas and their addresses or keys, batch_size, window, checkpoint_every, snapshot_every or "
                + "max_message_bytes; timeouts and other timings may change. Refusing to start)"
        case let .unsupportedVersion(path, found, supported):
            return "\(path): log format version \(found) is not supported (this build reads version \(supported))"
        case let .locked(path):
            return "\(path): locked by another process (is this replica already running?)"
        case let .io(path, operation, code):
            return "\(path): \(operation) failed: \(String(cString: strerror(code))) (errno \(code))"
        case let .recordTooLarge(bytes, limit):
            return "record of \(bytes) bytes exceeds the log's limit of \(limit) bytes; not written"
        case let .unusable(path, cause):
            return "\(path): the log is unusable after an earlier failure (\(cause)); restart the replica to recover"
        }
    }
}
