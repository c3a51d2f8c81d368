// Errors of topology files: each names the file, the line (and column) and the field, and says
// what is wrong in words an operator can act on.

/// What kind of mistake a topology file holds (stable, for tests and tooling).
public enum TopologyProblem: String, Sendable, Hashable, Codable {
    case fileNotFound = "file_not_found"
    case unreadable
    case notText = "not_text"
    case empty
    case syntax
    case wrongType = "wrong_type"
    case unknownKey = "unknown_key"
    case duplicateKey = "duplicate_key"
    case missingField = "missing_field"
    case invalidValue = "invalid_value"
    case tooFewReplicas = "too_few_replicas"
    case nonPositive = "non_positive"
    case duplicateName = "duplicate_name"
    case duplicateAddress = "duplicate_address"
    case unknownRegion = "unknown_region"
    case overlappingPlacement = "overlapping_placement"
    case incompletePlacement = "incomplete_placement"
    case missingWANPair = "missing_wan_pair"
}

public struct TopologyError: Error, Hashable, Sendable, CustomStringConvertible {
    public var problem: TopologyProblem
    public var file: String
    /// 1-based line, when the problem has a place in the file.
    public var line: Int?
    public var column: Int?
    /// Where in the document, as a path: "shards[0].clusters[1].replicas".
    public var field: String
    public var message: String

    public init(_ problem: TopologyProblem, file: String, line: Int?, column: Int?, field: String, message: String) {
        self.problem = problem
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        self.message = message
    }

    /// "topologies/x.yaml:12:7: shards[0].clusters[1].replicas: ...": the form compilers use, so
    /// editors can jump to it.
    public var description: String {
        var place = file
        if let line {
            place += ":\(line)"
            if let column { place += ":\(column)" }
        }
        return field.isEmpty ? "\(place): \(message)" : "\(place): \(field): \(message)"
    }
}

/// "Did you mean" suggestions for misspelt keys and names.
public enum Suggestion {
    /// The candidate closest to `word` by edit distance, if it is close enough to be a likely typo.
    public static func closest(to word: String, in candidates: [String]) -> String? {
        let scored = candidates.map { ($0, distance(word.lowercased(), $0.lowercased())) }
        guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
        return best.1 <= max(2, word.count / 3) ? best.0 : nil
    }

    public static func hint(for word: String, in candidates: [String]) -> String {
        if let match = closest(to: word, in: candidates) { return " (did you mean '\(match)'?)" }
        return candidates.isEmpty ? "" : " (expected one of: \(candidates.joined(separator: ", ")))"
    }

    /// Levenshtein distance; strings here are short keys, so the quadratic table is fine.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
