// The certificate a node makes from its identity key, and the pinned-key check on a peer's.

import GeoCore
import GeoCrypto
import NIOSSL
import Testing
import X509

@testable import GeoNet

@Suite struct TLSCertificateTests {
    let settings = TLSSettings.identity(Fixture.replicaKey(1), name: "s0-oregon-1", keyRing: Fixture.keyRing)

    func peerCertificate(_ key: SigningKey) throws -> NIOSSLCertificate {
        let made = try TLSCertificate(key: key, commonName: "peer")
        return try NIOSSLCertificate(bytes: made.derBytes, format: .der)
    }

    @Test func theCertificateCarriesTheIdentityKeyAndSignsItself() throws {
        let key = Fixture.replicaKey(1)
        let made = try TLSCertificate(key: key, commonName: "s0-oregon-1")
        #expect(try TLSCertificate.peerKey(derBytes: made.derBytes) == key.verifyingKey)
        #expect(made.certificate.signatureAlgorithm == .ed25519)
        #expect(made.certificate.subject.description.contains("s0-oregon-1"))
        // Two starts make two certificates (fresh serial) over the same key.
        let again = try TLSCertificate(key: key, commonName: "s0-oregon-1")
        #expect(again.derBytes != made.derBytes)
        #expect(try TLSCertificate.peerKey(derBytes: again.derBytes) == key.verifyingKey)
    }

    @Test func thePinnedKeyNamesTheIdentity() throws {
        let replicaTwo = try peerCertificate(Fixture.replicaKey(2))
        #expect(TLSPeerVerifier.verify([replicaTwo], expected: nil, settings: settings) == .success(.replica(number: 2)))
        #expect(TLSPeerVerifier.verify([replicaTwo], expected: .replica(number: 2), settings: settings) == .success(.replica(number: 2)))
        let client = try peerCertificate(Fixture.clientKey(9))
        #expect(TLSPeerVerifier.verify([client], expected: nil, settings: settings) == .success(.client(ClientID(9))))
    }

    @Test func mismatchedAndMalformedCertificatesAreRejected() throws {
        let replicaTwo = try peerCertificate(Fixture.replicaKey(2))
        #expect(TLSPeerVerifier.verify([replicaTwo], expected: .replica(number: 3), settings: settings)
            == .failure(.certificateIdentityMismatch(certificateOf: .replica(number: 2), claimed: .replica(number: 3))))
        let stranger = try peerCertificate(SigningKey())
        #expect(TLSPeerVerifier.verify([stranger], expected: nil, settings: settings) == .failure(.certificateKeyMismatch(expected: nil)))
        #expect(TLSPeerVerifier.verify([], expected: nil, settings: settings) == .failure(.noCertificate))
        #expect(throws: TLSRefusal.self) { try TLSCertificate.peerKey(derBytes: [0x30, 0x03, 0x02, 0x01, 0x01]) }
        // A certificate whose signature was altered no longer signs itself.
        var tampered = try TLSCertificate(key: Fixture.replicaKey(2), commonName: "peer").derBytes
        tampered[tampered.count - 1] ^= 0x01
        #expect(throws: TLSRefusal.self) { try TLSCertificate.peerKey(derBytes: tampered) }
    }

    @Test func theClaimMustOwnTheCertificate() {
        #expect(TLSPeerVerifier.checkClaim(.client(ClientID(3)), certificateOwner: .client(ClientID(3))) == nil)
        #expect(TLSPeerVerifier.checkClaim(.replica(number: 0), certificateOwner: .client(ClientID(3)))
            == .clientCertificateForReplica(certificateOf: .client(ClientID(3)), claimed: .replica(number: 0)))
        #expect(TLSPeerVerifier.checkClaim(.client(ClientID(4)), certificateOwner: .client(ClientID(3)))
            == .certificateIdentityMismatch(certificateOf: .client(ClientID(3)), claimed: .client(ClientID(4))))
    }

    @Test func boringSSLErrorsAreLoggedByTheirCode() {
        let alert = "handshakeFailed(sslError([Error: 268436502 error:10000416:SSL routines:OPENSSL_internal:SSLV3_ALERT_CERTIFICATE_UNKNOWN at tls_record.cc:491]))"
        #expect(TLSPeerVerifier.briefReason(alert).hasPrefix("SSLV3_ALERT_CERTIFICATE_UNKNOWN (the peer sent this alert"))
        #expect(TLSPeerVerifier.briefReason("error:OPENSSL_internal:DECRYPTION_FAILED at x.cc:1") == "DECRYPTION_FAILED")
        #expect(TLSPeerVerifier.briefReason("uncleanShutdown") == "uncleanShutdown")
    }
}
