// A small backtracking regex engine over Unicode scalars, for pre-tokenizer split patterns.
//
// It covers the subset the HF `tokenizers` (Oniguruma) and llama.cpp split patterns use:
// alternation, groups `(...)`, `(?:...)`, `(?i:...)`, lookahead `(?=...)`, `(?!...)`, greedy and
// lazy quantifiers `? * + {n} {n,} {n,m}`, classes `[...]` with ranges and negation, `.`, `\s \S \d
// \D \w \W \p{..} \P{..}` (general categories: L, Lu, Ll, Lt, Lm, Lo, M, Mn, Mc, Me, N, Nd, Nl, No,
// P, Pc, Pd, Ps, Pe, Pi, Pf, Po, S, Sm, Sc, Sk, So, Z, Zs, Zl, Zp, C, Cc, Cf, Co, Cn), `^ $ \b \B \A \z`.
// Alternation is ordered (first alternative that leads to a match wins), as in Oniguruma.

import Foundation

struct RegexError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// Unicode general category as a bit in a mask.
@inline(__always)
func categoryBit(_ s: Unicode.Scalar) -> UInt32 {
    switch s.properties.generalCategory {
    case .uppercaseLetter: return 1 << 0
    case .lowercaseLetter: return 1 << 1
    case .titlecaseLetter: return 1 << 2
    case .modifierLetter: return 1 << 3
    case .otherLetter: return 1 << 4
    case .nonspacingMark: return 1 << 5
    case .spacingMark: return 1 << 6
    case .enclosingMark: return 1 << 7
    case .decimalNumber: return 1 << 8
    case .letterNumber: return 1 << 9
    case .otherNumber: return 1 << 10
    case .connectorPunctuation: return 1 << 11
    case .dashPunctuation: return 1 << 12
    case .openPunctuation: return 1 << 13
    case .closePunctuation: return 1 << 14
    case .initialPunctuation: return 1 << 15
    case .finalPunctuation: return 1 << 16
    case .otherPunctuation: return 1 << 17
    case .mathSymbol: return 1 << 18
    case .currencySymbol: return 1 << 19
    case .modifierSymbol: return 1 << 20
    case .otherSymbol: return 1 << 21
    case .spaceSeparator: return 1 << 22
    case .lineSeparator: return 1 << 23
    case .paragraphSeparator: return 1 << 24
    case .control: return 1 << 25
    case .format: return 1 << 26
    case .surrogate: return 1 << 27
    case .privateUse: return 1 << 28
    case .unassigned: return 1 << 29
    @unknown default: return 1 << 29
    }
}

enum Cat {
    static let L: UInt32 = 0b11111
    static let M: UInt32 = 0b111 << 5
    static let N: UInt32 = 0b111 << 8
    static let P: UInt32 = 0b1111111 << 11
    static let S: UInt32 = 0b1111 << 18
    static let Z: UInt32 = 0b111 << 22
    static let C: UInt32 = 0b11111 << 25
    static let Nd: UInt32 = 1 << 8

    static func mask(named name: String) -> UInt32? {
        let table: [String: UInt32] = [
            "L": L, "Letter": L, "Lu": 1, "Ll": 2, "Lt": 4, "Lm": 8, "Lo": 16,
            "M": M, "Mark": M, "Mn": 1 << 5, "Mc": 1 << 6, "Me": 1 << 7,
            "N": N, "Number": N, "Nd": 1 << 8, "Nl": 1 << 9, "No": 1 << 10,
            "P": P, "Punctuation": P, "Pc": 1 << 11, "Pd": 1 << 12, "Ps": 1 << 13, "Pe": 1 << 14,
            "Pi": 1 << 15, "Pf": 1 << 16, "Po": 1 << 17,
            "S": S, "Symbol": S, "Sm": 1 << 18, "Sc": 1 << 19, "Sk": 1 << 20, "So": 1 << 21,
            "Z": Z, "Separator": Z, "Zs": 1 << 22, "Zl": 1 << 23, "Zp": 1 << 24,
            "C": C, "Other": C, "Cc": 1 << 25, "Cf": 1 << 26, "Cs": 1 << 27, "Co": 1 << 28, "Cn": 1 << 29,
        ]
        return table[name]
    }
}

@inline(__always)
func isRegexSpace(_ v: UInt32) -> Bool {
    // Oniguruma's \s with Unicode: White_Space property.
    if v < 0x80 { return v == 0x20 || (v >= 0x09 && v <= 0x0D) }
    switch v {
    case 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: return true
    default: return false
    }
}

@inline(__always)
func isWordScalar(_ v: UInt32) -> Bool {
    if v < 0x80 {
        return (v >= 0x30 && v <= 0x39) || (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) || v == 0x5F
    }
    guard let s = Unicode.Scalar(v) else { return false }
    return categoryBit(s) & (Cat.L | Cat.M | Cat.N | (1 << 11)) != 0
}

/// A character class: a union of items, optionally negated. ASCII answers are precomputed.
struct CharClass {
    enum Item {
        case range(UInt32, UInt32)
        case cats(UInt32)
        case notCats(UInt32)
        case space, notSpace, word, notWord
    }
    var items: [Item] = []
    var negated = false
    var ascii = [Bool](repeating: false, count: 128)

    mutating func finalize() {
        for v in 0..<128 { ascii[v] = slowMatch(UInt32(v)) }
    }

    func slowMatch(_ v: UInt32) -> Bool {
        var hit = false
        var cat: UInt32 = 0
        var catDone = false
        for item in items {
            switch item {
            case .range(let lo, let hi): hit = v >= lo && v <= hi
            case .cats(let m):
                if !catDone { cat = Unicode.Scalar(v).map(categoryBit) ?? (1 << 27); catDone = true }
                hit = cat & m != 0
            case .notCats(let m):
                if !catDone { cat = Unicode.Scalar(v).map(categoryBit) ?? (1 << 27); catDone = true }
                hit = cat & m == 0
            case .space: hit = isRegexSpace(v)
            case .notSpace: hit = !isRegexSpace(v)
            case .word: hit = isWordScalar(v)
            case .notWord: hit = !isWordScalar(v)
            }
            if hit { break }
        }
        return hit != negated
    }

    @inline(__always)
    func matches(_ v: UInt32) -> Bool {
        if v < 128 { return ascii[Int(v)] }
        return slowMatch(v)
    }
}

/// Backtracking program instructions.
enum Inst {
    case char(UInt32)
    case charFold(UInt32)         // case-insensitive literal (lowercased form)
    case cls(Int)
    case any                      // . (not \n)
    case split(Int, Int)          // try first, then second
    case jmp(Int)
    case look(negative: Bool, start: Int, next: Int)
    case lineStart, lineEnd, textStart, textEnd, wordBoundary, notWordBoundary
    case match
}

/// Case folding for the few non-ASCII scalars that fold onto ASCII letters used in patterns.
@inline(__always)
func foldScalar(_ v: UInt32) -> UInt32 {
    if v < 0x80 { return (v >= 0x41 && v <= 0x5A) ? v + 32 : v }
    if v == 0x17F { return 0x73 }    // ſ -> s
    if v == 0x212A { return 0x6B }   // Kelvin sign -> k
    guard let s = Unicode.Scalar(v) else { return v }
    let l = s.properties.lowercaseMapping.unicodeScalars
    return l.count == 1 ? l.first!.value : v
}

final class PatternRegex {
    let pattern: String
    private(set) var prog: [Inst] = []
    private(set) var classes: [CharClass] = []

    init(_ pattern: String) throws {
        self.pattern = pattern
        var parser = Parser(scalars: Array(pattern.unicodeScalars))
        let node = try parser.parseAlternation(fold: false)
        if parser.pos < parser.scalars.count { throw RegexError(message: "unbalanced ')' in pattern \(pattern)") }
        classes = parser.classes
        emit(node)
        prog.append(.match)
    }

    // MARK: AST
    indirect enum Node {
        case empty
        case char(UInt32, fold: Bool)
        case cls(Int)
        case any
        case concat([Node])
        case alt([Node])
        case repeat_(Node, min: Int, max: Int?, greedy: Bool)
        case look(Node, negative: Bool)
        case assert(Inst)
    }

    struct Parser {
        let scalars: [Unicode.Scalar]
        var pos = 0
        var classes: [CharClass] = []

        init(scalars: [Unicode.Scalar]) { self.scalars = scalars }

        var atEnd: Bool { pos >= scalars.count }
        func peek() -> Unicode.Scalar? { pos < scalars.count ? scalars[pos] : nil }

        mutating func parseAlternation(fold: Bool) throws -> Node {
            var alts: [Node] = [try parseConcat(fold: fold)]
            while peek() == "|" {
                pos += 1
                alts.append(try parseConcat(fold: fold))
            }
            return alts.count == 1 ? alts[0] : .alt(alts)
        }

        mutating func parseConcat(fold: Bool) throws -> Node {
            var items: [Node] = []
            while let c = peek(), c != "|", c != ")" {
                var atom = try parseAtom(fold: fold)
                atom = try parseQuantifiers(atom)
                items.append(atom)
            }
            if items.isEmpty { return .empty }
            return items.count == 1 ? items[0] : .concat(items)
        }

        mutating func parseQuantifiers(_ atomIn: Node) throws -> Node {
            var atom = atomIn
            while let c = peek() {
                var min = 0, max: Int? = nil
                if c == "*" { pos += 1 } else if c == "+" { min = 1; pos += 1 } else if c == "?" { max = 1; pos += 1 } else if c == "{" {
                    // {n}, {n,}, {n,m}; anything else is a literal '{'
                    var p = pos + 1
                    var a = 0, digitsA = 0
                    while p < scalars.count, let d = scalars[p].properties.numericType == .decimal ? Int(String(scalars[p])) : nil { a = a * 10 + d; p += 1; digitsA += 1 }
                    if digitsA == 0 { return atom }
                    var b: Int? = a
                    if p < scalars.count, scalars[p] == "," {
                        p += 1
                        var bb = 0, digitsB = 0
                        while p < scalars.count, let d = scalars[p].properties.numericType == .decimal ? Int(String(scalars[p])) : nil { bb = bb * 10 + d; p += 1; digitsB += 1 }
                        b = digitsB == 0 ? nil : bb
                    }
                    guard p < scalars.count, scalars[p] == "}" else { return atom }
                    pos = p + 1
                    min = a; max = b
                } else { return atom }
                var greedy = true
                if peek() == "?" { greedy = false; pos += 1 } else if peek() == "+" { pos += 1 }  // possessive treated as greedy
                atom = .repeat_(atom, min: min, max: max, greedy: greedy)
            }
            return atom
        }

        mutating func parseAtom(fold: Bool) throws -> Node {
            let c = scalars[pos]
            pos += 1
            switch c {
            case "(":
                var f = fold
                if peek() == "?" {
                    pos += 1
                    guard let k = peek() else { throw RegexError(message: "bad group") }
                    if k == ":" { pos += 1 } else if k == "=" || k == "!" {
                        pos += 1
                        let inner = try parseAlternation(fold: fold)
                        guard peek() == ")" else { throw RegexError(message: "missing ')'") }
                        pos += 1
                        return .look(inner, negative: k == "!")
                    } else if k == "i" || k == "-" {
                        var on = true
                        var flags = fold
                        while let x = peek(), x != ":", x != ")" {
                            if x == "-" { on = false } else if x == "i" { flags = on } else { throw RegexError(message: "unsupported flag \(x)") }
                            pos += 1
                        }
                        if peek() == ")" { throw RegexError(message: "inline flag groups without ':' are not supported") }
                        pos += 1
                        f = flags
                    } else {
                        throw RegexError(message: "unsupported group (?\(k)")
                    }
                }
                let inner = try parseAlternation(fold: f)
                guard peek() == ")" else { throw RegexError(message: "missing ')'") }
                pos += 1
                return inner
            case "[":
                return .cls(try parseClass())
            case ".":
                return .any
            case "^": return .assert(.lineStart)
            case "$": return .assert(.lineEnd)
            case "\\":
                return try parseEscape(fold: fold)
            default:
                return .char(fold ? foldScalar(c.value) : c.value, fold: fold)
            }
        }

        mutating func addClass(_ items: [CharClass.Item], negated: Bool = false) -> Int {
            var c = CharClass()
            c.items = items
            c.negated = negated
            c.finalize()
            classes.append(c)
            return classes.count - 1
        }

        mutating func parseProperty(negated: Bool) throws -> CharClass.Item {
            var name = ""
            if peek() == "{" {
                pos += 1
                while let x = peek(), x != "}" { name.unicodeScalars.append(x); pos += 1 }
                pos += 1
            } else if let x = peek() { name = String(x); pos += 1 }
            var neg = negated
            if name.hasPrefix("^") { neg.toggle(); name.removeFirst() }
            guard let m = Cat.mask(named: name) else { throw RegexError(message: "unsupported property \\p{\(name)}") }
            return neg ? .notCats(m) : .cats(m)
        }

        /// An escape that denotes a class item, or nil for a literal escape (returned via `literal`).
        mutating func parseEscapeItem() throws -> (CharClass.Item?, UInt32?, Inst?) {
            guard let e = peek() else { throw RegexError(message: "trailing backslash") }
            pos += 1
            switch e {
            case "s": return (.space, nil, nil)
            case "S": return (.notSpace, nil, nil)
            case "d": return (.cats(Cat.Nd), nil, nil)
            case "D": return (.notCats(Cat.Nd), nil, nil)
            case "w": return (.word, nil, nil)
            case "W": return (.notWord, nil, nil)
            case "p": return (try parseProperty(negated: false), nil, nil)
            case "P": return (try parseProperty(negated: true), nil, nil)
            case "n": return (nil, 0x0A, nil)
            case "r": return (nil, 0x0D, nil)
            case "t": return (nil, 0x09, nil)
            case "f": return (nil, 0x0C, nil)
            case "v": return (nil, 0x0B, nil)
            case "0": return (nil, 0, nil)
            case "b": return (nil, nil, .wordBoundary)
            case "B": return (nil, nil, .notWordBoundary)
            case "A": return (nil, nil, .textStart)
            case "z", "Z": return (nil, nil, .textEnd)
            case "x", "u":
                var hex = ""
                if peek() == "{" {
                    pos += 1
                    while let x = peek(), x != "}" { hex.unicodeScalars.append(x); pos += 1 }
                    pos += 1
                } else {
                    let n = e == "x" ? 2 : 4
                    for _ in 0..<n { if let x = peek() { hex.unicodeScalars.append(x); pos += 1 } }
                }
                guard let v = UInt32(hex, radix: 16) else { throw RegexError(message: "bad hex escape") }
                return (nil, v, nil)
            default:
                return (nil, e.value, nil)
            }
        }

        mutating func parseEscape(fold: Bool) throws -> Node {
            let (item, lit, inst) = try parseEscapeItem()
            if let item { return .cls(addClass([item])) }
            if let inst { return .assert(inst) }
            let v = lit!
            return .char(fold ? foldScalar(v) : v, fold: fold)
        }

        mutating func parseClass() throws -> Int {
            var items: [CharClass.Item] = []
            var negated = false
            if peek() == "^" { negated = true; pos += 1 }
            var first = true
            while true {
                guard let c = peek() else { throw RegexError(message: "unterminated class") }
                if c == "]" && !first { pos += 1; break }
                first = false
                var lo: UInt32
                pos += 1
                if c == "\\" {
                    let (item, lit, _) = try parseEscapeItem()
                    if let item { items.append(item); continue }
                    lo = lit ?? 0x08
                } else if c == "[" {
                    // nested class: union
                    let idx = try parseClass()
                    let nested = classes[idx]
                    if nested.negated {
                        throw RegexError(message: "negated nested classes are not supported")
                    }
                    items.append(contentsOf: nested.items)
                    continue
                } else {
                    lo = c.value
                }
                // range?
                if peek() == "-", pos + 1 < scalars.count, scalars[pos + 1] != "]" {
                    pos += 1
                    var hi: UInt32
                    let h = scalars[pos]
                    pos += 1
                    if h == "\\" {
                        let (item, lit, _) = try parseEscapeItem()
                        if item != nil { throw RegexError(message: "bad class range") }
                        hi = lit ?? 0
                    } else { hi = h.value }
                    items.append(.range(lo, hi))
                } else {
                    items.append(.range(lo, lo))
                }
            }
            return addClass(items, negated: negated)
        }
    }

    // MARK: compile
    private func emit(_ node: Node) {
        switch node {
        case .empty: break
        case .char(let v, let fold): prog.append(fold ? .charFold(v) : .char(v))
        case .cls(let i): prog.append(.cls(i))
        case .any: prog.append(.any)
        case .assert(let inst): prog.append(inst)
        case .concat(let items): for n in items { emit(n) }
        case .alt(let alts):
            var jumps: [Int] = []
            for (i, a) in alts.enumerated() {
                if i < alts.count - 1 {
                    let split = prog.count
                    prog.append(.split(0, 0))
                    emit(a)
                    jumps.append(prog.count)
                    prog.append(.jmp(0))
                    prog[split] = .split(split + 1, prog.count)
                } else {
                    emit(a)
                }
            }
            for j in jumps { prog[j] = .jmp(prog.count) }
        case .look(let inner, let negative):
            let at = prog.count
            prog.append(.match)  // placeholder
            let start = prog.count
            emit(inner)
            prog.append(.match)
            prog[at] = .look(negative: negative, start: start, next: prog.count)
        case .repeat_(let inner, let min, let max, let greedy):
            for _ in 0..<min { emit(inner) }
            if let max {
                // optional copies: split(a, end) a split(b, end) b ...
                var splits: [Int] = []
                for _ in min..<max {
                    splits.append(prog.count)
                    prog.append(.split(0, 0))
                    emit(inner)
                }
                let end = prog.count
                for s in splits { prog[s] = greedy ? .split(s + 1, end) : .split(end, s + 1) }
            } else {
                let l = prog.count
                prog.append(.split(0, 0))
                emit(inner)
                prog.append(.jmp(l))
                let end = prog.count
                prog[l] = greedy ? .split(l + 1, end) : .split(end, l + 1)
            }
        }
    }

    // MARK: match

    /// Tries to match at `start`; returns the end of the match or -1.

    private func run(_ t: UnsafeBufferPointer<UInt32>, _ pc0: Int, _ pos0: Int, _ lo: Int, _ end: Int, _ stack: inout [(Int, Int)]) -> Int {
        let base = stack.count
        var pc = pc0, pos = pos0
        defer { stack.removeSubrange(base...) }
        while true {
            var fail = false
            switch prog[pc] {
            case .char(let v):
                if pos < end && t[pos] == v { pos += 1; pc += 1 } else { fail = true }
            case .charFold(let v):
                if pos < end && foldScalar(t[pos]) == v { pos += 1; pc += 1 } else { fail = true }
            case .cls(let i):
                if pos < end && classes[i].matches(t[pos]) { pos += 1; pc += 1 } else { fail = true }
            case .any:
                if pos < end && t[pos] != 0x0A { pos += 1; pc += 1 } else { fail = true }
            case .split(let a, let b):
                stack.append((b, pos))
                pc = a
            case .jmp(let a):
                pc = a
            case .look(let negative, let start, let next):
                let r = run(t, start, pos, lo, end, &stack)
                if (r >= 0) != negative { pc = next } else { fail = true }
            case .lineStart:
                if pos == lo || t[pos - 1] == 0x0A { pc += 1 } else { fail = true }
            case .lineEnd:
                if pos == end || t[pos] == 0x0A { pc += 1 } else { fail = true }
            case .textStart:
                if pos == lo { pc += 1 } else { fail = true }
            case .textEnd:
                if pos == end { pc += 1 } else { fail = true }
            case .wordBoundary, .notWordBoundary:
                let a = pos > lo && isWordScalar(t[pos - 1])
                let b = pos < end && isWordScalar(t[pos])
                var ok = a != b
                if case .notWordBoundary = prog[pc] { ok = !ok }
                if ok { pc += 1 } else { fail = true }
            case .match:
                return pos
            }
            if fail {
                if stack.count == base { return -1 }
                (pc, pos) = stack.removeLast()
            }
        }
    }

    /// Non-overlapping leftmost matches in [start, end) as ranges (empty matches are skipped).
    func matches(in text: UnsafeBufferPointer<UInt32>, _ start: Int, _ end: Int) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var stack: [(Int, Int)] = []
        stack.reserveCapacity(64)
        var p = start
        while p < end {
            let e = run(text, 0, p, start, end, &stack)
            if e > p {
                out.append(p..<e)
                p = e
            } else {
                p += 1
            }
        }
        return out
    }
}
