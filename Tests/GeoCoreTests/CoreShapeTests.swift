import Foundation
import Testing

/// The protocol core is deterministic and free of I/O: GeoCore imports nothing (not even
/// Foundation), so the simulator and the daemon step exactly the same code. This test reads the
/// sources, so a stray import fails the suite, not only a review.
@Suite struct CorePurityTests {
    static let coreDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/GeoCore")

    /// Every Swift file under `directory`, sub-directories included (the core's sub-machines live
    /// in Sources/GeoCore/Replica/), as paths relative to it.
    static func swiftFiles(under directory: URL) throws -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: directory.path) else { return [] }
        return walker.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }.sorted()
    }

    @Test func geoCoreImportsNothing() throws {
        let files = try Self.swiftFiles(under: Self.coreDirectory)
        #expect(files.count >= 10, "GeoCore's sources at \(Self.coreDirectory.path)")
        #expect(files.contains("Replica/Agreement.swift"), "the sub-machines' directory is read too")
        var imports: [String] = []
        for file in files.sorted() {
            let text = try String(contentsOf: Self.coreDirectory.appendingPathComponent(file), encoding: .utf8)
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                let words = trimmed.split(separator: " ")
                // `import X`, `@testable import X`, `@_exported import X`, `import struct X.Y`.
                if let index = words.firstIndex(of: "import"), words[..<index].allSatisfy({ $0.hasPrefix("@") }) {
                    imports.append("\(file):\(number + 1): \(trimmed)")
                }
            }
        }
        #expect(imports.isEmpty, "GeoCore must import nothing:\n\(imports.joined(separator: "\n"))")
    }
}

/// The core's shape (issue 13): no function in GeoCore or GeoNode over 80 lines, so that each
/// protocol step reads on one screen. Counted from the declaration line to its closing brace.
@Suite struct FunctionLengthTests {
    static let limit = 80

    /// (file:line, declaration, lines) of every function or initializer longer than `limit` lines.
    static func longFunctions(in directory: URL) throws -> [String] {
        var found: [String] = []
        for file in try CorePurityTests.swiftFiles(under: directory) {
            let lines = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
                .split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            for (start, line) in lines.enumerated() where isDeclaration(line) {
                var depth = 0, opened = false, end = start
                while end < lines.count {
                    depth += lines[end].filter { $0 == "{" }.count - lines[end].filter { $0 == "}" }.count
                    if lines[end].contains("{") { opened = true }
                    if opened && depth <= 0 { break }
                    end += 1
                }
                if end - start + 1 > limit {
                    found.append("\(file):\(start + 1) (\(end - start + 1) lines): \(line.trimmingCharacters(in: .whitespaces))")
                }
            }
        }
        return found
    }

    static func isDeclaration(_ line: String) -> Bool {
        let words = line.trimmingCharacters(in: .whitespaces).split(separator: " ")
        guard let index = words.firstIndex(where: { $0 == "func" || $0.hasPrefix("init(") || $0.hasPrefix("init?(") }) else { return false }
        let modifiers: Set<Substring> = ["public", "private", "fileprivate", "internal", "static", "mutating", "nonisolated",
                                         "override", "final", "@discardableResult", "@inlinable", "package"]
        return words[..<index].allSatisfy { modifiers.contains($0) || $0.hasPrefix("@") || $0.hasPrefix("private(") }
            && line.contains("{")
    }

    @Test(arguments: ["GeoCore", "GeoNode"])
    func noFunctionIsLongerThanEightyLines(target: String) throws {
        let directory = CorePurityTests.coreDirectory.deletingLastPathComponent().appendingPathComponent(target)
        let long = try Self.longFunctions(in: directory)
        #expect(try CorePurityTests.swiftFiles(under: directory).count >= 5)
        #expect(long.isEmpty, "functions over \(Self.limit) lines in \(target):\n\(long.joined(separator: "\n"))")
    }
}

/// The core's shape (issue 13): no type in GeoCore over about 400 lines or 20 stored properties,
/// so that each sub-machine owns a small state and reads on a few screens. A type's lines are its
/// declaration's plus every extension's in GeoCore (from the line that opens it to its closing
/// brace); its stored properties are the `var`/`let` members of its declaration that are not
/// static and not computed.
@Suite struct TypeSizeTests {
    static let lineLimit = 400
    static let storedLimit = 20
    /// The composer (PBFTReplica) still coordinates every sub-machine in one type: it is held to
    /// what it is now, so that it only shrinks (a ratchet), until it meets `lineLimit` too.
    static let composerLineLimit = 787

    struct Measure {
        var lines = 0
        var stored = 0
        var places: [String] = []
    }

    /// Lines and stored properties of every top-level type and extension, by type name.
    static func measure(_ directory: URL) throws -> [String: Measure] {
        var types: [String: Measure] = [:]
        for file in try CorePurityTests.swiftFiles(under: directory) {
            let lines = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
                .split(separator: "\n", omittingEmptySubsequences: false)
                .map { line in String(line.split(separator: "//", maxSplits: 1, omittingEmptySubsequences: false).first ?? "") }
            var index = 0
            while index < lines.count {
                guard let (kind, name) = topLevelType(lines[index]) else { index += 1; continue }
                var depth = 0, opened = false, end = index, stored = 0
                while end < lines.count {
                    let line = lines[end]
                    if depth == 1 && kind != "extension" && isStoredProperty(line) { stored += 1 }
                    depth += line.filter { $0 == "{" }.count - line.filter { $0 == "}" }.count
                    if line.contains("{") { opened = true }
                    if opened && depth <= 0 { break }
                    end += 1
                }
                types[name, default: Measure()].lines += end - index + 1
                types[name, default: Measure()].stored += stored
                types[name, default: Measure()].places.append("\(file):\(index + 1)")
                index = end + 1
            }
        }
        return types
    }

    /// `(kind, name)` when the line opens a top-level struct, enum, class, actor or extension.
    static func topLevelType(_ line: String) -> (String, String)? {
        guard let first = line.first, !first.isWhitespace else { return nil }
        let words = line.split(whereSeparator: { $0 == " " || $0 == ":" || $0 == "<" || $0 == "{" }).map(String.init)
        guard let index = words.firstIndex(where: { ["struct", "enum", "class", "actor", "extension"].contains($0) }),
              index + 1 < words.count,
              words[..<index].allSatisfy({ ["public", "package", "internal", "final", "indirect", "fileprivate"].contains($0) })
        else { return nil }
        return (words[index], words[index + 1])
    }

    static func isStoredProperty(_ line: String) -> Bool {
        let words = line.trimmingCharacters(in: .whitespaces).split(separator: " ")
        guard let index = words.firstIndex(where: { $0 == "var" || $0 == "let" }) else { return false }
        let modifiers = words[..<index]
        guard modifiers.allSatisfy({ !["static", "class", "case"].contains($0) && !$0.hasPrefix("func") }) else { return false }
        // `var x: T { ... }` is computed; `var x: T = ...` and `var x: T` are stored.
        guard let brace = line.firstIndex(of: "{") else { return true }
        return line[..<brace].contains("=")
    }

    @Test func theMeasureSeesTheCore() throws {
        let types = try Self.measure(CorePurityTests.coreDirectory)
        // The measure itself could be wrong: check it on types whose shape is known.
        #expect((types["PBFTReplica"]?.lines ?? 0) > 300)
        #expect((types["PBFTReplica"]?.stored ?? 0) >= 10, "the composer holds its sub-machines")
        #expect(types["Agreement"]?.stored == 8)
        #expect(types["Intake"]?.stored == 10)
        #expect(types.count >= 40)
    }

    @Test func noTypeInGeoCoreIsTooLarge() throws {
        let types = try Self.measure(CorePurityTests.coreDirectory)
        var large: [String] = []
        for (name, measure) in types.sorted(by: { $0.key < $1.key }) {
            let limit = name == "PBFTReplica" ? Self.composerLineLimit : Self.lineLimit
            if measure.lines > limit || measure.stored > Self.storedLimit {
                large.append("\(name): \(measure.lines) lines, \(measure.stored) stored properties (\(measure.places.joined(separator: ", ")))")
            }
        }
        #expect(large.isEmpty, "types over \(Self.lineLimit) lines or \(Self.storedLimit) stored properties:\n\(large.joined(separator: "\n"))")
    }
}
