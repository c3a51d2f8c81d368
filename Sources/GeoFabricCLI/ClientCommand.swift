// `geofabric client put|get|add|transfer ...`: one operation against a running deployment; prints
// the result and where it landed in the shard ledger.

import ArgumentParser
import Foundation
import GeoClient
import GeoCore
import GeoCrypto
import GeoNet
import Logging

struct ClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client",
        abstract: "Run one operation against a running deployment (`geofabric up`).",
        discussion: """
            The operation is signed with the client's key and sent to the home cluster of its key's \
            shard (the cluster in --region, or the shard's first); the result is printed once f + 1 \
            replicas of that cluster sent matching replies. Values are bytes; a value that is the \
            canonical decimal text of a 64-bit integer ("-12", "0", "100": no '+', no leading zeros) is \
            a number, which add and transfer use (an absent key counts as 0) and which prints as a \
            number. Exit status: 0 done, 2 refused or aborted, 1 failed (no answer, or the replicas \
            refused this client: a topology mismatch is named at once).
            """,
        subcommands: [Put.self, Get.self, Add.self, Transfer.self])

    struct Options: ParsableArguments {
        @Argument(help: "The topology file (default: the embedded default topology).")
        var topologyFile: String?

        /// The spelling before the topology became positional in every command; still read.
        @Option(name: .customLong("topology"), help: .hidden)
        var topologyOption: String?

        var topology: String? { topologyFile ?? topologyOption }

        func validate() throws {
            if topologyFile != nil, topologyOption != nil { throw ValidationError("give the topology once: TOPOLOGY or --topology, not both") }
        }

        @Option(help: "The client identity to sign with (0 ..< the topology's client count).")
        var client: UInt32 = 0

        @Option(help: "The region whose cluster to use (default: the shard's first cluster).")
        var region: String?

        @Option(help: "Seconds to wait for f + 1 matching replies.")
        var timeout: Double = 15

        @Flag(help: "Print the result as JSON on standard output: {operation, outcome, result, reason?, shard, cluster, round, height, latency_ms, txid}.")
        var json = false
    }

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set KEY to VALUE.")
        @Argument var key: String
        @Argument var value: String
        @OptionGroup var options: Options
        func run() async throws {
            try await ClientRun.run(.put(key: Array(key.utf8), value: Array(value.utf8)), options: options)
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Read KEY (ordered like any transaction, so the read is linearizable).")
        @Argument var key: String
        @OptionGroup var options: Options
        func run() async throws { try await ClientRun.run(.get(key: Array(key.utf8)), options: options) }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add DELTA to the integer at KEY (absent counts as 0).")
        @Argument var key: String
        @Argument(help: "A signed 64-bit integer.") var delta: Int64
        @OptionGroup var options: Options
        func run() async throws { try await ClientRun.run(.add(key: Array(key.utf8), delta: delta), options: options) }
    }

    struct Transfer: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move AMOUNT from account FROM to account TO.",
            discussion: "When FROM and TO live in different shards the transfer is cross-shard: it commits on both or on neither, and an abort says why (exit status 2).")
        @Argument var from: String
        @Argument var to: String
        @Argument var amount: UInt64
        @OptionGroup var options: Options
        func run() async throws {
            try await ClientRun.run(.transfer(from: Array(from.utf8), to: Array(to.utf8), amount: amount), options: options)
        }
    }
}

struct ClientResult: Encodable {
    var operation: String
    /// stored, value, number, transferred, refused, committed or aborted.
    var outcome: String
    /// What the operation answered: "stored"; a read's value (a number when it is one, else its
    /// text, "0x..." hex when it is not UTF-8, null when the key is absent); an add's number;
    /// {from_balance, to_balance} after a transfer; "refused", "committed", "aborted".
    var result: JSONValue
    /// Why it was refused or aborted, in words ("insufficient balance").
    var reason: String?
    var shard: String
    var cluster: String
    var round: UInt64
    var height: UInt64
    var latency_ms: Double
    /// CLIENT:REQUEST, what `geofabric ledger tx` takes.
    var txid: String
}

/// A JSON value whose type depends on the answer (a number, text, null, or an object).
enum JSONValue: Encodable, Equatable {
    case string(String)
    case number(Int64)
    case null
    case object([String: JSONValue])

    func encode(to encoder: any Encoder) throws {
        switch self {
        case let .object(fields):
            var container = encoder.container(keyedBy: JSONKey.self)
            for (key, value) in fields { try container.encode(value, forKey: JSONKey(key)) }
        default:
            var container = encoder.singleValueContainer()
            switch self {
            case let .string(text): try container.encode(text)
            case let .number(number): try container.encode(number)
            case .null: try container.encodeNil()
            case .object: break
            }
        }
    }

    struct JSONKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

enum ClientRun {
    static func describe(_ operation: GeoCore.Operation) -> String {
        func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
        switch operation {
        case let .put(key, value): return "put \(text(key)) \(text(value))"
        case let .get(key): return "get \(text(key))"
        case let .add(key, delta): return "add \(text(key)) \(delta)"
        case let .transfer(from, to, amount): return "transfer \(text(from)) \(text(to)) \(amount)"
        }
    }

    /// The line `client` prints for a result.
    static func describe(_ result: ExecutionResult) -> String {
        switch result {
        case .stored: return "stored"
        case let .value(value): return value.map(describeValue) ?? "(absent)"
        case let .number(number): return "\(number)"
        case let .transferred(from, to): return "transferred (balances now \(from) and \(to))"
        case let .refused(reason): return "refused: \(words(reason))"
        case .crossShardCommitted: return "committed on every shard"
        case let .crossShardAborted(reason): return "aborted on every shard: \(words(reason))"
        }
    }

    /// A stored value as text: its number, its UTF-8 text, or "0x" and hex when it is not text.
    static func describeValue(_ bytes: [UInt8]) -> String {
        if let number = KeyValueStore.decimal(bytes) { return "\(number)" }
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        return "0x" + Hex.encode(bytes)
    }

    /// The JSON form of a result: (outcome, result, reason).
    static func json(_ result: ExecutionResult) -> (String, JSONValue, String?) {
        switch result {
        case .stored: return ("stored", .string("stored"), nil)
        case let .value(value):
            guard let value else { return ("value", .null, nil) }
            if let number = KeyValueStore.decimal(value) { return ("value", .number(number), nil) }
            return ("value", .string(describeValue(value)), nil)
        case let .number(number): return ("number", .number(number), nil)
        case let .transferred(from, to):
            return ("transferred", .object(["from_balance": .number(from), "to_balance": .number(to)]), nil)
        case let .refused(reason): return ("refused", .string("refused"), words(reason))
        case .crossShardCommitted: return ("committed", .string("committed"), nil)
        case let .crossShardAborted(reason): return ("aborted", .string("aborted"), words(reason))
        }
    }

    /// Why the state machine refused an operation, in words, with what it means.
    static func words(_ refusal: Refusal) -> String {
        switch refusal {
        case .insufficientBalance: return label(refusal)
        case .overflow: return "overflow (the result would not fit a 64-bit integer)"
        case .notANumber: return "not a number (a number is the decimal text of a 64-bit integer, e.g. 100 or -5)"
        case .sameAccount: return "same account (a transfer needs two)"
        case .locked: return "locked (a key is held by a cross-shard transaction in progress; try again)"
        case .wrongShard: return "wrong shard (the first key is not on this shard)"
        }
    }

    /// The same in a few words, for tables and counters (`bench`).
    static func label(_ refusal: Refusal) -> String {
        switch refusal {
        case .insufficientBalance: return "insufficient balance"
        case .overflow: return "overflow"
        case .notANumber: return "not a number"
        case .sameAccount: return "same account"
        case .locked: return "locked"
        case .wrongShard: return "wrong shard"
        }
    }

    /// Why a cross-shard transaction aborted, in words, with what it means.
    static func words(_ abort: CrossShardAbort) -> String {
        switch abort {
        case .conflict: return "conflict (a key is locked by another cross-shard transaction)"
        case .insufficientBalance: return label(abort)
        case .badInput: return "bad input (not a number, an overflow, or the same account twice)"
        case .timeout: return "timeout (a shard's vote did not arrive in time)"
        }
    }

    static func label(_ abort: CrossShardAbort) -> String {
        switch abort {
        case .conflict: return "conflict"
        case .insufficientBalance: return "insufficient balance"
        case .badInput: return "bad input"
        case .timeout: return "timeout"
        }
    }

    static func run(_ operation: GeoCore.Operation, options: ClientCommand.Options) async throws {
        let loaded = try LoadedTopology.load(options.topology)
        let topology = loaded.topology
        func fail(_ message: String) throws -> Never {
            FileHandle.standardError.write(Data("error: \(message)\n".utf8))
            throw ExitCode(1)
        }
        guard options.client < topology.clientCount else {
            try fail("client \(options.client) has no key: the topology has \(topology.clientCount) clients (0 ..< \(topology.clientCount))")
        }
        // A transfer whose keys live in two shards is a cross-shard transaction: it goes to the
        // client's home cluster of the coordinator shard, the shard of its first key.
        guard let key = operation.keys.first else { try fail("the operation has no key") }
        if let region = options.region, !topology.regions.contains(where: { $0.name == region }) {
            try fail("no region '\(region)' in \(loaded.displayName)")
        }
        guard let cluster = FabricClient.homeCluster(in: topology, forKey: key, region: options.region) else {
            try fail("no cluster serves this key")
        }
        let clientID = ClientID(options.client)
        let keys: KeyRing
        let signingKey: SigningKey
        do {
            keys = try KeyRing.load(for: topology, baseDirectory: loaded.directory)
            signingKey = try IdentityKeys.signingKey(for: topology, identity: Topology.clientName(clientID), isClient: true,
                                                     baseDirectory: loaded.directory)
        } catch {
            try fail("\(error)")
        }
        let pki: OperatorPKI?
        do {
            pki = try await OperatorPKI.load(topology: topology, keyRing: keys, baseDirectory: loaded.directory,
                                             identities: [.client(clientID)])
        } catch {
            try fail("TLS certificates: \(error)")
        }
        var logger = Logger(label: "geofabric.client")
        logger.logLevel = .error
        // Each call is a new process that does not know its last request id: the wall clock in
        // microseconds is above any id an earlier call used.
        let firstRequestID = UInt64(Date().timeIntervalSince1970 * 1_000_000)
        let client = FabricClient(topology: topology, keys: keys, client: clientID, key: signingKey, cluster: cluster,
                                  firstRequestID: firstRequestID, authority: pki?.authority(for: .client(clientID)), logger: logger)
        await client.start()
        let completion: Completion
        do {
            completion = try await client.submit(operation, timeout: .milliseconds(Int64(options.timeout * 1000)))
        } catch {
            await client.shutdown()
            try fail("\(error)")
        }
        await client.shutdown()
        let shardName = topology.shard(cluster.id.shard)?.name ?? "?"
        let proposer = topology.shard(cluster.id.shard)?.clusters[Int(completion.position.clusterIndex)].region ?? "?"
        let milliseconds = completion.latency.seconds * 1000
        let (outcome, result, reason) = json(completion.result)
        let output = ClientResult(operation: describe(operation), outcome: outcome, result: result, reason: reason, shard: shardName,
                                  cluster: proposer, round: completion.position.round, height: completion.position.height,
                                  latency_ms: milliseconds, txid: "\(clientID.rawValue):\(completion.requestID)")
        if options.json {
            print(JSONOutput.encode(output))
        } else {
            print(describe(completion.result))
            print("  ledger: shard \(shardName), height \(output.height) (round \(output.round), block of \(proposer)), txid \(output.txid); \(String(format: "%.1f", milliseconds)) ms")
        }
        if case .refused = completion.result { throw ExitCode(2) }
        if case .crossShardAborted = completion.result { throw ExitCode(2) }
    }
}
