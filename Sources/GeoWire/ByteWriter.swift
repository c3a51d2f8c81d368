// Little-endian writing and bounds-checked reading of the primitive fields of a frame body.

import GeoCore

/// Appends little-endian fields to a byte array.
public struct ByteWriter {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func u8(_ value: UInt8) { bytes.append(value) }
    public mutating func u16(_ value: UInt16) { integer(value) }
    public mutating func u32(_ value: UInt32) { integer(value) }
    public mutating func u64(_ value: UInt64) { integer(value) }
    public mutating func i64(_ value: Int64) { integer(UInt64(bitPattern: value)) }

    private mutating func integer<T: FixedWidthInteger>(_ value: T) {
        var little = value.littleEndian
        withUnsafeBytes(of: &little) { bytes.append(contentsOf: $0) }
    }

    /// A byte string with a u32 length prefix.
    public mutating func blob(_ value: [UInt8]) {
        u32(UInt32(value.count))
        bytes.append(contentsOf: value)
    }

    /// Bytes with no prefix (fixed-size fields such as digests and signatures).
    public mutating func raw(_ value: [UInt8]) { bytes.append(contentsOf: value) }

    public mutating func digest(_ value: Digest) {
        // Big-endian words, so that the encoded bytes equal `Digest.bytes`.
        for word in [value.w0, value.w1, value.w2, value.w3] {
            var big = word.bigEndian
            withUnsafeBytes(of: &big) { bytes.append(contentsOf: $0) }
        }
    }

    public mutating func signature(_ value: Signature) { raw(value.bytes) }

    /// Overwrites a u32 at `offset` (used for header fields known only after the body).
    public mutating func patchU32(_ value: UInt32, at offset: Int) {
        var little = value.littleEndian
        withUnsafeBytes(of: &little) { raw in
            for index in 0..<4 { bytes[offset + index] = raw[index] }
        }
    }
}

/// Reads little-endian fields from a byte buffer; every read checks the bounds and throws
/// `WireError.truncated` instead of trapping.
public struct ByteReader: ~Copyable {
    private let base: UnsafeRawBufferPointer
    public private(set) var offset: Int
    private let end: Int

    public init(_ buffer: UnsafeRawBufferPointer, offset: Int = 0, end: Int? = nil) {
        precondition(offset >= 0 && offset <= (end ?? buffer.count) && (end ?? buffer.count) <= buffer.count,
                     "ByteReader bounds outside the buffer")
        base = buffer
        self.offset = offset
        self.end = end ?? buffer.count
    }

    public var remaining: Int { end - offset }

    private mutating func take(_ count: Int, _ field: StaticString) throws(WireError) -> Int {
        guard count >= 0, count <= remaining else {
            throw .truncated(field: String(describing: field), needed: count, available: remaining)
        }
        let start = offset
        offset += count
        return start
    }

    public mutating func u8(_ field: StaticString) throws(WireError) -> UInt8 {
        base[try take(1, field)]
    }

    public mutating func u16(_ field: StaticString) throws(WireError) -> UInt16 {
        UInt16(littleEndian: base.loadUnaligned(fromByteOffset: try take(2, field), as: UInt16.self))
    }

    public mutating func u32(_ field: StaticString) throws(WireError) -> UInt32 {
        UInt32(littleEndian: base.loadUnaligned(fromByteOffset: try take(4, field), as: UInt32.self))
    }

    public mutating func u64(_ field: StaticString) throws(WireError) -> UInt64 {
        UInt64(littleEndian: base.loadUnaligned(fromByteOffset: try take(8, field), as: UInt64.self))
    }

    public mutating func i64(_ field: StaticString) throws(WireError) -> Int64 {
        Int64(bitPattern: try u64(field))
    }

    /// A u32-length-prefixed byte string of at most `limit` bytes. The length is checked against
    /// the limit and the remaining input before anything is allocated.
    public mutating func blob(_ field: StaticString, limit: Int) throws(WireError) -> [UInt8] {
        let length = Int(try u32(field))
        guard length <= limit else {
            throw .fieldTooLarge(field: String(describing: field), length: length, limit: limit)
        }
        let start = try take(length, field)
        return Array(UnsafeRawBufferPointer(rebasing: base[start..<(start + length)]))
    }

    public mutating func raw(_ field: StaticString, count: Int) throws(WireError) -> [UInt8] {
        let start = try take(count, field)
        return Array(UnsafeRawBufferPointer(rebasing: base[start..<(start + count)]))
    }

    public mutating func digest(_ field: StaticString) throws(WireError) -> Digest {
        let start = try take(Digest.byteCount, field)
        func word(_ index: Int) -> UInt64 {
            UInt64(bigEndian: base.loadUnaligned(fromByteOffset: start + index * 8, as: UInt64.self))
        }
        return Digest(w0: word(0), w1: word(1), w2: word(2), w3: word(3))
    }

    public mutating func signature(_ field: StaticString) throws(WireError) -> Signature {
        // 64 bytes always make a Signature.
        Signature(bytes: try raw(field, count: Signature.byteCount))!
    }

    /// A u32 element count, refused when even the smallest elements could not fit in what is left
    /// (so a forged count cannot make the decoder reserve memory) or when above `limit`.
    public mutating func count(_ field: StaticString, minimumElementBytes: Int, limit: Int) throws(WireError) -> Int {
        try checked(count: Int(try u32(field)), field, minimumElementBytes: minimumElementBytes, limit: limit)
    }

    /// The checks of `count(...)` for a count read some other way (with flag bits removed).
    public func checked(count: Int, _ field: StaticString, minimumElementBytes: Int, limit: Int) throws(WireError) -> Int {
        guard count <= limit else {
            throw .fieldTooLarge(field: String(describing: field), length: count, limit: limit)
        }
        guard count * minimumElementBytes <= remaining else {
            throw .truncated(field: String(describing: field), needed: count * minimumElementBytes, available: remaining)
        }
        return count
    }
}
