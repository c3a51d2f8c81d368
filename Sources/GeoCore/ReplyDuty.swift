// Who answers a client (issue 16, item 2). A client accepts a result once f + 1 replicas of its
// home cluster sent matching replies. Every replica used to send one: n replies per transaction,
// each its own write at a replica and its own read and decode at the client, where f + 1 do.
//
// - f + 1 backups, chosen from the transaction's signature, are its designated repliers: only
//   they reply when they execute it. Not the primary: it verifies every client signature and is
//   the busiest replica, so under load it executes last (in the simulator, with its CPU saturated,
//   it made every client of a cluster wait for it and resend once). Replicas that disagree on the
//   view may disagree on the choice; the client's reply patience covers that.
// - A client that waited its resend timeout in vain sends the request to every replica
//   (ClientCore.tick). A replica that gets a request from the client itself although it is not
//   the primary (a retransmission: a client's first attempt goes to the primary) answers it,
//   and every request of that client for the next `stickyRequests` ids, whether designated or not.
//   A client asks every replica either when its resend timeout passes or when one designated
//   replier answered and the others did not within its reply patience (ClientCore). So a silent
//   or crashed designated replier costs a client one patience, not a resend timeout per request it
//   is designated for; after that the client hears from all, as before this change.
// - In a cluster spread over regions (the PBFT baseline) every replica answers: the client takes
//   the nearest f + 1, while the designated ones may all be across the WAN (measured in the
//   simulator: the baseline's p50 on the embedded default went from 52 to 89 ms with them).
//
// Safety does not depend on this: a reply is still accepted only with f + 1 matching ones, and
// which replicas send replies changes nothing any replica signs or executes.
//
// Bounded: one entry per client that resent lately (clients are the topology's), removed once its
// window has passed; at most `maxClients` entries, the oldest window dropped first.

public struct ReplyDuty: Hashable, Sendable {
    public let n: Int
    public let f: Int
    /// Every replica answers every request (a cluster spread over regions).
    public let everyoneAnswersAlways: Bool
    /// After a retransmission, how many of the client's request ids every replica answers.
    public static let stickyRequests: UInt64 = 1_000
    static let maxClients = 65_536
    /// Per client that resent: every replica answers its requests up to this id.
    private(set) var everyoneAnswers: [ClientID: UInt64] = [:]

    public init(quorum: Quorum, everyoneAnswersAlways: Bool = false) {
        n = quorum.n
        f = quorum.f
        self.everyoneAnswersAlways = everyoneAnswersAlways
    }

    /// The f + 1 backups (indices in the cluster) that answer `transaction` in a view whose
    /// primary is `primary`: consecutive backups after the primary, wrapping, from a start that
    /// bytes 8..<16 of the signature pick (SignatureDuty uses the first eight, so verifying and
    /// replying spread independently). Every replica when there are not f + 1 backups.
    public func designatedRepliers(_ transaction: ClientTransaction, primary: UInt16) -> [UInt16] {
        let backups = n - 1
        guard f + 1 <= backups else { return (0..<n).map { UInt16($0) } }
        var selector: UInt64 = 0
        for byte in transaction.signature.bytes.dropFirst(8).prefix(8).reversed() { selector = selector << 8 | UInt64(byte) }
        let start = Int(selector % UInt64(backups))
        return (0...f).map { UInt16((Int(primary) + 1 + (start + $0) % backups) % n) }
    }

    /// A replica that is not the primary got `transaction` from its client: a retransmission.
    public mutating func clientRetransmitted(_ transaction: ClientTransaction) {
        let until = transaction.requestID &+ Self.stickyRequests
        if everyoneAnswers[transaction.client] == nil, everyoneAnswers.count >= Self.maxClients,
           let oldest = everyoneAnswers.min(by: { $0.value < $1.value })?.key {
            everyoneAnswers[oldest] = nil
        }
        everyoneAnswers[transaction.client] = max(everyoneAnswers[transaction.client] ?? 0, until)
    }

    /// Whether replica `index` answers `transaction` once it executed it; forgets a client whose
    /// window has passed.
    public mutating func answers(_ transaction: ClientTransaction, replica index: UInt16, primary: UInt16) -> Bool {
        if everyoneAnswersAlways { return true }
        if let until = everyoneAnswers[transaction.client] {
            if transaction.requestID <= until { return true }
            everyoneAnswers[transaction.client] = nil
        }
        return designatedRepliers(transaction, primary: primary).contains(index)
    }
}
