// The replicated state machine: a key-value store with integer accounts.
//
// Deterministic: the same operations in the same order give the same results and state on every
// replica. Integers are stored as 8-byte little-endian values; an absent key counts as 0.

public struct KeyValueStore: Hashable, Sendable {
    public private(set) var values: [[UInt8]: [UInt8]] = [:]

    public init() {}

    /// A store holding `values` (a snapshot read back).
    public init(values: [[UInt8]: [UInt8]]) { self.values = values }

    public func value(_ key: [UInt8]) -> [UInt8]? { values[key] }

    /// The integer at `key`: 0 when absent, nil when the value is not an 8-byte integer.
    public func number(_ key: [UInt8]) -> Int64? {
        guard let bytes = values[key] else { return 0 }
        guard bytes.count == 8 else { return nil }
        var value: UInt64 = 0
        for (index, byte) in bytes.enumerated() { value |= UInt64(byte) << (8 * UInt64(index)) }
        return Int64(bitPattern: value)
    }

    public static func encode(_ number: Int64) -> [UInt8] {
        let bits = UInt64(bitPattern: number)
        return (0..<8).map { UInt8(truncatingIfNeeded: bits >> (8 * UInt64($0))) }
    }

    public mutating func execute(_ operation: Operation) -> ExecutionResult {
        switch operation {
        case let .put(key, value):
            values[key] = value
            return .stored
        case let .get(key):
            return .value(values[key])
        case let .add(key, delta):
            guard let current = number(key) else { return .refused(.notANumber) }
            let (sum, overflow) = current.addingReportingOverflow(delta)
            guard !overflow else { return .refused(.overflow) }
            values[key] = Self.encode(sum)
            return .number(sum)
        case let .transfer(from, to, amount):
            guard from != to else { return .refused(.sameAccount) }
            guard let fromBalance = number(from), let toBalance = number(to) else { return .refused(.notANumber) }
            guard amount <= UInt64(Int64.max) else { return .refused(.overflow) }
            let signed = Int64(amount)
            guard fromBalance >= signed else { return .refused(.insufficientBalance) }
            let (newTo, overflow) = toBalance.addingReportingOverflow(signed)
            guard !overflow else { return .refused(.overflow) }
            values[from] = Self.encode(fromBalance - signed)
            values[to] = Self.encode(newTo)
            return .transferred(fromBalance: fromBalance - signed, toBalance: newTo)
        }
    }
}
