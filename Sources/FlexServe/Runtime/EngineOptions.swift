import FlexServeTensor

/// Limits and shapes fixed when a model is compiled for serving (FlexFlow's `compile` arguments).
public struct EngineOptions: Sendable, Equatable {
    public var maxRequestsPerBatch: Int
    public var maxSeqLength: Int
    public var maxTokensPerBatch: Int
    /// KV-cache capacity in tokens; nil sizes it for `maxRequestsPerBatch` full-length sequences.
    public var kvCacheTokens: Int?
    public var kvBlockSize: Int
    /// How the KV cache holds keys and values (the LLM's and the SSMs'): fp16 halves what attention reads.
    public var kvCacheType: KVCacheType
    public var tree: TreeShape
    /// Whether requests that start with the same tokens share those tokens' KV blocks (vLLM's automatic prefix
    /// caching): a repeated system prompt or the history of a conversation is not computed again.
    public var prefixCaching: Bool
    /// Only tests change this: it lets them show that the naive rule is measurably lossy.
    var stochasticRule: TreeVerifier.StochasticRule = .specInfer

    public init(maxRequestsPerBatch: Int = 16, maxSeqLength: Int = 1024, maxTokensPerBatch: Int = 256,
                kvCacheTokens: Int? = nil, kvBlockSize: Int = 16, kvCacheType: KVCacheType = .f32, tree: TreeShape = TreeShape(),
                prefixCaching: Bool = true) {
        self.maxRequestsPerBatch = maxRequestsPerBatch
        self.maxSeqLength = maxSeqLength
        self.maxTokensPerBatch = maxTokensPerBatch
        self.kvCacheTokens = kvCacheTokens
        self.kvBlockSize = kvBlockSize
        self.kvCacheType = kvCacheType
        self.tree = tree
        self.prefixCaching = prefixCaching
    }

    public func validate() throws {
        guard maxRequestsPerBatch >= 1 else { throw GenerationError.invalidSetting("maxRequestsPerBatch must be >= 1") }
        guard maxSeqLength >= 2 else { throw GenerationError.invalidSetting("maxSeqLength must be >= 2") }
        guard maxTokensPerBatch >= 1 else { throw GenerationError.invalidSetting("maxTokensPerBatch must be >= 1") }
        guard kvBlockSize >= 1 else { throw GenerationError.invalidSetting("kvBlockSize must be >= 1") }
        if let n = kvCacheTokens, n < kvBlockSize { throw GenerationError.invalidSetting("kvCacheTokens must hold at least one block") }
        try tree.validate()
    }
}
