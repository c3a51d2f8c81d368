// What `up`, `replica`, `status`, `client` and `bench` share: finding the topology (a file, or the
// embedded default), the data directory, this executable's path, and waiting for signals.

import ArgumentParser
import Dispatch
import Foundation
import GeoCore
import GeoTopology

/// A topology and where it came from.
struct LoadedTopology {
    var topology: Topology
    /// The file it was read from (absolute), or nil for the embedded default.
    var path: String?
    /// Where a relative key directory is resolved: the file's folder (or the working directory).
    var directory: String

    var displayName: String { path ?? EmbeddedTopology.name }

    /// Loads `path`, or the embedded default when nil; prints the error and exits 1 otherwise.
    /// Warns on stderr when the topology turns TLS off (each command loads its topology once).
    static func load(_ path: String?) throws -> LoadedTopology {
        let loaded = try read(path)
        if let warning = plaintextWarning(loaded.topology, source: loaded.displayName) {
            FileHandle.standardError.write(Data((warning + "\n").utf8))
        }
        return loaded
    }

    /// The warning for a topology with `transport: {tls: false}`, nil when TLS is on.
    static func plaintextWarning(_ topology: Topology, source: String) -> String? {
        guard !topology.transport.tls else { return nil }
        return "warning: \(source) sets transport: {tls: false}: connections between replicas and clients are "
            + "plaintext (readable and alterable on the path); use it only for a benchmark A/B on one machine"
    }

    /// The warning for a topology with `keys: dev`, nil with a key directory. Stronger when a
    /// replica's host is not this machine's loopback: there the keys are a network's to take.
    static func developmentKeyWarning(_ topology: Topology, source: String) -> String? {
        guard case .development = topology.keys else { return nil }
        var text = "warning: \(source) uses development keys (keys: dev): anyone who has the topology can derive every "
            + "replica's and client's private key, so they are for one machine only"
        let remote = Set(topology.allReplicas.map(\.host).filter { !isLoopback($0) }).sorted()
        if !remote.isEmpty {
            text += "; its replicas listen on \(remote.joined(separator: ", ")), not loopback: anyone who reaches them can "
                + "impersonate any replica or client. Make keys with `geofabric keys generate` and set keys: {directory: DIR}"
        }
        return text
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// Prints the development-key warning on stderr, once per command that runs replicas.
    func warnIfDevelopmentKeys() {
        if let warning = Self.developmentKeyWarning(topology, source: displayName) {
            FileHandle.standardError.write(Data((warning + "\n").utf8))
        }
    }

    private static func read(_ path: String?) throws -> LoadedTopology {
        do {
            guard let path else {
                return LoadedTopology(topology: EmbeddedTopology.load(), path: nil,
                                      directory: FileManager.default.currentDirectoryPath)
            }
            let absolute = path.hasPrefix("/") ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
            let standardized = (absolute as NSString).standardizingPath
            return LoadedTopology(topology: try TopologyLoader.load(path: standardized), path: standardized,
                                  directory: (standardized as NSString).deletingLastPathComponent)
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    /// The default data directory of a topology: ./geofabric-data/<name>.
    func dataDirectory(_ given: String?) -> String {
        let path = given ?? "geofabric-data/\(topology.name)"
        let absolute = path.hasPrefix("/") ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
        return (absolute as NSString).standardizingPath
    }

    /// The replica called `name`, or an error that suggests the closest name.
    func replica(named name: String) throws -> ReplicaInfo {
        if let info = topology.replica(named: name) { return info }
        let hint = Suggestion.hint(for: name, in: topology.allReplicas.map(\.name))
        FileHandle.standardError.write(Data("error: no replica named '\(name)' in \(displayName)\(hint)\n".utf8))
        throw ExitCode(1)
    }
}

enum Executable {
    /// This program's path, to start replicas as processes of the same binary.
    static var path: String {
        #if os(Linux)
        if let resolved = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return resolved }
        #endif
        let first = CommandLine.arguments[0]
        if first.hasPrefix("/") { return first }
        return (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(first)
    }
}

/// Waits for SIGINT or SIGTERM (the default handlers are replaced, so the process can stop cleanly).
enum Signals {
    static func waitForTermination() async -> Int32 {
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        var sources: [any DispatchSourceSignal] = []
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { continuation.yield(signalNumber) }
            source.resume()
            sources.append(source)
        }
        var iterator = stream.makeAsyncIterator()
        let received = await iterator.next() ?? SIGTERM
        for source in sources { source.cancel() }
        return received
    }
}
