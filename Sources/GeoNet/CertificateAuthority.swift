// A small certificate authority that issues node certificates over topology identity keys: for
// `geofabric keys test-pki` (an operator's rehearsal PKI) and for tests. An operator with a real
// PKI issues the same shape of certificate from it (see README, "Transport security").
//
// A node certificate: subject CN = the identity's name, a SAN dNSName of the same name, the
// identity's Ed25519 public key (from the topology's keys: no private key ever leaves the key
// directory, the CA signs over the public key), not a CA, digital signature only, for both TLS
// server and client authentication (a replica both accepts and dials).

import Crypto
import GeoCrypto
import SwiftASN1
import X509

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

public struct CertificateAuthority: Sendable {
    public let certificate: Certificate
    let privateKey: Certificate.PrivateKey

    /// A fresh self-signed Ed25519 root named CN=`name`, valid over `notValidBefore..<notValidAfter`.
    public init(name: String, notValidBefore: Date, notValidAfter: Date) throws {
        let key = Certificate.PrivateKey(Curve25519.Signing.PrivateKey())
        let subject = try DistinguishedName { CommonName(name) }
        certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
            notValidBefore: notValidBefore, notValidAfter: notValidAfter,
            issuer: subject, subject: subject, signatureAlgorithm: .ed25519,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: key)
        privateKey = key
    }

    /// A CA read back from its PEM certificate and PEM private key (as `pem` writes them).
    public init(certificatePEM: String, privateKeyPEM: String) throws {
        certificate = try Certificate(pemEncoded: certificatePEM)
        privateKey = try Certificate.PrivateKey(pemEncoded: privateKeyPEM)
        guard privateKey.publicKey == certificate.publicKey else {
            throw CertificateAuthorityError.keyDoesNotMatchCertificate
        }
    }

    /// The node certificate of identity `name` over its identity key.
    public func issue(name: String, key: VerifyingKey, notValidBefore: Date, notValidAfter: Date) throws -> Certificate {
        let publicKey = Certificate.PublicKey(try Curve25519.Signing.PublicKey(rawRepresentation: key.bytes))
        return try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
            notValidBefore: notValidBefore, notValidAfter: notValidAfter,
            issuer: certificate.subject, subject: try DistinguishedName { CommonName(name) },
            signatureAlgorithm: .ed25519,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectAlternativeNames([.dnsName(name)])
            },
            issuerPrivateKey: privateKey)
    }

    public var certificatePEM: String {
        get throws { try certificate.serializeAsPEM().pemString }
    }

    public var privateKeyPEM: String {
        get throws { try privateKey.serializeAsPEM().pemString }
    }
}

public enum CertificateAuthorityError: Error, Sendable, CustomStringConvertible {
    case keyDoesNotMatchCertificate
    public var description: String {
        switch self {
        case .keyDoesNotMatchCertificate: return "the CA's private key is not the key of its certificate"
        }
    }
}
