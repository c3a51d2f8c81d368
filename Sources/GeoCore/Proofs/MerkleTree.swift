// The Merkle tree over a block's transactions (block format v2): one leaf per transaction, in
// block order, so that one transaction can be proven in a certified block with log2(n) digests.
//
// Hashing is the suite's (CryptoSuite.leafDigest / nodeDigest): the daemon's is
// SHA-256(0x00 || transaction) for a leaf and SHA-256(0x01 || left || right) for an interior
// node, so no leaf can pass for an interior node or the reverse (second-preimage by re-reading a
// subtree as a transaction).
//
// Shape (as RFC 9162's Merkle Tree Hash): a tree of n > 1 leaves is a node over the tree of the
// first k leaves and the tree of the other n - k, k the largest power of two below n. An odd leaf
// is never paired with a copy of itself; it rises unchanged until it meets a subtree of its own
// size's neighbourhood. Bitcoin's rule (duplicate the last leaf of an odd level) gives [a, b, c]
// and [a, b, c, c] the same root (CVE-2012-2459); here they differ, and the leaf count is bound in
// the block header besides. The tree of no leaves has root Digest.zero (a no-op block; the header's
// count, 0, says so too).

public enum MerkleTree {
    /// The largest power of two strictly below `count` (count >= 2): where the tree splits.
    static func split(_ count: Int) -> Int {
        precondition(count >= 2, "only a tree of two or more leaves splits")
        var k = 1
        while k << 1 < count { k <<= 1 }
        return k
    }

    /// The root over `leaves` (leaf digests, in order).
    public static func root(_ leaves: [Digest], node: (Digest, Digest) -> Digest) -> Digest {
        guard !leaves.isEmpty else { return .zero }
        return root(leaves[...], node: node)
    }

    static func root(_ leaves: ArraySlice<Digest>, node: (Digest, Digest) -> Digest) -> Digest {
        if leaves.count == 1 { return leaves[leaves.startIndex] }
        let middle = leaves.startIndex + split(leaves.count)
        return node(root(leaves[..<middle], node: node), root(leaves[middle...], node: node))
    }

    /// The siblings from leaf `index` up to the root, nearest first (empty for a one-leaf tree).
    public static func path(_ leaves: [Digest], index: Int, node: (Digest, Digest) -> Digest) -> [Digest] {
        precondition(leaves.indices.contains(index), "the leaf must be in the tree")
        var range = leaves[...]
        var found: [Digest] = []
        // Walk down from the root, recording the sibling subtree's root at each split.
        while range.count > 1 {
            let middle = range.startIndex + split(range.count)
            if index < middle {
                found.append(root(range[middle...], node: node))
                range = range[..<middle]
            } else {
                found.append(root(range[..<middle], node: node))
                range = range[middle...]
            }
        }
        return found.reversed()
    }

    /// The root that `leaf` at `index` of a tree of `count` leaves, with siblings `path` (nearest
    /// first), leads to; nil when the path does not fit that shape (wrong length, index out of range).
    public static func root(leaf: Digest, index: Int, count: Int, path: [Digest], node: (Digest, Digest) -> Digest) -> Digest? {
        guard count >= 1, index >= 0, index < count else { return nil }
        // The splits from the root down, then the path is consumed from its far (root) end.
        var remaining = path[...]
        func climb(_ index: Int, _ count: Int) -> Digest? {
            if count == 1 { return leaf }
            let k = split(count)
            guard let sibling = remaining.popLast() else { return nil }
            if index < k {
                guard let left = climb(index, k) else { return nil }
                return node(left, sibling)
            }
            guard let right = climb(index - k, count - k) else { return nil }
            return node(sibling, right)
        }
        guard let result = climb(index, count), remaining.isEmpty else { return nil }
        return result
    }
}
