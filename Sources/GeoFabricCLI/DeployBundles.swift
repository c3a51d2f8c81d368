// `geofabric deploy bundles`: one directory per replica holding everything one host needs to run
// that replica, and nothing more.
//
//   OUT/<replica>/topology.yaml                 the topology file, byte for byte
//   OUT/<replica>/<key dir>/manifest.json       the public keys of every replica and client
//   OUT/<replica>/<key dir>/replicas/<replica>.key   this replica's private key only (mode 0600)
//   OUT/<replica>/run                           starts the replica: $GEOFABRIC, else geofabric from PATH
//   OUT/<replica>/geofabric-<replica>.service   a systemd unit that runs `run`
//   OUT/<replica>/bundle.json                   what the bundle is for (replica, addresses, files)
//
// The topology is copied unchanged rather than rewritten: every process of a deployment must load
// the same topology (the handshake compares fingerprints, and the fingerprint covers the key
// directory as written), so the bundle places the keys where the topology already says they are,
// relative to the topology file. That is why the key directory must be a relative path inside the
// topology's folder.

import Foundation
import GeoCore
import GeoCrypto
import GeoTopology

/// Why deployment files could not be made. Each case names what to change.
public enum DeployError: Error, Equatable, Sendable, CustomStringConvertible {
    case topology(TopologyError)
    case keys(KeyError)
    case developmentKeys(topology: String)
    case keyDirectoryOutsideTopology(path: String)
    case keyMismatch(replica: String, keyFile: String)
    case outputNotEmpty(path: String)
    case cannotWrite(path: String, reason: String)
    case invalidOption(option: String, reason: String)
    case invalidName(what: String, name: String, reason: String)

    public var description: String {
        switch self {
        case let .topology(error): return "\(error)"
        case let .keys(error): return "keys: \(error)"
        case let .developmentKeys(topology):
            return "\(topology) uses development keys (keys: dev), which anyone who reads the topology can derive; "
                + "make real ones with `geofabric keys generate \(topology) --out keys` and `keys: {directory: keys}`, "
                + "or pass --dev for a rehearsal"
        case let .keyDirectoryOutsideTopology(path):
            return "keys: {directory: \(path)}: bundles need a key directory given relative to the topology file and inside its folder "
                + "(for example `keys: {directory: keys}`), so that every host, client and operator loads the same topology file "
                + "with the keys beside it; move the directory and change the topology"
        case let .keyMismatch(replica, keyFile):
            return "\(keyFile): the private key of \(replica) does not match its public key in the manifest"
        case let .outputNotEmpty(path): return "\(path) exists and is not empty; refusing to overwrite (remove it or choose another --out)"
        case let .cannotWrite(path, reason): return "\(path): cannot write: \(reason)"
        case let .invalidOption(option, reason): return "\(option): \(reason)"
        case let .invalidName(what, name, reason): return "\(what) '\(name)': \(reason)"
        }
    }
}

/// Where a deployment's inputs are: the topology file, its model, and its keys.
struct DeploymentSource {
    /// The topology file, absolute.
    let path: String
    /// The file's bytes, to copy unchanged.
    let bytes: [UInt8]
    let topology: Topology
    /// The key directory (absolute), nil with development keys.
    let keyDirectory: String?
    /// The public keys, checked against the topology.
    let keyRing: KeyRing

    /// Reads and validates the topology and, unless it uses development keys (refused without
    /// `allowDevelopmentKeys`), its key directory's manifest.
    /// `keysBesideTopology` refuses, before reading any key, a key directory that is not relative
    /// to the topology file and inside its folder (bundles recreate it beside their copy).
    static func load(path given: String, allowDevelopmentKeys: Bool, keysBesideTopology: Bool = false) throws(DeployError) -> DeploymentSource {
        let absolute = given.hasPrefix("/") ? given : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(given)
        let path = (absolute as NSString).standardizingPath
        let topology: Topology
        do { topology = try TopologyLoader.load(path: path) } catch { throw .topology(error) }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .cannotWrite(path: path, reason: "cannot read the topology file")
        }
        let base = (path as NSString).deletingLastPathComponent
        switch topology.keys {
        case .development:
            guard allowDevelopmentKeys else { throw .developmentKeys(topology: given) }
            return DeploymentSource(path: path, bytes: Array(data), topology: topology, keyDirectory: nil,
                                    keyRing: KeyRing.development(for: topology))
        case let .directory(directory):
            if keysBesideTopology { _ = try DeployBundles.bundleRelativeKeyPath(directory) }
            let resolved = KeyDirectory.resolve(directory, base: base)
            do {
                let ring = try KeyDirectory(path: resolved).keyRing(for: topology)
                return DeploymentSource(path: path, bytes: Array(data), topology: topology, keyDirectory: resolved, keyRing: ring)
            } catch {
                throw .keys(error)
            }
        }
    }

    /// The private key of `replica`, read from the key directory (mode checked) and checked
    /// against the manifest: a bundle must never carry a key its peers would not accept.
    func privateKey(of replica: ReplicaInfo) throws(DeployError) -> SigningKey {
        guard let keyDirectory else {
            return SigningKey.development(topology: topology.name, identity: replica.name)
        }
        let directory = KeyDirectory(path: keyDirectory)
        let key: SigningKey
        do { key = try directory.signingKey(identity: replica.name, isClient: false) } catch { throw .keys(error) }
        guard key.verifyingKey == keyRing.replicaKey(number: replica.number) else {
            throw .keyMismatch(replica: replica.name, keyFile: "\(keyDirectory)/replicas/\(replica.name).key")
        }
        return key
    }

    /// The manifest's bytes, copied unchanged.
    func manifestBytes() throws(DeployError) -> [UInt8] {
        guard let keyDirectory else { return [] }
        let file = (keyDirectory as NSString).appendingPathComponent("manifest.json")
        guard let data = FileManager.default.contents(atPath: file) else {
            throw .keys(.unreadable(path: file, reason: "no such file"))
        }
        return Array(data)
    }
}

/// What `deploy bundles` is asked for.
public struct BundleOptions: Sendable {
    /// Where the bundles are installed on each host: the systemd unit runs INSTALL/<replica>/run.
    public var installDirectory = "/opt/geofabric"
    /// The system user the unit runs as (it must own the bundle, whose key is mode 0600).
    public var user = "geofabric"
    /// The unit's GEOFABRIC (the binary); nil leaves it to PATH.
    public var binary: String?
    /// Accept `keys: dev` (a rehearsal: the bundles then carry no keys, since anyone can derive them).
    public var allowDevelopmentKeys = false
    public init() {}
}

/// One bundle written.
public struct BundleSummary: Codable, Sendable, Equatable {
    public var replica: String
    public var shard: String
    public var region: String
    public var address: String
    public var statusAddress: String
    public var directory: String
    public var files: [String]

    enum CodingKeys: String, CodingKey {
        case replica, shard, region, address, directory, files
        case statusAddress = "status_address"
    }
}

public enum DeployBundles {
    static let topologyFileName = "topology.yaml"
    static let runFileName = "run"

    static func unitFileName(_ replica: String) -> String { "geofabric-\(replica).service" }

    /// Writes one bundle per replica of the topology at `topologyPath` into `output` (which must
    /// not exist or be empty). Returns what it wrote, in topology order.
    public static func write(topologyPath: String, output: String, options: BundleOptions) throws(DeployError) -> [BundleSummary] {
        let source = try DeploymentSource.load(path: topologyPath, allowDevelopmentKeys: options.allowDevelopmentKeys,
                                               keysBesideTopology: true)
        guard options.installDirectory.hasPrefix("/") else {
            throw .invalidOption(option: "--install-dir", reason: "must be an absolute path (systemd needs one), found '\(options.installDirectory)'")
        }
        guard options.user.range(of: #"^[a-z_][a-z0-9_-]*$"#, options: .regularExpression) != nil else {
            throw .invalidOption(option: "--user", reason: "'\(options.user)' is not a valid system user name")
        }
        if let binary = options.binary, !binary.hasPrefix("/") {
            throw .invalidOption(option: "--binary", reason: "must be an absolute path, found '\(binary)'")
        }
        // The relative key directory as written in the topology: the bundle recreates it beside its copy.
        let keyPath: String?
        if case let .directory(written) = source.topology.keys {
            keyPath = try bundleRelativeKeyPath(written)
        } else {
            keyPath = nil
        }
        let manifest = try source.manifestBytes()
        // Read and check every key before writing anything: a bad key leaves no half-made output.
        var keys: [String: SigningKey] = [:]
        for replica in source.topology.allReplicas { keys[replica.name] = try source.privateKey(of: replica) }

        try DeployFiles.prepareEmptyDirectory(output)
        var summaries: [BundleSummary] = []
        for replica in source.topology.allReplicas {
            let directory = (output as NSString).appendingPathComponent(replica.name)
            try DeployFiles.makeDirectory(directory, mode: 0o755)
            var files: [String] = []
            func put(_ relative: String, _ bytes: [UInt8], mode: mode_t) throws(DeployError) {
                try DeployFiles.writeNew((directory as NSString).appendingPathComponent(relative), bytes, mode: mode)
                files.append(relative)
            }
            try put(topologyFileName, source.bytes, mode: 0o644)
            if let keyPath, let key = keys[replica.name] {
                try DeployFiles.makeDirectory((directory as NSString).appendingPathComponent(keyPath), mode: 0o700)
                try DeployFiles.makeDirectory((directory as NSString).appendingPathComponent(keyPath + "/replicas"), mode: 0o700)
                try put(keyPath + "/manifest.json", manifest, mode: 0o644)
                try put(keyPath + "/replicas/\(replica.name).key", Array((Hex.encode(key.seed) + "\n").utf8), mode: 0o600)
            }
            try put(runFileName, Array(runScript(replica: replica, topology: source.topology).utf8), mode: 0o755)
            try put(unitFileName(replica.name), Array(systemdUnit(replica: replica, topology: source.topology, options: options).utf8),
                    mode: 0o644)
            let shardName = source.topology.shard(replica.id.cluster.shard)?.name ?? ""
            var summary = BundleSummary(replica: replica.name, shard: shardName, region: replica.region, address: replica.address,
                                        statusAddress: "\(replica.host):\(replica.statusPort)", directory: directory, files: [])
            files.append("bundle.json")
            summary.files = files
            try DeployFiles.writeNew((directory as NSString).appendingPathComponent("bundle.json"),
                                     Array((JSONOutput.encode(summary) + "\n").utf8), mode: 0o644)
            summaries.append(summary)
        }
        return summaries
    }

    /// The key directory as the topology writes it, if it stays inside the topology's folder once
    /// normalised (so the bundle can hold it beside its copy of the topology); else an error.
    static func bundleRelativeKeyPath(_ written: String) throws(DeployError) -> String {
        guard !written.hasPrefix("/") else { throw .keyDirectoryOutsideTopology(path: written) }
        var parts: [String] = []
        for part in written.split(separator: "/", omittingEmptySubsequences: true).map(String.init) {
            switch part {
            case ".": continue
            case "..":
                guard !parts.isEmpty else { throw .keyDirectoryOutsideTopology(path: written) }
                parts.removeLast()
            default: parts.append(part)
            }
        }
        guard !parts.isEmpty else { throw .keyDirectoryOutsideTopology(path: written) }
        return parts.joined(separator: "/")
    }

    /// The bundle's start script. `exec` so that the replica is the process systemd (or a test)
    /// signals; further arguments go to `geofabric replica`.
    static func runScript(replica: ReplicaInfo, topology: Topology) -> String {
        """
        #!/bin/sh
        # Starts replica \(replica.name) of topology '\(topology.name)' from this bundle
        # (made by `geofabric deploy bundles`). It listens on \(replica.address), status on \(replica.host):\(replica.statusPort).
        #   GEOFABRIC            the geofabric binary (default: geofabric from PATH)
        #   GEOFABRIC_DATA_DIR   where the replica keeps its ledger (default: data/ in this bundle);
        #                        the replica uses GEOFABRIC_DATA_DIR/\(replica.name)/
        # Further arguments are passed to `geofabric replica` (e.g. --listen-host 0.0.0.0, --log-level debug).
        set -eu
        bundle=$(cd "$(dirname "$0")" && pwd -P)
        exec "${GEOFABRIC:-geofabric}" replica "$bundle/\(topologyFileName)" --replica '\(replica.name)' \\
            --data-dir "${GEOFABRIC_DATA_DIR:-$bundle/data}" "$@"

        """
    }

    /// A systemd unit for the bundle installed at INSTALL/<replica>/.
    static func systemdUnit(replica: ReplicaInfo, topology: Topology, options: BundleOptions) -> String {
        let bundle = (options.installDirectory as NSString).appendingPathComponent(replica.name)
        let binary = options.binary.map { "Environment=GEOFABRIC=\($0)\n" } ?? ""
        return """
            # GeoFabric replica \(replica.name) of topology '\(topology.name)' (made by `geofabric deploy bundles`).
            # Install: copy this bundle to \(bundle), owned by \(options.user), then
            #   cp \(bundle)/\(unitFileName(replica.name)) /etc/systemd/system/ && systemctl daemon-reload
            #   systemctl enable --now \(unitFileName(replica.name))
            [Unit]
            Description=GeoFabric replica \(replica.name) (topology \(topology.name), region \(replica.region))
            Wants=network-online.target
            After=network-online.target

            [Service]
            Type=simple
            User=\(options.user)
            Group=\(options.user)
            WorkingDirectory=\(bundle)
            \(binary)Environment=GEOFABRIC_DATA_DIR=/var/lib/geofabric
            StateDirectory=geofabric
            StateDirectoryMode=0700
            ExecStart=\(bundle)/\(runFileName)
            # SIGTERM stops the replica cleanly; what it acknowledged is already on disk.
            KillSignal=SIGTERM
            TimeoutStopSec=30
            Restart=on-failure
            RestartSec=2
            LimitNOFILE=65536
            NoNewPrivileges=yes
            ProtectSystem=strict
            ProtectHome=yes
            PrivateTmp=yes

            [Install]
            WantedBy=multi-user.target

            """
    }
}

/// File helpers for the deploy commands: nothing is overwritten, and modes are set at creation
/// (a private key is never readable by others, not even briefly).
enum DeployFiles {
    static func prepareEmptyDirectory(_ path: String) throws(DeployError) {
        let files = FileManager.default
        var isDirectory: ObjCBool = false
        if files.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue, (try? files.contentsOfDirectory(atPath: path))?.isEmpty == true else {
                throw .outputNotEmpty(path: path)
            }
            return
        }
        do {
            try files.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        } catch {
            throw .cannotWrite(path: path, reason: error.localizedDescription)
        }
    }

    static func makeDirectory(_ path: String, mode: mode_t) throws(DeployError) {
        guard mkdir(path, mode) == 0 else { throw .cannotWrite(path: path, reason: String(cString: strerror(errno))) }
        // mkdir's mode is masked by the umask; set it exactly.
        guard chmod(path, mode) == 0 else { throw .cannotWrite(path: path, reason: String(cString: strerror(errno))) }
    }

    static func writeNew(_ path: String, _ bytes: [UInt8], mode: mode_t) throws(DeployError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode)
        guard fd >= 0 else { throw .cannotWrite(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw .cannotWrite(path: path, reason: "short write") }
        guard fchmod(fd, mode) == 0 else { throw .cannotWrite(path: path, reason: String(cString: strerror(errno))) }
    }
}
