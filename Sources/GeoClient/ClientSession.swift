// Many client identities over one connection per replica (issue 16, item 2).
//
// A load generator runs hundreds of closed-loop clients in one process. Each FabricClient alone
// has its own Transport and so its own TLS connection to each replica of its cluster: 1,024
// connections for 256 clients on local-1x4, each with its own socket reads and writes per request
// and per reply on both sides. A session owns one Transport for all of its clients: one connection
// per replica, on which every reply and request of the session travels, so a burst of replies is
// one flushed write on the replica and one read here.
//
// Security does not rest on the session. Its transport's handshake proves its first client (the
// carrier); each further client is proven to each replica by an Attach record signed by that
// client's own key over the replica's nonce of this very connection (Handshake.swift). The replica
// then accepts that client's frames on this connection and routes its replies here, and still
// checks that a transaction's signer is its sender. A session proves only keys it holds.
//
// The clients keep their own ClientCore (timeouts, resends, f + 1 matching replies): the session
// only dispatches each reply by `reply.client` to its client, after the same check a lone client
// makes (the reply names the replica that sent it).

import GeoCore
import GeoCrypto
import GeoNet
import Logging

public actor ClientSession {
    /// Clients one session may carry: its own identity plus the replicas' default bound on
    /// attached identities per connection (`TransportConfiguration.attachmentsPerConnectionMax`).
    public static let clientsMax = 1_025
    public let cluster: Cluster
    /// The session's clients by id; each submits one request at a time, as a lone client does.
    public nonisolated let clients: [ClientID: FabricClient]
    /// In the order given.
    public nonisolated let ordered: [FabricClient]
    let transport: Transport
    var tasks: [Task<Void, Never>] = []

    /// Clients `identities` of `cluster` (the first proves the connections, the others attach),
    /// over one transport. `authority`: the first identity's certificate authority, as for a lone
    /// client. At most `clientsMax` identities.
    public init(topology: Topology, keys: KeyRing, identities: [(client: ClientID, key: SigningKey)], cluster: Cluster,
                region: String? = nil, firstRequestID: UInt64 = 1, wanEmulation: WANEmulation? = nil,
                authority: TLSAuthority? = nil, logger: Logger = Logger(label: "geofabric.client")) {
        precondition(!identities.isEmpty, "a session carries at least one client")
        let carrier = identities[0]
        var configuration = FabricClient.transportConfiguration(topology: topology, keys: keys, client: carrier.client, key: carrier.key,
                                                                wanEmulation: wanEmulation, authority: authority, logger: logger)
        precondition(identities.count <= Self.clientsMax, "more clients than one connection may carry")
        configuration.carriedClients = identities.dropFirst().map { CarriedIdentity(node: .client($0.client), signingKey: $0.key) }
        let transport = Transport(configuration: configuration)
        self.transport = transport
        self.cluster = cluster
        let made = identities.map { identity in
            FabricClient(topology: topology, client: identity.client, key: identity.key, cluster: cluster, region: region,
                         firstRequestID: firstRequestID, transport: transport, ownsTransport: false)
        }
        ordered = made
        clients = Dictionary(made.map { ($0.client, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// Dials the cluster's replicas, starts dispatching replies and events, and every client's clock.
    public func start() async {
        transport.connect(peers: cluster.replicas.map { PeerAddress(node: .replica(number: $0.number), host: $0.host, port: $0.port) })
        let transport = transport
        let clients = clients
        let replicaByNumber = Dictionary(uniqueKeysWithValues: cluster.replicas.map { ($0.number, $0.id) })
        tasks.append(Task {
            for await inbound in transport.messages {
                guard let number = inbound.from.replicaNumber else { continue }
                switch inbound.message {
                case let .reply(reply):
                    guard replicaByNumber[number] == reply.replica, let client = clients[reply.client] else { continue }
                    await client.onReply(reply)
                case let .busy(busy):
                    guard replicaByNumber[number] == busy.replica, let client = clients[busy.client] else { continue }
                    await client.onBusy(busy)
                default: continue
                }
            }
        })
        let events = transport.events
        let all = ordered
        tasks.append(Task {
            for await event in events {
                // Connection events concern every client of the session (they share the connections).
                if case .backPressure = event { continue }
                for client in all { await client.onEvent(event) }
            }
        })
        for client in ordered { await client.start() }
    }

    public func shutdown() async {
        for task in tasks { task.cancel() }
        for client in ordered { await client.shutdown() }
        await transport.shutdown()
    }
}
