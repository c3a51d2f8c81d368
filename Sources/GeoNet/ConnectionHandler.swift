// One connection's handshake state machine, then the guard on its frames.
//
//   awaitingHello --peer Hello accepted, our Proof sent--> awaitingProof
//   awaitingProof --peer Proof verifies, core registers--> established
//   any state     --refusal, malformed input, timeout, close--> closed
//
// Our Hello goes out as soon as the connection is active, so both sides' Hellos cross and neither
// waits for the other. After `established`, every frame's header sender must be the bound
// identity: a mismatch is dropped and counted, not delivered (a correct peer never sends one, and
// a faulty one must not speak for anybody else). The handler runs on the transport's one event
// loop, like TransportCore, so it calls the core directly.
//
// Attached identities. A client connection may carry more client identities than the one its
// handshake proved: the client writes one Attach per carried identity right after the handshake,
// before any frame, each signed by that identity's key over this side's nonce (Handshake.swift).
// The replica checks each against the key ring before it accepts a frame from it or routes a reply
// to it over this connection; a forged one closes the connection. Frames from an identity not
// attached here are dropped as `sender_mismatch`, as before. The ~256 signature checks of a load
// generator's session run once per connection, on this loop: a few milliseconds at connect time.

import GeoCore
import GeoCrypto
import GeoWire
import Logging
import NIOCore
import NIOSSL
import NIOTLS

enum ConnectionRole: Hashable {
    case inbound
    /// A connection this node dialled, expecting `node`; `attempt` ties it to one dial.
    case outbound(NodeID, attempt: UInt64)
}

final class ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = InboundRecord
    typealias OutboundOut = ByteBuffer

    private enum State {
        case idle
        case awaitingHello
        case awaitingProof(peer: NodeID, key: VerifyingKey)
        case established(NodeID)
        case closed
    }

    private let core: TransportCore
    let role: ConnectionRole
    private let nonce = Handshake.freshNonce()
    /// The peer's handshake nonce: what this side's Attach records sign over.
    private var peerNonce: [UInt8] = []
    /// Client identities proven on this connection besides the handshake's (inbound client only).
    private var attached = Set<NodeID>()
    private var state = State.idle
    private var timeout: Scheduled<Void>?
    private var countedAsHandshaking = false
    private var finished = false
    /// Set when this side decides to close: later reads are ignored, but `state` keeps the bound
    /// peer until teardown so the core can unregister it.
    private var closing = false
    private var senderMismatchLogged = false
    /// What this side sent of the handshake: a Reject may take the Proof's place only after our
    /// Hello and before our Proof, where the peer's decoder expects a record of that size.
    private var helloSent = false
    private var proofSent = false
    /// What TLS learned about the peer; nil on a plaintext transport.
    private let tls: TLSPeerRecord?

    init(core: TransportCore, role: ConnectionRole, tls: TLSPeerRecord? = nil) {
        self.core = core
        self.role = role
        self.tls = tls
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    private func start(context: ChannelHandlerContext) {
        guard case .idle = state else { return }
        state = .awaitingHello
        countedAsHandshaking = true
        guard core.admitHandshake(inbound: role == .inbound) else {
            refuse(context: context, .tooManyConnections, claimed: nil)
            return
        }
        // Over TLS the Hello waits for the TLS handshake (`userInboundEventTriggered`): NIOSSL
        // delivers the peer's first bytes before it sends what was written early, so a Hello
        // written now would not leave if the peer's Hello made this side refuse it, and the peer
        // would never learn why (a topology mismatch seen on one side only).
        if tls == nil { sendHello(context: context) }
        timeout = context.eventLoop.assumeIsolated().scheduleTask(in: core.configuration.handshakeTimeout) {
            switch self.state {
            case .awaitingHello, .awaitingProof: self.refuse(context: context, .timeout, claimed: nil)
            default: break
            }
        }
    }

    private func sendHello(context: ChannelHandlerContext) {
        let hello = Hello(topologyHash: core.configuration.topologyHash, node: core.configuration.identity, nonce: nonce)
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: hello.encoded)), promise: nil)
        helloSent = true
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted? = event as? TLSUserEvent, !closing, case .awaitingHello = state {
            tls?.handshakeDone = true
            if let theirs = tls?.foreignTopology {
                // A node of another deployment: refused before anything is sent (TransportTLS.swift).
                refuse(context: context, .topologyMismatch(theirs: theirs, ours: core.configuration.topologyHash), claimed: nil)
            } else {
                sendHello(context: context)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let record = unwrapInboundIn(data)
        if closing { return }
        // Decrypted bytes arrive only once the TLS handshake is done.
        tls?.handshakeDone = true
        if let theirs = tls?.foreignTopology {
            refuse(context: context, .topologyMismatch(theirs: theirs, ours: core.configuration.topologyHash), claimed: nil)
            return
        }
        switch (state, record) {
        case (.closed, _), (.idle, _):
            return
        case let (.awaitingHello, .hello(hello)):
            let key: VerifyingKey
            switch core.validate(hello, role: role) {
            case let .success(found): key = found
            case let .failure(refusal):
                refuse(context: context, refusal, claimed: hello.node)
                return
            }
            if let tls {
                // The certificate's key must be the claimed identity's: the Hello says who.
                guard let owner = tls.certificateOwner else {
                    refuse(context: context, .tls(.noCertificate), claimed: hello.node)
                    return
                }
                if let mismatch = TLSPeerVerifier.checkClaim(hello.node, certificateOwner: owner) {
                    refuse(context: context, .tls(mismatch), claimed: hello.node)
                    return
                }
            }
            let payload = Handshake.proofPayload(verifierNonce: hello.nonce, topologyHash: core.configuration.topologyHash,
                                                 signer: core.configuration.identity, verifier: hello.node)
            peerNonce = hello.nonce
            let proof = Proof(signature: core.configuration.signingKey.sign(payload))
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: proof.encoded)), promise: nil)
            proofSent = true
            state = .awaitingProof(peer: hello.node, key: key)
        case let (.awaitingProof, .reject(reject)), let (.awaitingHello, .reject(reject)):
            refuse(context: context, .peerRefused(reject.reason), claimed: nil)
        case let (.awaitingProof(peer, key), .proof(proof)):
            let payload = Handshake.proofPayload(verifierNonce: nonce, topologyHash: core.configuration.topologyHash,
                                                 signer: peer, verifier: core.configuration.identity)
            guard key.isValid(proof.signature, for: payload) else {
                refuse(context: context, .badSignature(peer), claimed: peer)
                return
            }
            // Before establish: it hands queued frames to the channel, some of them from carried identities.
            writeAttaches(context: context, peer: peer)
            if let refusal = core.establish(context.channel, peer: peer, role: role) {
                refuse(context: context, refusal, claimed: peer)
                return
            }
            state = .established(peer)
            leaveHandshake()
        case let (.established(peer), .attach(record)):
            accept(record, carrier: peer, context: context)
        case let (.established(peer), .frame(frame, wireBytes)):
            guard frame.sender == peer || attached.contains(frame.sender) else {
                core.countDrop("sender_mismatch")
                if !senderMismatchLogged {
                    senderMismatchLogged = true
                    core.logger.warning("dropping frames from \(peer) that claim sender \(frame.sender) (logged once per connection)")
                }
                return
            }
            core.deliver(frame.message, from: frame.sender, wireBytes: wireBytes)
        default:
            // The decoder yields hello, proof, frames in that order, so this is unreachable; refuse
            // rather than trust a state machine that got out of step.
            refuse(context: context, .malformed(.unexpectedRecord(expected: "record in order", type: 0)), claimed: nil)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if case let .established(peer) = state {
            core.drain(peer)
            for node in attached { core.drain(node) }
        }
        context.fireChannelWritabilityChanged()
    }

    /// Client side, outbound: one Attach per carried identity, written (not yet flushed) ahead
    /// of every frame.
    private func writeAttaches(context: ChannelHandlerContext, peer: NodeID) {
        let configuration = core.configuration
        guard configuration.identity.isClient, case .outbound = role, !configuration.carriedClients.isEmpty else { return }
        for carried in configuration.carriedClients where carried.node != configuration.identity {
            let payload = Handshake.attachPayload(verifierNonce: peerNonce, topologyHash: configuration.topologyHash,
                                                  attached: carried.node, carrier: configuration.identity, verifier: peer)
            let record = Attach(node: carried.node, signature: carried.signingKey.sign(payload))
            context.write(wrapOutboundOut(ByteBuffer(bytes: record.encoded)), promise: nil)
        }
        context.flush()
    }

    /// Replica side: checks an Attach and binds its identity to this connection, or refuses it.
    private func accept(_ record: Attach, carrier: NodeID, context: ChannelHandlerContext) {
        let configuration = core.configuration
        let node = record.node
        var refusal: AttachRefusal?
        if role != .inbound || configuration.identity.isClient || !carrier.isClient {
            refusal = .notAllowed(node, reason: "only a client's connection to a replica carries other clients")
        } else if !node.isClient || node == carrier {
            refusal = .notAllowed(node, reason: "only other client identities may be attached")
        } else if let key = configuration.peerKeys(node) {
            let payload = Handshake.attachPayload(verifierNonce: nonce, topologyHash: configuration.topologyHash,
                                                  attached: node, carrier: carrier, verifier: configuration.identity)
            if !key.isValid(record.signature, for: payload) {
                refusal = .badSignature(node)
            } else if attached.contains(node) {
                refusal = .duplicate(node)
            } else if attached.count >= configuration.attachmentsPerConnectionMax {
                refusal = .tooMany(node)
            } else {
                refusal = core.attach(context.channel, node: node, carrier: carrier)
                if refusal == nil { attached.insert(node) }
            }
        } else {
            refusal = .unknownIdentity(node)
        }
        guard let refusal else { return }
        core.countReject(refusal.label)
        core.logger.warning("refusing an attach from \(carrier) at \(describePeer(context)): \(refusal)",
                            metadata: ["reason": "\(refusal.label)"])
        if refusal.closesConnection { close(context: context) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if closing { return }
        if let refusal = error as? TLSRefusal {
            refuse(context: context, .tls(refusal), claimed: nil)
        } else if let tls, error is NIOSSLError || error is BoringSSLError {
            if case .uncleanShutdown? = error as? NIOSSLError, tls.handshakeDone {
                // The peer closed the socket without a TLS close_notify (a killed process): an
                // ordinary disconnect, as a reset is on a plaintext connection.
                core.logger.debug("connection with \(describePeer(context)) closed without TLS close_notify")
                close(context: context)
                return
            }
            refuse(context: context, .tls(TLSPeerVerifier.refusal(for: error, record: tls)), claimed: nil)
        } else if let wire = error as? WireError {
            core.countReject("frame_" + wire.reason)
            core.logger.warning("closing the connection with \(describePeer(context)): malformed frame: \(wire)")
            close(context: context)
        } else if let record = error as? HandshakeRecordError {
            refuse(context: context, .malformed(record), claimed: nil)
        } else {
            // Socket errors (reset, broken pipe) end the connection; reconnect takes it from there.
            core.logger.debug("connection with \(describePeer(context)) failed: \(error)")
            close(context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(channel: context.channel)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // A dial whose connect fails never becomes active, so channelInactive never fires for it;
        // the pipeline's teardown is the one callback every connection gets.
        finish(channel: context.channel)
    }

    private func finish(channel: any Channel) {
        guard !finished else { return }
        finished = true
        timeout?.cancel()
        var peer: NodeID?
        if case let .established(node) = state { peer = node }
        state = .closed
        leaveHandshake()
        core.connectionClosed(channel, peer: peer, role: role, attached: attached)
        attached.removeAll()
    }

    private func leaveHandshake() {
        timeout?.cancel()
        timeout = nil
        if countedAsHandshaking {
            countedAsHandshaking = false
            core.handshakeEnded()
        }
    }

    private func refuse(context: ChannelHandlerContext, _ refusal: HandshakeRefusal, claimed: NodeID?) {
        if closing { return }
        core.countReject(refusal.label)
        core.refused(role, refusal)
        let who = claimed.map { " claiming \($0)" } ?? ""
        core.logger.warning("refusing the connection with \(describePeer(context))\(who): \(refusal)",
                            metadata: ["reason": "\(refusal.label)"])
        leaveHandshake()
        if Self.tellsThePeer(refusal), helloSent, !proofSent {
            // Flushed before the close, so the peer reads why instead of a bare close.
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: Reject(reason: refusal.label).encoded)), promise: nil)
            proofSent = true
        }
        close(context: context)
    }

    /// Whether a refusal is worth a Reject: not one the peer caused by going silent, nor an echo
    /// of the peer's own Reject, nor a TLS failure (TLS says it with an alert).
    static func tellsThePeer(_ refusal: HandshakeRefusal) -> Bool {
        switch refusal {
        case .timeout, .peerRefused, .tls: return false
        default: return true
        }
    }

    private func close(context: ChannelHandlerContext) {
        closing = true
        context.close(promise: nil)
    }

    private func describePeer(_ context: ChannelHandlerContext) -> String {
        let address = context.channel.remoteAddress.map { "\($0)" } ?? "an unknown address"
        switch role {
        case .inbound: return address
        case let .outbound(node, _): return "\(node) at \(address)"
        }
    }
}
