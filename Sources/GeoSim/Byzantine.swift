// Message rewrites of Byzantine replicas: forged and wrongly bound signatures.

import GeoCore

enum Byzantine {
    static func randomSignature(_ random: inout SeededRandom) -> Signature {
        Signature(bytes: random.bytes(count: Signature.byteCount))!
    }

    /// The same message with every signature replaced by random bytes.
    static func forge(_ message: Message, random: inout SeededRandom) -> Message {
        switch message {
        case var .prePrepare(value):
            value.signature = randomSignature(&random)
            return .prePrepare(value)
        case var .prepare(value):
            value.signature = randomSignature(&random)
            return .prepare(value)
        case var .commit(value):
            value.signature = randomSignature(&random)
            return .commit(value)
        case var .checkpoint(value):
            value.signature = randomSignature(&random)
            return .checkpoint(value)
        case var .viewChange(value):
            value.signature = randomSignature(&random)
            return .viewChange(value)
        case var .newView(value):
            value.signature = randomSignature(&random)
            return .newView(value)
        case var .certifiedBlock(value):
            value.certificate.signatures = value.certificate.signatures.map {
                CertificateSignature(replicaIndex: $0.replicaIndex, signature: randomSignature(&random))
            }
            return .certifiedBlock(value)
        case var .remoteViewChange(value):
            value.signature = randomSignature(&random)
            return .remoteViewChange(value)
        case var .shardStatement(value):
            value.signatures = value.signatures.map {
                CertificateSignature(replicaIndex: $0.replicaIndex, signature: randomSignature(&random))
            }
            return .shardStatement(value)
        case var .stateCheckpoint(value):
            value.signature = randomSignature(&random)
            return .stateCheckpoint(value)
        case .clientTransaction, .reply, .busy, .blockRequest, .stateRequest, .stateTransfer:
            return message
        }
    }

    /// Votes whose signatures are genuine but bound to another round than the one they claim.
    static func misbind(_ message: Message, suite: SimulatedCrypto) -> Message {
        func shifted(_ statement: VoteStatement) -> VoteStatement {
            var other = statement
            other.round &+= 1
            return other
        }
        switch message {
        case var .prepare(value):
            value.signature = suite.sign(.prepare(shifted(value.statement)))
            return .prepare(value)
        case var .commit(value):
            value.signature = suite.sign(.commit(shifted(value.statement)))
            return .commit(value)
        case var .checkpoint(value):
            var other = value.statement
            other.round &+= 1
            value.signature = suite.sign(.checkpoint(other))
            return .checkpoint(value)
        default:
            return message
        }
    }
}
