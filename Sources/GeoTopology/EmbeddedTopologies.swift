// The topology used when a command is given none: one shard in two regions, 4 replicas each.
// Embedded so that `geofabric bench` and `geofabric up` work on a fresh clone with no file.

import GeoCore

public enum EmbeddedTopology {
    public static let name = "embedded default (local-2x4)"

    public static let yaml = """
        # The embedded default topology: one shard, two regions, 4 replicas each (f = 1 per cluster).
        # WAN figures: ResilientDB paper (PVLDB 13(6), 2020), figure 1.
        name: local-2x4
        regions: [oregon, iowa]
        wan:
          - {between: [oregon, iowa], rtt_ms: 38, mbit_s: 669}
        shards:
          - name: s0
            clusters:
              - {region: oregon, replicas: 4}
              - {region: iowa,   replicas: 4}
        protocol: {batch_size: 100, batch_delay_ms: 2, window: 64, checkpoint_every: 16, view_timeout_ms: 500, remote_timeout_ms: 2000}
        keys: dev

        """

    /// The embedded topology, validated like any file.
    public static func load() -> Topology {
        do {
            return try TopologyLoader.parse(text: yaml, file: "<embedded>")
        } catch {
            preconditionFailure("the embedded topology is invalid: \(error)")
        }
    }
}
