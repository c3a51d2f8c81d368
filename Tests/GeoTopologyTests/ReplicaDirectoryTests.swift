import GeoCore
import GeoTopology
import Testing

@Suite struct ReplicaDirectoryTests {
    @Test func everyReplicaIsFoundByIdNumberAndName() throws {
        let topology = try TopologyLoader.parse(text: """
            name: directory
            regions: [a, b]
            wan: [{between: [a, b], rtt_ms: 10, mbit_s: 100}]
            shards:
              - {name: s0, keys: {hash: [0, 7]}, clusters: [{region: a, replicas: 4}, {region: b, replicas: 7}]}
              - {name: s1, keys: {hash: [8, 15]}, clusters: [{region: b, replicas: 4}]}
            key_buckets: 16
            """, file: "directory")
        let directory = ReplicaDirectory(topology)
        #expect(directory.replicas.count == 15)
        for info in topology.allReplicas {
            #expect(directory.replica(number: info.number) == info)
            #expect(directory.number(of: info.id) == info.number)
            #expect(directory.node(of: info.id) == .replica(number: info.number))
            #expect(directory.replica(named: info.name) == info)
            #expect(topology.replica(number: info.number) == info, "the topology's own walk agrees")
        }
        #expect(directory.replica(number: 15) == nil)
        #expect(directory.replica(named: "s9-a-0") == nil)
        #expect(directory.number(of: ReplicaID(cluster: ClusterID(shard: ShardID(1), index: 0), index: 4)) == nil)
    }

    @Test func theHomeClusterIsTheShardsClusterInTheClientsRegionElseItsFirst() throws {
        let topology = try TopologyLoader.parse(text: """
            name: homes
            regions: [a, b, c]
            wan: [{between: [a, b], rtt_ms: 10, mbit_s: 100}]
            shards:
              - {name: s0, clusters: [{region: a, replicas: 4}, {region: b, replicas: 4}]}
            """, file: "homes")
        let shard = topology.shards[0]
        #expect(shard.homeCluster(region: "b")?.region == "b")
        #expect(shard.homeCluster(region: "c")?.region == "a", "no cluster in c: the first")
        #expect(shard.homeCluster(region: nil)?.region == "a")
        #expect(topology.homeCluster(forKey: Array("k".utf8), region: "b")?.id == shard.clusters[1].id)
    }
}
