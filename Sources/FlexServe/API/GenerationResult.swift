/// Why a request stopped.
public enum FinishReason: String, Sendable, Codable {
    /// An end-of-sequence token or a stop string.
    case stop
    /// max_new_tokens, max_length or the context limit.
    case length
    case cancelled
}

/// Speculation counters of one request (or of a whole run, summed).
public struct SpeculationStats: Sendable, Codable, Equatable {
    /// LLM verification steps that had a draft tree.
    public var verifySteps = 0
    /// Tokens emitted by those steps (accepted draft tokens plus the LLM's own token each step).
    public var emittedTokens = 0
    /// Draft tree nodes the LLM verified.
    public var draftedNodes = 0
    /// For depth d (0-based): how many steps accepted at least d+1 draft tokens.
    public var acceptedAtDepth: [Int] = []
    public var draftingSeconds: Double = 0
    public var verifyingSeconds: Double = 0

    public init() {}

    public var tokensPerStep: Double { verifySteps == 0 ? 0 : Double(emittedTokens) / Double(verifySteps) }

    /// Fraction of steps that accepted at least d+1 draft tokens, per depth.
    public var acceptanceRateByDepth: [Double] {
        acceptedAtDepth.map { verifySteps == 0 ? 0 : Double($0) / Double(verifySteps) }
    }

    mutating func record(accepted: Int, drafted: Int) {
        verifySteps += 1
        emittedTokens += accepted + 1
        draftedNodes += drafted
        if acceptedAtDepth.count < accepted { acceptedAtDepth += Array(repeating: 0, count: accepted - acceptedAtDepth.count) }
        for d in 0..<accepted { acceptedAtDepth[d] += 1 }
    }

    public mutating func add(_ other: SpeculationStats) {
        verifySteps += other.verifySteps
        emittedTokens += other.emittedTokens
        draftedNodes += other.draftedNodes
        if acceptedAtDepth.count < other.acceptedAtDepth.count {
            acceptedAtDepth += Array(repeating: 0, count: other.acceptedAtDepth.count - acceptedAtDepth.count)
        }
        for (d, n) in other.acceptedAtDepth.enumerated() { acceptedAtDepth[d] += n }
        draftingSeconds += other.draftingSeconds
        verifyingSeconds += other.verifyingSeconds
    }
}

/// What `generate` returns, as `flexflow.serve`'s GenerationResult plus timings.
public struct GenerationResult: Sendable {
    /// FlexFlow's request guid.
    public var guid: Int
    public var inputText: String
    public var promptTokens: [Int]
    public var outputText: String
    /// Generated token ids (an end-of-sequence token that stopped generation included).
    public var outputTokens: [Int]
    public var finishReason: FinishReason
    /// LLM forward passes this request took part in after its prompt (FlexFlow's llm_decoding_steps).
    public var llmDecodingSteps: Int
    /// From submission to the last token.
    public var latencySeconds: Double
    /// From submission to the first generated token.
    public var timeToFirstTokenSeconds: Double
    public var speculation: SpeculationStats
    /// Prompt tokens whose keys and values came from the prefix cache, not computed (OpenAI's `cached_tokens`).
    public var cachedPromptTokens = 0

    public var tokensPerSecond: Double {
        latencySeconds > 0 ? Double(outputTokens.count) / latencySeconds : 0
    }
}

/// A piece of streamed output: the text it completes and the token ids behind it.
public struct GenerationPiece: Sendable {
    public var text: String
    public var tokens: [Int]
    /// Set on the last piece.
    public var finishReason: FinishReason?
}
