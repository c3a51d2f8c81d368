// Issue 18 (ledger queries and inclusion proofs) on real processes: a local deployment of the
// built `geofabric` binary, transactions put through the client, then `ledger block|tx|tail|verify`
// and the HTTP endpoints. Ports 21200-21203 (status ports 22200-22203, the default offset).

import Foundation
import GeoCore
import GeoCrypto
@testable import GeoFabricCLI
import GeoNode
import GeoTestKit
import GeoTopology
import Testing

@Suite(.serialized) struct LedgerProcessTests {
    static let yaml = """
        name: ledger-process
        regions: [local]
        base_port: 21200
        shards:
          - name: s0
            clusters:
              - {region: local, replicas: 4}
        keys: dev
        transport: {tls: true}
        """

    struct Put: Decodable {
        var txid: String
        var height: UInt64
    }

    @Test(.timeLimit(.minutes(4))) func ledgerQueriesAndProofsOnARunningDeployment() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: builtTool), "build the tool first (swift build): \(builtTool)")
        let path = try TestKit.writeTemporary(Self.yaml, name: "topology.yaml")
        let directory = (path as NSString).deletingLastPathComponent
        let loaded = try LoadedTopology.load(path)
        let deployment = try LocalDeployment.start(loaded, dataDirectory: directory + "/data", emulateWAN: false, executable: builtTool)
        do {
            try await deployment.waitUntilReady(timeout: .seconds(60))
            try await check(path: path, directory: directory, topology: loaded.topology)
        } catch {
            await deployment.stop()
            throw error
        }
        await deployment.stop()
    }

    func check(path: String, directory: String, topology: Topology) async throws {
        var puts: [Put] = []
        for index in 0..<3 {
            let put = try await Tool.run(["client", "put", "k\(index)", "v\(index)", path, "--client", "3", "--json", "--timeout", "20"])
            #expect(put.status == 0, "\(put)")
            puts.append(try JSONDecoder().decode(Put.self, from: Data(put.output.utf8)))
        }
        let target = puts[1]

        // A transaction's proof, from the first replica and from another one, verified offline.
        let proofFile = directory + "/proof.json"
        let tx = try await Tool.run(["ledger", "tx", path, target.txid, "--proof", proofFile, "--json"])
        #expect(tx.status == 0, "\(tx)")
        let document = try JSONDecoder().decode(LedgerTransactionDocument.self, from: Data(tx.output.utf8))
        #expect(document.txid == target.txid)
        #expect(document.height == target.height)
        #expect(document.operation == "put k1 = v1")
        let verify = try await Tool.run(["ledger", "verify", proofFile, path])
        #expect(verify.status == 0, "\(verify)")
        #expect(verify.output.contains("valid: transaction \(target.txid)"), "\(verify)")
        let fromOther = try await Tool.run(["ledger", "tx", path, target.txid, "--replica", "s0-local-2", "--proof", directory + "/other.json"])
        #expect(fromOther.status == 0, "\(fromOther)")
        #expect(try await Tool.run(["ledger", "verify", directory + "/other.json", path, "--json"]).output.contains("\"valid\" : true"))

        // One changed byte of the proof, anywhere: refused.
        let bytes = try #require(Hex.decode(document.proof))
        for offset in stride(from: 6, to: bytes.count, by: max(1, bytes.count / 12)) {
            var changed = bytes
            changed[offset] ^= 0x01
            var tampered = document
            tampered.proof = Hex.encode(changed)
            let file = directory + "/tampered.json"
            try Data(JSONOutput.encode(tampered).utf8).write(to: URL(fileURLWithPath: file))
            let refused = try await Tool.run(["ledger", "verify", file, path])
            #expect(refused.status == 1, "byte \(offset): \(refused)")
            #expect(refused.error.contains("invalid proof"), "byte \(offset): \(refused)")
        }
        // Against another deployment's keys: refused.
        let otherTopology = try TestKit.writeTemporary(Self.yaml.replacingOccurrences(of: "ledger-process", with: "ledger-other"), name: "other.yaml")
        let otherKeys = try await Tool.run(["ledger", "verify", proofFile, otherTopology])
        #expect(otherKeys.status == 1, "\(otherKeys)")
        #expect(otherKeys.error.contains("Commit signatures"), "\(otherKeys)")

        // The block holding it, by height.
        let block = try await Tool.run(["ledger", "block", path, "--shard", "s0", "--height", "\(target.height)", "--json"])
        #expect(block.status == 0, "\(block)")
        let blockDocument = try JSONDecoder().decode(LedgerBlockDocument.self, from: Data(block.output.utf8))
        #expect(blockDocument.transactions.contains { $0.txid == target.txid })
        #expect(blockDocument.digest == document.block_digest)
        #expect(blockDocument.certificate_signers.count >= 3)

        // Clear errors: a height above the ledger, an unknown transaction, a malformed id, an unknown shard.
        let above = try await Tool.run(["ledger", "block", path, "--height", "999999"])
        #expect(above.status == 1 && above.error.contains("above this replica's ledger height"), "\(above)")
        let unknown = try await Tool.run(["ledger", "tx", path, "3:1"])
        #expect(unknown.status == 1 && unknown.error.contains("not found") || unknown.error.contains("is not in"), "\(unknown)")
        let malformed = try await Tool.run(["ledger", "tx", path, "three"])
        #expect(malformed.status == 1 && malformed.error.contains("not a transaction id"), "\(malformed)")
        let noShard = try await Tool.run(["ledger", "block", path, "--shard", "s9", "--height", "1"])
        #expect(noShard.status == 1 && noShard.error.contains("no shard named s9"), "\(noShard)")

        // tail: from height 1, the first blocks, one JSON object per line.
        let tail = try await Tool.run(["ledger", "tail", path, "--from", "1", "--count", "2", "--json"], timeout: 30)
        #expect(tail.status == 0, "\(tail)")
        let lines = tail.output.split(separator: "\n")
        #expect(lines.count == 2, "\(tail)")
        #expect(lines.map { (try? JSONDecoder().decode(LedgerBlockDocument.self, from: Data($0.utf8)))?.height } == [1, 2])

        // tail follows: started at the current height, it prints the block of a put made after it.
        let follow = Task {
            try await Tool.run(["ledger", "tail", path, "--count", "1", "--json"], timeout: 40)
        }
        try await Task.sleep(for: .seconds(2))
        let later = try await Tool.run(["client", "put", "later", "1", path, "--client", "4", "--json", "--timeout", "20"])
        #expect(later.status == 0, "\(later)")
        let followed = try await follow.value
        #expect(followed.status == 0, "\(followed)")
        let laterPut = try JSONDecoder().decode(Put.self, from: Data(later.output.utf8))
        let followedBlock = try? JSONDecoder().decode(LedgerBlockDocument.self, from: Data(followed.output.utf8))
        #expect(followedBlock.map { $0.height <= laterPut.height } == true, "\(followed)")

        // Over HTTPS directly, pinned to the replica's key: the endpoints and their errors.
        let keys = KeyRing.development(for: topology)
        let replica = try #require(topology.replica(named: "s0-local-1"))
        let key = keys.replicaKey(number: replica.number)
        let fetched = await StatusClient.ledger(path: "/ledger/blocks/\(target.height)", host: replica.host, port: replica.statusPort, key: key)
        #expect((try? fetched.get().0) == 200)
        let badID = await StatusClient.ledger(path: "/ledger/tx/nope", host: replica.host, port: replica.statusPort, key: key)
        #expect((try? badID.get().0) == 400)
        let badHeight = await StatusClient.ledger(path: "/ledger/blocks/0", host: replica.host, port: replica.statusPort, key: key)
        #expect((try? badHeight.get().0) == 400)
    }
}
