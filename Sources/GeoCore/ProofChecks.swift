// Certificates and proofs check themselves: distinct signers, members of the right cluster,
// the threshold, and the binding to (shard, cluster, view, round, digest). Every check here is
// pure, given a CryptoSuite for the signatures.

/// Commit certificates: n - f valid signatures of distinct replicas of the block's cluster over
/// (cluster, view, round, digest), where digest is the block's digest.
public enum CertificateCheck {
    public static func isValid(_ certified: CertifiedBlock, quorum: Quorum, suite: any CryptoSuite) -> Bool {
        let statement = certified.certificate.statement
        guard statement.cluster == certified.block.cluster, statement.round == certified.block.round else { return false }
        guard suite.digest(of: certified.block) == statement.digest else { return false }
        return hasQuorum(certified.certificate.signatures.map { ($0.replicaIndex, $0.signature) },
                         of: .commit(statement), cluster: statement.cluster, threshold: quorum.decide, quorum: quorum, suite: suite)
    }

    /// At least `threshold` distinct members of `cluster` (indices below n), each with a valid
    /// signature over `statement`. Duplicates count once; a single invalid signature fails the set.
    static func hasQuorum(_ signers: [(UInt16, Signature)], of statement: SignedStatement, cluster: ClusterID,
                          threshold: Int, quorum: Quorum, excluding excluded: UInt16? = nil, suite: any CryptoSuite) -> Bool {
        var seen = Set<UInt16>()
        for (index, _) in signers {
            guard Int(index) < quorum.n, index != excluded, seen.insert(index).inserted else { return false }
        }
        guard seen.count >= threshold else { return false }
        return signers.allSatisfy { suite.isValid($0.1, of: statement, by: ReplicaID(cluster: cluster, index: $0.0)) }
    }
}

/// Stable checkpoints: n - f matching signed checkpoints (the genesis, round 0, needs none).
public enum CheckpointCheck {
    public static func isValid(_ proof: CheckpointProof, configuration: PBFTConfiguration, suite: any CryptoSuite) -> Bool {
        guard proof.statement.cluster == configuration.cluster else { return false }
        if proof.statement.round == 0 { return proof.statement.digest == .zero && proof.checkpoints.isEmpty }
        guard proof.checkpoints.allSatisfy({ $0.statement == proof.statement }) else { return false }
        return CertificateCheck.hasQuorum(proof.checkpoints.map { ($0.replicaIndex, $0.signature) }, of: .checkpoint(proof.statement),
                                          cluster: configuration.cluster, threshold: configuration.quorum.decide,
                                          quorum: configuration.quorum, suite: suite)
    }
}

/// Prepared proofs: the primary's signed PrePrepare of view v and n - f - 1 matching Prepares of
/// distinct backups (the primary of v does not send Prepares).
public enum PreparedCheck {
    public static func isValid(_ proof: PreparedProof, configuration: PBFTConfiguration, suite: any CryptoSuite) -> Bool {
        let prePrepare = proof.prePrepare
        let statement = prePrepare.statement
        let primary = configuration.primary(of: prePrepare.view)
        guard statement.cluster == configuration.cluster, suite.digest(of: prePrepare.block) == prePrepare.digest,
              suite.isValid(prePrepare.signature, of: .prePrepare(statement), by: configuration.replica(primary)),
              proof.prepares.allSatisfy({ $0.statement == statement }) else { return false }
        return CertificateCheck.hasQuorum(proof.prepares.map { ($0.replicaIndex, $0.signature) }, of: .prepare(statement),
                                          cluster: configuration.cluster, threshold: configuration.quorum.prepared,
                                          quorum: configuration.quorum, excluding: primary, suite: suite)
    }
}

public enum ViewChangeCheck {
    /// A view change is valid when signed by its sender, with a valid checkpoint proof, and prepared
    /// proofs only for rounds within one window above that checkpoint, from views below the new one.
    public static func isValid(_ viewChange: ViewChange, configuration: PBFTConfiguration, suite: any CryptoSuite) -> Bool {
        guard viewChange.cluster == configuration.cluster, Int(viewChange.replicaIndex) < configuration.n,
              suite.isValid(viewChange.signature, of: .viewChange(viewChange), by: configuration.replica(viewChange.replicaIndex)),
              CheckpointCheck.isValid(viewChange.checkpoint, configuration: configuration, suite: suite) else { return false }
        let low = viewChange.checkpoint.statement.round
        var previous: UInt64 = low
        for proof in viewChange.prepared {
            guard proof.round > previous, proof.round <= low + configuration.window, proof.view < viewChange.newView,
                  PreparedCheck.isValid(proof, configuration: configuration, suite: suite) else { return false }
            previous = proof.round
        }
        return true
    }
}

/// What a new view must re-propose, computed the same way by the new primary and by every
/// replica that checks its NewView (DESIGN 2.1): from the highest stable checkpoint among the view
/// changes (minS) up to the highest prepared round (maxS), each round gets the block of its
/// highest-view prepared proof, or a no-op block when none prepared it.
///
/// A proof whose block carries a client transaction with an invalid signature is passed over
/// (`isValid`): with f + 1 verifiers per signature (SignatureDuty.swift) a prepared proof no
/// longer implies checked signatures, but a committed block does, so such a block cannot have
/// committed anywhere and re-proposing it would only stall the round. Only the candidates
/// considered are checked, highest view first.
public struct NewViewPlan: Hashable, Sendable {
    public let checkpoint: CheckpointProof
    public let blocks: [Block]

    public var firstRound: UInt64 { checkpoint.statement.round + 1 }
    public var lastRound: UInt64 { blocks.last?.round ?? checkpoint.statement.round }

    public init(viewChanges: [ViewChange], cluster: ClusterID, isValid: (ClientTransaction) -> Bool) {
        var best = viewChanges.first?.checkpoint ?? .genesis(cluster)
        for viewChange in viewChanges where viewChange.checkpoint.statement.round > best.statement.round {
            best = viewChange.checkpoint
        }
        checkpoint = best
        let minS = best.statement.round
        var candidates: [UInt64: [PreparedProof]] = [:]
        for proof in viewChanges.flatMap(\.prepared) where proof.round > minS {
            candidates[proof.round, default: []].append(proof)
        }
        var checked: [Digest: Bool] = [:]
        var chosen: [UInt64: PreparedProof] = [:]
        for (round, proofs) in candidates {
            // Highest view wins; equal views with different digests cannot both be prepared
            // unless more than f replicas are faulty; break the tie deterministically anyway.
            let ordered = proofs.sorted { ($0.view, $1.prePrepare.digest) > ($1.view, $0.prePrepare.digest) }
            chosen[round] = ordered.first { proof in
                if let known = checked[proof.prePrepare.digest] { return known }
                let valid = proof.prePrepare.block.transactions.allSatisfy(isValid)
                checked[proof.prePrepare.digest] = valid
                return valid
            }
        }
        let maxS = chosen.keys.max() ?? minS
        var blocks: [Block] = []
        if maxS > minS {
            for round in (minS + 1)...maxS {
                blocks.append(chosen[round]?.prePrepare.block ?? Block(cluster: cluster, round: round, transactions: []))
            }
        }
        self.blocks = blocks
    }
}

public enum NewViewCheck {
    /// The plan of a NewView if the message is valid: signed by the new primary, n - f valid view
    /// changes for its view from distinct replicas, and exactly the PrePrepares the plan implies,
    /// each signed by the new primary. Nil otherwise.
    public static func validPlan(_ newView: NewView, configuration: PBFTConfiguration, suite: any CryptoSuite) -> NewViewPlan? {
        let primary = configuration.replica(configuration.primary(of: newView.view))
        guard newView.cluster == configuration.cluster,
              suite.isValid(newView.signature, of: .newView(newView), by: primary) else { return nil }
        var senders = Set<UInt16>()
        for viewChange in newView.viewChanges {
            guard viewChange.newView == newView.view, senders.insert(viewChange.replicaIndex).inserted,
                  ViewChangeCheck.isValid(viewChange, configuration: configuration, suite: suite) else { return nil }
        }
        guard senders.count >= configuration.quorum.decide else { return nil }
        let plan = NewViewPlan(viewChanges: newView.viewChanges, cluster: configuration.cluster, isValid: suite.isValid)
        guard plan.blocks.count == newView.prePrepares.count else { return nil }
        for (block, prePrepare) in zip(plan.blocks, newView.prePrepares) {
            guard prePrepare.view == newView.view, prePrepare.block == block, suite.digest(of: block) == prePrepare.digest,
                  suite.isValid(prePrepare.signature, of: .prePrepare(prePrepare.statement), by: primary) else { return nil }
        }
        return plan
    }
}
