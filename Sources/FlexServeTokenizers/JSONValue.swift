// A small JSON parser that keeps object members in order and never merges keys: vocabularies
// hold keys that Swift's String equality would treat as equal (canonically equivalent Unicode).

import Foundation

enum JSONValue {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        // keys compared by UTF-8 bytes
        let k = Array(key.utf8)
        for (mk, v) in members where mk.utf8.elementsEqual(k) { return v }
        return nil
    }
    var string: String? { if case .string(let s) = self { return s }; return nil }
    var int: Int? { if case .number(let d) = self, d.rounded() == d { return Int(d) }; return nil }
    var double: Double? { if case .number(let d) = self { return d }; return nil }
    var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    var array: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    var members: [(String, JSONValue)]? { if case .object(let m) = self { return m }; return nil }
    var isNull: Bool { if case .null = self { return true }; return false }

    static func parse(_ data: Data, name: String) throws -> JSONValue {
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> JSONValue in
            var p = JSONParser(b: raw.bindMemory(to: UInt8.self), name: name)
            p.skipWS()
            let v = try p.value()
            p.skipWS()
            if p.i != p.b.count { throw p.err("trailing characters") }
            return v
        }
    }
}

struct JSONParser {
    let b: UnsafeBufferPointer<UInt8>
    let name: String
    var i = 0

    init(b: UnsafeBufferPointer<UInt8>, name: String) { self.b = b; self.name = name }

    func err(_ m: String) -> TokenizerError { TokenizerError("\(name): invalid JSON at byte \(i): \(m)") }

    mutating func skipWS() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
    }

    mutating func value() throws -> JSONValue {
        guard i < b.count else { throw err("unexpected end") }
        switch b[i] {
        case UInt8(ascii: "{"):
            i += 1
            var m: [(String, JSONValue)] = []
            skipWS()
            if i < b.count && b[i] == UInt8(ascii: "}") { i += 1; return .object(m) }
            while true {
                skipWS()
                guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw err("expected key") }
                let k = try string()
                skipWS()
                guard i < b.count, b[i] == UInt8(ascii: ":") else { throw err("expected ':'") }
                i += 1
                skipWS()
                m.append((k, try value()))
                skipWS()
                guard i < b.count else { throw err("unexpected end") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "}") { i += 1; return .object(m) }
                throw err("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            i += 1
            var a: [JSONValue] = []
            skipWS()
            if i < b.count && b[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
            while true {
                skipWS()
                a.append(try value())
                skipWS()
                guard i < b.count else { throw err("unexpected end") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
                throw err("expected ',' or ']'")
            }
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"):
            guard i + 4 <= b.count else { throw err("bad literal") }
            i += 4; return .bool(true)
        case UInt8(ascii: "f"):
            guard i + 5 <= b.count else { throw err("bad literal") }
            i += 5; return .bool(false)
        case UInt8(ascii: "n"):
            guard i + 4 <= b.count else { throw err("bad literal") }
            i += 4; return .null
        default:
            let s = i
            while i < b.count, let c = Optional(b[i]), (c >= 0x30 && c <= 0x39) || c == 0x2D || c == 0x2B || c == 0x2E || c == 0x65 || c == 0x45 { i += 1 }
            if s == i { throw err("unexpected character") }
            // fast path for integers
            var v = 0, neg = false, j = s, isInt = true
            if b[j] == 0x2D { neg = true; j += 1 }
            while j < i { let c = b[j]; if c >= 0x30 && c <= 0x39 && v < (1 << 52) { v = v * 10 + Int(c - 0x30) } else { isInt = false; break }; j += 1 }
            if isInt { return .number(Double(neg ? -v : v)) }
            let str = String(decoding: UnsafeBufferPointer(rebasing: b[s..<i]), as: UTF8.self)
            guard let d = Double(str) else { throw err("bad number") }
            return .number(d)
        }
    }

    mutating func hex4() throws -> UInt32 {
        guard i + 4 <= b.count else { throw err("bad \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw err("bad hex digit")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    mutating func string() throws -> String {
        i += 1  // opening quote
        let s = i
        // fast path: no escapes
        while i < b.count && b[i] != 0x22 && b[i] != 0x5C { i += 1 }
        if i < b.count && b[i] == 0x22 {
            let str = String(decoding: UnsafeBufferPointer(rebasing: b[s..<i]), as: UTF8.self)
            i += 1
            return str
        }
        var out = [UInt8](UnsafeBufferPointer(rebasing: b[s..<i]))
        while true {
            guard i < b.count else { throw err("unterminated string") }
            let c = b[i]
            if c == 0x22 { i += 1; break }
            if c == 0x5C {
                i += 1
                guard i < b.count else { throw err("bad escape") }
                let e = b[i]
                i += 1
                switch e {
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "u"):
                    var v = try hex4()
                    if v >= 0xD800 && v < 0xDC00, i + 6 <= b.count, b[i] == 0x5C, b[i + 1] == UInt8(ascii: "u") {
                        i += 2
                        let lo = try hex4()
                        if lo >= 0xDC00 && lo < 0xE000 {
                            v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00)
                        } else {
                            appendUTF8(0xFFFD, &out); v = lo
                        }
                    }
                    if v >= 0xD800 && v < 0xE000 { v = 0xFFFD }
                    appendUTF8(v, &out)
                default: out.append(e)
                }
            } else {
                out.append(c)
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
