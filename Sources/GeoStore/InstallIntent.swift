// A replica installing a snapshot that state transfer brought writes the snapshot, then restarts
// its block store after it (the blocks below are not its to serve). Two steps on two stores: a
// crash between them, or during the store's restart, would leave a snapshot above a store that
// ends below it, which is also what removed blocks look like. So the replica first records its
// intent, durably, in `INSTALLING` (the snapshot's height, as 8 little-endian bytes and their
// CRC-32C); on open, a pending intent is finished (the store restarted after the snapshot) when
// the snapshot reached the disk, and dropped when it did not (the old state is intact, and the
// replica will transfer again). Only without an intent is a store below the snapshot damage.

import GeoWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

public enum InstallIntent {
    public static let fileName = "INSTALLING"

    /// Records, durably, that a snapshot at `height` is being installed in `directory`.
    public static func begin(directory: String, height: UInt64) throws(StoreError) {
        var writer = ByteWriter(capacity: 12)
        writer.u64(height)
        writer.u32(CRC32C.checksum(writer.bytes))
        let path = directory + "/" + fileName
        let temporary = path + ".tmp"
        let descriptor = try POSIXFile.openFile(temporary, flags: O_RDWR | O_CREAT | O_TRUNC)
        do throws(StoreError) {
            try POSIXFile.writeFully(descriptor, writer.bytes, at: 0, path: temporary)
            try POSIXFile.syncAll(descriptor, path: temporary)
        } catch {
            POSIXFile.closeFile(descriptor)
            throw error
        }
        POSIXFile.closeFile(descriptor)
        try POSIXFile.renameFile(temporary, to: path)
        try POSIXFile.syncDirectory(directory)
    }

    /// The height of a pending install, nil when none. A marker that does not check out is
    /// refused: it was written through a synced rename, so no crash leaves it damaged.
    public static func pending(directory: String) throws(StoreError) -> UInt64? {
        let path = directory + "/" + fileName
        try? POSIXFile.removeFile(path + ".tmp")
        guard try POSIXFile.exists(path) else { return nil }
        let descriptor = try POSIXFile.openFile(path, flags: O_RDONLY)
        defer { POSIXFile.closeFile(descriptor) }
        guard let bytes = try POSIXFile.read(descriptor, count: 12, at: 0, path: path), try POSIXFile.size(descriptor, path: path) == 12
        else { throw .corrupt(path: path, offset: 0, reason: "an install marker is 12 bytes") }
        var height: UInt64 = 0
        for index in 0..<8 { height |= UInt64(bytes[index]) << (8 * UInt64(index)) }
        var crc: UInt32 = 0
        for index in 0..<4 { crc |= UInt32(bytes[8 + index]) << (8 * UInt32(index)) }
        guard crc == CRC32C.checksum(Array(bytes[0..<8])) else {
            throw .corrupt(path: path, offset: 8, reason: "the install marker's checksum does not hold")
        }
        return height
    }

    /// The install is complete (or abandoned): the marker goes.
    public static func end(directory: String) throws(StoreError) {
        try POSIXFile.removeFile(directory + "/" + fileName)
        try POSIXFile.syncDirectory(directory)
    }
}
