// HTTPS on the status port, beside plain HTTP on the same port.
//
// Prometheus scrapes plain HTTP, so the status port keeps serving it; a node that runs TLS also
// answers HTTPS there, with the same self-signed certificate over its identity key that its
// protocol port presents (TransportTLS.swift). The first byte tells them apart: a TLS connection
// opens with a handshake record (0x16), an HTTP request with a method's first letter. The server
// asks no client certificate (status is read-only and public to whoever reaches the port); the
// status client pins the replica's key, as a peer does.

import GeoCore
import GeoCrypto
import GeoNet
import NIOCore
import NIOSSL
import X509

public enum StatusTLS {
    /// The server side: this node's certificate (its operator-issued chain when `authority`
    /// names one, else self-signed), TLS 1.3, no client certificate asked.
    public static func serverContext(key: SigningKey, commonName: String, topologyHash: Digest? = nil,
                                     authority: TLSAuthority? = nil) throws -> NIOSSLContext {
        let settings = TLSSettings(certificateKey: key, commonName: commonName, keyOwner: { _ in nil }, authority: authority)
        guard let presented = try settings.presentedCertificate(topologyHash: topologyHash) else { throw TLSRefusal.noCertificate }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try presented.chain.map { .certificate(try NIOSSLCertificate(bytes: $0, format: .der)) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(presented.privateKeyPEM.utf8), format: .pem)))
        configuration.minimumTLSVersion = .tlsv13
        configuration.maximumTLSVersion = .tlsv13
        configuration.signingSignatureAlgorithms = [.ed25519]
        configuration.certificateVerification = .none
        return try NIOSSLContext(configuration: configuration)
    }

    /// The client side: no certificate of its own; the server's is checked by `pinning`.
    public static func clientContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        configuration.maximumTLSVersion = .tlsv13
        configuration.verifySignatureAlgorithms = [.ed25519]
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .certificates([])
        return try NIOSSLContext(configuration: configuration)
    }

    /// Accepts the server's certificate only if it carries `expected`, the topology's key of the
    /// replica asked. A refused certificate's claimed topology hash goes to `refused` (nil when it
    /// names none), so the caller can say which deployment answered.
    public static func pinning(_ expected: VerifyingKey, refused: (@Sendable (Digest?) -> Void)? = nil) -> NIOSSLCustomVerificationCallback {
        { chain, promise in
            // The key is what is pinned (the TLS handshake proved the server holds it): a
            // self-signed certificate and an operator-issued one are read alike.
            guard let der = try? chain.first?.toDERBytes(), let certificate = try? Certificate(derEncoded: der),
                  let key = try? TLSCertificate.leafKey(certificate), key == expected else {
                let der = try? chain.first?.toDERBytes()
                refused?(der.flatMap { TLSCertificate.topologyHash(derBytes: $0) })
                promise.succeed(.failed)
                return
            }
            promise.succeed(.certificateVerified)
        }
    }
}

/// First in a status connection's pipeline: on a TLS first byte it puts NIOSSL right after
/// itself; either way it then leaves the pipeline.
final class StatusProtocolSwitch: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    private let tls: NIOSSLContext
    init(tls: NIOSSLContext) { self.tls = tls }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        if buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) == 0x16 {
            do {
                try context.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls), position: .after(self))
            } catch {
                context.fireErrorCaught(error)
                context.close(promise: nil)
                return
            }
        }
        context.fireChannelRead(data)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
