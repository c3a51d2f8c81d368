// The replica's HTTP endpoint: `GET /status` (JSON), `GET /metrics` (Prometheus text) and the
// ledger queries `GET /ledger/blocks/H` and `GET /ledger/tx/ID` (JSON, LedgerQueries.swift).
//
// Anyone who can reach the port can talk to it, so it is bad input's first stop: every request is
// bounded in bytes and in time, every refusal is counted and logged, and nothing a client sends
// ends the process. One request per connection, then the server closes it: status polling is
// rare, and not keeping connections alive keeps the bounds simple.

import Logging
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

public enum StatusServerError: Error, Hashable, Sendable {
    case alreadyStarted
    case couldNotReadBoundPort
}

public final class StatusServer: Sendable {
    /// Bytes a client may send on one connection. A status request is a GET with a few headers,
    /// well under a kilobyte; anything near this is not one of ours and is refused with 431.
    public static let requestBytesMax = 8 * 1024
    /// How long one connection may stay open by default: a client that trickles bytes must not
    /// hold a slot.
    public static let connectionDeadlineDefault: Duration = .seconds(5)
    /// Connections served at once; further ones are closed at once and counted.
    public static let connectionsMax = 64

    public let host: String
    private let requestedPort: Int
    private let statusProvider: @Sendable () async -> ReplicaStatus
    private let metricsProvider: @Sendable () async -> String
    /// Answers `/ledger/...` paths (LedgerQueries.swift); nil serves none.
    private let ledgerProvider: (@Sendable (Substring) async -> LedgerAnswer?)?
    private let counters: NodeMetrics?
    private let logger: Logger
    private let group: any EventLoopGroup
    private let connectionDeadline: TimeAmount
    /// HTTPS beside HTTP on the same port (StatusTLS.swift); nil serves HTTP only.
    private let tls: NIOSSLContext?
    private let state = Mutex<State>(.idle)
    private let openConnections = Atomic<Int>(0)

    private enum State {
        case idle
        case running(server: any Channel, port: Int, acceptLoop: Task<Void, Never>)
        case stopped
    }

    private typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    /// - Parameters:
    ///   - port: the topology's status port, or 0 for any free port (see `boundPort`).
    ///   - status: called for each `GET /status`.
    ///   - metrics: called for each `GET /metrics`; usually `NodeMetrics.render`.
    ///   - counters: where refused requests are counted (`geofabric_status_requests_refused_total`).
    ///   - connectionDeadline: how long one connection may stay open (it runs on the event loop,
    ///     whatever the tasks that answer are doing).
    public init(
        host: String, port: Int,
        status: @escaping @Sendable () async -> ReplicaStatus,
        metrics: @escaping @Sendable () async -> String,
        counters: NodeMetrics? = nil,
        logger: Logger = Logger(label: "geofabric.status"),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        connectionDeadline: Duration = StatusServer.connectionDeadlineDefault,
        tls: NIOSSLContext? = nil,
        ledger: (@Sendable (Substring) async -> LedgerAnswer?)? = nil
    ) {
        self.ledgerProvider = ledger
        self.tls = tls
        self.connectionDeadline = TimeAmount(connectionDeadline)
        self.host = host
        self.requestedPort = port
        self.statusProvider = status
        self.metricsProvider = metrics
        self.counters = counters
        self.logger = logger
        self.group = group
    }

    /// The port the server listens on, once started.
    public var boundPort: Int? {
        state.withLock { state in
            if case let .running(_, port, _) = state { return port }
            return nil
        }
    }

    /// Binds and starts accepting; returns once the port is open.
    public func start() async throws {
        guard state.withLock({ if case .idle = $0 { true } else { false } }) else {
            throw StatusServerError.alreadyStarted
        }
        let deadline = connectionDeadline
        let tls = self.tls
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: Int32(Self.connectionsMax))
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: requestedPort) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(StatusProtocolSwitch(tls: tls)) }
                    // Ahead of the decoder, so that it counts raw bytes and can refuse before parsing.
                    try channel.pipeline.syncOperations.addHandler(RequestGuard(deadline: deadline))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    return try Connection(wrappingChannelSynchronously: channel)
                }
            }
        guard let port = server.channel.localAddress?.port else {
            try? await server.channel.close()
            throw StatusServerError.couldNotReadBoundPort
        }
        let acceptLoop = Task { await self.accept(server) }
        let raced = state.withLock { state -> Bool in
            guard case .idle = state else { return true }
            state = .running(server: server.channel, port: port, acceptLoop: acceptLoop)
            return false
        }
        if raced {
            server.channel.close(promise: nil)
            await acceptLoop.value
            throw StatusServerError.alreadyStarted
        }
        logger.info("status endpoint listening", metadata: ["address": "\(host):\(port)"])
    }

    /// Stops accepting, waits for requests in progress, and releases the port.
    public func shutdown() async throws {
        let running = state.withLock { state -> (any Channel, Task<Void, Never>)? in
            defer { state = .stopped }
            if case let .running(server, _, acceptLoop) = state { return (server, acceptLoop) }
            return nil
        }
        guard let (server, acceptLoop) = running else { return }
        do {
            try await server.close()
        } catch ChannelError.alreadyClosed {
            // The accept loop already ended (the socket failed); nothing left to close.
        }
        await acceptLoop.value
    }

    private func accept(_ server: NIOAsyncChannel<Connection, Never>) async {
        do {
            try await server.executeThenClose { connections in
                try await withThrowingDiscardingTaskGroup { tasks in
                    for try await connection in connections {
                        let (_, open) = openConnections.add(1, ordering: .relaxed)
                        guard open <= Self.connectionsMax else {
                            openConnections.subtract(1, ordering: .relaxed)
                            refused("too_many_connections", peer: connection.channel.remoteAddress, detail: "\(open - 1) open")
                            tasks.addTask { try? await connection.executeThenClose { _, _ in } }
                            continue
                        }
                        tasks.addTask {
                            await self.serve(connection)
                            self.openConnections.subtract(1, ordering: .relaxed)
                        }
                    }
                }
            }
        } catch {
            logger.error("status endpoint stopped accepting", metadata: ["error": "\(error)"])
        }
    }

    private func serve(_ connection: Connection) async {
        // Read now: once the connection is closed the channel no longer knows its peer.
        let peer = connection.channel.remoteAddress
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                for try await part in inbound {
                    switch part {
                    case let .head(requestHead):
                        head = requestHead
                    case .body:
                        // Bodies are never needed; RequestGuard bounds how much of one arrives.
                        continue
                    case .end:
                        guard let head else { return }
                        let response = await respond(to: head)
                        try await outbound.write(contentsOf: response.parts)
                        return
                    }
                }
            }
        } catch let refusal as RequestRefusal {
            refused(refusal.rawValue, peer: peer, detail: "")
        } catch let error as HTTPParserError {
            // HTTPServerProtocolErrorHandler has already answered 400 and the decoder closes.
            refused("malformed", peer: peer, detail: "\(error)")
        } catch {
            logger.debug("status connection ended", metadata: ["error": "\(error)"])
        }
    }

    private func refused(_ reason: String, peer: SocketAddress?, detail: String) {
        counters?.statusRequestRefused(reason: reason)
        logger.info("status request refused", metadata: [
            "reason": "\(reason)", "peer": "\(peer.map { "\($0)" } ?? "?")", "detail": "\(detail)",
        ])
    }

    private func respond(to head: HTTPRequestHead) async -> Response {
        let path = head.uri.prefix { $0 != "?" }
        switch path {
        case "/status", "/metrics":
            break
        case _ where path.hasPrefix("/ledger/") && ledgerProvider != nil:
            guard head.method == .GET else {
                return Response(status: .methodNotAllowed, contentType: "text/plain; charset=utf-8", body: "only GET\n",
                                extraHeaders: [("Allow", "GET")])
            }
            guard let answer = await ledgerProvider?(path) else {
                return Response(status: .notFound, contentType: "application/json", body: "{\"error\":\"no such ledger query\"}\n")
            }
            return Response(status: HTTPResponseStatus(statusCode: answer.status), contentType: "application/json", body: answer.body)
        default:
            return Response(status: .notFound, contentType: "text/plain; charset=utf-8", body: "not found\n")
        }
        guard head.method == .GET else {
            return Response(status: .methodNotAllowed, contentType: "text/plain; charset=utf-8", body: "only GET\n",
                            extraHeaders: [("Allow", "GET")])
        }
        if path == "/metrics" {
            return Response(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: await metricsProvider())
        }
        let status = await statusProvider()
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let json = String(decoding: try encoder.encode(status), as: UTF8.self)
            return Response(status: .ok, contentType: "application/json", body: json + "\n")
        } catch {
            // Only a non-finite uptime can fail to encode: a bug in the provider, not the client's fault.
            logger.error("status could not be encoded", metadata: ["error": "\(error)"])
            return Response(status: .internalServerError, contentType: "text/plain; charset=utf-8", body: "status unavailable\n")
        }
    }
}

private struct Response {
    var status: HTTPResponseStatus
    var contentType: String
    var body: String
    var extraHeaders: [(String, String)] = []

    var parts: [HTTPServerResponsePart] {
        let bytes = ByteBuffer(string: body)
        var headers = HTTPHeaders([
            ("Content-Type", contentType), ("Content-Length", "\(bytes.readableBytes)"), ("Connection", "close"),
        ])
        headers.add(contentsOf: extraHeaders)
        return [.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers)), .body(.byteBuffer(bytes)), .end(nil)]
    }
}

/// Why RequestGuard ended a connection. Raised into the pipeline so that the connection's task
/// sees it as the first error, and counts the connection once (the decoder's complaint about the
/// cut-off request comes after and is ignored).
private enum RequestRefusal: String, Error {
    case tooLarge = "too_large"
    case deadline = "deadline"
}

/// Bounds one connection in bytes and in time, below the HTTP decoder so that it sees raw bytes.
private final class RequestGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private var bytesReceived = 0
    private var refused = false
    private var responseStarted = false
    private var deadline: Scheduled<Void>?
    private let allowed: TimeAmount

    init(deadline: TimeAmount) { allowed = deadline }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: allowed) {
            channel.pipeline.fireErrorCaught(RequestRefusal.deadline)
            channel.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        bytesReceived += unwrapInboundIn(data).readableBytes
        guard bytesReceived <= StatusServer.requestBytesMax else {
            refused = true
            if !responseStarted {
                let answer = "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                context.writeAndFlush(wrapOutboundOut(.byteBuffer(ByteBuffer(string: answer))), promise: nil)
            }
            context.fireErrorCaught(RequestRefusal.tooLarge)
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        responseStarted = true
        context.write(data, promise: promise)
    }
}

@available(*, unavailable)
extension RequestGuard: Sendable {}
