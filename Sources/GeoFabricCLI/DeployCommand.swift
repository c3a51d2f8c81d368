// `geofabric deploy bundles` and `geofabric deploy kubernetes`: the files an operator needs to run
// a topology on several machines (DeployBundles.swift) or on a Kubernetes cluster
// (DeployKubernetes.swift). Neither starts anything.

import ArgumentParser
import Foundation
import GeoCore

struct DeployCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deploy",
        abstract: "Make the files that run a topology on several machines: per-host bundles or Kubernetes manifests.",
        subcommands: [Bundles.self, Kubernetes.self])

    struct Bundles: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write one directory per replica: the topology, that replica's key only, a systemd unit and a run script.",
            discussion: """
                OUT/<replica>/ holds topology.yaml (the file, unchanged), the key directory the topology names \
                (relative to it) with the public manifest and that replica's private key only (mode 0600), \
                `run` (starts the replica with $GEOFABRIC, else geofabric from PATH; data in $GEOFABRIC_DATA_DIR, \
                else data/ in the bundle), geofabric-<replica>.service (a systemd unit running INSTALL-DIR/<replica>/run) \
                and bundle.json. Copy each directory to the host at its replica's address. Refuses development \
                keys unless --dev, and an existing non-empty OUT.
                """)

        @Argument(help: "The topology file.")
        var topology: String

        @Option(help: "The directory to write the bundles into (must not exist or be empty).")
        var out: String

        @Option(name: .customLong("install-dir"), help: "Where the bundles are installed on the hosts; the systemd units run INSTALL-DIR/<replica>/run.")
        var installDirectory = "/opt/geofabric"

        @Option(help: "The system user the systemd units run as (it must own the installed bundle).")
        var user = "geofabric"

        @Option(help: "The geofabric binary the systemd units run (GEOFABRIC); default: geofabric from PATH.")
        var binary: String?

        @Flag(help: "Accept `keys: dev` (a rehearsal on machines you control: anyone can derive those keys).")
        var dev = false

        @Flag(help: "Print what was written as JSON.")
        var json = false

        func run() throws {
            var options = BundleOptions()
            options.installDirectory = installDirectory
            options.user = user
            options.binary = binary
            options.allowDevelopmentKeys = dev
            try DeployCommands.bundles(topologyPath: topology, output: out, options: options, json: json).emit()
        }
    }

    struct Kubernetes: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write Kubernetes manifests: one StatefulSet of one pod per replica, pinned to its region.",
            discussion: """
                OUT/manifests/ (apply with `kubectl apply -f OUT/manifests/`): a namespace, the topology and \
                public key manifest as a ConfigMap, one Secret per replica key, one Service and one StatefulSet \
                per replica (node affinity on topology.kubernetes.io/region, readiness on /status, a volume claim \
                for the data) and one PodDisruptionBudget per cluster with maxUnavailable: f. OUT/topology.yaml \
                is the topology as deployed (replicas at their Service names) for clients inside the cluster.
                """)

        @Argument(help: "The topology file.")
        var topology: String

        @Option(help: "The container image (built from the Containerfile).")
        var image: String

        @Option(help: "The directory to write into (must not exist or be empty).")
        var out: String

        @Option(help: "The Kubernetes namespace.")
        var namespace = "geofabric"

        @Option(name: .customLong("region-map"), help: "Topology regions to the nodes' topology.kubernetes.io/region values: oregon=us-west-2,iowa=us-central1. Unmapped regions keep their name.")
        var regionMap: String?

        @Option(name: .customLong("storage-size"), help: "The data volume of each replica.")
        var storageSize = "10Gi"

        @Option(name: .customLong("storage-class"), help: "The storage class of the data volumes (default: the cluster's default).")
        var storageClass: String?

        @Option(name: .customLong("cluster-domain"), help: "The cluster's DNS domain.")
        var clusterDomain = "cluster.local"

        @Option(help: "The protocol port of every replica (status: this plus the topology's status_port_offset).")
        var port = 7000

        @Flag(help: "Accept `keys: dev` (a rehearsal: no Secrets, anyone can derive the keys).")
        var dev = false

        @Flag(help: "Print what was written as JSON.")
        var json = false

        func run() throws {
            var options = KubernetesOptions(image: image)
            options.namespace = namespace
            options.storageSize = storageSize
            options.storageClass = storageClass
            options.clusterDomain = clusterDomain
            options.port = port
            options.allowDevelopmentKeys = dev
            try DeployCommands.kubernetes(topologyPath: topology, output: out, options: options, regionMap: regionMap, json: json).emit()
        }
    }
}

public enum DeployCommands {
    public static func bundles(topologyPath: String, output: String, options: BundleOptions, json: Bool) -> CommandOutput {
        var result = CommandOutput()
        do {
            let bundles = try DeployBundles.write(topologyPath: topologyPath, output: output, options: options)
            if options.allowDevelopmentKeys, bundles.first?.files.contains(where: { $0.hasSuffix(".key") }) == false {
                result.err("warning: \(topologyPath) uses development keys (--dev): the bundles carry no keys, since anyone can derive them; rehearsal only")
            }
            if bundles.contains(where: { $0.address.hasPrefix("127.") || $0.address.hasPrefix("localhost:") }) {
                result.err("warning: some replicas are on loopback addresses (replicas given by count): those bundles run on one machine only; "
                    + "list addresses, e.g. replicas: [\"10.0.0.7:7000\", ...], for several hosts")
            }
            if json {
                result.out(JSONOutput.encode(bundles))
            } else {
                result.out("wrote \(bundles.count) bundles to \(output)")
                let width = (bundles.map(\.replica.count).max() ?? 0) + 2
                for bundle in bundles {
                    result.out("  \(bundle.replica.padding(toLength: width, withPad: " ", startingAt: 0))\(bundle.address.padding(toLength: 22, withPad: " ", startingAt: 0))\(bundle.directory)/")
                }
                result.out("copy each directory to its host (as \(options.installDirectory)/<replica>), then there: ./run, or the systemd unit in it")
            }
        } catch {
            result.exitCode = 1
            result.err("error: \(error)")
        }
        return result
    }

    public static func kubernetes(topologyPath: String, output: String, options: KubernetesOptions, regionMap: String?, json: Bool) -> CommandOutput {
        var result = CommandOutput()
        do {
            var options = options
            if let regionMap { options.regionMap = try KubernetesOptions.parseRegionMap(regionMap) }
            let summary = try DeployKubernetes.write(topologyPath: topologyPath, output: output, options: options)
            if summary.developmentKeys {
                result.err("warning: \(topologyPath) uses development keys (--dev): no Secrets are made, anyone who reads the topology can derive every key; rehearsal only")
            }
            if json {
                result.out(JSONOutput.encode(summary))
            } else {
                result.out("wrote \(summary.manifests.count) manifest files for \(summary.workloads.count) replicas of '\(summary.topology)' to \(output)/manifests")
                for workload in summary.workloads {
                    result.out("  \(workload.statefulSet.padding(toLength: 24, withPad: " ", startingAt: 0))region \(workload.region) -> node region \(workload.nodeRegion)")
                }
                for (cluster, f) in summary.disruptionBudgets.sorted(by: { $0.key < $1.key }) {
                    result.out("  PodDisruptionBudget \(cluster): maxUnavailable \(f)")
                }
                result.out("apply: kubectl apply -f \(output)/manifests/   (the replica files hold private keys: mode 0600)")
                result.out("clients in the cluster use \(output)/topology.yaml")
            }
        } catch {
            result.exitCode = 1
            result.err("error: \(error)")
        }
        return result
    }
}
