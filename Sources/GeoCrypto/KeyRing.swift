// Where keys come from: deterministic development keys, or a directory made by
// `geofabric keys generate` (one private key file per identity, mode 0600, and a public manifest).
//
//   DIR/manifest.json           {"topology": NAME, "replicas": {NAME: HEX}, "clients": {"client-0": HEX}}
//   DIR/replicas/NAME.key       hex of the 32-byte Ed25519 seed, mode 0600
//   DIR/clients/client-N.key    likewise

import Foundation
import GeoCore

/// The public keys of every replica and client of a topology.
public struct KeyRing: Sendable {
    /// Indexed by replica number (ReplicaInfo.number).
    public let replicaKeys: [VerifyingKey]
    /// Indexed by client id.
    public let clientKeys: [VerifyingKey]

    public init(replicaKeys: [VerifyingKey], clientKeys: [VerifyingKey]) {
        self.replicaKeys = replicaKeys
        self.clientKeys = clientKeys
    }

    public func replicaKey(number: UInt32) -> VerifyingKey? {
        replicaKeys.indices.contains(Int(number)) ? replicaKeys[Int(number)] : nil
    }

    public func clientKey(_ client: ClientID) -> VerifyingKey? {
        clientKeys.indices.contains(Int(client.rawValue)) ? clientKeys[Int(client.rawValue)] : nil
    }

    /// The public halves of the development keys of every replica and client of `topology`.
    public static func development(for topology: Topology) -> KeyRing {
        KeyRing(
            replicaKeys: topology.allReplicas.map {
                SigningKey.development(topology: topology.name, identity: $0.name).verifyingKey
            },
            clientKeys: (0..<topology.clientCount).map {
                SigningKey.development(topology: topology.name, identity: Topology.clientName(ClientID(UInt32($0)))).verifyingKey
            })
    }

    /// The key ring of `topology`, from wherever its `keys` setting says. `baseDirectory` resolves
    /// a relative key directory (the topology file's folder).
    public static func load(for topology: Topology, baseDirectory: String) throws(KeyError) -> KeyRing {
        switch topology.keys {
        case .development:
            return development(for: topology)
        case let .directory(path):
            return try KeyDirectory(path: KeyDirectory.resolve(path, base: baseDirectory)).keyRing(for: topology)
        }
    }
}

/// A key directory on disk.
public struct KeyDirectory: Sendable {
    public let path: String
    public init(path: String) { self.path = path }

    public static func resolve(_ path: String, base: String) -> String {
        path.hasPrefix("/") ? path : (base as NSString).appendingPathComponent(path)
    }

    struct Manifest: Codable {
        var topology: String
        var replicas: [String: String]
        var clients: [String: String]
    }

    var manifestPath: String { (path as NSString).appendingPathComponent("manifest.json") }

    func privateKeyPath(identity: String, isClient: Bool) -> String {
        ((path as NSString).appendingPathComponent(isClient ? "clients" : "replicas") as NSString)
            .appendingPathComponent("\(identity).key")
    }

    /// Writes fresh random keys for every replica and client of `topology`. Refuses to overwrite
    /// an existing manifest, so keys in use are never replaced by accident.
    @discardableResult
    public func generate(for topology: Topology) throws(KeyError) -> KeyRing {
        let files = FileManager.default
        guard !files.fileExists(atPath: manifestPath) else {
            throw .unreadable(path: manifestPath, reason: "already exists; refusing to overwrite keys (remove the directory first)")
        }
        var manifest = Manifest(topology: topology.name, replicas: [:], clients: [:])
        var replicaKeys: [VerifyingKey] = []
        var clientKeys: [VerifyingKey] = []
        for replica in topology.allReplicas {
            let key = SigningKey()
            try writePrivateKey(key, to: privateKeyPath(identity: replica.name, isClient: false))
            manifest.replicas[replica.name] = Hex.encode(key.verifyingKey.bytes)
            replicaKeys.append(key.verifyingKey)
        }
        for index in 0..<topology.clientCount {
            let name = Topology.clientName(ClientID(UInt32(index)))
            let key = SigningKey()
            try writePrivateKey(key, to: privateKeyPath(identity: name, isClient: true))
            manifest.clients[name] = Hex.encode(key.verifyingKey.bytes)
            clientKeys.append(key.verifyingKey)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            try encoder.encode(manifest).write(to: URL(fileURLWithPath: manifestPath))
        } catch {
            throw .unreadable(path: manifestPath, reason: "cannot write: \(error.localizedDescription)")
        }
        return KeyRing(replicaKeys: replicaKeys, clientKeys: clientKeys)
    }

    private func writePrivateKey(_ key: SigningKey, to file: String) throws(KeyError) {
        let directory = (file as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw .unreadable(path: directory, reason: "cannot create: \(error.localizedDescription)")
        }
        // Create with mode 0600 from the start: the key is never readable by others, not even briefly.
        let fd = open(file, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw .unreadable(path: file, reason: "cannot create: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let text = Array((Hex.encode(key.seed) + "\n").utf8)
        let written = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == text.count else { throw .unreadable(path: file, reason: "short write") }
    }

    /// Reads the private key of one identity (a replica name, or "client-N").
    public func signingKey(identity: String, isClient: Bool) throws(KeyError) -> SigningKey {
        let file = privateKeyPath(identity: identity, isClient: isClient)
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: file) else {
            throw .missing(identity: identity, path: path)
        }
        if let mode = attributes[.posixPermissions] as? Int, mode & 0o077 != 0 {
            throw .unsafePermissions(path: file, mode: String(mode, radix: 8))
        }
        guard let data = FileManager.default.contents(atPath: file),
              let text = String(data: data, encoding: .utf8) else {
            throw .unreadable(path: file, reason: "not a text file")
        }
        guard let seed = Hex.decode(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw .malformedKey(what: "private key in \(file)", reason: "not hex")
        }
        return try SigningKey(seed: seed)
    }

    /// The public keys of the manifest, checked against the topology: every replica and client
    /// of the topology must be there.
    public func keyRing(for topology: Topology) throws(KeyError) -> KeyRing {
        guard let data = FileManager.default.contents(atPath: manifestPath) else {
            throw .unreadable(path: manifestPath, reason: "no such file (run `geofabric keys generate`)")
        }
        let manifest: Manifest
        do {
            manifest = try JSONDecoder().decode(Manifest.self, from: data)
        } catch {
            throw .unreadable(path: manifestPath, reason: "not a key manifest: \(error)")
        }
        guard manifest.topology == topology.name else {
            throw .manifestMismatch(reason: "made for topology '\(manifest.topology)', not '\(topology.name)'")
        }
        func key(_ table: [String: String], _ name: String) throws(KeyError) -> VerifyingKey {
            guard let hex = table[name] else { throw .missing(identity: name, path: manifestPath) }
            guard let bytes = Hex.decode(hex) else { throw .malformedKey(what: "public key of \(name)", reason: "not hex") }
            return try VerifyingKey(bytes: bytes)
        }
        var replicaKeys: [VerifyingKey] = []
        for replica in topology.allReplicas { replicaKeys.append(try key(manifest.replicas, replica.name)) }
        var clientKeys: [VerifyingKey] = []
        for index in 0..<topology.clientCount {
            clientKeys.append(try key(manifest.clients, Topology.clientName(ClientID(UInt32(index)))))
        }
        return KeyRing(replicaKeys: replicaKeys, clientKeys: clientKeys)
    }
}

/// The private key of one identity of `topology`, from wherever its `keys` setting says:
/// development keys are derived, a key directory is read (and checked for safe permissions).
public enum IdentityKeys {
    public static func signingKey(for topology: Topology, identity: String, isClient: Bool, baseDirectory: String) throws(KeyError) -> SigningKey {
        switch topology.keys {
        case .development:
            return SigningKey.development(topology: topology.name, identity: identity)
        case let .directory(path):
            return try KeyDirectory(path: KeyDirectory.resolve(path, base: baseDirectory)).signingKey(identity: identity, isClient: isClient)
        }
    }
}
