// What a Transport is told at start (identity, keys, bounds, WAN emulation), and what it tells
// back (events, metrics). Every queue and map a peer can make grow has a bound here, with its reason.

import GeoCore
import GeoCrypto
import GeoWire
import Logging
import NIOCore

/// Where to dial a peer.
public struct PeerAddress: Hashable, Sendable {
    public var node: NodeID
    public var host: String
    public var port: Int
    public init(node: NodeID, host: String, port: Int) {
        self.node = node
        self.host = host
        self.port = port
    }

    /// Every replica of `topology`, at its protocol address. A replica transport given this list
    /// dials only the replicas numbered above its own (see `Transport.connect`); a client dials all.
    public static func replicas(of topology: Topology) -> [PeerAddress] {
        topology.allReplicas.map { PeerAddress(node: .replica(number: $0.number), host: $0.host, port: $0.port) }
    }
}

/// One emulated link, from this node to one peer.
public struct LinkProfile: Hashable, Sendable {
    public var oneWayDelay: TimeAmount
    /// Serialisation rate; nil for an unlimited link (delay only).
    public var bytesPerSecond: Double?
    public init(oneWayDelay: TimeAmount, bytesPerSecond: Double?) {
        self.oneWayDelay = oneWayDelay
        self.bytesPerSecond = bytesPerSecond
    }
}

/// Optional WAN emulation on the sending side, so a geo topology can be tried on one machine.
/// Each peer's frames cross a virtual link: a frame starts when the link is free (the previous
/// frame has been serialised), takes `size / bytesPerSecond` to serialise and `oneWayDelay` to
/// arrive; only then is it handed to the socket. Frames keep their order per link.
public struct WANEmulation: Sendable {
    /// The link to a peer; nil means no emulation for that peer (clients, or the same host).
    public var profile: @Sendable (NodeID) -> LinkProfile?
    public init(profile: @escaping @Sendable (NodeID) -> LinkProfile?) { self.profile = profile }

    /// The links of `topology` as seen from replica `local`: one-way delay is half the region
    /// pair's RTT, the rate its Mbit/s. Clients have no region in the topology, so links to them
    /// are not emulated.
    public static func topology(_ topology: Topology, from local: NodeID) -> WANEmulation {
        let regions = topology.allReplicas.map(\.region)
        let localRegion = local.replicaNumber.flatMap { regions.indices.contains(Int($0)) ? regions[Int($0)] : nil }
        var profiles: [String: LinkProfile] = [:]
        if let localRegion {
            for region in Set(regions) {
                guard let link = topology.link(from: localRegion, to: region) else { continue }
                profiles[region] = LinkProfile(
                    oneWayDelay: .nanoseconds(Int64(link.rttMilliseconds / 2 * 1_000_000)),
                    bytesPerSecond: link.megabitsPerSecond > 0 ? link.megabitsPerSecond * 125_000 : nil)
            }
        }
        let table = profiles
        return WANEmulation { peer in
            guard let number = peer.replicaNumber, regions.indices.contains(Int(number)) else { return nil }
            return table[regions[Int(number)]]
        }
    }
}

public struct TransportConfiguration: Sendable {
    /// Who this transport is: a replica (listens, dials higher-numbered replicas) or a client
    /// (dials replicas, never listens).
    public var identity: NodeID
    public var signingKey: SigningKey
    /// A digest of the deployment's topology, chosen by the caller (the daemon hashes the topology
    /// file). Peers with a different hash are refused.
    public var topologyHash: Digest
    /// The public key of a replica or client; nil for an identity the deployment does not know.
    public var peerKeys: @Sendable (NodeID) -> VerifyingKey?
    /// Frame size cap and decoder bounds (from the topology's `max_message_bytes`).
    public var limits: WireLimits = WireLimits()

    /// Bytes waiting for one peer (not yet handed to the socket). The protocol core retransmits,
    /// so beyond this a peer that cannot keep up loses frames rather than this process memory.
    public var outboundQueueBytesMax = 32 * 1024 * 1024
    /// Frames waiting for one peer: bounds the per-frame overhead when frames are tiny.
    public var outboundQueueFramesMax = 65_536
    /// Frames kept for a replica that is not connected (down, restarting, unreachable): only the
    /// latest, oldest dropped first (counted `peer_down`). A replica that comes back after a
    /// while needs what is current, not the whole backlog: working through tens of thousands of
    /// stale frames, each a signature to check, delayed its catch-up by seconds, and every
    /// answer to its requests waited behind them.
    public var peerDownQueueFramesMax = 1_024
    public var peerDownQueueBytesMax = 4 * 1024 * 1024
    /// Frames decoded but not yet taken from `Transport.messages` by the owner.
    public var inboundQueueFramesMax = 65_536
    /// Connection events not yet taken from `Transport.events`; the oldest are dropped past it.
    public var eventQueueMax = 4_096
    /// Connections that have not finished the handshake: an unauthenticated peer can open many.
    public var handshakesInFlightMax = 256
    /// Authenticated connections (replicas plus clients).
    public var connectionsMax = 4_096
    /// Client identities one client connection may carry besides its own (Attach records, see
    /// Handshake.swift): a load generator's clients of one home cluster. Each costs a link and a
    /// signature check when attached, so with `connectionsMax` it bounds the client links a
    /// replica holds. A load generator with more clients opens more sessions.
    public var attachmentsPerConnectionMax = 1_024
    /// Client side: the further client identities this transport carries on each connection it
    /// dials, each proven to the replica with an Attach signed by its own key. Empty for a
    /// replica and for a client alone.
    public var carriedClients: [CarriedIdentity] = []
    /// How long an unauthenticated connection may take to finish the handshake.
    public var handshakeTimeout: TimeAmount = .seconds(5)
    public var connectTimeout: TimeAmount = .seconds(2)
    /// Reconnect delays double from the first to the largest; each is scaled by a random factor in
    /// [0.5, 1] so that peers restarted together do not dial in lockstep.
    public var reconnectDelayFirst: TimeAmount = .milliseconds(50)
    public var reconnectDelayMax: TimeAmount = .seconds(2)
    /// NIO's socket write buffer: above `high` the channel reports unwritable and frames wait in
    /// the bounded outbound queue instead.
    public var writeBufferLowBytes = 256 * 1024
    public var writeBufferHighBytes = 1024 * 1024
    public var wanEmulation: WANEmulation?
    /// Mutual TLS 1.3 under the handshake (see TransportTLS.swift); nil for plaintext, which a
    /// topology asks for only with `transport: {tls: false}` (benchmark A/B on one machine).
    public var tls: TLSSettings?
    public var logger: Logger

    public init(identity: NodeID, signingKey: SigningKey, topologyHash: Digest,
                peerKeys: @escaping @Sendable (NodeID) -> VerifyingKey?,
                logger: Logger = Logger(label: "geofabric.net")) {
        self.identity = identity
        self.signingKey = signingKey
        self.topologyHash = topologyHash
        self.peerKeys = peerKeys
        self.logger = logger
    }

    /// Peer keys from a key ring: replicas by number, clients by client id.
    public init(identity: NodeID, signingKey: SigningKey, topologyHash: Digest, keyRing: KeyRing,
                logger: Logger = Logger(label: "geofabric.net")) {
        self.init(identity: identity, signingKey: signingKey, topologyHash: topologyHash, peerKeys: { node in
            if let number = node.replicaNumber { return keyRing.replicaKey(number: number) }
            if let client = node.client { return keyRing.clientKey(client) }
            return nil
        }, logger: logger)
    }
}

/// A client identity a client transport carries besides its own, and the key that proves it.
public struct CarriedIdentity: Sendable {
    public var node: NodeID
    public var signingKey: SigningKey
    public init(node: NodeID, signingKey: SigningKey) {
        self.node = node
        self.signingKey = signingKey
    }
}

/// A message received from an authenticated peer.
public struct InboundMessage: Hashable, Sendable {
    public var from: NodeID
    public var message: Message
    public init(from: NodeID, message: Message) {
        self.from = from
        self.message = message
    }
}

public enum TransportEvent: Hashable, Sendable {
    /// The handshake with `peer` completed; frames flow both ways.
    case connected(NodeID)
    case disconnected(NodeID)
    /// The outbound queue to `peer` crossed half its byte bound (`true`) or fell back under a
    /// quarter (`false`); the owner may slow down proposals or stop retransmitting to it.
    case backPressure(NodeID, Bool)
    /// A connection this node dialled to `peer` was refused at the handshake, and why (a peer
    /// of another topology, a certificate the topology does not name, ...).
    case refused(NodeID, HandshakeRefusal)
}

/// Counters for /metrics. Rejections and drops are keyed by stable reason labels.
public struct TransportMetrics: Hashable, Sendable {
    public var framesIn: UInt64 = 0
    public var framesOut: UInt64 = 0
    public var bytesIn: UInt64 = 0
    public var bytesOut: UInt64 = 0
    public var handshakes: UInt64 = 0
    /// Client identities attached to a client connection (Attach records accepted).
    public var attaches: UInt64 = 0
    /// Dials after the first one to a peer (failed connects and lost connections).
    public var reconnects: UInt64 = 0
    /// Connections refused or closed for bad input: handshake refusals (`HandshakeRefusal.label`)
    /// and malformed frames (`frame_` + `WireError.reason`).
    public var rejects: [String: UInt64] = [:]
    /// Frames dropped without closing anything: `queue_full`, `peer_down`, `no_route`,
    /// `sender_mismatch` (a sender neither the connection's identity nor attached to it),
    /// `inbound_full`, `frame_too_large`.
    public var drops: [String: UInt64] = [:]
    public var connectedPeers: [NodeID] = []
    public var backPressuredPeers: [NodeID] = []
    public var queuedFrames = 0
    public var queuedBytes = 0
    public init() {}
}
