// `geofabric client put|get|add|transfer ...`: one operation against a running deployment; prints
// the result and where it landed in the shard ledger.

import ArgumentParser
import Foundation
import GeoClient
import GeoCore
import GeoCrypto
import Logging

struct ClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client",
        abstract: "Run one operation against a running deployment (`geofabric up`).",
        discussion: """
            The operation is signed with the client's key and sent to the home cluster of its key's \
            shard (the cluster in --region, or the shard's first); the result is printed once f + 1 \
            replicas of that cluster sent matching replies.
            """,
        subcommands: [Put.self, Get.self, Add.self, Transfer.self])

    struct Options: ParsableArguments {
        @Option(help: "The topology file (default: the embedded default topology).")
        var topology: String?

        @Option(help: "The client identity to sign with (0 ..< the topology's client count).")
        var client: UInt32 = 0

        @Option(help: "The region whose cluster to use (default: the shard's first cluster).")
        var region: String?

        @Option(help: "Seconds to wait for f + 1 matching replies.")
        var timeout: Double = 15

        @Flag(help: "Print the result as JSON.")
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
    var result: String
    var shard: String
    var cluster: String
    var round: UInt64
    var height: UInt64
    var latency_ms: Double
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

    static func describe(_ result: ExecutionResult) -> String {
        switch result {
        case .stored: return "stored"
        case let .value(value): return value.map { String(decoding: $0, as: UTF8.self) } ?? "(absent)"
        case let .number(number): return "\(number)"
        case let .transferred(from, to): return "transferred (balances now \(from) and \(to))"
        case let .refused(reason): return "refused: \(reason)"
        case .crossShardCommitted: return "committed on every shard"
        case let .crossShardAborted(reason): return "aborted on every shard: \(reason)"
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
        var logger = Logger(label: "geofabric.client")
        logger.logLevel = .error
        // Each call is a new process that does not know its last request id: the wall clock in
        // microseconds is above any id an earlier call used.
        let firstRequestID = UInt64(Date().timeIntervalSince1970 * 1_000_000)
        let client = FabricClient(topology: topology, keys: keys, client: clientID, key: signingKey, cluster: cluster,
                                  firstRequestID: firstRequestID, logger: logger)
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
        let output = ClientResult(operation: describe(operation), result: describe(completion.result), shard: shardName, cluster: proposer,
                                  round: completion.position.round, height: completion.position.height, latency_ms: milliseconds)
        if options.json {
            print(JSONOutput.encode(output))
        } else {
            print("\(output.result)")
            print("  ledger: shard \(shardName), height \(output.height) (round \(output.round), block of \(proposer)); \(String(format: "%.1f", milliseconds)) ms")
        }
        if case .refused = completion.result { throw ExitCode(2) }
        if case .crossShardAborted = completion.result { throw ExitCode(2) }
    }
}
