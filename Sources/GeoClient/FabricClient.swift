// The client library: signs transactions with the client's key, sends each to its home cluster's
// primary, resends to every replica of the cluster on timeout, and returns the result once f + 1
// replicas sent matching replies (GeoCore's ClientCore decides all of that; this is its shell).
//
// A reply is believed only from the replica it names: the transport bound each connection to a
// replica identity at the handshake, so a replica cannot speak for another.

import GeoCore
import GeoCrypto
import GeoNet
import Logging

public struct Completion: Hashable, Sendable {
    public var requestID: UInt64
    public var result: ExecutionResult
    public var position: LedgerPosition
    /// From submission to the f + 1-th matching reply.
    public var latency: Duration
}

public enum ClientError: Error, CustomStringConvertible, Equatable {
    case busy
    case timedOut(after: Duration)
    case noCluster(String)
    /// So many connections with replicas of the cluster were refused (by this client or by the
    /// replica, whichever side saw the problem first), for reasons that do
    /// not pass by waiting (another topology, a key the topology does not name), that f + 1
    /// matching replies cannot come: each replica's name and refusal.
    case refused([ReplicaRefusal])

    public var description: String {
        switch self {
        case .busy: return "this client already has a request outstanding (one at a time)"
        case let .timedOut(after): return "no f + 1 matching replies within \(after); is the deployment running (`geofabric status`)?"
        case let .noCluster(reason): return reason
        case let .refused(refusals):
            return refusals.map(\.description).joined(separator: "\n")
        }
    }
}

/// Why one replica's connection with this client was refused.
public struct ReplicaRefusal: Hashable, Sendable, CustomStringConvertible {
    public var replica: String
    public var address: String
    public var refusal: HandshakeRefusal

    public var description: String {
        if case let .topologyMismatch(theirs, ours) = refusal {
            return "topology mismatch: this client has topology hash \(ours.shortHex), replica \(replica) at \(address) has "
                + "\(theirs.shortHex) (started from another topology file? pass the deployment's topology)"
        }
        if case let .peerRefused(label) = refusal {
            let meaning = label == "unknown_identity"
                ? ": its topology has no key for this client (another `clients:` count or key directory than this client's topology, which otherwise matches)"
                : ""
            return "replica \(replica) at \(address) refused this client (\(label))\(meaning)"
        }
        if case let .tls(tls) = refusal, case let .handshakeFailed(reason) = tls, Self.isCertificateAlert(reason) {
            return certificateRefused(reason)
        }
        if case let .tls(tls) = refusal, case let .streamError(reason) = tls, Self.isCertificateAlert(reason) {
            return certificateRefused(reason)
        }
        return "the connection with replica \(replica) at \(address) was refused: \(refusal)"
    }

    func certificateRefused(_ reason: String) -> String {
        "replica \(replica) at \(address) refused this client's certificate (\(reason.prefix { $0 != " " })): its topology "
            + "names another key for this client, or none (another `clients:` count or key directory than this client's "
            + "topology, which otherwise matches)"
    }

    /// BoringSSL's code for an alert about a certificate ("SSLV3_ALERT_BAD_CERTIFICATE", ...).
    static func isCertificateAlert(_ reason: String) -> Bool {
        reason.contains("ALERT") && reason.contains("CERTIFICATE")
    }

    /// A refusal that repeats on every retry: another topology, keys or protocol version. A
    /// timeout, a full server or a duplicate connection may pass.
    public var isLasting: Bool {
        switch refusal {
        case .timeout, .tooManyConnections, .duplicateConnection: return false
        case let .peerRefused(label):
            return ![HandshakeRefusal.timeout, .tooManyConnections, .duplicateConnection(.client(ClientID(0)))]
                .map(\.label).contains(label)
        case let .tls(tls):
            switch tls {
            case let .handshakeFailed(reason), let .streamError(reason):
                // The replica's alert that it refused this client's certificate (TLS 1.3: it
                // may come after the handshake completed on this side) repeats on every retry.
                return Self.isCertificateAlert(reason)
            default: return true
            }
        default: return true
        }
    }
}

public actor FabricClient {
    public let client: ClientID
    public let cluster: Cluster
    let topology: Topology
    /// Replica identities and wire numbers, built once.
    let directory: ReplicaDirectory
    let transport: Transport
    /// False when the transport is a ClientSession's, shared with its other clients.
    let ownsTransport: Bool
    var core: ClientCore
    var waiting: CheckedContinuation<Completion, any Error>?
    var submittedAt: ContinuousClock.Instant?
    /// When the outstanding request gives up (checked on each tick, so no timer per request).
    var deadline: (instant: ContinuousClock.Instant, timeout: Duration)?
    var tasks: [Task<Void, Never>] = []
    /// The latest lasting refusal of each replica of the cluster not connected since.
    var refusals: [UInt32: ReplicaRefusal] = [:]
    let clock = ContinuousClock()
    /// The client's clock: only resends on a view-change timeout and the submit timeout need it,
    /// so a tenth of the view timeout (not the replicas' 10 ms tick: a load generator with hundreds
    /// of clients woke up 100 times a second per client for nothing).
    let tickInterval: Duration

    /// The home cluster of a client for `key`: the cluster of the key's shard in `region`, or the
    /// shard's first cluster when the shard has none there.
    public static func homeCluster(in topology: Topology, forKey key: [UInt8], region: String?) -> Cluster? {
        topology.homeCluster(forKey: key, region: region)
    }

    /// A client of `cluster` that signs with `key`; `keys` authenticate the replicas at the handshake.
    /// `region`: where the client is (default: its cluster's region), which sets how long it
    /// waits before resending (`Topology.clientResendTimeoutMilliseconds`). `wanEmulation` delays
    /// what the client sends (replicas do not emulate links to clients, which have no region in
    /// the topology).
    public init(topology: Topology, keys: KeyRing, client: ClientID, key: SigningKey, cluster: Cluster, region: String? = nil,
                firstRequestID: UInt64 = 1, wanEmulation: WANEmulation? = nil, authority: TLSAuthority? = nil,
                logger: Logger = Logger(label: "geofabric.client")) {
        let configuration = Self.transportConfiguration(topology: topology, keys: keys, client: client, key: key,
                                                        wanEmulation: wanEmulation, authority: authority, logger: logger)
        self.init(topology: topology, client: client, key: key, cluster: cluster, region: region, firstRequestID: firstRequestID,
                  transport: Transport(configuration: configuration), ownsTransport: true)
    }

    /// A client over `transport`, which it owns (its own connections) or shares with the other
    /// clients of a `ClientSession` (which then dispatches its replies).
    init(topology: Topology, client: ClientID, key: SigningKey, cluster: Cluster, region: String?, firstRequestID: UInt64,
         transport: Transport, ownsTransport: Bool) {
        self.topology = topology
        directory = ReplicaDirectory(topology)
        self.client = client
        self.cluster = cluster
        self.transport = transport
        self.ownsTransport = ownsTransport
        let viewTimeout = max(1, topology.parameters.viewTimeoutMilliseconds)
        let tick = max(topology.parameters.tickMilliseconds, viewTimeout / 10, 1)
        tickInterval = .milliseconds(tick)
        let resend = topology.clientResendTimeoutMilliseconds(region: region ?? cluster.region)
        let patience = topology.clientReplyPatienceMilliseconds(region: region ?? cluster.region, cluster: cluster)
        core = ClientCore(client: client, cluster: cluster.id, quorum: cluster.quorum, signer: key,
                          timeoutTicks: UInt64(max(1, resend / tick)),
                          replyPatienceTicks: UInt64(max(1, (patience + tick - 1) / tick)), firstRequestID: firstRequestID)
    }

    /// The transport settings of client `client` (its identity, key and certificate).
    static func transportConfiguration(topology: Topology, keys: KeyRing, client: ClientID, key: SigningKey,
                                       wanEmulation: WANEmulation?, authority: TLSAuthority?, logger: Logger) -> TransportConfiguration {
        var configuration = TransportConfiguration(identity: .client(client), signingKey: key,
                                                   topologyHash: TopologyFingerprint.digest(of: topology, keys: keys), keyRing: keys, logger: logger)
        configuration.limits = .init(maxBodyBytes: topology.parameters.maxMessageBytes)
        configuration.wanEmulation = wanEmulation
        if topology.transport.tls { configuration.tls = .identity(key, name: Topology.clientName(client), keyRing: keys, authority: authority) }
        return configuration
    }

    /// Dials the home cluster's replicas (unless the transport is a session's) and starts the client's clock.
    public func start() {
        guard ownsTransport else {
            startClock()
            return
        }
        transport.connect(peers: cluster.replicas.map { PeerAddress(node: .replica(number: $0.number), host: $0.host, port: $0.port) })
        let transport = transport
        let replicaByNumber = Dictionary(uniqueKeysWithValues: cluster.replicas.map { ($0.number, $0.id) })
        tasks.append(Task { [weak self] in
            for await inbound in transport.messages {
                guard let number = inbound.from.replicaNumber else { continue }
                // A reply or busy answer counts only from the replica it names (the channel's peer).
                switch inbound.message {
                case let .reply(reply) where replicaByNumber[number] == reply.replica: await self?.onReply(reply)
                case let .busy(busy) where replicaByNumber[number] == busy.replica: await self?.onBusy(busy)
                default: continue
                }
            }
        })
        let events = transport.events
        tasks.append(Task { [weak self] in
            for await event in events {
                await self?.onEvent(event)
            }
        })
        startClock()
    }

    func startClock() {
        let tick = tickInterval
        tasks.append(Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: tick)
                await self?.onTick()
            }
        })
    }

    /// Orders `operation` and returns its result and ledger position; one request at a time.
    public func submit(_ operation: Operation, timeout: Duration = .seconds(30)) async throws -> Completion {
        guard waiting == nil, !core.isBusy else { throw ClientError.busy }
        let effects = core.submit(operation)
        let now = clock.now
        submittedAt = now
        deadline = (now + timeout, timeout)
        return try await withCheckedThrowingContinuation { continuation in
            waiting = continuation
            carryOut(effects)
            failIfRefused()
        }
    }

    func onEvent(_ event: TransportEvent) {
        switch event {
        case let .refused(node, refusal):
            guard let number = node.replicaNumber, let replica = cluster.replicas.first(where: { $0.number == number }) else { return }
            let refused = ReplicaRefusal(replica: replica.name, address: replica.address, refusal: refusal)
            guard refused.isLasting else { return }
            refusals[number] = refused
            failIfRefused()
        case let .connected(node):
            if let number = node.replicaNumber { refusals[number] = nil }
        default:
            break
        }
    }

    /// Fails the request at once when more than n - (f + 1) replicas of the cluster refused this
    /// client for lasting reasons: f + 1 matching replies can no longer come.
    func failIfRefused() {
        guard waiting != nil, refusals.count > cluster.n - cluster.quorum.weak else { return }
        fail(ClientError.refused(refusals.keys.sorted().compactMap { refusals[$0] }))
    }

    func fail(_ error: any Error) {
        waiting?.resume(throwing: error)
        waiting = nil
        deadline = nil
    }

    func onReply(_ reply: Reply) { carryOut(core.onReply(reply)) }
    func onBusy(_ busy: Busy) { carryOut(core.onBusy(busy)) }
    func onTick() {
        if let deadline, waiting != nil, clock.now >= deadline.instant {
            fail(ClientError.timedOut(after: deadline.timeout))
        }
        carryOut(core.tick())
    }

    func carryOut(_ effects: [ClientEffect]) {
        for effect in effects {
            switch effect {
            case let .send(transaction, to: replica):
                guard let node = directory.node(of: replica) else { continue }
                transport.send(.clientTransaction(transaction), to: [node], from: .client(client))
            case let .completed(requestID, result, position, _):
                let latency = submittedAt.map { clock.now - $0 } ?? .zero
                waiting?.resume(returning: Completion(requestID: requestID, result: result, position: position, latency: latency))
                waiting = nil
                deadline = nil
            }
        }
    }

    /// Busy answers this client got from replicas with no room (admission control), and the
    /// backoffs it waited because of them.
    public var admission: (busyAnswers: Int, backoffs: Int) { (core.busyAnswers, core.backoffs) }

    public func shutdown() async {
        for task in tasks { task.cancel() }
        fail(CancellationError())
        if ownsTransport { await transport.shutdown() }
    }
}
