// Recursive-descent parser for the Jinja2 subset used by chat templates. The grammar and the
// operator precedence follow jinja2/parser.py, so templates parse exactly as Jinja parses them.

struct JinjaParser {
    private var tokens: [JinjaToken]
    private var index = 0
    /// Names of blocks being parsed, innermost last (for "unexpected end of template" messages).
    private var openBlocks: [(String, SourcePos)] = []

    init(_ tokens: [JinjaToken]) { self.tokens = tokens }

    // MARK: token helpers

    private var current: JinjaToken { tokens[index] }
    private func peek(_ n: Int = 1) -> JinjaToken { tokens[min(index + n, tokens.count - 1)] }
    private mutating func advance() -> JinjaToken {
        let t = tokens[index]
        if index < tokens.count - 1 { index += 1 }
        return t
    }

    private func error(_ message: String, at pos: SourcePos? = nil) -> ChatTemplateError {
        let p = pos ?? current.pos
        return ChatTemplateError(kind: .syntax, message: message, line: p.line, column: p.column)
    }

    private func isName(_ name: String, _ token: JinjaToken? = nil) -> Bool {
        if case .name(let n) = (token ?? current).kind { return n == name }
        return false
    }
    private func isOp(_ op: String, _ token: JinjaToken? = nil) -> Bool {
        if case .op(let o) = (token ?? current).kind { return o == op }
        return false
    }

    private mutating func expectOp(_ op: String) throws {
        guard isOp(op) else { throw error("expected '\(op)', got \(current.kind.describe)") }
        _ = advance()
    }

    private mutating func expectName() throws -> String {
        guard case .name(let n) = current.kind else { throw error("expected a name, got \(current.kind.describe)") }
        _ = advance()
        return n
    }

    private mutating func expectBlockEnd() throws {
        guard case .blockEnd = current.kind else {
            throw error("expected 'end of statement block', got \(current.kind.describe)")
        }
        _ = advance()
    }

    // MARK: template structure

    mutating func parseTemplate() throws -> JinjaProgram {
        let body = try parseBody(until: [])
        try JinjaParser.checkNames(body, soft: false)
        return JinjaProgram(body: body)
    }

    // MARK: compile-time checks

    /// Jinja rejects unknown filters and tests when it compiles the template, except inside
    /// `{% if %}` blocks and inline if-expressions ("soft" frames), where the error waits until
    /// the filter is actually used. This walk reproduces that.
    private static func checkNames(_ nodes: [JinjaNode], soft: Bool) throws {
        for node in nodes {
            switch node.kind {
            case .text, .breakLoop, .continueLoop: break
            case .output(let exprs): for e in exprs { try checkNames(e, soft: soft) }
            case .forLoop(let f):
                try checkNames(f.iterable, soft: soft)
                if let filter = f.filter { try checkNames(filter, soft: false) }
                try checkNames(f.body, soft: false)
                try checkNames(f.elseBody, soft: false)
            case .ifBlock(let branches, let elseBody):
                for b in branches {
                    try checkNames(b.test, soft: true)
                    try checkNames(b.body, soft: true)
                }
                try checkNames(elseBody, soft: true)
            case .set(_, let e): try checkNames(e, soft: soft)
            case .setBlock(_, let body, let filters):
                try checkNames(body, soft: false)
                for f in filters { try checkNames(f, soft: soft) }
            case .macro(let m):
                for p in m.params { if let d = p.defaultValue { try checkNames(d, soft: false) } }
                try checkNames(m.body, soft: false)
            case .callBlock(let e, let body):
                try checkNames(e, soft: soft)
                try checkNames(body, soft: false)
            case .filterBlock(let filters, let body):
                for f in filters { try checkNames(f, soft: soft) }
                try checkNames(body, soft: false)
            case .scope(let body): try checkNames(body, soft: soft)
            }
        }
    }

    private static func checkNames(_ args: JinjaCallArgs, soft: Bool) throws {
        for a in args.positional { try checkNames(a, soft: soft) }
        for k in args.keyword { try checkNames(k.value, soft: soft) }
    }

    private static func checkNames(_ expr: JinjaExpr, soft: Bool) throws {
        func fail(_ message: String) -> ChatTemplateError {
            ChatTemplateError(kind: .syntax, message: message, line: expr.pos.line, column: expr.pos.column)
        }
        switch expr.kind {
        case .constant, .name: break
        case .list(let items), .tuple(let items): for i in items { try checkNames(i, soft: soft) }
        case .dict(let entries):
            for e in entries { try checkNames(e.key, soft: soft); try checkNames(e.value, soft: soft) }
        case .getattr(let o, _): try checkNames(o, soft: soft)
        case .getitem(let o, let k): try checkNames(o, soft: soft); try checkNames(k, soft: soft)
        case .slice(let o, let a, let b, let c):
            try checkNames(o, soft: soft)
            for x in [a, b, c] { if let x { try checkNames(x, soft: soft) } }
        case .call(let callee, let args):
            try checkNames(callee, soft: soft)
            try checkNames(args, soft: soft)
        case .filter(let input, let name, let args):
            if !soft && !JinjaBuiltins.filterNames.contains(name) { throw fail("No filter named '\(name)'.") }
            if let input { try checkNames(input, soft: soft) }
            try checkNames(args, soft: soft)
        case .test(let subject, let name, let args):
            if !soft && !JinjaBuiltins.testNames.contains(name) { throw fail("No test named '\(name)'.") }
            try checkNames(subject, soft: soft)
            try checkNames(args, soft: soft)
        case .neg(let e), .pos(let e), .not(let e): try checkNames(e, soft: soft)
        case .and(let l, let r), .or(let l, let r), .binary(_, let l, let r):
            try checkNames(l, soft: soft); try checkNames(r, soft: soft)
        case .compare(let first, let ops):
            try checkNames(first, soft: soft)
            for o in ops { try checkNames(o.expr, soft: soft) }
        case .conditional(let test, let then, let otherwise):
            try checkNames(test, soft: true)
            try checkNames(then, soft: true)
            if let otherwise { try checkNames(otherwise, soft: true) }
        }
    }

    /// Parses nodes until a `{% name %}` block whose name is in `endTags`; leaves `current` on that name.
    private mutating func parseBody(until endTags: Set<String>) throws -> [JinjaNode] {
        var nodes: [JinjaNode] = []
        while true {
            let token = current
            switch token.kind {
            case .eof:
                if endTags.isEmpty { return nodes }
                let wanted = endTags.sorted { a, b in a.hasPrefix("end") && !b.hasPrefix("end") || (a.hasPrefix("end") == b.hasPrefix("end") && a < b) }
                let (block, blockPos) = openBlocks.last!
                throw error("Unexpected end of template. Jinja was looking for the following tags: "
                    + wanted.map { "'\($0)'" }.joined(separator: " or ")
                    + ". The innermost block that needs to be closed is '\(block)' (opened at line \(blockPos.line), column \(blockPos.column)).")
            case .text(let s):
                _ = advance()
                nodes.append(JinjaNode(kind: .text(s), pos: token.pos))
            case .variableBegin:
                _ = advance()
                let exprs = try parseTupleItems(withCondExpr: true)
                guard case .variableEnd = current.kind else {
                    throw error("expected 'end of print statement', got \(current.kind.describe)")
                }
                _ = advance()
                nodes.append(JinjaNode(kind: .output(exprs), pos: token.pos))
            case .blockBegin:
                let tagToken = peek()
                guard case .name(let tag) = tagToken.kind else {
                    throw error("tag name expected, got \(tagToken.kind.describe)", at: tagToken.pos)
                }
                if endTags.contains(tag) {
                    _ = advance()  // leave current on the tag name
                    return nodes
                }
                _ = advance()
                nodes.append(try parseStatement(tag, at: tagToken.pos, blockPos: token.pos, enclosing: endTags))
            default:
                throw error("unexpected \(token.kind.describe)")
            }
        }
    }

    private static let endOnly: Set<String> = ["endfor", "endif", "endset", "endmacro", "endcall", "endfilter", "endgeneration", "endraw", "else", "elif"]

    private mutating func parseStatement(_ tag: String, at pos: SourcePos, blockPos: SourcePos, enclosing: Set<String>) throws -> JinjaNode {
        _ = advance()  // the tag name
        switch tag {
        case "for": return try parseFor(blockPos)
        case "if": return try parseIf(blockPos)
        case "set": return try parseSet(blockPos)
        case "macro": return try parseMacro(blockPos)
        case "filter": return try parseFilterBlock(blockPos)
        case "generation":
            try expectBlockEnd()
            openBlocks.append(("generation", blockPos))
            let body = try parseBody(until: ["endgeneration"])
            openBlocks.removeLast()
            _ = advance()
            try expectBlockEnd()
            return JinjaNode(kind: .scope(body), pos: blockPos)
        case "break", "continue":
            try expectBlockEnd()
            return JinjaNode(kind: tag == "break" ? .breakLoop : .continueLoop, pos: pos)
        default:
            if JinjaParser.endOnly.contains(tag) {
                var message = "Encountered unknown tag '\(tag)'."
                if let (block, _) = openBlocks.last {
                    message += " Jinja was looking for the following tags: "
                        + enclosing.sorted().map { "'\($0)'" }.joined(separator: " or ")
                        + ". The innermost block that needs to be closed is '\(block)'."
                } else {
                    message += " There is no open block that it could close."
                }
                throw error(message, at: pos)
            }
            throw error("Encountered unknown tag '\(tag)'.", at: pos)
        }
    }

    private mutating func parseFor(_ pos: SourcePos) throws -> JinjaNode {
        let target = try parseAssignTarget(allowNamespace: false, endNames: ["in"])
        guard isName("in") else { throw error("expected 'in', got \(current.kind.describe)") }
        _ = advance()
        let iterable = try parseTupleExpr(withCondExpr: false, endNames: ["recursive", "if"])
        var filter: JinjaExpr? = nil
        if isName("if") {
            _ = advance()
            filter = try parseExpression()
        }
        if isName("recursive") { throw error("recursive for loops are not supported") }
        try expectBlockEnd()
        openBlocks.append(("for", pos))
        let body = try parseBody(until: ["endfor", "else"])
        var elseBody: [JinjaNode] = []
        if isName("else") {
            _ = advance()
            try expectBlockEnd()
            elseBody = try parseBody(until: ["endfor"])
        }
        openBlocks.removeLast()
        _ = advance()
        try expectBlockEnd()
        return JinjaNode(kind: .forLoop(JinjaFor(target: target, iterable: iterable, filter: filter, body: body, elseBody: elseBody)), pos: pos)
    }

    private mutating func parseIf(_ pos: SourcePos) throws -> JinjaNode {
        var branches: [JinjaIfBranch] = []
        var elseBody: [JinjaNode] = []
        openBlocks.append(("if", pos))
        var test = try parseTupleExpr(withCondExpr: false, endNames: [])
        while true {
            try expectBlockEnd()
            let body = try parseBody(until: ["elif", "else", "endif"])
            branches.append(JinjaIfBranch(test: test, body: body))
            let tag = try expectName()
            if tag == "elif" {
                test = try parseTupleExpr(withCondExpr: false, endNames: [])
                continue
            }
            if tag == "else" {
                try expectBlockEnd()
                elseBody = try parseBody(until: ["endif"])
                _ = advance()
            }
            break
        }
        openBlocks.removeLast()
        try expectBlockEnd()
        return JinjaNode(kind: .ifBlock(branches, elseBody: elseBody), pos: pos)
    }

    private mutating func parseSet(_ pos: SourcePos) throws -> JinjaNode {
        let target = try parseAssignTarget(allowNamespace: true, endNames: [])
        if isOp("=") {
            _ = advance()
            let value = try parseTupleExpr(withCondExpr: true, endNames: [])
            try expectBlockEnd()
            return JinjaNode(kind: .set(target, value), pos: pos)
        }
        var filters: [JinjaExpr] = []
        while isOp("|") {
            _ = advance()
            filters.append(try parseFilterCall(input: nil))
        }
        try expectBlockEnd()
        openBlocks.append(("set", pos))
        let body = try parseBody(until: ["endset"])
        openBlocks.removeLast()
        _ = advance()
        try expectBlockEnd()
        return JinjaNode(kind: .setBlock(target, body: body, filters: filters), pos: pos)
    }

    private mutating func parseMacro(_ pos: SourcePos) throws -> JinjaNode {
        let name = try expectName()
        try expectOp("(")
        var params: [JinjaMacroParam] = []
        while !isOp(")") {
            if !params.isEmpty { try expectOp(",") }
            if isOp(")") { break }
            let pname = try expectName()
            var dflt: JinjaExpr? = nil
            if isOp("=") {
                _ = advance()
                dflt = try parseExpression()
            } else if params.last?.defaultValue != nil {
                throw error("non-default argument follows default argument")
            }
            params.append(JinjaMacroParam(name: pname, defaultValue: dflt))
        }
        _ = advance()
        try expectBlockEnd()
        openBlocks.append(("macro", pos))
        let body = try parseBody(until: ["endmacro"])
        openBlocks.removeLast()
        _ = advance()
        try expectBlockEnd()
        return JinjaNode(kind: .macro(JinjaMacro(name: name, params: params, body: body)), pos: pos)
    }

    private mutating func parseFilterBlock(_ pos: SourcePos) throws -> JinjaNode {
        var filters = [try parseFilterCall(input: nil)]
        while isOp("|") {
            _ = advance()
            filters.append(try parseFilterCall(input: nil))
        }
        try expectBlockEnd()
        openBlocks.append(("filter", pos))
        let body = try parseBody(until: ["endfilter"])
        openBlocks.removeLast()
        _ = advance()
        try expectBlockEnd()
        return JinjaNode(kind: .filterBlock(filters, body: body), pos: pos)
    }

    private mutating func parseAssignTarget(allowNamespace: Bool, endNames: Set<String>) throws -> JinjaAssignTarget {
        func one(_ p: inout JinjaParser) throws -> JinjaAssignTarget {
            if p.isOp("(") {
                _ = p.advance()
                let t = try p.parseAssignTarget(allowNamespace: false, endNames: [])
                try p.expectOp(")")
                return t
            }
            let pos = p.current.pos
            let name = try p.expectName()
            if allowNamespace && p.isOp(".") {
                _ = p.advance()
                let attr = try p.expectName()
                return .namespaceAttr(name, attr)
            }
            if ["true", "false", "none", "True", "False", "None"].contains(name) {
                throw p.error("can't assign to '\(name)'", at: pos)
            }
            return .name(name)
        }
        var targets = [try one(&self)]
        var isTuple = false
        while isOp(",") {
            isTuple = true
            _ = advance()
            if case .name(let n) = current.kind, endNames.contains(n) { break }
            if isOp("=") || isOp(")") { break }
            targets.append(try one(&self))
        }
        return isTuple ? .tuple(targets) : targets[0]
    }

    // MARK: expressions

    /// `parse_tuple`: one expression, or a tuple without parentheses (`{% set a, b = 1, 2 %}`).
    private mutating func parseTupleExpr(withCondExpr: Bool, endNames: Set<String>) throws -> JinjaExpr {
        let pos = current.pos
        let items = try parseTupleItems(withCondExpr: withCondExpr, endNames: endNames)
        if items.count == 1 && !lastTupleHadComma { return items[0] }
        return JinjaExpr(kind: .tuple(items), pos: pos)
    }

    private var lastTupleHadComma = false

    private mutating func parseTupleItems(withCondExpr: Bool, endNames: Set<String> = []) throws -> [JinjaExpr] {
        var items: [JinjaExpr] = []
        var sawComma = false
        while true {
            if !items.isEmpty {
                guard isOp(",") else { break }
                _ = advance()
                sawComma = true
            }
            if isTupleEnd(endNames) { break }
            items.append(withCondExpr ? try parseExpression() : try parseOr())
        }
        if items.isEmpty {
            throw error("Expected an expression, got \(current.kind.describe)")
        }
        lastTupleHadComma = sawComma
        return items
    }

    private func isTupleEnd(_ endNames: Set<String>) -> Bool {
        switch current.kind {
        case .variableEnd, .blockEnd, .eof: return true
        case .op(let o): return o == ")" || o == "]" || o == "}" || o == "="
        case .name(let n): return endNames.contains(n)
        default: return false
        }
    }

    mutating func parseExpression() throws -> JinjaExpr {
        var expr = try parseOr()
        while isName("if") {
            let pos = current.pos
            _ = advance()
            let test = try parseOr()
            var otherwise: JinjaExpr? = nil
            if isName("else") {
                _ = advance()
                otherwise = try parseExpression()
            }
            expr = JinjaExpr(kind: .conditional(test: test, then: expr, otherwise: otherwise), pos: pos)
        }
        return expr
    }

    private mutating func parseOr() throws -> JinjaExpr {
        var left = try parseAnd()
        while isName("or") {
            let pos = advance().pos
            left = JinjaExpr(kind: .or(left, try parseAnd()), pos: pos)
        }
        return left
    }

    private mutating func parseAnd() throws -> JinjaExpr {
        var left = try parseNot()
        while isName("and") {
            let pos = advance().pos
            left = JinjaExpr(kind: .and(left, try parseNot()), pos: pos)
        }
        return left
    }

    private mutating func parseNot() throws -> JinjaExpr {
        if isName("not") {
            let pos = advance().pos
            return JinjaExpr(kind: .not(try parseNot()), pos: pos)
        }
        return try parseCompare()
    }

    private mutating func parseCompare() throws -> JinjaExpr {
        let pos = current.pos
        let expr = try parseMath1()
        var ops: [JinjaCompareOperand] = []
        while true {
            if case .op(let o) = current.kind, let op = JinjaCompareOp(rawValue: o), op != .in, op != .notIn {
                _ = advance()
                ops.append(JinjaCompareOperand(op: op, expr: try parseMath1()))
            } else if isName("in") {
                _ = advance()
                ops.append(JinjaCompareOperand(op: .in, expr: try parseMath1()))
            } else if isName("not") && isName("in", peek()) {
                _ = advance(); _ = advance()
                ops.append(JinjaCompareOperand(op: .notIn, expr: try parseMath1()))
            } else {
                break
            }
        }
        return ops.isEmpty ? expr : JinjaExpr(kind: .compare(expr, ops), pos: pos)
    }

    private mutating func parseMath1() throws -> JinjaExpr {
        var left = try parseConcat()
        while isOp("+") || isOp("-") {
            let t = advance()
            let op: JinjaBinaryOp = isOp("+", t) ? .add : .sub
            left = JinjaExpr(kind: .binary(op, left, try parseConcat()), pos: t.pos)
        }
        return left
    }

    private mutating func parseConcat() throws -> JinjaExpr {
        var left = try parseMath2()
        while isOp("~") {
            let t = advance()
            left = JinjaExpr(kind: .binary(.concat, left, try parseMath2()), pos: t.pos)
        }
        return left
    }

    private mutating func parseMath2() throws -> JinjaExpr {
        var left = try parsePow()
        while true {
            guard case .op(let o) = current.kind, let op = ["*": JinjaBinaryOp.mul, "/": .div, "//": .floorDiv, "%": .mod][o] else { break }
            let t = advance()
            left = JinjaExpr(kind: .binary(op, left, try parsePow()), pos: t.pos)
        }
        return left
    }

    private mutating func parsePow() throws -> JinjaExpr {
        var left = try parseUnary(withFilter: true)
        while isOp("**") {
            let t = advance()
            left = JinjaExpr(kind: .binary(.pow, left, try parseUnary(withFilter: true)), pos: t.pos)
        }
        return left
    }

    private mutating func parseUnary(withFilter: Bool) throws -> JinjaExpr {
        var node: JinjaExpr
        if isOp("-") {
            let t = advance()
            node = JinjaExpr(kind: .neg(try parseUnary(withFilter: false)), pos: t.pos)
        } else if isOp("+") {
            let t = advance()
            node = JinjaExpr(kind: .pos(try parseUnary(withFilter: false)), pos: t.pos)
        } else {
            node = try parsePrimary()
        }
        node = try parsePostfix(node)
        if withFilter { node = try parseFilterExpr(node) }
        return node
    }

    private mutating func parsePrimary() throws -> JinjaExpr {
        let token = current
        switch token.kind {
        case .name(let n):
            _ = advance()
            switch n {
            case "true", "True": return JinjaExpr(kind: .constant(.bool(true)), pos: token.pos)
            case "false", "False": return JinjaExpr(kind: .constant(.bool(false)), pos: token.pos)
            case "none", "None": return JinjaExpr(kind: .constant(.none), pos: token.pos)
            default: return JinjaExpr(kind: .name(n), pos: token.pos)
            }
        case .string(var s):
            _ = advance()
            while case .string(let more) = current.kind { s += more; _ = advance() }
            return JinjaExpr(kind: .constant(.string(s)), pos: token.pos)
        case .integer(let i):
            _ = advance()
            return JinjaExpr(kind: .constant(.int(i)), pos: token.pos)
        case .float(let d):
            _ = advance()
            return JinjaExpr(kind: .constant(.double(d)), pos: token.pos)
        case .op("("):
            _ = advance()
            if isOp(")") {
                _ = advance()
                return JinjaExpr(kind: .tuple([]), pos: token.pos)
            }
            let items = try parseTupleItems(withCondExpr: true)
            let hadComma = lastTupleHadComma
            try expectOp(")")
            return (items.count == 1 && !hadComma) ? items[0] : JinjaExpr(kind: .tuple(items), pos: token.pos)
        case .op("["):
            _ = advance()
            var items: [JinjaExpr] = []
            while !isOp("]") {
                if !items.isEmpty { try expectOp(",") }
                if isOp("]") { break }
                items.append(try parseExpression())
            }
            _ = advance()
            return JinjaExpr(kind: .list(items), pos: token.pos)
        case .op("{"):
            _ = advance()
            var entries: [JinjaDictEntry] = []
            while !isOp("}") {
                if !entries.isEmpty { try expectOp(",") }
                if isOp("}") { break }
                let key = try parseExpression()
                try expectOp(":")
                entries.append(JinjaDictEntry(key: key, value: try parseExpression()))
            }
            _ = advance()
            return JinjaExpr(kind: .dict(entries), pos: token.pos)
        default:
            throw error("Expected an expression, got \(token.kind.describe)")
        }
    }

    private mutating func parsePostfix(_ start: JinjaExpr) throws -> JinjaExpr {
        var node = start
        while true {
            if isOp(".") || isOp("[") {
                node = try parseSubscript(node)
            } else if isOp("(") {
                node = JinjaExpr(kind: .call(node, try parseCallArgs()), pos: node.pos)
            } else {
                return node
            }
        }
    }

    private mutating func parseFilterExpr(_ start: JinjaExpr) throws -> JinjaExpr {
        var node = start
        while true {
            if isOp("|") {
                _ = advance()
                node = try parseFilterCall(input: node)
            } else if isName("is") {
                node = try parseTest(node)
            } else if isOp("(") {
                node = JinjaExpr(kind: .call(node, try parseCallArgs()), pos: node.pos)
            } else {
                return node
            }
        }
    }

    private mutating func parseSubscript(_ node: JinjaExpr) throws -> JinjaExpr {
        let token = advance()
        if isOp(".", token) {
            let attrToken = current
            switch attrToken.kind {
            case .name(let n):
                _ = advance()
                return JinjaExpr(kind: .getattr(node, n), pos: attrToken.pos)
            case .integer(let i):
                _ = advance()
                return JinjaExpr(kind: .getitem(node, JinjaExpr(kind: .constant(.int(i)), pos: attrToken.pos)), pos: attrToken.pos)
            default:
                throw error("expected name or number, got \(attrToken.kind.describe)")
            }
        }
        // `[`: an index, a slice, or several (a tuple key)
        var items: [JinjaExpr] = []
        while !isOp("]") {
            if !items.isEmpty { try expectOp(",") }
            items.append(try parseSubscribed())
        }
        _ = advance()
        guard !items.isEmpty else { throw error("expected subscript expression", at: token.pos) }
        if items.count == 1 {
            if case .slice(_, let a, let b, let c) = items[0].kind {
                return JinjaExpr(kind: .slice(node, start: a, stop: b, step: c), pos: token.pos)
            }
            return JinjaExpr(kind: .getitem(node, items[0]), pos: token.pos)
        }
        return JinjaExpr(kind: .getitem(node, JinjaExpr(kind: .tuple(items), pos: token.pos)), pos: token.pos)
    }

    /// One subscript item: an expression or a `start:stop:step` slice (encoded as `.slice` on a dummy node).
    private mutating func parseSubscribed() throws -> JinjaExpr {
        let pos = current.pos
        var parts: [JinjaExpr?] = []
        if isOp(":") {
            parts.append(nil)
        } else {
            let e = try parseExpression()
            if !isOp(":") { return e }
            parts.append(e)
        }
        _ = advance()  // ':'
        if isOp("]") || isOp(",") || isOp(":") { parts.append(nil) } else { parts.append(try parseExpression()) }
        if isOp(":") {
            _ = advance()
            if isOp("]") || isOp(",") { parts.append(nil) } else { parts.append(try parseExpression()) }
        } else {
            parts.append(nil)
        }
        let dummy = JinjaExpr(kind: .constant(.none), pos: pos)
        return JinjaExpr(kind: .slice(dummy, start: parts[0], stop: parts[1], step: parts[2]), pos: pos)
    }

    private mutating func parseCallArgs() throws -> JinjaCallArgs {
        try expectOp("(")
        var args = JinjaCallArgs()
        while !isOp(")") {
            if !args.positional.isEmpty || !args.keyword.isEmpty { try expectOp(",") }
            if isOp(")") { break }
            if isOp("*") || isOp("**") { throw error("*args and **kwargs in calls are not supported") }
            if case .name(let n) = current.kind, isOp("=", peek()) {
                _ = advance(); _ = advance()
                args.keyword.append(JinjaKeywordArg(name: n, value: try parseExpression()))
            } else {
                if !args.keyword.isEmpty { throw error("positional argument follows keyword argument") }
                args.positional.append(try parseExpression())
            }
        }
        _ = advance()
        return args
    }

    private mutating func parseFilterCall(input: JinjaExpr?) throws -> JinjaExpr {
        let pos = current.pos
        var name = try expectName()
        while isOp(".") {
            _ = advance()
            name += "." + (try expectName())
        }
        let args = isOp("(") ? try parseCallArgs() : JinjaCallArgs()
        return JinjaExpr(kind: .filter(input, name: name, args), pos: pos)
    }

    private mutating func parseTest(_ node: JinjaExpr) throws -> JinjaExpr {
        let isPos = advance().pos  // 'is'
        var negated = false
        if isName("not") {
            _ = advance()
            negated = true
        }
        let namePos = current.pos
        var name = try expectName()
        while isOp(".") {
            _ = advance()
            name += "." + (try expectName())
        }
        var args = JinjaCallArgs()
        if isOp("(") {
            args = try parseCallArgs()
        } else {
            var startsArg = false
            switch current.kind {
            case .name(let n): startsArg = !["else", "or", "and"].contains(n)
                if n == "is" { throw error("You cannot chain multiple tests with is") }
            case .string, .integer, .float: startsArg = true
            case .op(let o): startsArg = o == "(" || o == "[" || o == "{"
            default: startsArg = false
            }
            if startsArg {
                args.positional = [try parsePostfix(try parsePrimary())]
            }
        }
        let test = JinjaExpr(kind: .test(node, name: name, args), pos: namePos)
        return negated ? JinjaExpr(kind: .not(test), pos: isPos) : test
    }
}
