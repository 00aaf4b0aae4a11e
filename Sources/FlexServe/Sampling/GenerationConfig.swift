/// How tokens are chosen, mirroring `flexflow.serve.GenerationConfig`, plus the per-request
/// settings FlexFlow users asked for (max tokens, stop strings, seed).
public struct GenerationConfig: Sendable, Equatable, Codable {
    public var doSample: Bool
    public var temperature: Float
    public var topP: Float
    /// 0 means no top-k cut.
    public var topK: Int
    /// New tokens to generate at most; nil leaves the limit to `maxLength` or the model's context.
    public var maxNewTokens: Int?
    /// Prompt plus generated tokens at most (FlexFlow's `max_length`).
    public var maxLength: Int?
    public var stop: [String]
    public var seed: UInt64?
    /// Stop at the tokenizer's end-of-sequence tokens.
    public var stopAtEOS: Bool

    public init(doSample: Bool = false, temperature: Float = 0.9, topP: Float = 0.8, topK: Int = 0,
                maxNewTokens: Int? = nil, maxLength: Int? = nil, stop: [String] = [], seed: UInt64? = nil,
                stopAtEOS: Bool = true) {
        self.doSample = doSample
        self.temperature = temperature
        self.topP = topP
        self.topK = topK
        self.maxNewTokens = maxNewTokens
        self.maxLength = maxLength
        self.stop = stop
        self.seed = seed
        self.stopAtEOS = stopAtEOS
    }

    public static let greedy = GenerationConfig()

    /// Checks the settings, naming the first that is impossible.
    public func validate() throws {
        if doSample {
            guard temperature.isFinite, temperature > 0 else { throw GenerationError.invalidSetting("temperature must be > 0, is \(temperature)") }
            guard topP.isFinite, topP > 0, topP <= 1 else { throw GenerationError.invalidSetting("top_p must be in (0, 1], is \(topP)") }
        }
        guard topK >= 0 else { throw GenerationError.invalidSetting("top_k must be >= 0, is \(topK)") }
        if let n = maxNewTokens, n < 0 { throw GenerationError.invalidSetting("max_new_tokens must be >= 0, is \(n)") }
        if let n = maxLength, n <= 0 { throw GenerationError.invalidSetting("max_length must be > 0, is \(n)") }
    }
}

public enum GenerationError: Error, CustomStringConvertible, Sendable, Equatable {
    case invalidSetting(String)
    case promptTooLong(tokens: Int, limit: Int)
    case emptyPrompt
    case notCompiled
    case cancelled
    case engineFailure(String)

    public var description: String {
        switch self {
        case .invalidSetting(let s): return "invalid setting: \(s)"
        case let .promptTooLong(tokens, limit): return "prompt has \(tokens) tokens, more than the \(limit) allowed by maxSeqLength"
        case .emptyPrompt: return "prompt is empty (no tokens)"
        case .notCompiled: return "call compile() before generating"
        case .cancelled: return "request cancelled"
        case .engineFailure(let s): return "engine failure: \(s)"
        }
    }
}
