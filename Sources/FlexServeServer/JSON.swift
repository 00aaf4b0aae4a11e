import Foundation

/// A parsed JSON document that keeps the distinction between booleans, integers and other
/// numbers, so request validation can name the parameter of a wrong type.
public enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    /// Parses a request body; throws `APIError` (400) with the parser's complaint.
    public static func parse(_ data: Data) throws -> JSON {
        do {
            return try JSONDecoder().decode(JSON.self, from: data)
        } catch let error as DecodingError {
            var detail = "invalid JSON"
            if case .dataCorrupted(let context) = error {
                let underlying = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
                detail += ": " + (underlying ?? context.debugDescription)
            }
            throw APIError.badRequest("We could not parse the JSON body of your request. (\(detail))", code: "invalid_json")
        }
    }

    public subscript(key: String) -> JSON? {
        guard case .object(let members) = self else { return nil }
        return members[key]
    }

    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .int: return "integer"
        case .double: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }

    public var isNull: Bool { if case .null = self { return true }; return false }
}

extension JSON: Decodable {
    public init(from decoder: Decoder) throws {
        if var array = try? decoder.unkeyedContainer() {
            var items: [JSON] = []
            while !array.isAtEnd { items.append(try array.decode(JSON.self)) }
            self = .array(items)
            return
        }
        if let object = try? decoder.container(keyedBy: AnyKey.self) {
            var members: [String: JSON] = [:]
            for key in object.allKeys { members[key.stringValue] = try object.decode(JSON.self, forKey: key) }
            self = .object(members)
            return
        }
        let value = try decoder.singleValueContainer()
        if value.decodeNil() { self = .null }
        else if let b = try? value.decode(Bool.self) { self = .bool(b) }
        else if let i = try? value.decode(Int64.self) { self = .int(i) }
        else if let d = try? value.decode(Double.self) { self = .double(d) }
        else { self = .string(try value.decode(String.self)) }
    }
}

struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}

/// Writes JSON text by hand: responses and stream chunks are small and their key order stays as written.
struct JSONWriter {
    private(set) var text = ""

    static func quote(_ s: String) -> String {
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 || u.value == 0x2028 || u.value == 0x2029 {
                    out += String(format: "\\u%04x", u.value)
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}

/// A JSON value to write; `.raw` is already JSON text.
indirect enum Out {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([Out])
    case object([(String, Out)])
    case raw(String)

    var text: String {
        var s = ""
        write(into: &s)
        return s
    }

    func write(into s: inout String) {
        switch self {
        case .null: s += "null"
        case .bool(let b): s += b ? "true" : "false"
        case .int(let i): s += String(i)
        case .double(let d): s += d.isFinite ? String(d) : "null"
        case .string(let str): s += JSONWriter.quote(str)
        case .raw(let r): s += r
        case .array(let items):
            s += "["
            for (i, item) in items.enumerated() {
                if i > 0 { s += "," }
                item.write(into: &s)
            }
            s += "]"
        case .object(let members):
            s += "{"
            for (i, (k, v)) in members.enumerated() {
                if i > 0 { s += "," }
                s += JSONWriter.quote(k)
                s += ":"
                v.write(into: &s)
            }
            s += "}"
        }
    }
}
