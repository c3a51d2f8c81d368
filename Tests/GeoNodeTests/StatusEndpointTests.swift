import Foundation
import GeoCrypto
import GeoNode
import Testing
import GeoTestKit

/// A server on a free loopback port, serving `sample` and `metrics`. Its connection deadline is
/// long: it runs on the event loop, while the tasks that answer share the test process's two
/// cooperative threads with the synchronous simulator tests, which held them for 20 s and more at
/// the start of CI runs; with the default 5 s the server closed connections it had not yet
/// answered. The deadline itself is tested on its own below.
private func startServer(metrics: NodeMetrics = NodeMetrics(), deadline: Duration = .seconds(120)) async throws -> (StatusServer, Int) {
    let server = StatusServer(
        host: "127.0.0.1", port: 0, status: { sample }, metrics: { metrics.render() }, counters: metrics,
        connectionDeadline: deadline)
    try await server.start()
    return (server, try #require(server.boundPort))
}

/// How long a fetch that must get an answer (or a refusal) may wait. Only a bound on a wait for
/// an answer that never comes: under the full suite the synchronous simulator tests occupy the
/// cooperative threads at first, and a CI run saw a 5 s bound run out before a local server's answer
/// was read.
private let answerBound = Duration.seconds(30)


@Suite struct StatusServerTests {
    @Test func servesStatusAndMetricsThenStops() async throws {
        let metrics = NodeMetrics()
        metrics.setHeight(42)
        let (server, port) = try await startServer(metrics: metrics)

        #expect(await StatusClient.fetch(host: "127.0.0.1", port: port, timeout: answerBound) == .success(sample))
        let answer = try await RawSocket.exchange(port: port, request: Array("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(answer.hasPrefix("HTTP/1.1 200 OK"))
        #expect(answer.lowercased().contains("content-type: text/plain; version=0.0.4"))
        #expect(answer.contains("geofabric_ledger_height 42.0"))

        try await server.shutdown()
        guard case .failure(.unreachable) = await StatusClient.fetch(host: "127.0.0.1", port: port, timeout: answerBound) else {
            Issue.record("a stopped server still answered")
            return
        }
    }

    @Test func refusesWrongPathsMethodsAndMalformedRequests() async throws {
        let metrics = NodeMetrics()
        let (server, port) = try await startServer(metrics: metrics)

        let notFound = try await RawSocket.exchange(port: port, request: Array("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(notFound.hasPrefix("HTTP/1.1 404"))
        let wrongMethod = try await RawSocket.exchange(port: port, request: Array("POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}".utf8))
        #expect(wrongMethod.hasPrefix("HTTP/1.1 405"))
        #expect(wrongMethod.lowercased().contains("allow: get"))
        let malformed = try await RawSocket.exchange(port: port, request: Array("GARBAGE\r\n\r\n".utf8))
        #expect(malformed.hasPrefix("HTTP/1.1 400"))
        // The server may reset the connection with the rest of the request unread, so the 431
        // itself can be lost; the counter cannot.
        let huge = "GET /status HTTP/1.1\r\nHost: x\r\nX-Pad: \(String(repeating: "a", count: StatusServer.requestBytesMax))\r\n\r\n"
        let tooLarge = try await RawSocket.exchange(port: port, request: Array(huge.utf8))
        #expect(tooLarge.isEmpty || tooLarge.hasPrefix("HTTP/1.1 431"))

        // Refusals are counted after the connection closes, so a test may read the metrics first.
        #expect(await eventually(.seconds(2)) {
            let text = metrics.render()
            return text.contains(#"geofabric_status_requests_refused_total{reason="malformed"} 1"#)
                && text.contains(#"geofabric_status_requests_refused_total{reason="too_large"} 1"#)
        })
        try await server.shutdown()
    }

    @Test func garbageBytesDoNotStopTheServer() async throws {
        let (server, port) = try await startServer()

        var random = SystemRandomNumberGenerator()
        var payloads: [[UInt8]] = [[], [0], Array("\r\n\r\n".utf8), Array("GET /status HTTP/1.1\r\nHost:".utf8),
                                   Array("GET /status HTTP/9.9\r\n\r\n".utf8), [UInt8](repeating: 0xff, count: 3000)]
        for length in [1, 17, 512, 4096, 20_000] {
            payloads.append((0..<length).map { _ in UInt8.random(in: 0...255, using: &random) })
        }
        for payload in payloads {
            _ = try await RawSocket.exchange(port: port, request: payload, readTimeoutSeconds: 1)
        }
        #expect(await StatusClient.fetch(host: "127.0.0.1", port: port, timeout: answerBound) == .success(sample))
        try await server.shutdown()
    }
}

@Suite struct StatusDeadlineTests {
    /// A client that sends half a request and waits is cut off at the deadline, unanswered.
    @Test func aTricklingClientIsClosedAtTheDeadline() async throws {
        let (server, port) = try await startServer(deadline: .milliseconds(300))
        // The read timeout is far beyond the deadline, so a closed connection is the deadline's
        // doing. (Not timed: resuming this task can take seconds under the whole suite.)
        let ending = try await RawSocket.exchangeEnding(port: port, request: Array("GET /status HTTP/1.1\r\nHost:".utf8),
                                                        readTimeoutSeconds: 90)
        #expect(ending.answer.isEmpty, "half a request got an answer: \(ending.answer)")
        #expect(ending.closedByServer, "the read timed out: the server kept the connection open")
        try await server.shutdown()
    }
}

@Suite struct StatusClientTests {
    @Test func closedPortIsUnreachableWithoutWaitingForTheTimeout() async throws {
        let port = try RawSocket.closedPort()
        // Refusal must be reported as such, not as the timeout running out.
        let result = await StatusClient.fetch(host: "127.0.0.1", port: port, timeout: answerBound)
        guard case .failure(.unreachable) = result else {
            Issue.record("expected unreachable, got \(result)")
            return
        }
    }

    @Test func silentListenerTimesOut() async throws {
        let listener = try RawSocket.silentListener()
        defer { close(listener.fd) }
        // Only the outcome is checked, not how long it took: under the full suite the simulator
        // tests occupy the cooperative threads and a 300 ms timer can fire seconds late.
        let result = await StatusClient.fetch(host: "127.0.0.1", port: listener.port, timeout: .milliseconds(300))
        #expect(result == .failure(.timeout))
    }

    @Test func fetchAllKeepsOrderAndReportsEachReplica() async throws {
        let (server, port) = try await startServer()
        let targets = [
            StatusTarget(name: "up", host: "127.0.0.1", port: port),
            StatusTarget(name: "down", host: "127.0.0.1", port: try RawSocket.closedPort()),
            StatusTarget(name: "up-again", host: "127.0.0.1", port: port),
        ]
        let results = await StatusClient.fetchAll(targets, timeout: answerBound)
        try await server.shutdown()
        #expect(results.map(\.target) == targets)
        #expect(results[0].result == .success(sample))
        #expect(results[2].result == .success(sample))
        guard case .failure(.unreachable) = results[1].result else {
            Issue.record("expected unreachable, got \(results[1].result)")
            return
        }
    }
}

/// With TLS on, the status port answers HTTPS beside plain HTTP (the first byte tells them apart);
/// the client pins the replica's key.
@Suite struct StatusHTTPSTests {
    @Test func oneServesBothAndTheClientPinsTheKey() async throws {
        let key = SigningKey()
        let server = StatusServer(
            host: "127.0.0.1", port: 0, status: { sample }, metrics: { "" }, connectionDeadline: .seconds(120),
            tls: try StatusTLS.serverContext(key: key, commonName: "s0-local-0"))
        try await server.start()
        let port = try #require(server.boundPort)
        #expect(await StatusClient.fetch(host: "127.0.0.1", port: port, timeout: answerBound) == .success(sample))
        #expect(await StatusClient.fetch(host: "127.0.0.1", port: port, key: key.verifyingKey, timeout: answerBound) == .success(sample))
        let other = SigningKey().verifyingKey
        guard case .failure = await StatusClient.fetch(host: "127.0.0.1", port: port, key: other, timeout: answerBound) else {
            Issue.record("a certificate over another key was accepted")
            return
        }
        // Plain HTTP still answers after a refused HTTPS attempt.
        #expect(await StatusClient.fetch(host: "127.0.0.1", port: port, timeout: answerBound) == .success(sample))
        try await server.shutdown()
    }
}
