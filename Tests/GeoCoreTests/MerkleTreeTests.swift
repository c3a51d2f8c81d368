// The Merkle tree's shape, paths and refusals (Proofs/MerkleTree.swift), with a recording hash
// that remembers what each node was made of, so the tree's shape can be read back as text.

import GeoCore
import GeoSim
import Testing

/// Leaves are numbered digests; a node's digest is fresh, and `shape` reads the tree back.
final class ShapeRecorder {
    var made: [Digest: String] = [:]
    var counter: UInt64 = 1_000

    func leaf(_ index: Int) -> Digest {
        let digest = Digest(w0: UInt64(index), w1: 0, w2: 0, w3: 0)
        made[digest] = "\(index)"
        return digest
    }

    func node(_ left: Digest, _ right: Digest) -> Digest {
        let text = "(\(made[left] ?? "?"),\(made[right] ?? "?"))"
        if let known = made.first(where: { $0.value == text }) { return known.key }
        counter += 1
        let digest = Digest(w0: counter, w1: 1, w2: 0, w3: 0)
        made[digest] = text
        return digest
    }
}

@Suite struct MerkleTreeTests {
    @Test(arguments: [
        (1, "0"), (2, "(0,1)"), (3, "((0,1),2)"), (4, "((0,1),(2,3))"), (5, "(((0,1),(2,3)),4)"),
        (7, "(((0,1),(2,3)),((4,5),6))"), (8, "(((0,1),(2,3)),((4,5),(6,7)))"),
    ])
    func theTreeSplitsAtTheLargestPowerOfTwoBelowTheCount(count: Int, shape: String) {
        let recorder = ShapeRecorder()
        let leaves = (0..<count).map { recorder.leaf($0) }
        let root = MerkleTree.root(leaves, node: recorder.node)
        #expect(recorder.made[root] == shape)
    }

    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 100])
    func everyLeafsPathLeadsToTheRootAndNowhereElse(count: Int) {
        let suite = SimulatedCrypto(owner: nil, clientCount: 0)
        let node = { (left: Digest, right: Digest) in suite.nodeDigest(left: left, right: right) }
        let leaves = (0..<count).map { Digest(w0: UInt64($0) &* 0x9E37_79B9_7F4A_7C15, w1: 7, w2: UInt64($0), w3: 3) }
        let root = MerkleTree.root(leaves, node: node)
        for index in 0..<count {
            let path = MerkleTree.path(leaves, index: index, node: node)
            #expect(path.count == Self.depth(index, count))
            #expect(MerkleTree.root(leaf: leaves[index], index: index, count: count, path: path, node: node) == root)
            // Another leaf, another index, another count, a path one longer or shorter: another root or none.
            let other = leaves[(index + 1) % count]
            if count > 1 {
                #expect(MerkleTree.root(leaf: other, index: index, count: count, path: path, node: node) != root)
                #expect(MerkleTree.root(leaf: leaves[index], index: (index + 1) % count, count: count, path: path, node: node) != root)
                #expect(MerkleTree.root(leaf: leaves[index], index: index, count: count, path: Array(path.dropLast()), node: node) == nil)
            }
            #expect(MerkleTree.root(leaf: leaves[index], index: index, count: count, path: path + [root], node: node) == nil)
            // Not checked: the same path read in a tree of another count. For a leaf of a full left
            // subtree it can lead to the same root (leaf 0 of 3 and of 4 climb alike); the count
            // is bound by the block header instead (InclusionProofTests flip its bytes).
        }
        #expect(MerkleTree.root(leaf: leaves[0], index: count, count: count, path: [], node: node) == nil)
        #expect(MerkleTree.root(leaf: leaves[0], index: -1, count: count, path: [], node: node) == nil)
    }

    /// The path length of leaf `index` in a tree of `count`: the splits down to it.
    static func depth(_ index: Int, _ count: Int) -> Int {
        if count <= 1 { return 0 }
        var k = 1
        while k << 1 < count { k <<= 1 }
        return 1 + (index < k ? depth(index, k) : depth(index - k, count - k))
    }

    @Test func aDuplicatedLastLeafMakesAnotherRoot() {
        // CVE-2012-2459: with "duplicate the odd last leaf", [a, b, c] and [a, b, c, c] share a root.
        let suite = SimulatedCrypto(owner: nil, clientCount: 0)
        let node = { (left: Digest, right: Digest) in suite.nodeDigest(left: left, right: right) }
        let (a, b, c) = (Digest(w0: 1, w1: 0, w2: 0, w3: 0), Digest(w0: 2, w1: 0, w2: 0, w3: 0), Digest(w0: 3, w1: 0, w2: 0, w3: 0))
        #expect(MerkleTree.root([a, b, c], node: node) != MerkleTree.root([a, b, c, c], node: node))
        #expect(MerkleTree.root([a, b, c, c], node: node) == node(node(a, b), node(c, c)))
        #expect(MerkleTree.root([a, b, c], node: node) == node(node(a, b), c))
        #expect(MerkleTree.root([], node: node) == .zero)
    }

    @Test func aBlocksDigestCoversItsTransactionsRootAndCount() {
        let suite = SimulatedCrypto(owner: nil, clientCount: 8)
        let cluster = ClusterID(shard: ShardID(0), index: 1)
        let transactions = (0..<5).map { suite.signTransaction(client: ClientID(UInt32($0)), requestID: 1, operation: .add(key: [UInt8($0)], delta: 1)) }
        let block = Block(cluster: cluster, round: 3, transactions: transactions)
        let header = BlockHeader(block, suite: suite)
        #expect(header.transactionCount == 5)
        #expect(header.transactionsRoot == MerkleTree.root(transactions.map(suite.leafDigest(of:)), node: suite.nodeDigest(left:right:)))
        #expect(suite.digest(of: block) == suite.digest(of: header))
        var reordered = block
        reordered.transactions.swapAt(0, 1)
        #expect(suite.digest(of: reordered) != suite.digest(of: block))
        var dropped = block
        dropped.transactions.removeLast()
        #expect(suite.digest(of: dropped) != suite.digest(of: block))
        var otherRound = header
        otherRound.round = 4
        #expect(suite.digest(of: otherRound) != suite.digest(of: header))
    }
}
