// Loads and validates a topology file (schema in the README, "Topology files").
//
// Validation refuses, naming file, line and field: YAML syntax errors, wrong types, unknown keys
// (with a suggestion), clusters that cannot tolerate a Byzantine replica (n < 4, or n < 3f + 1 for
// an explicit f), zero or negative counts, duplicate names or addresses, unknown regions,
// overlapping or incomplete key placement, and missing WAN pairs between regions that host
// clusters. The result is GeoCore's Topology; no Yams type leaves this target.

import Foundation
import GeoCore
import Yams

public enum TopologyLoader {
    static let topKeys = ["name", "regions", "wan", "lan", "key_buckets", "clients", "base_port",
                          "status_port_offset", "shards", "protocol", "keys", "transport"]
    static let shardKeys = ["name", "keys", "clusters"]
    static let clusterKeys = ["region", "replicas", "f"]
    static let linkKeys = ["rtt_ms", "mbit_s"]
    static let wanKeys = ["between", "rtt_ms", "mbit_s"]
    static let placementKeys = ["hash", "prefixes"]
    static let transportKeys = ["tls", "ca", "certificates"]
    static let protocolKeys = ["batch_size", "batch_delay_ms", "window", "checkpoint_every", "view_timeout_ms",
                               "remote_timeout_ms", "tick_ms", "max_message_bytes", "snapshot_every", "retain_rounds"]

    public static let defaultKeyBuckets = 16
    /// Bounds on what a file may ask for, so that a hostile or mistyped file cannot make validation
    /// allocate or loop without end.
    public static let maxFileBytes = 1 << 20
    public static let maxKeyBuckets = 65_536
    public static let maxClients = 100_000
    public static let maxShards = 1_024
    public static let maxClustersPerShard = 64
    public static let maxReplicasPerCluster = 1_024
    public static let defaultClients = 256
    public static let defaultBasePort = 7000
    public static let defaultStatusPortOffset = 1000
    /// Inside one region: RTT under 1 ms, 8-10 Gbit/s (ResilientDB paper, figure 1).
    public static let defaultLAN = Link(rttMilliseconds: 0.5, megabitsPerSecond: 10_000)

    /// Reads and validates the file at `path`.
    public static func load(path: String) throws(TopologyError) -> Topology {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw TopologyError(.fileNotFound, file: path, line: nil, column: nil, field: "", message: "no such file")
        }
        guard !isDirectory.boolValue else {
            throw TopologyError(.unreadable, file: path, line: nil, column: nil, field: "", message: "is a directory, not a topology file")
        }
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size > maxFileBytes {
            throw TopologyError(.unreadable, file: path, line: nil, column: nil, field: "",
                                message: "the file is \(size) bytes; a topology file is at most \(maxFileBytes) bytes")
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw TopologyError(.unreadable, file: path, line: nil, column: nil, field: "", message: "cannot read the file")
        }
        defer { try? handle.close() }
        // Read at most one byte past the limit: special files (/dev/zero) report no size.
        let data = (try? handle.read(upToCount: maxFileBytes + 1)) ?? Data()
        guard data.count <= maxFileBytes else {
            throw TopologyError(.unreadable, file: path, line: nil, column: nil, field: "",
                                message: "the file is larger than \(maxFileBytes) bytes; a topology file is at most that")
        }
        return try parse(bytes: Array(data), file: path)
    }

    /// Validates topology text given as bytes (checked to be text first).
    public static func parse(bytes: [UInt8], file: String) throws(TopologyError) -> Topology {
        if let offset = firstNonTextByte(bytes) {
            let line = bytes[..<offset].reduce(1) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
            throw TopologyError(.notText, file: file, line: line, column: nil, field: "",
                                message: "byte \(offset) (0x\(String(bytes[offset], radix: 16))) is not UTF-8 text; a topology file is YAML text")
        }
        return try parse(text: String(decoding: bytes, as: UTF8.self), file: file)
    }

    /// The offset of the first byte that makes `bytes` not text: invalid UTF-8, or a control
    /// character other than tab, line feed and carriage return.
    static func firstNonTextByte(_ bytes: [UInt8]) -> Int? {
        if let control = bytes.firstIndex(where: { ($0 < 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D) || $0 == 0x7F }) {
            return control
        }
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var offset = 0
        while true {
            switch decoder.decode(&iterator) {
            case let .scalarValue(scalar): offset += String(scalar).utf8.count
            case .emptyInput: return nil
            case .error: return min(offset, bytes.count - 1)
            }
        }
    }

    /// The line of the second place where `key:` appears at the same depth as the first one, from
    /// line `start` on (1-based): the repeated key of a mapping.
    static func secondOccurrence(of key: String, in text: String, from start: Int) -> Int? {
        var firstColumn: Int?
        for (offset, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where offset + 1 >= start {
            var searchFrom = line.startIndex
            while let range = line[searchFrom...].range(of: key + ":") {
                let before = line[..<range.lowerBound].last
                if before == nil || before == " " || before == "{" || before == "," || before == "-" {
                    let column = line.distance(from: line.startIndex, to: range.lowerBound)
                    if let firstColumn {
                        if column == firstColumn { return offset + 1 }
                    } else {
                        firstColumn = column
                    }
                }
                searchFrom = range.upperBound
            }
        }
        return nil
    }

    /// Validates topology YAML text.
    public static func parse(text: String, file: String) throws(TopologyError) -> Topology {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw syntaxError(error, text: text, file: file)
        } catch {
            throw TopologyError(.syntax, file: file, line: nil, column: nil, field: "", message: "\(error)")
        }
        guard let root, root.null == nil else {
            throw TopologyError(.empty, file: file, line: nil, column: nil, field: "",
                                message: "the file is empty; a topology needs at least name, regions and shards")
        }
        var builder = TopologyBuilder(reader: YAMLReader(file: file))
        return try builder.build(YAMLField(node: root, path: ""))
    }

    static func syntaxError(_ error: YamlError, text: String, file: String) -> TopologyError {
        func make(_ problem: TopologyProblem, _ mark: Mark?, _ text: String) -> TopologyError {
            TopologyError(problem, file: file, line: mark?.line, column: mark?.column, field: "", message: text)
        }
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
             let .composer(context, problem, mark, _):
            let prefix = context.map { "\($0.text) at line \($0.mark.line): " } ?? ""
            return make(.syntax, mark, "YAML syntax error: \(prefix)\(problem)")
        case let .reader(problem, offset, _, _):
            return make(.syntax, nil, "YAML reader error: \(problem)\(offset.map { " at byte \($0)" } ?? "")")
        case let .duplicatedKeysInMapping(duplicates, context):
            // Yams marks the start of the mapping; point at the repeated key itself.
            let key = duplicates.first ?? ""
            let line = secondOccurrence(of: key, in: text, from: context.mark.line) ?? context.mark.line
            return TopologyError(.duplicateKey, file: file, line: line, column: nil, field: key,
                                 message: "duplicate key '\(key)': each key may appear once in a mapping")
        default:
            return make(.syntax, nil, "YAML error: \(error)")
        }
    }
}

/// Builds the typed model from a YAML tree, one section at a time.
struct TopologyBuilder {
    let reader: YAMLReader
    typealias Keys = TopologyLoader

    init(reader: YAMLReader) { self.reader = reader }

    mutating func build(_ rootField: YAMLField) throws(TopologyError) -> Topology {
        let root = try reader.mapping(rootField, allowed: Keys.topKeys, required: ["name", "regions", "shards"])
        let name = try reader.identifier(root["name"]!)
        let regions = try readRegions(root["regions"]!)
        let wan = try root["wan"].map { (field) throws(TopologyError) in try readWAN(field, regions: regions) } ?? []
        let lan = try root["lan"].map { (field) throws(TopologyError) in try readLink(field) } ?? Keys.defaultLAN
        let keyBuckets = try root["key_buckets"].map { (field) throws(TopologyError) in
            try bounded(field, what: "key_buckets", limit: Keys.maxKeyBuckets) } ?? Keys.defaultKeyBuckets
        let clients = try root["clients"].map { (field) throws(TopologyError) in
            try bounded(field, what: "clients", limit: Keys.maxClients) } ?? Keys.defaultClients
        let basePort = try root["base_port"].map { (field) throws(TopologyError) in try port(field) } ?? Keys.defaultBasePort
        let statusOffset = try root["status_port_offset"].map { (field) throws(TopologyError) in
            try bounded(field, what: "status_port_offset", limit: 65_534) } ?? Keys.defaultStatusPortOffset
        let parameters = try root["protocol"].map { (field) throws(TopologyError) in try readProtocol(field) } ?? ProtocolParameters()
        let keys = try root["keys"].map { (field) throws(TopologyError) in try readKeys(field) } ?? .development
        let transport = try root["transport"].map { (field) throws(TopologyError) in try readTransport(field) } ?? TransportSettings()

        let shardsField = root["shards"]!
        let shardFields = try reader.sequence(shardsField)
        guard !shardFields.isEmpty else {
            throw reader.error(.nonPositive, shardsField, "a topology needs at least one shard")
        }
        guard shardFields.count <= Keys.maxShards else {
            throw reader.error(.invalidValue, shardsField, "\(shardFields.count) shards is above the limit of \(Keys.maxShards)")
        }
        var shards: [Shard] = []
        var placementFields: [YAMLField] = []
        var clusterFields: [[YAMLField]] = []
        var seenShardNames: [String: YAMLField] = [:]
        var nextNumber: UInt32 = 0
        for (index, shardField) in shardFields.enumerated() {
            let shardMap = try reader.mapping(shardField, allowed: Keys.shardKeys, required: ["name", "clusters"])
            let shardName = try reader.identifier(shardMap["name"]!)
            if let previous = seenShardNames[shardName] {
                throw reader.error(.duplicateName, shardMap["name"]!,
                                   "shard name '\(shardName)' is already used by \(previous.path) (line \(previous.line ?? 0))")
            }
            seenShardNames[shardName] = shardMap["name"]!
            let shardID = ShardID(UInt16(index))
            let placement: KeyPlacement
            if let keysField = shardMap["keys"] {
                placement = try readPlacement(keysField, keyBuckets: keyBuckets)
                placementFields.append(keysField)
            } else if shardFields.count == 1 {
                placement = .all
                placementFields.append(shardField)
            } else {
                throw reader.error(.missingField, shardField.child("keys", shardField.node),
                                   "missing required field 'keys': with several shards each must say which keys it holds")
            }
            let clustersField = shardMap["clusters"]!
            let fields = try reader.sequence(clustersField)
            guard !fields.isEmpty else {
                throw reader.error(.nonPositive, clustersField, "shard '\(shardName)' needs at least one cluster")
            }
            guard fields.count <= Keys.maxClustersPerShard else {
                throw reader.error(.invalidValue, clustersField, "\(fields.count) clusters in one shard is above the limit of \(Keys.maxClustersPerShard)")
            }
            clusterFields.append(fields)
            var clusters: [Cluster] = []
            var regionsSeen: [String: YAMLField] = [:]
            for (clusterIndex, clusterField) in fields.enumerated() {
                let clusterMap = try reader.mapping(clusterField, allowed: Keys.clusterKeys, required: ["region", "replicas"])
                let regionField = clusterMap["region"]!
                let region = try reader.string(regionField)
                guard regions.contains(region) else {
                    throw reader.error(.unknownRegion, regionField,
                                       "unknown region '\(region)'" + Suggestion.hint(for: region, in: regions))
                }
                if let previous = regionsSeen[region] {
                    throw reader.error(.duplicateName, regionField,
                                       "shard '\(shardName)' already has a cluster in region '\(region)' (\(previous.path)); one cluster per region per shard")
                }
                regionsSeen[region] = regionField
                let clusterID = ClusterID(shard: shardID, index: UInt16(clusterIndex))
                let addresses = try readReplicaAddresses(clusterMap["replicas"]!)
                let n = addresses.count
                let quorum: Quorum
                if let fField = clusterMap["f"] {
                    let f = try reader.positiveInt(fField, what: "f")
                    guard let explicit = Quorum(n: n, f: f) else {
                        let needed = f <= (Int.max - 1) / 3 ? "\(3 * f + 1)" : "more than any count"
                        throw reader.error(.tooFewReplicas, clusterMap["replicas"]!,
                                           "\(n) replicas cannot tolerate f = \(f) Byzantine replicas: need n >= 3f+1 = \(needed)")
                    }
                    quorum = explicit
                } else {
                    guard n >= 4, let derived = Quorum(n: n) else {
                        throw reader.error(.tooFewReplicas, clusterMap["replicas"]!,
                                           "a cluster of n = \(n) replicas has f = (n-1)/3 = \(Quorum.maxFaulty(n: n)) and tolerates no Byzantine replica; Byzantine fault tolerance needs n >= 3f+1 with f >= 1, so n >= 4")
                    }
                    quorum = derived
                }
                var replicas: [ReplicaInfo] = []
                for (replicaIndex, address) in addresses.enumerated() {
                    let host = address?.host ?? "127.0.0.1"
                    let replicaPort = address?.port ?? (basePort + Int(nextNumber))
                    replicas.append(ReplicaInfo(
                        id: ReplicaID(cluster: clusterID, index: UInt16(replicaIndex)),
                        name: "\(shardName)-\(region)-\(replicaIndex)",
                        number: nextNumber, region: region, host: host, port: replicaPort,
                        statusPort: replicaPort + statusOffset))
                    nextNumber += 1
                }
                clusters.append(Cluster(id: clusterID, region: region, quorum: quorum, replicas: replicas))
            }
            shards.append(Shard(id: shardID, name: shardName, placement: placement, clusters: clusters))
        }

        try checkAddresses(shards, clusterFields: clusterFields)
        try checkPlacement(shards, placementFields: placementFields, shardsField: shardsField, keyBuckets: keyBuckets)
        try checkWAN(shards, regions: regions, wan: wan, wanField: root["wan"], rootField: rootField)

        return Topology(name: name, regions: regions.map(Region.init(name:)), wan: wan, lan: lan, keyBuckets: keyBuckets,
                        shards: shards, parameters: parameters, keys: keys, clientCount: clients, transport: transport)
    }

    // MARK: Sections

    func readRegions(_ field: YAMLField) throws(TopologyError) -> [String] {
        let items = try reader.sequence(field)
        guard !items.isEmpty else { throw reader.error(.nonPositive, field, "a topology needs at least one region") }
        var regions: [String] = []
        for item in items {
            let region = try reader.identifier(item)
            guard !regions.contains(region) else {
                throw reader.error(.duplicateName, item, "region '\(region)' is listed twice")
            }
            regions.append(region)
        }
        return regions
    }

    func readLink(_ field: YAMLField) throws(TopologyError) -> Link {
        let map = try reader.mapping(field, allowed: Keys.linkKeys, required: Keys.linkKeys)
        return Link(rttMilliseconds: try reader.positiveNumber(map["rtt_ms"]!, what: "rtt_ms"),
                    megabitsPerSecond: try reader.positiveNumber(map["mbit_s"]!, what: "mbit_s"))
    }

    func readWAN(_ field: YAMLField, regions: [String]) throws(TopologyError) -> [WANLink] {
        var links: [WANLink] = []
        var seen: [Set<String>: YAMLField] = [:]
        for item in try reader.sequence(field) {
            let map = try reader.mapping(item, allowed: Keys.wanKeys, required: Keys.wanKeys)
            let betweenField = map["between"]!
            let ends = try reader.sequence(betweenField)
            guard ends.count == 2 else {
                throw reader.error(.invalidValue, betweenField, "'between' needs exactly two regions, found \(ends.count)")
            }
            var names: [String] = []
            for end in ends {
                let region = try reader.string(end)
                guard regions.contains(region) else {
                    throw reader.error(.unknownRegion, end, "unknown region '\(region)'" + Suggestion.hint(for: region, in: regions))
                }
                names.append(region)
            }
            guard names[0] != names[1] else {
                throw reader.error(.invalidValue, betweenField, "a WAN link joins two different regions (use 'lan' for links inside a region)")
            }
            let pair = Set(names)
            if let previous = seen[pair] {
                throw reader.error(.duplicateName, item, "the WAN pair \(names[0])-\(names[1]) is already given at line \(previous.line ?? 0)")
            }
            seen[pair] = item
            let link = Link(rttMilliseconds: try reader.positiveNumber(map["rtt_ms"]!, what: "rtt_ms"),
                            megabitsPerSecond: try reader.positiveNumber(map["mbit_s"]!, what: "mbit_s"))
            links.append(WANLink(between: names[0], names[1], link: link))
        }
        return links
    }

    func bounded(_ field: YAMLField, what: String, limit: Int) throws(TopologyError) -> Int {
        let value = try reader.positiveInt(field, what: what)
        guard value <= limit else { throw reader.error(.invalidValue, field, "\(what) is at most \(limit), found \(value)") }
        return value
    }

    func port(_ field: YAMLField) throws(TopologyError) -> Int {
        let value = try reader.int(field)
        guard (1...65_535).contains(value) else {
            throw reader.error(value <= 0 ? .nonPositive : .invalidValue, field, "a port is 1...65535, found \(value)")
        }
        return value
    }

    func readProtocol(_ field: YAMLField) throws(TopologyError) -> ProtocolParameters {
        let map = try reader.mapping(field, allowed: Keys.protocolKeys)
        var parameters = ProtocolParameters()
        func value(_ key: String, _ target: inout Int, limit: Int) throws(TopologyError) {
            if let item = map[key] { target = try bounded(item, what: key, limit: limit) }
        }
        // Limits far above any sensible setting, so that derived figures cannot overflow.
        let hour = 3_600_000
        try value("batch_size", &parameters.batchSize, limit: 100_000)
        try value("batch_delay_ms", &parameters.batchDelayMilliseconds, limit: hour)
        try value("window", &parameters.window, limit: 100_000)
        try value("checkpoint_every", &parameters.checkpointEvery, limit: 100_000)
        if map["snapshot_every"] == nil { parameters.snapshotEvery = parameters.checkpointEvery * 8 }
        try value("snapshot_every", &parameters.snapshotEvery, limit: 100_000_000)
        if let item = map["retain_rounds"] {
            // 0 is allowed here (keep the whole ledger), unlike the other parameters.
            let rounds = try reader.int(item)
            guard (0...(1 << 40)).contains(rounds) else {
                throw reader.error(.invalidValue, item, "retain_rounds is 0 (keep every block) or a number of rounds up to \(1 << 40), found \(rounds)")
            }
            parameters.retainRounds = rounds
        }
        try value("view_timeout_ms", &parameters.viewTimeoutMilliseconds, limit: hour)
        try value("remote_timeout_ms", &parameters.remoteTimeoutMilliseconds, limit: hour)
        try value("tick_ms", &parameters.tickMilliseconds, limit: 60_000)
        try value("max_message_bytes", &parameters.maxMessageBytes, limit: 1 << 30)
        guard parameters.window / 2 >= parameters.checkpointEvery else {
            throw reader.error(.invalidValue, map["window"] ?? field.child("window", field.node),
                               "window (\(parameters.window)) must be at least 2 x checkpoint_every (checkpoint_every = \(parameters.checkpointEvery)) so ordering continues while a checkpoint stabilises")
        }
        guard parameters.snapshotEvery % parameters.checkpointEvery == 0 else {
            throw reader.error(.invalidValue, map["snapshot_every"]!,
                               "snapshot_every (\(parameters.snapshotEvery)) must be a multiple of checkpoint_every (\(parameters.checkpointEvery))")
        }
        // Pruned blocks are gone for peers too: keep at least a snapshot interval and the rounds a
        // replica catching up by blocks may still ask for (beyond those, it transfers state).
        let retainedAtLeast = parameters.snapshotEvery + 4 * max(parameters.window, 64)
        guard parameters.retainRounds == 0 || parameters.retainRounds >= retainedAtLeast else {
            throw reader.error(.invalidValue, map["retain_rounds"]!,
                               "retain_rounds (\(parameters.retainRounds)) is 0 (keep every block) or at least snapshot_every + 4 x max(window, 64) = \(retainedAtLeast), so that a replica catching up finds the blocks it needs")
        }
        let smallestFrame = 4096
        guard parameters.maxMessageBytes >= smallestFrame else {
            throw reader.error(.invalidValue, map["max_message_bytes"]!,
                               "max_message_bytes (\(parameters.maxMessageBytes)) must be at least \(smallestFrame) to carry a block")
        }
        return parameters
    }

    func readKeys(_ field: YAMLField) throws(TopologyError) -> KeySource {
        if case .scalar = field.node {
            let text = try reader.string(field)
            guard text == "dev" else {
                throw reader.error(.invalidValue, field, "expected 'dev' or {directory: PATH}, found '\(text)'")
            }
            return .development
        }
        let map = try reader.mapping(field, allowed: ["directory"], required: ["directory"])
        let path = try reader.string(map["directory"]!)
        guard !path.isEmpty else { throw reader.error(.invalidValue, map["directory"]!, "the key directory path is empty") }
        return .directory(path)
    }

    func readTransport(_ field: YAMLField) throws(TopologyError) -> TransportSettings {
        let map = try reader.mapping(field, allowed: Keys.transportKeys)
        var settings = TransportSettings()
        if let item = map["tls"] { settings.tls = try reader.bool(item, what: "tls") }
        // An operator PKI names both files, and only with TLS on; what the files hold is checked
        // where the keys are (OperatorPKI.load, also run by `topology validate`).
        switch (map["ca"], map["certificates"]) {
        case (nil, nil):
            break
        case let (ca?, certificates?):
            let caPath = try reader.string(ca), certificatesPath = try reader.string(certificates)
            guard !caPath.isEmpty else { throw reader.error(.invalidValue, ca, "the CA bundle path is empty") }
            guard !certificatesPath.isEmpty else { throw reader.error(.invalidValue, certificates, "the certificate directory path is empty") }
            guard settings.tls else {
                throw reader.error(.invalidValue, ca, "a CA bundle and certificates need TLS: remove them or set tls: true")
            }
            settings.authority = OperatorAuthorityFiles(caBundle: caPath, certificates: certificatesPath)
        case let (ca?, nil):
            throw reader.error(.missingField, ca, "an operator PKI names both a CA bundle (ca: FILE) and the nodes' certificates (certificates: DIR); certificates is missing")
        case let (nil, certificates?):
            throw reader.error(.missingField, certificates, "an operator PKI names both a CA bundle (ca: FILE) and the nodes' certificates (certificates: DIR); ca is missing")
        }
        return settings
    }

    func readPlacement(_ field: YAMLField, keyBuckets: Int) throws(TopologyError) -> KeyPlacement {
        let map = try reader.mapping(field, allowed: Keys.placementKeys)
        switch (map["hash"], map["prefixes"]) {
        case let (hash?, nil):
            let bounds = try reader.sequence(hash)
            guard bounds.count == 2 else {
                throw reader.error(.invalidValue, hash, "hash placement is [first, last] (inclusive bucket numbers), found \(bounds.count) values")
            }
            let lower = try reader.int(bounds[0]), upper = try reader.int(bounds[1])
            guard lower >= 0, upper >= 0 else {
                throw reader.error(.nonPositive, hash, "bucket numbers cannot be negative, found [\(lower), \(upper)]")
            }
            guard lower <= upper, upper < keyBuckets else {
                throw reader.error(.invalidValue, hash, "[\(lower), \(upper)] is not a bucket range within 0...\(keyBuckets - 1) (key_buckets = \(keyBuckets))")
            }
            return .hashBuckets(lower: lower, upper: upper)
        case let (nil, prefixes?):
            let items = try reader.sequence(prefixes)
            guard !items.isEmpty else { throw reader.error(.nonPositive, prefixes, "the prefix list is empty") }
            var values: [String] = []
            for item in items {
                let prefix = try reader.string(item)
                guard !values.contains(prefix) else {
                    throw reader.error(.overlappingPlacement, item, "prefix '\(prefix)' is listed twice")
                }
                values.append(prefix)
            }
            return .prefixes(values)
        case (nil, nil):
            throw reader.error(.missingField, field, "key placement needs 'hash: [first, last]' or 'prefixes: [...]'")
        case (_?, _?):
            throw reader.error(.invalidValue, field, "give either 'hash' or 'prefixes', not both")
        }
    }

    /// Replicas by count (nil addresses: assigned on this machine) or by "host:port" list.
    func readReplicaAddresses(_ field: YAMLField) throws(TopologyError) -> [(host: String, port: Int)?] {
        if case .sequence = field.node {
            let items = try reader.sequence(field)
            guard !items.isEmpty else { throw reader.error(.nonPositive, field, "the replica list is empty") }
            guard items.count <= Keys.maxReplicasPerCluster else {
                throw reader.error(.invalidValue, field, "\(items.count) replicas in one cluster is above the limit of \(Keys.maxReplicasPerCluster)")
            }
            var addresses: [(host: String, port: Int)?] = []
            for item in items {
                let text = try reader.string(item)
                guard let colon = text.lastIndex(of: ":"), !text[..<colon].isEmpty,
                      let port = Int(text[text.index(after: colon)...]), (1...65_535).contains(port) else {
                    throw reader.error(.invalidValue, item, "expected HOST:PORT with a port in 1...65535, found '\(text)'")
                }
                addresses.append((String(text[..<colon]), port))
            }
            return addresses
        }
        let count = try reader.int(field)
        guard count > 0 else { throw reader.error(.nonPositive, field, "replicas must be positive, found \(count)") }
        guard count <= Keys.maxReplicasPerCluster else {
            throw reader.error(.invalidValue, field, "\(count) replicas in one cluster is above the limit of \(Keys.maxReplicasPerCluster)")
        }
        return Array(repeating: nil, count: count)
    }

    // MARK: Cross-field checks

    func checkAddresses(_ shards: [Shard], clusterFields: [[YAMLField]]) throws(TopologyError) {
        var used: [String: String] = [:]
        var names: Set<String> = []
        for (shardIndex, shard) in shards.enumerated() {
            for (clusterIndex, cluster) in shard.clusters.enumerated() {
                let field = clusterFields[shardIndex][clusterIndex]
                for replica in cluster.replicas {
                    guard names.insert(replica.name).inserted else {
                        throw reader.error(.duplicateName, field,
                                           "replica name '\(replica.name)' is made twice (shard and region names joined by '-' collide); rename a shard or region")
                    }
                    guard replica.statusPort <= 65_535 else {
                        throw reader.error(.invalidValue, field, "status port \(replica.statusPort) of \(replica.name) is above 65535; lower status_port_offset or the ports")
                    }
                    for (address, role) in [(replica.address, "protocol"), ("\(replica.host):\(replica.statusPort)", "status")] {
                        if let owner = used[address] {
                            throw reader.error(.duplicateAddress, field,
                                               "address \(address) (\(role) port of \(replica.name)) is already used by \(owner)")
                        }
                        used[address] = "\(role) port of \(replica.name)"
                    }
                }
            }
        }
    }

    func checkPlacement(_ shards: [Shard], placementFields: [YAMLField], shardsField: YAMLField, keyBuckets: Int) throws(TopologyError) {
        var bucketOwner: [Int: Int] = [:]
        var prefixOwner: [String: Int] = [:]
        var kinds = Set<String>()
        for (index, shard) in shards.enumerated() {
            switch shard.placement {
            case .all:
                kinds.insert("all")
            case let .hashBuckets(lower, upper):
                kinds.insert("hash")
                for bucket in lower...upper {
                    if let owner = bucketOwner[bucket] {
                        throw reader.error(.overlappingPlacement, placementFields[index],
                                           "hash bucket \(bucket) is placed on both shard '\(shards[owner].name)' and shard '\(shard.name)'")
                    }
                    bucketOwner[bucket] = index
                }
            case let .prefixes(prefixes):
                kinds.insert("prefixes")
                for prefix in prefixes {
                    if let owner = prefixOwner[prefix] {
                        throw reader.error(.overlappingPlacement, placementFields[index],
                                           "prefix '\(prefix)' is placed on both shard '\(shards[owner].name)' and shard '\(shard.name)'")
                    }
                    prefixOwner[prefix] = index
                }
            }
            if kinds.count > 1 {
                throw reader.error(.invalidValue, placementFields[index], "all shards must use the same kind of key placement (hash or prefixes)")
            }
        }
        if kinds == ["hash"] {
            let missing = (0..<keyBuckets).filter { bucketOwner[$0] == nil }
            if !missing.isEmpty {
                throw reader.error(.incompletePlacement, shardsField,
                                   "hash buckets \(Self.ranges(missing)) of 0...\(keyBuckets - 1) belong to no shard")
            }
        }
        if kinds == ["prefixes"], prefixOwner[""] == nil {
            throw reader.error(.incompletePlacement, shardsField,
                               "keys that match no prefix belong to no shard; give one shard the empty prefix \"\" as the catch-all")
        }
    }

    /// "3...5, 9" for [3, 4, 5, 9].
    static func ranges(_ values: [Int]) -> String {
        var parts: [String] = []
        var index = 0
        while index < values.count {
            var end = index
            while end + 1 < values.count && values[end + 1] == values[end] + 1 { end += 1 }
            parts.append(end == index ? "\(values[index])" : "\(values[index])...\(values[end])")
            index = end + 1
        }
        return parts.joined(separator: ", ")
    }

    func checkWAN(_ shards: [Shard], regions: [String], wan: [WANLink], wanField: YAMLField?, rootField: YAMLField) throws(TopologyError) {
        let used = regions.filter { region in shards.contains { $0.clusters.contains { $0.region == region } } }
        for (offset, first) in used.enumerated() {
            for second in used[(offset + 1)...] {
                let present = wan.contains { Set([$0.regionA, $0.regionB]) == Set([first, second]) }
                if !present {
                    throw reader.error(.missingWANPair, wanField ?? rootField.child("wan", rootField.node),
                                       "no WAN link between '\(first)' and '\(second)', which both host clusters; add {between: [\(first), \(second)], rtt_ms: ..., mbit_s: ...}")
                }
            }
        }
    }
}
