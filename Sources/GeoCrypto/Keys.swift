// Ed25519 keys for replicas and clients.

import Crypto
import GeoCore
import GeoWire

/// A private Ed25519 key: signs Commits (replicas) or transactions (clients).
public struct SigningKey: Sendable {
    let key: Curve25519.Signing.PrivateKey

    /// A fresh random key (from the system's secure generator).
    public init() { key = Curve25519.Signing.PrivateKey() }

    /// The key whose 32-byte seed is `seed`.
    public init(seed: [UInt8]) throws(KeyError) {
        guard seed.count == 32, let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed) else {
            throw .malformedKey(what: "private key", reason: "expected 32 bytes, got \(seed.count)")
        }
        self.key = key
    }

    /// A deterministic development key: SHA-256 of a fixed tag, the topology name and the identity.
    /// Anyone who knows the topology can derive it, so it is for local use only.
    public static func development(topology: String, identity: String) -> SigningKey {
        var material = Array("geofabric/dev-key/v1".utf8)
        material.append(0)
        material.append(contentsOf: Array(topology.utf8))
        material.append(0)
        material.append(contentsOf: Array(identity.utf8))
        // 32 bytes always make a valid Ed25519 seed.
        return try! SigningKey(seed: Hashing.sha256(material).bytes)
    }

    public var seed: [UInt8] { Array(key.rawRepresentation) }
    public var verifyingKey: VerifyingKey { VerifyingKey(key: key.publicKey) }

    public func sign(_ message: [UInt8]) -> Signature {
        // Ed25519 signatures are always 64 bytes; signing in-memory bytes cannot fail.
        let bytes = try! key.signature(for: message)
        return Signature(bytes: Array(bytes))!
    }
}

/// A public Ed25519 key.
public struct VerifyingKey: Sendable, Hashable {
    let key: Curve25519.Signing.PublicKey

    init(key: Curve25519.Signing.PublicKey) { self.key = key }

    public init(bytes: [UInt8]) throws(KeyError) {
        guard bytes.count == 32, let key = try? Curve25519.Signing.PublicKey(rawRepresentation: bytes) else {
            throw .malformedKey(what: "public key", reason: "expected 32 bytes, got \(bytes.count)")
        }
        self.key = key
    }

    public var bytes: [UInt8] { Array(key.rawRepresentation) }

    public func isValid(_ signature: Signature, for message: [UInt8]) -> Bool {
        key.isValidSignature(signature.bytes, for: message)
    }

    public static func == (lhs: VerifyingKey, rhs: VerifyingKey) -> Bool { lhs.bytes == rhs.bytes }
    public func hash(into hasher: inout Hasher) { hasher.combine(bytes) }
}

/// Why keys could not be read or used.
public enum KeyError: Error, Hashable, Sendable, CustomStringConvertible {
    case malformedKey(what: String, reason: String)
    case unreadable(path: String, reason: String)
    case missing(identity: String, path: String)
    case manifestMismatch(reason: String)
    case unsafePermissions(path: String, mode: String)

    public var description: String {
        switch self {
        case let .malformedKey(what, reason): return "malformed \(what): \(reason)"
        case let .unreadable(path, reason): return "\(path): cannot read: \(reason)"
        case let .missing(identity, path): return "no key for \(identity) in \(path)"
        case let .manifestMismatch(reason): return "key manifest does not match the topology: \(reason)"
        case let .unsafePermissions(path, mode): return "\(path): private key readable by others (mode \(mode)); chmod 600 it"
        }
    }
}

/// Signing helpers that bind signatures to the exact payloads of GeoWire.SigningPayload.
extension SigningKey {
    public func signTransaction(client: ClientID, requestID: UInt64, operation: Operation) -> ClientTransaction {
        let signature = sign(SigningPayload.transaction(client: client, requestID: requestID, operation: operation))
        return ClientTransaction(client: client, requestID: requestID, operation: operation, signature: signature)
    }

    public func signCommit(_ statement: VoteStatement, replicaIndex: UInt16) -> Commit {
        Commit(statement: statement, replicaIndex: replicaIndex, signature: sign(SigningPayload.commit(statement)))
    }
}

extension VerifyingKey {
    public func isValid(_ transaction: ClientTransaction) -> Bool {
        isValid(transaction.signature, for: SigningPayload.transaction(
            client: transaction.client, requestID: transaction.requestID, operation: transaction.operation))
    }
}

/// A client's key signs its transactions for GeoCore's ClientCore.
extension SigningKey: TransactionSigner {}
