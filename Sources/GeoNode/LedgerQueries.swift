// Ledger queries on a replica's status port: `GET /ledger/blocks/H` (the executed block at height
// H with its certificate) and `GET /ledger/tx/CLIENT:REQUEST` (where a transaction is, with its
// inclusion proof). Both read the block store, never the core's window, and answer JSON.
//
// Finding a transaction keeps memory bounded whatever the ledger's length: no txid index is held.
// A client's last executed request is found at once (the ledger state already keeps its position
// for at-most-once execution); an older request is searched for in the block store, newest block
// first, from the client's last request down, a chunk of blocks at a time (each chunk one call to
// the node, so consensus steps in between), at most `searchBlocksMax` blocks. Cost: no memory or
// disk per transaction, a scan per lookup of an old request. An on-disk index is the way to make
// old lookups cheap, if they turn out to matter (README, "Ledger queries").

import GeoCore
import GeoCrypto
import GeoWire

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A transaction's id on the command line and in URLs: `CLIENT:REQUEST` (decimal), the pair that
/// identifies a client request (it executes at most once).
public struct TransactionID: Hashable, Sendable, CustomStringConvertible {
    public var client: ClientID
    public var requestID: UInt64
    public init(client: ClientID, requestID: UInt64) {
        self.client = client
        self.requestID = requestID
    }
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let client = UInt32(parts[0]), client < 0x8000_0000, let request = UInt64(parts[1]) else { return nil }
        self.init(client: ClientID(client), requestID: request)
    }
    public init(_ transaction: ClientTransaction) { self.init(client: transaction.client, requestID: transaction.requestID) }
    public var description: String { "\(client.rawValue):\(requestID)" }
}

/// `GET /ledger/blocks/H`: one executed block.
public struct LedgerBlockDocument: Codable, Hashable, Sendable {
    public struct Transaction: Codable, Hashable, Sendable {
        public var txid: String
        public var operation: String
        /// The Merkle leaf (hex).
        public var leaf: String
    }
    public var shard: String
    public var height: UInt64
    public var cluster: Int
    public var round: UInt64
    /// The block digest the certificate signs (hex).
    public var digest: String
    public var transactions_root: String
    public var statements_digest: String
    public var transaction_count: Int
    public var statement_count: Int
    public var certificate_view: UInt64
    /// Indices (in the cluster) of the replicas whose Commit signatures the certificate holds.
    public var certificate_signers: [Int]
    public var transactions: [Transaction]
    /// The replica that answered.
    public var replica: String
}

/// `GET /ledger/tx/ID`, and the proof file `ledger tx --proof FILE` writes (`ledger verify` reads
/// only `proof`: the rest is for people and is re-derived from it when checked).
public struct LedgerTransactionDocument: Codable, Hashable, Sendable {
    public static let formatName = "geofabric-inclusion-proof/v1"
    public var format: String
    public var topology: String
    public var txid: String
    public var shard: String
    public var height: UInt64
    public var cluster: Int
    public var round: UInt64
    public var position: Int
    public var operation: String
    public var block_digest: String
    /// InclusionProofCodec's encoding, hex.
    public var proof: String
    public var replica: String
}

/// A ledger query's answer: the HTTP status and a JSON body (an `{"error": ...}` object when not 200).
public struct LedgerAnswer: Sendable {
    public var status: Int
    public var body: String
}

public struct LedgerService: Sendable {
    /// Blocks read from the node per call while searching.
    static let searchChunkBlocks = 64
    /// Blocks searched for one old request at most, so that one query cannot hold the store long.
    public static let searchBlocksMax = 65_536

    let node: ReplicaNode
    let topology: Topology
    let replica: ReplicaInfo
    let suite: Ed25519Suite

    public init(node: ReplicaNode, topology: Topology, replica: ReplicaInfo, keys: KeyRing) {
        self.node = node
        self.topology = topology
        self.replica = replica
        self.suite = Ed25519Suite(topology: topology, keys: keys, signingKey: nil)
    }

    var shardName: String { topology.shard(replica.id.cluster.shard)?.name ?? "?" }

    /// Answers `path` (without the query string) when it is a ledger path; nil otherwise.
    public func answer(path: Substring) async -> LedgerAnswer? {
        if let rest = path.dropPrefix("/ledger/blocks/") {
            guard let height = UInt64(rest), height >= 1 else {
                return Self.error(400, "not a height: \(rest) (heights start at 1)")
            }
            return await block(height: height)
        }
        if let rest = path.dropPrefix("/ledger/tx/") {
            guard let id = TransactionID(rest) else { return Self.error(400, "not a transaction id: \(rest) (CLIENT:REQUEST, e.g. 3:17)") }
            return await transaction(id)
        }
        return nil
    }

    func block(height: UInt64) async -> LedgerAnswer {
        let read = await node.storedBlocks(fromHeight: height, maxCount: 1)
        guard read.firstHeight == height, let certified = read.blocks.first else { return Self.missing(height: height, read) }
        let block = certified.block
        let header = BlockHeader(block, suite: suite)
        let document = LedgerBlockDocument(
            shard: shardName, height: height, cluster: Int(block.cluster.index), round: block.round,
            digest: certified.certificate.statement.digest.hex, transactions_root: header.transactionsRoot.hex,
            statements_digest: header.statementsDigest.hex, transaction_count: block.transactions.count,
            statement_count: block.statements.count, certificate_view: certified.certificate.statement.view,
            certificate_signers: certified.certificate.signatures.map { Int($0.replicaIndex) },
            transactions: block.transactions.map {
                .init(txid: TransactionID($0).description, operation: OperationText.describe($0.operation), leaf: suite.leafDigest(of: $0).hex)
            },
            replica: replica.name)
        return Self.json(document)
    }

    func transaction(_ id: TransactionID) async -> LedgerAnswer {
        guard let last = await node.lastExecution(of: id.client), id.requestID <= last.requestID else {
            return Self.error(404, "transaction \(id) is not in \(shardName)'s ledger at \(replica.name) (not executed here, or not yet)")
        }
        var height = last.position.height
        var searched = 0
        while height >= 1, searched < Self.searchBlocksMax {
            let count = Int(min(UInt64(Self.searchChunkBlocks), height))
            let low = height - UInt64(count) + 1
            let read = await node.storedBlocks(fromHeight: low, maxCount: count)
            for (offset, certified) in read.blocks.enumerated().reversed() {
                if let position = certified.block.transactions.firstIndex(where: { $0.client == id.client && $0.requestID == id.requestID }) {
                    return Self.json(document(certified, height: read.firstHeight + UInt64(offset), position: position))
                }
            }
            searched += count
            if low <= read.storeFirstHeight {
                guard read.storeFirstHeight <= 1 else {
                    return Self.error(410, "transaction \(id) not found down to \(replica.name)'s first stored height \(read.storeFirstHeight) "
                                      + "(older blocks were pruned: retain_rounds)")
                }
                return Self.error(404, "transaction \(id) not found in \(shardName)'s ledger at \(replica.name) (searched every block)")
            }
            height = low - 1
        }
        return Self.error(404, "transaction \(id) not found in the \(searched) blocks searched below client \(id.client.rawValue)'s "
                          + "last executed request (height \(last.position.height)) at \(replica.name)")
    }

    func document(_ certified: CertifiedBlock, height: UInt64, position: Int) -> LedgerTransactionDocument {
        let proof = InclusionProof(certified: certified, height: height, position: position, suite: suite)
        let transaction = certified.block.transactions[position]
        return LedgerTransactionDocument(
            format: LedgerTransactionDocument.formatName, topology: topology.name, txid: TransactionID(transaction).description,
            shard: shardName, height: height, cluster: Int(certified.block.cluster.index), round: certified.block.round,
            position: position, operation: OperationText.describe(transaction.operation), block_digest: proof.blockDigest.hex,
            proof: Hex.encode(InclusionProofCodec.encode(proof)), replica: replica.name)
    }

    static func missing(height: UInt64, _ read: StoredBlocks) -> LedgerAnswer {
        if height > read.storeLastHeight {
            return error(404, "height \(height) is above this replica's ledger height \(read.storeLastHeight)")
        }
        return error(410, "height \(height) is below this replica's first stored height \(read.storeFirstHeight) (pruned: retain_rounds)")
    }

    static func json(_ value: some Encodable) -> LedgerAnswer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Plain structs of strings and numbers always encode.
        return LedgerAnswer(status: 200, body: String(decoding: try! encoder.encode(value), as: UTF8.self) + "\n")
    }

    static func error(_ status: Int, _ message: String) -> LedgerAnswer {
        json(["error": message]).with(status: status)
    }
}

/// Blocks read from the store, with the store's bounds at the time.
public struct StoredBlocks: Sendable {
    public var blocks: [CertifiedBlock]
    public var firstHeight: UInt64
    public var storeFirstHeight: UInt64
    public var storeLastHeight: UInt64
}

extension ReplicaNode {
    /// Up to `maxCount` stored blocks from `height` on (fewer at the ends of the store; none on a
    /// read error, which the node's log has already reported).
    public func storedBlocks(fromHeight height: UInt64, maxCount: Int) -> StoredBlocks {
        let first = ledgerStore.firstStoredHeight, last = ledgerStore.storedHeight
        let from = max(height, first)
        var blocks: [CertifiedBlock] = []
        if from <= last, from < height + UInt64(maxCount) {
            let count = Int(min(UInt64(maxCount) - (from - height), last - from + 1))
            blocks = (try? ledgerStore.blocks(fromHeight: from, maxCount: count)) ?? []
        }
        return StoredBlocks(blocks: blocks, firstHeight: from, storeFirstHeight: first, storeLastHeight: last)
    }

    /// The client's last executed request in this shard, with where it is in the ledger.
    public func lastExecution(of client: ClientID) -> LastExecution? { core.ledger.lastExecution[client] }
}

/// Operations as one line of text: keys and values as UTF-8 when printable, else hex.
public enum OperationText {
    public static func describe(_ operation: Operation) -> String {
        switch operation {
        case let .put(key, value): "put \(text(key)) = \(text(value))"
        case let .get(key): "get \(text(key))"
        case let .add(key, delta): "add \(text(key)) \(delta)"
        case let .transfer(from, to, amount): "transfer \(amount) from \(text(from)) to \(text(to))"
        }
    }

    static func text(_ bytes: [UInt8]) -> String {
        if let string = String(validating: bytes, as: UTF8.self), string.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7f }) {
            return string
        }
        return "0x" + Hex.encode(bytes)
    }
}

extension LedgerAnswer {
    func with(status: Int) -> LedgerAnswer { LedgerAnswer(status: status, body: body) }
}

extension Substring {
    func dropPrefix(_ prefix: String) -> Substring? { hasPrefix(prefix) ? dropFirst(prefix.count) : nil }
}
