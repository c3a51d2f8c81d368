// Inclusion proofs with the real suite (SHA-256, Ed25519, development keys): every proof of a
// certified block verifies against the topology's keys alone, and changing any byte of its
// encoding (transaction, path, header, certificate) makes it fail to decode or to verify.

import GeoCore
import GeoCrypto
import GeoTestKit
import GeoWire
import Testing

@Suite struct InclusionProofTests {
    let topology = TestKit.localTopology(name: "proofs", protocol: "{batch_size: 100}", devKeys: true)
    var keys: KeyRing { KeyRing.development(for: topology) }
    var suite: Ed25519Suite { Ed25519Suite(topology: topology, keys: keys, signingKey: nil) }

    /// A block of `count` signed transactions of cluster 0 at `round`, certified by `signers`.
    func certified(count: Int, round: UInt64 = 3, signers: [UInt16] = [0, 1, 2]) -> CertifiedBlock {
        let cluster = topology.shards[0].clusters[0]
        var transactions: [ClientTransaction] = []
        for index in 0..<count {
            let client = ClientID(UInt32(index % 5))
            let key = SigningKey.development(topology: topology.name, identity: Topology.clientName(client))
            let operation = Operation.put(key: Array("k\(index)".utf8), value: Array("v\(index)".utf8))
            transactions.append(key.signTransaction(client: client, requestID: UInt64(10 + index), operation: operation))
        }
        let block = Block(cluster: cluster.id, round: round, transactions: transactions)
        let statement = VoteStatement(cluster: cluster.id, view: 2, round: round, digest: suite.digest(of: block))
        let signatures = signers.map { index in
            let name = cluster.replicas[Int(index)].name
            return CertificateSignature(replicaIndex: index, signature: SigningKey.development(topology: topology.name, identity: name)
                .signCommit(statement, replicaIndex: index).signature)
        }
        return CertifiedBlock(block: block, certificate: CommitCertificate(statement: statement, signatures: signatures))
    }

    func verifies(_ proof: InclusionProof) -> InclusionProofError? {
        do throws(InclusionProofError) {
            try InclusionProofCheck.verify(proof, topology: topology, suite: suite)
            return nil
        } catch {
            return error
        }
    }

    @Test(arguments: [1, 2, 3, 4, 5, 7, 8, 13])
    func everyTransactionsProofVerifiesAndRoundTrips(count: Int) throws {
        let block = certified(count: count)
        #expect(CertificateCheck.isValid(block, quorum: topology.shards[0].clusters[0].quorum, suite: suite))
        for position in 0..<count {
            let proof = InclusionProof(certified: block, height: 3, position: position, suite: suite)
            #expect(verifies(proof) == nil)
            let bytes = InclusionProofCodec.encode(proof)
            #expect(try InclusionProofCodec.decode(bytes) == proof)
        }
    }

    /// Every byte of the encoding, flipped in two ways (low bit, all bits): the proof no longer
    /// decodes, or decodes to one that fails verification. Covers the transaction, the path, the
    /// header and every certificate signature.
    @Test(arguments: [1, 5, 8])
    func changingAnyByteOfTheProofMakesItFail(count: Int) throws {
        let block = certified(count: count)
        let proof = InclusionProof(certified: block, height: 3, position: count - 1, suite: suite)
        let bytes = InclusionProofCodec.encode(proof)
        var accepted: [Int] = []
        for offset in bytes.indices {
            for mask: UInt8 in [0x01, 0xFF] {
                var changed = bytes
                changed[offset] ^= mask
                guard let decoded = try? InclusionProofCodec.decode(changed) else { continue }
                if verifies(decoded) == nil { accepted.append(offset) }
            }
        }
        #expect(accepted.isEmpty, "bytes at these offsets changed and still verified: \(accepted)")
    }

    @Test func theChecksNameWhatFailed() {
        let block = certified(count: 5)
        let proof = InclusionProof(certified: block, height: 3, position: 2, suite: suite)
        var tampered = proof
        tampered.path[0] = Digest(w0: 1, w1: 2, w2: 3, w3: 4)
        #expect(verifies(tampered) == .pathMismatch)
        tampered = proof
        tampered.transaction = block.block.transactions[3]
        #expect(verifies(tampered) == .pathMismatch)
        tampered = proof
        tampered.height = 4
        #expect(verifies(tampered) == .heightMismatch(claimed: 4, expected: 3))
        tampered = proof
        tampered.header.transactionsRoot = Digest(w0: 9, w1: 9, w2: 9, w3: 9)
        #expect(verifies(tampered) == .blockDigestMismatch)
        tampered = proof
        tampered.position = 9
        #expect(verifies(tampered) == .positionOutOfRange(position: 9, count: 5))
        tampered = proof
        tampered.certificate.signatures.removeLast()
        #expect(verifies(tampered) == .certificateInvalid(required: 3))
        tampered = proof
        tampered.certificate.signatures[1] = tampered.certificate.signatures[0]
        #expect(verifies(tampered) == .certificateInvalid(required: 3))
        tampered = proof
        tampered.header.cluster = ClusterID(shard: ShardID(0), index: 5)
        #expect(verifies(tampered) == .unknownCluster(ClusterID(shard: ShardID(0), index: 5)))
        // The same proof against another deployment's keys: the certificate does not hold.
        let other = TestKit.localTopology(name: "other", protocol: "{batch_size: 100}", devKeys: true)
        let otherSuite = Ed25519Suite(topology: other, keys: KeyRing.development(for: other), signingKey: nil)
        #expect(throws: InclusionProofError.certificateInvalid(required: 3)) {
            try InclusionProofCheck.verify(proof, topology: other, suite: otherSuite)
        }
    }

    @Test func merkleHashingIsDomainSeparated() {
        let transaction = certified(count: 1).block.transactions[0]
        var encoded = ByteWriter()
        MessageCodec.encode(transaction, into: &encoded)
        #expect(suite.leafDigest(of: transaction) == Hashing.sha256([0x00] + encoded.bytes))
        #expect(suite.leafDigest(of: transaction) != Hashing.sha256(encoded.bytes))
        let (left, right) = (Digest(w0: 1, w1: 2, w2: 3, w3: 4), Digest(w0: 5, w1: 6, w2: 7, w3: 8))
        #expect(suite.nodeDigest(left: left, right: right) == Hashing.sha256([0x01] + left.bytes + right.bytes))
        // A node is not a leaf over the same 64 bytes.
        #expect(suite.nodeDigest(left: left, right: right) != Hashing.sha256([0x00] + left.bytes + right.bytes))
        #expect(suite.nodeDigest(left: left, right: right) != suite.nodeDigest(left: right, right: left))
    }
}
