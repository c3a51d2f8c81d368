// Plain blocking sockets for the tests: the server must be checked with bytes no HTTP library
// would send, and with listeners that never answer, so these go below NIO on purpose.

import Foundation

#if canImport(Glibc)
import Glibc
private let streamType = Int32(SOCK_STREAM.rawValue)
#elseif canImport(Darwin)
import Darwin
private let streamType = SOCK_STREAM
#endif

enum RawSocket {
    struct Failure: Error { var call: String; var code: Int32 }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return address
    }

    private static func withSocketAddress<T>(_ address: sockaddr_in, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        withUnsafePointer(to: address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    /// Sends `request` to 127.0.0.1:`port` and returns everything read until the server closes
    /// (or `readTimeoutSeconds` passes, or the connection is reset).
    /// `readTimeoutSeconds` only bounds a wait for an answer that never comes: generous, since
    /// under the whole suite on two cores the server's event loop can take seconds to be scheduled
    /// (a CI run saw an empty answer at 5 s).
    static func exchange(port: Int, request: [UInt8], readTimeoutSeconds: Int = 30) async throws -> String {
        try await exchangeEnding(port: port, request: request, readTimeoutSeconds: readTimeoutSeconds).answer
    }

    /// `exchange`, and whether the server ended it (closed or reset the connection) rather than
    /// the read timeout: what a test of a server-side deadline needs, without timing anything.
    static func exchangeEnding(port: Int, request: [UInt8], readTimeoutSeconds: Int = 30) async throws -> (answer: String, closedByServer: Bool) {
        // On a thread of its own: blocking in recv on one of the few cooperative threads (two on a
        // two-core machine) would starve the very server task that is to answer.
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Result { try blockingExchange(port: port, request: request, readTimeoutSeconds: readTimeoutSeconds) })
            }.start()
        }
    }

    private static func blockingExchange(port: Int, request: [UInt8], readTimeoutSeconds: Int) throws -> (answer: String, closedByServer: Bool) {
        let fd = socket(AF_INET, streamType, 0)
        guard fd >= 0 else { throw Failure(call: "socket", code: errno) }
        defer { close(fd) }
        var timeout = timeval(tv_sec: readTimeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard withSocketAddress(loopback(port: port), { connect(fd, $0, $1) }) == 0 else {
            throw Failure(call: "connect", code: errno)
        }
        #if canImport(Glibc)
        let flags = Int32(MSG_NOSIGNAL)  // a server that closed early must not kill the test run
        #else
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &on, socklen_t(MemoryLayout<Int32>.size))
        let flags: Int32 = 0
        #endif
        var sent = 0
        while sent < request.count {
            let count = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, flags) }
            if count <= 0 { break }
            sent += count
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var closedByServer = false
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 || (count < 0 && errno == ECONNRESET) { closedByServer = true }
            if count <= 0 { break }
            response += buffer[..<count]
        }
        return (String(decoding: response, as: UTF8.self), closedByServer)
    }

    /// A socket listening on a free loopback port that never accepts: connections complete in
    /// the kernel's backlog, then nothing is ever said. Close it with `close(fd)`.
    static func silentListener() throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, streamType, 0)
        guard fd >= 0 else { throw Failure(call: "socket", code: errno) }
        guard withSocketAddress(loopback(port: 0), { bind(fd, $0, $1) }) == 0 else { throw Failure(call: "bind", code: errno) }
        guard listen(fd, 8) == 0 else { throw Failure(call: "listen", code: errno) }
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw Failure(call: "getsockname", code: errno) }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// A loopback port that nothing listens on (bound once to find a free one, then released).
    static func closedPort() throws -> Int {
        let (fd, port) = try silentListener()
        close(fd)
        return port
    }
}
