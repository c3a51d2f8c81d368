// Seeded randomness. The simulator and the tests derive every random choice from one seed so that
// a failure replays exactly; the system generator is never used inside GeoCore.

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, passes BigCrush, and trivially seedable.
/// Hand-written because no package here offers a seedable generator; it is six lines.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// Random bytes, for keys, values and fuzzing.
    public mutating func bytes(count: Int) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(count)
        while out.count < count {
            var word = next()
            for _ in 0..<min(8, count - out.count) {
                out.append(UInt8(truncatingIfNeeded: word))
                word >>= 8
            }
        }
        return out
    }
}
