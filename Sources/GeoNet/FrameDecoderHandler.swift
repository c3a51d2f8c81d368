// Splits a connection's byte stream into handshake records and GeoWire frames.
//
// The stream of one connection is: the peer's Hello, its Proof (or a Reject), then GeoWire frames until the end,
// among which a client may put Attach records (see Handshake.swift). One decoder follows that order, so no handler has to be swapped out of the
// pipeline mid-stream (which would have to hand over bytes already read past the handshake).
//
// Bytes stay unconsumed in the buffer until a whole record or frame is there. A frame header is
// validated as soon as its 24 bytes are in, so a body above `WireLimits.maxBodyBytes` is refused
// before any of it arrives or is buffered: the buffer never holds more than one bounded frame plus
// one socket read. Any malformed input throws a typed error (`WireError` or `HandshakeRecordError`);
// NIO's ByteToMessageHandler then passes it to `errorCaught` downstream, which counts it by reason
// and closes the connection, because a stream that lost framing cannot be trusted again.

import GeoCore
import GeoWire
import NIOCore

/// What the decoder hands to the connection handler.
public enum InboundRecord: Hashable, Sendable {
    case hello(Hello)
    case proof(Proof)
    /// The peer refused this side's Hello (in place of its Proof), and why.
    case reject(Reject)
    /// A client's proof that one more client identity speaks over this connection (after the
    /// handshake, between frames; see Handshake.swift).
    case attach(Attach)
    /// A validated frame and its size on the wire (header included), for the byte counters.
    case frame(Frame, wireBytes: Int)
}

public struct FrameDecoderHandler: ByteToMessageDecoder {
    public typealias InboundOut = InboundRecord

    enum Phase { case hello, proof, frames }

    public let limits: WireLimits
    private var phase: Phase

    /// `expectsHandshake: false` decodes frames from the first byte (for tests and tools).
    public init(limits: WireLimits, expectsHandshake: Bool = true) {
        self.limits = limits
        self.phase = expectsHandshake ? .hello : .frames
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        switch phase {
        case .hello:
            guard let bytes = buffer.readBytes(length: Handshake.helloBytes) else { return .needMoreData }
            let hello = try Hello.decode(bytes)
            phase = .proof
            context.fireChannelRead(wrapInboundOut(.hello(hello)))
            return .continue
        case .proof:
            guard let bytes = buffer.readBytes(length: Handshake.proofBytes) else { return .needMoreData }
            if Reject.isReject(bytes) {
                // Nothing follows a Reject but the close; stay here, so that more bytes are malformed.
                context.fireChannelRead(wrapInboundOut(.reject(try Reject.decode(bytes))))
                return .continue
            }
            let proof = try Proof.decode(bytes)
            phase = .frames
            context.fireChannelRead(wrapInboundOut(.proof(proof)))
            return .continue
        case .frames:
            // A GEOH record here can only be an Attach (a frame starts with "GEOF"); its fixed
            // size is shorter than a frame header, so 4 bytes tell which to wait for.
            guard buffer.readableBytes >= 4 else { return .needMoreData }
            if buffer.getBytes(at: buffer.readerIndex, length: 4) == Handshake.magic {
                guard let bytes = buffer.readBytes(length: Handshake.attachBytes) else { return .needMoreData }
                context.fireChannelRead(wrapInboundOut(.attach(try Attach.decode(bytes))))
                return .continue
            }
            guard buffer.readableBytes >= WireFormat.headerBytes else { return .needMoreData }
            let limits = self.limits
            // Re-validating the 24-byte header on each partial read costs one small CRC; keeping a
            // pending header across calls would buy nothing measurable.
            let header: Result<FrameHeader, WireError> = buffer.withUnsafeReadableBytes { raw in
                do throws(WireError) {
                    let view = UnsafeRawBufferPointer(rebasing: raw[0..<WireFormat.headerBytes])
                    return .success(try FrameCodec.decodeHeader(view, limits: limits))
                } catch {
                    return .failure(error)
                }
            }
            let total = WireFormat.headerBytes + (try header.get()).bodyLength
            guard let bytes = buffer.readBytes(length: total) else { return .needMoreData }
            let frame = try FrameCodec.decode(bytes, limits: limits)
            context.fireChannelRead(wrapInboundOut(.frame(frame, wireBytes: total)))
            return .continue
        }
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer,
                                    seenEOF: Bool) throws -> DecodingState {
        // A partial record at the end of the stream is simply lost with the connection; the peer
        // retransmits whatever mattered over the next one.
        try decode(context: context, buffer: &buffer)
    }
}
