import Foundation
import GeoCore
@testable import GeoTopology
import Testing
import GeoTestKit

/// The repository's topologies/ folder.
let topologiesDirectory = TestKit.repositoryRoot + "/topologies"

@Suite struct ShippedTopologyTests {
    static let files = ["local-1x4.yaml", "geo-4x4.yaml", "sharded-2x2x4.yaml", "paper-4x15.yaml", "paper-6x10.yaml"]

    @Test(arguments: files)
    func shippedTopologyValidates(file: String) throws {
        let topology = try TopologyLoader.load(path: "\(topologiesDirectory)/\(file)")
        #expect(topology.name + ".yaml" == file)
        for shard in topology.shards {
            for cluster in shard.clusters {
                #expect(cluster.n >= 3 * cluster.f + 1 && cluster.f >= 1)
            }
        }
    }

    @Test func everyShippedTopologyIsListed() throws {
        let present = try FileManager.default.contentsOfDirectory(atPath: topologiesDirectory).filter { $0.hasSuffix(".yaml") }
        #expect(Set(present) == Set(Self.files))
    }

    @Test func shapesAreAsNamed() throws {
        func load(_ name: String) throws -> Topology { try TopologyLoader.load(path: "\(topologiesDirectory)/\(name).yaml") }
        let paper4 = try load("paper-4x15"), paper6 = try load("paper-6x10")
        #expect(paper4.allReplicas.count == 60 && paper4.shards[0].clusters.map(\.n) == [15, 15, 15, 15])
        #expect(paper4.shards[0].clusters.allSatisfy { $0.f == 4 })
        #expect(paper6.allReplicas.count == 60 && paper6.shards[0].clusters.count == 6)
        #expect(paper6.shards[0].clusters.allSatisfy { $0.f == 3 })
        let geo = try load("geo-4x4")
        #expect(geo.shards[0].clusters.map(\.region) == ["oregon", "iowa", "montreal", "belgium"])
        #expect(geo.link(from: "oregon", to: "belgium") == Link(rttMilliseconds: 136, megabitsPerSecond: 194))
        #expect(geo.link(from: "belgium", to: "oregon") == Link(rttMilliseconds: 136, megabitsPerSecond: 194))
        let sharded = try load("sharded-2x2x4")
        #expect(sharded.shards.count == 2 && sharded.shards.allSatisfy { $0.clusters.count == 2 })
    }

    @Test func embeddedDefaultIsOneShardTwoRegionsFourEach() {
        let topology = EmbeddedTopology.load()
        #expect(topology.shards.count == 1)
        #expect(topology.shards[0].clusters.map(\.region) == ["oregon", "iowa"])
        #expect(topology.shards[0].clusters.map(\.n) == [4, 4])
    }
}

@Suite struct TopologyModelTests {
    @Test func replicasHaveStableReadableNamesAndPorts() throws {
        let topology = try TopologyLoader.load(path: "\(topologiesDirectory)/sharded-2x2x4.yaml")
        let names = topology.allReplicas.map(\.name)
        #expect(names.prefix(5) == ["s0-oregon-0", "s0-oregon-1", "s0-oregon-2", "s0-oregon-3", "s0-iowa-0"])
        #expect(names.last == "s1-belgium-3")
        #expect(topology.allReplicas.map(\.number) == (0..<16).map(UInt32.init))
        #expect(topology.allReplicas.map(\.port) == Array(7000..<7016))
        #expect(topology.replica(named: "s1-montreal-2")?.id == ReplicaID(cluster: ClusterID(shard: ShardID(1), index: 0), index: 2))
        #expect(topology.replica(number: 9)?.name == "s1-montreal-1")
        #expect(topology.replica(number: 16) == nil)
    }

    @Test func hashPlacementSpreadsKeysOverBothShards() throws {
        let topology = try TopologyLoader.load(path: "\(topologiesDirectory)/sharded-2x2x4.yaml")
        var counts = [0, 0]
        for index in 0..<1000 {
            counts[Int(topology.shardID(forKey: Array("account-\(index)".utf8)).rawValue)] += 1
        }
        #expect(counts[0] > 350 && counts[1] > 350, "\(counts)")
    }

    @Test func prefixPlacementUsesTheLongestMatch() throws {
        let topology = try TopologyLoader.parse(text: """
            name: p
            regions: [eu, us]
            wan: [{between: [eu, us], rtt_ms: 80, mbit_s: 300}]
            shards:
              - {name: europe, keys: {prefixes: ["eu/"]}, clusters: [{region: eu, replicas: 4}]}
              - {name: rest, keys: {prefixes: ["", "eu/archive/"]}, clusters: [{region: us, replicas: 4}]}
            """, file: "p.yaml")
        #expect(topology.shardID(forKey: Array("eu/alice".utf8)) == ShardID(0))
        #expect(topology.shardID(forKey: Array("us/bob".utf8)) == ShardID(1))
        #expect(topology.shardID(forKey: Array("eu/archive/x".utf8)) == ShardID(1))
    }

    @Test func hostPortListsAndDefaults() throws {
        let topology = try TopologyLoader.parse(text: """
            name: hosts
            regions: [a]
            shards:
              - name: s0
                clusters:
                  - {region: a, replicas: ["10.0.0.1:9000", "10.0.0.2:9000", "10.0.0.3:9000", "10.0.0.4:9000", "10.0.0.5:9000"]}
            protocol: {batch_size: 50}
            """, file: "hosts.yaml")
        let cluster = topology.shards[0].clusters[0]
        #expect(cluster.n == 5 && cluster.f == 1)
        #expect(cluster.replicas[4].address == "10.0.0.5:9000")
        #expect(cluster.replicas[4].statusPort == 10_000)
        #expect(topology.parameters.batchSize == 50)
        #expect(topology.parameters.checkpointEvery == ProtocolParameters().checkpointEvery)
        #expect(topology.keys == .development && topology.clientCount == TopologyLoader.defaultClients)
    }
}

/// One bad topology, and what validation must say about it.
struct BadCase: CustomTestStringConvertible, Sendable {
    var name: String
    var bytes: [UInt8]
    var problem: TopologyProblem
    var line: Int?
    var field: String
    var mentions: String

    init(_ name: String, _ text: String, _ problem: TopologyProblem, line: Int?, field: String, mentions: String) {
        self.init(name, bytes: Array(text.utf8), problem, line: line, field: field, mentions: mentions)
    }

    init(_ name: String, bytes: [UInt8], _ problem: TopologyProblem, line: Int?, field: String, mentions: String) {
        self.name = name
        self.bytes = bytes
        self.problem = problem
        self.line = line
        self.field = field
        self.mentions = mentions
    }

    var testDescription: String { name }
}

/// A valid two-region topology with `cluster2` as the second cluster and `extra` appended at the end.
func twoRegions(cluster1: String = "{region: oregon, replicas: 4}", cluster2: String = "{region: iowa, replicas: 4}",
                extra: String = "") -> String {
    """
    name: t
    regions: [oregon, iowa]
    wan:
      - {between: [oregon, iowa], rtt_ms: 38, mbit_s: 669}
    shards:
      - name: s0
        clusters:
          - \(cluster1)
          - \(cluster2)
    \(extra)
    """
}

let badCases: [BadCase] = [
    BadCase("syntax error", "name: t\nregions: [oregon\nshards: []\n", .syntax, line: 3, field: "", mentions: "YAML syntax error"),
    BadCase("wrong type", twoRegions(cluster2: "{region: iowa, replicas: four}"), .wrongType, line: 9,
            field: "shards[0].clusters[1].replicas", mentions: "expected an integer, found the text 'four'"),
    BadCase("unknown key with suggestion", twoRegions(extra: "protocl: {batch_size: 10}"), .unknownKey, line: 10,
            field: "protocl", mentions: "did you mean 'protocol'?"),
    BadCase("unknown nested key", twoRegions(cluster2: "{region: iowa, replica: 4}"), .unknownKey, line: 9,
            field: "shards[0].clusters[1].replica", mentions: "did you mean 'replicas'?"),
    BadCase("n below 4", twoRegions(cluster2: "{region: iowa, replicas: 3}"), .tooFewReplicas, line: 9,
            field: "shards[0].clusters[1].replicas", mentions: "f = (n-1)/3 = 0"),
    BadCase("n below 3f+1 for a stated f", twoRegions(cluster2: "{region: iowa, replicas: 6, f: 2}"), .tooFewReplicas, line: 9,
            field: "shards[0].clusters[1].replicas", mentions: "cannot tolerate f = 2"),
    BadCase("zero replicas", twoRegions(cluster2: "{region: iowa, replicas: 0}"), .nonPositive, line: 9,
            field: "shards[0].clusters[1].replicas", mentions: "must be positive, found 0"),
    BadCase("negative replicas", twoRegions(cluster2: "{region: iowa, replicas: -4}"), .nonPositive, line: 9,
            field: "shards[0].clusters[1].replicas", mentions: "found -4"),
    BadCase("zero batch size", twoRegions(extra: "protocol: {batch_size: 0}"), .nonPositive, line: 10,
            field: "protocol.batch_size", mentions: "batch_size must be positive"),
    BadCase("negative rtt", twoRegions().replacingOccurrences(of: "rtt_ms: 38", with: "rtt_ms: -38"), .nonPositive, line: 4,
            field: "wan[0].rtt_ms", mentions: "rtt_ms must be positive"),
    BadCase("duplicate shard name", """
        name: t
        regions: [a]
        key_buckets: 2
        shards:
          - {name: s0, keys: {hash: [0, 0]}, clusters: [{region: a, replicas: 4}]}
          - {name: s0, keys: {hash: [1, 1]}, clusters: [{region: a, replicas: 4}]}
        """, .duplicateName, line: 6, field: "shards[1].name", mentions: "already used by shards[0].name"),
    BadCase("duplicate region in the list", "name: t\nregions: [a, b, a]\nshards: [{name: s0, clusters: [{region: a, replicas: 4}]}]\n",
            .duplicateName, line: 2, field: "regions[2]", mentions: "listed twice"),
    BadCase("two clusters of a shard in one region", twoRegions(cluster2: "{region: oregon, replicas: 4}"), .duplicateName, line: 9,
            field: "shards[0].clusters[1].region", mentions: "already has a cluster in region 'oregon'"),
    BadCase("duplicate address", twoRegions(
        cluster1: "{region: oregon, replicas: [\"h:1\", \"h:2\", \"h:3\", \"h:4\"]}",
        cluster2: "{region: iowa, replicas: [\"h:5\", \"h:6\", \"h:7\", \"h:1\"]}"), .duplicateAddress, line: 9,
            field: "shards[0].clusters[1]", mentions: "address h:1"),
    BadCase("status port collides with a replica port", twoRegions(
        cluster1: "{region: oregon, replicas: [\"h:1\", \"h:2\", \"h:3\", \"h:4\"]}",
        cluster2: "{region: iowa, replicas: [\"h:5\", \"h:6\", \"h:7\", \"h:1001\"]}"), .duplicateAddress, line: 9,
            field: "shards[0].clusters[1]", mentions: "already used by status port of s0-oregon-0"),
    BadCase("unknown region with suggestion", twoRegions(cluster2: "{region: iowaa, replicas: 4}"), .unknownRegion, line: 9,
            field: "shards[0].clusters[1].region", mentions: "did you mean 'iowa'?"),
    BadCase("unknown region in the WAN", twoRegions().replacingOccurrences(of: "between: [oregon, iowa]", with: "between: [oregon, belgium]"),
            .unknownRegion, line: 4, field: "wan[0].between[1]", mentions: "unknown region 'belgium'"),
    BadCase("overlapping hash placement", """
        name: t
        regions: [a]
        key_buckets: 8
        shards:
          - {name: s0, keys: {hash: [0, 4]}, clusters: [{region: a, replicas: 4}]}
          - {name: s1, keys: {hash: [4, 7]}, clusters: [{region: a, replicas: [\"h:1\", \"h:2\", \"h:3\", \"h:4\"]}]}
        """, .overlappingPlacement, line: 6, field: "shards[1].keys", mentions: "hash bucket 4 is placed on both"),
    BadCase("incomplete hash placement", """
        name: t
        regions: [a]
        key_buckets: 8
        shards:
          - {name: s0, keys: {hash: [0, 2]}, clusters: [{region: a, replicas: 4}]}
          - {name: s1, keys: {hash: [5, 6]}, clusters: [{region: a, replicas: [\"h:1\", \"h:2\", \"h:3\", \"h:4\"]}]}
        """, .incompletePlacement, line: 5, field: "shards", mentions: "hash buckets 3...4, 7 of 0...7 belong to no shard"),
    BadCase("overlapping prefixes", """
        name: t
        regions: [a]
        shards:
          - {name: s0, keys: {prefixes: ["", "eu/"]}, clusters: [{region: a, replicas: 4}]}
          - {name: s1, keys: {prefixes: ["eu/"]}, clusters: [{region: a, replicas: [\"h:1\", \"h:2\", \"h:3\", \"h:4\"]}]}
        """, .overlappingPlacement, line: 5, field: "shards[1].keys", mentions: "prefix 'eu/' is placed on both"),
    BadCase("incomplete prefixes", """
        name: t
        regions: [a]
        shards:
          - {name: s0, keys: {prefixes: ["us/"]}, clusters: [{region: a, replicas: 4}]}
          - {name: s1, keys: {prefixes: ["eu/"]}, clusters: [{region: a, replicas: [\"h:1\", \"h:2\", \"h:3\", \"h:4\"]}]}
        """, .incompletePlacement, line: 4, field: "shards", mentions: "empty prefix"),
    BadCase("missing keys with several shards", """
        name: t
        regions: [a]
        shards:
          - {name: s0, clusters: [{region: a, replicas: 4}]}
          - {name: s1, keys: {hash: [0, 15]}, clusters: [{region: a, replicas: [\"h:1\", \"h:2\", \"h:3\", \"h:4\"]}]}
        """, .missingField, line: 4, field: "shards[0].keys", mentions: "missing required field 'keys'"),
    BadCase("missing WAN pair", """
        name: t
        regions: [oregon, iowa, belgium]
        wan:
          - {between: [oregon, iowa], rtt_ms: 38, mbit_s: 669}
          - {between: [oregon, belgium], rtt_ms: 136, mbit_s: 194}
        shards:
          - name: s0
            clusters:
              - {region: oregon, replicas: 4}
              - {region: iowa, replicas: 4}
              - {region: belgium, replicas: 4}
        """, .missingWANPair, line: 4, field: "wan", mentions: "no WAN link between 'iowa' and 'belgium'"),
    BadCase("duplicate key", "name: t\nname: u\nregions: [a]\nshards: []\n", .duplicateKey, line: 2, field: "name", mentions: "duplicate key 'name'"),
    BadCase("duplicate nested key", twoRegions(cluster2: "{region: iowa, replicas: 4, region: iowa}"), .duplicateKey, line: 9,
            field: "region", mentions: "duplicate key 'region'"),
    BadCase("missing required field", "name: t\nregions: [a]\n", .missingField, line: 1, field: "shards",
            mentions: "missing required field 'shards'"),
    BadCase("window below two checkpoints", twoRegions(extra: "protocol: {window: 16, checkpoint_every: 16}"), .invalidValue,
            line: 10, field: "protocol.window", mentions: "at least 2 x checkpoint_every"),
    BadCase("empty file", "", .empty, line: nil, field: "", mentions: "the file is empty"),
    BadCase("only comments", "# nothing here\n", .empty, line: nil, field: "", mentions: "the file is empty"),
    BadCase("invalid UTF-8", bytes: Array("name: t\nregions: [a]\n".utf8) + [0xff, 0xfe, 0x41], .notText, line: 3, field: "",
            mentions: "is not UTF-8 text"),
    BadCase("NUL bytes", bytes: Array("name: t\n".utf8) + [0x00, 0x01], .notText, line: 2, field: "", mentions: "(0x0)"),
    BadCase("not a mapping", "- just\n- a list\n", .wrongType, line: 1, field: "", mentions: "expected a mapping"),
    BadCase("control character", bytes: Array("name: t\nregions: [a]\n".utf8) + [0x07], .notText, line: 3, field: "", mentions: "(0x7)"),
    BadCase("duplicate top-level key after a nested one", "name: t\nregions: [a]\nshards:\n  - name: s0\n    clusters: []\nname: u\n",
            .duplicateKey, line: 6, field: "name", mentions: "duplicate key 'name'"),
    BadCase("replica names that collide", """
        name: t
        regions: [b-c, c]
        key_buckets: 2
        shards:
          - {name: a, keys: {hash: [0, 0]}, clusters: [{region: b-c, replicas: 4}]}
          - {name: a-b, keys: {hash: [1, 1]}, clusters: [{region: c, replicas: [\"h:1\", \"h:2\", \"h:3\", \"h:4\"]}]}
        """, .duplicateName, line: 6, field: "shards[1].clusters[0]", mentions: "replica name 'a-b-c-0' is made twice"),
    BadCase("an f that overflows 3f+1", twoRegions(cluster2: "{region: iowa, replicas: 4, f: 3074457345618258603}"), .tooFewReplicas,
            line: 9, field: "shards[0].clusters[1].replicas", mentions: "cannot tolerate f = 3074457345618258603"),
    BadCase("a status port offset that overflows", twoRegions(extra: "status_port_offset: 9223372036854775807"), .invalidValue,
            line: 10, field: "status_port_offset", mentions: "at most 65534"),
    BadCase("a checkpoint interval that overflows", twoRegions(extra: "protocol: {checkpoint_every: 4611686018427387904}"),
            .invalidValue, line: 10, field: "protocol.checkpoint_every", mentions: "at most 100000"),
    BadCase("a checkpoint interval above half the window", twoRegions(extra: "protocol: {checkpoint_every: 40}"),
            .invalidValue, line: 10, field: "protocol.window", mentions: "at least 2 x checkpoint_every"),
    BadCase("a snapshot interval that is not a multiple of the checkpoint interval",
            twoRegions(extra: "protocol: {checkpoint_every: 16, snapshot_every: 100}"),
            .invalidValue, line: 10, field: "protocol.snapshot_every", mentions: "multiple of checkpoint_every"),
    BadCase("retained rounds too few for a replica catching up", twoRegions(extra: "protocol: {retain_rounds: 10}"),
            .invalidValue, line: 10, field: "protocol.retain_rounds", mentions: "at least snapshot_every"),
    BadCase("too many key buckets", twoRegions(extra: "key_buckets: 1000000000000"), .invalidValue, line: 10,
            field: "key_buckets", mentions: "at most 65536"),
    BadCase("too many clients", twoRegions(extra: "clients: 4294967296"), .invalidValue, line: 10, field: "clients", mentions: "at most 100000"),
    BadCase("tls that is not a boolean", twoRegions(extra: "transport: {tls: no}"), .wrongType, line: 10,
            field: "transport.tls", mentions: "tls is true or false"),
    BadCase("tls quoted as text", twoRegions(extra: "transport: {tls: \"false\"}"), .wrongType, line: 10,
            field: "transport.tls", mentions: "tls is true or false"),
    BadCase("unknown transport key", twoRegions(extra: "transport: {tsl: false}"), .unknownKey, line: 10,
            field: "transport.tsl", mentions: "did you mean 'tls'?"),
    BadCase("a CA bundle without certificates", twoRegions(extra: "transport: {ca: pki/ca.pem}"), .missingField, line: 10,
            field: "transport.ca", mentions: "certificates is missing"),
    BadCase("certificates without a CA bundle", twoRegions(extra: "transport: {certificates: pki}"), .missingField, line: 10,
            field: "transport.certificates", mentions: "ca is missing"),
    BadCase("an operator PKI with TLS off", twoRegions(extra: "transport: {tls: false, ca: pki/ca.pem, certificates: pki}"),
            .invalidValue, line: 10, field: "transport.ca", mentions: "need TLS"),
    BadCase("an empty CA bundle path", twoRegions(extra: "transport: {ca: \"\", certificates: pki}"), .invalidValue, line: 10,
            field: "transport.ca", mentions: "path is empty"),
]

@Suite struct TransportSectionTests {
    @Test func tlsIsOnUnlessTheTopologySaysOtherwise() throws {
        #expect(try TopologyLoader.parse(bytes: Array(twoRegions().utf8), file: "t.yaml").transport.tls)
        #expect(try TopologyLoader.parse(bytes: Array(twoRegions(extra: "transport: {tls: true}").utf8), file: "t.yaml").transport.tls)
        #expect(try !TopologyLoader.parse(bytes: Array(twoRegions(extra: "transport: {tls: false}").utf8), file: "t.yaml").transport.tls)
        #expect(EmbeddedTopology.load().transport.tls)
    }

    @Test func anOperatorPKINamesACABundleAndACertificateDirectory() throws {
        let topology = try TopologyLoader.parse(bytes: Array(twoRegions(extra: "transport: {ca: pki/ca.pem, certificates: pki}").utf8), file: "t.yaml")
        #expect(topology.transport.tls)
        #expect(topology.transport.authority == OperatorAuthorityFiles(caBundle: "pki/ca.pem", certificates: "pki"))
        #expect(try TopologyLoader.parse(bytes: Array(twoRegions().utf8), file: "t.yaml").transport.authority == nil)
    }
}

@Suite struct BadTopologyTests {
    @Test(arguments: badCases)
    func refusedWithLineAndField(_ bad: BadCase) throws {
        do {
            let topology = try TopologyLoader.parse(bytes: bad.bytes, file: "bad.yaml")
            Issue.record("accepted an invalid topology: \(topology.name)")
        } catch {
            #expect(error.problem == bad.problem, "\(error)")
            #expect(error.line == bad.line, "\(error)")
            #expect(error.field == bad.field, "\(error)")
            #expect(error.file == "bad.yaml")
            #expect(error.message.contains(bad.mentions), "\(error)")
            #expect(error.description.hasPrefix("bad.yaml" + (bad.line.map { ":\($0)" } ?? "")), "\(error)")
        }
    }

    @Test func missingFileIsRefused() {
        #expect(throws: TopologyError(.fileNotFound, file: "/nonexistent/t.yaml", line: nil, column: nil, field: "", message: "no such file")) {
            try TopologyLoader.load(path: "/nonexistent/t.yaml")
        }
    }

    @Test func endlessFileIsRefused() {
        do {
            _ = try TopologyLoader.load(path: "/dev/zero")
            Issue.record("accepted /dev/zero")
        } catch {
            #expect(error.problem == .unreadable)
            #expect(error.message.contains("larger than"))
        }
    }

    @Test func directoryIsRefused() {
        do {
            _ = try TopologyLoader.load(path: topologiesDirectory)
            Issue.record("accepted a directory")
        } catch {
            #expect(error.problem == .unreadable)
        }
    }

    @Test func suggestionsAreOnlyForNearMisses() {
        #expect(Suggestion.closest(to: "regoins", in: ["regions", "shards"]) == "regions")
        #expect(Suggestion.closest(to: "zzzzzzzz", in: ["regions", "shards"]) == nil)
        #expect(Suggestion.distance("kitten", "sitting") == 3)
    }
}
