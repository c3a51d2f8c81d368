// `geofabric deploy bundles`: what a bundle holds (and never holds), the refusals, and replicas
// started from their bundles' run scripts alone committing a client's put.

import Foundation
import GeoClient
import GeoCore
import GeoCrypto
@testable import GeoFabricCLI
import GeoNode
import GeoTopology
import Logging
import Testing
import GeoTestKit

/// A topology with a fresh key directory beside it (`keys: {directory: keys}`).
struct KeyedTopology {
    let directory: String
    let path: String
    let topology: Topology

    /// `yaml` must not have a `keys:` line; it is added.
    init(_ yaml: String, keysLine: String = "keys: {directory: keys}", generateInto keysDirectory: String = "keys") throws {
        let path = try TestKit.writeTemporary(yaml + "\n" + keysLine + "\n", name: "topology.yaml")
        directory = (path as NSString).deletingLastPathComponent
        self.path = path
        topology = try TopologyLoader.load(path: path)
        try KeyDirectory(path: KeyDirectory.resolve(keysDirectory, base: directory)).generate(for: topology)
    }

    var keyDirectory: String { directory + "/keys" }

    func seedHex(_ identity: String, isClient: Bool) throws -> String {
        Hex.encode(try KeyDirectory(path: keyDirectory).signingKey(identity: identity, isClient: isClient).seed)
    }
}

/// Every regular file under `directory`, relative, sorted.
func filesUnder(_ directory: String) -> [String] {
    let enumerator = FileManager.default.enumerator(atPath: directory)
    var files: [String] = []
    while let next = enumerator?.nextObject() as? String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory + "/" + next, isDirectory: &isDirectory), !isDirectory.boolValue {
            files.append(next)
        }
    }
    return files.sorted()
}

func posixMode(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int) ?? -1
}

let twoRegionYAML = """
    name: bundle-2x4
    regions: [oregon, iowa]
    wan:
      - {between: [oregon, iowa], rtt_ms: 38, mbit_s: 669}
    clients: 8
    base_port: 18600
    shards:
      - name: s0
        clusters:
          - {region: oregon, replicas: 4}
          - {region: iowa, replicas: 4}
    protocol: {batch_size: 20, batch_delay_ms: 2, view_timeout_ms: 1000, remote_timeout_ms: 4000}
    """

@Suite struct DeployBundleTests {
    @Test func eachBundleHoldsTheTopologyAndItsOwnKeyOnly() throws {
        let source = try KeyedTopology(twoRegionYAML)
        defer { try? FileManager.default.removeItem(atPath: source.directory) }
        let out = source.directory + "/bundles"
        let output = DeployCommands.bundles(topologyPath: source.path, output: out, options: BundleOptions(), json: false)
        #expect(output.exitCode == 0, "\(output.standardError)")
        #expect(output.standardOutput.contains("wrote 8 bundles"))
        #expect(output.standardError.contains("loopback"), "replicas by count are on 127.0.0.1: the operator is told")

        let replicas = source.topology.allReplicas.map(\.name)
        #expect(try FileManager.default.contentsOfDirectory(atPath: out).sorted() == replicas.sorted())
        let topologyBytes = FileManager.default.contents(atPath: source.path)
        let manifestBytes = FileManager.default.contents(atPath: source.keyDirectory + "/manifest.json")
        var secrets: [(owner: String, hex: String)] = []
        for name in replicas { secrets.append((name, try source.seedHex(name, isClient: false))) }
        for client in 0..<source.topology.clientCount { secrets.append(("client-\(client)", try source.seedHex("client-\(client)", isClient: true))) }

        for name in replicas {
            let bundle = out + "/" + name
            #expect(filesUnder(bundle) == ["bundle.json", "geofabric-\(name).service", "keys/manifest.json",
                                            "keys/replicas/\(name).key", "run", "topology.yaml"])
            #expect(FileManager.default.contents(atPath: bundle + "/topology.yaml") == topologyBytes, "the topology, byte for byte")
            #expect(FileManager.default.contents(atPath: bundle + "/keys/manifest.json") == manifestBytes)
            #expect(posixMode(bundle + "/keys/replicas/\(name).key") == 0o600)
            #expect(posixMode(bundle + "/keys") == 0o700 && posixMode(bundle + "/keys/replicas") == 0o700)
            #expect(FileManager.default.isExecutableFile(atPath: bundle + "/run"))
            // No file of this bundle holds any private key but this replica's, and that one only in its key file.
            for file in filesUnder(bundle) {
                let text = try String(contentsOfFile: bundle + "/" + file, encoding: .utf8)
                for secret in secrets where text.contains(secret.hex) {
                    #expect(secret.owner == name && file == "keys/replicas/\(name).key", "\(name)/\(file) holds the private key of \(secret.owner)")
                }
            }
            let own = try String(contentsOfFile: bundle + "/keys/replicas/\(name).key", encoding: .utf8)
            #expect(own == (try source.seedHex(name, isClient: false)) + "\n")
            // The replica's key, read the way the daemon reads it, from the bundle alone.
            let ring = try KeyDirectory(path: bundle + "/keys").keyRing(for: source.topology)
            let key = try IdentityKeys.signingKey(for: source.topology, identity: name, isClient: false, baseDirectory: bundle)
            #expect(ring.replicaKey(number: source.topology.replica(named: name)!.number) == key.verifyingKey)

            let run = try String(contentsOfFile: bundle + "/run", encoding: .utf8)
            #expect(run.hasPrefix("#!/bin/sh\n"))
            #expect(run.contains(#"exec "${GEOFABRIC:-geofabric}" replica "$bundle/topology.yaml" --replica '\#(name)'"#))
            let unit = try String(contentsOfFile: bundle + "/geofabric-\(name).service", encoding: .utf8)
            #expect(unit.contains("ExecStart=/opt/geofabric/\(name)/run"))
            #expect(unit.contains("User=geofabric") && unit.contains("[Install]") && unit.contains("KillSignal=SIGTERM"))
            let summary = try JSONDecoder().decode(BundleSummary.self, from: Data(contentsOf: URL(fileURLWithPath: bundle + "/bundle.json")))
            #expect(summary.replica == name && summary.address == source.topology.replica(named: name)!.address)
        }
    }

    @Test func theRunScriptUsesGEOFABRICAndPassesArguments() throws {
        let source = try KeyedTopology(twoRegionYAML)
        defer { try? FileManager.default.removeItem(atPath: source.directory) }
        let out = source.directory + "/bundles"
        _ = try DeployBundles.write(topologyPath: source.path, output: out, options: BundleOptions())
        // A stand-in binary that prints its arguments and the data directory it was given.
        let fake = source.directory + "/fake-geofabric"
        try "#!/bin/sh\necho \"$@\"\n".write(toFile: fake, atomically: true, encoding: .utf8)
        chmod(fake, 0o755)
        let name = source.topology.allReplicas[5].name
        let process = Process()
        process.executableURL = URL(fileURLWithPath: out + "/\(name)/run")
        process.arguments = ["--log-level", "debug"]
        process.environment = ["GEOFABRIC": fake, "PATH": "/usr/bin:/bin"]
        process.currentDirectoryURL = URL(fileURLWithPath: "/")
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        process.waitUntilExit()
        let printed = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let bundle = URL(fileURLWithPath: out + "/\(name)").resolvingSymlinksInPath().path
        #expect(process.terminationStatus == 0)
        #expect(printed == "replica \(bundle)/topology.yaml --replica \(name) --data-dir \(bundle)/data --log-level debug\n")
    }

    @Test func theCommandLineParsesDeploy() throws {
        let bundles = try GeoFabricCommand.parseAsRoot(["deploy", "bundles", "t.yaml", "--out", "b", "--dev", "--install-dir", "/srv/g", "--user", "fabric"])
        let parsed = try #require(bundles as? DeployCommand.Bundles)
        #expect(parsed.topology == "t.yaml" && parsed.out == "b" && parsed.dev && parsed.installDirectory == "/srv/g" && parsed.user == "fabric")
        let kube = try GeoFabricCommand.parseAsRoot(["deploy", "kubernetes", "t.yaml", "--image", "g:1", "--out", "k", "--region-map", "a=b"])
        let kubeParsed = try #require(kube as? DeployCommand.Kubernetes)
        #expect(kubeParsed.image == "g:1" && kubeParsed.regionMap == "a=b" && kubeParsed.namespace == "geofabric")
        #expect(throws: (any Error).self) { try GeoFabricCommand.parseAsRoot(["deploy", "kubernetes", "t.yaml", "--out", "k"]) }
        #expect(throws: (any Error).self) { try GeoFabricCommand.parseAsRoot(["deploy", "bundles", "t.yaml"]) }
    }

    @Test func refusesDevelopmentKeysUnlessDev() throws {
        let path = try TestKit.writeTemporary(twoRegionYAML + "\nkeys: dev\n", name: "topology.yaml")
        let directory = (path as NSString).deletingLastPathComponent
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let refused = DeployCommands.bundles(topologyPath: path, output: directory + "/out", options: BundleOptions(), json: false)
        #expect(refused.exitCode == 1)
        #expect(refused.standardError.contains("development keys") && refused.standardError.contains("--dev"))
        #expect(!FileManager.default.fileExists(atPath: directory + "/out"), "nothing is written")

        var options = BundleOptions()
        options.allowDevelopmentKeys = true
        let accepted = DeployCommands.bundles(topologyPath: path, output: directory + "/out", options: options, json: true)
        #expect(accepted.exitCode == 0, "\(accepted.standardError)")
        #expect(accepted.standardError.contains("carry no keys"))
        let bundles = try JSONDecoder().decode([BundleSummary].self, from: Data(accepted.standardOutput.utf8))
        #expect(bundles.count == 8)
        #expect(filesUnder(directory + "/out/s0-iowa-1") == ["bundle.json", "geofabric-s0-iowa-1.service", "run", "topology.yaml"])
    }

    @Test func refusesAKeyDirectoryOutsideTheTopologysFolder() throws {
        for (line, written) in [("keys: {directory: ../elsewhere}", "../elsewhere"), ("keys: {directory: /etc/geofabric/keys}", "/etc/geofabric/keys")] {
            #expect(throws: DeployError.keyDirectoryOutsideTopology(path: written)) {
                try DeployBundles.bundleRelativeKeyPath(written)
            }
            let path = try TestKit.writeTemporary(twoRegionYAML + "\n" + line + "\n", name: "topology.yaml")
            let directory = (path as NSString).deletingLastPathComponent
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let output = DeployCommands.bundles(topologyPath: path, output: directory + "/out", options: BundleOptions(), json: false)
            #expect(output.exitCode == 1)
            #expect(output.standardError.contains("relative to the topology file"), "\(output.standardError)")
        }
        #expect(try DeployBundles.bundleRelativeKeyPath("./keys/../keys/prod/") == "keys/prod")
    }

    @Test func refusesANonEmptyOutputAndAMismatchedKey() throws {
        let source = try KeyedTopology(twoRegionYAML)
        defer { try? FileManager.default.removeItem(atPath: source.directory) }
        let out = source.directory + "/bundles"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try "x".write(toFile: out + "/something", atomically: true, encoding: .utf8)
        #expect(throws: DeployError.outputNotEmpty(path: out)) {
            try DeployBundles.write(topologyPath: source.path, output: out, options: BundleOptions())
        }
        // Two replicas' key files swapped: the bundles would carry keys the peers refuse.
        let first = source.keyDirectory + "/replicas/s0-oregon-0.key"
        let second = source.keyDirectory + "/replicas/s0-oregon-1.key"
        try FileManager.default.moveItem(atPath: first, toPath: first + ".tmp")
        try FileManager.default.moveItem(atPath: second, toPath: first)
        try FileManager.default.moveItem(atPath: first + ".tmp", toPath: second)
        #expect(throws: DeployError.keyMismatch(replica: "s0-oregon-0", keyFile: source.keyDirectory + "/replicas/s0-oregon-0.key")) {
            try DeployBundles.write(topologyPath: source.path, output: source.directory + "/other", options: BundleOptions())
        }
        #expect(!FileManager.default.fileExists(atPath: source.directory + "/other"), "checked before anything is written")
        // A key readable by others is refused as the daemon refuses it.
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: first)
        let output = DeployCommands.bundles(topologyPath: source.path, output: source.directory + "/third", options: BundleOptions(), json: false)
        #expect(output.exitCode == 1 && output.standardError.contains("readable by others"))
    }

    @Test func badOptionsAreRefused() throws {
        let source = try KeyedTopology(twoRegionYAML)
        defer { try? FileManager.default.removeItem(atPath: source.directory) }
        var options = BundleOptions()
        options.installDirectory = "opt/geofabric"
        #expect(throws: DeployError.self) { try DeployBundles.write(topologyPath: source.path, output: source.directory + "/a", options: options) }
        options = BundleOptions()
        options.user = "root; rm -rf /"
        #expect(throws: DeployError.self) { try DeployBundles.write(topologyPath: source.path, output: source.directory + "/b", options: options) }
        let missing = DeployCommands.bundles(topologyPath: source.directory + "/nope.yaml", output: source.directory + "/c", options: BundleOptions(), json: false)
        #expect(missing.exitCode == 1 && missing.standardError.contains("nope.yaml"))
    }

    static let systemdAnalyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// systemd's own checker accepts the unit (reported as skipped where systemd-analyze is absent).
    @Test(.enabled(if: systemdAnalyze != nil, "systemd-analyze is not installed"))
    func systemdAcceptsTheUnit() throws {
        guard let analyze = Self.systemdAnalyze else { return }
        let source = try KeyedTopology(twoRegionYAML)
        defer { try? FileManager.default.removeItem(atPath: source.directory) }
        let out = source.directory + "/bundles"
        var options = BundleOptions()
        options.installDirectory = out
        options.user = "root"
        _ = try DeployBundles.write(topologyPath: source.path, output: out, options: options)
        let name = "s0-iowa-2"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: analyze)
        process.arguments = ["verify", "--man=no", out + "/\(name)/geofabric-\(name).service"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        process.waitUntilExit()
        let printed = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 0, "systemd-analyze verify: \(printed)")
        #expect(!printed.contains("geofabric-\(name).service:"), "systemd-analyze complains about the unit: \(printed)")
    }
}

/// Real replica processes started by the bundles' `run` scripts, from the bundles alone (the
/// source key directory is gone), commit a signed put; heads agree.
@Suite(.serialized) struct BundleProcessTests {
    @Test func replicasStartedFromTheirBundlesAloneCommitAPut() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: builtTool), "build the tool first (swift build): \(builtTool)")
        let source = try KeyedTopology(twoRegionYAML)
        defer { try? FileManager.default.removeItem(atPath: source.directory) }
        let out = source.directory + "/bundles"
        _ = try DeployBundles.write(topologyPath: source.path, output: out, options: BundleOptions())
        // The operator keeps the client keys; the replicas' private keys exist only in the bundles now.
        let clientKey = try KeyDirectory(path: source.keyDirectory).signingKey(identity: "client-3", isClient: true)
        try FileManager.default.removeItem(atPath: source.keyDirectory)
        try FileManager.default.removeItem(atPath: source.path)

        var processes: [(String, Process)] = []
        defer {
            for (_, process) in processes where process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        for replica in source.topology.allReplicas {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: out + "/\(replica.name)/run")
            // The iowa replicas listen on every interface (--listen-host, passed through by `run`);
            // their peers still dial the topology's 127.0.0.1 addresses.
            process.arguments = ["--log-level", "warning"] + (replica.region == "iowa" ? ["--listen-host", "0.0.0.0"] : [])
            process.environment = ["GEOFABRIC": builtTool, "PATH": "/usr/bin:/bin"]
            process.currentDirectoryURL = URL(fileURLWithPath: "/")
            process.standardOutput = FileHandle.nullDevice
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: {
                let path = out + "/\(replica.name).log"
                _ = FileManager.default.createFile(atPath: path, contents: nil)
                return path
            }()))
            try process.run()
            processes.append((replica.name, process))
        }
        let targets = source.topology.allReplicas.map { StatusTarget($0) }
        var answered = 0
        for _ in 0..<240 where answered < targets.count {
            try await Task.sleep(for: .milliseconds(250))
            let exited = processes.filter { !$0.1.isRunning }.map(\.0)
            if !exited.isEmpty {
                let logs = exited.map { (try? String(contentsOfFile: out + "/\($0).log", encoding: .utf8)) ?? "" }
                Issue.record("replicas exited: \(exited): \(logs)")
                return
            }
            answered = await StatusClient.fetchAll(targets, timeout: .seconds(1)).filter { (try? $0.result.get()) != nil }.count
        }
        #expect(answered == 8, "every replica started from its bundle answers /status")

        let keys = try KeyDirectory(path: out + "/s0-oregon-0/keys").keyRing(for: source.topology)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        for (index, cluster) in source.topology.shards[0].clusters.enumerated() {
            let client = FabricClient(topology: source.topology, keys: keys, client: ClientID(3), key: clientKey, cluster: cluster, logger: logger)
            await client.start()
            let done = try await client.submit(.put(key: Array("bundle-\(index)".utf8), value: Array("v\(index)".utf8)), timeout: .seconds(30))
            #expect(done.result == .stored, "put through \(cluster.region)")
            await client.shutdown()
        }
        var heads: Set<String> = []
        var heights: [UInt64] = []
        for _ in 0..<120 {
            let statuses = await StatusClient.fetchAll(targets, timeout: .seconds(2)).compactMap { try? $0.result.get() }
            heads = Set(statuses.map(\.head))
            heights = statuses.map(\.height)
            if statuses.count == 8, heads.count == 1, heights.allSatisfy({ $0 >= 2 }) { break }
            try await Task.sleep(for: .milliseconds(250))
        }
        #expect(heights.count == 8 && heads.count == 1 && heights.allSatisfy { $0 >= 2 }, "heights \(heights), \(heads.count) heads")
        for (name, process) in processes {
            process.terminate()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "\(name) stops cleanly on SIGTERM")
            #expect(FileManager.default.fileExists(atPath: out + "/\(name)/data/\(name)/replica.log"), "data in the bundle's data/")
        }
    }
}
