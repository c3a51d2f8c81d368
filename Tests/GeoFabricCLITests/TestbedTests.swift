// tools/testbed.sh end to end: the local-1x4 topology in its own network namespace, one signed
// put and one get through `testbed.sh exec`, then `down`. It needs root, working network
// namespaces and the geofabric binary built next to the tests (`swift build --build-tests`);
// where any of these is missing the test is skipped and says which.

import Foundation
import Testing

/// Where the script and the binary are, and whether this machine can run a testbed.
private enum TestbedEnvironment {
    static let packageRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url
    }()

    static var script: String { packageRoot.appendingPathComponent("tools/testbed.sh").path }

    /// The `geofabric` binary in the directory of the running test executable (SwiftPM builds
    /// both there), or the directory above it (a macOS .xctest bundle).
    static let binary: String? = {
        var executables = [CommandLine.arguments.first ?? ""]
        if let resolved = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            executables.insert(resolved, at: 0)
        }
        if let url = Bundle.main.executableURL { executables.append(url.path) }
        for executable in executables where !executable.isEmpty {
            let directory = URL(fileURLWithPath: executable).resolvingSymlinksInPath().deletingLastPathComponent()
            for candidate in [directory, directory.deletingLastPathComponent()] {
                let path = candidate.appendingPathComponent("geofabric").path
                if FileManager.default.isExecutableFile(atPath: path) { return path }
            }
        }
        return nil
    }()

    /// Why a testbed cannot be built here, or nil when it can.
    static func missingPrerequisite() -> String? {
        if geteuid() != 0 { return "not running as root (network namespaces need root)" }
        if binary == nil { return "no geofabric binary next to the test executable (run `swift build --build-tests`)" }
        if (try? run(["python3", "-c", "import json"], timeout: 10))?.status != 0 {
            return "python3 is not available (the script reads the topology with it)"
        }
        let probe = "gf-probe-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard let added = try? run(["ip", "netns", "add", probe], timeout: 10) else {
            return "the `ip` tool could not be run"
        }
        guard added.status == 0 else {
            return "`ip netns add` failed: \(added.error.trimmingCharacters(in: .whitespacesAndNewlines))"
        }
        _ = try? run(["ip", "netns", "delete", probe], timeout: 10)
        return nil
    }

    /// The trait's condition: true when the testbed can be built; otherwise prints why not.
    static func available() -> Bool {
        guard let reason = missingPrerequisite() else { return true }
        print("TestbedTests skipped: \(reason)")
        return false
    }

    /// Runs a command (looked up on PATH) with stdout and stderr in files, so processes it leaves
    /// behind cannot hold a pipe open; kills it after `timeout` seconds.
    static func run(_ arguments: [String], timeout: Double) throws -> (status: Int32, output: String, error: String) {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("geofabric-testbed-run-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let outURL = directory.appendingPathComponent("stdout"), errURL = directory.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        defer {
            try? out.close()
            try? err.close()
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Bounded waits only: Foundation notices a child's end when every copy of a descriptor
        // it gave the child is closed, so a leaked descriptor would otherwise hang the test.
        func wait(until deadline: Date) {
            while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        }
        wait(until: Date().addingTimeInterval(timeout))
        var note = ""
        if process.isRunning {
            process.terminate()
            note = "\n(stopped after \(timeout) s)"
            wait(until: Date().addingTimeInterval(5))
        }
        let output = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
        let error = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        if process.isRunning {
            return (-1, output, error + note + "\n(still not seen to end: a descriptor left open by a process it started?)")
        }
        return (process.terminationStatus, output, error + note)
    }
}

/// What `geofabric client ... --json` prints (the fields the test reads).
private struct ClientAnswer: Decodable {
    var result: String
    var height: UInt64
}

@Suite struct TestbedTests {
    // Skipped, with the reason printed, when not root, when `ip netns add` fails, or when the
    // geofabric binary has not been built next to the tests.
    @Test(.enabled(if: TestbedEnvironment.available(),
                   "needs root, network namespaces (`ip netns add`) and the geofabric binary built by `swift build --build-tests`"),
          .timeLimit(.minutes(1)))
    func upPutGetDown() throws {
        let binary = try #require(TestbedEnvironment.binary)
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let stateDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("geofabric-testbed-test-\(tag)").path
        let script = TestbedEnvironment.script
        let topology = TestbedEnvironment.packageRoot.appendingPathComponent("topologies/local-1x4.yaml").path
        defer {
            let down = try? TestbedEnvironment.run(["bash", script, "down", "--state-dir", stateDirectory], timeout: 20)
            if down?.status != 0 { Issue.record("testbed.sh down failed: \(down?.error ?? "could not run")") }
            try? FileManager.default.removeItem(atPath: stateDirectory)
        }

        // Its own namespace names (gf-t<tag>-...), so that a testbed someone else runs is left alone.
        let up = try TestbedEnvironment.run(
            ["bash", script, "up", topology, "--state-dir", stateDirectory, "--binary", binary,
             "--name", "t\(tag)", "--timeout", "20"],
            timeout: 30)
        try #require(up.status == 0, "testbed.sh up failed:\n\(up.output)\n\(up.error)")
        #expect(up.output.contains("testbed up: 4 replicas of local-1x4"))

        func client(_ arguments: [String]) throws -> ClientAnswer {
            let run = try TestbedEnvironment.run(
                ["bash", script, "exec", "local", "--state-dir", stateDirectory, "--",
                 "geofabric", "client"] + arguments + ["--json", "--timeout", "8"],
                timeout: 12)
            try #require(run.status == 0, "client \(arguments) failed:\n\(run.output)\n\(run.error)")
            return try JSONDecoder().decode(ClientAnswer.self, from: Data(run.output.utf8))
        }
        let key = "testbed-\(tag)", value = "value-\(tag)"
        let put = try client(["put", key, value])
        #expect(put.height >= 1)
        let get = try client(["get", key])
        #expect(get.result == value)
        #expect(get.height >= 2)
    }
}
