// `geofabric ledger block|tx|tail|verify`: read a replica's executed ledger over its status port
// (HTTPS pinned to the replica's topology key when the topology has TLS on), and check an
// inclusion proof offline against the topology's keys alone.

import ArgumentParser
import Foundation
import GeoCore
import GeoCrypto
import GeoNode
import GeoWire

struct LedgerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger",
        abstract: "Read blocks and transactions of a running deployment, and verify inclusion proofs offline.",
        subcommands: [LedgerBlockCommand.self, LedgerTxCommand.self, LedgerTailCommand.self, LedgerVerifyCommand.self])
}

/// What every querying subcommand shares: the topology, which replica to ask, how.
struct LedgerTarget: ParsableArguments {
    @Argument(help: "The topology file of the running deployment.")
    var topology: String

    @Option(help: "Ask this replica (by name) instead of the first of the shard that answers.")
    var replica: String?

    @Option(help: "Seconds to wait for each replica.")
    var timeout: Double = 2

    @Flag(name: .customLong("plain-http"), help: "Read over plain HTTP (by default HTTPS pinned to each replica's topology key when TLS is on).")
    var plainHTTP = false

    @Flag(help: "Print JSON.")
    var json = false

    struct Loaded {
        var topology: Topology
        var keys: KeyRing
        var pinned: Bool
    }

    func load() throws -> Loaded {
        let loaded = try LoadedTopology.load(topology)
        let ring: KeyRing
        do {
            ring = try KeyRing.load(for: loaded.topology, baseDirectory: loaded.directory)
        } catch {
            throw LedgerFailure("keys: \(error)")
        }
        return Loaded(topology: loaded.topology, keys: ring, pinned: loaded.topology.transport.tls && !plainHTTP)
    }

    /// The replicas to ask, in order: `--replica`, or every replica of `shards` (all when nil).
    func candidates(_ loaded: Loaded, shard: String?) throws -> [[ReplicaInfo]] {
        let model = loaded.topology
        if let replica {
            guard let info = model.replica(named: replica) else { throw LedgerFailure("no replica named \(replica) in \(model.name)") }
            if let shard, model.shard(info.id.cluster.shard)?.name != shard {
                throw LedgerFailure("replica \(replica) is not in shard \(shard)")
            }
            return [[info]]
        }
        if let shard {
            guard let found = model.shards.first(where: { $0.name == shard }) else {
                throw LedgerFailure("no shard named \(shard) in \(model.name) (shards: \(model.shards.map(\.name).joined(separator: ", ")))")
            }
            return [found.clusters.flatMap(\.replicas)]
        }
        return model.shards.map { $0.clusters.flatMap(\.replicas) }
    }

    /// GET `path` from the first of `replicas` that answers; an HTTP answer (even an error) ends the
    /// search, an unreachable replica does not.
    func get(_ path: String, from replicas: [ReplicaInfo], _ loaded: Loaded) async throws -> (ReplicaInfo, Int, Data) {
        var failures: [String] = []
        for info in replicas {
            let key = loaded.pinned ? loaded.keys.replicaKey(number: info.number) : nil
            switch await StatusClient.ledger(path: path, host: info.host, port: info.statusPort, key: key,
                                             timeout: .milliseconds(Int64(timeout * 1000))) {
            case let .success((status, body)): return (info, status, body)
            case let .failure(error): failures.append("\(info.name): \(error)")
            }
        }
        throw LedgerFailure("no replica answered: " + failures.joined(separator: "; "))
    }
}

struct LedgerFailure: Error, CustomStringConvertible {
    var description: String
    init(_ message: String) { description = message }
}

/// Runs `body`, turning a LedgerFailure into "error: ..." on standard error and exit code 1.
func runLedger(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let failure as LedgerFailure {
        FileHandle.standardError.write(Data("error: \(failure.description)\n".utf8))
        throw ExitCode(1)
    }
}

/// The `error` of a non-200 answer, or the body as text.
func errorText(_ body: Data) -> String {
    (try? JSONDecoder().decode([String: String].self, from: body))?["error"] ?? String(decoding: body, as: UTF8.self)
}

struct LedgerBlockCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "block", abstract: "Print the executed block at a shard-ledger height, with its certificate's signers.")

    @OptionGroup var target: LedgerTarget
    @Option(help: "The shard (default: the topology's first).") var shard: String?
    @Option(help: "The shard-ledger height (from 1).") var height: UInt64

    func run() async throws {
        try await runLedger {
            let loaded = try target.load()
            let shardName = shard ?? loaded.topology.shards[0].name
            let replicas = try target.candidates(loaded, shard: shardName)[0]
            let (_, status, body) = try await target.get("/ledger/blocks/\(height)", from: replicas, loaded)
            guard status == 200 else { throw LedgerFailure("shard \(shardName), height \(height): \(errorText(body))") }
            let block = try JSONDecoder().decode(LedgerBlockDocument.self, from: body)
            if target.json {
                print(JSONOutput.encode(block))
            } else {
                print(LedgerText.block(block))
                for transaction in block.transactions { print("  \(transaction.txid)  \(transaction.operation)") }
            }
        }
    }
}

struct LedgerTxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tx", abstract: "Find a transaction (CLIENT:REQUEST) in the ledger, and optionally save its inclusion proof.")

    @OptionGroup var target: LedgerTarget
    @Argument(help: "The transaction id: CLIENT:REQUEST (decimal), e.g. 3:17.") var txid: String
    @Option(help: "The shard to search (default: every shard, in order).") var shard: String?
    @Option(help: "Write the inclusion proof (JSON) to FILE, for `geofabric ledger verify`.") var proof: String?

    func run() async throws {
        try await runLedger {
            guard let id = TransactionID(txid) else { throw LedgerFailure("not a transaction id: \(txid) (CLIENT:REQUEST, e.g. 3:17)") }
            let loaded = try target.load()
            var misses: [String] = []
            for replicas in try target.candidates(loaded, shard: shard) {
                let (info, status, body) = try await target.get("/ledger/tx/\(id)", from: replicas, loaded)
                guard status == 200 else {
                    misses.append(errorText(body))
                    continue
                }
                let document = try JSONDecoder().decode(LedgerTransactionDocument.self, from: body)
                if let proof {
                    do {
                        try Data((JSONOutput.encode(document) + "\n").utf8).write(to: URL(fileURLWithPath: proof))
                    } catch {
                        throw LedgerFailure("cannot write \(proof): \(error.localizedDescription)")
                    }
                }
                if target.json {
                    print(JSONOutput.encode(document))
                } else {
                    print("transaction \(document.txid): shard \(document.shard), height \(document.height) "
                          + "(cluster \(document.cluster), round \(document.round)), position \(document.position), "
                          + "block \(document.block_digest.prefix(16)), from \(info.name)")
                    print("  \(document.operation)")
                    if let proof { print("proof written to \(proof)") }
                }
                return
            }
            throw LedgerFailure(misses.joined(separator: "; "))
        }
    }
}

struct LedgerTailCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail", abstract: "Follow a shard's ledger: print each new block as it is executed (Ctrl-C stops).")

    @OptionGroup var target: LedgerTarget
    @Option(help: "The shard (default: the topology's first).") var shard: String?
    @Option(help: "Start at this height (default: after the replica's current height).") var from: UInt64?
    @Option(help: "Stop after this many blocks (default: never).") var count: Int?
    @Option(help: "Seconds between polls when no new block is there.") var interval: Double = 0.2

    func run() async throws {
        try await runLedger {
            let loaded = try target.load()
            let shardName = shard ?? loaded.topology.shards[0].name
            let replicas = try target.candidates(loaded, shard: shardName)[0]
            var next: UInt64
            if let from {
                next = max(1, from)
            } else {
                let (info, _, _) = try await target.get("/ledger/blocks/1", from: replicas, loaded)
                let key = loaded.pinned ? loaded.keys.replicaKey(number: info.number) : nil
                switch await StatusClient.fetch(host: info.host, port: info.statusPort, key: key) {
                case let .success(status): next = status.height + 1
                case let .failure(error): throw LedgerFailure("\(info.name): \(error)")
                }
            }
            var printed = 0
            while count.map({ printed < $0 }) ?? true {
                let (_, status, body) = try await target.get("/ledger/blocks/\(next)", from: replicas, loaded)
                switch status {
                case 200:
                    let block = try JSONDecoder().decode(LedgerBlockDocument.self, from: body)
                    // Written at once, not buffered: a reader of a pipe sees each block as it comes.
                    FileHandle.standardOutput.write(Data(((target.json ? JSONOutput.line(block) : LedgerText.block(block)) + "\n").utf8))
                    next += 1
                    printed += 1
                case 404:
                    try await Task.sleep(for: .milliseconds(Int64(interval * 1000)))
                default:
                    throw LedgerFailure("shard \(shardName), height \(next): \(errorText(body))")
                }
            }
        }
    }
}

struct LedgerVerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check an inclusion proof offline against the topology's keys alone.",
        discussion: """
            Checks that the proof's cluster is in the topology, that its height follows from its \
            cluster and round, that the certificate holds n-f valid Commit signatures of distinct \
            replicas of that cluster over the block digest, that the block header hashes to that \
            digest, that the Merkle path leads from the transaction to the header's transactions root, \
            and that the client's signature verifies. Asks no replica. Exits 0 when the proof holds, 1 otherwise.
            """)

    @Argument(help: "The proof file (from `geofabric ledger tx --proof FILE`).") var file: String
    @Argument(help: "The topology file whose keys the proof is checked against.") var topology: String
    @Flag(help: "Print JSON: {valid, txid, shard, height, cluster, round, position, block_digest, signers, error}.") var json = false

    struct Report: Encodable {
        var valid: Bool
        var txid: String?
        var shard: String?
        var height: UInt64?
        var cluster: Int?
        var round: UInt64?
        var position: Int?
        var block_digest: String?
        var signers: Int?
        var error: String?
    }

    func run() async throws {
        try await runLedger {
            let loaded = try LoadedTopology.load(topology)
            let ring: KeyRing
            do { ring = try KeyRing.load(for: loaded.topology, baseDirectory: loaded.directory) } catch { throw LedgerFailure("keys: \(error)") }
            let report = Self.check(file: file, topology: loaded.topology, keys: ring)
            if json {
                print(JSONOutput.encode(report))
            } else if report.valid {
                print("valid: transaction \(report.txid ?? "?") is at position \(report.position ?? 0) of the block at height "
                      + "\(report.height ?? 0) of shard \(report.shard ?? "?") (cluster \(report.cluster ?? 0), round \(report.round ?? 0)), "
                      + "digest \(report.block_digest ?? ""), certified by \(report.signers ?? 0) replicas")
            }
            if !report.valid {
                if !json { FileHandle.standardError.write(Data("error: invalid proof: \(report.error ?? "?")\n".utf8)) }
                throw ExitCode(1)
            }
        }
    }

    static func check(file: String, topology: Topology, keys: KeyRing) -> Report {
        let proof: InclusionProof
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: file))
            let document = try JSONDecoder().decode(LedgerTransactionDocument.self, from: data)
            guard document.format == LedgerTransactionDocument.formatName else {
                return Report(valid: false, error: "\(file): format \(document.format), expected \(LedgerTransactionDocument.formatName)")
            }
            guard let bytes = Hex.decode(document.proof) else { return Report(valid: false, error: "\(file): proof is not hex") }
            proof = try InclusionProofCodec.decode(bytes)
        } catch let error as WireError {
            return Report(valid: false, error: "\(file): the proof does not decode: \(error)")
        } catch let error as DecodingError {
            return Report(valid: false, error: "\(file): not a proof file: \(error)")
        } catch {
            return Report(valid: false, error: "\(file): \(error.localizedDescription)")
        }
        let suite = Ed25519Suite(topology: topology, keys: keys, signingKey: nil)
        var report = Report(valid: false, txid: TransactionID(proof.transaction).description,
                            shard: topology.shard(proof.header.cluster.shard)?.name, height: proof.height,
                            cluster: Int(proof.header.cluster.index), round: proof.header.round, position: Int(proof.position),
                            block_digest: proof.blockDigest.hex, signers: proof.certificate.signatures.count)
        do throws(InclusionProofError) {
            try InclusionProofCheck.verify(proof, topology: topology, suite: suite)
            report.valid = true
        } catch {
            report.error = error.description
        }
        return report
    }
}

enum LedgerText {
    static func block(_ block: LedgerBlockDocument) -> String {
        "height \(block.height)  cluster \(block.cluster)  round \(block.round)  \(block.transaction_count) tx"
            + (block.statement_count > 0 ? " \(block.statement_count) statements" : "")
            + "  digest \(block.digest.prefix(16))  root \(block.transactions_root.prefix(16))  signers \(block.certificate_signers.count)"
    }
}

extension JSONOutput {
    /// One line of JSON (for streams: `ledger tail --json` prints one object per block).
    static func line<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try! encoder.encode(value), as: UTF8.self)
    }
}
