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

public enum StatusTLS {
    /// The server side: this node's certificate, TLS 1.3, no client certificate asked.
    public static func serverContext(key: SigningKey, commonName: String, topologyHash: Digest? = nil) throws -> NIOSSLContext {
        let made = try TLSCertificate(key: key, commonName: commonName, topologyHash: topologyHash)
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(try NIOSSLCertificate(bytes: made.derBytes, format: .der))],
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(made.privateKeyPEM.utf8), format: .pem)))
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
            guard let der = try? chain.first?.toDERBytes(),
                  let key = try? TLSCertificate.peerKey(derBytes: der), key == expected else {
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
