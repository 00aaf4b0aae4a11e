// Tree-walking evaluator with Jinja2's runtime semantics: scoping (a `set` inside a for-loop body
// stays in that iteration; `namespace()` carries state out), the `loop` object, macros, undefined
// values (print as "", fail on arithmetic/attribute access), and sandboxed attribute access.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

final class JinjaScope {
    var vars: [String: JinjaValue] = [:]
    let parent: JinjaScope?
    init(parent: JinjaScope?) { self.parent = parent }

    func lookup(_ name: String) -> JinjaValue? {
        var scope: JinjaScope? = self
        while let s = scope {
            if let v = s.vars[name] { return v }
            scope = s.parent
        }
        return nil
    }
}

private enum Flow { case normal, breakLoop, continueLoop }

final class JinjaInterpreter {
    let program: JinjaProgram
    private var depth = 0

    init(program: JinjaProgram) { self.program = program }

    func render(context: [String: JinjaValue]) throws -> String {
        let globals = JinjaScope(parent: nil)
        installGlobals(globals)
        let top = JinjaScope(parent: globals)
        top.vars = context
        var out = ""
        _ = try exec(program.body, top, &out)
        return out
    }

    // MARK: globals

    private func installGlobals(_ scope: JinjaScope) {
        scope.vars["range"] = .callable(JinjaCallable("range") { args, _ in
            let ints = try args.map { v -> Int in
                guard let i = v.integer else { throw JinjaRuntimeError("'\(v.typeName)' object cannot be interpreted as an integer") }
                return i
            }
            var start = 0, stop = 0, step = 1
            switch ints.count {
            case 1: stop = ints[0]
            case 2: start = ints[0]; stop = ints[1]
            case 3: start = ints[0]; stop = ints[1]; step = ints[2]
            default: throw JinjaRuntimeError("range expected 1 to 3 arguments, got \(ints.count)")
            }
            if step == 0 { throw JinjaRuntimeError("range() arg 3 must not be zero") }
            var result: [JinjaValue] = []
            var i = start
            while step > 0 ? i < stop : i > stop {
                result.append(.int(i))
                if result.count > 100_000 { throw JinjaRuntimeError("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).") }
                i += step
            }
            return .list(result)
        })
        scope.vars["namespace"] = .callable(JinjaCallable("namespace") { args, kwargs in
            var attrs = JinjaDict()
            for a in args {
                guard case .dict(let d) = a else { throw JinjaRuntimeError("namespace() positional argument must be a dict") }
                for (k, v) in d.entries { attrs[k] = v }
            }
            for (k, v) in kwargs { attrs[k] = v }
            return .namespace(JinjaNamespace(attrs))
        })
        scope.vars["dict"] = .callable(JinjaCallable("dict") { args, kwargs in
            var d = JinjaDict()
            for a in args {
                switch a {
                case .dict(let other): for (k, v) in other.entries { d[k] = v }
                case .list(let pairs), .tuple(let pairs):
                    for p in pairs {
                        guard case let .list(kv) = p, kv.count == 2 else {
                            if case let .tuple(kv) = p, kv.count == 2 { d[kv[0]] = kv[1]; continue }
                            throw JinjaRuntimeError("dictionary update sequence element has wrong length")
                        }
                        d[kv[0]] = kv[1]
                    }
                default: throw JinjaRuntimeError("'\(a.typeName)' object is not iterable")
                }
            }
            for (k, v) in kwargs { d[k] = v }
            return .dict(d)
        })
        scope.vars["raise_exception"] = .callable(JinjaCallable("raise_exception") { args, kwargs in
            let message = args.first ?? kwargs.first(where: { $0.0 == "message" })?.1 ?? .string("")
            throw ChatTemplateError(kind: .raised, message: message.str)
        })
        scope.vars["strftime_now"] = .callable(JinjaCallable("strftime_now") { args, _ in
            guard case .string(let format)? = args.first else { throw JinjaRuntimeError("strftime_now() takes a format string") }
            var now = time(nil)
            var parts = tm()
            localtime_r(&now, &parts)
            var buffer = [Int8](repeating: 0, count: 256)
            let n = strftime(&buffer, buffer.count, format, &parts)
            return .string(String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self))
        })
    }

    // MARK: statements

    private func exec(_ nodes: [JinjaNode], _ scope: JinjaScope, _ out: inout String) throws -> Flow {
        for node in nodes {
            let flow = try exec(node, scope, &out)
            if flow != .normal { return flow }
        }
        return .normal
    }

    private func exec(_ node: JinjaNode, _ scope: JinjaScope, _ out: inout String) throws -> Flow {
        switch node.kind {
        case .text(let s):
            out += s
        case .output(let exprs):
            if exprs.count == 1 {
                out += try eval(exprs[0], scope).str
            } else {
                out += JinjaValue.tuple(try exprs.map { try eval($0, scope) }).str
            }
        case .ifBlock(let branches, let elseBody):
            for branch in branches {
                if try eval(branch.test, scope).truthy { return try exec(branch.body, scope, &out) }
            }
            return try exec(elseBody, scope, &out)
        case .forLoop(let loop):
            try execFor(loop, node.pos, scope, &out)
        case .set(let target, let expr):
            let value = try eval(expr, scope)
            try assign(target, value, scope, node.pos)
        case .setBlock(let target, let body, let filters):
            var captured = ""
            _ = try exec(body, scope, &captured)
            var value = JinjaValue.string(captured)
            for f in filters { value = try applyFilterExpr(f, input: value, scope) }
            try assign(target, value, scope, node.pos)
        case .macro(let macro):
            scope.vars[macro.name] = makeMacro(macro, definedIn: scope)
        case .filterBlock(let filters, let body):
            var captured = ""
            _ = try exec(body, JinjaScope(parent: scope), &captured)
            var value = JinjaValue.string(captured)
            for f in filters { value = try applyFilterExpr(f, input: value, scope) }
            out += value.str
        case .scope(let body):
            return try exec(body, scope, &out)
        case .callBlock:
            throw ChatTemplateError(kind: .render, message: "{% call %} blocks are not supported", line: node.pos.line, column: node.pos.column)
        case .breakLoop:
            return .breakLoop
        case .continueLoop:
            return .continueLoop
        }
        return .normal
    }

    private func execFor(_ loop: JinjaFor, _ pos: SourcePos, _ scope: JinjaScope, _ out: inout String) throws {
        let iterable = try eval(loop.iterable, scope)
        var items = try wrap(loop.iterable.pos) { try JinjaBuiltins.iterate(iterable) }
        if let filter = loop.filter {
            items = try items.filter { item in
                let s = JinjaScope(parent: scope)
                try assign(loop.target, item, s, pos)
                return try eval(filter, s).truthy
            }
        }
        if items.isEmpty {
            _ = try exec(loop.elseBody, JinjaScope(parent: scope), &out)
            return
        }
        let length = items.count
        for (i, item) in items.enumerated() {
            let s = JinjaScope(parent: scope)
            try assign(loop.target, item, s, pos)
            var loopObj = JinjaDict()
            loopObj["index"] = .int(i + 1)
            loopObj["index0"] = .int(i)
            loopObj["revindex"] = .int(length - i)
            loopObj["revindex0"] = .int(length - i - 1)
            loopObj["first"] = .bool(i == 0)
            loopObj["last"] = .bool(i == length - 1)
            loopObj["length"] = .int(length)
            loopObj["depth"] = .int(1)
            loopObj["depth0"] = .int(0)
            loopObj["previtem"] = i > 0 ? items[i - 1] : .undefined(hint: "there is no previous item")
            loopObj["nextitem"] = i + 1 < length ? items[i + 1] : .undefined(hint: "there is no next item")
            loopObj["cycle"] = .callable(JinjaCallable("cycle") { args, _ in
                guard !args.isEmpty else { throw JinjaRuntimeError("no items for cycling given") }
                return args[i % args.count]
            })
            s.vars["loop"] = .dict(loopObj)
            let flow = try exec(loop.body, s, &out)
            if flow == .breakLoop { break }
        }
    }

    private func assign(_ target: JinjaAssignTarget, _ value: JinjaValue, _ scope: JinjaScope, _ pos: SourcePos) throws {
        switch target {
        case .name(let n):
            scope.vars[n] = value
        case .tuple(let targets):
            let items: [JinjaValue]
            switch value {
            case .list(let l), .tuple(let l): items = l
            default: items = try wrap(pos) { try JinjaBuiltins.iterate(value) }
            }
            guard items.count == targets.count else {
                throw ChatTemplateError(kind: .render, message: items.count > targets.count
                    ? "too many values to unpack (expected \(targets.count))"
                    : "not enough values to unpack (expected \(targets.count), got \(items.count))",
                    line: pos.line, column: pos.column)
            }
            for (t, v) in zip(targets, items) { try assign(t, v, scope, pos) }
        case .namespaceAttr(let name, let attr):
            guard case .namespace(let ns)? = scope.lookup(name) else {
                throw ChatTemplateError(kind: .render, message: "cannot assign attribute on non-namespace object", line: pos.line, column: pos.column)
            }
            if attr.hasPrefix("_") {
                throw ChatTemplateError(kind: .render, message: "Chat templates cannot store underscore-prefixed attributes on a namespace, but got '\(attr)'.", line: pos.line, column: pos.column)
            }
            ns.attributes[attr] = value
        }
    }

    private func makeMacro(_ macro: JinjaMacro, definedIn scope: JinjaScope) -> JinjaValue {
        .callable(JinjaCallable(macro.name) { [weak self, weak scope] args, kwargs in
            guard let self, let scope else { throw JinjaRuntimeError("macro '\(macro.name)' called after its template finished") }
            if args.count > macro.params.count {
                throw JinjaRuntimeError("macro '\(macro.name)' takes not more than \(macro.params.count) argument(s)")
            }
            let s = JinjaScope(parent: scope)
            var kw = kwargs
            for (i, param) in macro.params.enumerated() {
                if i < args.count {
                    s.vars[param.name] = args[i]
                } else if let k = kw.firstIndex(where: { $0.0 == param.name }) {
                    s.vars[param.name] = kw[k].1
                    kw.remove(at: k)
                } else if let d = param.defaultValue {
                    s.vars[param.name] = try self.eval(d, s)
                } else {
                    s.vars[param.name] = .undefined(hint: "parameter '\(param.name)' was not provided")
                }
            }
            if let extra = kw.first {
                throw JinjaRuntimeError("macro '\(macro.name)' takes no keyword argument '\(extra.0)'")
            }
            self.depth += 1
            defer { self.depth -= 1 }
            if self.depth > 200 { throw JinjaRuntimeError("maximum macro recursion depth exceeded") }
            var out = ""
            _ = try self.exec(macro.body, s, &out)
            return .string(out)
        })
    }

    // MARK: expressions

    /// Runs `body`, giving a builtin's `JinjaRuntimeError` the position of the expression.
    private func wrap<T>(_ pos: SourcePos, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let e as JinjaRuntimeError {
            throw ChatTemplateError(kind: .render, message: e.message, line: pos.line, column: pos.column)
        } catch var e as ChatTemplateError where e.line == nil {
            e.line = pos.line
            e.column = pos.column
            throw e
        }
    }

    func eval(_ expr: JinjaExpr, _ scope: JinjaScope) throws -> JinjaValue {
        switch expr.kind {
        case .constant(let c):
            switch c {
            case .none: return .none
            case .bool(let b): return .bool(b)
            case .int(let i): return .int(i)
            case .double(let d): return .double(d)
            case .string(let s): return .string(s)
            }
        case .name(let n):
            return scope.lookup(n) ?? .undefinedName(n)
        case .list(let items):
            return .list(try items.map { try eval($0, scope) })
        case .tuple(let items):
            return .tuple(try items.map { try eval($0, scope) })
        case .dict(let entries):
            var d = JinjaDict()
            for e in entries { d[try eval(e.key, scope)] = try eval(e.value, scope) }
            return .dict(d)
        case .getattr(let obj, let attr):
            let o = try eval(obj, scope)
            return try wrap(expr.pos) { try JinjaBuiltins.getattr(o, attr) }
        case .getitem(let obj, let key):
            let o = try eval(obj, scope)
            let k = try eval(key, scope)
            return try wrap(expr.pos) { try JinjaBuiltins.getitem(o, k) }
        case .slice(let obj, let start, let stop, let step):
            let o = try eval(obj, scope)
            let a = try start.map { try eval($0, scope) }
            let b = try stop.map { try eval($0, scope) }
            let c = try step.map { try eval($0, scope) }
            return try wrap(expr.pos) { try JinjaBuiltins.slice(o, a, b, c) }
        case .call(let callee, let argExprs):
            let callable = try eval(callee, scope)
            let args = try argExprs.positional.map { try eval($0, scope) }
            let kwargs = try argExprs.keyword.map { ($0.name, try eval($0.value, scope)) }
            guard case .callable(let fn) = callable else {
                if case .undefined(let hint) = callable {
                    throw ChatTemplateError(kind: .render, message: hint, line: expr.pos.line, column: expr.pos.column)
                }
                throw ChatTemplateError(kind: .render, message: "'\(callable.typeName)' object is not callable", line: expr.pos.line, column: expr.pos.column)
            }
            return try wrap(expr.pos) { try fn.body(args, kwargs) }
        case .filter:
            return try applyFilterExpr(expr, input: nil, scope)
        case .test(let subject, let name, let argExprs):
            let value = try eval(subject, scope)
            let args = try argExprs.positional.map { try eval($0, scope) }
            return .bool(try wrap(expr.pos) { try JinjaBuiltins.test(name, value, args) })
        case .neg(let e):
            let v = try eval(e, scope)
            return try wrap(expr.pos) {
                switch v {
                case .int(let i): return .int(-i)
                case .bool(let b): return .int(b ? -1 : 0)
                case .double(let d): return .double(-d)
                case .undefined(let hint): throw JinjaRuntimeError(hint)
                default: throw JinjaRuntimeError("bad operand type for unary -: '\(v.typeName)'")
                }
            }
        case .pos(let e):
            let v = try eval(e, scope)
            return try wrap(expr.pos) {
                switch v {
                case .int, .double: return v
                case .bool(let b): return .int(b ? 1 : 0)
                case .undefined(let hint): throw JinjaRuntimeError(hint)
                default: throw JinjaRuntimeError("bad operand type for unary +: '\(v.typeName)'")
                }
            }
        case .not(let e):
            return .bool(!(try eval(e, scope).truthy))
        case .and(let l, let r):
            let lv = try eval(l, scope)
            return lv.truthy ? try eval(r, scope) : lv
        case .or(let l, let r):
            let lv = try eval(l, scope)
            return lv.truthy ? lv : try eval(r, scope)
        case .binary(let op, let l, let r):
            let lv = try eval(l, scope)
            let rv = try eval(r, scope)
            return try wrap(expr.pos) { try JinjaBuiltins.binary(op, lv, rv) }
        case .compare(let first, let operands):
            var left = try eval(first, scope)
            for operand in operands {
                let right = try eval(operand.expr, scope)
                let ok = try wrap(operand.expr.pos) { try JinjaBuiltins.compare(operand.op, left, right) }
                if !ok { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .conditional(let test, let then, let otherwise):
            if try eval(test, scope).truthy { return try eval(then, scope) }
            if let otherwise { return try eval(otherwise, scope) }
            return .undefined(hint: "the inline if-expression on line \(expr.pos.line) evaluated to false and no else section was defined.")
        }
    }

    /// Evaluates a `.filter` expression; `input` replaces the expression's own input (filter blocks, set blocks).
    private func applyFilterExpr(_ expr: JinjaExpr, input: JinjaValue?, _ scope: JinjaScope) throws -> JinjaValue {
        guard case .filter(let inputExpr, let name, let argExprs) = expr.kind else { return try eval(expr, scope) }
        let value: JinjaValue
        if let input { value = input } else if let inputExpr { value = try eval(inputExpr, scope) } else { value = .none }
        let args = try argExprs.positional.map { try eval($0, scope) }
        let kwargs = try argExprs.keyword.map { ($0.name, try eval($0.value, scope)) }
        return try wrap(expr.pos) { try JinjaBuiltins.filter(name, value, args, kwargs) }
    }
}
