// Reads `GET /status` from replicas, for `geofabric status` and for tests.
//
// A deployment always has some replica down, restarting or partitioned away, so an unreachable
// or silent replica is an ordinary answer (a typed error in a Result), never a thrown error and
// never a hang: every fetch ends within its timeout.

import GeoCore
import GeoCrypto
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Why a replica's status could not be read.
public enum StatusFetchError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Nothing accepted the connection: refused, no route, or the host name did not resolve.
    case unreachable(String)
    /// No complete answer within the timeout (connecting or waiting for the response).
    case timeout
    /// The replica answered with a status other than 200.
    case httpStatus(Int)
    /// The answer was not a ReplicaStatus: not JSON, cut off, or larger than `responseBytesMax`.
    case malformedResponse(String)
    /// Over HTTPS, the certificate at the address is not the replica's topology key: another
    /// deployment (or another replica) answers there. Carries the topology hash its certificate
    /// names, when it names one.
    case wrongCertificate(topologyHash: Digest?)

    public var description: String {
        switch self {
        case let .unreachable(reason): "unreachable (\(reason))"
        case .timeout: "timed out"
        case let .httpStatus(code): "HTTP \(code)"
        case let .malformedResponse(reason): "malformed response (\(reason))"
        case let .wrongCertificate(hash):
            "its certificate is not this replica's key in the topology"
                + (hash.map { "; it belongs to a replica of topology \($0.shortHex) (another deployment on this address?)" } ?? "")
        }
    }
}

/// One status endpoint to query.
public struct StatusTarget: Hashable, Sendable {
    /// The replica's name, carried through to the result.
    public var name: String
    public var host: String
    public var port: Int
    /// The replica's identity key: when given, the status is read over HTTPS and the replica's
    /// certificate must carry this key; nil reads plain HTTP.
    public var key: VerifyingKey?

    public init(name: String, host: String, port: Int, key: VerifyingKey? = nil) {
        self.name = name
        self.host = host
        self.port = port
        self.key = key
    }

    /// The status endpoint of a replica of the topology (`key`: read it over HTTPS, pinned).
    public init(_ replica: ReplicaInfo, key: VerifyingKey? = nil) {
        self.init(name: replica.name, host: replica.host, port: replica.statusPort, key: key)
    }
}

public enum StatusClient {
    /// Largest response read. A status document is a few hundred bytes; the bound keeps a
    /// misbehaving endpoint from making the client buffer without limit.
    public static let responseBytesMax = 1 << 20
    /// Fetches in flight at once in `fetchAll`: a paper-scale topology has hundreds of replicas,
    /// and one socket each at once would be a burst of descriptors for no gain in speed.
    public static let concurrentFetchesMax = 32

    /// The status of the replica at `host:port`, or why it could not be read. Returns within
    /// about `timeout`, which bounds connecting and answering together.
    public static func fetch(
        host: String, port: Int, key: VerifyingKey? = nil, timeout: Duration = .seconds(2),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async -> Result<ReplicaStatus, StatusFetchError> {
        let answer = await get(path: "/status", host: host, port: port, key: key, timeout: timeout, group: group)
        return answer.flatMap { code, body in
            guard code == 200 else { return .failure(.httpStatus(code)) }
            do {
                return .success(try JSONDecoder().decode(ReplicaStatus.self, from: Data(body.readableBytesView)))
            } catch {
                return .failure(.malformedResponse("\(error)"))
            }
        }
    }

    /// A ledger query (`/ledger/blocks/H`, `/ledger/tx/ID`): the HTTP status and the JSON body,
    /// whatever the status (an error answer carries `{"error": ...}`).
    public static func ledger(
        path: String, host: String, port: Int, key: VerifyingKey? = nil, timeout: Duration = .seconds(5),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async -> Result<(Int, Data), StatusFetchError> {
        await get(path: path, host: host, port: port, key: key, timeout: timeout, group: group)
            .map { code, body in (code, Data(body.readableBytesView)) }
    }

    /// The status of every target, in the order given; an unreachable replica is one entry among
    /// the others. At most `concurrentFetchesMax` are fetched at once.
    public static func fetchAll(
        _ targets: [StatusTarget], timeout: Duration = .seconds(2),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async -> [(target: StatusTarget, result: Result<ReplicaStatus, StatusFetchError>)] {
        await withTaskGroup(of: (Int, Result<ReplicaStatus, StatusFetchError>).self) { tasks in
            var results = [Result<ReplicaStatus, StatusFetchError>?](repeating: nil, count: targets.count)
            var next = 0
            func launch(_ index: Int) {
                let target = targets[index]
                tasks.addTask { (index, await fetch(host: target.host, port: target.port, key: target.key, timeout: timeout, group: group)) }
            }
            while next < min(targets.count, concurrentFetchesMax) {
                launch(next)
                next += 1
            }
            while let (index, result) = await tasks.next() {
                results[index] = result
                if next < targets.count {
                    launch(next)
                    next += 1
                }
            }
            return zip(targets, results).map { target, result in
                // Every index was launched and every task reported; a nil here is a bug above.
                (target, result ?? .failure(.malformedResponse("not fetched")))
            }
        }
    }

    /// One GET on a fresh connection: the response's status code and body. With `key`, over
    /// HTTPS, the server's certificate pinned to it.
    static func get(
        path: String, host: String, port: Int, key: VerifyingKey? = nil, timeout: Duration, group: any EventLoopGroup
    ) async -> Result<(Int, ByteBuffer), StatusFetchError> {
        let start = ContinuousClock.now
        let connection: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        let refusedCertificate = RefusedCertificate()
        do {
            let tls = try key.map { _ in try StatusTLS.clientContext() }
            connection = try await ClientBootstrap(group: group)
                .connectTimeout(TimeAmount(timeout))
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls, let key {
                            try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(
                                context: tls, serverHostname: nil,
                                customVerificationCallback: StatusTLS.pinning(key) { refusedCertificate.record($0) }))
                        }
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try NIOAsyncChannel(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            return .failure(connectFailure(error))
        }

        // Whatever remains of the timeout bounds the answer: closing the channel ends the read.
        let remaining = timeout - (ContinuousClock.now - start)
        let expired = ExpiryFlag()
        let channel = connection.channel
        let timer = channel.eventLoop.scheduleTask(in: TimeAmount(max(remaining, .zero))) {
            expired.fired.store(true, ordering: .sequentiallyConsistent)
            channel.close(promise: nil)
        }
        defer { timer.cancel() }

        let outcome: Result<(Int, ByteBuffer), StatusFetchError>
        do {
            outcome = try await connection.executeThenClose { inbound, outbound in
                var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
                head.headers.add(name: "Host", value: host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
                head.headers.add(name: "Connection", value: "close")
                try await outbound.write(contentsOf: [.head(head), .end(nil)])
                var code: Int?
                var body = ByteBuffer()
                for try await part in inbound {
                    switch part {
                    case let .head(responseHead):
                        code = Int(responseHead.status.code)
                    case var .body(chunk):
                        guard body.readableBytes + chunk.readableBytes <= responseBytesMax else {
                            return .failure(.malformedResponse("response over \(responseBytesMax) bytes"))
                        }
                        body.writeBuffer(&chunk)
                    case .end:
                        guard let code else { return .failure(.malformedResponse("no response head")) }
                        return .success((code, body))
                    }
                }
                return .failure(.malformedResponse("connection closed before the response ended"))
            }
        } catch {
            outcome = .failure(.malformedResponse("\(error)"))
        }
        if case .failure = outcome, let refused = refusedCertificate.refused { return .failure(.wrongCertificate(topologyHash: refused)) }
        // Closing on expiry can surface as an early close or as an error; either way it was the timeout.
        if case .failure = outcome, expired.fired.load(ordering: .sequentiallyConsistent) { return .failure(.timeout) }
        return outcome
    }

    private static func connectFailure(_ error: any Error) -> StatusFetchError {
        if case ChannelError.connectTimeout = error { return .timeout }
        if let error = error as? NIOConnectionError {
            if error.connectionErrors.contains(where: { if case ChannelError.connectTimeout = $0.error { true } else { false } }) {
                return .timeout
            }
            if let first = error.connectionErrors.first { return .unreachable("\(first.error)") }
            if let dns = error.dnsAError ?? error.dnsAAAAError { return .unreachable("cannot resolve \(error.host): \(dns)") }
        }
        return .unreachable("\(error)")
    }
}

/// Set by the pinning check when it refused the server's certificate: nil until then, then the
/// topology hash the certificate named (itself nil when it named none).
private final class RefusedCertificate: Sendable {
    private let value = Mutex<Digest??>(nil)
    func record(_ hash: Digest?) { value.withLock { $0 = .some(hash) } }
    var refused: Digest?? { value.withLock { $0 } }
}

/// Set by the timeout timer on the event loop, read by the fetching task.
private final class ExpiryFlag: Sendable {
    let fired = Atomic<Bool>(false)
}
