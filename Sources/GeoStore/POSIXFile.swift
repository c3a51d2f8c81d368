// Thin wrappers over the POSIX calls the log needs. POSIX rather than FileHandle because durability
// depends on exactly which calls happen in which order (write, fsync, rename, fsync of the
// directory), and each failure must become a typed error naming the file.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

enum POSIXFile {
    /// Files the log creates are readable by others (operators inspect them) and writable by the owner.
    static let createMode: mode_t = 0o644
    static let directoryMode: mode_t = 0o755

    static func openFile(_ path: String, flags: Int32) throws(StoreError) -> Int32 {
        while true {
            let fd = open(path, flags | O_CLOEXEC, createMode)
            if fd >= 0 { return fd }
            let code = errno
            if code != EINTR { throw .io(path: path, operation: "open", errno: code) }
        }
    }

    static func closeFile(_ fd: Int32) {
        // A failed close after a successful fsync loses nothing; there is nothing useful to do with it.
        _ = close(fd)
    }

    static func exists(_ path: String) throws(StoreError) -> Bool {
        var status = stat()
        if stat(path, &status) == 0 { return true }
        let code = errno
        if code == ENOENT { return false }
        throw .io(path: path, operation: "stat", errno: code)
    }

    static func size(_ fd: Int32, path: String) throws(StoreError) -> Int {
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw .io(path: path, operation: "fstat", errno: errno) }
        return Int(status.st_size)
    }

    /// Writes all of `bytes` at `offset`, retrying short writes and interruptions.
    static func writeFully(_ fd: Int32, _ bytes: [UInt8], at offset: Int, path: String) throws(StoreError) {
        let failure: Int32? = bytes.withUnsafeBytes { buffer in
            var written = 0
            while written < buffer.count {
                let count = pwrite(fd, buffer.baseAddress! + written, buffer.count - written, off_t(offset + written))
                if count > 0 {
                    written += count
                } else if count < 0 && errno == EINTR {
                    continue
                } else {
                    // A write that makes no progress without an error would loop forever; call it EIO.
                    return count < 0 ? errno : EIO
                }
            }
            return nil
        }
        if let failure { throw .io(path: path, operation: "write", errno: failure) }
    }

    /// Makes the file's data durable. On Darwin plain fsync leaves data in the drive's cache, so
    /// F_FULLFSYNC is used there. fdatasync suffices on Linux: it also flushes the size of an
    /// appended file, which is the only metadata reading the data back needs.
    static func syncData(_ fd: Int32, path: String) throws(StoreError) {
        #if canImport(Darwin)
        if fcntl(fd, F_FULLFSYNC) == 0 { return }
        try syncAll(fd, path: path)
        #else
        while fdatasync(fd) != 0 {
            let code = errno
            if code != EINTR { throw .io(path: path, operation: "fdatasync", errno: code) }
        }
        #endif
    }

    /// Makes the file's data and metadata durable (for new files and directories).
    static func syncAll(_ fd: Int32, path: String) throws(StoreError) {
        #if canImport(Darwin)
        if fcntl(fd, F_FULLFSYNC) == 0 { return }
        #endif
        while fsync(fd) != 0 {
            let code = errno
            if code != EINTR { throw .io(path: path, operation: "fsync", errno: code) }
        }
    }

    /// Makes the entries of a directory (created, renamed or removed files) durable.
    static func syncDirectory(_ path: String) throws(StoreError) {
        let fd = try openFile(path, flags: O_RDONLY | O_DIRECTORY)
        defer { closeFile(fd) }
        try syncAll(fd, path: path)
    }

    static func truncate(_ fd: Int32, to length: Int, path: String) throws(StoreError) {
        while ftruncate(fd, off_t(length)) != 0 {
            let code = errno
            if code != EINTR { throw .io(path: path, operation: "ftruncate", errno: code) }
        }
    }

    static func renameFile(_ from: String, to: String) throws(StoreError) {
        guard rename(from, to) == 0 else { throw .io(path: from, operation: "rename to \(to)", errno: errno) }
    }

    static func removeFile(_ path: String) throws(StoreError) {
        guard unlink(path) == 0 || errno == ENOENT else { throw .io(path: path, operation: "unlink", errno: errno) }
    }

    /// Creates `path` and any missing parents, making each new entry durable in its parent.
    static func makeDirectories(_ path: String) throws(StoreError) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            let parent = prefix.isEmpty ? "." : prefix
            prefix += prefix.isEmpty || prefix.hasSuffix("/") ? String(component) : "/" + String(component)
            if mkdir(prefix, directoryMode) == 0 {
                try syncDirectory(parent)
            } else {
                let code = errno
                guard code == EEXIST else { throw .io(path: prefix, operation: "mkdir", errno: code) }
            }
        }
    }

    /// Takes an exclusive advisory lock on `path` (created if missing) for as long as the returned
    /// descriptor stays open. flock locks belong to the open file description, so a second open in
    /// the same process is refused too.
    static func lock(_ path: String) throws(StoreError) -> Int32 {
        let fd = try openFile(path, flags: O_RDWR | O_CREAT)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == EINTR { continue }
            closeFile(fd)
            if code == EWOULDBLOCK { throw .locked(path: path) }
            throw .io(path: path, operation: "flock", errno: code)
        }
        return fd
    }

    /// Maps `length` bytes of `fd` read-only, so recovery reads a long log without copying it.
    static func map(_ fd: Int32, length: Int, path: String) throws(StoreError) -> UnsafeRawBufferPointer {
        guard let address = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0),
              address != UnsafeMutableRawPointer(bitPattern: -1)  // MAP_FAILED
        else { throw .io(path: path, operation: "mmap", errno: errno) }
        return UnsafeRawBufferPointer(start: address, count: length)
    }

    static func unmap(_ buffer: UnsafeRawBufferPointer) {
        if let base = buffer.baseAddress { _ = munmap(UnsafeMutableRawPointer(mutating: base), buffer.count) }
    }
}
