// Why a frame is invalid. Every way a frame can be wrong has a case, so a replica can count
// rejected input by reason and log it, rather than crash or guess.

public enum WireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The first four bytes are not "GEOF": the stream is not GeoFabric or framing was lost.
    case badMagic(UInt32)
    /// The header's own checksum does not match its first 20 bytes.
    case headerChecksumMismatch(declared: UInt32, computed: UInt32)
    /// A wire version this build does not speak.
    case unsupportedVersion(UInt16)
    /// A message kind this build does not know.
    case unknownKind(UInt16)
    /// The declared body length is above the configured maximum (checked before allocating).
    case bodyTooLarge(declared: Int, limit: Int)
    /// The body's checksum does not match the header.
    case bodyChecksumMismatch(declared: UInt32, computed: UInt32)
    /// The input ended inside a field.
    case truncated(field: String, needed: Int, available: Int)
    /// A length or count above its bound.
    case fieldTooLarge(field: String, length: Int, limit: Int)
    /// An enum tag with no meaning.
    case invalidTag(field: String, value: UInt64)
    /// A field whose value breaks a rule of the format (the reason says which).
    case invalidValue(field: String, reason: String)
    /// The body decoded completely but bytes were left over.
    case trailingBytes(count: Int)

    /// A short, stable label for metrics ("rejected messages by reason").
    public var reason: String {
        switch self {
        case .badMagic: return "bad_magic"
        case .headerChecksumMismatch: return "header_checksum"
        case .unsupportedVersion: return "unsupported_version"
        case .unknownKind: return "unknown_kind"
        case .bodyTooLarge: return "body_too_large"
        case .bodyChecksumMismatch: return "body_checksum"
        case .truncated: return "truncated"
        case .fieldTooLarge: return "field_too_large"
        case .invalidTag: return "invalid_tag"
        case .invalidValue: return "invalid_value"
        case .trailingBytes: return "trailing_bytes"
        }
    }

    public var description: String {
        switch self {
        case let .badMagic(value):
            return "bad magic 0x\(String(value, radix: 16)) (not a GeoFabric frame, or framing lost)"
        case let .headerChecksumMismatch(declared, computed):
            return "header checksum mismatch (declared \(declared), computed \(computed))"
        case let .unsupportedVersion(version):
            return "unsupported wire version \(version) (this build speaks \(WireFormat.version))"
        case let .unknownKind(kind):
            return "unknown message kind \(kind)"
        case let .bodyTooLarge(declared, limit):
            return "body of \(declared) bytes exceeds the limit of \(limit) bytes"
        case let .bodyChecksumMismatch(declared, computed):
            return "body checksum mismatch (declared \(declared), computed \(computed))"
        case let .truncated(field, needed, available):
            return "truncated at \(field): needs \(needed) bytes, \(available) left"
        case let .fieldTooLarge(field, length, limit):
            return "\(field) of \(length) exceeds the limit of \(limit)"
        case let .invalidTag(field, value):
            return "invalid tag \(value) for \(field)"
        case let .invalidValue(field, reason):
            return "invalid \(field): \(reason)"
        case let .trailingBytes(count):
            return "\(count) bytes left over after the body"
        }
    }
}
