// The transport's state, confined to one event loop.
//
// Every channel of a transport (listener, accepted and dialled connections) lives on the same
// event loop, and so does this object: peer links, queues, counters and timers are touched only
// there, without locks. One loop is enough for a replica's few dozen peers; the expensive work per
// message (signature checks, execution) happens above the transport, off this loop.
//
// Peer links. One `PeerLink` per identity this node talks to, holding the established channel (if
// any) and the outbound queue. "One connection per peer pair": between replicas the lower number
// dials the higher and the higher accepts; clients always dial. So a replica holds links to
// replicas it dials (with an address, redialled with backoff), to replicas that dial it (created
// when first sent to or when they connect; sends queue until then), and to connected clients
// (removed when the client goes away: a client cannot be dialled back, it reconnects itself).
// Replica links are bounded by the key ring (a link needs a known key); client links by
// `connectionsMax`.
//
// Outbound path. `Transport.send` encodes once off the loop, then hops here. A frame joins its
// peer's queue (bounded in bytes and frames; when full the newest frame is dropped and counted
// `queue_full`, since the protocol core retransmits what matters). While a replica is not
// connected its queue keeps only the latest frames, within smaller bounds (`peer_down`): when
// it comes back it gets what is current rather than a backlog of stale rounds. `drain` hands queued frames to
// the channel while it is writable, and marks the channel for the flush that runs once per loop
// tick after all sends already queued on the loop: many writes, one flush, one syscall.
//
// WAN emulation. When configured, a frame's release time is fixed at enqueue: it starts when the
// peer's virtual link is free, is serialised at the link rate, and is released one-way-delay later
// (release times never decrease, so order holds per link). Queued frames are released by a timer
// at the head frame's time.

import GeoCore
import GeoCrypto
import GeoWire
import Logging
import NIOCore
import NIOPosix
import NIOSSL

final class PeerLink {
    let node: NodeID
    /// Set for peers this node dials.
    var dialAddress: PeerAddress?
    /// The established (authenticated) connection.
    var channel: (any Channel)?
    var queue = CircularBuffer<QueuedFrame>()
    var queuedBytes = 0
    var backPressured = false

    var dialing = false
    var dialAttempt: UInt64 = 0
    var consecutiveFailures = 0
    var reconnectTask: Scheduled<Void>?

    var linkFreeAt = NIODeadline.uptimeNanoseconds(0)
    var lastReleaseAt = NIODeadline.uptimeNanoseconds(0)
    var releaseTask: Scheduled<Void>?
    var releaseTaskAt: NIODeadline?

    init(node: NodeID) { self.node = node }
}

struct QueuedFrame {
    var bytes: ByteBuffer
    /// With WAN emulation, when the frame may go to the socket.
    var releaseAt: NIODeadline?
}

final class TransportCore {
    let loop: any EventLoop
    let configuration: TransportConfiguration
    let logger: Logger
    private let messages: AsyncStream<InboundMessage>.Continuation
    private let events: AsyncStream<TransportEvent>.Continuation

    private var metrics = TransportMetrics()
    private var links: [NodeID: PeerLink] = [:]
    /// Every channel not yet torn down, for shutdown. Bounded by the handshake and connection bounds.
    private var openChannels: [ObjectIdentifier: any Channel] = [:]
    /// Channels written since the last flush; a subset of `openChannels`.
    private var unflushed: [ObjectIdentifier: any Channel] = [:]
    private var flushScheduled = false
    private var handshakesInFlight = 0
    private var establishedCount = 0
    private var serverChannel: (any Channel)?
    private(set) var isShutDown = false
    private var random = SystemRandomNumberGenerator()
    /// Made once at start from `configuration.tls`; a failure refuses every connection (logged).
    private let tlsContexts: Result<TLSContexts, any Error>?

    init(loop: any EventLoop, configuration: TransportConfiguration,
         messages: AsyncStream<InboundMessage>.Continuation, events: AsyncStream<TransportEvent>.Continuation) {
        self.loop = loop
        self.configuration = configuration
        var logger = configuration.logger
        logger[metadataKey: "node"] = "\(configuration.identity)"
        self.logger = logger
        self.messages = messages
        self.events = events
        tlsContexts = configuration.tls.map { settings in
            Result { try TLSContexts(settings: settings, topologyHash: configuration.topologyHash) }
        }
        if case let .failure(error)? = tlsContexts {
            logger.error("cannot make this node's TLS certificate: \(error); every connection will fail")
        }
    }

    private var identity: NodeID { configuration.identity }

    // MARK: Channels

    func installPipeline(on channel: any Channel, role: ConnectionRole) throws {
        openChannels[ObjectIdentifier(channel)] = channel
        let record = try installTLS(on: channel, role: role)
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoderHandler(limits: configuration.limits)))
        try channel.pipeline.syncOperations.addHandler(ConnectionHandler(core: self, role: role, tls: record))
    }

    /// The TLS handlers under the framing, when the transport runs TLS: the sniffer that refuses a
    /// plaintext peer, then NIOSSL with the pinned-key verifier. Returns what the verifier learns.
    private func installTLS(on channel: any Channel, role: ConnectionRole) throws -> TLSPeerRecord? {
        guard let settings = configuration.tls, let contexts = try tlsContexts?.get() else { return nil }
        let record = TLSPeerRecord()
        var expected: NodeID?
        if case let .outbound(node, _) = role { expected = node }
        let ours = configuration.topologyHash
        let verify: NIOSSLCustomVerificationCallback = { [expected] chain, promise in
            switch TLSPeerVerifier.classify(chain, expected: expected, settings: settings, ours: ours) {
            case let .owner(owner):
                record.certificateOwner = owner
                promise.succeed(.certificateVerified)
            case let .checkChain(owner, leaf, intermediates, authority):
                // The Verifier is asynchronous: the handshake waits for it, then the outcome is
                // recorded back on the connection's loop.
                let bound = NIOLoopBound(record, eventLoop: promise.futureResult.eventLoop)
                let loop = promise.futureResult.eventLoop
                Task {
                    let reason = await authority.untrustedReason(leaf: leaf, intermediates: intermediates)
                    loop.execute {
                        if let reason {
                            bound.value.refusal = .certificateUntrusted(reason)
                            promise.succeed(.failed)
                        } else {
                            bound.value.certificateOwner = owner
                            promise.succeed(.certificateVerified)
                        }
                    }
                }
            case let .foreignTopology(theirs):
                // Not trusted: the handler refuses the connection, by name, once TLS is done.
                record.foreignTopology = theirs
                promise.succeed(.certificateVerified)
            case let .refused(refusal):
                record.refusal = refusal
                promise.succeed(.failed)
            }
        }
        let operations = channel.pipeline.syncOperations
        try operations.addHandler(TLSRecordSniffer())
        switch role {
        case .inbound:
            guard let server = contexts.server else { throw TLSRefusal.noCertificate }
            try operations.addHandler(NIOSSLServerHandler(context: server, customVerificationCallback: verify))
        case .outbound:
            try operations.addHandler(NIOSSLClientHandler(context: contexts.client, serverHostname: nil, customVerificationCallback: verify))
        }
        return record
    }

    func listen(host: String, port: Int) -> EventLoopFuture<any Channel> {
        let bound = NIOLoopBound(self, eventLoop: loop)
        let waterMark = ChannelOptions.Types.WriteBufferWaterMark(
            low: configuration.writeBufferLowBytes, high: configuration.writeBufferHighBytes)
        return ServerBootstrap(group: loop, childGroup: loop)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: waterMark)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try bound.value.installPipeline(on: channel, role: .inbound)
                }
            }
            .bind(host: host, port: port)
            .assumeIsolated()
            .map { channel in
                self.serverChannel = channel
                if self.isShutDown { channel.close(promise: nil) }
                return channel
            }
            .nonisolated()
    }

    /// Registers the peers to dial and dials them. A replica dials only higher-numbered replicas;
    /// a lower-numbered one in the list dials this replica, so its link just waits for it.
    func connect(_ peers: [PeerAddress]) {
        for peer in peers where peer.node != identity {
            if !identity.isClient, let own = identity.replicaNumber, let theirs = peer.node.replicaNumber, theirs < own {
                _ = link(for: peer.node)
                continue
            }
            if peer.node.isClient { continue }  // clients cannot be dialled: they do not listen
            guard let link = link(for: peer.node) else {
                logger.warning("not dialling \(peer.node) at \(peer.host):\(peer.port): no public key for it")
                continue
            }
            link.dialAddress = peer
            dial(link)
        }
    }

    private func dial(_ link: PeerLink) {
        guard !isShutDown, let address = link.dialAddress, !link.dialing, link.channel == nil else { return }
        link.dialing = true
        link.dialAttempt &+= 1
        link.reconnectTask = nil
        let attempt = link.dialAttempt
        let node = link.node
        let bound = NIOLoopBound(self, eventLoop: loop)
        let waterMark = ChannelOptions.Types.WriteBufferWaterMark(
            low: configuration.writeBufferLowBytes, high: configuration.writeBufferHighBytes)
        ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: waterMark)
            .connectTimeout(configuration.connectTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try bound.value.installPipeline(on: channel, role: .outbound(node, attempt: attempt))
                }
            }
            .connect(host: address.host, port: address.port)
            .assumeIsolated()
            .whenFailure { error in
                self.logger.debug("dialling \(node) at \(address.host):\(address.port) failed: \(error)")
                self.dialEnded(node, attempt: attempt)
            }
    }

    private func dialEnded(_ node: NodeID, attempt: UInt64) {
        guard let link = links[node], link.dialing, link.dialAttempt == attempt else { return }
        link.dialing = false
        guard !isShutDown else { return }
        let first = configuration.reconnectDelayFirst.nanoseconds
        let largest = configuration.reconnectDelayMax.nanoseconds
        let exponent = min(link.consecutiveFailures, 30)
        let delay = min(largest, first.multipliedReportingOverflow(by: Int64(1) << exponent).partialValue)
        let jittered = Int64(Double(max(delay, 1)) * Double.random(in: 0.5...1.0, using: &random))
        link.consecutiveFailures += 1
        metrics.reconnects += 1
        link.reconnectTask = loop.assumeIsolated().scheduleTask(in: .nanoseconds(jittered)) {
            self.dial(link)
        }
    }

    // MARK: Handshake

    func admitHandshake(inbound: Bool) -> Bool {
        handshakesInFlight += 1
        return !isShutDown && (!inbound || handshakesInFlight <= configuration.handshakesInFlightMax)
    }

    func handshakeEnded() { handshakesInFlight -= 1 }

    /// Checks a peer's Hello before answering it; returns the claimed identity's key.
    func validate(_ hello: Hello, role: ConnectionRole) -> Result<VerifyingKey, HandshakeRefusal> {
        guard hello.version == Handshake.version else { return .failure(.unsupportedVersion(hello.version)) }
        guard hello.topologyHash == configuration.topologyHash else {
            return .failure(.topologyMismatch(theirs: hello.topologyHash, ours: configuration.topologyHash))
        }
        let claimed = hello.node
        guard claimed != identity else { return .failure(.identityNotAllowed(claimed, reason: "that is this node's own identity")) }
        guard let key = configuration.peerKeys(claimed) else { return .failure(.unknownIdentity(claimed)) }
        switch role {
        case let .outbound(expected, _):
            guard claimed == expected else {
                return .failure(.identityNotAllowed(claimed, reason: "this node dialled \(expected) at that address"))
            }
        case .inbound:
            if identity.isClient {
                return .failure(.identityNotAllowed(claimed, reason: "a client accepts no connections"))
            }
            if let theirs = claimed.replicaNumber, let own = identity.replicaNumber, theirs > own {
                return .failure(.identityNotAllowed(
                    claimed, reason: "between replicas the lower number dials the higher, so this node dials it"))
            }
        }
        return .success(key)
    }

    /// Binds an authenticated channel to its peer's link; a refusal when the link is taken.
    func establish(_ channel: any Channel, peer: NodeID, role: ConnectionRole) -> HandshakeRefusal? {
        guard !isShutDown else { return .tooManyConnections }
        guard establishedCount < configuration.connectionsMax else { return .tooManyConnections }
        guard let link = link(for: peer) else { return .unknownIdentity(peer) }
        guard link.channel == nil else { return .duplicateConnection(peer) }
        link.channel = channel
        if case .outbound = role { link.consecutiveFailures = 0 }
        establishedCount += 1
        metrics.handshakes += 1
        logger.info("connected to \(peer) at \(channel.remoteAddress.map { "\($0)" } ?? "?")")
        events.yield(.connected(peer))
        drain(link)
        return nil
    }

    /// Binds a client identity proven by an Attach (ConnectionHandler checked the signature) to
    /// the connection that carries it: replies to it go there. An identity already connected,
    /// alone or attached elsewhere, keeps its connection ("one connection per identity"; a client
    /// reconnecting after its old connection died is attached again once the replica sees that
    /// connection close).
    func attach(_ channel: any Channel, node: NodeID, carrier: NodeID) -> AttachRefusal? {
        guard !isShutDown else { return .notAllowed(node, reason: "shutting down") }
        if let existing = links[node], existing.channel != nil { return .duplicate(node) }
        guard let link = link(for: node) else { return .unknownIdentity(node) }
        link.channel = channel
        metrics.attaches += 1
        events.yield(.connected(node))
        drain(link)
        return nil
    }

    func connectionClosed(_ channel: any Channel, peer: NodeID?, role: ConnectionRole, attached: Set<NodeID> = []) {
        // The attachments go with the connection that proved them: replies to those clients are
        // not sent anywhere else (counted `no_route`) until they attach or connect again.
        for node in attached {
            guard let link = links[node], link.channel === channel else { continue }
            link.channel = nil
            events.yield(.disconnected(node))
            countDrop("no_route", by: UInt64(link.queue.count))
            link.releaseTask?.cancel()
            links[node] = nil
        }
        let key = ObjectIdentifier(channel)
        openChannels[key] = nil
        unflushed[key] = nil
        if let peer, let link = links[peer], link.channel === channel {
            link.channel = nil
            establishedCount -= 1
            logger.info("disconnected from \(peer)")
            events.yield(.disconnected(peer))
            trimForPeerDown(link)
            if peer.isClient {
                // Nothing can reach a client until it dials again; what was queued for it is lost
                // (it retries its request).
                countDrop("no_route", by: UInt64(link.queue.count))
                link.releaseTask?.cancel()
                links[peer] = nil
            }
        }
        if case let .outbound(node, attempt) = role { dialEnded(node, attempt: attempt) }
    }

    // MARK: Sending

    /// The link to `node`, created if `node` may have one (a replica with a known key).
    private func link(for node: NodeID) -> PeerLink? {
        if let link = links[node] { return link }
        guard node != identity, configuration.peerKeys(node) != nil else { return nil }
        let link = PeerLink(node: node)
        links[node] = link
        return link
    }

    func send(_ frame: ByteBuffer, to peers: [NodeID]) {
        guard !isShutDown else { return }
        guard frame.readableBytes - WireFormat.headerBytes <= configuration.limits.maxBodyBytes else {
            // The peer would refuse it and close the connection, losing everything behind it.
            countDrop("frame_too_large", by: UInt64(peers.count))
            return
        }
        for peer in peers {
            // A client's link exists only while it is connected; a replica's is made on demand.
            let found = peer.isClient ? links[peer] : link(for: peer)
            guard let link = found else {
                countDrop("no_route")
                continue
            }
            enqueue(frame, on: link)
        }
    }

    private func enqueue(_ frame: ByteBuffer, on link: PeerLink) {
        let size = frame.readableBytes
        if link.channel == nil { trimForPeerDown(link, making: size) }
        guard link.queue.count < configuration.outboundQueueFramesMax,
              link.queuedBytes + size <= configuration.outboundQueueBytesMax else {
            countDrop("queue_full")
            return
        }
        var releaseAt: NIODeadline?
        if let wan = configuration.wanEmulation, let profile = wan.profile(link.node) {
            let start = max(NIODeadline.now(), link.linkFreeAt)
            var transmission = TimeAmount.zero
            if let rate = profile.bytesPerSecond, rate > 0 {
                transmission = .nanoseconds(Int64(Double(size) / rate * 1_000_000_000))
            }
            link.linkFreeAt = start + transmission
            let release = max(link.linkFreeAt + profile.oneWayDelay, link.lastReleaseAt)
            link.lastReleaseAt = release
            releaseAt = release
        }
        link.queue.append(QueuedFrame(bytes: frame, releaseAt: releaseAt))
        link.queuedBytes += size
        drain(link)
    }

    /// A replica that is not connected keeps only its latest frames: the oldest go first, until
    /// `incoming` more bytes fit in the peer-down bounds.
    private func trimForPeerDown(_ link: PeerLink, making incoming: Int = 0) {
        let frames = incoming > 0 ? configuration.peerDownQueueFramesMax - 1 : configuration.peerDownQueueFramesMax
        while let head = link.queue.first,
              link.queue.count > frames || link.queuedBytes + incoming > configuration.peerDownQueueBytesMax {
            link.queue.removeFirst()
            link.queuedBytes -= head.bytes.readableBytes
            countDrop("peer_down")
        }
    }

    func drain(_ peer: NodeID) {
        if let link = links[peer] { drain(link) }
    }

    private func drain(_ link: PeerLink) {
        defer { updateBackPressure(link) }
        guard let channel = link.channel else { return }
        let now = NIODeadline.now()
        var wrote = false
        while let head = link.queue.first, channel.isWritable {
            if let release = head.releaseAt, release > now {
                scheduleRelease(link, at: release)
                break
            }
            link.queue.removeFirst()
            link.queuedBytes -= head.bytes.readableBytes
            metrics.framesOut += 1
            metrics.bytesOut += UInt64(head.bytes.readableBytes)
            channel.write(head.bytes, promise: nil)
            wrote = true
        }
        if wrote {
            unflushed[ObjectIdentifier(channel)] = channel
            scheduleFlush()
        }
    }

    private func scheduleRelease(_ link: PeerLink, at deadline: NIODeadline) {
        if let pending = link.releaseTaskAt, pending <= deadline { return }
        link.releaseTask?.cancel()
        link.releaseTaskAt = deadline
        link.releaseTask = loop.assumeIsolated().scheduleTask(deadline: deadline) {
            link.releaseTaskAt = nil
            link.releaseTask = nil
            self.drain(link)
        }
    }

    private func scheduleFlush() {
        guard !flushScheduled else { return }
        flushScheduled = true
        // Runs after the tasks already queued on the loop (the rest of a burst of sends).
        loop.assumeIsolated().execute {
            self.flushScheduled = false
            let channels = self.unflushed
            self.unflushed.removeAll(keepingCapacity: true)
            for channel in channels.values { channel.flush() }
        }
    }

    private func updateBackPressure(_ link: PeerLink) {
        let bytesMax = configuration.outboundQueueBytesMax
        let framesMax = configuration.outboundQueueFramesMax
        let now: Bool
        if link.backPressured {
            now = link.queuedBytes > bytesMax / 4 || link.queue.count > framesMax / 4
        } else {
            now = link.queuedBytes >= bytesMax / 2 || link.queue.count >= framesMax / 2
        }
        guard now != link.backPressured else { return }
        link.backPressured = now
        events.yield(.backPressure(link.node, now))
    }

    // MARK: Receiving and counting

    func deliver(_ message: Message, from peer: NodeID, wireBytes: Int) {
        metrics.framesIn += 1
        metrics.bytesIn += UInt64(wireBytes)
        if case .dropped = messages.yield(InboundMessage(from: peer, message: message)) {
            countDrop("inbound_full")
        }
    }

    func countReject(_ reason: String) { metrics.rejects[reason, default: 0] += 1 }

    /// Tells the owner why a connection it dialled was refused (by this side), so a client can
    /// stop waiting for a replica that will never accept it.
    func refused(_ role: ConnectionRole, _ refusal: HandshakeRefusal) {
        guard case let .outbound(node, _) = role else { return }
        events.yield(.refused(node, refusal))
    }

    func countDrop(_ reason: String, by count: UInt64 = 1) {
        guard count > 0 else { return }
        metrics.drops[reason, default: 0] += count
    }

    func snapshot() -> TransportMetrics {
        var snapshot = metrics
        let ordered = links.values.sorted { $0.node.rawValue < $1.node.rawValue }
        snapshot.connectedPeers = ordered.filter { $0.channel != nil }.map(\.node)
        snapshot.backPressuredPeers = ordered.filter(\.backPressured).map(\.node)
        snapshot.queuedFrames = ordered.reduce(0) { $0 + $1.queue.count }
        snapshot.queuedBytes = ordered.reduce(0) { $0 + $1.queuedBytes }
        return snapshot
    }

    // MARK: Shutdown

    func shutdown() -> EventLoopFuture<Void> {
        isShutDown = true
        for link in links.values {
            link.reconnectTask?.cancel()
            link.releaseTask?.cancel()
        }
        var closing: [EventLoopFuture<Void>] = []
        if let serverChannel { closing.append(serverChannel.close()) }
        for channel in openChannels.values { closing.append(channel.close()) }
        return EventLoopFuture.andAllComplete(closing, on: loop).assumeIsolated().map {
            self.messages.finish()
            self.events.finish()
        }.nonisolated()
    }
}
