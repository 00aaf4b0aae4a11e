// Normalizers, pre-tokenizers and added-token splitting (HF `tokenizers` semantics).

import Foundation

typealias TokScalars = [UInt32]

@inline(__always) func scalarsOf(_ s: String) -> TokScalars { s.unicodeScalars.map(\.value) }

func stringOf(_ s: ArraySlice<UInt32>) -> String {
    var v = String.UnicodeScalarView()
    for x in s { if let u = Unicode.Scalar(x) { v.append(u) } }
    return String(v)
}

let metaspaceScalar: UInt32 = 0x2581

// MARK: Normalizers

enum Normalizer {
    case prepend(TokScalars)
    case replace(String, TokScalars)              // literal pattern
    case replaceRegex(PatternRegex, TokScalars)
    case nfc, nfd, nfkc, nfkd, lowercase
    case strip(left: Bool, right: Bool)

    func apply(_ s: TokScalars) -> TokScalars {
        switch self {
        case .prepend(let p): return s.isEmpty ? s : p + s
        case .replace(let pat, let content):
            let p = scalarsOf(pat)
            if p.isEmpty || s.count < p.count { return s }
            var out: TokScalars = []
            out.reserveCapacity(s.count)
            var i = 0
            while i < s.count {
                if i + p.count <= s.count && s[i] == p[0] && Array(s[i..<(i + p.count)]) == p {
                    out.append(contentsOf: content); i += p.count
                } else { out.append(s[i]); i += 1 }
            }
            return out
        case .replaceRegex(let re, let content):
            let ms = s.withUnsafeBufferPointer { re.matches(in: $0, 0, s.count) }
            if ms.isEmpty { return s }
            var out: TokScalars = []
            var last = 0
            for m in ms { out.append(contentsOf: s[last..<m.lowerBound]); out.append(contentsOf: content); last = m.upperBound }
            out.append(contentsOf: s[last...])
            return out
        case .nfc: return scalarsOf(stringOf(s[...]).precomposedStringWithCanonicalMapping)
        case .nfd: return scalarsOf(stringOf(s[...]).decomposedStringWithCanonicalMapping)
        case .nfkc: return scalarsOf(stringOf(s[...]).precomposedStringWithCompatibilityMapping)
        case .nfkd: return scalarsOf(stringOf(s[...]).decomposedStringWithCompatibilityMapping)
        case .lowercase: return scalarsOf(stringOf(s[...]).lowercased())
        case .strip(let l, let r):
            var a = 0, b = s.count
            if l { while a < b, isRegexSpace(s[a]) { a += 1 } }
            if r { while b > a, isRegexSpace(s[b - 1]) { b -= 1 } }
            return Array(s[a..<b])
        }
    }
}

// MARK: Pre-tokenizers

enum SplitBehavior: String {
    case removed = "Removed", isolated = "Isolated", mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext", contiguous = "Contiguous"
}

enum PrependScheme { case always, first, never }

enum PreTokenizer {
    case byteLevel(addPrefixSpace: Bool, regex: PatternRegex?)
    case split(PatternRegex?, literal: TokScalars?, SplitBehavior, invert: Bool)
    case digits(individual: Bool)
    case punctuation(SplitBehavior)
    case metaspace(replacement: UInt32, prepend: PrependScheme, split: Bool)
    case whitespace          // \w+|[^\w\s]+
    case whitespaceSplit

    static let gpt2Pattern = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
    static let whitespacePattern = "\\w+|[^\\w\\s]+"
}

/// Pieces produced by splitting: (range, isMatch) covering the input, in order.
func applyBehavior(_ parts: [(Range<Int>, Bool)], _ behavior: SplitBehavior) -> [Range<Int>] {
    var out: [(Range<Int>, Bool)] = []
    switch behavior {
    case .isolated: out = parts
    case .removed: out = parts.filter { !$0.1 }
    case .mergedWithPrevious:
        var prevMatch = false
        for (r, m) in parts {
            if m && !prevMatch, let last = out.last {
                out[out.count - 1] = (last.0.lowerBound..<r.upperBound, false)
            } else { out.append((r, m && out.isEmpty ? true : false)) }
            prevMatch = m
        }
    case .mergedWithNext:
        var prevMatch = false
        for (r, m) in parts.reversed() {
            if m && !prevMatch, let last = out.last {
                out[out.count - 1] = (r.lowerBound..<last.0.upperBound, false)
            } else { out.append((r, false)) }
            prevMatch = m
        }
        out.reverse()
    case .contiguous:
        var prevMatch = false
        for (r, m) in parts {
            if m == prevMatch, let last = out.last {
                out[out.count - 1] = (last.0.lowerBound..<r.upperBound, false)
            } else { out.append((r, false)) }
            prevMatch = m
        }
    }
    return out.map(\.0).filter { !$0.isEmpty }
}

func partsFrom(matches: [Range<Int>], count: Int, invert: Bool) -> [(Range<Int>, Bool)] {
    var parts: [(Range<Int>, Bool)] = []
    var prev = 0
    for m in matches {
        if prev != m.lowerBound { parts.append((prev..<m.lowerBound, invert)) }
        parts.append((m, !invert))
        prev = m.upperBound
    }
    if prev != count { parts.append((prev..<count, invert)) }
    return parts
}

@inline(__always) func isNumericScalar(_ v: UInt32) -> Bool {
    if v < 0x80 { return v >= 0x30 && v <= 0x39 }
    guard let s = Unicode.Scalar(v) else { return false }
    return categoryBit(s) & Cat.N != 0
}

@inline(__always) func isPunctuationScalar(_ v: UInt32) -> Bool {
    if v < 0x80 {
        return (v >= 0x21 && v <= 0x2F) || (v >= 0x3A && v <= 0x40) || (v >= 0x5B && v <= 0x60) || (v >= 0x7B && v <= 0x7E)
    }
    guard let s = Unicode.Scalar(v) else { return false }
    return categoryBit(s) & Cat.P != 0
}

/// Rust's char::is_whitespace (White_Space property).
@inline(__always) func isWhitespaceScalar(_ v: UInt32) -> Bool { isRegexSpace(v) }

extension PreTokenizer {
    /// Applies this step to every piece. `firstPieceAtTextStart` says whether pieces[0] begins at
    /// offset 0 of the original text (Metaspace's "first" scheme).
    func apply(_ pieces: [TokScalars], firstPieceAtTextStart: Bool) -> [TokScalars] {
        var out: [TokScalars] = []
        out.reserveCapacity(pieces.count * 2)
        for (pi, p0) in pieces.enumerated() {
            switch self {
            case .byteLevel(let addPrefixSpace, let regex):
                var p = p0
                if addPrefixSpace && p.first != 0x20 { p.insert(0x20, at: 0) }
                if let regex {
                    let ms = p.withUnsafeBufferPointer { regex.matches(in: $0, 0, p.count) }
                    for r in applyBehavior(partsFrom(matches: ms, count: p.count, invert: false), .isolated) {
                        out.append(ByteLevelMap.map(p[r]))
                    }
                } else if !p.isEmpty {
                    out.append(ByteLevelMap.map(p[...]))
                }
            case .split(let regex, let literal, let behavior, let invert):
                var ms: [Range<Int>] = []
                if let regex {
                    ms = p0.withUnsafeBufferPointer { regex.matches(in: $0, 0, p0.count) }
                } else if let lit = literal, !lit.isEmpty {
                    var i = 0
                    while i + lit.count <= p0.count {
                        if p0[i] == lit[0] && Array(p0[i..<(i + lit.count)]) == lit { ms.append(i..<(i + lit.count)); i += lit.count } else { i += 1 }
                    }
                }
                for r in applyBehavior(partsFrom(matches: ms, count: p0.count, invert: invert), behavior) { out.append(Array(p0[r])) }
            case .digits(let individual):
                var ms: [Range<Int>] = []
                var i = 0
                while i < p0.count {
                    if isNumericScalar(p0[i]) {
                        var j = i + 1
                        if !individual { while j < p0.count && isNumericScalar(p0[j]) { j += 1 } }
                        ms.append(i..<j); i = j
                    } else { i += 1 }
                }
                for r in applyBehavior(partsFrom(matches: ms, count: p0.count, invert: false), .isolated) { out.append(Array(p0[r])) }
            case .punctuation(let behavior):
                var ms: [Range<Int>] = []
                for i in 0..<p0.count where isPunctuationScalar(p0[i]) { ms.append(i..<(i + 1)) }
                for r in applyBehavior(partsFrom(matches: ms, count: p0.count, invert: false), behavior) { out.append(Array(p0[r])) }
            case .metaspace(let rep, let prepend, let split):
                var p = p0.map { $0 == 0x20 ? rep : $0 }
                let doPrepend = prepend == .always || (prepend == .first && pi == 0 && firstPieceAtTextStart)
                if doPrepend && p.first != rep { p.insert(rep, at: 0) }
                if split {
                    var ms: [Range<Int>] = []
                    for i in 0..<p.count where p[i] == rep { ms.append(i..<(i + 1)) }
                    for r in applyBehavior(partsFrom(matches: ms, count: p.count, invert: false), .mergedWithNext) { out.append(Array(p[r])) }
                } else if !p.isEmpty {
                    out.append(p)
                }
            case .whitespace:
                let re = PreTokenizer.whitespaceRegex
                let ms = p0.withUnsafeBufferPointer { re.matches(in: $0, 0, p0.count) }
                for r in applyBehavior(partsFrom(matches: ms, count: p0.count, invert: true), .removed) { out.append(Array(p0[r])) }
            case .whitespaceSplit:
                var ms: [Range<Int>] = []
                for i in 0..<p0.count where isWhitespaceScalar(p0[i]) { ms.append(i..<(i + 1)) }
                for r in applyBehavior(partsFrom(matches: ms, count: p0.count, invert: false), .removed) { out.append(Array(p0[r])) }
            }
        }
        return out
    }

    nonisolated(unsafe) static let whitespaceRegex = try! PatternRegex(whitespacePattern)
}

enum ByteLevelMap {
    /// TokScalars -> UTF-8 bytes -> GPT-2 byte-level scalars.
    static func map(_ s: ArraySlice<UInt32>) -> TokScalars {
        var out: TokScalars = []
        out.reserveCapacity(s.count + 4)
        let t = ByteLevelTable.byteToScalar
        for v in s {
            if v < 0x80 { out.append(t[Int(v)]) } else if v < 0x800 {
                out.append(t[Int(0xC0 | (v >> 6))]); out.append(t[Int(0x80 | (v & 0x3F))])
            } else if v < 0x10000 {
                out.append(t[Int(0xE0 | (v >> 12))]); out.append(t[Int(0x80 | ((v >> 6) & 0x3F))]); out.append(t[Int(0x80 | (v & 0x3F))])
            } else {
                out.append(t[Int(0xF0 | (v >> 18))]); out.append(t[Int(0x80 | ((v >> 12) & 0x3F))])
                out.append(t[Int(0x80 | ((v >> 6) & 0x3F))]); out.append(t[Int(0x80 | (v & 0x3F))])
            }
        }
        return out
    }
}

// MARK: Added tokens

struct AddedToken {
    var content: TokScalars
    var id: Int
    var special: Bool
    var lstrip = false
    var rstrip = false
    var singleWord = false
}

/// Splits text on added tokens: leftmost match, longest at that position (aho-corasick
/// LeftmostLongest as HF `tokenizers` does), with lstrip/rstrip/single_word.
struct AddedTokenMatcher {
    var tokens: [AddedToken] = []
    var byFirst: [UInt32: [Int]] = [:]

    init(_ tokens: [AddedToken]) {
        self.tokens = tokens.filter { !$0.content.isEmpty }
        for (i, t) in self.tokens.enumerated() { byFirst[t.content[0], default: []].append(i) }
        for k in byFirst.keys { byFirst[k]!.sort { self.tokens[$0].content.count > self.tokens[$1].content.count } }
    }

    struct Segment { var range: Range<Int>; var id: Int? }

    func split(_ s: TokScalars) -> [Segment] {
        if byFirst.isEmpty { return [Segment(range: 0..<s.count, id: nil)] }
        var out: [Segment] = []
        var textStart = 0
        var i = 0
        let n = s.count
        while i < n {
            guard let cands = byFirst[s[i]] else { i += 1; continue }
            var found: AddedToken? = nil
            for c in cands {
                let t = tokens[c]
                let l = t.content.count
                if i + l <= n && s[i..<(i + l)].elementsEqual(t.content) {
                    if t.singleWord {
                        let before = i > 0 && isWordScalar(s[i - 1])
                        let after = i + l < n && isWordScalar(s[i + l])
                        if before || after { continue }
                    }
                    found = t
                    break
                }
            }
            guard let t = found else { i += 1; continue }
            var a = i, b = i + t.content.count
            if t.lstrip { while a > textStart && isWhitespaceScalar(s[a - 1]) { a -= 1 } }
            if t.rstrip { while b < n && isWhitespaceScalar(s[b]) { b += 1 } }
            if a > textStart { out.append(Segment(range: textStart..<a, id: nil)) }
            out.append(Segment(range: a..<b, id: t.id))
            textStart = b
            i = b
        }
        if textStart < n { out.append(Segment(range: textStart..<n, id: nil)) }
        return out
    }
}
