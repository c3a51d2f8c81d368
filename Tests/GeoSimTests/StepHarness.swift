import GeoCore
import GeoSim
import GeoTopology

/// A step-level harness for golden trace tests: the replicas of a topology as bare cores (no
/// simulator, no clock, no network model), fed scripted inputs one step at a time. Every effect
/// of every step is written as one readable line, so a trace file shows what a replica did and
/// in which order, and any change of behaviour shows as a changed line (as etcd's raft does
/// with its data-driven tests). Messages a step sends wait in one FIFO queue until `deliver`.
///
/// Commands (one per line; names are the topology's replica names, clients are `c<N>`):
///   request c1 put KEY VALUE | get KEY | add KEY DELTA | transfer FROM TO AMOUNT -> REPLICA
///   resend c1 -> REPLICA            the client's last request again
///   tick REPLICA|all [N]            N ticks (default 1), replicas in topology order
///   deliver [N]                     the next N queued messages (default: until none is left)
///   crash REPLICA | wipe REPLICA (its disk too) | restart REPLICA from its log and block store
///   cut REPLICA [REPLICA]           drop what the two (or the one and everyone) send each other
///   heal                            no more cuts
///   status [REPLICA ...]            view, delivered round, ledger height and head
///   queue                           what is in flight
///   shard KEY ...                   the shard each key lives on
final class StepHarness {
    let topology: Topology
    private(set) var cores: [ReplicaID: PBFTReplica] = [:]
    private var configurations: [ReplicaID: PBFTConfiguration] = [:]
    private var suites: [ReplicaID: SimulatedCrypto] = [:]
    private var durable: [ReplicaID: DurableState] = [:]
    private var stored: [ReplicaID: [CertifiedBlock]] = [:]
    private let order: [ReplicaID]
    private var names: [ReplicaID: String] = [:]
    private var ids: [String: ReplicaID] = [:]
    private var queue: [(from: ReplicaID, to: ReplicaID, message: Message)] = []
    private var cuts: [(ReplicaID, ReplicaID?)] = []
    private var lastRequest: [UInt32: ClientTransaction] = [:]
    private let signer = SimulatedCrypto(owner: nil, clientCount: 64)
    /// Digests by first appearance: d1, d2, ... (a trace reads better without 64 hex digits).
    private var digestNames: [Digest: String] = [:]

    init(_ topology: Topology) {
        self.topology = topology
        var order: [ReplicaID] = []
        for info in topology.allReplicas {
            guard let configuration = PBFTConfiguration(topology: topology, replica: info.id) else { continue }
            let suite = SimulatedCrypto(owner: info.id, clientCount: 64)
            configurations[info.id] = configuration
            suites[info.id] = suite
            cores[info.id] = PBFTReplica(configuration: configuration, suite: suite)
            durable[info.id] = DurableState()
            stored[info.id] = []
            names[info.id] = info.name
            ids[info.name] = info.id
            order.append(info.id)
        }
        self.order = order
    }

    enum ScriptError: Error, CustomStringConvertible {
        case bad(String)
        var description: String { if case let .bad(text) = self { return text }; return "" }
    }

    /// Runs one command; returns the lines it produced.
    func run(_ line: String) throws -> [String] {
        let words = line.split(separator: " ").map(String.init)
        guard let verb = words.first else { return [] }
        switch verb {
        case "request", "resend":
            guard let arrow = words.firstIndex(of: "->"), arrow + 1 < words.count, words.count >= 2,
                  let client = UInt32(words[1].dropFirst()), words[1].hasPrefix("c") else {
                throw ScriptError.bad("usage: request cN OPERATION ... -> REPLICA")
            }
            let target = try replica(words[arrow + 1])
            let transaction: ClientTransaction
            if verb == "resend" {
                guard let last = lastRequest[client] else { throw ScriptError.bad("c\(client) sent nothing yet") }
                transaction = last
            } else {
                let operation = try self.operation(Array(words[2..<arrow]))
                let requestID = (lastRequest[client]?.requestID ?? 0) + 1
                transaction = signer.signTransaction(client: ClientID(client), requestID: requestID, operation: operation)
                lastRequest[client] = transaction
            }
            return step(target, .client(transaction))
        case "tick":
            let targets = words.count > 1 && words[1] != "all" ? [try replica(words[1])] : order
            let count = words.count > 2 ? Int(words[2]) ?? 1 : 1
            var lines: [String] = []
            for number in 1...max(1, count) {
                for id in targets where cores[id] != nil {
                    let produced = step(id, .tick)
                    if !produced.isEmpty { lines.append("tick \(number) \(name(id)):") }
                    lines += produced.map { "  " + $0 }
                }
            }
            return lines
        case "deliver":
            var remaining = words.count > 1 ? Int(words[1]) ?? 0 : 100_000
            var lines: [String] = []
            while remaining > 0, !queue.isEmpty {
                remaining -= 1
                let (from, to, message) = queue.removeFirst()
                guard cores[to] != nil else {
                    lines.append("\(name(from)) -> \(name(to)): \(render(message)) (lost: down)")
                    continue
                }
                lines.append("\(name(from)) -> \(name(to)): \(render(message))")
                lines += step(to, .message(message, from: from)).map { "  " + $0 }
            }
            return lines
        case "crash", "wipe":
            let id = try replica(words.count > 1 ? words[1] : "")
            cores[id] = nil
            if verb == "wipe" {
                durable[id] = DurableState()
                stored[id] = []
            }
            return []
        case "restart":
            let id = try replica(words.count > 1 ? words[1] : "")
            guard cores[id] == nil, let configuration = configurations[id], let suite = suites[id] else {
                throw ScriptError.bad("\(words[1]) is not down")
            }
            let recovered = PBFTReplica.recover(configuration: configuration, suite: suite, durable: durable[id] ?? DurableState(),
                                                snapshot: nil, storedBlocks: stored[id] ?? [])
            cores[id] = recovered.replica
            return ["\(name(id)) restarted at height \(recovered.replica.ledger.height), view \(recovered.replica.view)"]
        case "cut":
            let first = try replica(words.count > 1 ? words[1] : "")
            cuts.append((first, words.count > 2 ? try replica(words[2]) : nil))
            return []
        case "heal":
            cuts = []
            return []
        case "status":
            let targets = words.count > 1 ? try words.dropFirst().map(replica) : order
            return targets.map { id in
                guard let core = cores[id] else { return "\(name(id)): down" }
                let status: String
                switch core.status {
                case .normal: status = "normal"
                case let .changingView(to: view): status = "changing to view \(view)"
                }
                return "\(name(id)): view \(core.view) \(status), delivered \(core.lastDelivered), height \(core.ledger.height), head \(short(core.ledger.head))"
            }
        case "shard":
            return words.dropFirst().map { "\($0): \(topology.shardID(forKey: Array($0.utf8)))" }
        case "queue":
            return queue.map { "\(name($0.from)) -> \(name($0.to)): \(render($0.message))" }
        default:
            throw ScriptError.bad("unknown command '\(verb)'")
        }
    }

    // MARK: Steps

    private func step(_ id: ReplicaID, _ input: Input) -> [String] {
        guard var core = cores[id] else { return ["\(name(id)) is down"] }
        let effects = core.step(input)
        cores[id] = core
        var lines: [String] = []
        for effect in effects {
            lines.append(render(effect, of: id))
            switch effect {
            case let .persist(record):
                durable[id]?.apply(record)
            case let .executed(block):
                // As the shells do: the block store, then the log's mark once a round is whole.
                stored[id]?.append(block.certified)
                let clusters = UInt64(configurations[id]?.clustersInShard ?? 1)
                if block.height % clusters == 0 { durable[id]?.apply(.ledgerStored(throughRound: block.height / clusters)) }
            case let .send(message, to):
                enqueue(message, from: id, to: to)
            case let .broadcast(message):
                for peer in order where peer.cluster == id.cluster && peer != id { enqueue(message, from: id, to: peer) }
            default:
                break
            }
        }
        return lines
    }

    private func enqueue(_ message: Message, from: ReplicaID, to: ReplicaID) {
        let isCut = cuts.contains { cut in
            (cut.0 == from && (cut.1 == nil || cut.1 == to)) || (cut.0 == to && (cut.1 == nil || cut.1 == from))
        }
        if !isCut { queue.append((from, to, message)) }
    }

    // MARK: Rendering

    private func name(_ id: ReplicaID) -> String { names[id] ?? id.description }

    private func replica(_ name: String) throws -> ReplicaID {
        guard let id = ids[name] else { throw ScriptError.bad("no replica '\(name)'") }
        return id
    }

    private func short(_ digest: Digest) -> String {
        if digest == .zero { return "0" }
        if let known = digestNames[digest] { return known }
        let named = "d\(digestNames.count + 1)"
        digestNames[digest] = named
        return named
    }

    private func operation(_ words: [String]) throws -> Operation {
        func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
        switch (words.first, words.count) {
        case ("put", 3): return .put(key: bytes(words[1]), value: bytes(words[2]))
        case ("get", 2): return .get(key: bytes(words[1]))
        case ("add", 3): if let delta = Int64(words[2]) { return .add(key: bytes(words[1]), delta: delta) }
        case ("transfer", 4): if let amount = UInt64(words[3]) { return .transfer(from: bytes(words[1]), to: bytes(words[2]), amount: amount) }
        default: break
        }
        throw ScriptError.bad("unknown operation '\(words.joined(separator: " "))'")
    }

    private func render(_ transaction: ClientTransaction) -> String { "c\(transaction.client.rawValue)#\(transaction.requestID)" }

    private func render(_ vote: VoteStatement) -> String { "v\(vote.view) r\(vote.round) \(short(vote.digest))" }

    func render(_ message: Message) -> String {
        switch message {
        case let .clientTransaction(transaction): return "request \(render(transaction))"
        case let .prePrepare(prePrepare):
            let block = prePrepare.block
            let statements = block.statements.isEmpty ? "" : " statements \(block.statements.count)"
            return "prePrepare v\(prePrepare.view) r\(block.round) \(short(prePrepare.digest)) [\(block.transactions.map(render).joined(separator: " "))]\(statements)"
        case let .prepare(prepare): return "prepare \(render(prepare.statement)) by \(prepare.replicaIndex)"
        case let .commit(commit): return "commit \(render(commit.statement)) by \(commit.replicaIndex)"
        case let .certifiedBlock(certified):
            return "certifiedBlock \(certified.block.cluster) r\(certified.block.round) v\(certified.certificate.statement.view) signers \(certified.certificate.signatures.map(\.replicaIndex))"
        case let .reply(reply): return "reply \(reply.client) #\(reply.requestID)"
        case let .busy(busy): return "busy \(busy.client) #\(busy.requestID) retry after \(busy.retryAfterTicks)"
        case let .checkpoint(checkpoint): return "checkpoint r\(checkpoint.statement.round) \(short(checkpoint.statement.digest)) by \(checkpoint.replicaIndex)"
        case let .viewChange(change):
            return "viewChange to v\(change.newView) by \(change.replicaIndex) stable r\(change.checkpoint.statement.round) prepared \(change.prepared.map(\.round))"
        case let .newView(view):
            return "newView v\(view.view) from \(view.viewChanges.map(\.replicaIndex).sorted()) reproposes \(view.prePrepares.map(\.block.round))"
        case let .blockRequest(request): return "blockRequest \(request.cluster) r\(request.fromRound)...\(request.toRound)"
        case let .remoteViewChange(change):
            return "remoteViewChange \(change.phase) target \(change.target) r\(change.round) attempt \(change.attempt) by \(name(change.sender))"
        case let .shardStatement(proof): return "shardStatement \(proof.statement) signatures \(proof.signatures.count)"
        case let .stateCheckpoint(checkpoint):
            return "stateCheckpoint height \(checkpoint.statement.height) state \(short(checkpoint.statement.stateDigest)) by \(checkpoint.replicaIndex)"
        case let .stateRequest(request): return "stateRequest height \(request.height)"
        case let .stateTransfer(snapshot): return "stateTransfer height \(snapshot.height)"
        }
    }

    private func render(_ effect: Effect, of id: ReplicaID) -> String {
        switch effect {
        case let .persist(record):
            switch record {
            case let .view(view, normal): return "persist view \(view)\(normal ? " normal" : " changing")"
            case let .signed(slot, digest): return "persist signed \(slot.phase) v\(slot.view) r\(slot.round) \(short(digest))"
            case let .prepared(proof): return "persist prepared r\(proof.prePrepare.block.round) v\(proof.prePrepare.view)"
            case let .delivered(certified): return "persist delivered r\(certified.block.round)"
            case let .remote(certified): return "persist remote \(certified.block.cluster) r\(certified.block.round)"
            case let .stable(proof): return "persist stable r\(proof.statement.round)"
            case let .ledgerStored(round): return "persist ledgerStored r\(round)"
            }
        case let .send(message, to): return "send \(render(message)) -> \(name(to))"
        case let .broadcast(message): return "broadcast \(render(message))"
        case let .executed(block):
            return "executed height \(block.height) \(block.certified.block.cluster) r\(block.certified.block.round) head \(short(block.head)) results [\(block.results.map(render).joined(separator: ", "))]"
        case let .reply(reply): return "reply \(reply.client) #\(reply.requestID) \(render(reply.result)) at height \(reply.position.height)"
        case let .busy(busy): return "busy \(busy.client) #\(busy.requestID) retry after \(busy.retryAfterTicks)"
        case let .snapshot(snapshot): return "snapshot height \(snapshot.height)"
        case let .serveStored(request, to): return "serveStored \(request.cluster) r\(request.fromRound)...\(request.toRound) -> \(name(to))"
        case let .serveSnapshot(height, to): return "serveSnapshot at or above \(height) -> \(name(to))"
        case let .installedSnapshot(snapshot): return "installedSnapshot height \(snapshot.height)"
        case let .event(.viewChangeStarted(from, to, reason, round)): return "event view change v\(from) -> v\(to) (\(reason.rawValue)) at round \(round)"
        case let .event(.enteredView(view, round)): return "event entered view \(view) at round \(round)"
        case let .event(.remoteClusterSuspected(cluster, round, attempt)):
            return "event remote cluster \(cluster) suspected at round \(round) (attempt \(attempt))"
        case let .event(.rejected(reason)): return "event rejected \(reason.rawValue)"
        }
    }

    private func render(_ result: ExecutionResult?) -> String {
        guard let result else { return "-" }
        return render(result)
    }

    private func render(_ result: ExecutionResult) -> String {
        switch result {
        case .stored: return "stored"
        case let .value(value?):
            // Printable text as text; anything else (numbers that `add` wrote) as hex.
            if value.allSatisfy({ (0x20..<0x7F).contains($0) }) { return "value \(String(decoding: value, as: UTF8.self))" }
            return "value 0x" + value.map { String($0, radix: 16) }.map { $0.count == 1 ? "0" + $0 : $0 }.joined()
        case .value(nil): return "absent"
        case let .number(number): return "number \(number)"
        case let .transferred(from, to): return "transferred \(from) \(to)"
        case let .refused(refusal): return "refused \(refusal)"
        case .crossShardCommitted: return "cross-shard committed"
        case let .crossShardAborted(reason): return "cross-shard aborted \(reason)"
        }
    }
}
