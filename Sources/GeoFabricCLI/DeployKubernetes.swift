// `geofabric deploy kubernetes`: manifests that run a topology's replicas on an existing
// Kubernetes cluster, one pod per replica, each pinned to its region.
//
//   OUT/topology.yaml                     the topology as deployed: each replica's address is its
//                                         Service (<replica>.<namespace>.svc.<domain>:PORT), keys in
//                                         `keys/` beside it. Clients inside the cluster use this file.
//   OUT/manifests/00-namespace.yaml       the namespace
//   OUT/manifests/01-config.yaml          ConfigMap: that topology and the public key manifest
//   OUT/manifests/02-disruption-budgets.yaml   one PodDisruptionBudget per cluster, maxUnavailable: f
//   OUT/manifests/10-<replica>.yaml       per replica: its key (Secret, mode 0600 file), its
//                                         Service, its StatefulSet of one with a volume for data
//
// Why each piece is the way it is:
// - The topology is rewritten (not copied as `deploy bundles` does) because a pod's address is
//   not known in advance; a Service per replica gives a stable name. The replica listens on
//   0.0.0.0 (`--listen-host`) since the Service address is not one of the pod's interfaces.
// - The Service publishes not-ready addresses: consensus traffic must not depend on readiness.
// - The key reaches the replica through an init container that copies it from the Secret into a
//   memory-backed emptyDir with mode 0600: files of a Secret volume are symlinks and, with an
//   fsGroup, group-readable, and the replica refuses a key file readable by others.
// - Pods of one cluster prefer distinct nodes, so a node failure costs a cluster one replica; the
//   PodDisruptionBudget then keeps a voluntary drain from taking a cluster below n - f.

import Foundation
import GeoCore
import GeoCrypto
import GeoTopology
import Yams

public struct KubernetesOptions: Sendable {
    public var image: String
    public var namespace = "geofabric"
    /// Topology region -> the provider's region (the nodes' `topology.kubernetes.io/region` label).
    /// Regions not in the map are used as they are named in the topology.
    public var regionMap: [String: String] = [:]
    public var storageSize = "10Gi"
    public var storageClass: String?
    public var clusterDomain = "cluster.local"
    /// The protocol port of every replica (each has its own Service, so they can share one);
    /// the status port is this plus the topology's status_port_offset.
    public var port = 7000
    public var allowDevelopmentKeys = false
    public init(image: String) { self.image = image }

    /// Parses `oregon=us-west-2,iowa=us-central1`.
    public static func parseRegionMap(_ text: String) throws(DeployError) -> [String: String] {
        var map: [String: String] = [:]
        for entry in text.split(separator: ",", omittingEmptySubsequences: true) {
            let parts = entry.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw .invalidOption(option: "--region-map", reason: "expected REGION=PROVIDER_REGION[,...], found '\(entry)'")
            }
            guard map[parts[0]] == nil else {
                throw .invalidOption(option: "--region-map", reason: "region '\(parts[0])' is mapped twice")
            }
            map[parts[0]] = parts[1]
        }
        return map
    }
}

/// What `deploy kubernetes` wrote.
public struct KubernetesSummary: Codable, Sendable {
    public struct Workload: Codable, Sendable {
        public var replica: String
        public var statefulSet: String
        public var service: String
        public var address: String
        public var region: String
        public var nodeRegion: String
    }
    public var namespace: String
    public var topology: String
    public var manifests: [String]
    public var workloads: [Workload]
    public var disruptionBudgets: [String: Int]
    /// `keys: dev` accepted with --dev: no Secrets, anyone can derive the keys.
    public var developmentKeys: Bool
}

public enum DeployKubernetes {
    static let regionLabel = "topology.kubernetes.io/region"
    static let runAsUser = 10_001
    /// Where the init container puts the topology and the key for the replica (an emptyDir in memory).
    static let runtimeDirectory = "/run/geofabric"
    static let dataDirectory = "/var/lib/geofabric"
    /// Kubernetes' limit on a ConfigMap's data (1 MiB), less room for the object's metadata.
    static let configMapBytesMax = 1_048_576 - 16_384

    public static func write(topologyPath: String, output: String, options: KubernetesOptions) throws(DeployError) -> KubernetesSummary {
        let source = try DeploymentSource.load(path: topologyPath, allowDevelopmentKeys: options.allowDevelopmentKeys)
        try check(options, topology: source.topology)
        let names = try objectNames(source.topology)
        let deployed = try deployedTopology(source, names: names, options: options)
        let manifest = try source.manifestBytes()
        var keys: [String: SigningKey] = [:]
        if source.keyDirectory != nil {
            for replica in source.topology.allReplicas { keys[replica.name] = try source.privateKey(of: replica) }
        }

        try DeployFiles.prepareEmptyDirectory(output)
        let manifests = (output as NSString).appendingPathComponent("manifests")
        try DeployFiles.makeDirectory(manifests, mode: 0o755)
        try DeployFiles.writeNew((output as NSString).appendingPathComponent("topology.yaml"), Array(deployed.text.utf8), mode: 0o644)
        var written: [String] = []
        func put(_ name: String, _ documents: [ManifestValue], mode: mode_t = 0o644) throws(DeployError) {
            try DeployFiles.writeNew((manifests as NSString).appendingPathComponent(name), Array(try ManifestValue.stream(documents).utf8), mode: mode)
            written.append("manifests/" + name)
        }
        let common = commonLabels(source.topology)
        try put("00-namespace.yaml", [["apiVersion": "v1", "kind": "Namespace",
                                       "metadata": ["name": .string(options.namespace), "labels": .map(common)]]])
        var configData: [(String, ManifestValue)] = [("topology.yaml", .text(deployed.text))]
        if !manifest.isEmpty { configData.append(("manifest.json", .text(String(decoding: manifest, as: UTF8.self)))) }
        // Kubernetes refuses a ConfigMap above 1 MiB; the manifest grows with the topology's clients.
        let configBytes = deployed.text.utf8.count + manifest.count
        guard configBytes < configMapBytesMax else {
            throw .invalidOption(option: "clients", reason: "the topology and key manifest take \(configBytes) bytes, above the 1 MiB a ConfigMap may hold; "
                + "lower `clients:` in the topology (each client adds its public key to the manifest)")
        }
        try put("01-config.yaml", [["apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": ["name": "geofabric-topology", "namespace": .string(options.namespace), "labels": .map(common)],
                                    "data": .map(configData)]])
        var budgets: [ManifestValue] = []
        var budgetSummary: [String: Int] = [:]
        for shard in source.topology.shards {
            for cluster in shard.clusters {
                let label = names.cluster[cluster.id] ?? ""
                budgets.append(["apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                                "metadata": ["name": .string(label), "namespace": .string(options.namespace),
                                             "labels": .map(common + [("geofabric.io/cluster", .string(label))])],
                                "spec": ["maxUnavailable": .int(cluster.f),
                                         "selector": ["matchLabels": ["app.kubernetes.io/name": "geofabric",
                                                                      "geofabric.io/cluster": .string(label)]]]])
                budgetSummary[label] = cluster.f
            }
        }
        try put("02-disruption-budgets.yaml", budgets)

        var workloads: [KubernetesSummary.Workload] = []
        for (original, replica) in zip(source.topology.allReplicas, deployed.topology.allReplicas) {
            let name = names.replica[original.name] ?? original.name
            let nodeRegion = options.regionMap[original.region] ?? original.region
            var documents: [ManifestValue] = []
            if let key = keys[original.name] {
                documents.append(["apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                  "metadata": ["name": .string(name + "-key"), "namespace": .string(options.namespace),
                                               "labels": .map(replicaLabels(original, names: names, topology: source.topology))],
                                  "data": ["replica.key": .string(Data((Hex.encode(key.seed) + "\n").utf8).base64EncodedString())]])
            }
            documents.append(service(original, replica: replica, names: names, topology: source.topology, options: options))
            documents.append(statefulSet(original, replica: replica, names: names, topology: source.topology, nodeRegion: nodeRegion,
                                         withKey: keys[original.name] != nil, options: options))
            try put("10-\(name).yaml", documents, mode: keys[original.name] != nil ? 0o600 : 0o644)
            workloads.append(.init(replica: original.name, statefulSet: name, service: name, address: replica.address,
                                   region: original.region, nodeRegion: nodeRegion))
        }
        return KubernetesSummary(namespace: options.namespace, topology: source.topology.name, manifests: written,
                                 workloads: workloads, disruptionBudgets: budgetSummary, developmentKeys: source.keyDirectory == nil)
    }

    // MARK: Checks and names

    static let dnsLabel = #"^[a-z]([-a-z0-9]*[a-z0-9])?$"#
    static let labelValue = #"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"#
    static let quantity = #"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"#

    static func matches(_ text: String, _ pattern: String) -> Bool {
        text.range(of: pattern, options: .regularExpression) != nil
    }

    static func check(_ options: KubernetesOptions, topology: Topology) throws(DeployError) {
        guard !options.image.isEmpty, !options.image.contains(where: \.isWhitespace) else {
            throw .invalidOption(option: "--image", reason: "expected an image reference such as registry.example.com/geofabric:1.0, found '\(options.image)'")
        }
        guard options.namespace.count <= 63, matches(options.namespace, dnsLabel) else {
            throw .invalidOption(option: "--namespace", reason: "'\(options.namespace)' is not a DNS label (lowercase letters, digits and '-', at most 63)")
        }
        guard matches(options.storageSize, quantity) else {
            throw .invalidOption(option: "--storage-size", reason: "'\(options.storageSize)' is not a Kubernetes quantity such as 10Gi")
        }
        if let storageClass = options.storageClass, !matches(storageClass, #"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"#) {
            throw .invalidOption(option: "--storage-class", reason: "'\(storageClass)' is not a valid storage class name")
        }
        guard matches(options.clusterDomain, #"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"#) else {
            throw .invalidOption(option: "--cluster-domain", reason: "'\(options.clusterDomain)' is not a DNS domain")
        }
        // The topology gives every replica one status_port_offset.
        let statusOffset = topology.allReplicas.first.map { $0.statusPort - $0.port } ?? 0
        guard (1...65_535).contains(options.port), options.port + statusOffset <= 65_535 else {
            throw .invalidOption(option: "--port", reason: "\(options.port) (status port \(options.port + statusOffset)) is outside 1...65535")
        }
        let regions = topology.regions.map(\.name)
        for (region, provider) in options.regionMap.sorted(by: { $0.key < $1.key }) {
            guard regions.contains(region) else {
                throw .invalidOption(option: "--region-map", reason: "no region '\(region)' in the topology\(Suggestion.hint(for: region, in: regions))")
            }
            guard provider.count <= 63, matches(provider, labelValue) else {
                throw .invalidOption(option: "--region-map", reason: "'\(provider)' is not a valid label value for \(regionLabel)")
            }
        }
        for region in regions where options.regionMap[region] == nil {
            guard region.count <= 63, matches(region, labelValue) else {
                throw .invalidName(what: "region", name: region, reason: "not a valid label value for \(regionLabel); map it with --region-map")
            }
        }
    }

    struct ObjectNames {
        /// Replica name -> the name of its StatefulSet, Service and (with "-key") Secret.
        var replica: [String: String] = [:]
        /// Cluster -> its label value and PodDisruptionBudget name.
        var cluster: [ClusterID: String] = [:]
    }

    /// A DNS label from a topology name: lowercase, other characters than letters, digits and '-'
    /// made '-'. Names that still fail (too long, collide) are refused rather than truncated.
    static func dnsName(_ name: String) -> String {
        var label = String(name.lowercased().map { ($0.isASCII && ($0.isLetter || $0.isNumber)) ? $0 : "-" })
        while label.hasPrefix("-") { label.removeFirst() }
        while label.hasSuffix("-") { label.removeLast() }
        if let first = label.first, !first.isLetter { label = "r-" + label }
        return label
    }

    static func objectNames(_ topology: Topology) throws(DeployError) -> ObjectNames {
        var names = ObjectNames()
        var used: [String: String] = [:]
        func claim(_ name: String, for owner: String, limit: Int) throws(DeployError) {
            guard !name.isEmpty, name.count <= limit, matches(name, dnsLabel) else {
                throw .invalidName(what: "replica or cluster", name: owner,
                                   reason: "makes the Kubernetes name '\(name)', which is not a DNS label of at most \(limit) characters; shorten the shard or region name")
            }
            if let other = used[name] {
                throw .invalidName(what: "replica or cluster", name: owner, reason: "makes the Kubernetes name '\(name)', as '\(other)' does; rename one")
            }
            used[name] = owner
        }
        for shard in topology.shards {
            for cluster in shard.clusters {
                let clusterName = dnsName("\(shard.name)-\(cluster.region)")
                try claim(clusterName, for: "\(shard.name)-\(cluster.region)", limit: 63)
                names.cluster[cluster.id] = clusterName
                for replica in cluster.replicas {
                    // 52: a StatefulSet's pods carry a revision label of its name plus 11 characters, at most 63.
                    let name = dnsName(replica.name)
                    try claim(name, for: replica.name, limit: 52)
                    names.replica[replica.name] = name
                }
            }
        }
        return names
    }

    // MARK: The topology as deployed

    /// The source topology with each replica at its Service's address and the keys in `keys/`
    /// beside it (or dev keys kept), re-validated. Everything else of the file is kept.
    static func deployedTopology(_ source: DeploymentSource, names: ObjectNames, options: KubernetesOptions) throws(DeployError) -> (text: String, topology: Topology) {
        let text = String(decoding: source.bytes, as: UTF8.self)
        guard let parsed = try? Yams.compose(yaml: text), case var .mapping(root) = parsed,
              case var .sequence(shards) = root["shards"] else {
            throw .topology(TopologyError(.invalidValue, file: source.path, line: nil, column: nil, field: "shards",
                                          message: "cannot rewrite the file's shards for Kubernetes"))
        }
        for (shardIndex, shard) in source.topology.shards.enumerated() {
            guard shards.indices.contains(shardIndex), case var .mapping(shardNode) = shards[shardIndex],
                  case var .sequence(clusters) = shardNode["clusters"] else { continue }
            for (clusterIndex, cluster) in shard.clusters.enumerated() {
                guard clusters.indices.contains(clusterIndex), case var .mapping(clusterNode) = clusters[clusterIndex] else { continue }
                let addresses = cluster.replicas.map { replica -> ManifestValue in
                    let service = names.replica[replica.name] ?? replica.name
                    return .string("\(service).\(options.namespace).svc.\(options.clusterDomain):\(options.port)")
                }
                clusterNode["replicas"] = ManifestValue.list(addresses).node
                clusters[clusterIndex] = .mapping(clusterNode)
            }
            shardNode["clusters"] = .sequence(clusters)
            shards[shardIndex] = .mapping(shardNode)
        }
        root["shards"] = .sequence(shards)
        if source.keyDirectory != nil { root["keys"] = ManifestValue.map([("directory", "keys")]).node }
        let body: String
        do { body = try Yams.serialize(node: .mapping(root)) } catch {
            throw .cannotWrite(path: "topology.yaml", reason: "YAML emitter: \(error)")
        }
        let header = """
            # Made by `geofabric deploy kubernetes` from \((source.path as NSString).lastPathComponent): the same topology with
            # each replica at its Kubernetes Service in namespace \(options.namespace) and the keys in keys/ beside
            # this file. Replicas and clients inside the cluster load this file.

            """
        let deployed: Topology
        do { deployed = try TopologyLoader.parse(text: header + body, file: "topology.yaml") } catch { throw .topology(error) }
        let expected = source.topology.allReplicas.map { replica in
            "\(names.replica[replica.name] ?? replica.name).\(options.namespace).svc.\(options.clusterDomain):\(options.port)"
        }
        guard deployed.allReplicas.map(\.name) == source.topology.allReplicas.map(\.name), deployed.allReplicas.map(\.address) == expected else {
            throw .topology(TopologyError(.invalidValue, file: source.path, line: nil, column: nil, field: "shards",
                                          message: "cannot rewrite every replica's address for Kubernetes (the rewritten file names other replicas or addresses)"))
        }
        return (header + body, deployed)
    }

    // MARK: Objects

    static func commonLabels(_ topology: Topology) -> [(String, ManifestValue)] {
        [("app.kubernetes.io/name", "geofabric"), ("app.kubernetes.io/instance", .string(dnsName(topology.name)))]
    }

    static func replicaLabels(_ replica: ReplicaInfo, names: ObjectNames, topology: Topology) -> [(String, ManifestValue)] {
        commonLabels(topology) + [
            ("geofabric.io/replica", .string(names.replica[replica.name] ?? replica.name)),
            ("geofabric.io/cluster", .string(names.cluster[replica.id.cluster] ?? "")),
        ]
    }

    static func service(_ original: ReplicaInfo, replica: ReplicaInfo, names: ObjectNames, topology: Topology,
                        options: KubernetesOptions) -> ManifestValue {
        let name = names.replica[original.name] ?? original.name
        return ["apiVersion": "v1", "kind": "Service",
                "metadata": ["name": .string(name), "namespace": .string(options.namespace),
                             "labels": .map(replicaLabels(original, names: names, topology: topology))],
                "spec": ["selector": ["app.kubernetes.io/name": "geofabric", "geofabric.io/replica": .string(name)],
                         "publishNotReadyAddresses": true,
                         "ports": [["name": "protocol", "port": .int(replica.port), "targetPort": "protocol", "protocol": "TCP"],
                                   ["name": "status", "port": .int(replica.statusPort), "targetPort": "status", "protocol": "TCP"]]]]
    }

    static func statefulSet(_ original: ReplicaInfo, replica: ReplicaInfo, names: ObjectNames, topology: Topology,
                            nodeRegion: String, withKey: Bool, options: KubernetesOptions) -> ManifestValue {
        let name = names.replica[original.name] ?? original.name
        let labels = replicaLabels(original, names: names, topology: topology)
        let keyFile = "\(runtimeDirectory)/keys/replicas/\(original.name).key"
        var install = "set -eu; mkdir -p \(runtimeDirectory)/keys/replicas; cp /etc/geofabric/topology.yaml \(runtimeDirectory)/topology.yaml"
        if withKey {
            install += "; cp /etc/geofabric/manifest.json \(runtimeDirectory)/keys/manifest.json"
            install += "; install -m 0600 /etc/geofabric-key/replica.key \(keyFile)"
        }
        var initMounts: [ManifestValue] = [["name": "config", "mountPath": "/etc/geofabric", "readOnly": true],
                                           ["name": "runtime", "mountPath": .string(runtimeDirectory)]]
        var volumes: [ManifestValue] = [["name": "config", "configMap": ["name": "geofabric-topology"]],
                                        ["name": "runtime", "emptyDir": ["medium": "Memory", "sizeLimit": "1Mi"]]]
        if withKey {
            initMounts.append(["name": "key", "mountPath": "/etc/geofabric-key", "readOnly": true])
            // 0440: readable by the pod's group (fsGroup) only long enough to be copied.
            volumes.append(["name": "key", "secret": ["secretName": .string(name + "-key"), "defaultMode": 0o440]])
        }
        let containerSecurity: ManifestValue = ["allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                                "capabilities": ["drop": ["ALL"]]]
        var claimSpec: [(String, ManifestValue)] = [("accessModes", ["ReadWriteOnce"]),
                                                    ("resources", ["requests": ["storage": .string(options.storageSize)]])]
        if let storageClass = options.storageClass { claimSpec.append(("storageClassName", .string(storageClass))) }
        let cluster = names.cluster[original.id.cluster] ?? ""
        let pod: ManifestValue = [
            "metadata": ["labels": .map(labels)],
            "spec": [
                "affinity": [
                    "nodeAffinity": ["requiredDuringSchedulingIgnoredDuringExecution": ["nodeSelectorTerms": [
                        ["matchExpressions": [["key": .string(regionLabel), "operator": "In", "values": [.string(nodeRegion)]]]]]]],
                    "podAntiAffinity": ["preferredDuringSchedulingIgnoredDuringExecution": [[
                        "weight": 100,
                        "podAffinityTerm": ["topologyKey": "kubernetes.io/hostname",
                                            "labelSelector": ["matchLabels": ["geofabric.io/cluster": .string(cluster)]]]]]],
                ],
                "securityContext": ["runAsNonRoot": true, "runAsUser": .int(runAsUser), "runAsGroup": .int(runAsUser),
                                    "fsGroup": .int(runAsUser), "seccompProfile": ["type": "RuntimeDefault"]],
                "terminationGracePeriodSeconds": 30,
                "initContainers": [[
                    "name": "install-key", "image": .string(options.image),
                    "command": ["/bin/sh", "-c", .string(install)],
                    "securityContext": containerSecurity,
                    "volumeMounts": .list(initMounts),
                ]],
                "containers": [[
                    "name": "replica", "image": .string(options.image),
                    "args": ["replica", .string("\(runtimeDirectory)/topology.yaml"), "--replica", .string(original.name),
                             "--data-dir", .string(dataDirectory), "--listen-host", "0.0.0.0"],
                    "ports": [["name": "protocol", "containerPort": .int(replica.port), "protocol": "TCP"],
                              ["name": "status", "containerPort": .int(replica.statusPort), "protocol": "TCP"]],
                    "readinessProbe": ["httpGet": ["path": "/status", "port": "status"],
                                       "initialDelaySeconds": 2, "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3],
                    "securityContext": containerSecurity,
                    "volumeMounts": [["name": "runtime", "mountPath": .string(runtimeDirectory), "readOnly": true],
                                     ["name": "data", "mountPath": .string(dataDirectory)]],
                ]],
                "volumes": .list(volumes),
            ],
        ]
        return ["apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": ["name": .string(name), "namespace": .string(options.namespace), "labels": .map(labels)],
                "spec": ["serviceName": .string(name), "replicas": 1, "podManagementPolicy": "Parallel",
                         "selector": ["matchLabels": ["app.kubernetes.io/name": "geofabric", "geofabric.io/replica": .string(name)]],
                         "template": pod,
                         "volumeClaimTemplates": [["metadata": ["name": "data"], "spec": .map(claimSpec)]],
                         "persistentVolumeClaimRetentionPolicy": ["whenDeleted": "Retain", "whenScaled": "Retain"]]]
    }
}
