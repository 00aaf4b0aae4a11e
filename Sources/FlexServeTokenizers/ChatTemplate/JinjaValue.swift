// Runtime values of the Jinja interpreter, with Python semantics: truthiness, str()/repr(),
// equality (1 == 1.0 == True), ordering, and json.dumps-style serialisation for `tojson`.

/// A callable value: a global function, a bound method (`'x'.strip`), a macro, `loop.cycle`.
final class JinjaCallable {
    let name: String
    let body: (_ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws -> JinjaValue
    init(_ name: String, _ body: @escaping (_ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws -> JinjaValue) {
        self.name = name
        self.body = body
    }
}

/// `namespace(...)`: the one mutable object a sandboxed template may change (`{% set ns.x = 1 %}`).
final class JinjaNamespace {
    var attributes: JinjaDict
    init(_ attributes: JinjaDict) { self.attributes = attributes }
}

/// An insertion-ordered dict (Python 3.7+ order), keyed by Jinja values (strings in practice).
struct JinjaDict {
    // Two parallel arrays (not an array of tuples: that layout trips the compiler's
    // circular-reference check between JinjaValue and JinjaDict in incremental builds).
    private(set) var keys: [JinjaValue] = []
    private(set) var values: [JinjaValue] = []

    init() {}
    init(_ entries: [(JinjaValue, JinjaValue)]) {
        for (k, v) in entries { self[k] = v }
    }

    var count: Int { keys.count }
    var entries: [(key: JinjaValue, value: JinjaValue)] { zip(keys, values).map { (key: $0, value: $1) } }

    private func index(of key: JinjaValue) -> Int? { keys.firstIndex { $0.pyEquals(key) } }

    subscript(key: JinjaValue) -> JinjaValue? {
        get { index(of: key).map { values[$0] } }
        set {
            if let i = index(of: key) {
                if let newValue { values[i] = newValue } else { keys.remove(at: i); values.remove(at: i) }
            } else if let newValue {
                keys.append(key)
                values.append(newValue)
            }
        }
    }

    subscript(key: String) -> JinjaValue? {
        get { self[.string(key)] }
        set { self[.string(key)] = newValue }
    }
}

enum JinjaValue {
    /// A missing variable or attribute; `hint` is what went wrong ("'x' is undefined").
    case undefined(hint: String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([JinjaValue])
    case tuple([JinjaValue])
    case dict(JinjaDict)
    case namespace(JinjaNamespace)
    case callable(JinjaCallable)

    static func undefinedName(_ name: String) -> JinjaValue { .undefined(hint: "'\(name)' is undefined") }

    var isUndefined: Bool { if case .undefined = self { return true } else { return false } }
    var isNone: Bool { if case .none = self { return true } else { return false } }

    /// Python's name of the value's type, for error messages.
    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .callable: return "function"
        }
    }

    var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .list(let l), .tuple(let l): return !l.isEmpty
        case .dict(let d): return d.count > 0
        case .namespace, .callable: return true
        }
    }

    /// Python `str(value)` (Jinja prints undefined as the empty string).
    var str: String {
        switch self {
        case .undefined: return ""
        case .string(let s): return s
        default: return repr
        }
    }

    /// Python `repr(value)`.
    var repr: String {
        switch self {
        case .undefined: return ""
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return pyFloatRepr(d)
        case .string(let s): return pyStringRepr(s)
        case .list(let l): return "[" + l.map(\.repr).joined(separator: ", ") + "]"
        case .tuple(let l): return l.count == 1 ? "(" + l[0].repr + ",)" : "(" + l.map(\.repr).joined(separator: ", ") + ")"
        case .dict(let d): return "{" + d.entries.map { $0.key.repr + ": " + $0.value.repr }.joined(separator: ", ") + "}"
        case .namespace(let ns): return "<Namespace " + JinjaValue.dict(ns.attributes).repr + ">"
        case .callable(let c): return "<function \(c.name)>"
        }
    }

    /// Numeric view (bool counts as int, as in Python).
    var number: Double? {
        switch self {
        case .bool(let b): return b ? 1 : 0
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    var integer: Int? {
        switch self {
        case .bool(let b): return b ? 1 : 0
        case .int(let i): return i
        default: return nil
        }
    }

    /// Python `==`.
    func pyEquals(_ other: JinjaValue) -> Bool {
        switch (self, other) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let a), .string(let b)): return a.unicodeScalars.elementsEqual(b.unicodeScalars)
        case (.list(let a), .list(let b)), (.tuple(let a), .tuple(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.pyEquals($1) }
        case (.dict(let a), .dict(let b)):
            return a.count == b.count && a.entries.allSatisfy { entry in b[entry.key].map { $0.pyEquals(entry.value) } ?? false }
        case (.namespace(let a), .namespace(let b)): return a === b
        case (.callable(let a), .callable(let b)): return a === b
        default:
            if let x = integer, let y = other.integer { return x == y }
            if let x = number, let y = other.number { return x == y }
            return false
        }
    }

    /// Python `<` and friends: numbers, strings (by code point), lists/tuples lexicographically.
    func pyCompare(_ other: JinjaValue) -> Int? {
        switch (self, other) {
        case (.string(let a), .string(let b)):
            return a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars) ? -1 : (a.unicodeScalars.elementsEqual(b.unicodeScalars) ? 0 : 1)
        case (.list(let a), .list(let b)), (.tuple(let a), .tuple(let b)):
            for (x, y) in zip(a, b) where !x.pyEquals(y) { return x.pyCompare(y) }
            return a.count < b.count ? -1 : (a.count == b.count ? 0 : 1)
        default:
            if let x = integer, let y = other.integer { return x < y ? -1 : (x == y ? 0 : 1) }
            if let x = number, let y = other.number { return x < y ? -1 : (x == y ? 0 : 1) }
            return nil
        }
    }
}

/// Python's whitespace (`str.isspace`), used by strip()/split()/trim.
func pyIsSpace(_ c: Unicode.Scalar) -> Bool {
    switch c.value {
    case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: return true
    default: return false
    }
}

func pyStrip(_ s: String, chars: String? = nil, left: Bool = true, right: Bool = true) -> String {
    let set = chars.map { Set($0.unicodeScalars) }
    func strip(_ c: Unicode.Scalar) -> Bool {
        if let set { return set.contains(c) }
        return pyIsSpace(c)
    }
    let v = s.unicodeScalars
    var start = v.startIndex, end = v.endIndex
    if left { while start < end && strip(v[start]) { v.formIndex(after: &start) } }
    if right {
        while end > start {
            let p = v.index(before: end)
            guard strip(v[p]) else { break }
            end = p
        }
    }
    if start == v.startIndex && end == v.endIndex { return s }
    return String(v[start..<end])
}

/// Python `repr(float)`: shortest round-trip digits, scientific notation outside 1e-4 ..< 1e16.
func pyFloatRepr(_ d: Double) -> String {
    if d.isNaN { return "nan" }
    if d.isInfinite { return d < 0 ? "-inf" : "inf" }
    if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
    // Swift's description gives the shortest round-trip digits; re-layout them Python's way.
    var text = "\(d.magnitude)"
    var exponent = 0
    if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
        exponent = Int(text[text.index(after: e)...]) ?? 0
        text = String(text[..<e])
    }
    var intPart = text, fracPart = ""
    if let dot = text.firstIndex(of: ".") {
        intPart = String(text[..<dot])
        fracPart = String(text[text.index(after: dot)...])
    }
    var digits = intPart + fracPart
    var pointPos = intPart.count + exponent  // decimal point after `pointPos` digits
    while digits.hasPrefix("0") && digits.count > 1 { digits.removeFirst(); pointPos -= 1 }
    while digits.hasSuffix("0") && digits.count > 1 { digits.removeLast() }
    let exp10 = pointPos - 1
    let sign = d < 0 ? "-" : ""
    if exp10 < -4 || exp10 >= 16 {
        var mantissa = String(digits.first!)
        if digits.count > 1 { mantissa += "." + digits.dropFirst() }
        let e = abs(exp10)
        return sign + mantissa + "e" + (exp10 < 0 ? "-" : "+") + (e < 10 ? "0" : "") + String(e)
    }
    if pointPos <= 0 {
        return sign + "0." + String(repeating: "0", count: -pointPos) + digits
    }
    if pointPos >= digits.count {
        return sign + digits + String(repeating: "0", count: pointPos - digits.count) + ".0"
    }
    let i = digits.index(digits.startIndex, offsetBy: pointPos)
    return sign + digits[..<i] + "." + digits[i...]
}

/// Python `repr(str)`: single quotes unless the text has ' and no ", escapes for controls.
func pyStringRepr(_ s: String) -> String {
    let quote: Character = (s.contains("'") && !s.contains("\"")) ? "\"" : "'"
    var out = String(quote)
    for c in s.unicodeScalars {
        switch c {
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if Character(c) == quote {
                out += "\\" + String(quote)
            } else if c.value < 0x20 || c.value == 0x7F {
                out += "\\x" + jinjaHex(c.value, width: 2)
            } else if !pyIsPrintable(c) {
                if c.value <= 0xFF { out += "\\x" + jinjaHex(c.value, width: 2) }
                else if c.value <= 0xFFFF { out += "\\u" + jinjaHex(c.value, width: 4) }
                else { out += "\\U" + jinjaHex(c.value, width: 8) }
            } else {
                out.unicodeScalars.append(c)
            }
        }
    }
    out.append(quote)
    return out
}

/// Approximates Python's `str.isprintable` for repr: separators (other than ASCII space) and
/// control/format/unassigned characters are escaped.
private func pyIsPrintable(_ c: Unicode.Scalar) -> Bool {
    if c == " " { return true }
    switch c.properties.generalCategory {
    case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator, .spaceSeparator:
        return false
    default:
        return true
    }
}

func jinjaHex(_ v: UInt32, width: Int) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: max(0, width - s.count)) + s
}

/// `json.dumps(value, ensure_ascii=..., indent=..., separators=..., sort_keys=...)`.
struct JinjaJSONDumper {
    var ensureASCII = false
    var indent: String? = nil
    var itemSeparator = ", "
    var keySeparator = ": "
    var sortKeys = false

    func dump(_ value: JinjaValue) throws -> String {
        var out = ""
        try write(value, level: 0, into: &out)
        return out
    }

    private func write(_ value: JinjaValue, level: Int, into out: inout String) throws {
        switch value {
        case .none: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            if d.isNaN { out += "NaN" } else if d.isInfinite { out += d < 0 ? "-Infinity" : "Infinity" } else { out += pyFloatRepr(d) }
        case .string(let s): out += quote(s)
        case .list(let items), .tuple(let items):
            if items.isEmpty { out += "[]"; return }
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += itemSeparator }
                newline(level + 1, &out)
                try write(item, level: level + 1, into: &out)
            }
            newline(level, &out)
            out += "]"
        case .dict(let d):
            if d.count == 0 { out += "{}"; return }
            var entries: [(String, JinjaValue)] = []
            for (k, v) in d.entries {
                let key: String
                switch k {
                case .string(let s): key = s
                case .none: key = "null"
                case .bool(let b): key = b ? "true" : "false"
                case .int(let i): key = String(i)
                case .double(let x): key = pyFloatRepr(x)
                default: throw JinjaRuntimeError("keys must be str, int, float, bool or None, not \(k.typeName)")
                }
                entries.append((key, v))
            }
            if sortKeys { entries.sort { $0.0.unicodeScalars.lexicographicallyPrecedes($1.0.unicodeScalars) } }
            out += "{"
            for (i, (k, v)) in entries.enumerated() {
                if i > 0 { out += itemSeparator }
                newline(level + 1, &out)
                out += quote(k) + keySeparator
                try write(v, level: level + 1, into: &out)
            }
            newline(level, &out)
            out += "}"
        case .undefined, .namespace, .callable:
            throw JinjaRuntimeError("Object of type \(value.typeName) is not JSON serializable")
        }
    }

    private func newline(_ level: Int, _ out: inout String) {
        guard let indent else { return }
        out += "\n" + String(repeating: indent, count: level)
    }

    private func quote(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if c.value < 0x20 || (ensureASCII && c.value > 0x7F) {
                    if c.value > 0xFFFF {
                        let v = c.value - 0x10000
                        out += "\\u" + jinjaHex(0xD800 + (v >> 10), width: 4) + "\\u" + jinjaHex(0xDC00 + (v & 0x3FF), width: 4)
                    } else {
                        out += "\\u" + jinjaHex(c.value, width: 4)
                    }
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        return out + "\""
    }
}

/// A render-time failure inside a builtin; the interpreter attaches the position of the expression.
struct JinjaRuntimeError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}
