// What one `geofabric bench` run does: its settings, who its clients are, the recorder of their
// latencies, the run itself on real replica processes (LiveBenchmark) and the observer of the
// replicas' ledgers.

import Foundation
import GeoClient
import GeoCore
import GeoCrypto
import GeoNet
import GeoNode
import GeoSim
import Histogram
import Logging
import Synchronization

struct BenchSettings: Sendable {
    var durationSeconds = 10.0
    var warmupSeconds = 2.0
    var clientsPerRegion = 16
    var emulateWAN = false
    var keyCount = 10_000
    var zipfTheta = 0.99
    var readFraction = 0.5
    var transferFraction = 0.1
    var crossShardFraction = 0.0
    var requestTimeoutSeconds = 10.0
    var seed: UInt64 = 1
    var readyTimeoutSeconds = 60.0
    /// How long the replicas get to connect to each other before the load starts regardless.
    var meshTimeoutSeconds = 20.0
    /// Seconds of the verify-rate measurement (0: skip, bound unknown): half in five slices before
    /// the replicas start, half in five after they stop; the bound uses the median of the ten.
    var calibrationSeconds = 2.0
    /// How long the replicas get without progress, once the clients stop, to reach one height
    /// per shard and finish every cross-shard transaction; and how long they get in all.
    var settleSeconds = 5.0
    var settleLimitSeconds = 30.0
    /// Bounds every status poll, so a silent replica cannot hold up the progress line.
    var statusTimeoutSeconds = 0.7
    /// Clients against replicas already running at the topology's addresses (deploy nothing).
    var attach = false
    /// Only the clients of this region (one load generator per region; `bench merge` combines them).
    var clientsRegion: String?
}

/// Who the clients are: identity, region, the shard whose keys they use and their home cluster.
struct BenchClientPlan: Sendable {
    var client: ClientID
    var region: String
    var shard: Int
    var cluster: Cluster
    /// "shard/region" of the home cluster, the key of the per-cluster figures.
    var clusterLabel: String
}

enum BenchPlan {
    /// The regions that host a cluster of the topology (clients live where the replicas are).
    static func clientRegions(of topology: Topology) -> [String] {
        topology.regions.map(\.name).filter { region in topology.shards.contains { $0.clusters.contains { $0.region == region } } }
    }

    /// `perRegion` clients in each region of `original`, spread round-robin over the shards that
    /// have a cluster there; each homed at its shard's cluster of that region in `deployed` (for the
    /// PBFT baseline: the shard's single cluster, wherever its primary is).
    static func clients(original: Topology, deployed: Topology, perRegion: Int) -> [BenchClientPlan] {
        var plans: [BenchClientPlan] = []
        for region in clientRegions(of: original) {
            let shardsHere = original.shards.indices.filter { original.shards[$0].clusters.contains { $0.region == region } }
            for index in 0..<perRegion {
                let shard = shardsHere[index % shardsHere.count]
                guard let cluster = deployed.shards[shard].homeCluster(region: region) else { continue }
                plans.append(BenchClientPlan(client: ClientID(UInt32(plans.count)), region: region, shard: shard, cluster: cluster,
                                             clusterLabel: "\(deployed.shards[shard].name)/\(cluster.region)"))
            }
        }
        return plans
    }

    /// What a client sends crosses the emulated link from its region to the replica's: replicas
    /// emulate links between replicas only (clients have no region in the topology), so replies to
    /// clients are not delayed. That favours the PBFT baseline, whose far clients reach a remote
    /// primary, so a GeoBFT advantage is not overstated.
    static func emulation(for region: String, in topology: Topology) -> WANEmulation {
        let regions = topology.allReplicas.map(\.region)
        var profiles: [String: LinkProfile] = [:]
        for other in Set(regions) {
            guard let link = topology.link(from: region, to: other) else { continue }
            profiles[other] = LinkProfile(oneWayDelay: .nanoseconds(Int64(link.rttMilliseconds / 2 * 1_000_000)),
                                          bytesPerSecond: link.megabitsPerSecond * 125_000)
        }
        let table = profiles
        return WANEmulation { peer in
            guard let number = peer.replicaNumber, regions.indices.contains(Int(number)) else { return nil }
            return table[regions[Int(number)]]
        }
    }
}

/// Latencies of completed transactions, overall and per region, cluster, shard and second.
final class BenchRecorder: Sendable {
    /// Microseconds; an hour is far above any timeout, so nothing measured is out of range.
    static let latencyMicrosecondsMax: UInt64 = 3_600_000_000

    static func histogram(digits: SignificantDigits = .three) -> Histogram<UInt64> {
        Histogram(lowestDiscernibleValue: 1, highestTrackableValue: latencyMicrosecondsMax, numberOfSignificantValueDigits: digits)
    }

    struct State {
        var total = BenchRecorder.histogram()
        var byRegion: [String: Histogram<UInt64>] = [:]
        var byCluster: [String: Histogram<UInt64>] = [:]
        var byShard: [String: Histogram<UInt64>] = [:]
        /// One per second of the run, warmup included; two digits are plenty for a time series.
        var seconds: [Histogram<UInt64>]
        var refused = 0
        var refusedByReason: [String: Int] = [:]
        var timeouts = 0
        var errors: [String: Int] = [:]
        /// Single-shard transactions apart from cross-shard ones, and the latter by outcome.
        var singleShard = BenchRecorder.histogram()
        var crossShardCommitted = BenchRecorder.histogram()
        var crossShardAborted = BenchRecorder.histogram()
        var abortsByReason: [String: Int] = [:]
    }

    /// What kind of transaction completed, and how.
    enum Outcome: Sendable {
        /// A single-shard transaction; with the reason when the state machine refused it.
        case singleShard(refusal: String?)
        case crossShardCommitted
        case crossShardAborted(reason: String)
    }

    let warmupSeconds: Double
    let durationSeconds: Double
    let state: Mutex<State>

    init(warmupSeconds: Double, durationSeconds: Double) {
        self.warmupSeconds = warmupSeconds
        self.durationSeconds = durationSeconds
        let count = Int(durationSeconds.rounded(.up))
        state = Mutex(State(seconds: (0..<count).map { _ in BenchRecorder.histogram(digits: .two) }))
    }

    /// A transaction completed `elapsed` seconds into the run; only those within the run count,
    /// and only those after the warmup count in the totals.
    func record(elapsed: Double, latency: Duration, plan: BenchClientPlan, shardName: String, outcome: Outcome) {
        guard elapsed >= 0, elapsed < durationSeconds else { return }
        let micros = min(Self.latencyMicrosecondsMax, max(1, UInt64(latency.seconds * 1_000_000)))
        state.withLock { state in
            state.seconds[min(state.seconds.count - 1, Int(elapsed))].record(micros)
            guard elapsed >= warmupSeconds else { return }
            state.total.record(micros)
            state.byRegion[plan.region, default: Self.histogram()].record(micros)
            state.byCluster[plan.clusterLabel, default: Self.histogram()].record(micros)
            state.byShard[shardName, default: Self.histogram()].record(micros)
            switch outcome {
            case let .singleShard(refusal):
                state.singleShard.record(micros)
                if let refusal {
                    state.refused += 1
                    state.refusedByReason[refusal, default: 0] += 1
                }
            case .crossShardCommitted:
                state.crossShardCommitted.record(micros)
            case let .crossShardAborted(reason):
                state.crossShardAborted.record(micros)
                state.abortsByReason[reason, default: 0] += 1
            }
        }
    }

    func timedOut() { state.withLock { $0.timeouts += 1 } }
    func failed(_ reason: String) { state.withLock { $0.errors[reason, default: 0] += 1 } }

    /// Completions and percentiles of second `index` (0-based).
    func second(_ index: Int) -> (committed: Int, p50: Double, p99: Double) {
        state.withLock { state in
            guard state.seconds.indices.contains(index) else { return (0, 0, 0) }
            let histogram = state.seconds[index]
            return (Int(histogram.totalCount), LatencySummary.milliseconds(histogram, 50), LatencySummary.milliseconds(histogram, 99))
        }
    }

    func snapshot() -> State { state.withLock { $0 } }
}

// MARK: Run

enum LiveBenchmark {
    /// Verify-rate slices before the run, and as many after it.
    static let calibrationSlices = 5

    /// Deploys `topology` (or its PBFT baseline) from `executable`'s replica processes on
    /// `dataDirectory`, runs the workload, checks the ledgers, stops every replica and reports.
    /// Cancelling the calling task ends the run early: clients and replicas are stopped, then it
    /// throws CancellationError.
    static func run(_ settings: BenchSettings, topology loaded: LoadedTopology, protocol kind: ProtocolKind, dataDirectory: String,
                    executable: String, progress: @escaping @Sendable (String) -> Void) async throws -> BenchReport {
        let original = loaded.topology
        let deployed = kind == .pbft ? original.pbftBaseline() : original
        // Client ids are numbered over every region even when one region runs, so that load
        // generators in several regions never share a client.
        let plans = BenchPlan.clients(original: original, deployed: deployed, perRegion: settings.clientsPerRegion)
            .filter { settings.clientsRegion == nil || $0.region == settings.clientsRegion }
        guard plans.count <= original.clientCount else {
            throw BenchError.invalid("\(plans.count) clients need \(plans.count) client keys; the topology has \(original.clientCount)")
        }
        let workload = try BenchWorkload.make(topology: original, keyCount: settings.keyCount, zipfTheta: settings.zipfTheta,
                                              readFraction: settings.readFraction, transferFraction: settings.transferFraction,
                                              crossShardFraction: settings.crossShardFraction).get()
        let keyRing: KeyRing
        var signingKeys: [SigningKey] = []
        do {
            keyRing = try KeyRing.load(for: deployed, baseDirectory: loaded.directory)
            for plan in plans {
                signingKeys.append(try IdentityKeys.signingKey(for: deployed, identity: Topology.clientName(plan.client), isClient: true,
                                                               baseDirectory: loaded.directory))
            }
        } catch {
            throw BenchError.invalid("client keys: \(error)")
        }
        let pki: OperatorPKI?
        do {
            pki = try await OperatorPKI.load(topology: deployed, keyRing: keyRing, baseDirectory: loaded.directory,
                                             identities: plans.map { .client($0.client) })
        } catch {
            throw BenchError.invalid("TLS certificates: \(error)")
        }

        // Before any replica runs, so the measurement has the cores to itself.
        let calibrating = settings.calibrationSeconds > 0 && !settings.attach
        let slice = settings.calibrationSeconds / 2 / Double(Self.calibrationSlices)
        var verifyRates = VerifyRateSamples(calibrating ? CryptoCalibration.verifyRateSamples(count: Self.calibrationSlices, sliceSeconds: slice) : [])

        var deployedLoaded = loaded
        deployedLoaded.topology = deployed
        let deployment: LocalDeployment?
        if settings.attach {
            deployment = nil
            try await BenchAttach.waitForReplicas(deployed, timeoutSeconds: settings.readyTimeoutSeconds, progress: progress)
        } else {
            do {
                deployment = try LocalDeployment.start(deployedLoaded, dataDirectory: dataDirectory, emulateWAN: settings.emulateWAN,
                                                       executable: executable, replicaArguments: kind == .pbft ? ["--pbft-baseline"] : [])
            } catch {
                throw BenchError.deployment("\(error)")
            }
        }
        // Stopping must happen even when the run was cancelled: a fresh task does not inherit that.
        // Attached, there is nothing of ours to stop.
        func stopDeployment() async { await Task { await deployment?.stop() }.value }
        do {
            try await deployment?.waitUntilReady(timeout: .milliseconds(Int64(settings.readyTimeoutSeconds * 1000)))
        } catch {
            await stopDeployment()
            if Task.isCancelled { throw CancellationError() }
            throw BenchError.deployment("\(error)")
        }
        // Load starts once every replica has a link to every other: a request sent earlier waits
        // for the mesh (a PrePrepare to a backup not yet connected is retransmitted only after a
        // timeout), and that start-up stall would be measured as latency.
        let clock = ContinuousClock()
        let statusTargets = deployed.allReplicas.map { StatusTarget($0) }
        let statusTimeout = Duration.milliseconds(Int64(settings.statusTimeoutSeconds * 1000))
        let meshEnd = clock.now + .milliseconds(Int64(settings.meshTimeoutSeconds * 1000))
        while !Task.isCancelled {
            let statuses = await StatusClient.fetchAll(statusTargets, timeout: statusTimeout)
            // Attached, a replica that is down (BenchAttach let the run go on without it) has no
            // links to wait for, and the others have none to it.
            let answering = statuses.filter { (try? $0.result.get()) != nil }.count
            let links = statuses.reduce(into: (connected: 0, total: 0)) { sum, entry in
                if case let .success(status) = entry.result {
                    sum.connected += status.peersConnected
                    sum.total += settings.attach ? min(status.peersTotal, answering - 1) : status.peersTotal
                } else if !settings.attach {
                    sum.total += deployed.allReplicas.count - 1
                }
            }
            if links.connected >= links.total { break }
            if clock.now >= meshEnd {
                progress("warning: starting the load with \(links.connected) of \(links.total) replica links up after \(settings.meshTimeoutSeconds) s")
                break
            }
            try? await Task.sleep(for: .milliseconds(200))
        }

        var logger = Logger(label: "geofabric.bench")
        logger.logLevel = .critical
        var clients: [FabricClient] = []
        // Replicas execute a client's requests in increasing id order only: attached to ledgers
        // that earlier runs used, the clients start above any id those could have sent.
        let firstRequestID: UInt64 = settings.attach ? UInt64(Date().timeIntervalSince1970 * 1_000_000) : 1
        // The clients of one home cluster and region share one session: one connection per
        // replica carrying all of their requests and replies (README "Client sessions"), in
        // sessions of at most what one connection may carry.
        var sessions: [ClientSession] = []
        var groups: [String: [(plan: BenchClientPlan, key: SigningKey)]] = [:]
        var groupOrder: [String] = []
        for (plan, key) in zip(plans, signingKeys) {
            let name = "\(plan.cluster.id)/\(plan.region)"
            if groups[name] == nil { groupOrder.append(name) }
            groups[name, default: []].append((plan, key))
        }
        let perSession = ClientSession.clientsMax
        var clientByID: [ClientID: FabricClient] = [:]
        for name in groupOrder {
            let members = groups[name] ?? []
            for first in stride(from: 0, to: members.count, by: perSession) {
                let chunk = Array(members[first..<min(members.count, first + perSession)])
                let lead = chunk[0].plan
                let session = ClientSession(topology: deployed, keys: keyRing, identities: chunk.map { ($0.plan.client, $0.key) },
                                            cluster: lead.cluster, region: lead.region, firstRequestID: firstRequestID,
                                            wanEmulation: settings.emulateWAN ? BenchPlan.emulation(for: lead.region, in: deployed) : nil,
                                            authority: pki?.authority(for: .client(lead.client)), logger: logger)
                await session.start()
                sessions.append(session)
                for (member, client) in zip(chunk, session.ordered) { clientByID[member.plan.client] = client }
            }
        }
        clients = plans.compactMap { clientByID[$0.client] }

        let recorder = BenchRecorder(warmupSeconds: settings.warmupSeconds, durationSeconds: settings.durationSeconds)
        let observer = LedgerObserver(topology: deployed)
        let start = clock.now
        let end = start + .milliseconds(Int64(settings.durationSeconds * 1000))
        let log = BenchRunLog()
        let startedSessions = sessions
        let timeout = Duration.milliseconds(Int64(settings.requestTimeoutSeconds * 1000))

        await withDiscardingTaskGroup { group in
            for (index, (plan, client)) in zip(plans, clients).enumerated() {
                let shardName = original.shards[plan.shard].name
                group.addTask {
                    var random = BenchRandom(seed: settings.seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(index))
                    var operation = workload.next(shard: plan.shard, &random)
                    while !Task.isCancelled, clock.now < end {
                        do {
                            let completion = try await client.submit(operation, timeout: timeout)
                            let outcome: BenchRecorder.Outcome
                            switch completion.result {
                            case .crossShardCommitted: outcome = .crossShardCommitted
                            case let .crossShardAborted(reason): outcome = .crossShardAborted(reason: ClientRun.label(reason))
                            case let .refused(refusal): outcome = .singleShard(refusal: ClientRun.label(refusal))
                            default: outcome = .singleShard(refusal: nil)
                            }
                            recorder.record(elapsed: (clock.now - start).seconds, latency: completion.latency, plan: plan,
                                            shardName: shardName, outcome: outcome)
                        } catch ClientError.busy {
                            // After a timeout the client keeps resending until it hears f + 1
                            // replies; only then may the next request go.
                            try? await Task.sleep(for: .milliseconds(20))
                            continue
                        } catch ClientError.timedOut {
                            recorder.timedOut()
                        } catch is CancellationError {
                            return
                        } catch {
                            recorder.failed("\(error)")
                        }
                        operation = workload.next(shard: plan.shard, &random)
                    }
                }
            }
            group.addTask {
                let seconds = Int(settings.durationSeconds.rounded(.up))
                var reported = Set<String>()
                for second in 1...seconds {
                    let due = min(end, start + .seconds(second))
                    try? await Task.sleep(until: due, clock: clock)
                    if Task.isCancelled { break }
                    let statuses = await StatusClient.fetchAll(statusTargets, timeout: statusTimeout)
                    let view = observer.observe(statuses)
                    let figures = recorder.second(second - 1)
                    let length = min(1, settings.durationSeconds - Double(second - 1))
                    let point = BenchSecond(second: second, committed: (log.timeline.withLock { $0.last?.committed ?? 0 }) + figures.committed,
                                            throughput_tps: Double(figures.committed) / length, p50_ms: figures.p50, p99_ms: figures.p99,
                                            views: view.views, heights: view.heights,
                                            warmup: Double(second) <= settings.warmupSeconds)
                    log.timeline.withLock { $0.append(point) }
                    progress(String(format: "[%3lds] ", second) + "\(grouped(point.throughput_tps)) txn/s  p50 \(String(format: "%.1f", point.p50_ms)) ms  p99 \(String(format: "%.1f", point.p99_ms)) ms  views \(view.views)  heights "
                             + deployed.shards.map { "\($0.name)=\(view.heights[$0.name].map { "\($0)" } ?? "?")" }.joined(separator: " ")
                             + (point.warmup ? "  (warmup)" : "") + (view.unreachable > 0 ? "  \(view.unreachable) unreachable" : ""))
                    // Resident memory when the warmup ends, a minute in (caches and the state have
                    // filled by then), and when the measurement ends.
                    let warmupEnd = max(1, Int(settings.warmupSeconds.rounded(.up)))
                    if second == warmupEnd || second == 60 || second == seconds {
                        let sample = (deployment?.processes ?? []).compactMap { entry -> (String, Double)? in
                            entry.process.isRunning ? ProcessMemory.residentMiB(pid: entry.process.processIdentifier).map { (entry.info.name, $0) } : nil
                        }
                        log.memory.withLock { memory in
                            for (name, mib) in sample {
                                if second == warmupEnd { memory[name] = (mib, nil, mib) }
                                if second == 60 { memory[name, default: (mib, nil, mib)].minute = mib }
                                if second == seconds { memory[name, default: (mib, nil, mib)].end = mib }
                            }
                        }
                    }
                    for entry in deployment?.processes ?? [] where !entry.process.isRunning && !reported.contains(entry.info.name) {
                        reported.insert(entry.info.name)
                        log.exited.withLock { $0.append(entry.info.name) }
                        progress("warning: replica \(entry.info.name) exited with status \(entry.process.terminationStatus) (log: \(entry.log))")
                    }
                }
                // The measurement is over: what is still in flight is abandoned, not awaited.
                for session in startedSessions { await session.shutdown() }
            }
        }
        if Task.isCancelled {
            await stopDeployment()
            throw CancellationError()
        }

        // The replicas finish what was in flight and reach one height per shard. They get
        // `settleSeconds` without progress (no shard growing, no cross-shard transaction ending)
        // and `settleLimitSeconds` in all: a cross-shard transaction waiting for a vote ends
        // within the coordinator's vote timeout (60 of its rounds, a heartbeat block each 50 ms
        // when idle), which on a machine crowded with other processes takes longer than 5 s.
        let settleStart = clock.now
        // Attached with one region's clients, the other regions' load may go on: no settling then.
        let settleLimit = settings.attach && settings.clientsRegion != nil
            ? settleStart : settleStart + .milliseconds(Int64(settings.settleLimitSeconds * 1000))
        var lastProgress = settleStart
        var finalView = observer.observe(await StatusClient.fetchAll(statusTargets, timeout: statusTimeout))
        while !finalView.settled, clock.now < settleLimit,
              clock.now - lastProgress < .milliseconds(Int64(settings.settleSeconds * 1000)), !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(250))
            let next = observer.observe(await StatusClient.fetchAll(statusTargets, timeout: statusTimeout))
            if next.heights.contains(where: { $0.value > finalView.heights[$0.key] ?? 0 }) || next.crossShardInProgress < finalView.crossShardInProgress {
                lastProgress = clock.now
            }
            finalView = next
        }
        let settleTime = (clock.now - settleStart).seconds
        for entry in deployment?.processes ?? [] where !entry.process.isRunning && !log.exited.withLock({ $0.contains(entry.info.name) }) {
            log.exited.withLock { $0.append(entry.info.name) }
        }
        await stopDeployment()
        if Task.isCancelled { throw CancellationError() }
        // Again with the replicas gone: a rate that moved during the run shows as spread.
        if calibrating { verifyRates.append(contentsOf: CryptoCalibration.verifyRateSamples(count: Self.calibrationSlices, sliceSeconds: slice)) }

        var result = report(settings: settings, kind: kind, original: original, deployed: deployed, plans: plans, recorder: recorder,
                            observer: observer, finalView: finalView, timeline: log.timeline.withLock { $0 }, exited: log.exited.withLock { $0 },
                            verifyRates: verifyRates, settleTime: settleTime)
        if settings.attach {
            result.attached = true
            result.clients_region = settings.clientsRegion
            result.histograms = BenchHistograms(recorder.snapshot())
        }
        // Admission control, per region: the busy answers clients got and the backoffs they waited.
        for (plan, client) in zip(plans, clients) {
            let counts = await client.admission
            result.busy_answers_by_region[plan.region, default: 0] += counts.busyAnswers
            result.backoffs_by_region[plan.region, default: 0] += counts.backoffs
        }
        result.replica_memory = log.memory.withLock { $0 }.sorted { $0.key < $1.key }.map {
            BenchReplicaMemory(replica: $0.key, rss_start_mib: ($0.value.start * 10).rounded() / 10,
                               rss_60s_mib: $0.value.minute.map { ($0 * 10).rounded() / 10 }, rss_end_mib: ($0.value.end * 10).rounded() / 10)
        }
        return result
    }

    static func report(settings: BenchSettings, kind: ProtocolKind, original: Topology, deployed: Topology, plans: [BenchClientPlan],
                       recorder: BenchRecorder, observer: LedgerObserver, finalView: LedgerObserver.View,
                       timeline: [BenchSecond], exited: [String], verifyRates: VerifyRateSamples, settleTime: Double) -> BenchReport {
        let state = recorder.snapshot()
        let measured = settings.durationSeconds - settings.warmupSeconds
        let cores = ProcessInfo.processInfo.activeProcessorCount
        // What the verification bound divides by: the verifications each transaction cost, as the
        // replicas counted them (f + 1 per transaction without faults; more when a designated
        // verifier was slow or a client resent to every replica); f + 1 when they did not say.
        let designated = plans.isEmpty ? 1 : Double(plans.reduce(0) { $0 + $1.cluster.f + 1 }) / Double(plans.count)
        let verifications = finalView.verificationsPerTransaction ?? designated
        let verifyRate = verifyRates.median
        let boundTPS = verifyRate / verifications
        let throughput = Double(state.total.totalCount) / measured
        func group(_ name: String, _ histogram: Histogram<UInt64>?, clients: Int) -> BenchGroup {
            let histogram = histogram ?? BenchRecorder.histogram()
            return BenchGroup(name: name, clients: clients, committed: Int(histogram.totalCount),
                              throughput_tps: Double(histogram.totalCount) / measured, latency_ms: LatencySummary(histogram))
        }
        let regions = BenchPlan.clientRegions(of: original).map { region in
            group(region, state.byRegion[region], clients: plans.filter { $0.region == region }.count)
        }
        var clusters: [BenchClusterLine] = []
        for shard in deployed.shards {
            for cluster in shard.clusters {
                let label = "\(shard.name)/\(cluster.region)"
                let figures = group(label, state.byCluster[label], clients: plans.filter { $0.clusterLabel == label }.count)
                clusters.append(BenchClusterLine(cluster: label, region: cluster.region, n: cluster.n, f: cluster.f,
                                                 view: observer.maxView(cluster.id), clients: figures.clients, committed: figures.committed,
                                                 throughput_tps: figures.throughput_tps, latency_ms: figures.latency_ms))
            }
        }
        let shards = deployed.shards.map { shard -> BenchShardLine in
            let figures = group(shard.name, state.byShard[shard.name], clients: plans.filter { $0.shard == Int(shard.id.rawValue) }.count)
            let replicas = shard.clusters.flatMap(\.replicas)
            return BenchShardLine(shard: shard.name, height: finalView.heights[shard.name] ?? 0, replicas: replicas.count,
                                  replicas_answered: finalView.answered[shard.name] ?? 0, settled: finalView.settledShards.contains(shard.name),
                                  agreement: observer.agrees(shard.name) && (finalView.answered[shard.name] ?? 0) > 0,
                                  heads_compared: observer.compared(shard.name), committed: figures.committed,
                                  throughput_tps: figures.throughput_tps, latency_ms: figures.latency_ms)
        }
        let committed = Int(state.total.totalCount)
        return BenchReport(
            protocol: kind.rawValue, topology: original.name, replicas: deployed.allReplicas.count,
            cluster_count: deployed.shards.reduce(0) { $0 + $1.clusters.count }, shard_count: deployed.shards.count,
            batch_size: deployed.parameters.batchSize, emulate_wan: settings.emulateWAN, duration_s: settings.durationSeconds,
            warmup_s: settings.warmupSeconds, measured_s: measured, clients: plans.count, clients_per_region: settings.clientsPerRegion,
            workload: BenchWorkloadSummary(keys: settings.keyCount, zipf_theta: settings.zipfTheta, read_fraction: settings.readFraction,
                                           transfer_fraction: settings.transferFraction, cross_shard_fraction: settings.crossShardFraction,
                                           seed: settings.seed),
            committed: committed, refused: state.refused, refused_by_reason: state.refusedByReason, timeouts: state.timeouts, errors: state.errors,
            throughput_tps: throughput, latency_ms: LatencySummary(state.total), regions: regions,
            clusters: clusters, shards: shards,
            single_shard: BenchKindLine(committed: Int(state.singleShard.totalCount),
                                        throughput_tps: Double(state.singleShard.totalCount) / measured,
                                        latency_ms: LatencySummary(state.singleShard)),
            cross_shard: settings.crossShardFraction > 0 || state.crossShardCommitted.totalCount + state.crossShardAborted.totalCount > 0
                ? BenchCrossShardLine(committed: Int(state.crossShardCommitted.totalCount), aborted: Int(state.crossShardAborted.totalCount),
                                      aborts_by_reason: state.abortsByReason,
                                      throughput_tps: Double(state.crossShardCommitted.totalCount) / measured,
                                      latency_ms: LatencySummary(state.crossShardCommitted),
                                      aborted_latency_ms: LatencySummary(state.crossShardAborted),
                                      locks_held_at_end: finalView.crossShardLocks, in_progress_at_end: finalView.crossShardInProgress,
                                      unfinished_at_end: finalView.crossShardUnfinished)
                : nil,
            view_changes: clusters.reduce(0) { $0 + $1.view },
            bound: BenchBound(cores: cores, verify_per_second_all_cores: verifyRate, verify_samples: verifyRates.values.count,
                              verify_min: verifyRates.minimum, verify_max: verifyRates.maximum, verify_spread: verifyRates.spread,
                              verifications_per_transaction: verifications,
                              verifications_designated: designated, verifications_measured: finalView.verificationsPerTransaction != nil,
                              verification_bound_tps: boundTPS, achieved_of_bound: boundTPS > 0 ? throughput / boundTPS : 0),
            agreement: shards.allSatisfy(\.agreement), replicas_exited: exited.sorted(), settle_s: settleTime, timeline: timeline)
    }
}

/// What the progress task collects for the report.
final class BenchRunLog: Sendable {
    let timeline = Mutex<[BenchSecond]>([])
    let exited = Mutex<[String]>([])
    /// Per replica: resident MiB when the warmup ended, a minute in, and at the end.
    let memory = Mutex<[String: (start: Double, minute: Double?, end: Double)]>([:])
}

/// A process's resident memory, from /proc (Linux); nil where there is no /proc or it is gone.
enum ProcessMemory {
    static func residentMiB(pid: Int32) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, let kib = Double(fields[1]) else { return nil }
            return kib / 1024
        }
        return nil
    }
}

/// Watches the replicas' status reports over a run: views, heights, and whether two replicas of a
/// shard ever reported different heads at one height (equal heads at equal heights mean equal ledgers).
final class LedgerObserver: Sendable {
    struct View {
        var views: UInt64 = 0
        var heights: [String: UInt64] = [:]
        var answered: [String: Int] = [:]
        var settledShards: Set<String> = []
        var unreachable = 0
        /// Summed over the replicas that answered (0 with one shard).
        var crossShardLocks = 0
        var crossShardInProgress = 0
        /// "replica: what it waits for", from every replica that has something unfinished.
        var crossShardUnfinished: [String] = []
        /// One height per shard, and no cross-shard transaction left unfinished.
        var settled = false
        /// Client signatures the answering replicas verified since they started, and per shard
        /// the most transactions one of its replicas executed: their ratio is what each
        /// transaction cost in verifications (f + 1 per transaction without faults).
        var clientVerifications: UInt64 = 0
        var executedByShard: [String: UInt64] = [:]
        var verificationsPerTransaction: Double? {
            let executed = executedByShard.values.reduce(0, +)
            return executed > 0 && clientVerifications > 0 ? Double(clientVerifications) / Double(executed) : nil
        }
    }

    struct State {
        var maxView: [ClusterID: UInt64] = [:]
        /// Per shard, the first head reported at each height. A run of seconds has at most a few
        /// thousand heights per shard, so this stays small.
        var heads: [String: [UInt64: String]] = [:]
        var conflicts: [String: Int] = [:]
        var compared: [String: Int] = [:]
    }

    let topology: Topology
    let state = Mutex(State())

    init(topology: Topology) { self.topology = topology }

    func observe(_ results: [(target: StatusTarget, result: Result<ReplicaStatus, StatusFetchError>)]) -> View {
        var view = View()
        var heightsSeen: [String: Set<UInt64>] = [:]
        state.withLock { state in
            for (target, result) in results {
                guard case let .success(status) = result, let info = topology.replica(named: target.name) else {
                    view.unreachable += 1
                    continue
                }
                let shard = topology.shard(info.id.cluster.shard)?.name ?? status.shard
                state.maxView[info.id.cluster] = max(state.maxView[info.id.cluster] ?? 0, status.view)
                view.heights[shard] = max(view.heights[shard] ?? 0, status.height)
                view.answered[shard, default: 0] += 1
                heightsSeen[shard, default: []].insert(status.height)
                view.clientVerifications += status.clientSignatureVerifications ?? 0
                view.executedByShard[shard] = max(view.executedByShard[shard] ?? 0, status.committedTransactions)
                view.crossShardLocks += status.crossShardLocks ?? 0
                view.crossShardInProgress += status.crossShardInProgress ?? 0
                view.crossShardUnfinished += (status.crossShardUnfinished ?? []).map { "\(target.name): \($0)" }
                if let known = state.heads[shard]?[status.height] {
                    state.compared[shard, default: 0] += 1
                    if known != status.head { state.conflicts[shard, default: 0] += 1 }
                } else {
                    state.heads[shard, default: [:]][status.height] = status.head
                }
            }
            view.views = state.maxView.values.reduce(0, +)
        }
        view.settledShards = Set(topology.shards.map(\.name).filter { heightsSeen[$0]?.count == 1 })
        view.settled = view.settledShards.count == topology.shards.count && view.crossShardInProgress == 0
        return view
    }

    func maxView(_ cluster: ClusterID) -> UInt64 { state.withLock { $0.maxView[cluster] ?? 0 } }
    func agrees(_ shard: String) -> Bool { state.withLock { ($0.conflicts[shard] ?? 0) == 0 } }
    func compared(_ shard: String) -> Int { state.withLock { $0.compared[shard] ?? 0 } }
}

/// "12,345": figures people read at a glance.
func grouped(_ value: Double) -> String {
    let formatter = NumberFormatter()
    formatter.numberStyle = .decimal
    formatter.maximumFractionDigits = 0
    formatter.usesGroupingSeparator = true
    formatter.groupingSeparator = ","
    formatter.groupingSize = 3
    return formatter.string(from: NSNumber(value: value.rounded())) ?? String(format: "%.0f", value)
}
