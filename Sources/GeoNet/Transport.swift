// The transport the replica daemon and the client use: authenticated, framed, reconnecting
// connections to peers, over SwiftNIO.
//
// A Sendable facade over TransportCore, whose state lives on one event loop (see
// TransportCore.swift). Methods hop to that loop; sends from one thread keep their order.
//
// Replica:
//     let transport = Transport(configuration: TransportConfiguration(
//         identity: .replica(number: info.number), signingKey: key, topologyHash: hash, keyRing: ring))
//     let port = try await transport.start(listen: info.host, port: info.port)
//     transport.connect(peers: PeerAddress.replicas(of: topology))   // dials the higher-numbered ones
//     for await inbound in transport.messages { ... inbound.from, inbound.message ... }
//     transport.send(message, to: peer)                              // replicas and connected clients
// Client:
//     let transport = Transport(configuration: ...(identity: .client(ClientID(7)), ...))
//     transport.connect(peers: PeerAddress.replicas(of: topology))   // dials every replica listed
//     transport.send(.clientTransaction(tx), to: primary)
//
// `messages` and `events` are bounded AsyncStreams: a consumer that falls behind loses the newest
// messages (counted `inbound_full`) or the oldest events, never this process's memory.

import GeoCore
import GeoWire
import NIOCore
import NIOPosix

public final class Transport: Sendable {
    public let identity: NodeID
    /// Messages from authenticated peers, in arrival order per connection.
    public let messages: AsyncStream<InboundMessage>
    /// Connections made and lost, back-pressure on and off.
    public let events: AsyncStream<TransportEvent>
    let loop: any EventLoop
    private let core: NIOLoopBoundBox<TransportCore>

    /// All of the transport's channels run on one loop of `group`.
    public init(configuration: TransportConfiguration,
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        identity = configuration.identity
        let loop = group.next()
        self.loop = loop
        let (messages, messageContinuation) = AsyncStream.makeStream(
            of: InboundMessage.self, bufferingPolicy: .bufferingOldest(configuration.inboundQueueFramesMax))
        let (events, eventContinuation) = AsyncStream.makeStream(
            of: TransportEvent.self, bufferingPolicy: .bufferingNewest(configuration.eventQueueMax))
        self.messages = messages
        self.events = events
        // The core is sent into the box here and from then on touched only on `loop` (the box checks).
        core = NIOLoopBoundBox.makeBoxSendingValue(
            TransportCore(loop: loop, configuration: configuration,
                          messages: messageContinuation, events: eventContinuation),
            eventLoop: loop)
    }

    /// Listens for peers (replicas) and clients; returns the bound port (useful with port 0).
    @discardableResult
    public func start(listen host: String, port: Int) async throws -> Int {
        let core = self.core
        let channel = try await loop.flatSubmit { core.value.listen(host: host, port: port) }.get()
        return channel.localAddress?.port ?? port
    }

    /// Dials `peers` and keeps them connected (exponential backoff with jitter). A replica dials
    /// only the replicas numbered above its own; the lower ones dial it, and sends to them queue
    /// until they do. A client dials every replica listed.
    public func connect(peers: [PeerAddress]) {
        let core = self.core
        loop.execute { core.value.connect(peers) }
    }

    /// Queues `message` for `peer`. Never blocks: a full queue drops the message and counts
    /// `queue_full`; an unreachable client counts `no_route`.
    public func send(_ message: Message, to peer: NodeID) {
        send(message, to: [peer])
    }

    /// Encodes `message` once and queues the same bytes for every peer.
    public func send(_ message: Message, to peers: [NodeID]) {
        let frame = ByteBuffer(bytes: FrameCodec.encode(message, from: identity))
        let core = self.core
        loop.execute { core.value.send(frame, to: peers) }
    }

    /// Encodes `message` with `sender` in the frame header: a client transport that carries
    /// other client identities (`TransportConfiguration.carriedClients`) sends for them. The
    /// replica drops a frame whose sender is neither this transport's identity nor attached.
    public func send(_ message: Message, to peers: [NodeID], from sender: NodeID) {
        let frame = ByteBuffer(bytes: FrameCodec.encode(message, from: sender))
        let core = self.core
        loop.execute { core.value.send(frame, to: peers) }
    }

    /// Counters, connected and back-pressured peers, for /metrics.
    public func metrics() async -> TransportMetrics {
        let core = self.core
        return (try? await loop.submit { core.value.snapshot() }.get()) ?? TransportMetrics()
    }

    /// Closes the listener and every connection, stops reconnecting, and finishes both streams.
    public func shutdown() async {
        let core = self.core
        try? await loop.flatSubmit { core.value.shutdown() }.get()
    }
}
