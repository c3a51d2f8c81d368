// `geofabric keys generate`, `geofabric keys show` and `geofabric keys test-pki`.

import ArgumentParser
import Foundation
import GeoCore
import GeoCrypto
import GeoNet
import GeoTopology
import Logging
import X509

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Make and inspect replica and client keys.",
        subcommands: [Generate.self, Show.self, TestPKI.self])

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write fresh Ed25519 keys for every replica and client of a topology.",
            discussion: """
                Writes DIR/replicas/NAME.key and DIR/clients/client-N.key (mode 0600, hex seeds) and \
                DIR/manifest.json (public keys). Point the topology at it with `keys: {directory: DIR}`. \
                Refuses to overwrite an existing manifest.
                """)

        @OptionGroup var file: TopologyFileArgument

        @Option(help: "The directory to write the keys into.")
        var out: String

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() throws {
            try KeyCommands.generate(topologyPath: file.path, directory: out, json: json).emit()
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the public key of every replica of a topology, from wherever its `keys` setting says.")

        @OptionGroup var file: TopologyFileArgument

        @Flag(help: "Print the keys as JSON.")
        var json = false

        func run() throws {
            try KeyCommands.show(topologyPath: file.path, json: json).emit()
        }
    }
}

extension KeysCommand {
    struct TestPKI: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "test-pki",
            abstract: "Make a test CA and issue every node of a topology a certificate over its identity key.",
            discussion: """
                Writes DIR/ca.pem (the CA bundle), DIR/ca.key (its private key, mode 0600: keep it off the nodes' hosts), \
                DIR/replicas/NAME.pem and DIR/clients/client-N.pem (certificates over the public keys the topology's \
                `keys` name; no private key of a node is read). Point the topology at it with \
                `transport: {ca: DIR/ca.pem, certificates: DIR}`. An existing DIR/ca.pem and ca.key are reused, so \
                certificates can be reissued (--not-before and --days to rehearse expiry). For rehearsals and tests: a \
                production PKI issues the same shape of certificate (see README, "Transport security").
                """)

        @OptionGroup var file: TopologyFileArgument

        @Option(help: "The directory to write the CA and the certificates into.")
        var out: String

        @Option(help: "Days the node certificates are valid.")
        var days = 365

        @Option(help: "Start of the certificates' validity, in days from now, less an hour for clock skew (negative: in the past; write --not-before=-10).")
        var notBefore = 0

        func run() throws {
            try KeyCommands.testPKI(topologyPath: file.path, directory: out, days: days, notBeforeDays: notBefore).emit()
        }
    }
}

/// A required topology file: positional, as in every command, or the older `--topology F`.
struct TopologyFileArgument: ParsableArguments {
    @Argument(help: "The topology file.")
    var topologyFile: String?

    @Option(name: .customLong("topology"), help: .hidden)
    var topologyOption: String?

    var path: String { topologyFile ?? topologyOption ?? "" }

    func validate() throws {
        if topologyFile != nil, topologyOption != nil { throw ValidationError("give the topology once: TOPOLOGY or --topology, not both") }
        if topologyFile == nil, topologyOption == nil { throw ValidationError("missing the topology file (TOPOLOGY)") }
    }
}

public enum KeyCommands {
    static let logger = Logger(label: "geofabric.keys")

    public static func generate(topologyPath: String, directory: String, json: Bool) -> CommandOutput {
        var output = CommandOutput()
        do {
            let topology = try TopologyLoader.load(path: topologyPath)
            try KeyDirectory(path: directory).generate(for: topology)
            let replicas = topology.allReplicas.count
            if json {
                output.out(JSONOutput.encode(["directory": directory, "topology": topology.name,
                                              "replicas": "\(replicas)", "clients": "\(topology.clientCount)"]))
            } else {
                // The topology resolves a relative key directory against its own folder, so print
                // a path that means the same thing there.
                let absolute = URL(fileURLWithPath: directory).standardizedFileURL.path
                output.out("wrote keys for \(replicas) replicas and \(topology.clientCount) clients of '\(topology.name)' to \(absolute)")
                output.out("use them with `keys: {directory: \(absolute)}` in the topology file")
            }
        } catch {
            output.exitCode = 1
            output.err("error: \(error)")
        }
        return output
    }

    /// Loads the key ring of a topology, warning when it is made of development keys.
    public static func keyRing(for topology: Topology, topologyPath: String) throws(KeyError) -> KeyRing {
        if topology.keys == .development {
            logger.warning("topology '\(topology.name)' uses development keys (keys: dev): anyone can derive them from the topology; use them on this machine only")
        }
        let base = (topologyPath as NSString).deletingLastPathComponent
        return try KeyRing.load(for: topology, baseDirectory: base.isEmpty ? "." : base)
    }

    /// `keys test-pki`: a CA (made, or reused from DIR) and a certificate for every replica and client.
    public static func testPKI(topologyPath: String, directory: String, days: Int, notBeforeDays: Int, now: Date = Date()) -> CommandOutput {
        var output = CommandOutput()
        do {
            let topology = try TopologyLoader.load(path: topologyPath)
            let ring = try keyRing(for: topology, topologyPath: topologyPath)
            let caPath = (directory as NSString).appendingPathComponent("ca.pem")
            let caKeyPath = (directory as NSString).appendingPathComponent("ca.key")
            let day: TimeInterval = 86_400
            // An hour earlier than asked: a certificate valid from this very second would be refused
            // by a host whose clock is a little behind (and the dates are stored to the second).
            let start = now + Double(notBeforeDays) * day - 3_600
            let end = start + Double(max(days, 0)) * day
            let authority: CertificateAuthority
            if let certificate = FileManager.default.contents(atPath: caPath), let key = FileManager.default.contents(atPath: caKeyPath) {
                authority = try CertificateAuthority(certificatePEM: String(decoding: certificate, as: UTF8.self),
                                                     privateKeyPEM: String(decoding: key, as: UTF8.self))
            } else {
                // The CA outlives the certificates it issues: ten years from the earlier of now and their start.
                authority = try CertificateAuthority(name: "geofabric test CA \(topology.name)",
                                                     notValidBefore: min(now, start) - day, notValidAfter: max(now, end) + 3650 * day)
                try writeFile(caKeyPath, try authority.privateKeyPEM, mode: 0o600)
                try writeFile(caPath, try authority.certificatePEM, mode: 0o644)
            }
            var issued = 0
            func issue(_ name: String, _ key: VerifyingKey, isClient: Bool) throws {
                let certificate = try authority.issue(name: name, key: key, notValidBefore: start, notValidAfter: end)
                let path = OperatorPKI.certificatePath(directory: directory, identity: name, isClient: isClient)
                try writeFile(path, try certificate.serializeAsPEM().pemString, mode: 0o644)
                issued += 1
            }
            for replica in topology.allReplicas { try issue(replica.name, ring.replicaKeys[Int(replica.number)], isClient: false) }
            for (index, key) in ring.clientKeys.enumerated() { try issue(Topology.clientName(ClientID(UInt32(index))), key, isClient: true) }
            let absolute = URL(fileURLWithPath: directory).standardizedFileURL.path
            output.out("issued \(issued) certificates (\(topology.allReplicas.count) replicas, \(ring.clientKeys.count) clients) of '\(topology.name)' from the CA in \(absolute)/ca.pem")
            output.out("use them with `transport: {ca: \(absolute)/ca.pem, certificates: \(absolute)}` in the topology file")
        } catch {
            output.exitCode = 1
            output.err("error: \(error)")
        }
        return output
    }

    /// Writes `text` to `path` (its folder made as needed), replacing it, with `mode` from the
    /// start (the CA's key is never readable by others, not even briefly).
    static func writeFile(_ path: String, _ text: String, mode: mode_t) throws {
        let folder = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode)
        guard fd >= 0 else { throw KeyError.unreadable(path: path, reason: "cannot create: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard fchmod(fd, mode) == 0 else { throw KeyError.unreadable(path: path, reason: "cannot set its mode") }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw KeyError.unreadable(path: path, reason: "short write") }
    }

    public static func show(topologyPath: String, json: Bool) -> CommandOutput {
        var output = CommandOutput()
        do {
            let topology = try TopologyLoader.load(path: topologyPath)
            let ring = try keyRing(for: topology, topologyPath: topologyPath)
            let rows = topology.allReplicas.map { ($0.name, Hex.encode(ring.replicaKeys[Int($0.number)].bytes)) }
            if json {
                output.out(JSONOutput.encode(Dictionary(uniqueKeysWithValues: rows)))
            } else {
                for (name, key) in rows { output.out("\(name.padding(toLength: 22, withPad: " ", startingAt: 0)) \(key)") }
            }
        } catch {
            output.exitCode = 1
            output.err("error: \(error)")
        }
        return output
    }
}
