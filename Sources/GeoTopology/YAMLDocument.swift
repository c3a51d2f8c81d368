// Typed access to a YAML node tree with errors that carry the line, column and field path.
// Nothing of Yams leaves this target: TopologyLoader turns the tree into GeoCore's Topology.

import Yams

/// A YAML node together with its path in the document ("shards[0].clusters[1]").
struct YAMLField {
    let node: Node
    let path: String

    var line: Int? { node.mark?.line }
    var column: Int? { node.mark?.column }

    func child(_ key: String, _ node: Node) -> YAMLField {
        YAMLField(node: node, path: path.isEmpty ? key : "\(path).\(key)")
    }

    func element(_ index: Int, _ node: Node) -> YAMLField {
        YAMLField(node: node, path: "\(path)[\(index)]")
    }

    /// What the node is, in words, for "expected X, found Y" messages.
    var kindDescription: String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case let .scalar(scalar):
            if node.null != nil { return "nothing (null)" }
            if node.int != nil { return "the integer \(scalar.string)" }
            if node.float != nil { return "the number \(scalar.string)" }
            if node.bool != nil { return "the boolean \(scalar.string)" }
            return "the text '\(scalar.string)'"
        case .alias: return "an alias"
        }
    }
}

/// The keys of one mapping, checked against a schema.
struct YAMLMapping {
    let field: YAMLField
    private let values: [String: YAMLField]

    init(field: YAMLField, values: [String: YAMLField]) {
        self.field = field
        self.values = values
    }

    subscript(key: String) -> YAMLField? { values[key] }
    func has(_ key: String) -> Bool { values[key] != nil }
}

/// Reads typed values out of nodes, throwing TopologyError with the exact place on any mismatch.
struct YAMLReader {
    let file: String

    func error(_ problem: TopologyProblem, _ field: YAMLField, _ message: String) -> TopologyError {
        TopologyError(problem, file: file, line: field.line, column: field.column, field: field.path, message: message)
    }

    func mapping(_ field: YAMLField, allowed: [String], required: [String] = []) throws(TopologyError) -> YAMLMapping {
        guard case let .mapping(mapping) = field.node else {
            throw error(.wrongType, field, "expected a mapping, found \(field.kindDescription)")
        }
        var values: [String: YAMLField] = [:]
        for (keyNode, valueNode) in mapping {
            guard case let .scalar(keyScalar) = keyNode else {
                throw error(.wrongType, YAMLField(node: keyNode, path: field.path), "keys must be plain names")
            }
            let key = keyScalar.string
            let keyField = field.child(key, keyNode)
            guard allowed.contains(key) else {
                throw error(.unknownKey, keyField, "unknown key '\(key)'" + Suggestion.hint(for: key, in: allowed))
            }
            guard values[key] == nil else {
                throw error(.duplicateKey, keyField, "key '\(key)' appears twice")
            }
            values[key] = field.child(key, valueNode)
        }
        for key in required where values[key] == nil {
            throw error(.missingField, field.child(key, field.node), "missing required field '\(key)'")
        }
        return YAMLMapping(field: field, values: values)
    }

    func sequence(_ field: YAMLField) throws(TopologyError) -> [YAMLField] {
        guard case let .sequence(sequence) = field.node else {
            throw error(.wrongType, field, "expected a list, found \(field.kindDescription)")
        }
        return sequence.enumerated().map { field.element($0.offset, $0.element) }
    }

    func string(_ field: YAMLField) throws(TopologyError) -> String {
        guard case let .scalar(scalar) = field.node, field.node.null == nil else {
            throw error(.wrongType, field, "expected text, found \(field.kindDescription)")
        }
        return scalar.string
    }

    /// A name used inside replica names and file names: letters, digits, '-', '_', '.'.
    func identifier(_ field: YAMLField) throws(TopologyError) -> String {
        let text = try string(field)
        let allowed = text.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)
        }
        guard !text.isEmpty, allowed else {
            throw error(.invalidValue, field, "'\(text)' is not a valid name (use letters, digits, '-', '_' or '.')")
        }
        return text
    }

    func int(_ field: YAMLField) throws(TopologyError) -> Int {
        guard case let .scalar(scalar) = field.node, scalar.style == .plain || scalar.style == .any,
              let value = field.node.int else {
            throw error(.wrongType, field, "expected an integer, found \(field.kindDescription)")
        }
        return value
    }

    /// Only the plain words true and false: a quoted "false", yes/no or 0/1 are refused, so that
    /// a switch like `tls` is never turned off by a spelling the reader did not mean.
    func bool(_ field: YAMLField, what: String) throws(TopologyError) -> Bool {
        guard case let .scalar(scalar) = field.node, scalar.style == .plain || scalar.style == .any,
              scalar.string == "true" || scalar.string == "false" else {
            throw error(.wrongType, field, "\(what) is true or false, found \(field.kindDescription)")
        }
        return scalar.string == "true"
    }

    func positiveInt(_ field: YAMLField, what: String) throws(TopologyError) -> Int {
        let value = try int(field)
        guard value > 0 else { throw error(.nonPositive, field, "\(what) must be positive, found \(value)") }
        return value
    }

    func number(_ field: YAMLField) throws(TopologyError) -> Double {
        guard case let .scalar(scalar) = field.node, scalar.style == .plain || scalar.style == .any,
              let value = field.node.int.map(Double.init) ?? field.node.float, value.isFinite else {
            throw error(.wrongType, field, "expected a number, found \(field.kindDescription)")
        }
        return value
    }

    func positiveNumber(_ field: YAMLField, what: String) throws(TopologyError) -> Double {
        let value = try number(field)
        guard value > 0 else { throw error(.nonPositive, field, "\(what) must be positive, found \(value)") }
        return value
    }
}
