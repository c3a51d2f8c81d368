// The replicated state machine: a key-value store with integer accounts.
//
// Deterministic: the same operations in the same order give the same results and state on every
// replica.
//
// Numbers are values too, stored as decimal text, so that `put n 100` then `add n 1` gives 101 and
// a read shows "101". The rule: a value is a number when it is the canonical decimal text of a
// signed 64-bit integer: an optional '-' and then "0" or a digit 1-9 followed by digits, ASCII,
// nothing else (no '+', no leading zeros, no "-0", no spaces), within -2^63 ... 2^63-1. Only that
// spelling: it round-trips, so "007" or "+5" stay text (a postcode keeps its zero) and are refused
// by add and transfer as not a number. An absent key counts as 0; add and transfer write results in
// the canonical spelling.

public struct KeyValueStore: Hashable, Sendable {
    public private(set) var values: [[UInt8]: [UInt8]] = [:]

    public init() {}

    /// A store holding `values` (a snapshot read back).
    public init(values: [[UInt8]: [UInt8]]) { self.values = values }

    public func value(_ key: [UInt8]) -> [UInt8]? { values[key] }

    /// The integer at `key`: 0 when absent, nil when the value is not a number (`decimal`).
    public func number(_ key: [UInt8]) -> Int64? {
        guard let bytes = values[key] else { return 0 }
        return Self.decimal(bytes)
    }

    /// The canonical decimal text of `number` (the header's rule).
    public static func encode(_ number: Int64) -> [UInt8] { Array(String(number).utf8) }

    /// The number `bytes` spell under the header's rule, nil when they are not one.
    public static func decimal(_ bytes: [UInt8]) -> Int64? {
        let zero = UInt8(ascii: "0"), nine = UInt8(ascii: "9")
        let negative = bytes.first == UInt8(ascii: "-")
        let digits = bytes.dropFirst(negative ? 1 : 0)
        // 19 digits hold every Int64; more cannot be canonical and in range.
        guard let first = digits.first, digits.count <= 19, digits.allSatisfy({ $0 >= zero && $0 <= nine }) else { return nil }
        guard first != zero || digits.count == 1 else { return nil }
        guard !(negative && digits.count == 1 && first == zero) else { return nil }
        // Accumulated negatively: -2^63 has no positive counterpart.
        var value: Int64 = 0
        for digit in digits {
            let (shifted, overflowA) = value.multipliedReportingOverflow(by: 10)
            let (next, overflowB) = shifted.subtractingReportingOverflow(Int64(digit - zero))
            guard !overflowA, !overflowB else { return nil }
            value = next
        }
        if negative { return value }
        guard value != .min else { return nil }
        return -value
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
