import Foundation
import GeoCore
@testable import GeoStore
import GeoWire
import Testing

let identity = LogIdentity(replicaNumber: 7, topologyDigest: Digest(bytes: [UInt8](repeating: 0xAB, count: 32))!)
let manual = LogOptions(compaction: .manual)

/// A log holding `records`, synced and closed; returns the file's bytes.
@discardableResult
func writeLog(_ directory: TemporaryDirectory, _ records: [DurableRecord]) throws -> [UInt8] {
    let (log, recovered) = try ReplicaLog.open(directory: directory.replicaDirectory, identity: identity, options: manual)
    #expect(recovered.created)
    try log.appendAndSync(records)
    log.close()
    return readBytes(directory.logPath)
}

@Suite struct RecordCodecTests {
    @Test(arguments: RecordKind.allCases)
    func everyKindRoundTrips(kind: RecordKind) throws {
        var generator = RecordGenerator(seed: 11)
        for _ in 0..<50 {
            let record = generator.record(kind)
            let bytes = DurableRecordCodec.encode(record)
            let decoded = try DurableRecordCodec.decode(bytes, limits: WireLimits())
            #expect(decoded == record)
            #expect(DurableRecordCodec.encode(decoded) == bytes)
            #expect(bytes.count >= DurableRecordCodec.minimumPayloadBytes)
        }
    }

    @Test func decodingIsStrict() {
        let view = DurableRecordCodec.encode(.view(3, normal: true))
        #expect(throws: WireError.trailingBytes(count: 1)) { try DurableRecordCodec.decode(view + [0], limits: WireLimits()) }
        #expect(throws: WireError.invalidTag(field: "record.tag", value: 9)) {
            try DurableRecordCodec.decode([UInt8]([9]) + view.dropFirst(), limits: WireLimits())
        }
        var badBool = view
        badBool[badBool.count - 1] = 2
        #expect(throws: WireError.invalidTag(field: "record.normal", value: 2)) {
            try DurableRecordCodec.decode(badBool, limits: WireLimits())
        }
        #expect(throws: WireError.self) { try DurableRecordCodec.decode(Array(view.dropLast()), limits: WireLimits()) }
    }

    @Test func snapshotFoldsBackToItsState() {
        var generator = RecordGenerator(seed: 5)
        var records = generator.history(rounds: 1...20, view: 2, checkpointEvery: 8)
        records.append(.view(4, normal: false))
        let state = fold(records)
        let snapshot = DurableRecordCodec.snapshot(of: state)
        #expect(fold(snapshot) == state)
        // Only what is above the stable round survives; every block does.
        #expect(state.stable?.statement.round == 16)
        #expect(state.signed.keys.allSatisfy { $0.round > 16 } && state.prepared.count == 4)
        #expect(snapshot.count == 1 + 2 + 8 + 4 + 20 + 20)
    }
}

@Suite struct ReplicaLogTests {
    @Test func everyRecordKindSurvivesReopen() throws {
        let directory = TemporaryDirectory("roundtrip")
        var generator = RecordGenerator(seed: 1)
        var records = generator.history(rounds: 1...12, view: 1, checkpointEvery: 5)
        records += RecordKind.allCases.map { generator.record($0) }
        records.append(.view(3, normal: false))
        let (log, created) = try ReplicaLog.open(directory: directory.replicaDirectory, identity: identity, options: manual)
        #expect(created.created && created.records == 0 && created.state == DurableState())
        try log.append(Array(records.prefix(10)))
        try log.appendAndSync(Array(records.dropFirst(10)))
        #expect(log.state == fold(records))
        #expect(log.fileBytes == readBytes(directory.logPath).count)
        log.close()

        let (reopened, recovered) = try ReplicaLog.open(directory: directory.replicaDirectory, identity: identity, options: manual)
        #expect(recovered.state == fold(records))
        #expect(recovered.records == records.count)
        #expect(recovered.truncatedBytes == 0 && !recovered.created && !recovered.removedTemporaryFile)
        #expect(reopened.state == recovered.state)
    }

    /// Cuts the last record short by `k` bytes, as a crash in the middle of an append would.
    @Test(arguments: [1, 4, 8, 9, 30])
    func tornTailIsCutAndTheLogGoesOn(k: Int) throws {
        let directory = TemporaryDirectory("torn")
        var generator = RecordGenerator(seed: 2)
        let records = generator.history(rounds: 1...6, view: 0, checkpointEvery: 100)
        let file = try writeLog(directory, records)
        let lastRecordBytes = file.count - recordOffsets(file).last!
        #expect(k < lastRecordBytes)
        try writeBytes(Array(file.dropLast(k)), to: directory.logPath)

        let (log, recovered) = try ReplicaLog.open(directory: directory.replicaDirectory, identity: identity, options: manual)
        #expect(recovered.state == fold(records.dropLast()))
        #expect(recovered.records == records.count - 1)
        #expect(recovered.truncatedBytes == lastRecordBytes - k)
        #expect(recovered.truncationReason != nil)
        #expect(readBytes(directory.logPath) == Array(file.dropLast(lastRecordBytes)))

        let more = generator.history(rounds: 7...8, view: 0, checkpointEvery: 100)
        try log.appendAndSync(more)
        log.close()
        let (_, again) = try ReplicaLog.open(directory: directory.replicaDirectory, identity: identity, options: manual)
        #expect(again.state == fold(records.dropLast() + more))
        #expect(again.truncatedBytes == 0)
    }

    @Test(arguments: ["zeros", "random", "short"])
    func garbageAfterTheLastRecordIsCut(garbage: String) throws {
        let directory = TemporaryDirectory("garbage")
        var generator = RecordGenerator(seed: 3)
        let records = generator.history(rounds: 1...4, view: 0, checkpointEvery: 2)
        let file = try writeLog(directory, records)
        let tail: [UInt8]
        switch garbage {
        case "zeros": tail = [UInt8](repeating: 0, count: 4096)  // the filesystem grew the file, the data never came
        case "random": tail = generator.random.bytes(count: 777)
        default: tail = [1, 2, 3]
        }
        try writeBytes(file + tail, to: directory.logPath)
        let (_, recovered) = try ReplicaLog.open(directory: directory.replicaDirectory, identity: identity, options: manual)
        #expect(recovered.state == fold(records))
        #expect(recovered.truncatedBytes == tail.count)
        #expect(readBytes(directory.logPath) == file)
    }

    @Test func aDamagedLastRecordCountsAsTorn() throws {
        let directory = TemporaryDirectory("lastflip")
        var generator = RecordGenerator(seed: 4)
        let records = generator.history(rounds: 1...3, view: 0, checkpointEvery: 100)
        var file = try writeLog(directory, records)
        let last = recordOffsets(file).last!
        file[last + LogFormat.recordFrameBytes + 3] ^= 0x10
        try writeBytes(file, to: directory.logPath)
        let (_, recovered) = try ReplicaLog.open(directory: directory.replicaDirectory, identity: identity, options: manual)
        #expect(recovered.state == fold(records.dropLast()))
        #expect(recovered.truncatedBytes == file.count - last)
    }

    /// A damaged record with valid records after it is not a torn write: refused, file untouched.
    @Test(arguments: [LogFormat.recordFrameBytes + 5, 4, 0])
    func damageInTheMiddleIsRefused(byteInRecord: Int) throws {
        let directory = TemporaryDirectory("middle")
        var generator = RecordGenerator(seed: 5)
        let records = generator.history(rounds: 1...6, view: 0, checkpointEvery: 100)
        var file = try writeLog(directory, records)
        let offsets = recordOffsets(file)
        let damaged = offsets[offsets.count / 2]
        file[damaged + byteInRecord] ^= 0x01
        try writeBytes(file, to: directory.logPath)

        let error = #expect(throws: StoreError.self) {
            _ = try ReplicaLog.open(directory: directory.replicaDirectory, identity: identity, options: manual)
        }
        guard case let .corrupt(path, offset, reason) = error else {
            Issue.record("expected .corrupt, got \(String(describing: error))")
            return
        }
        #expect(path == directory.logPath && offset == damaged)
        #expect(reason.contains("a valid record follows"))
        #expect(error?.description.contains("\(directory.logPath): corrupt at byte \(damaged)") == true)
        #expect(readBytes(directory.logPath) == file)
        #expect(!FileManager.default.fileExists(atPath: directory.temporaryPath))
    }

    @Test func aRecordThatChecksButDoesNotDecodeIsRefused() throws {
        let directory = TemporaryDirectory("undecodable")
        var file = try writeLog(directory, [.view(1, normal: true)])
        // A well-framed record with an unknown tag: written by a newer build, or a bug; never torn.
        var payload = DurableRecordCodec.encode(.view(2, normal: true))
        payload[0] = 200
        var writer = ByteWriter()
        writer.u32(UInt32(payload.count))
        writer.u32(CRC32C.checksum(payload))
        writer.raw(payload)
        file += writer.bytes
        try writeBytes(file, to: directory.logPath)
        let error = #expect(throws: StoreError.self) {
            _ = try ReplicaLog.open(directory: directory.replicaDirectory, identity: identity, options: manual)
        }
        guard case let .corrupt(_, offset, reason) = error else {
            Issue.record("expected .corrupt, got \(String(describing: error))")
            return
        }
        #expect(offset == file.count - writer.bytes.count && reason.contains("does not decode"))
        #expect(readBytes(directory.logPath) == file)
    }

    @Test func anotherReplicasLogIsRefused() throws {
        let directory = TemporaryDirectory("identity")
        let file = try writeLog(directory, [.view(1, normal: true)])
        let others = [
            LogIdentity(replicaNumber: 8, topologyDigest: identity.topologyDigest),
            LogIdentity(replicaNumber: identity.replicaNumber, topologyDigest: .zero),
        ]
        for other in others {
            #expect(throws: StoreError.identityMismatch(path: directory.logPath, expected: other, found: identity)) {
                _ = try ReplicaLog.open(directory: directory.replicaDirectory, identity: other, options: manual)
            }
        }
        #expect(readBytes(directory.logPath) == file)
    }

    @Test(arguments: ["magic", "checksum", "version", "short", "empty"])
    func aBadHeaderIsRefused(damage: String) throws {
        let directory = TemporaryDirectory("header")
        var file = try writeLog(directory, [.view(1, normal: true)])
        switch damage {
        case "magic": file[0] ^= 0xFF
        case "checksum": file[20] ^= 0x01
        case "version":
            file[4] = 9
            var header = ByteWriter()
            header.raw(Array(file[0..<44]))
            file.replaceSubrange(44..<48, with: withUnsafeBytes(of: CRC32C.checksum(header.bytes).littleEndian) { Array($0) })
        case "short": file = Array(file.prefix(20))
        default: file = []
        }
        try writeBytes(file, to: directory.logPath)
        let error = #expect(throws: StoreError.self) {
            _ = try ReplicaLog.open(directory: directory.replicaDirectory, identity: identity, options: manual)
        }
        if damage == "version" {
            #expect(error == .unsupportedVersion(path: directory.logPath, found: 9, supported: LogFormat.version))
        } else if case let .corrupt(_, offset, _) = error {
            #expect(offset == 0)
        } else {
            Issue.record("expected .corrupt, got \(String(describing: error))")
        }
        #expect(readBytes(directory.logPath) == file)
    }

    @Test func compactionKeepsTheStateAndDropsWhatTheCheckpointCovers() throws {
        let directory = TemporaryDirectory("compact")
        var generator = RecordGenerator(seed: 6)
        let records = generator.history(rounds: 1...30, view: 1, checkpointEvery: 10)
        let (log, _) = try ReplicaLog.open(directory: directory.replicaDirectory, identity: identity, options: manual)
        try log.appendAndSync(records)
        let before = log.fileBytes
        try log.compact()
        #expect(log.state == fold(records) && log.compactions == 1)
        #expect(log.fileBytes < before && log.fileBytes == readBytes(directory.logPath).count)
        // Stable 30 covers every round: left are the checkpoint, the view and all 60 blocks.
        #expect(log.recordCount == 1 + 1 + 30 + 30)
        let file = readBytes(directory.logPath)
        #expect(try decodeRecords(file).allSatisfy { record in
            switch record {
            case .signed, .prepared: return false
            case .view, .delivered, .remote, .stable: return true
            case .ledgerStored: return false
            }
        })

        // Appending after a compaction goes on in the new file.
        let more = generator.history(rounds: 31...33, view: 1, checkpointEvery: 10)
        try log.appendAndSync(more)
        log.close()
        let (_, recovered) = try ReplicaLog.open(directory: directory.replicaDirectory, identity: identity, options: manual)
        #expect(recovered.state == fold(records + more))
        #expect(recovered.records == 62 + more.count && recovered.truncatedBytes == 0)
    }

    @Test func aStableCheckpointCompactsByPolicy() throws {
        let directory = TemporaryDirectory("autocompact")
        var generator = RecordGenerator(seed: 7)
        let options = LogOptions(compaction: .everyCheckpoint)
        let (log, _) = try ReplicaLog.open(directory: directory.replicaDirectory, identity: identity, options: options)
        let records = generator.history(rounds: 1...9, view: 0, checkpointEvery: 4)
        for record in records { try log.append([record]) }
        try log.sync()
        #expect(log.compactions == 2)  // at rounds 4 and 8
        #expect(log.state == fold(records))
        log.close()
        let (_, recovered) = try ReplicaLog.open(directory: directory.replicaDirectory, identity: identity, options: options)
        #expect(recovered.state == fold(records))
        // Left: checkpoint 8, round 9's two signed and one prepared, 18 blocks (view 0 needs no record).
        #expect(recovered.records == 1 + 3 + 18)

        // The default policy does not rewrite a small ledger at every checkpoint.
        let quiet = TemporaryDirectory("quiet")
        let (defaultLog, _) = try ReplicaLog.open(directory: quiet.replicaDirectory, identity: identity)
        try defaultLog.appendAndSync(records)
        #expect(defaultLog.compactions == 0)
    }

    /// A crash during compaction leaves replica.log.tmp beside the untouched old log.
    @Test(arguments: ["partial", "complete"])
    func aCrashDuringCompactionRecoversTheOldLog(leftover: String) throws {
        let directory = TemporaryDirectory("compactcrash")
        var generator = RecordGenerator(seed: 8)
        let records = generator.history(rounds: 1...8, view: 0, checkpointEvery: 4)
        let file = try writeLog(directory, records)
        // A complete compacted file (the crash came between its sync and the rename), or a torn one.
        var compacted = ByteWriter()
        ReplicaLog.encodeHeader(identity, into: &compacted)
        for record in DurableRecordCodec.snapshot(of: fold(records)) {
            try ReplicaLog.frame(record, into: &compacted, maximumPayloadBytes: .max)
        }
        let temporary = leftover == "complete" ? compacted.bytes : Array(compacted.bytes.prefix(compacted.bytes.count / 2))
        try writeBytes(temporary, to: directory.temporaryPath)

        let (log, recovered) = try ReplicaLog.open(directory: directory.replicaDirectory, identity: identity, options: manual)
        #expect(recovered.state == fold(records) && recovered.records == records.count)
        #expect(recovered.removedTemporaryFile && recovered.truncatedBytes == 0)
        #expect(!FileManager.default.fileExists(atPath: directory.temporaryPath))
        #expect(readBytes(directory.logPath) == file)
        // And compaction still works afterwards.
        try log.compact()
        #expect(log.state == fold(records))
    }

    @Test func aSecondOpenOfTheSameDirectoryIsRefused() throws {
        let directory = TemporaryDirectory("lock")
        let (log, _) = try ReplicaLog.open(directory: directory.replicaDirectory, identity: identity, options: manual)
        #expect(throws: StoreError.locked(path: directory.replicaDirectory + "/" + LogFormat.lockFileName)) {
            _ = try ReplicaLog.open(directory: directory.replicaDirectory, identity: identity, options: manual)
        }
        log.close()
        #expect(throws: StoreError.self) { try log.append([.view(1, normal: true)]) }
        let (_, again) = try ReplicaLog.open(directory: directory.replicaDirectory, identity: identity, options: manual)
        #expect(!again.created)
    }

    @Test func anOversizedRecordIsRefusedAndNothingIsWritten() throws {
        let directory = TemporaryDirectory("large")
        var limits = WireLimits(maxBodyBytes: 1024)
        limits.maxCertificateSignatures = 4
        let options = LogOptions(limits: limits, compaction: .manual)
        let (log, _) = try ReplicaLog.open(directory: directory.replicaDirectory, identity: identity, options: options)
        var generator = RecordGenerator(seed: 9)
        var block = generator.certified(generator.cluster, view: 0, round: 1)
        block.block.transactions = (0..<200).map { _ in generator.transaction() }
        #expect(throws: StoreError.self) { try log.append([.view(1, normal: true), .delivered(block)]) }
        #expect(log.fileBytes == LogFormat.headerBytes && log.state == DurableState())
        try log.appendAndSync([.view(1, normal: true)])
        #expect(log.state.view == 1)
    }

    @Test func theLogCanLiveInAnActor() async throws {
        let directory = TemporaryDirectory("actor")
        let storage = try Storage(directory: directory.replicaDirectory)
        var generator = RecordGenerator(seed: 10)
        let delivered = try await storage.persist(generator.history(rounds: 1...3, view: 0, checkpointEvery: 10))
        #expect(delivered == 3)
    }
}

/// How the daemon will hold the log: owned by one actor, which makes every call.
private actor Storage {
    let log: ReplicaLog
    init(directory: String) throws {
        log = try ReplicaLog.open(directory: directory, identity: identity, options: manual).0
    }
    func persist(_ records: [DurableRecord]) throws -> Int {
        try log.appendAndSync(records)
        return log.state.delivered.count
    }
}
