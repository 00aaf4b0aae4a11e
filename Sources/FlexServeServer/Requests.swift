import FlexServe
import FlexServeTokenizers
import Foundation

/// Reads typed fields of a JSON request object, naming the parameter of every mistake.
struct Fields {
    let object: [String: JSON]

    init(_ json: JSON) throws {
        guard case .object(let o) = json else {
            throw APIError.badRequest("The request body must be a JSON object, got \(json.typeName).", code: "invalid_type")
        }
        object = o
    }

    /// The value, with JSON null read as absent.
    func value(_ key: String) -> JSON? {
        guard let v = object[key], !v.isNull else { return nil }
        return v
    }

    func string(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard case .string(let s) = v else { throw APIError.wrongType(key, expected: "a string", got: v) }
        return s
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = value(key) else { return nil }
        guard case .bool(let b) = v else { throw APIError.wrongType(key, expected: "a boolean", got: v) }
        return b
    }

    func int(_ key: String) throws -> Int64? {
        guard let v = value(key) else { return nil }
        switch v {
        case .int(let i): return i
        case .double(let d) where d.rounded() == d && abs(d) < 9e18: return Int64(d)
        default: throw APIError.wrongType(key, expected: "an integer", got: v)
        }
    }

    func number(_ key: String) throws -> Double? {
        guard let v = value(key) else { return nil }
        switch v {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: throw APIError.wrongType(key, expected: "a number", got: v)
        }
    }

    func object(_ key: String) throws -> Fields? {
        guard let v = value(key) else { return nil }
        guard case .object = v else { throw APIError.wrongType(key, expected: "an object", got: v) }
        return try Fields(v)
    }
}

/// The settings shared by `/v1/completions` and `/v1/chat/completions`, checked.
struct SamplingRequest: Sendable {
    var model: String?
    var maxTokens: Int?
    var maxTokensParam = "max_tokens"
    var temperature: Double = 1
    var topP: Double = 1
    var topK = 0
    var seed: UInt64?
    var stop: [String] = []
    var stream = false
    var includeUsage = false
    /// vLLM's extension: keep generating past end-of-sequence tokens (benchmarks use it).
    var ignoreEOS = false

    static let maxStopStrings = 4

    init(_ f: Fields, maxTokensKeys: [String]) throws {
        model = try f.string("model")
        for key in maxTokensKeys {
            if let n = try f.int(key) {
                guard n >= 1 else {
                    throw APIError.badRequest("'\(key)' must be at least 1, got \(n).", param: key, code: "invalid_value")
                }
                maxTokens = Int(clamping: n)
                maxTokensParam = key
                break
            }
        }
        if let t = try f.number("temperature") {
            guard t >= 0, t <= 2 else {
                throw APIError.badRequest("'temperature' must be between 0 and 2, got \(t).", param: "temperature", code: "invalid_value")
            }
            temperature = t
        }
        if let p = try f.number("top_p") {
            guard p >= 0, p <= 1 else {
                throw APIError.badRequest("'top_p' must be between 0 and 1, got \(p).", param: "top_p", code: "invalid_value")
            }
            topP = p
        }
        if let k = try f.int("top_k") {
            // -1 is vLLM's spelling of "no top-k cut".
            guard k >= -1 else {
                throw APIError.badRequest("'top_k' must be >= 0 (or -1 for none), got \(k).", param: "top_k", code: "invalid_value")
            }
            topK = k <= 0 ? 0 : Int(clamping: k)
        }
        if let s = try f.int("seed") { seed = UInt64(bitPattern: s) }
        if let v = f.value("stop") {
            switch v {
            case .string(let s): stop = [s]
            case .array(let items):
                stop = try items.map { item in
                    guard case .string(let s) = item else {
                        throw APIError.wrongType("stop", expected: "a string or an array of strings", got: item)
                    }
                    return s
                }
            default: throw APIError.wrongType("stop", expected: "a string or an array of strings", got: v)
            }
            guard stop.count <= Self.maxStopStrings else {
                throw APIError.badRequest("'stop' may hold at most \(Self.maxStopStrings) strings, got \(stop.count).", param: "stop", code: "invalid_value")
            }
            if stop.contains(where: \.isEmpty) {
                throw APIError.badRequest("'stop' strings must not be empty.", param: "stop", code: "invalid_value")
            }
        }
        if let n = try f.int("n"), n != 1 {
            throw APIError.badRequest("Only n=1 is supported, got n=\(n).", param: "n", code: "unsupported_value")
        }
        if let b = try f.int("best_of"), b != 1 {
            throw APIError.badRequest("Only best_of=1 is supported, got \(b).", param: "best_of", code: "unsupported_value")
        }
        for key in ["presence_penalty", "frequency_penalty"] {
            if let x = try f.number(key), x != 0 {
                throw APIError.badRequest("'\(key)' is not supported (only 0).", param: key, code: "unsupported_value")
            }
        }
        if let v = f.value("logprobs") {
            switch v {
            case .bool(false): break
            default: throw APIError.badRequest("'logprobs' is not supported.", param: "logprobs", code: "unsupported_value")
            }
        }
        if let v = f.value("logit_bias") {
            guard case .object(let o) = v else { throw APIError.wrongType("logit_bias", expected: "an object", got: v) }
            if !o.isEmpty { throw APIError.badRequest("'logit_bias' is not supported.", param: "logit_bias", code: "unsupported_value") }
        }
        ignoreEOS = try f.bool("ignore_eos") ?? false
        stream = try f.bool("stream") ?? false
        if let options = try f.object("stream_options") {
            includeUsage = try options.bool("include_usage") ?? false
        }
    }

    /// Greedy when temperature or top_p is 0, sampling otherwise (OpenAI's default temperature is 1).
    func generationConfig(maxNewTokens: Int) -> GenerationConfig {
        let greedy = temperature == 0 || topP == 0
        return GenerationConfig(doSample: !greedy, temperature: Float(max(temperature, 1e-6)), topP: Float(greedy ? 1 : topP),
                                topK: topK, maxNewTokens: maxNewTokens, stop: stop, seed: seed, stopAtEOS: !ignoreEOS)
    }
}

/// A chat message from the request: role and text content.
func parseMessages(_ f: Fields) throws -> [ChatMessage] {
    guard let v = f.value("messages") else {
        throw APIError.badRequest("Missing required parameter: 'messages'.", param: "messages", code: "missing_required_parameter")
    }
    guard case .array(let items) = v else { throw APIError.wrongType("messages", expected: "an array", got: v) }
    guard !items.isEmpty else {
        throw APIError.badRequest("'messages' must hold at least one message.", param: "messages", code: "invalid_value")
    }
    return try items.enumerated().map { i, item in
        let param = "messages[\(i)]"
        guard case .object(let o) = item else { throw APIError.wrongType(param, expected: "an object", got: item) }
        guard let roleValue = o["role"] else {
            throw APIError.badRequest("Missing required parameter: '\(param).role'.", param: "\(param).role", code: "missing_required_parameter")
        }
        guard case .string(let role) = roleValue else { throw APIError.wrongType("\(param).role", expected: "a string", got: roleValue) }
        guard ["system", "developer", "user", "assistant", "tool"].contains(role) else {
            throw APIError.badRequest("Invalid value for '\(param).role': '\(role)'. Supported values are: 'system', 'developer', 'user', 'assistant' and 'tool'.",
                                      param: "\(param).role", code: "invalid_value")
        }
        let content: String
        switch o["content"] ?? .null {
        case .null: content = ""
        case .string(let s): content = s
        case .array(let parts):
            content = try parts.enumerated().map { j, part -> String in
                let pp = "\(param).content[\(j)]"
                guard case .object(let po) = part, case .string(let type)? = po["type"] else {
                    throw APIError.badRequest("'\(pp)' must be an object with a 'type'.", param: pp, code: "invalid_type")
                }
                guard type == "text", case .string(let text)? = po["text"] else {
                    throw APIError.badRequest("Content parts of type '\(type)' are not supported; only 'text' with a string 'text'.", param: pp, code: "unsupported_value")
                }
                return text
            }.joined()
        case let other: throw APIError.wrongType("\(param).content", expected: "a string or an array of content parts", got: other)
        }
        return ChatMessage(role: role == "developer" ? "system" : role, content: content)
    }
}

/// The prompt of a completion request: text, or token ids.
enum PromptInput {
    case text(String)
    case tokens([Int])
}

func parsePrompt(_ f: Fields) throws -> PromptInput {
    guard let v = f.value("prompt") else {
        throw APIError.badRequest("Missing required parameter: 'prompt'.", param: "prompt", code: "missing_required_parameter")
    }
    let expected = "a string, an array of one string, or an array of token ids"
    switch v {
    case .string(let s): return .text(s)
    case .array(let items):
        if items.count == 1, case .string(let s) = items[0] { return .text(s) }
        if items.count > 1, items.allSatisfy({ if case .string = $0 { return true }; return false }) {
            throw APIError.badRequest("Only one prompt per request is supported, got \(items.count).", param: "prompt", code: "unsupported_value")
        }
        if items.count == 1, case .array = items[0] {
            guard case .array(let inner) = items[0] else { break }
            return try tokenList(inner)
        }
        return try tokenList(items)
    default: break
    }
    throw APIError.wrongType("prompt", expected: expected, got: v)
}

private func tokenList(_ items: [JSON]) throws -> PromptInput {
    guard !items.isEmpty else { throw APIError.badRequest("'prompt' is empty.", param: "prompt", code: "invalid_value") }
    return .tokens(try items.map { item in
        guard case .int(let i) = item else {
            throw APIError.wrongType("prompt", expected: "a string, an array of one string, or an array of token ids", got: item)
        }
        return Int(clamping: i)
    })
}

/// Request checks as the endpoints run them, for tests and other front ends.
public enum OpenAIRequest {
    /// The generation settings of a completion or chat request body (`max_tokens` capped by nothing here).
    public static func generationConfig(_ body: JSON, defaultMaxTokens: Int = 16) throws -> GenerationConfig {
        let s = try SamplingRequest(Fields(body), maxTokensKeys: ["max_completion_tokens", "max_tokens"])
        return s.generationConfig(maxNewTokens: s.maxTokens ?? defaultMaxTokens)
    }

    /// Whether the body asks for a server-sent event stream.
    public static func isStreaming(_ body: JSON) throws -> Bool {
        try SamplingRequest(Fields(body), maxTokensKeys: ["max_tokens"]).stream
    }

    /// The chat messages of a chat request body.
    public static func messages(_ body: JSON) throws -> [ChatMessage] {
        try parseMessages(Fields(body))
    }

    /// The prompt of a completion request body: its text, or nil and the token ids.
    public static func prompt(_ body: JSON) throws -> (text: String?, tokens: [Int]?) {
        switch try parsePrompt(Fields(body)) {
        case .text(let t): return (t, nil)
        case .tokens(let ids): return (nil, ids)
        }
    }
}
