// Jinja's operators, filters, tests and the Python methods templates call on strings, dicts and
// lists (`content.strip()`, `message.items()`), with the sandbox's rules: no underscore
// attributes, no mutating methods.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

typealias JinjaScalars = [Unicode.Scalar]

extension String {
    var jinjaScalars: JinjaScalars { Array(unicodeScalars) }
    init(jinjaScalars scalars: some Sequence<Unicode.Scalar>) {
        var v = String.UnicodeScalarView()
        v.append(contentsOf: scalars)
        self = String(v)
    }
}

enum JinjaBuiltins {
    static let filterNames: Set<String> = [
        "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float",
        "indent", "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min", "reject",
        "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "sort", "string", "sum",
        "title", "tojson", "trim", "unique", "upper", "wordcount",
    ]

    static let testNames: Set<String> = [
        "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "==", "escaped", "even", "false", "filter",
        "float", "ge", ">=", "gt", "greaterthan", ">", "in", "integer", "iterable", "le", "<=", "lower", "lt",
        "lessthan", "<", "mapping", "ne", "!=", "none", "number", "odd", "sameas", "sequence", "string", "test",
        "true", "undefined", "upper",
    ]

    // MARK: iteration, attributes, items

    static func iterate(_ v: JinjaValue) throws -> [JinjaValue] {
        switch v {
        case .undefined: return []
        case .list(let l), .tuple(let l): return l
        case .string(let s): return s.unicodeScalars.map { .string(String($0)) }
        case .dict(let d): return d.keys
        default: throw JinjaRuntimeError("'\(v.typeName)' object is not iterable")
        }
    }

    private static func bound(_ name: String, _ body: @escaping ([JinjaValue], [(String, JinjaValue)]) throws -> JinjaValue) -> JinjaValue {
        .callable(JinjaCallable(name, body))
    }

    static func getattr(_ obj: JinjaValue, _ attr: String) throws -> JinjaValue {
        if case .undefined(let hint) = obj { throw JinjaRuntimeError(hint) }
        if attr.hasPrefix("_") { return .undefined(hint: "access to attribute '\(attr)' of '\(obj.typeName)' object is unsafe.") }
        switch obj {
        case .dict(let d):
            if let m = dictMethod(d, attr) { return m }
            if let v = d[attr] { return v }
        case .namespace(let ns):
            if let v = ns.attributes[attr] { return v }
        case .string(let s):
            if let m = stringMethod(s, attr) { return m }
        case .list(let l), .tuple(let l):
            if let m = listMethod(l, attr) { return m }
        default:
            break
        }
        return .undefined(hint: "'\(obj.typeName) object' has no attribute '\(attr)'")
    }

    static func getitem(_ obj: JinjaValue, _ key: JinjaValue) throws -> JinjaValue {
        if case .undefined(let hint) = obj { throw JinjaRuntimeError(hint) }
        switch obj {
        case .list(let l), .tuple(let l):
            if let i = key.integer, !(key.isBool) {
                let idx = i < 0 ? l.count + i : i
                if idx >= 0 && idx < l.count { return l[idx] }
                return .undefined(hint: "\(obj.typeName) object has no element \(i)")
            }
        case .string(let s):
            if let i = key.integer, !(key.isBool) {
                let sc = s.jinjaScalars
                let idx = i < 0 ? sc.count + i : i
                if idx >= 0 && idx < sc.count { return .string(String(sc[idx])) }
                return .undefined(hint: "str object has no element \(i)")
            }
        case .dict(let d):
            if let v = d[key] { return v }
        case .namespace(let ns):
            if let v = ns.attributes[key] { return v }
        default:
            break
        }
        if case .string(let name) = key { return try getattr(obj, name) }
        return .undefined(hint: "'\(obj.typeName) object' has no attribute \(key.repr)")
    }

    static func slice(_ obj: JinjaValue, _ start: JinjaValue?, _ stop: JinjaValue?, _ step: JinjaValue?) throws -> JinjaValue {
        if case .undefined(let hint) = obj { throw JinjaRuntimeError(hint) }
        func int(_ v: JinjaValue?) throws -> Int? {
            guard let v, !v.isNone else { return nil }
            guard let i = v.integer else { throw JinjaRuntimeError("slice indices must be integers or None") }
            return i
        }
        let st = try int(step) ?? 1
        if st == 0 { throw JinjaRuntimeError("slice step cannot be zero") }
        func indices(_ count: Int) throws -> [Int] {
            var a: Int, b: Int
            if st > 0 {
                a = try int(start).map { $0 < 0 ? max(0, $0 + count) : min($0, count) } ?? 0
                b = try int(stop).map { $0 < 0 ? max(0, $0 + count) : min($0, count) } ?? count
                return a < b ? Array(stride(from: a, to: b, by: st)) : []
            } else {
                a = try int(start).map { $0 < 0 ? max(-1, $0 + count) : min($0, count - 1) } ?? (count - 1)
                b = try int(stop).map { $0 < 0 ? max(-1, $0 + count) : min($0, count - 1) } ?? -1
                return a > b ? Array(stride(from: a, to: b, by: st)) : []
            }
        }
        switch obj {
        case .list(let l): return .list(try indices(l.count).map { l[$0] })
        case .tuple(let l): return .tuple(try indices(l.count).map { l[$0] })
        case .string(let s):
            let sc = s.jinjaScalars
            return .string(String(jinjaScalars: try indices(sc.count).map { sc[$0] }))
        default:
            throw JinjaRuntimeError("'\(obj.typeName)' object is not subscriptable")
        }
    }

    // MARK: operators

    static func binary(_ op: JinjaBinaryOp, _ l: JinjaValue, _ r: JinjaValue) throws -> JinjaValue {
        if op == .concat { return .string(l.str + r.str) }
        if case .undefined(let hint) = l { throw JinjaRuntimeError(hint) }
        if case .undefined(let hint) = r { throw JinjaRuntimeError(hint) }
        func unsupported() -> JinjaRuntimeError {
            JinjaRuntimeError("unsupported operand type(s) for \(op.rawValue): '\(l.typeName)' and '\(r.typeName)'")
        }
        // Integer arithmetic (bool is an int in Python).
        if let a = l.integer, let b = r.integer {
            switch op {
            case .add: if let v = try checked(a.addingReportingOverflow(b)) { return v }
            case .sub: if let v = try checked(a.subtractingReportingOverflow(b)) { return v }
            case .mul: if let v = try checked(a.multipliedReportingOverflow(by: b)) { return v }
            case .div:
                if b == 0 { throw JinjaRuntimeError("division by zero") }
                return .double(Double(a) / Double(b))
            case .floorDiv:
                if b == 0 { throw JinjaRuntimeError("integer division or modulo by zero") }
                let q = a / b
                return .int((a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q)
            case .mod:
                if b == 0 { throw JinjaRuntimeError("integer division or modulo by zero") }
                let m = a % b
                return .int((m != 0 && ((m < 0) != (b < 0))) ? m + b : m)
            case .pow:
                if b < 0 { return .double(pow(Double(a), Double(b))) }
                var result = 1, base = a, e = b
                var overflow = false
                while e > 0 && !overflow {
                    if e & 1 == 1 {
                        let r = result.multipliedReportingOverflow(by: base)
                        result = r.partialValue
                        overflow = r.overflow
                    }
                    e >>= 1
                    if e > 0 {
                        let r = base.multipliedReportingOverflow(by: base)
                        base = r.partialValue
                        overflow = overflow || r.overflow
                    }
                }
                if !overflow { return .int(result) }
            case .concat: break
            }
        }
        if let a = l.number, let b = r.number {
            switch op {
            case .add: return .double(a + b)
            case .sub: return .double(a - b)
            case .mul: return .double(a * b)
            case .div:
                if b == 0 { throw JinjaRuntimeError("float division by zero") }
                return .double(a / b)
            case .floorDiv:
                if b == 0 { throw JinjaRuntimeError("float floor division by zero") }
                return .double((a / b).rounded(.down))
            case .mod:
                if b == 0 { throw JinjaRuntimeError("float modulo") }
                let m = a.truncatingRemainder(dividingBy: b)
                return .double((m != 0 && ((m < 0) != (b < 0))) ? m + b : m)
            case .pow: return .double(pow(a, b))
            case .concat: break
            }
        }
        switch (op, l, r) {
        case (.add, .string(let a), .string(let b)): return .string(a + b)
        case (.add, .string, _): throw JinjaRuntimeError("can only concatenate str (not \"\(r.typeName)\") to str")
        case (.add, .list(let a), .list(let b)): return .list(a + b)
        case (.add, .list, _): throw JinjaRuntimeError("can only concatenate list (not \"\(r.typeName)\") to list")
        case (.add, .tuple(let a), .tuple(let b)): return .tuple(a + b)
        case (.mul, .string(let s), _) where r.integer != nil: return .string(String(repeating: s, count: max(0, r.integer!)))
        case (.mul, _, .string(let s)) where l.integer != nil: return .string(String(repeating: s, count: max(0, l.integer!)))
        case (.mul, .list(let a), _) where r.integer != nil: return .list(Array(repeating: a, count: max(0, r.integer!)).flatMap { $0 })
        case (.mod, .string, _): throw JinjaRuntimeError("printf-style '%' string formatting is not supported")
        default: throw unsupported()
        }
    }

    /// Python ints are unbounded; beyond 64 bits we continue in floating point.
    private static func checked(_ r: (partialValue: Int, overflow: Bool)) throws -> JinjaValue? {
        r.overflow ? nil : .int(r.partialValue)
    }
    private static func checkedInt(_ r: (partialValue: Int, overflow: Bool)) throws -> Int {
        if r.overflow { throw JinjaRuntimeError("integer overflow (values beyond 64 bits are not supported)") }
        return r.partialValue
    }

    static func contains(_ container: JinjaValue, _ item: JinjaValue) throws -> Bool {
        switch container {
        case .undefined: return false
        case .string(let s):
            guard case .string(let needle) = item else {
                throw JinjaRuntimeError("'in <string>' requires string as left operand, not \(item.typeName)")
            }
            return find(s.jinjaScalars, needle.jinjaScalars, from: 0) != nil
        case .list(let l), .tuple(let l): return l.contains { $0.pyEquals(item) }
        case .dict(let d): return d[item] != nil
        default: throw JinjaRuntimeError("argument of type '\(container.typeName)' is not iterable")
        }
    }

    static func compare(_ op: JinjaCompareOp, _ l: JinjaValue, _ r: JinjaValue) throws -> Bool {
        switch op {
        case .eq: return l.pyEquals(r)
        case .ne: return !l.pyEquals(r)
        case .in: return try contains(r, l)
        case .notIn: return try !contains(r, l)
        default:
            if case .undefined(let hint) = l { throw JinjaRuntimeError(hint) }
            if case .undefined(let hint) = r { throw JinjaRuntimeError(hint) }
            guard let c = l.pyCompare(r) else {
                throw JinjaRuntimeError("'\(op.rawValue)' not supported between instances of '\(l.typeName)' and '\(r.typeName)'")
            }
            switch op {
            case .lt: return c < 0
            case .le: return c <= 0
            case .gt: return c > 0
            default: return c >= 0
            }
        }
    }

    // MARK: tests

    static func test(_ name: String, _ v: JinjaValue, _ args: [JinjaValue]) throws -> Bool {
        func arg(_ i: Int) throws -> JinjaValue {
            guard i < args.count else { throw JinjaRuntimeError("test '\(name)' needs \(i + 1) argument(s)") }
            return args[i]
        }
        switch name {
        case "defined": return !v.isUndefined
        case "undefined": return v.isUndefined
        case "none": return v.isNone
        case "boolean": if case .bool = v { return true } else { return false }
        case "true": if case .bool(true) = v { return true } else { return false }
        case "false": if case .bool(false) = v { return true } else { return false }
        case "string": if case .string = v { return true } else { return false }
        case "number": return v.number != nil
        case "integer": if case .int = v { return true } else { return false }
        case "float": if case .double = v { return true } else { return false }
        case "mapping": if case .dict = v { return true } else { return false }
        case "iterable":
            switch v { case .list, .tuple, .string, .dict, .undefined: return true; default: return false }
        case "sequence":
            switch v { case .list, .tuple, .string, .dict: return true; default: return false }
        case "callable": if case .callable = v { return true } else { return false }
        case "even", "odd":
            guard let i = v.integer else { throw JinjaRuntimeError("test '\(name)' needs an integer, got \(v.typeName)") }
            return (i % 2 == 0) == (name == "even")
        case "divisibleby":
            guard let i = v.integer, let n = try arg(0).integer, n != 0 else { throw JinjaRuntimeError("divisibleby needs non-zero integers") }
            return i % n == 0
        case "eq", "equalto", "==": return v.pyEquals(try arg(0))
        case "ne", "!=": return !v.pyEquals(try arg(0))
        case "lt", "lessthan", "<": return try compare(.lt, v, try arg(0))
        case "le", "<=": return try compare(.le, v, try arg(0))
        case "gt", "greaterthan", ">": return try compare(.gt, v, try arg(0))
        case "ge", ">=": return try compare(.ge, v, try arg(0))
        case "in": return try contains(try arg(0), v)
        case "sameas":
            let o = try arg(0)
            switch (v, o) {
            case (.none, .none): return true
            case (.bool(let a), .bool(let b)): return a == b
            case (.namespace(let a), .namespace(let b)): return a === b
            default: return false
            }
        case "lower": if case .string(let s) = v { return s == s.lowercased() && s != s.uppercased() || (s == s.lowercased() && s.unicodeScalars.contains { $0.properties.isLowercase }) } else { return false }
        case "upper": if case .string(let s) = v { return s == s.uppercased() && s.unicodeScalars.contains { $0.properties.isUppercase } } else { return false }
        case "filter": if case .string(let s) = v { return filterNames.contains(s) } else { return false }
        case "test": if case .string(let s) = v { return testNames.contains(s) } else { return false }
        case "escaped": return false
        default: throw JinjaRuntimeError("No test named '\(name)' found.")
        }
    }

    // MARK: filters

    private struct Args {
        let name: String
        let positional: [JinjaValue]
        let keyword: [(String, JinjaValue)]
        /// Parameter `index` (after the filtered value) by position or by keyword.
        func get(_ index: Int, _ key: String) -> JinjaValue? {
            if index < positional.count { return positional[index] }
            return keyword.first { $0.0 == key }?.1
        }
    }

    static func filter(_ name: String, _ value: JinjaValue, _ positional: [JinjaValue], _ keyword: [(String, JinjaValue)]) throws -> JinjaValue {
        let a = Args(name: name, positional: positional, keyword: keyword)
        // Every filter except default/length-ish ones fails on undefined input, as in Jinja.
        switch name {
        case "default", "d":
            let dflt = a.get(0, "default_value") ?? .string("")
            let boolean = a.get(1, "boolean")?.truthy ?? false
            if value.isUndefined || (boolean && !value.truthy) { return dflt }
            return value
        case "length", "count":
            switch value {
            case .undefined: return .int(0)
            case .string(let s): return .int(s.unicodeScalars.count)
            case .list(let l), .tuple(let l): return .int(l.count)
            case .dict(let d): return .int(d.count)
            default: throw JinjaRuntimeError("object of type '\(value.typeName)' has no len()")
            }
        case "string": return .string(value.str)
        case "trim":
            let chars = a.get(0, "chars").flatMap { $0.isNone ? nil : $0.str }
            return .string(pyStrip(value.str, chars: chars))
        case "upper": return .string(value.str.uppercased())
        case "lower": return .string(value.str.lowercased())
        case "capitalize": return .string(pyCapitalize(value.str))
        case "title": return .string(jinjaTitle(value.str))
        case "safe": return value.isUndefined ? .string("") : value
        case "e", "escape":
            var out = ""
            for c in value.str.unicodeScalars {
                switch c {
                case "&": out += "&amp;"
                case "<": out += "&lt;"
                case ">": out += "&gt;"
                case "\"": out += "&#34;"
                case "'": out += "&#39;"
                default: out.unicodeScalars.append(c)
                }
            }
            return .string(out)
        case "replace":
            guard let old = a.get(0, "old"), let new = a.get(1, "new") else { throw JinjaRuntimeError("replace() needs old and new") }
            let count = a.get(2, "count").flatMap { $0.isNone ? nil : $0.integer } ?? -1
            return .string(pyReplace(value.str, old.str, new.str, count: count))
        case "tojson":
            var dumper = JinjaJSONDumper()
            dumper.ensureASCII = a.get(0, "ensure_ascii")?.truthy ?? false
            if let indent = a.get(1, "indent"), !indent.isNone {
                if case .string(let s) = indent { dumper.indent = s } else if let n = indent.integer { dumper.indent = String(repeating: " ", count: max(0, n)) }
                dumper.itemSeparator = ","
            }
            if let seps = a.get(2, "separators"), !seps.isNone {
                let parts = try iterate(seps)
                guard parts.count == 2 else { throw JinjaRuntimeError("separators must be a pair of strings") }
                dumper.itemSeparator = parts[0].str
                dumper.keySeparator = parts[1].str
            }
            dumper.sortKeys = a.get(3, "sort_keys")?.truthy ?? false
            return .string(try dumper.dump(value))
        case "first", "last":
            if case .undefined(let hint) = value { throw JinjaRuntimeError(hint) }
            let items = try iterate(value)
            guard let item = name == "first" ? items.first : items.last else {
                return .undefined(hint: "No \(name) item, sequence was empty.")
            }
            return item
        case "join":
            var items = try iterate(value)
            if let attribute = a.get(1, "attribute"), !attribute.isNone { items = try items.map { try attrPath($0, attribute) } }
            let sep = a.get(0, "d")?.str ?? ""
            return .string(items.map(\.str).joined(separator: sep))
        case "list":
            if case .undefined = value { return .list([]) }
            return .list(try iterate(value))
        case "items":
            switch value {
            case .undefined: return .list([])
            case .dict(let d): return .list(d.entries.map { .tuple([$0.key, $0.value]) })
            default: throw JinjaRuntimeError("Can only get item pairs from a mapping.")
            }
        case "dictsort":
            guard case .dict(let d) = value else { throw JinjaRuntimeError("You can only sort by either \"key\" or \"value\"") }
            let caseSensitive = a.get(0, "case_sensitive")?.truthy ?? false
            let byValue = a.get(1, "by")?.str == "value"
            let reverse = a.get(2, "reverse")?.truthy ?? false
            var entries = d.entries.map { JinjaValue.tuple([$0.key, $0.value]) }
            try sortValues(&entries, reverse: reverse) { v in
                guard case .tuple(let kv) = v else { return v }
                let k = byValue ? kv[1] : kv[0]
                return caseSensitive ? k : lowered(k)
            }
            return .list(entries)
        case "int":
            let dflt = a.get(0, "default") ?? .int(0)
            let base = a.get(1, "base")?.integer ?? 10
            switch value {
            case .int: return value
            case .bool(let b): return .int(b ? 1 : 0)
            case .double(let d): return d.isFinite && abs(d) < 9.2e18 ? .int(Int(d)) : dflt
            case .string(let s):
                let t = pyStrip(s).jinjaReplacingAll("_", "")
                if let i = Int(t, radix: base) { return .int(i) }
                if let d = Double(t), d.isFinite, abs(d) < 9.2e18 { return .int(Int(d)) }
                return dflt
            default: return dflt
            }
        case "float":
            let dflt = a.get(0, "default") ?? .double(0)
            switch value {
            case .double: return value
            case .int(let i): return .double(Double(i))
            case .bool(let b): return .double(b ? 1 : 0)
            case .string(let s): return Double(pyStrip(s)).map { .double($0) } ?? dflt
            default: return dflt
            }
        case "abs":
            switch value {
            case .int(let i): return .int(abs(i))
            case .bool(let b): return .int(b ? 1 : 0)
            case .double(let d): return .double(abs(d))
            default: throw JinjaRuntimeError("bad operand type for abs(): '\(value.typeName)'")
            }
        case "round":
            guard let d = value.number else { throw JinjaRuntimeError("type \(value.typeName) doesn't define __round__ method") }
            let precision = a.get(0, "precision")?.integer ?? 0
            let method = a.get(1, "method")?.str ?? "common"
            let scale = pow(10.0, Double(precision))
            let rule: FloatingPointRoundingRule = method == "ceil" ? .up : (method == "floor" ? .down : .toNearestOrEven)
            return .double((d * scale).rounded(rule) / scale)
        case "reverse":
            switch value {
            case .string(let s): return .string(String(jinjaScalars: s.jinjaScalars.reversed()))
            default: return .list(try iterate(value).reversed())
            }
        case "sort":
            var items = try iterate(value)
            let reverse = a.get(0, "reverse")?.truthy ?? false
            let caseSensitive = a.get(1, "case_sensitive")?.truthy ?? false
            let attribute = a.get(2, "attribute")
            try sortValues(&items, reverse: reverse) { v in
                let k = try attribute.map { try attrPath(v, $0) } ?? v
                return caseSensitive ? k : lowered(k)
            }
            return .list(items)
        case "unique":
            let caseSensitive = a.get(0, "case_sensitive")?.truthy ?? false
            let attribute = a.get(1, "attribute")
            var seen: [JinjaValue] = []
            var out: [JinjaValue] = []
            for item in try iterate(value) {
                var k = try attribute.map { try attrPath(item, $0) } ?? item
                if !caseSensitive { k = lowered(k) }
                if !seen.contains(where: { $0.pyEquals(k) }) { seen.append(k); out.append(item) }
            }
            return .list(out)
        case "sum":
            let attribute = a.get(0, "attribute")
            var total = a.get(1, "start") ?? .int(0)
            for item in try iterate(value) {
                let v = try attribute.flatMap { $0.isNone ? nil : try attrPath(item, $0) } ?? item
                total = try binary(.add, total, v)
            }
            return total
        case "max", "min":
            let items = try iterate(value)
            let caseSensitive = a.get(0, "case_sensitive")?.truthy ?? false
            let attribute = a.get(1, "attribute")
            guard var best = items.first else { return .undefined(hint: "No aggregated item, sequence was empty.") }
            func key(_ v: JinjaValue) throws -> JinjaValue {
                let k = try attribute.flatMap { $0.isNone ? nil : try attrPath(v, $0) } ?? v
                return caseSensitive ? k : lowered(k)
            }
            for item in items.dropFirst() {
                guard let c = try key(item).pyCompare(try key(best)) else {
                    throw JinjaRuntimeError("'<' not supported between instances of '\(item.typeName)' and '\(best.typeName)'")
                }
                if name == "max" ? c > 0 : c < 0 { best = item }
            }
            return best
        case "wordcount":
            var count = 0, inWord = false
            for c in value.str.unicodeScalars {
                let w = c.properties.isAlphabetic || c.properties.numericType != nil || c == "_"
                if w && !inWord { count += 1 }
                inWord = w
            }
            return .int(count)
        case "indent":
            let widthValue = a.get(0, "width") ?? .int(4)
            let indention: String
            if case .string(let s) = widthValue { indention = s } else { indention = String(repeating: " ", count: widthValue.integer ?? 4) }
            let first = a.get(1, "first")?.truthy ?? false
            let blank = a.get(2, "blank")?.truthy ?? false
            let lines = pySplitLines(value.str + "\n")
            var rv: String
            if blank {
                rv = lines.joined(separator: "\n" + indention)
            } else {
                rv = lines.first ?? ""
                if lines.count > 1 {
                    rv += "\n" + lines.dropFirst().map { $0.isEmpty ? $0 : indention + $0 }.joined(separator: "\n")
                }
            }
            return .string(first ? indention + rv : rv)
        case "attr":
            guard let n = a.get(0, "name") else { throw JinjaRuntimeError("attr() needs a name") }
            return try getattr(value, n.str)
        case "map":
            let items = value.truthy ? try iterate(value) : []
            if positional.isEmpty, let attribute = a.keyword.first(where: { $0.0 == "attribute" })?.1 {
                let dflt = a.keyword.first(where: { $0.0 == "default" })?.1
                return .list(try items.map { item in
                    let v = try attrPath(item, attribute)
                    if v.isUndefined, let dflt { return dflt }
                    return v
                })
            }
            guard let f = positional.first?.str else { throw JinjaRuntimeError("map() needs a filter name or attribute=") }
            guard filterNames.contains(f) else { throw JinjaRuntimeError("No filter named '\(f)'.") }
            return .list(try items.map { try filter(f, $0, Array(positional.dropFirst()), keyword) })
        case "select", "reject":
            let keep = name == "select"
            return .list(try (value.truthy ? iterate(value) : []).filter { item in
                let ok = try positional.isEmpty ? item.truthy : test(positional[0].str, item, Array(positional.dropFirst()))
                return ok == keep
            })
        case "selectattr", "rejectattr":
            let keep = name == "selectattr"
            guard let attribute = positional.first else { throw JinjaRuntimeError("\(name)() needs an attribute name") }
            return .list(try (value.truthy ? iterate(value) : []).filter { item in
                let v = try attrPath(item, attribute)
                let ok = try positional.count < 2 ? v.truthy : test(positional[1].str, v, Array(positional.dropFirst(2)))
                return ok == keep
            })
        default:
            throw JinjaRuntimeError("No filter named '\(name)' found.")
        }
    }

    /// Jinja's attribute getter for filters: "a.b.0" walks items/attributes.
    private static func attrPath(_ item: JinjaValue, _ attribute: JinjaValue) throws -> JinjaValue {
        if let i = attribute.integer { return try getitem(item, .int(i)) }
        var v = item
        for part in attribute.str.split(separator: ".", omittingEmptySubsequences: false) {
            let key: JinjaValue = Int(part).map { .int($0) } ?? .string(String(part))
            if v.isUndefined { return v }
            v = try getitem(v, key)
        }
        return v
    }

    private static func lowered(_ v: JinjaValue) -> JinjaValue {
        if case .string(let s) = v { return .string(s.lowercased()) }
        return v
    }

    private static func sortValues(_ items: inout [JinjaValue], reverse: Bool, key: (JinjaValue) throws -> JinjaValue) throws {
        let keyed = try items.map { (try key($0), $0) }
        var failure: JinjaRuntimeError? = nil
        let sorted = keyed.enumerated().sorted { x, y in
            guard let c = x.element.0.pyCompare(y.element.0) else {
                failure = JinjaRuntimeError("'<' not supported between instances of '\(x.element.0.typeName)' and '\(y.element.0.typeName)'")
                return x.offset < y.offset
            }
            if c == 0 { return x.offset < y.offset }
            return reverse ? c > 0 : c < 0
        }
        if let failure { throw failure }
        items = sorted.map { $0.element.1 }
    }

    // MARK: Python string helpers

    static func find(_ hay: JinjaScalars, _ needle: JinjaScalars, from start: Int) -> Int? {
        if needle.isEmpty { return start <= hay.count ? start : nil }
        guard hay.count >= needle.count, start <= hay.count - needle.count else { return nil }
        var i = max(0, start)
        while i <= hay.count - needle.count {
            if hay[i] == needle[0] && hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }

    static func pyReplace(_ s: String, _ old: String, _ new: String, count: Int) -> String {
        let hay = s.jinjaScalars, needle = old.jinjaScalars, repl = new.jinjaScalars
        var out: JinjaScalars = []
        var done = 0
        if needle.isEmpty {
            for (i, c) in hay.enumerated() {
                if count < 0 || done < count { out += repl; done += 1 }
                out.append(c)
                _ = i
            }
            if count < 0 || done < count { out += repl }
            return String(jinjaScalars: out)
        }
        var i = 0
        while i < hay.count {
            if count < 0 || done < count, let j = find(hay, needle, from: i) {
                out += hay[i..<j]
                out += repl
                i = j + needle.count
                done += 1
            } else {
                out += hay[i...]
                break
            }
        }
        return String(jinjaScalars: out)
    }

    static func pySplit(_ s: String, sep: String?, maxsplit: Int) -> [String] {
        let sc = s.jinjaScalars
        var parts: [String] = []
        if let sep {
            let n = sep.jinjaScalars
            var i = 0
            while maxsplit < 0 || parts.count < maxsplit, let j = find(sc, n, from: i) {
                parts.append(String(jinjaScalars: sc[i..<j]))
                i = j + n.count
            }
            parts.append(String(jinjaScalars: sc[i...]))
            return parts
        }
        var i = 0
        while i < sc.count {
            while i < sc.count && pyIsSpace(sc[i]) { i += 1 }
            if i >= sc.count { break }
            if maxsplit >= 0 && parts.count >= maxsplit {
                var end = sc.count
                while end > i && pyIsSpace(sc[end - 1]) { end -= 1 }
                parts.append(String(jinjaScalars: sc[i..<end]))
                return parts
            }
            let start = i
            while i < sc.count && !pyIsSpace(sc[i]) { i += 1 }
            parts.append(String(jinjaScalars: sc[start..<i]))
        }
        return parts
    }

    static func pySplitLines(_ s: String, keepEnds: Bool = false) -> [String] {
        let sc = s.jinjaScalars
        var lines: [String] = []
        var start = 0, i = 0
        while i < sc.count {
            let c = sc[i]
            let isBreak = [0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029].contains(c.value)
            if isBreak {
                var end = i + 1
                if c == "\r" && end < sc.count && sc[end] == "\n" { end += 1 }
                lines.append(String(jinjaScalars: sc[start..<(keepEnds ? end : i)]))
                start = end
                i = end
            } else {
                i += 1
            }
        }
        if start < sc.count { lines.append(String(jinjaScalars: sc[start...])) }
        return lines
    }

    static func pyCapitalize(_ s: String) -> String {
        guard let first = s.unicodeScalars.first else { return s }
        return String(first).uppercased() + String(jinjaScalars: s.unicodeScalars.dropFirst()).lowercased()
    }

    private static func isCased(_ c: Unicode.Scalar) -> Bool {
        c.properties.isLowercase || c.properties.isUppercase || c.properties.changesWhenTitlecased || c.properties.changesWhenLowercased
    }

    /// Python `str.title()`.
    static func pyTitle(_ s: String) -> String {
        var out = ""
        var previousCased = false
        for c in s.unicodeScalars {
            out += previousCased ? String(c).lowercased() : String(c).uppercased()
            previousCased = isCased(c)
        }
        return out
    }

    /// Jinja's `title` filter: capitalise each word, words split at whitespace and `-({[<`.
    static func jinjaTitle(_ s: String) -> String {
        var out = ""
        var atWordStart = true
        for c in s.unicodeScalars {
            let separator = pyIsSpace(c) || "-({[<".unicodeScalars.contains(c)
            if separator {
                out.unicodeScalars.append(c)
                atWordStart = true
            } else {
                out += atWordStart ? String(c).uppercased() : String(c).lowercased()
                atWordStart = false
            }
        }
        return out
    }

    /// Python `str.format` for plain fields: `{}`, `{0}`, `{name}`, `{name.attr}`, `{{`/`}}`; format specs
    /// and conversions are not supported.
    static func pyFormat(_ s: String, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws -> String {
        let sc = s.jinjaScalars
        var out = ""
        var auto = 0
        var i = 0
        while i < sc.count {
            let c = sc[i]
            if c == "{" && i + 1 < sc.count && sc[i + 1] == "{" { out += "{"; i += 2; continue }
            if c == "}" && i + 1 < sc.count && sc[i + 1] == "}" { out += "}"; i += 2; continue }
            if c == "}" { throw JinjaRuntimeError("Single '}' encountered in format string") }
            if c != "{" { out.unicodeScalars.append(c); i += 1; continue }
            guard let close = sc[(i + 1)...].firstIndex(of: "}") else { throw JinjaRuntimeError("Single '{' encountered in format string") }
            let field = String(jinjaScalars: sc[(i + 1)..<close])
            if field.contains(":") || field.contains("!") { throw JinjaRuntimeError("format specs and conversions in str.format are not supported") }
            let path = field.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            var value: JinjaValue
            if path[0].isEmpty {
                guard auto < args.count else { throw JinjaRuntimeError("Replacement index \(auto) out of range for positional args tuple") }
                value = args[auto]
                auto += 1
            } else if let n = Int(path[0]) {
                guard n < args.count else { throw JinjaRuntimeError("Replacement index \(n) out of range for positional args tuple") }
                value = args[n]
            } else {
                guard let v = kwargs.first(where: { $0.0 == path[0] })?.1 else { throw JinjaRuntimeError("KeyError: '\(path[0])'") }
                value = v
            }
            for attr in path.dropFirst() { value = try getattr(value, attr) }
            out += value.str
            i = close + 1
        }
        return out
    }

    // MARK: methods

    private static func stringMethod(_ s: String, _ name: String) -> JinjaValue? {
        func sarg(_ args: [JinjaValue], _ i: Int) -> String? {
            guard i < args.count, !args[i].isNone else { return nil }
            return args[i].str
        }
        switch name {
        case "strip", "lstrip", "rstrip":
            return bound(name) { args, _ in
                .string(pyStrip(s, chars: sarg(args, 0), left: name != "rstrip", right: name != "lstrip"))
            }
        case "split", "rsplit":
            return bound(name) { args, kwargs in
                let sep = sarg(args, 0) ?? kwargs.first { $0.0 == "sep" }.flatMap { $0.1.isNone ? nil : $0.1.str }
                let maxsplit = (args.count > 1 ? args[1].integer : kwargs.first { $0.0 == "maxsplit" }?.1.integer) ?? -1
                if sep == "" { throw JinjaRuntimeError("empty separator") }
                if name == "rsplit" && maxsplit >= 0 {
                    // rsplit with a limit: split the reversed string.
                    let rev = String(jinjaScalars: s.jinjaScalars.reversed())
                    let parts = pySplit(rev, sep: sep.map { String(jinjaScalars: $0.jinjaScalars.reversed()) }, maxsplit: maxsplit)
                    return .list(parts.reversed().map { .string(String(jinjaScalars: $0.jinjaScalars.reversed())) })
                }
                return .list(pySplit(s, sep: sep, maxsplit: maxsplit).map { .string($0) })
            }
        case "splitlines":
            return bound(name) { args, _ in .list(pySplitLines(s, keepEnds: args.first?.truthy ?? false).map { .string($0) }) }
        case "startswith", "endswith":
            return bound(name) { args, _ in
                guard let p = args.first else { throw JinjaRuntimeError("\(name)() takes at least 1 argument") }
                let prefixes: [JinjaValue]
                if case .tuple(let t) = p { prefixes = t } else { prefixes = [p] }
                let sc = s.jinjaScalars
                for prefix in prefixes {
                    guard case .string(let x) = prefix else { throw JinjaRuntimeError("\(name) first arg must be str or a tuple of str, not \(prefix.typeName)") }
                    let xs = x.jinjaScalars
                    if name == "startswith" ? sc.starts(with: xs) : sc.reversed().starts(with: xs.reversed()) { return .bool(true) }
                }
                return .bool(false)
            }
        case "upper": return bound(name) { _, _ in .string(s.uppercased()) }
        case "lower", "casefold": return bound(name) { _, _ in .string(s.lowercased()) }
        case "title": return bound(name) { _, _ in .string(pyTitle(s)) }
        case "capitalize": return bound(name) { _, _ in .string(pyCapitalize(s)) }
        case "swapcase":
            return bound(name) { _, _ in
                .string(s.unicodeScalars.map { c -> String in
                    c.properties.isUppercase ? String(c).lowercased() : (c.properties.isLowercase ? String(c).uppercased() : String(c))
                }.joined())
            }
        case "replace":
            return bound(name) { args, _ in
                guard args.count >= 2 else { throw JinjaRuntimeError("replace() takes at least 2 arguments") }
                return .string(pyReplace(s, args[0].str, args[1].str, count: args.count > 2 ? (args[2].integer ?? -1) : -1))
            }
        case "find", "rfind", "index", "rindex":
            return bound(name) { args, _ in
                guard let n = sarg(args, 0) else { throw JinjaRuntimeError("\(name)() takes at least 1 argument") }
                let hay = s.jinjaScalars, needle = n.jinjaScalars
                var result: Int? = nil
                if name.hasPrefix("r") {
                    var i = hay.count - needle.count
                    while i >= 0 { if hay[i..<(i + needle.count)].elementsEqual(needle) { result = i; break }; i -= 1 }
                } else {
                    result = find(hay, needle, from: 0)
                }
                if result == nil && name.hasSuffix("index") { throw JinjaRuntimeError("substring not found") }
                return .int(result ?? -1)
            }
        case "count":
            return bound(name) { args, _ in
                guard let n = sarg(args, 0) else { throw JinjaRuntimeError("count() takes at least 1 argument") }
                let hay = s.jinjaScalars, needle = n.jinjaScalars
                if needle.isEmpty { return .int(hay.count + 1) }
                var count = 0, i = 0
                while let j = find(hay, needle, from: i) { count += 1; i = j + needle.count }
                return .int(count)
            }
        case "join":
            return bound(name) { args, _ in
                guard let seq = args.first else { throw JinjaRuntimeError("join() takes exactly one argument") }
                let items = try iterate(seq)
                for item in items {
                    guard case .string = item else { throw JinjaRuntimeError("sequence item: expected str instance, \(item.typeName) found") }
                }
                return .string(items.map(\.str).joined(separator: s))
            }
        case "format":
            return bound(name) { args, kwargs in .string(try pyFormat(s, args, kwargs)) }
        case "removeprefix", "removesuffix":
            return bound(name) { args, _ in
                let x = (sarg(args, 0) ?? "").jinjaScalars
                let sc = s.jinjaScalars
                if name == "removeprefix" { return .string(sc.starts(with: x) ? String(jinjaScalars: sc.dropFirst(x.count)) : s) }
                return .string(sc.reversed().starts(with: x.reversed()) ? String(jinjaScalars: sc.dropLast(x.count)) : s)
            }
        case "isdigit", "isnumeric", "isdecimal":
            return bound(name) { _, _ in .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.numericType != nil }) }
        case "isalpha": return bound(name) { _, _ in .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic }) }
        case "isalnum":
            return bound(name) { _, _ in .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil }) }
        case "isspace": return bound(name) { _, _ in .bool(!s.isEmpty && s.unicodeScalars.allSatisfy(pyIsSpace)) }
        case "islower": return bound(name) { _, _ in .bool((try? test("lower", .string(s), [])) ?? false) }
        case "isupper": return bound(name) { _, _ in .bool((try? test("upper", .string(s), [])) ?? false) }
        default: return nil
        }
    }

    private static func dictMethod(_ d: JinjaDict, _ name: String) -> JinjaValue? {
        switch name {
        case "items": return bound(name) { _, _ in .list(d.entries.map { .tuple([$0.key, $0.value]) }) }
        case "keys": return bound(name) { _, _ in .list(d.keys) }
        case "values": return bound(name) { _, _ in .list(d.values) }
        case "get":
            return bound(name) { args, _ in
                guard let k = args.first else { throw JinjaRuntimeError("get expected at least 1 argument, got 0") }
                return d[k] ?? (args.count > 1 ? args[1] : .none)
            }
        default: return nil
        }
    }

    private static func listMethod(_ l: [JinjaValue], _ name: String) -> JinjaValue? {
        switch name {
        case "count": return bound(name) { args, _ in .int(l.filter { $0.pyEquals(args.first ?? .none) }.count) }
        case "index":
            return bound(name) { args, _ in
                guard let i = l.firstIndex(where: { $0.pyEquals(args.first ?? .none) }) else { throw JinjaRuntimeError("value is not in list") }
                return .int(i)
            }
        case "append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse":
            return bound(name) { _, _ in throw JinjaRuntimeError("access to attribute '\(name)' of 'list' object is unsafe.") }
        default: return nil
        }
    }
}

extension JinjaValue {
    var isBool: Bool { if case .bool = self { return true } else { return false } }
}

extension String {
    func jinjaReplacingAll(_ old: String, _ new: String) -> String {
        JinjaBuiltins.pyReplace(self, old, new, count: -1)
    }
}
