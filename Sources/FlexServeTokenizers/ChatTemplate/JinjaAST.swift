// Syntax tree of a parsed template. Everything here is a plain value (Sendable), so a parsed
// `ChatTemplate` can be shared between threads and rendered concurrently.

enum JinjaConst: Sendable {
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
}

enum JinjaBinaryOp: String, Sendable {
    case add = "+", sub = "-", mul = "*", div = "/", floorDiv = "//", mod = "%", pow = "**", concat = "~"
}

enum JinjaCompareOp: String, Sendable {
    case eq = "==", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">=", `in` = "in", notIn = "not in"
}

struct JinjaKeywordArg: Sendable {
    var name: String
    var value: JinjaExpr
}

struct JinjaCallArgs: Sendable {
    var positional: [JinjaExpr] = []
    var keyword: [JinjaKeywordArg] = []
}

struct JinjaDictEntry: Sendable {
    var key: JinjaExpr
    var value: JinjaExpr
}

struct JinjaCompareOperand: Sendable {
    var op: JinjaCompareOp
    var expr: JinjaExpr
}

struct JinjaExpr: Sendable {
    var kind: JinjaExprKind
    var pos: SourcePos
}

indirect enum JinjaExprKind: Sendable {
    case constant(JinjaConst)
    case name(String)
    case list([JinjaExpr])
    case tuple([JinjaExpr])
    case dict([JinjaDictEntry])
    case getattr(JinjaExpr, String)
    case getitem(JinjaExpr, JinjaExpr)
    case slice(JinjaExpr, start: JinjaExpr?, stop: JinjaExpr?, step: JinjaExpr?)
    case call(JinjaExpr, JinjaCallArgs)
    case filter(JinjaExpr?, name: String, JinjaCallArgs)   // nil input: inside {% filter %} blocks
    case test(JinjaExpr, name: String, JinjaCallArgs)
    case neg(JinjaExpr)
    case pos(JinjaExpr)
    case not(JinjaExpr)
    case and(JinjaExpr, JinjaExpr)
    case or(JinjaExpr, JinjaExpr)
    case binary(JinjaBinaryOp, JinjaExpr, JinjaExpr)
    case compare(JinjaExpr, [JinjaCompareOperand])
    case conditional(test: JinjaExpr, then: JinjaExpr, otherwise: JinjaExpr?)
}

enum JinjaAssignTarget: Sendable {
    case name(String)
    case tuple([JinjaAssignTarget])
    case namespaceAttr(String, String)
}

struct JinjaMacroParam: Sendable {
    var name: String
    var defaultValue: JinjaExpr?
}

struct JinjaFor: Sendable {
    var target: JinjaAssignTarget
    var iterable: JinjaExpr
    var filter: JinjaExpr?
    var body: [JinjaNode]
    var elseBody: [JinjaNode]
}

struct JinjaIfBranch: Sendable {
    var test: JinjaExpr
    var body: [JinjaNode]
}

struct JinjaMacro: Sendable {
    var name: String
    var params: [JinjaMacroParam]
    var body: [JinjaNode]
}

struct JinjaNode: Sendable {
    var kind: JinjaNodeKind
    var pos: SourcePos
}

indirect enum JinjaNodeKind: Sendable {
    case text(String)
    case output([JinjaExpr])
    case forLoop(JinjaFor)
    case ifBlock([JinjaIfBranch], elseBody: [JinjaNode])
    case set(JinjaAssignTarget, JinjaExpr)
    case setBlock(JinjaAssignTarget, body: [JinjaNode], filters: [JinjaExpr])
    case macro(JinjaMacro)
    case callBlock(JinjaExpr, body: [JinjaNode])
    case filterBlock([JinjaExpr], body: [JinjaNode])
    case scope([JinjaNode])   // {% generation %} and similar pass-through blocks
    case breakLoop
    case continueLoop
}

struct JinjaProgram: Sendable {
    var body: [JinjaNode]
}
