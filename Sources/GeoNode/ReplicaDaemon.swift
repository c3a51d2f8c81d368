// One replica as a running process: the durable log, the transport, the core's actor, the clock,
// and the status endpoint, wired together.
//
// Inbound path (two stages, so that checking the next message's client signatures on all cores
// overlaps with the core stepping through the current one):
//   transport.messages -> preverify (ParallelVerifier) -> InboundQueue (replicas' messages and
//   clients' requests in turns) -> ReplicaNode.receive
// Outbound: ReplicaNode's effects -> (fsync) -> Transport.send. Ticks: every tickMilliseconds.

import Foundation
import NIOSSL
import GeoCore
import GeoCrypto
import GeoNet
import GeoStore
import GeoWire
import Logging
import Synchronization

public struct DaemonOptions: Sendable {
    /// The replica's log lives in `dataDirectory/<replica name>/`.
    public var dataDirectory: String
    /// Delay and rate-limit messages to other regions as the topology's WAN says.
    public var emulateWAN = false
    /// Where a relative key directory of the topology is resolved (the topology file's folder).
    public var topologyDirectory: String
    /// The address to listen on (protocol and status ports) instead of the topology's host, for a
    /// host whose topology address is not one of its interfaces (a Kubernetes Service name, a NAT
    /// address): for example "0.0.0.0". Peers still dial the topology's address.
    public var listenHost: String?
    public init(dataDirectory: String, topologyDirectory: String) {
        self.dataDirectory = dataDirectory
        self.topologyDirectory = topologyDirectory
    }
}

public enum DaemonError: Error, CustomStringConvertible {
    case unknownReplica(String)
    case keys(KeyError)
    /// The topology's operator PKI (`transport: {ca, certificates}`) cannot be used.
    case pki(OperatorPKIError)
    case store(StoreError)
    /// The data directory was written by a GeoFabric that bound the whole topology file (format
    /// v1 of the topology hash), timeouts included; this build binds only the safety-relevant part.
    case legacyDataDirectory(path: String)
    /// The data directory holds blocks whose digests follow an older block format (v1: one hash
    /// over the whole block; this build hashes a header over the transactions' Merkle root).
    case oldBlockFormat(path: String, found: Int)
    case listen(host: String, port: Int, reason: String)
    case statusListen(host: String, port: Int, reason: String)

    public var description: String {
        switch self {
        case let .unknownReplica(name):
            return "no replica named \(name) in the topology"
        case let .keys(error): return "keys: \(error)"
        case let .pki(error): return "TLS certificates: \(error)"
        case let .store(error): return "\(error)"
        case let .legacyDataDirectory(path):
            return "\(path): written by an older GeoFabric under the whole-topology hash (v1); this build binds data to the "
                + "safety-relevant fields only (v2), and cannot convert it: start this replica on a fresh data directory "
                + "(or run the older build to read it)"
        case let .oldBlockFormat(path, found):
            return "\(path): written by an older GeoFabric under block format v\(found); this build's block digests follow "
                + "v\(BlockHeader.formatVersion) (a header over the transactions' Merkle root), so the certificates and ledger "
                + "heads stored there do not check under it: start this replica on a fresh data directory (or run the older build to read it)"
        case let .listen(host, port, reason): return "cannot listen on \(host):\(port): \(reason)"
        case let .statusListen(host, port, reason): return "cannot serve status on \(host):\(port): \(reason)"
        }
    }
}

/// Sends through the transport.
struct TransportSink: MessageSink {
    let transport: Transport
    func send(_ message: Message, to node: NodeID) { transport.send(message, to: node) }
}

public final class ReplicaDaemon: Sendable {
    public let info: ReplicaInfo
    public let topology: Topology
    public let node: ReplicaNode
    public let transport: Transport
    public let logger: Logger
    public let metrics: NodeMetrics
    let statusServer: StatusServer
    let tasks: [Task<Void, Never>]

    /// Opens the log (recovering what it holds), starts listening and dialling, and starts the clock.
    public static func start(topology: Topology, replica name: String, options: DaemonOptions, logger: Logger) async throws(DaemonError) -> ReplicaDaemon {
        guard let info = topology.replica(named: name) else {
            throw .unknownReplica(name)
        }
        var logger = logger
        logger[metadataKey: "replica"] = "\(info.name)"
        let (keys, signingKey, pki) = try await loadIdentity(topology: topology, info: info, options: options)
        let authority = pki?.authority(for: .replica(number: info.number))
        let fingerprint = TopologyFingerprint.digest(of: topology, keys: keys)
        let directory = (options.dataDirectory as NSString).appendingPathComponent(info.name)
        let identity = LogIdentity(replicaNumber: info.number, topologyDigest: fingerprint)
        let limits = WireLimits(maxBodyBytes: topology.parameters.maxMessageBytes)
        let (log, recovered) = try openLog(directory: directory, identity: identity, limits: limits, topology: topology, keys: keys)
        let ledgerStore: DiskLedgerStore
        let ledgerRecovery: DiskLedgerStore.Recovery
        let clusterCount = topology.cluster(info.id.cluster).flatMap { topology.shard($0.id.shard) }?.clusters.count ?? 1
        do {
            (ledgerStore, ledgerRecovery) = try DiskLedgerStore.open(
                directory: directory, identity: identity, clusterCount: clusterCount,
                layout: CrossShardLayout(topology: topology, cluster: info.id.cluster), limits: limits,
                retainRounds: topology.parameters.retainRounds, syncedRound: recovered.state.ledgerStoredRound)
        } catch {
            log.close()
            throw .store(error)
        }
        logRecovery(recovered, logPath: log.path, ledger: ledgerRecovery, storedHeight: ledgerStore.storedHeight, logger: logger)

        var configuration = TransportConfiguration(identity: .replica(number: info.number), signingKey: signingKey,
                                                   topologyHash: fingerprint, keyRing: keys, logger: logger)
        configuration.limits = .init(maxBodyBytes: topology.parameters.maxMessageBytes)
        if options.emulateWAN { configuration.wanEmulation = .topology(topology, from: .replica(number: info.number)) }
        if topology.transport.tls { configuration.tls = .identity(signingKey, name: info.name, keyRing: keys, authority: authority) }
        let transport = Transport(configuration: configuration)

        let metrics = NodeMetrics()
        let verified = VerifiedSignatures(metrics: metrics)
        let suite = PreverifiedSuite(base: Ed25519Suite(topology: topology, keys: keys, signingKey: signingKey), verified: verified)
        let state = recovered.state
        let node = ReplicaNode(topology: topology, replica: info, suite: suite, log: log, ledgerStore: ledgerStore,
                               recovered: state, snapshot: ledgerRecovery.snapshot,
                               storedBlocks: ledgerRecovery.blocksAfterSnapshot,
                               sink: TransportSink(transport: transport), logger: logger)
        let listenHost = options.listenHost ?? info.host
        do {
            try await transport.start(listen: listenHost, port: info.port)
        } catch {
            await transport.shutdown()
            throw .listen(host: listenHost, port: info.port, reason: "\(error)")
        }
        transport.connect(peers: PeerAddress.replicas(of: topology).filter { $0.node != .replica(number: info.number) })

        let tasks = startLoops(transport: transport, node: node, keys: keys, verified: verified,
                               configuration: PBFTConfiguration(topology: topology, replica: info.id),
                               tick: .milliseconds(max(1, topology.parameters.tickMilliseconds)))
        let (view, height) = (await node.view, await node.height)
        let statusServer = makeStatusServer(info: info, host: listenHost, topology: topology, topologyHash: fingerprint, keys: keys, node: node,
                                            transport: transport, verified: verified,
                                            metrics: metrics, signingKey: signingKey, authority: authority, logger: logger)
        do {
            try await statusServer.start()
        } catch {
            for task in tasks { task.cancel() }
            await transport.shutdown()
            throw .statusListen(host: listenHost, port: info.statusPort, reason: "\(error)")
        }
        logger.info("replica started", metadata: ["listen": "\(listenHost):\(info.port)", "status": "\(listenHost):\(info.statusPort)",
                                                 "view": "\(view)", "height": "\(height)"])
        return ReplicaDaemon(info: info, topology: topology, node: node, transport: transport, logger: logger,
                             metrics: metrics, statusServer: statusServer, tasks: tasks)
    }

    /// The topology's keys, this replica's signing key and, with an operator PKI, its certificate
    /// files: all read before the log is opened, so a bad key or certificate file changes nothing on disk.
    static func loadIdentity(topology: Topology, info: ReplicaInfo, options: DaemonOptions) async throws(DaemonError)
        -> (keys: KeyRing, signingKey: SigningKey, pki: OperatorPKI?) {
        let keys: KeyRing
        let signingKey: SigningKey
        do {
            keys = try KeyRing.load(for: topology, baseDirectory: options.topologyDirectory)
            signingKey = try IdentityKeys.signingKey(for: topology, identity: info.name, isClient: false, baseDirectory: options.topologyDirectory)
        } catch {
            throw .keys(error)
        }
        do {
            let pki = try await OperatorPKI.load(topology: topology, keyRing: keys, baseDirectory: options.topologyDirectory,
                                                 identities: [.replica(number: info.number)])
            return (keys, signingKey, pki)
        } catch {
            throw .pki(error)
        }
    }

    /// The replica's log, recovered; a log of a build that bound the whole topology (hash v1)
    /// is named as such rather than as another topology's.
    static func openLog(directory: String, identity: LogIdentity, limits: WireLimits,
                        topology: Topology, keys: KeyRing) throws(DaemonError) -> (ReplicaLog, RecoveredState) {
        do {
            return try ReplicaLog.open(directory: directory, identity: identity, options: LogOptions(limits: limits))
        } catch {
            if case let .identityMismatch(path, _, found) = error, found.replicaNumber == identity.replicaNumber,
               found.topologyDigest == TopologyFingerprint.legacyDigest(of: topology) {
                throw .legacyDataDirectory(path: path)
            }
            if case let .identityMismatch(path, _, found) = error, found.replicaNumber == identity.replicaNumber,
               found.topologyDigest == TopologyFingerprint.digest(of: topology, keys: keys, blockFormat: 1) {
                throw .oldBlockFormat(path: path, found: 1)
            }
            throw .store(error)
        }
    }

    /// The replica's three loops: client signatures checked on all cores as frames arrive, the
    /// checked messages handed to the node in order, and the clock that ticks it.
    static func startLoops(transport: Transport, node: ReplicaNode, keys: KeyRing, verified: VerifiedSignatures,
                           configuration: PBFTConfiguration?,
                           tick: Duration) -> [Task<Void, Never>] {
        let preverifier = ClientSignaturePreverifier(keys: keys, verified: verified, configuration: configuration)
        let checked = InboundQueue()
        let door = node.door
        let verify = Task {
            for await inbound in transport.messages {
                // Admission control at the door: a client request past what may wait is answered
                // busy before its signature is checked (AdmissionDoor).
                if case let .clientTransaction(transaction) = inbound.message, inbound.from.isClient,
                   let busy = door.refusal(of: transaction, waiting: checked.clientsWaiting) {
                    transport.send(.busy(busy), to: inbound.from)
                    continue
                }
                preverifier.preverify(inbound.message)
                checked.push(inbound)
            }
            checked.finish()
        }
        let deliver = Task {
            while let inbound = await checked.next() { await node.receive(inbound.message, from: inbound.from) }
        }
        let clock = Task {
            let clock = ContinuousClock()
            var next = clock.now
            while !Task.isCancelled {
                next += tick
                // A late wake-up is not made up with a burst of ticks: ticks measure time waited.
                if next < clock.now { next = clock.now }
                try? await Task.sleep(until: next, clock: clock)
                await node.tick()
            }
        }
        return [verify, deliver, clock]
    }

    /// What the log and the ledger store held at start, for the operator.
    static func logRecovery(_ recovered: RecoveredState, logPath: String, ledger ledgerRecovery: DiskLedgerStore.Recovery,
                            storedHeight: UInt64, logger: Logger) {
        if recovered.created {
            logger.info("new log", metadata: ["path": "\(logPath)"])
        } else {
            logger.info("recovered log", metadata: [
                "records": "\(recovered.records)", "delivered": "\(recovered.state.delivered.count)",
                "view": "\(recovered.state.view)", "truncated_bytes": "\(recovered.truncatedBytes)",
            ])
        }
        if ledgerRecovery.snapshot != nil || storedHeight > 0 {
            logger.info("recovered ledger", metadata: [
                "snapshot_height": "\(ledgerRecovery.snapshot?.height ?? 0)", "stored_height": "\(storedHeight)",
                "blocks_to_replay": "\(ledgerRecovery.blocksAfterSnapshot.count)",
                "truncated_bytes": "\(ledgerRecovery.blockStore.truncatedBytes)",
            ])
        }
    }

    /// GET /status, GET /metrics and GET /ledger/..., on the status port the topology gives this replica.
    static func makeStatusServer(info: ReplicaInfo, host: String, topology: Topology, topologyHash: Digest, keys: KeyRing, node: ReplicaNode,
                                 transport: Transport, verified: VerifiedSignatures,
                                 metrics: NodeMetrics, signingKey: SigningKey, authority: TLSAuthority? = nil, logger: Logger) -> StatusServer {
        let transportReported = ReportedCounts()
        // With TLS on, the status port answers HTTPS too (the first byte tells), with the node's certificate.
        var tls: NIOSSLContext?
        if topology.transport.tls {
            do {
                tls = try StatusTLS.serverContext(key: signingKey, commonName: info.name, topologyHash: topologyHash, authority: authority)
            } catch {
                logger.error("status port: cannot make the TLS certificate (\(error)); serving plain HTTP only")
            }
        }
        let peersTotal = topology.allReplicas.count - 1
        let statusServer = StatusServer(
            host: host, port: info.statusPort,
            status: {
                let connected = await transport.metrics().connectedPeers.count
                var status = await node.status(peersConnected: connected, peersTotal: peersTotal)
                status.topology = topology.name
                status.topologyHash = topologyHash.hex
                status.pid = getpid()
                status.clientSignatureVerifications = verified.verifications
                return status
            },
            metrics: {
                await node.refresh(metrics)
                await ReplicaDaemon.refresh(metrics, from: transport, reported: transportReported)
                return metrics.render()
            },
            counters: metrics, logger: logger, tls: tls,
            ledger: { [ledger = LedgerService(node: node, topology: topology, replica: info, keys: keys)] path in
                await ledger.answer(path: path)
            })
        return statusServer
    }

    init(info: ReplicaInfo, topology: Topology, node: ReplicaNode, transport: Transport, logger: Logger,
         metrics: NodeMetrics, statusServer: StatusServer, tasks: [Task<Void, Never>]) {
        self.info = info
        self.topology = topology
        self.node = node
        self.transport = transport
        self.logger = logger
        self.metrics = metrics
        self.statusServer = statusServer
        self.tasks = tasks
    }

    static func refresh(_ metrics: NodeMetrics, from transport: Transport, reported: ReportedCounts) async {
        let snapshot = await transport.metrics()
        metrics.setPeersConnected(snapshot.connectedPeers.count)
        let counts = snapshot.rejects.merging(snapshot.drops) { $0 + $1 }
        let deltas = reported.counts.withLock { reported -> [(String, UInt64)] in
            var deltas: [(String, UInt64)] = []
            for (reason, count) in counts where count > reported[reason, default: 0] {
                deltas.append((reason, count - reported[reason, default: 0]))
                reported[reason] = count
            }
            return deltas
        }
        for (reason, delta) in deltas { metrics.wireError(reason: reason, count: Int(delta)) }
    }

    /// Stops the clock, the status endpoint and the transport. What was acknowledged is already on disk.
    public func shutdown() async {
        for task in tasks { task.cancel() }
        try? await statusServer.shutdown()
        await transport.shutdown()
        await node.close()
        logger.info("replica stopped")
    }
}

/// What of the transport's refusal totals was already added to the metrics' counters.
final class ReportedCounts: Sendable {
    let counts = Mutex([String: UInt64]())
}
