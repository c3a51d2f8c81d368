// `geofabric deploy kubernetes`: the manifests pass the Kubernetes object schema (tools/k8s-validate.py,
// strict), each replica's pod is pinned to its region, one PodDisruptionBudget per cluster with
// maxUnavailable f, the keys reach the replica where it reads them, and bad input is refused.

import Foundation
import GeoCore
import GeoCrypto
@testable import GeoFabricCLI
import GeoTopology
import Testing
import Yams
import GeoTestKit

let threeRegionYAML = """
    name: kube-3
    regions: [oregon, iowa, belgium]
    wan:
      - {between: [oregon, iowa], rtt_ms: 38, mbit_s: 669}
      - {between: [oregon, belgium], rtt_ms: 136, mbit_s: 194}
      - {between: [iowa, belgium], rtt_ms: 98, mbit_s: 243}
    clients: 4
    shards:
      - name: s0
        clusters:
          - {region: oregon, replicas: 4}
          - {region: iowa, replicas: 7}
          - {region: belgium, replicas: 4}
    """

/// The checker's python3: GEOFABRIC_K8S_PYTHON, else the virtualenv under .build, which
/// tools/k8s-validate-env.sh creates on a first run (so `swift test` needs no set-up of its own).
func kubernetesCheckerPython() -> String? {
    if let python = ProcessInfo.processInfo.environment["GEOFABRIC_K8S_PYTHON"] { return python }
    let venv = TestKit.repositoryRoot + "/.build/k8s-validate/bin/python3"
    let setup = Process()
    setup.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    setup.arguments = ["bash", TestKit.repositoryRoot + "/tools/k8s-validate-env.sh"]
    setup.standardOutput = FileHandle.nullDevice
    setup.standardError = FileHandle.nullDevice
    guard (try? setup.run()) != nil else { return nil }
    setup.waitUntilExit()
    return FileManager.default.isExecutableFile(atPath: venv) ? venv : nil
}

/// The schema checker: `python3 tools/k8s-validate.py PATH`; its exit status and output.
func runKubernetesSchemaCheck(_ path: String) throws -> (status: Int32, output: String) {
    let python = kubernetesCheckerPython()
    let process = Process()
    if let python {
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [TestKit.repositoryRoot + "/tools/k8s-validate.py", path]
    } else {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", TestKit.repositoryRoot + "/tools/k8s-validate.py", path]
    }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, output)
}

/// Every object of the YAML files under `directory`, with the file it came from.
func kubernetesObjects(_ directory: String) throws -> [(file: String, object: [String: Any])] {
    var objects: [(String, [String: Any])] = []
    for file in filesUnder(directory) where file.hasSuffix(".yaml") {
        let text = try String(contentsOfFile: directory + "/" + file, encoding: .utf8)
        for document in try Yams.load_all(yaml: text) {
            if let object = document as? [String: Any] { objects.append((file, object)) }
        }
    }
    return objects
}

/// `value` at a path of map keys and list indices.
func lookup(_ value: Any?, _ path: Any...) -> Any? {
    var current = value
    for step in path {
        if let key = step as? String { current = (current as? [String: Any])?[key] }
        else if let index = step as? Int, let list = current as? [Any], list.indices.contains(index) { current = list[index] }
        else { return nil }
    }
    return current
}

@Suite struct DeployKubernetesTests {
    func generate(_ options: KubernetesOptions = KubernetesOptions(image: "registry.example.com/geofabric:1.0"),
                  regionMap: String? = "oregon=us-west-2,iowa=us-central1") throws -> (KeyedTopology, String, CommandOutput) {
        let source = try KeyedTopology(threeRegionYAML)
        let out = source.directory + "/k8s"
        let output = DeployCommands.kubernetes(topologyPath: source.path, output: out, options: options, regionMap: regionMap, json: false)
        return (source, out, output)
    }

    @Test func manifestsPassTheKubernetesSchema() throws {
        let (source, out, output) = try generate()
        defer { try? FileManager.default.removeItem(atPath: source.directory) }
        #expect(output.exitCode == 0, "\(output.standardError)")
        let check = try runKubernetesSchemaCheck(out + "/manifests")
        if check.status == 3 {
            Issue.record("the Kubernetes schema checker could not be installed (tools/k8s-validate-env.sh: a virtualenv with kubernetes-validate from PyPI): \(check.output)")
            return
        }
        #expect(check.status == 0, "tools/k8s-validate.py: \(check.output)")
        // 1 namespace + 1 config map + 3 budgets + 15 x (secret, service, stateful set), each against two versions.
        #expect(check.output.contains("50 objects, 0 failures"), "\(check.output)")

        // The checker is not a rubber stamp: an unknown field, a wrong type, a missing field fail.
        let broken = source.directory + "/broken"
        try FileManager.default.createDirectory(atPath: broken, withIntermediateDirectories: true)
        let replicaFile = try String(contentsOfFile: out + "/manifests/10-s0-iowa-3.yaml", encoding: .utf8)
        for (index, mutation) in [("  replicas: 1\n", "  replica: 1\n"), ("  replicas: 1\n", "  replicas: one\n"),
                                  ("  serviceName: s0-iowa-3\n", "")].enumerated() {
            #expect(replicaFile.contains(mutation.0))
            let file = broken + "/\(index).yaml"
            try replicaFile.replacingOccurrences(of: mutation.0, with: mutation.1).write(toFile: file, atomically: true, encoding: .utf8)
            let refused = try runKubernetesSchemaCheck(file)
            #expect(refused.status == 1 && refused.output.contains("FAIL"), "mutation \(index) passed: \(refused.output)")
        }
    }

    @Test func eachReplicaIsPinnedToItsRegionWithOneBudgetPerCluster() throws {
        let (source, out, output) = try generate()
        defer { try? FileManager.default.removeItem(atPath: source.directory) }
        #expect(output.exitCode == 0, "\(output.standardError)")
        #expect(filesUnder(out).filter { !$0.hasPrefix("manifests/10-") } == [
            "manifests/00-namespace.yaml", "manifests/01-config.yaml", "manifests/02-disruption-budgets.yaml", "topology.yaml"])
        let objects = try kubernetesObjects(out + "/manifests")
        func all(_ kind: String) -> [[String: Any]] { objects.filter { $0.object["kind"] as? String == kind }.map(\.object) }
        #expect(all("Namespace").count == 1 && all("ConfigMap").count == 1)
        #expect(objects.allSatisfy { $0.object["kind"] as? String == "Namespace" || lookup($0.object, "metadata", "namespace") as? String == "geofabric" })
        let sets = all("StatefulSet")
        #expect(sets.count == 15 && all("Service").count == 15 && all("Secret").count == 15)

        let expectedRegion = ["oregon": "us-west-2", "iowa": "us-central1", "belgium": "belgium"]
        for replica in source.topology.allReplicas {
            guard let set = sets.first(where: { lookup($0, "metadata", "name") as? String == replica.name }) else {
                Issue.record("no StatefulSet for \(replica.name)")
                continue
            }
            #expect(lookup(set, "spec", "replicas") as? Int == 1)
            let pod = lookup(set, "spec", "template", "spec")
            let term = lookup(pod, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms", 0,
                              "matchExpressions", 0)
            #expect(lookup(term, "key") as? String == "topology.kubernetes.io/region")
            #expect(lookup(term, "operator") as? String == "In")
            #expect(lookup(term, "values") as? [String] == [expectedRegion[replica.region]!], "\(replica.name) pinned to its region")
            let container = lookup(pod, "containers", 0)
            #expect(lookup(container, "readinessProbe", "httpGet", "path") as? String == "/status")
            #expect(lookup(container, "readinessProbe", "httpGet", "port") as? String == "status")
            #expect(lookup(container, "ports", 1, "name") as? String == "status" && lookup(container, "ports", 1, "containerPort") as? Int == 8000)
            let arguments = lookup(container, "args") as? [String] ?? []
            #expect(arguments == ["replica", "/run/geofabric/topology.yaml", "--replica", replica.name,
                                  "--data-dir", "/var/lib/geofabric", "--listen-host", "0.0.0.0"])
            #expect(lookup(set, "spec", "volumeClaimTemplates", 0, "metadata", "name") as? String == "data")
            #expect(lookup(set, "spec", "volumeClaimTemplates", 0, "spec", "resources", "requests", "storage") as? String == "10Gi")
            #expect(lookup(container, "volumeMounts", 1, "name") as? String == "data"
                    && lookup(container, "volumeMounts", 1, "mountPath") as? String == "/var/lib/geofabric")
            // Its Service selects exactly its pod and exposes both ports.
            let service = all("Service").first { lookup($0, "metadata", "name") as? String == replica.name }
            let selector = lookup(service, "spec", "selector") as? [String: String] ?? [:]
            let podLabels = lookup(set, "spec", "template", "metadata", "labels") as? [String: String] ?? [:]
            #expect(!selector.isEmpty && selector.allSatisfy { podLabels[$0.key] == $0.value })
            #expect(lookup(service, "spec", "publishNotReadyAddresses") as? Bool == true)
            #expect(lookup(service, "spec", "ports", 0, "port") as? Int == 7000 && lookup(service, "spec", "ports", 1, "port") as? Int == 8000)
        }

        // One budget per cluster, maxUnavailable f, selecting exactly that cluster's n pods.
        let budgets = all("PodDisruptionBudget")
        #expect(budgets.count == 3)
        for cluster in source.topology.shards[0].clusters {
            let budget = budgets.first { lookup($0, "metadata", "name") as? String == "s0-\(cluster.region)" }
            #expect(lookup(budget, "spec", "maxUnavailable") as? Int == cluster.f, "\(cluster.region): f = \(cluster.f)")
            let selector = lookup(budget, "spec", "selector", "matchLabels") as? [String: String] ?? [:]
            let selected = sets.filter { set in
                let labels = lookup(set, "spec", "template", "metadata", "labels") as? [String: String] ?? [:]
                return !selector.isEmpty && selector.allSatisfy { labels[$0.key] == $0.value }
            }
            #expect(selected.count == cluster.n, "the budget of \(cluster.region) selects its \(cluster.n) pods")
        }
        #expect(source.topology.shards[0].clusters.map(\.f) == [1, 2, 1])
    }

    /// What the init container does, done here by hand from the manifests: the replica finds the
    /// deployed topology, the manifest and its own key where it reads them, and they match.
    @Test func theKeysReachTheReplicaWhereItReadsThem() throws {
        let (source, out, output) = try generate()
        defer { try? FileManager.default.removeItem(atPath: source.directory) }
        #expect(output.exitCode == 0, "\(output.standardError)")
        let deployedText = try String(contentsOfFile: out + "/topology.yaml", encoding: .utf8)
        let deployed = try TopologyLoader.parse(text: deployedText, file: "topology.yaml")
        #expect(deployed.allReplicas.map(\.name) == source.topology.allReplicas.map(\.name))
        #expect(deployed.allReplicas.allSatisfy { $0.host == "\($0.name).geofabric.svc.cluster.local" && $0.port == 7000 && $0.statusPort == 8000 })
        #expect(deployed.keys == .directory("keys"))
        #expect(deployed.parameters == source.topology.parameters && deployed.wan == source.topology.wan && deployed.clientCount == 4)

        let objects = try kubernetesObjects(out + "/manifests")
        let config = objects.first { $0.object["kind"] as? String == "ConfigMap" }?.object
        #expect(lookup(config, "data", "topology.yaml") as? String == deployedText)
        let manifest = try String(contentsOfFile: source.keyDirectory + "/manifest.json", encoding: .utf8)
        #expect(lookup(config, "data", "manifest.json") as? String == manifest)

        for name in ["s0-oregon-0", "s0-iowa-6"] {
            let file = "10-\(name).yaml"
            #expect(posixMode(out + "/manifests/" + file) == 0o600, "a file holding a private key is not readable by others")
            let secret = objects.first { $0.file == file && $0.object["kind"] as? String == "Secret" }?.object
            let encoded = lookup(secret, "data", "replica.key") as? String ?? ""
            let keyText = String(decoding: Data(base64Encoded: encoded) ?? Data(), as: UTF8.self)
            #expect(keyText == (try source.seedHex(name, isClient: false)) + "\n")
            // No other private key in this replica's file.
            let fileText = try String(contentsOfFile: out + "/manifests/" + file, encoding: .utf8)
            for other in source.topology.allReplicas.map(\.name) where other != name {
                let otherEncoded = Data(((try source.seedHex(other, isClient: false)) + "\n").utf8).base64EncodedString()
                #expect(!fileText.contains(otherEncoded))
            }
            // The init container's script, run here against a stand-in for its volumes.
            let set = objects.first { $0.file == file && $0.object["kind"] as? String == "StatefulSet" }?.object
            let script = lookup(set, "spec", "template", "spec", "initContainers", 0, "command", 2) as? String ?? ""
            let root = source.directory + "/pod-\(name)"
            try FileManager.default.createDirectory(atPath: root + "/etc/geofabric", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: root + "/etc/geofabric-key", withIntermediateDirectories: true)
            try deployedText.write(toFile: root + "/etc/geofabric/topology.yaml", atomically: true, encoding: .utf8)
            try manifest.write(toFile: root + "/etc/geofabric/manifest.json", atomically: true, encoding: .utf8)
            try keyText.write(toFile: root + "/etc/geofabric-key/replica.key", atomically: true, encoding: .utf8)
            let rooted = script.replacingOccurrences(of: "/etc/", with: root + "/etc/").replacingOccurrences(of: "/run/", with: root + "/run/")
            let shell = Process()
            shell.executableURL = URL(fileURLWithPath: "/bin/sh")
            shell.arguments = ["-c", rooted]
            try shell.run()
            shell.waitUntilExit()
            #expect(shell.terminationStatus == 0, "init script: \(rooted)")
            let runtime = root + "/run/geofabric"
            let loaded = try TopologyLoader.load(path: runtime + "/topology.yaml")
            let ring = try KeyRing.load(for: loaded, baseDirectory: runtime)
            let key = try IdentityKeys.signingKey(for: loaded, identity: name, isClient: false, baseDirectory: runtime)
            #expect(ring.replicaKey(number: loaded.replica(named: name)!.number) == key.verifyingKey)
            #expect(posixMode(runtime + "/keys/replicas/\(name).key") == 0o600)
        }
    }

    @Test func badInputIsRefused() throws {
        let cases: [(KubernetesOptions, String?, String)] = [
            (KubernetesOptions(image: "geofabric:1"), "oregonn=us-west-2", "no region 'oregonn' in the topology (did you mean 'oregon'?)"),
            (KubernetesOptions(image: "geofabric:1"), "oregon", "expected REGION=PROVIDER_REGION"),
            (KubernetesOptions(image: "geofabric:1"), "oregon=us west", "not a valid label value"),
            (KubernetesOptions(image: ""), nil, "--image"),
            ({ var o = KubernetesOptions(image: "geofabric:1"); o.namespace = "Geo_Fabric"; return o }(), nil, "--namespace"),
            ({ var o = KubernetesOptions(image: "geofabric:1"); o.storageSize = "ten gigs"; return o }(), nil, "--storage-size"),
            ({ var o = KubernetesOptions(image: "geofabric:1"); o.port = 65_000; return o }(), nil, "--port"),
        ]
        for (options, regionMap, message) in cases {
            let (source, out, output) = try generate(options, regionMap: regionMap)
            defer { try? FileManager.default.removeItem(atPath: source.directory) }
            #expect(output.exitCode == 1, "accepted: \(message)")
            #expect(output.standardError.contains(message), "\(output.standardError)")
            #expect(!FileManager.default.fileExists(atPath: out), "nothing written")
        }
        let path = try TestKit.writeTemporary(threeRegionYAML + "\nkeys: dev\n", name: "topology.yaml")
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let out = (path as NSString).deletingLastPathComponent + "/k8s"
        let refused = DeployCommands.kubernetes(topologyPath: path, output: out, options: KubernetesOptions(image: "g:1"), regionMap: nil, json: false)
        #expect(refused.exitCode == 1 && refused.standardError.contains("development keys"))
        var dev = KubernetesOptions(image: "g:1")
        dev.allowDevelopmentKeys = true
        let accepted = DeployCommands.kubernetes(topologyPath: path, output: out, options: dev, regionMap: nil, json: true)
        #expect(accepted.exitCode == 0, "\(accepted.standardError)")
        #expect(accepted.standardError.contains("development keys (--dev)"))
        let objects = try kubernetesObjects(out + "/manifests")
        #expect(!objects.contains { $0.object["kind"] as? String == "Secret" }, "development keys: no Secrets")
        #expect(try TopologyLoader.load(path: out + "/topology.yaml").keys == .development)
    }

    @Test func aKeyManifestTooLargeForAConfigMapIsRefused() throws {
        let source = try KeyedTopology(threeRegionYAML.replacingOccurrences(of: "clients: 4", with: "clients: 13000"))
        defer { try? FileManager.default.removeItem(atPath: source.directory) }
        let output = DeployCommands.kubernetes(topologyPath: source.path, output: source.directory + "/k8s",
                                               options: KubernetesOptions(image: "g:1"), regionMap: nil, json: false)
        #expect(output.exitCode == 1 && output.standardError.contains("1 MiB"), "\(output.standardError)")
        #expect(!FileManager.default.fileExists(atPath: source.directory + "/k8s/manifests/01-config.yaml"))
    }

    @Test func namesThatAreNotDNSLabelsAreMadeSoOrRefused() throws {
        #expect(DeployKubernetes.dnsName("S_0.eu-Paris-3") == "s-0-eu-paris-3")
        #expect(DeployKubernetes.dnsName("0shard-x-1") == "r-0shard-x-1")
        let long = String(repeating: "a", count: 50)
        let yaml = threeRegionYAML.replacingOccurrences(of: "name: s0", with: "name: \(long)")
        let source = try KeyedTopology(yaml)
        defer { try? FileManager.default.removeItem(atPath: source.directory) }
        let output = DeployCommands.kubernetes(topologyPath: source.path, output: source.directory + "/k8s",
                                               options: KubernetesOptions(image: "g:1"), regionMap: nil, json: false)
        #expect(output.exitCode == 1 && output.standardError.contains("at most 52 characters"), "\(output.standardError)")
    }
}
