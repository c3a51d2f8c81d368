// What a command printed and how it ended, so tests can check both without spawning a process.

import ArgumentParser
import Foundation

public struct CommandOutput: Sendable {
    public var exitCode: Int32 = 0
    public var standardOutput = ""
    public var standardError = ""

    public init() {}

    mutating func out(_ line: String) { standardOutput += line + "\n" }
    mutating func err(_ line: String) { standardError += line + "\n" }

    /// Prints what was collected and ends with the exit code (ArgumentParser's way to exit).
    func emit() throws {
        if !standardOutput.isEmpty { FileHandle.standardOutput.write(Data(standardOutput.utf8)) }
        if !standardError.isEmpty { FileHandle.standardError.write(Data(standardError.utf8)) }
        if exitCode != 0 { throw ExitCode(exitCode) }
    }
}

enum JSONOutput {
    static func encode<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Encoding plain structs of strings and numbers cannot fail.
        return String(decoding: try! encoder.encode(value), as: UTF8.self)
    }
}
