// The cross-shard additions to the wire format: statements in blocks, the statement message, the
// new results; every kind's round trip and the fuzz run cover them too (MessageGenerator).

import GeoCore
@testable import GeoWire
import Testing

@Suite struct CrossShardWireTests {
    let limits = WireLimits()
    let cluster = ClusterID(shard: ShardID(0), index: 1)

    func blockBody(_ block: Block) -> [UInt8] {
        var writer = ByteWriter(capacity: 64)
        MessageCodec.encode(block, into: &writer)
        return writer.bytes
    }

    @Test func blocksWithStatementsRoundTripAndChangeTheirDigest() throws {
        var generator = MessageGenerator(seed: 3)
        let block = Block(cluster: cluster, round: 7, transactions: [generator.transaction()], statements: [generator.statementProof()])
        let frame = FrameCodec.encode(.prePrepare(PrePrepare(view: 0, digest: .zero, block: block, signature: generator.signature())),
                                      from: .replica(number: 0))
        guard case let .prePrepare(decoded) = try FrameCodec.decode(frame, limits: limits).message else {
            Issue.record("not a preprepare")
            return
        }
        #expect(decoded.block == block)
        var bare = block
        bare.statements = []
        #expect(SigningPayload.blockStatements(bare.statements) != SigningPayload.blockStatements(block.statements))
    }

    @Test func aBlockWithoutStatementsKeepsItsEncoding() {
        // cluster (4) + round (8), then the transaction count with the statements flag off.
        let bytes = blockBody(Block(cluster: cluster, round: 7, transactions: []))
        #expect(bytes.count == 16)
        #expect(Array(bytes[12..<16]) == [0, 0, 0, 0])
    }

    @Test func anEmptyStatementListIsNotCanonical() throws {
        let empty = Block(cluster: cluster, round: 7, transactions: [])
        var frame = FrameCodec.encode(.prePrepare(PrePrepare(view: 0, digest: .zero, block: empty, signature: Signature(bytes: [UInt8](repeating: 1, count: 64))!)),
                                      from: .replica(number: 0))
        // view (8), digest (32), cluster (4), round (8), then the count: set its statements flag
        // and add a statement count of zero.
        let countOffset = WireFormat.headerBytes + 8 + 32 + 12
        frame[countOffset + 3] |= 0x80
        frame.insert(contentsOf: [0, 0, 0, 0], at: countOffset + 4)
        FrameSurgery.reseal(&frame)
        do {
            _ = try FrameCodec.decode(frame, limits: limits)
            Issue.record("a block with an empty statement list decoded")
        } catch {
            guard case .invalidValue(field: "block.statements", _) = error else { Issue.record("got \(error)"); return }
        }
    }

    @Test func statementSignaturesAreBoundToTheirDomainAndShards() {
        let id = CrossShardID(coordinator: ShardID(0), client: ClientID(3), requestID: 9)
        let vote = ShardStatement(source: ShardID(1), target: ShardID(0), kind: .vote(id, .commit))
        let payload = SigningPayload.statement(.shardStatement(vote))
        #expect(payload.starts(with: Array("geofabric/shard-statement/v1".utf8)))
        var elsewhere = vote
        elsewhere.target = ShardID(2)
        #expect(SigningPayload.statement(.shardStatement(elsewhere)) != payload)
        let decision = ShardStatement(source: ShardID(1), target: ShardID(0), kind: .decision(id, .commit))
        #expect(SigningPayload.statement(.shardStatement(decision)) != payload)
    }

    @Test func unknownVoteTagsAreRefused() throws {
        let id = CrossShardID(coordinator: ShardID(0), client: ClientID(3), requestID: 9)
        let proof = ShardStatementProof(statement: ShardStatement(source: ShardID(1), target: ShardID(0), kind: .vote(id, .commit)),
                                        cluster: ClusterID(shard: ShardID(1), index: 0), signatures: [])
        var frame = FrameCodec.encode(.shardStatement(proof), from: .replica(number: 0))
        // source, target, kind tag, id (2 + 4 + 8), then the vote byte.
        let voteOffset = WireFormat.headerBytes + 2 + 2 + 1 + 14
        #expect(frame[voteOffset] == 0)
        frame[voteOffset] = 9
        FrameSurgery.reseal(&frame)
        #expect(throws: WireError.invalidTag(field: "cross_shard.vote", value: 9)) { try FrameCodec.decode(frame, limits: limits) }
    }
}
