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
