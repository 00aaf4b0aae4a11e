// Tokenizer for the Jinja2 template syntax, with Jinja's whitespace rules as transformers
// configures them: trim_blocks (drop the newline after a block or comment tag), lstrip_blocks
// (drop spaces/tabs before a block or comment tag at the start of a line), `-` to strip all
// whitespace on that side of a tag, `+` to opt out, newlines normalised, one trailing newline dropped.

struct SourcePos: Sendable, Equatable {
    var line: Int
    var column: Int
}

enum JinjaTokenKind: Equatable, Sendable {
    case text(String)
    case variableBegin   // {{
    case variableEnd     // }}
    case blockBegin      // {%
    case blockEnd        // %}
    case name(String)
    case string(String)
    case integer(Int)
    case float(Double)
    case op(String)
    case eof

    /// How Jinja names the token in "expected ..." messages.
    var describe: String {
        switch self {
        case .text: return "template data"
        case .variableBegin: return "begin of print statement"
        case .variableEnd: return "end of print statement"
        case .blockBegin: return "begin of statement block"
        case .blockEnd: return "end of statement block"
        case .name(let n): return "'\(n)'"
        case .string(let s): return "string " + pyStringRepr(s)
        case .integer(let i): return "integer \(i)"
        case .float(let d): return "float \(pyFloatRepr(d))"
        case .op(let o): return "'\(o)'"
        case .eof: return "end of template"
        }
    }
}

struct JinjaToken: Sendable {
    var kind: JinjaTokenKind
    var pos: SourcePos
}

struct JinjaLexer {
    private let src: [Unicode.Scalar]
    private var lineStarts: [Int] = [0]

    init(_ source: String) {
        // Jinja: \r\n and \r become \n; one trailing newline is dropped (keep_trailing_newline=False).
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(source.unicodeScalars.count)
        var it = source.unicodeScalars.makeIterator()
        var pending = it.next()
        while let c = pending {
            pending = it.next()
            if c == "\r" {
                scalars.append("\n")
                if pending == "\n" { pending = it.next() }
            } else {
                scalars.append(c)
            }
        }
        if scalars.last == "\n" { scalars.removeLast() }
        src = scalars
        for (i, c) in src.enumerated() where c == "\n" { lineStarts.append(i + 1) }
    }

    func position(_ offset: Int) -> SourcePos {
        var lo = 0, hi = lineStarts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if lineStarts[mid] <= offset { lo = mid } else { hi = mid - 1 }
        }
        return SourcePos(line: lo + 1, column: offset - lineStarts[lo] + 1)
    }

    private func error(_ message: String, at offset: Int) -> ChatTemplateError {
        let p = position(offset)
        return ChatTemplateError(kind: .syntax, message: message, line: p.line, column: p.column)
    }

    private func starts(_ s: String, at i: Int) -> Bool {
        var j = i
        for c in s.unicodeScalars {
            guard j < src.count, src[j] == c else { return false }
            j += 1
        }
        return true
    }

    private func string(_ a: Int, _ b: Int) -> String {
        var v = String.UnicodeScalarView()
        v.append(contentsOf: src[a..<b])
        return String(v)
    }

    private static func isSpace(_ c: Unicode.Scalar) -> Bool { pyIsSpace(c) }

    func tokenize() throws -> [JinjaToken] {
        var tokens: [JinjaToken] = []
        var pos = 0
        var lineStarting = true

        func emitText(_ text: String, at offset: Int) {
            if !text.isEmpty { tokens.append(JinjaToken(kind: .text(text), pos: position(offset))) }
        }

        /// Applies `-` / lstrip_blocks to the data before a tag.
        func stripData(_ a: Int, _ b: Int, sign: Unicode.Scalar?, lstrip: Bool) -> Int {
            var end = b
            if sign == "-" {
                while end > a && JinjaLexer.isSpace(src[end - 1]) { end -= 1 }
            } else if sign != "+" && lstrip {
                var lineStart = end
                while lineStart > a && src[lineStart - 1] != "\n" { lineStart -= 1 }
                let atLineStart = lineStart > a || lineStarting
                if atLineStart && src[lineStart..<end].allSatisfy({ JinjaLexer.isSpace($0) }) { end = lineStart }
            }
            return end
        }

        while pos < src.count {
            // Find the next tag opener.
            var open = pos
            var kind: Unicode.Scalar? = nil
            while open + 1 < src.count {
                if src[open] == "{" && (src[open + 1] == "{" || src[open + 1] == "%" || src[open + 1] == "#") {
                    kind = src[open + 1]
                    break
                }
                open += 1
            }
            guard let kind else {
                emitText(string(pos, src.count), at: pos)
                break
            }
            var after = open + 2
            var sign: Unicode.Scalar? = nil
            if after < src.count && (src[after] == "-" || src[after] == "+") { sign = src[after]; after += 1 }

            // {% raw %} ... {% endraw %}
            if kind == "%", let rawEnd = matchRawBegin(after) {
                let end = stripData(pos, open, sign: sign, lstrip: true)
                emitText(string(pos, end), at: pos)
                lineStarting = false
                guard let (bodyEnd, endSign, tagEnd) = findEndRaw(rawEnd.end) else {
                    throw error("Missing end of raw directive", at: open)
                }
                let textEnd = stripData(rawEnd.end, bodyEnd, sign: endSign, lstrip: true)
                emitText(string(rawEnd.end, textEnd), at: rawEnd.end)
                pos = tagEnd
                lineStarting = src[pos - 1] == "\n"
                continue
            }

            let end = stripData(pos, open, sign: sign, lstrip: kind != "{")
            emitText(string(pos, end), at: pos)

            if kind == "#" {
                // Comment: up to the first `+#}`, `-#}` (strip following whitespace) or `#}` (+ one newline).
                var i = after
                var found = false
                while i < src.count {
                    if starts("+#}", at: i) { pos = i + 3; found = true; break }
                    if starts("-#}", at: i) {
                        pos = i + 3
                        while pos < src.count && JinjaLexer.isSpace(src[pos]) { pos += 1 }
                        found = true; break
                    }
                    if starts("#}", at: i) {
                        pos = i + 2
                        if pos < src.count && src[pos] == "\n" { pos += 1 }
                        found = true; break
                    }
                    i += 1
                }
                if !found { throw error("Missing end of comment tag", at: open) }
                lineStarting = src[pos - 1] == "\n"
                continue
            }

            let isBlock = kind == "%"
            tokens.append(JinjaToken(kind: isBlock ? .blockBegin : .variableBegin, pos: position(open)))
            pos = try lexTag(from: after, isBlock: isBlock, openAt: open, into: &tokens)
            lineStarting = src[pos - 1] == "\n"
        }
        tokens.append(JinjaToken(kind: .eof, pos: position(src.count)))
        return tokens
    }

    /// `raw` keyword after `{%`/`{%-`: returns the offset after the closing `%}`.
    private func matchRawBegin(_ start: Int) -> (end: Int, Void)? {
        var i = start
        while i < src.count && JinjaLexer.isSpace(src[i]) { i += 1 }
        guard starts("raw", at: i) else { return nil }
        i += 3
        if i < src.count, isNameChar(src[i]) { return nil }
        while i < src.count && JinjaLexer.isSpace(src[i]) { i += 1 }
        if starts("-%}", at: i) {
            i += 3
            while i < src.count && JinjaLexer.isSpace(src[i]) { i += 1 }
            return (i, ())
        }
        if starts("%}", at: i) { return (i + 2, ()) }
        return nil
    }

    private func findEndRaw(_ start: Int) -> (Int, Unicode.Scalar?, Int)? {
        var i = start
        while i + 1 < src.count {
            if src[i] == "{" && src[i + 1] == "%" {
                var j = i + 2
                var sign: Unicode.Scalar? = nil
                if j < src.count && (src[j] == "-" || src[j] == "+") { sign = src[j]; j += 1 }
                while j < src.count && JinjaLexer.isSpace(src[j]) { j += 1 }
                if starts("endraw", at: j) {
                    j += 6
                    while j < src.count && JinjaLexer.isSpace(src[j]) { j += 1 }
                    if starts("+%}", at: j) { return (i, sign, j + 3) }
                    if starts("-%}", at: j) {
                        j += 3
                        while j < src.count && JinjaLexer.isSpace(src[j]) { j += 1 }
                        return (i, sign, j)
                    }
                    if starts("%}", at: j) {
                        j += 2
                        if j < src.count && src[j] == "\n" { j += 1 }
                        return (i, sign, j)
                    }
                }
            }
            i += 1
        }
        return nil
    }

    private func isNameStart(_ c: Unicode.Scalar) -> Bool {
        c == "_" || (c >= "a" && c <= "z") || (c >= "A" && c <= "Z")
    }
    private func isNameChar(_ c: Unicode.Scalar) -> Bool { isNameStart(c) || isDigit(c) }
    private func isDigit(_ c: Unicode.Scalar) -> Bool { c >= "0" && c <= "9" }

    private static let operators: [String] = [
        "//", "**", "==", "!=", ">=", "<=",
        "+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";",
    ]

    /// Lexes the inside of `{{ ... }}` or `{% ... %}`; returns the offset after the closing tag.
    private func lexTag(from start: Int, isBlock: Bool, openAt: Int, into tokens: inout [JinjaToken]) throws -> Int {
        var i = start
        var balance: [Unicode.Scalar] = []
        let close: Unicode.Scalar = isBlock ? "%" : "}"
        while true {
            guard i < src.count else {
                throw error("unexpected end of template, expected '\(isBlock ? "end of statement block" : "end of print statement")' (the tag opened at line \(position(openAt).line), column \(position(openAt).column) is never closed)", at: src.count)
            }
            let c = src[i]
            if balance.isEmpty {
                // End of tag: `-%}` strips following whitespace; `+%}` keeps it; `%}` eats one newline.
                if c == "-" && i + 2 < src.count + 0 && starts(String(close) + "}", at: i + 1) {
                    tokens.append(JinjaToken(kind: isBlock ? .blockEnd : .variableEnd, pos: position(i)))
                    var j = i + 3
                    while j < src.count && JinjaLexer.isSpace(src[j]) { j += 1 }
                    return j
                }
                if isBlock && c == "+" && starts("%}", at: i + 1) {
                    tokens.append(JinjaToken(kind: .blockEnd, pos: position(i)))
                    return i + 3
                }
                if c == close && i + 1 < src.count && src[i + 1] == "}" {
                    tokens.append(JinjaToken(kind: isBlock ? .blockEnd : .variableEnd, pos: position(i)))
                    var j = i + 2
                    if isBlock && j < src.count && src[j] == "\n" { j += 1 }
                    return j
                }
            }
            if JinjaLexer.isSpace(c) { i += 1; continue }
            let here = position(i)
            if isDigit(c) {
                let (kind, next) = try lexNumber(i)
                tokens.append(JinjaToken(kind: kind, pos: here))
                i = next
                continue
            }
            if isNameStart(c) {
                var j = i + 1
                while j < src.count && isNameChar(src[j]) { j += 1 }
                tokens.append(JinjaToken(kind: .name(string(i, j)), pos: here))
                i = j
                continue
            }
            if c == "'" || c == "\"" {
                let (value, next) = try lexString(i)
                tokens.append(JinjaToken(kind: .string(value), pos: here))
                i = next
                continue
            }
            guard let op = JinjaLexer.operators.first(where: { starts($0, at: i) }) else {
                throw error("unexpected char \(pyStringRepr(String(Character(c)))) at \(i)", at: i)
            }
            switch op {
            case "(": balance.append(")")
            case "[": balance.append("]")
            case "{": balance.append("}")
            case ")", "]", "}":
                guard let expected = balance.popLast() else { throw error("unexpected '\(op)'", at: i) }
                if String(expected) != op { throw error("unexpected '\(op)', expected '\(expected)'", at: i) }
            default: break
            }
            tokens.append(JinjaToken(kind: .op(op), pos: here))
            i += op.unicodeScalars.count
        }
    }

    private func lexNumber(_ start: Int) throws -> (JinjaTokenKind, Int) {
        var i = start
        func digits() -> String {
            var s = ""
            while i < src.count && (isDigit(src[i]) || (src[i] == "_" && i + 1 < src.count && isDigit(src[i + 1]))) {
                if src[i] != "_" { s.unicodeScalars.append(src[i]) }
                i += 1
            }
            return s
        }
        if src[i] == "0" && i + 1 < src.count, let radix = ["b": 2, "o": 8, "x": 16][String(src[i + 1]).lowercased()] {
            var j = i + 2
            var s = ""
            while j < src.count, src[j] == "_" || Int(String(src[j]), radix: radix) != nil {
                if src[j] != "_" { s.unicodeScalars.append(src[j]) }
                j += 1
            }
            guard let v = Int(s, radix: radix) else { throw error("invalid integer literal", at: start) }
            return (.integer(v), j)
        }
        let intPart = digits()
        var text = intPart
        var isFloat = false
        if i + 1 < src.count && src[i] == "." && isDigit(src[i + 1]) {
            i += 1
            text += "." + digits()
            isFloat = true
        }
        if i < src.count && (src[i] == "e" || src[i] == "E") {
            var j = i + 1
            var expSign = ""
            if j < src.count && (src[j] == "+" || src[j] == "-") { expSign = String(src[j]); j += 1 }
            if j < src.count && isDigit(src[j]) {
                i = j
                text += "e" + expSign + digits()
                isFloat = true
            }
        }
        if isFloat {
            guard let d = Double(text) else { throw error("invalid float literal", at: start) }
            return (.float(d), i)
        }
        guard let v = Int(text) else { throw error("integer literal too large", at: start) }
        return (.integer(v), i)
    }

    /// Jinja decodes string literals with Python's unicode-escape codec.
    private func lexString(_ start: Int) throws -> (String, Int) {
        let quote = src[start]
        var i = start + 1
        var out = String.UnicodeScalarView()
        while true {
            guard i < src.count else { throw error("unexpected end of string literal (no closing \(quote))", at: start) }
            let c = src[i]
            if c == quote { return (String(out), i + 1) }
            if c != "\\" { out.append(c); i += 1; continue }
            guard i + 1 < src.count else { throw error("unexpected end of string literal", at: start) }
            let e = src[i + 1]
            i += 2
            switch e {
            case "\n": break
            case "\\": out.append("\\")
            case "'": out.append("'")
            case "\"": out.append("\"")
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "n": out.append("\n")
            case "r": out.append("\r")
            case "t": out.append("\t")
            case "v": out.append("\u{0B}")
            case "0"..."7":
                var v = e.value - 48
                var n = 1
                while n < 3 && i < src.count && src[i] >= "0" && src[i] <= "7" { v = v * 8 + src[i].value - 48; i += 1; n += 1 }
                out.append(Unicode.Scalar(v) ?? "\u{FFFD}")
            case "x", "u", "U":
                let width = e == "x" ? 2 : (e == "u" ? 4 : 8)
                guard i + width <= src.count, let v = UInt32(string(i, i + width), radix: 16), let s = Unicode.Scalar(v) else {
                    throw error("truncated \\\(e) escape in string literal", at: i - 2)
                }
                out.append(s)
                i += width
            default:
                out.append("\\")
                out.append(e)
            }
        }
    }
}
