// A small typed tree for the Kubernetes manifests, emitted with Yams. Strings are always emitted
// as strings (Yams quotes "true", "8000" or "1.0" when they would read back as another type), and
// map keys keep the order they are written in, so the files read like hand-written manifests.

import Yams

indirect enum ManifestValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral {
    case string(String)
    /// A string emitted as a literal block (`|`): file contents in a ConfigMap.
    case text(String)
    case int(Int)
    case bool(Bool)
    case list([ManifestValue])
    case map([(String, ManifestValue)])

    init(stringLiteral value: String) { self = .string(value) }
    init(integerLiteral value: Int) { self = .int(value) }
    init(booleanLiteral value: Bool) { self = .bool(value) }
    init(arrayLiteral elements: ManifestValue...) { self = .list(elements) }
    init(dictionaryLiteral elements: (String, ManifestValue)...) { self = .map(elements) }

    var node: Node {
        switch self {
        case let .string(value): return .scalar(value.represented())
        case let .text(value): return .scalar(.init(value, Tag(.str), .literal))
        case let .int(value): return Node(String(value), Tag(.int))
        case let .bool(value): return Node(value ? "true" : "false", Tag(.bool))
        case let .list(items): return Node(items.map(\.node))
        case let .map(pairs): return Node(pairs.map { (Node.scalar($0.0.represented()), $0.1.node) })
        }
    }

    /// Several objects as one YAML stream (`---` between documents).
    static func stream(_ documents: [ManifestValue]) throws(DeployError) -> String {
        do {
            return try Yams.serialize(nodes: documents.map(\.node), explicitStart: true)
        } catch {
            throw .cannotWrite(path: "<manifest>", reason: "YAML emitter: \(error)")
        }
    }
}
