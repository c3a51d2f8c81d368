// The frame: a fixed 24-byte header and a body.
//
//   offset size field
//   0      4    magic "GEOF"
//   4      2    wire version (WireFormat.version)
//   6      2    message kind (MessageKind)
//   8      4    sender (NodeID: a replica number, or a client with the top bit set)
//   12     4    body length in bytes
//   16     4    CRC-32C of the body
//   20     4    CRC-32C of bytes 0..<20 of the header
//
// All integers little-endian. The sender field says who claims to send; the transport binds a
// connection to an identity (handshake) and drops frames whose sender does not match it.

import GeoCore

public enum WireFormat {
    /// "GEOF" as the first four bytes on the wire.
    public static let magic: UInt32 = UInt32(littleEndian: 0x464F_4547)
    public static let version: UInt16 = 1
    public static let headerBytes = 24
}

/// One message kind per Swift message type. Values never change once released; new kinds get new values.
public enum MessageKind: UInt16, CaseIterable, Sendable {
    case clientTransaction = 1
    case prePrepare = 2
    case prepare = 3
    case commit = 4
    case certifiedBlock = 5
    case reply = 6
    case checkpoint = 7
    case viewChange = 8
    case newView = 9
    case blockRequest = 10
    case remoteViewChange = 11
    case shardStatement = 12
    case stateCheckpoint = 13
    case stateRequest = 14
    case stateTransfer = 15
    case busy = 16

    public init(of message: Message) {
        switch message {
        case .clientTransaction: self = .clientTransaction
        case .prePrepare: self = .prePrepare
        case .prepare: self = .prepare
        case .commit: self = .commit
        case .certifiedBlock: self = .certifiedBlock
        case .reply: self = .reply
        case .checkpoint: self = .checkpoint
        case .viewChange: self = .viewChange
        case .newView: self = .newView
        case .blockRequest: self = .blockRequest
        case .remoteViewChange: self = .remoteViewChange
        case .shardStatement: self = .shardStatement
        case .stateCheckpoint: self = .stateCheckpoint
        case .stateRequest: self = .stateRequest
        case .stateTransfer: self = .stateTransfer
        case .busy: self = .busy
        }
    }
}

public struct FrameHeader: Hashable, Sendable {
    public var version: UInt16
    public var kind: MessageKind
    public var sender: NodeID
    public var bodyLength: Int
    public var bodyChecksum: UInt32
}

/// A decoded, validated frame.
public struct Frame: Hashable, Sendable {
    public var sender: NodeID
    public var message: Message
    public init(sender: NodeID, message: Message) {
        self.sender = sender
        self.message = message
    }
}

/// Bounds the decoder enforces. Every length and count a peer sends is checked against one of
/// these before anything is allocated for it.
public struct WireLimits: Hashable, Sendable {
    /// Largest body (the topology's `max_message_bytes`).
    public var maxBodyBytes: Int
    /// Transactions in one block: batch sizes are in the hundreds; this leaves ample room.
    public var maxTransactionsPerBlock: Int = 65_536
    /// A key: long enough for any realistic path-like key.
    public var maxKeyBytes: Int = 1_024
    /// A value: 1 MiB; larger objects belong outside a ledger.
    public var maxValueBytes: Int = 1 << 20
    /// Signers in a certificate: clusters are far smaller than this.
    public var maxCertificateSignatures: Int = 1_024
    /// Prepared proofs in a view change, and PrePrepares in a new view: at most one per round of
    /// the window, which topologies keep far below this.
    public var maxProofRounds: Int = 4_096

    public init(maxBodyBytes: Int = 16 * 1024 * 1024) {
        self.maxBodyBytes = maxBodyBytes
    }
}

public enum FrameCodec {
    /// Encodes `message` from `sender` into one complete frame.
    public static func encode(_ message: Message, from sender: NodeID) -> [UInt8] {
        var writer = ByteWriter(capacity: 128)
        writer.u32(WireFormat.magic)
        writer.u16(WireFormat.version)
        writer.u16(MessageKind(of: message).rawValue)
        writer.u32(sender.rawValue)
        writer.u32(0)  // body length, patched below
        writer.u32(0)  // body checksum, patched below
        writer.u32(0)  // header checksum, patched below
        MessageCodec.encodeBody(message, into: &writer)
        var bytes = writer.bytes
        let bodyLength = bytes.count - WireFormat.headerBytes
        let bodyChecksum = CRC32C.checksum(bytes[WireFormat.headerBytes...])
        Self.patch(&bytes, UInt32(bodyLength), at: 12)
        Self.patch(&bytes, bodyChecksum, at: 16)
        Self.patch(&bytes, CRC32C.checksum(bytes[0..<20]), at: 20)
        return bytes
    }

    private static func patch(_ bytes: inout [UInt8], _ value: UInt32, at offset: Int) {
        for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(index))) }
    }

    /// Validates a header (the first 24 bytes of `buffer`). Checks the magic, the header checksum,
    /// the version, the kind, and the body length against the limit, in that order.
    public static func decodeHeader(_ buffer: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) -> FrameHeader {
        var reader = ByteReader(buffer, offset: 0, end: min(buffer.count, WireFormat.headerBytes))
        let magic = try reader.u32("header.magic")
        guard magic == WireFormat.magic else { throw .badMagic(magic) }
        let version = try reader.u16("header.version")
        let kindValue = try reader.u16("header.kind")
        let sender = try reader.u32("header.sender")
        let bodyLength = Int(try reader.u32("header.body_length"))
        let bodyChecksum = try reader.u32("header.body_checksum")
        let headerChecksum = try reader.u32("header.header_checksum")
        let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: buffer[0..<20]))
        guard headerChecksum == computed else { throw .headerChecksumMismatch(declared: headerChecksum, computed: computed) }
        guard version == WireFormat.version else { throw .unsupportedVersion(version) }
        guard let kind = MessageKind(rawValue: kindValue) else { throw .unknownKind(kindValue) }
        guard bodyLength <= limits.maxBodyBytes else { throw .bodyTooLarge(declared: bodyLength, limit: limits.maxBodyBytes) }
        return FrameHeader(version: version, kind: kind, sender: NodeID(rawValue: sender),
                           bodyLength: bodyLength, bodyChecksum: bodyChecksum)
    }

    /// Decodes exactly one complete frame; anything short, long or invalid is an error.
    public static func decode(_ bytes: [UInt8], limits: WireLimits) throws(WireError) -> Frame {
        let result: Result<Frame, WireError> = bytes.withUnsafeBytes { buffer in
            do throws(WireError) {
                guard buffer.count >= WireFormat.headerBytes else {
                    throw .truncated(field: "header", needed: WireFormat.headerBytes, available: buffer.count)
                }
                let header = try decodeHeader(buffer, limits: limits)
                let total = WireFormat.headerBytes + header.bodyLength
                guard buffer.count >= total else {
                    throw .truncated(field: "body", needed: header.bodyLength, available: buffer.count - WireFormat.headerBytes)
                }
                guard buffer.count == total else { throw .trailingBytes(count: buffer.count - total) }
                return .success(try decodeBody(header, buffer, bodyOffset: WireFormat.headerBytes, limits: limits))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Checks the body checksum and decodes the body of a frame whose header is `header`.
    static func decodeBody(_ header: FrameHeader, _ buffer: UnsafeRawBufferPointer, bodyOffset: Int,
                           limits: WireLimits) throws(WireError) -> Frame {
        let end = bodyOffset + header.bodyLength
        let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: buffer[bodyOffset..<end]))
        guard computed == header.bodyChecksum else {
            throw .bodyChecksumMismatch(declared: header.bodyChecksum, computed: computed)
        }
        var reader = ByteReader(buffer, offset: bodyOffset, end: end)
        let message = try MessageCodec.decodeBody(kind: header.kind, from: &reader, limits: limits)
        guard reader.remaining == 0 else { throw .trailingBytes(count: reader.remaining) }
        return Frame(sender: header.sender, message: message)
    }
}

/// Splits a byte stream into frames. Bytes arrive in any pieces (one at a time, or many frames
/// coalesced); a frame is returned only once it is complete, and bytes are left unconsumed until
/// then. After an error the stream cannot be trusted to be in frame any more: the decoder stays
/// failed and the connection should be closed.
public struct FrameStreamDecoder: Sendable {
    public let limits: WireLimits
    private var buffer: [UInt8] = []
    private var readIndex = 0
    private var pendingHeader: FrameHeader?
    public private(set) var failure: WireError?

    public init(limits: WireLimits) { self.limits = limits }

    /// Bytes received but not yet returned as frames.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    public mutating func append<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        if readIndex > 0 && readIndex * 2 >= buffer.count {
            buffer.removeFirst(readIndex)
            readIndex = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete frame, nil when more bytes are needed.
    public mutating func next() throws(WireError) -> Frame? {
        if let failure { throw failure }
        do throws(WireError) {
            return try decodeNext()
        } catch {
            failure = error
            throw error
        }
    }

    private mutating func decodeNext() throws(WireError) -> Frame? {
        let available = buffer.count - readIndex
        let start = readIndex
        let limits = self.limits
        if pendingHeader == nil {
            guard available >= WireFormat.headerBytes else { return nil }
            let header: Result<FrameHeader, WireError> = buffer.withUnsafeBytes { all in
                do throws(WireError) {
                    let view = UnsafeRawBufferPointer(rebasing: all[start..<(start + WireFormat.headerBytes)])
                    return .success(try FrameCodec.decodeHeader(view, limits: limits))
                } catch { return .failure(error) }
            }
            pendingHeader = try header.get()
        }
        guard let header = pendingHeader else { return nil }
        let total = WireFormat.headerBytes + header.bodyLength
        guard available >= total else { return nil }
        let frame: Result<Frame, WireError> = buffer.withUnsafeBytes { all in
            do throws(WireError) {
                let view = UnsafeRawBufferPointer(rebasing: all[start..<(start + total)])
                return .success(try FrameCodec.decodeBody(header, view, bodyOffset: WireFormat.headerBytes, limits: limits))
            } catch { return .failure(error) }
        }
        let decoded = try frame.get()
        readIndex += total
        pendingHeader = nil
        return decoded
    }
}
