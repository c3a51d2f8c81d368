// POSIX helpers the block and snapshot stores need beyond POSIXFile's: positioned reads and
// directory listings, with each failure a typed error naming the file, as in POSIXFile.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension POSIXFile {
    /// Reads up to `buffer.count` bytes at `offset` into `buffer`, retrying short reads and
    /// interruptions; returns the bytes read, fewer only when the file ends first.
    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int,
                     path: String) throws(StoreError) -> Int {
        var done = 0
        while done < buffer.count {
            let count = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if count > 0 {
                done += count
            } else if count == 0 {
                break  // end of file
            } else {
                let code = errno
                if code != EINTR { throw .io(path: path, operation: "read", errno: code) }
            }
        }
        return done
    }

    /// Reads `count` bytes at `offset`; returns nil when the file ends before them.
    static func read(_ fd: Int32, count: Int, at offset: Int, path: String) throws(StoreError) -> [UInt8]? {
        guard count > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: count)
        let result: Result<Int, StoreError> = bytes.withUnsafeMutableBytes { buffer in
            do throws(StoreError) { return .success(try read(fd, into: buffer, at: offset, path: path)) } catch { return .failure(error) }
        }
        return try result.get() == count ? bytes : nil
    }

    /// The names in a directory, without "." and "..", in no particular order.
    static func listDirectory(_ path: String) throws(StoreError) -> [String] {
        guard let stream = opendir(path) else { throw .io(path: path, operation: "opendir", errno: errno) }
        defer { _ = closedir(stream) }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                let code = errno
                if code != 0 { throw .io(path: path, operation: "readdir", errno: code) }
                return names
            }
            let name = withUnsafePointer(to: &entry.pointee.d_name) { pointer in
                String(cString: UnsafeRawPointer(pointer).assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
    }

    /// Removes every `*.tmp` file in `directory` (left by a crash before its rename); returns how
    /// many there were.
    static func removeTemporaryFiles(in directory: String) throws(StoreError) -> Int {
        var removed = 0
        for name in try listDirectory(directory) where name.hasSuffix(".tmp") {
            try removeFile(directory + "/" + name)
            removed += 1
        }
        return removed
    }

    /// Parses names of the form `<prefix><20 decimal digits><suffix>` (the stores' file names) into
    /// the number; nil for any other name.
    static func numberedName(_ name: String, prefix: String, suffix: String) -> UInt64? {
        guard name.hasPrefix(prefix), name.hasSuffix(suffix) else { return nil }
        let digits = name.dropFirst(prefix.count).dropLast(suffix.count)
        guard digits.count == 20, digits.allSatisfy({ $0 >= "0" && $0 <= "9" }) else { return nil }
        return UInt64(digits)
    }

    /// The 20-digit zero-padded decimal form of `number` used in file names, so that names sort
    /// like their numbers.
    static func paddedNumber(_ number: UInt64) -> String {
        let digits = String(number)
        return String(repeating: "0", count: 20 - digits.count) + digits
    }
}
