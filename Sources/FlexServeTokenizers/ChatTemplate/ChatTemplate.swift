// Public API of FlexServe's chat-template engine: a Jinja2-subset interpreter that renders
// HuggingFace chat templates the way transformers does (jinja2 ImmutableSandboxedEnvironment
// with trim_blocks=True and lstrip_blocks=True, `raise_exception`, a json.dumps-like `tojson`).

/// One message of a conversation, as passed to a chat template (`message['role']`, `message.content`).
public struct ChatMessage: Sendable, Equatable, Codable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// An error from parsing or rendering a chat template.
///
/// `kind` tells a syntax error (found by `ChatTemplate.init`), a render-time error (a type error,
/// an undefined value used where it cannot be) and a template's own `raise_exception(msg)` apart.
/// `line`/`column` are 1-based positions in the template source, where known.
public struct ChatTemplateError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        /// The template text is malformed (unclosed tag, unknown filter or tag, bad expression).
        case syntax
        /// Rendering failed (type error, undefined value, unsupported operation).
        case render
        /// The template called `raise_exception(message)`.
        case raised
    }

    public var kind: Kind
    /// The problem, without position (for `.raised`: exactly the template's message).
    public var message: String
    public var line: Int?
    public var column: Int?

    public init(kind: Kind, message: String, line: Int? = nil, column: Int? = nil) {
        self.kind = kind
        self.message = message
        self.line = line
        self.column = column
    }

    public var description: String {
        var s: String
        switch kind {
        case .syntax: s = "chat template syntax error"
        case .render: s = "chat template render error"
        case .raised: s = "chat template raised an exception"
        }
        if let line {
            s += " at line \(line)"
            if let column { s += ", column \(column)" }
        }
        return s + ": " + message
    }
}

/// A parsed chat template. Parse once, render many times; the value is immutable and thread-safe.
public struct ChatTemplate: Sendable {
    /// The template text as given.
    public let source: String
    let program: JinjaProgram

    /// Parses `source`; throws `ChatTemplateError` (kind `.syntax`) with the line/column and what was expected.
    public init(_ source: String) throws {
        self.source = source
        let tokens = try JinjaLexer(source).tokenize()
        var parser = JinjaParser(tokens)
        self.program = try parser.parseTemplate()
    }

    /// Renders the conversation. The context holds `messages` (a list of `{role, content}` dicts),
    /// `add_generation_prompt`, `bos_token`, `eos_token`, `tools = none`, `documents = none`, the
    /// globals `raise_exception`, `namespace`, `range`, `dict`, and every `extraContext` entry as a string.
    public func render(messages: [ChatMessage], addGenerationPrompt: Bool, bosToken: String, eosToken: String,
                       extraContext: [String: String] = [:]) throws -> String {
        var context: [String: JinjaValue] = [:]
        for (key, value) in extraContext { context[key] = .string(value) }
        context["messages"] = .list(messages.map { message in
            .dict(JinjaDict([(.string("role"), .string(message.role)), (.string("content"), .string(message.content))]))
        })
        context["tools"] = JinjaValue.none
        context["documents"] = JinjaValue.none
        context["add_generation_prompt"] = .bool(addGenerationPrompt)
        context["bos_token"] = .string(bosToken)
        context["eos_token"] = .string(eosToken)
        return try render(context: context)
    }

    /// Renders with an arbitrary context of Jinja values (used by tests and by callers that pass tools).
    func render(context: [String: JinjaValue]) throws -> String {
        try JinjaInterpreter(program: program).render(context: context)
    }
}
