import Foundation
import GeoNode
import Testing

/// A status with a distinct value in every field, shared by the suites.
let sample = ReplicaStatus(
    replica: "s0-oregon-2", shard: "s0", region: "oregon", cluster: 1, view: 3, height: 42, round: 15,
    head: String(repeating: "ab", count: 32), status: .viewChange, peersConnected: 10, peersTotal: 11,
    committedTransactions: 4200, uptimeSeconds: 12.5)

@Suite struct ReplicaStatusTests {
    @Test func jsonRoundTripWithTheDocumentedKeys() throws {
        let json = try JSONEncoder().encode(sample)
        let object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        #expect(Set(object.keys) == [
            "replica", "shard", "region", "cluster", "view", "height", "round", "head", "status",
            "peers_connected", "peers_total", "committed_transactions", "uptime_s",
        ])
        #expect(object["status"] as? String == "view-change")
        #expect(object["head"] as? String == sample.head)
        #expect(try JSONDecoder().decode(ReplicaStatus.self, from: json) == sample)
    }
}

@Suite struct NodeMetricsTests {
    @Test func renderHoldsEveryMetricWithLabelsAndBuckets() {
        let metrics = NodeMetrics()
        metrics.setHeight(42)
        metrics.setView(3)
        metrics.setPeersConnected(10)
        metrics.viewChangeStarted()
        metrics.committed(7)
        metrics.rejected(reason: .badSignature)
        metrics.rejected(reason: .badSignature)
        metrics.rejected(reason: "bad_mac")
        metrics.wireError(reason: "Bad Header!")
        metrics.observeCommitLatency(seconds: 0.003)
        metrics.observeCommitLatency(seconds: 0.2)
        let text = metrics.render()
        for line in [
            "geofabric_ledger_height 42.0", "geofabric_view 3.0", "geofabric_peers_connected 10.0",
            "geofabric_view_changes_total 1", "geofabric_committed_transactions_total 7",
            #"geofabric_rejected_messages_total{reason="bad_signature"} 2"#,
            #"geofabric_rejected_messages_total{reason="bad_mac"} 1"#,
            #"geofabric_rejected_messages_total{reason="stale_view"} 0"#,
            #"geofabric_wire_errors_total{reason="bad_header_"} 1"#,
            #"geofabric_commit_latency_seconds_bucket{le="0.001"} 0"#,
            #"geofabric_commit_latency_seconds_bucket{le="0.005"} 1"#,
            #"geofabric_commit_latency_seconds_bucket{le="0.25"} 2"#,
            #"geofabric_commit_latency_seconds_bucket{le="+Inf"} 2"#,
            "geofabric_commit_latency_seconds_count 2",
        ] {
            #expect(text.split(separator: "\n").contains { $0 == line }, "missing: \(line)")
        }
        #expect(text.contains("# TYPE geofabric_commit_latency_seconds histogram"))
    }

    @Test func reasonLabelsAreBounded() {
        let metrics = NodeMetrics()
        for index in 0..<500 { metrics.wireError(reason: "reason_\(index)") }
        let series = metrics.render().split(separator: "\n").filter { $0.hasPrefix("geofabric_wire_errors_total{") }
        #expect(series.count == NodeMetrics.reasonLabelsMax + 1)
        #expect(series.contains { $0.hasPrefix(#"geofabric_wire_errors_total{reason="other"}"#) })
    }
}
