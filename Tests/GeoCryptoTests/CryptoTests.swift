import Foundation
import GeoCore
@testable import GeoCrypto
import GeoWire
import Testing
import GeoTestKit

@Suite struct SignatureTests {
    @Test func signAndVerify() {
        let key = SigningKey()
        let message = Array("a commit".utf8)
        let signature = key.sign(message)
        #expect(key.verifyingKey.isValid(signature, for: message))
        #expect(!key.verifyingKey.isValid(signature, for: Array("a commiT".utf8)))
        #expect(!SigningKey().verifyingKey.isValid(signature, for: message))
    }

    @Test func transactionSignatureBindsEveryField() {
        let key = SigningKey.development(topology: "t", identity: "client-1")
        let transaction = key.signTransaction(client: ClientID(1), requestID: 5, operation: .put(key: [1], value: [2]))
        #expect(key.verifyingKey.isValid(transaction))
        var other = transaction
        other.requestID = 6
        #expect(!key.verifyingKey.isValid(other))
        other = transaction
        other.operation = .put(key: [1], value: [3])
        #expect(!key.verifyingKey.isValid(other))
        other = transaction
        other.client = ClientID(2)
        #expect(!key.verifyingKey.isValid(other))
    }

    @Test func commitSignatureCannotPassAsTransactionSignature() {
        // Domain tags keep one kind of signed payload from being replayed as another.
        let key = SigningKey()
        let statement = VoteStatement(cluster: ClusterID(shard: ShardID(0), index: 0), view: 1, round: 2, digest: .zero)
        let commit = key.signCommit(statement, replicaIndex: 0)
        #expect(key.verifyingKey.isValid(commit.signature, for: SigningPayload.commit(statement)))
        #expect(SigningPayload.commit(statement).starts(with: Array("geofabric/commit/v1".utf8)))
        let forged = ClientTransaction(client: ClientID(0), requestID: 0, operation: .get(key: []), signature: commit.signature)
        #expect(!key.verifyingKey.isValid(forged))
    }

    @Test func developmentKeysAreDeterministicAndDistinct() {
        let a = SigningKey.development(topology: "geo", identity: "s0-oregon-0")
        let again = SigningKey.development(topology: "geo", identity: "s0-oregon-0")
        let otherReplica = SigningKey.development(topology: "geo", identity: "s0-oregon-1")
        let otherTopology = SigningKey.development(topology: "geo2", identity: "s0-oregon-0")
        #expect(a.seed == again.seed)
        #expect(a.verifyingKey == again.verifyingKey)
        #expect(a.verifyingKey != otherReplica.verifyingKey)
        #expect(a.verifyingKey != otherTopology.verifyingKey)
    }

    @Test func malformedKeysAreTypedErrors() {
        #expect(throws: KeyError.self) { try SigningKey(seed: [1, 2, 3]) }
        #expect(throws: KeyError.self) { try VerifyingKey(bytes: []) }
    }
}

@Suite struct HashingTests {
    @Test func sha256KnownVector() {
        #expect(Hashing.sha256(Array("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func hmacKnownVectorAndCheck() {
        // RFC 4231 test case 2.
        let code = Hashing.hmac(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
        #expect(Hex.encode(code) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(Hashing.isValidHMAC(code, key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8)))
        #expect(!Hashing.isValidHMAC(code, key: Array("Jeff".utf8), message: Array("what do ya want for nothing?".utf8)))
    }

    @Test func blockDigestPinsTheTransactions() {
        let key = SigningKey()
        let cluster = ClusterID(shard: ShardID(0), index: 1)
        let t1 = key.signTransaction(client: ClientID(1), requestID: 1, operation: .add(key: [1], delta: 5))
        let t2 = key.signTransaction(client: ClientID(1), requestID: 2, operation: .add(key: [1], delta: 5))
        let block = Block(cluster: cluster, round: 3, transactions: [t1, t2])
        #expect(Hashing.blockDigest(block) == Hashing.blockDigest(block))
        #expect(Hashing.blockDigest(block) != Hashing.blockDigest(Block(cluster: cluster, round: 3, transactions: [t2, t1])))
        #expect(Hashing.blockDigest(block) != Hashing.blockDigest(Block(cluster: cluster, round: 4, transactions: [t1, t2])))
        #expect(Hashing.blockDigest(Block(cluster: cluster, round: 3, transactions: []))
                != Hashing.blockDigest(Block(cluster: ClusterID(shard: ShardID(0), index: 0), round: 3, transactions: [])))
    }

    @Test func ledgerHeadChains() {
        let cluster = ClusterID(shard: ShardID(0), index: 0)
        let d1 = Hashing.sha256([1]), d2 = Hashing.sha256([2])
        let h1 = Hashing.ledgerHead(previous: .zero, cluster: cluster, round: 1, blockDigest: d1)
        let h2 = Hashing.ledgerHead(previous: h1, cluster: cluster, round: 1, blockDigest: d2)
        let swapped = Hashing.ledgerHead(previous: Hashing.ledgerHead(previous: .zero, cluster: cluster, round: 1, blockDigest: d2),
                                         cluster: cluster, round: 1, blockDigest: d1)
        #expect(h2 != swapped, "the head depends on the order of blocks")
        #expect(h1 != Hashing.ledgerHead(previous: .zero, cluster: ClusterID(shard: ShardID(0), index: 1), round: 1, blockDigest: d1))
    }
}

@Suite struct ParallelVerifierTests {
    @Test func findsExactlyTheBadSignatures() {
        let keys = (0..<8).map { SigningKey.development(topology: "pv", identity: "k\($0)") }
        var random = SeededRandom(seed: 5)
        var checks: [SignatureCheck] = []
        var expected: [Bool] = []
        for index in 0..<300 {
            let key = keys[index % keys.count]
            let message = random.bytes(count: 64)
            var signature = key.sign(message)
            let bad = index % 7 == 3
            if bad {
                var bytes = signature.bytes
                bytes[index % 64] ^= 0x10
                signature = Signature(bytes: bytes)!
            }
            checks.append(SignatureCheck(key: key.verifyingKey, message: message, signature: signature))
            expected.append(!bad)
        }
        for workers in [1, 2, 4] {
            let verifier = ParallelVerifier(workers: workers)
            #expect(verifier.verify(checks) == expected, "workers=\(workers)")
        }
        #expect(!ParallelVerifier().verifyAll(checks))
        #expect(ParallelVerifier().verifyAll(Array(checks[0..<3])))
        #expect(ParallelVerifier().verify([]) == [])
    }
}

@Suite struct KeyDirectoryTests {
    func topology(name: String = "kd") -> Topology {
        let cluster = ClusterID(shard: ShardID(0), index: 0)
        let replicas = (0..<4).map {
            ReplicaInfo(id: ReplicaID(cluster: cluster, index: UInt16($0)), name: "s0-local-\($0)", number: UInt32($0),
                        region: "local", host: "127.0.0.1", port: 7000 + $0, statusPort: 8000 + $0)
        }
        return Topology(name: name, regions: [Region(name: "local")], wan: [], lan: Link(rttMilliseconds: 0.5, megabitsPerSecond: 10_000),
                        keyBuckets: 16, shards: [Shard(id: ShardID(0), name: "s0", placement: .all,
                                                       clusters: [Cluster(id: cluster, region: "local", quorum: Quorum(n: 4)!, replicas: replicas)])],
                        parameters: ProtocolParameters(), keys: .development, clientCount: 3)
    }

    @Test func generateWritesPrivateFilesAndAMatchingManifest() throws {
        let path = TestKit.temporaryPath("geofabric-keys")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let topology = topology()
        let directory = KeyDirectory(path: path)
        let written = try directory.generate(for: topology)
        let loaded = try directory.keyRing(for: topology)
        #expect(loaded.replicaKeys == written.replicaKeys)
        #expect(loaded.clientKeys == written.clientKeys)
        #expect(loaded.clientKeys.count == 3)
        for replica in topology.allReplicas {
            let file = "\(path)/replicas/\(replica.name).key"
            let mode = try #require(FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int)
            #expect(mode == 0o600)
            let key = try directory.signingKey(identity: replica.name, isClient: false)
            #expect(key.verifyingKey == loaded.replicaKey(number: replica.number))
        }
        let client = try directory.signingKey(identity: "client-2", isClient: true)
        #expect(client.verifyingKey == loaded.clientKey(ClientID(2)))
        // Keys are fresh, not the development ones.
        #expect(loaded.replicaKeys != KeyRing.development(for: topology).replicaKeys)
        // Never overwritten.
        #expect(throws: KeyError.self) { try directory.generate(for: topology) }
    }

    @Test func refusesUnsafePermissionsAndForeignManifests() throws {
        let path = TestKit.temporaryPath("geofabric-keys")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let directory = KeyDirectory(path: path)
        try directory.generate(for: topology())
        let file = "\(path)/replicas/s0-local-0.key"
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: file)
        #expect(throws: KeyError.unsafePermissions(path: file, mode: "644")) {
            try directory.signingKey(identity: "s0-local-0", isClient: false)
        }
        #expect(throws: KeyError.manifestMismatch(reason: "made for topology 'kd', not 'other'")) {
            try directory.keyRing(for: topology(name: "other"))
        }
        #expect(throws: KeyError.self) { try KeyDirectory(path: path + "-missing").keyRing(for: topology()) }
    }
}

/// The verify-rate samples bench states its bound from: median and spread.
@Suite struct VerifyRateSamplesTests {
    @Test func medianAndSpread() {
        let odd = VerifyRateSamples([30, 10, 20])
        #expect(odd.median == 20 && odd.minimum == 10 && odd.maximum == 30 && odd.spread == 1)
        var even = VerifyRateSamples([100, 90])
        even.append(contentsOf: [110, 105])
        #expect(even.median == 102.5)
        #expect(abs(even.spread - 20 / 102.5) < 1e-12)
        #expect(VerifyRateSamples().median == 0 && VerifyRateSamples().spread == 0)
    }

    @Test func slicesMeasureARate() {
        let samples = CryptoCalibration.verifyRateSamples(count: 3, sliceSeconds: 0.05, cores: 1)
        #expect(samples.count == 3 && samples.allSatisfy { $0 > 100 })
    }
}
