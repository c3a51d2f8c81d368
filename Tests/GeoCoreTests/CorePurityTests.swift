import Foundation
import Testing

/// The protocol core is deterministic and free of I/O: GeoCore imports nothing (not even
/// Foundation), so the simulator and the daemon step exactly the same code. This test reads the
/// sources, so a stray import fails the suite, not only a review.
@Suite struct CorePurityTests {
    static let coreDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/GeoCore")

    @Test func geoCoreImportsNothing() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.coreDirectory.path).filter { $0.hasSuffix(".swift") }
        #expect(files.count >= 10, "GeoCore's sources at \(Self.coreDirectory.path)")
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
