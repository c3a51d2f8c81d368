// The replica's Prometheus metrics, served by `GET /metrics`.
//
// swift-prometheus owns the registry and the exposition format; this type only fixes the metric
// names GeoFabric promises operators, and keeps label values bounded: a reason label is a time
// series, so a flood of distinct reasons must not grow the registry without limit.

import GeoCore
import Prometheus
import Synchronization

public final class NodeMetrics: Sendable {
    /// Distinct reason labels kept per labelled counter; further new reasons are counted as
    /// `other`. The known reasons are about twenty; the rest of the room is for wire-level reasons.
    public static let reasonLabelsMax = 64
    /// Longest reason label kept; longer ones are cut.
    public static let reasonLabelBytesMax = 64
    /// Commit latency buckets, in seconds: a LAN cluster commits in about a millisecond, a
    /// geo-distributed round in hundreds, and anything past ten seconds is a stall worth seeing as one.
    public static let commitLatencyBucketsSeconds: [Double] = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ]

    private let registry = PrometheusCollectorRegistry()
    private let height: Gauge
    private let view: Gauge
    private let peersConnected: Gauge
    private let viewChanges: Counter
    private let committedTransactions: Counter
    private let clientVerifications: Counter
    private let commitLatency: ValueHistogram
    private let rejectedMessages: ReasonCounter
    private let wireErrors: ReasonCounter
    private let statusRequestsRefused: ReasonCounter

    public init() {
        height = registry.makeGauge(descriptor: Self.name("ledger_height", unit: "", help: "Blocks in this replica's shard ledger."))
        view = registry.makeGauge(descriptor: Self.name("view", unit: "", help: "Current PBFT view of this replica's cluster."))
        peersConnected = registry.makeGauge(
            descriptor: Self.name("peers_connected", unit: "", help: "Peers with an open link to this replica."))
        viewChanges = registry.makeCounter(
            descriptor: Self.name("view_changes", unit: "total", help: "Local view changes this replica started."))
        committedTransactions = registry.makeCounter(
            descriptor: Self.name("committed_transactions", unit: "total", help: "Client transactions executed in committed blocks."))
        clientVerifications = registry.makeCounter(
            descriptor: Self.name("client_signature_verifications", unit: "total",
                                  help: "Client signatures this replica verified (f + 1 replicas of the home cluster verify each)."))
        commitLatency = registry.makeValueHistogram(
            descriptor: Self.name("commit_latency", unit: "seconds", help: "Time from proposal to execution of a block."),
            labels: [], buckets: Self.commitLatencyBucketsSeconds)
        rejectedMessages = ReasonCounter(
            registry: registry,
            name: "rejected_messages", help: "Protocol messages refused, by reason.",
            // Known reasons start at zero so that rate() over them works before the first rejection.
            known: Rejection.allCases.map(\.rawValue))
        wireErrors = ReasonCounter(
            registry: registry,
            name: "wire_errors", help: "Frames refused before decoding, by reason.",
            known: [])
        statusRequestsRefused = ReasonCounter(
            registry: registry,
            name: "status_requests_refused", help: "HTTP status requests refused, by reason.",
            known: [])
    }

    static func name(_ name: String, unit: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "geofabric", metricName: name, unitName: unit, helpText: help)
    }

    public func setHeight(_ blocks: UInt64) { height.set(Int64(clamping: blocks)) }
    public func setView(_ view: UInt64) { self.view.set(Int64(clamping: view)) }
    public func setPeersConnected(_ peers: Int) { peersConnected.set(Int64(peers)) }
    public func viewChangeStarted() { viewChanges.increment() }

    public func committed(_ count: Int) {
        precondition(count >= 0, "a committed transaction count cannot be negative")
        committedTransactions.increment(by: Int64(count))
    }

    public func clientSignaturesVerified(_ count: Int) { clientVerifications.increment(by: Int64(count)) }

    public func observeCommitLatency(seconds: Double) {
        // A negative or NaN latency comes from a clock step; it says nothing about the protocol.
        guard seconds >= 0 else { return }
        commitLatency.record(seconds)
    }

    /// A protocol message the core refused.
    public func rejected(reason: Rejection, count: Int = 1) { rejectedMessages.increment(reason.rawValue, by: count) }
    /// A message refused by the shell before it reached the core (bad MAC, unknown sender...).
    public func rejected(reason: String, count: Int = 1) { rejectedMessages.increment(reason, by: count) }
    /// A frame that could not be decoded (bad header, oversized, truncated...).
    public func wireError(reason: String, count: Int = 1) { wireErrors.increment(reason, by: count) }
    /// An HTTP request to the status endpoint that was not answered normally (malformed, too large...).
    public func statusRequestRefused(reason: String) { statusRequestsRefused.increment(reason) }

    /// The Prometheus text exposition format (version 0.0.4) of every metric.
    public func render() -> String { registry.emitToString() }
}

/// One counter family with a `reason` label whose distinct values are bounded.
private final class ReasonCounter: Sendable {
    private let registry: PrometheusCollectorRegistry
    // MetricNameDescriptor is not Sendable, so the parts are kept and it is rebuilt when needed.
    private let name: String
    private let help: String
    private let counters: Mutex<[String: Counter]>

    init(registry: PrometheusCollectorRegistry, name: String, help: String, known: [String]) {
        self.registry = registry
        self.name = name
        self.help = help
        var counters: [String: Counter] = [:]
        for reason in known {
            counters[reason] = registry.makeCounter(
                descriptor: NodeMetrics.name(name, unit: "total", help: help), labels: [("reason", reason)])
        }
        self.counters = Mutex(counters)
    }

    func increment(_ rawReason: String, by amount: Int = 1) {
        let reason = Self.label(rawReason)
        let counter = counters.withLock { counters -> Counter in
            if let counter = counters[reason] { return counter }
            let kept = counters.count < NodeMetrics.reasonLabelsMax ? reason : "other"
            if let counter = counters[kept] { return counter }
            let counter = registry.makeCounter(
                descriptor: NodeMetrics.name(name, unit: "total", help: help), labels: [("reason", kept)])
            counters[kept] = counter
            return counter
        }
        counter.increment(by: Int64(amount))
    }

    /// Reasons come from code, but some are built from peer input (an unknown kind byte, say):
    /// keep them to characters that need no escaping in the exposition format.
    static func label(_ reason: String) -> String {
        var label = ""
        for scalar in reason.lowercased().unicodeScalars.prefix(NodeMetrics.reasonLabelBytesMax) {
            let isPlain = ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) || scalar == "_"
            label.unicodeScalars.append(isPlain ? scalar : "_")
        }
        return label.isEmpty ? "unknown" : label
    }
}
