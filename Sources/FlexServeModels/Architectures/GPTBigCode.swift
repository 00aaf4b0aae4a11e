import FlexServeTensor

/// GPTBigCode (SantaCoder / StarCoder, Allal et al. 2023; Li et al. 2023): GPT-2 with multi-query attention.
/// Learned absolute positions are added to the token embeddings; each pre-LayerNorm block runs attention
/// through one fused `c_attn` projection (the query heads, then the single shared key and value head; without
/// `multi_query`, per head its query, key and value) and a GELU (tanh) MLP, each added to the residual.
/// The vocabulary head is tied to the token embeddings.
public final class GPTBigCodeModel: CausalLM, ModelMatrices, TokenSharing, @unchecked Sendable {
    public let config: ModelConfig
    let tokenEmbedding, positionEmbedding: Embedding
    let activation: FeedForwardActivation
    let scale: Float
    let layers: [Layer]
    let finalNorm: LayerNormWeights
    let lmHead: TensorView
    var tokenShares: TokenShares
    public var projectionMatrices: [TensorView] { layers.flatMap(\.matrices) }
    public var vocabularyHead: TensorView { lmHead }

    struct Layer {
        let attentionNorm: LayerNormWeights
        let qkv, projection: Dense
        let mlpNorm: LayerNormWeights
        let fc, mlpProjection: Dense
        var matrices: [TensorView] { [qkv, projection, fc, mlpProjection].map(\.weight) }
    }

    public init(config: ModelConfig, weights: WeightStore) throws {
        var c = config
        let raw = config.raw
        let t = CheckpointTensors(weights)
        c.numKVHeads = raw["multi_query"]?.bool ?? true ? 1 : c.numHeads
        c.headDim = c.hiddenSize / c.numHeads
        c.intermediateSize = raw["n_inner"]?.int ?? 4 * c.hiddenSize
        c.maxPositionEmbeddings = raw["n_positions"]?.int ?? c.maxPositionEmbeddings
        c.tieWordEmbeddings = raw["tie_word_embeddings"]?.bool ?? true
        self.config = c
        let H = c.hiddenSize, eps = Float(raw["layer_norm_epsilon"]?.double ?? 1e-5)
        activation = try FeedForwardActivation(raw["activation_function"]?.string ?? "gelu_pytorch_tanh", source: weights.source)
        scale = raw["scale_attn_weights"]?.bool ?? true ? 1 / Float(c.headDim).squareRoot() : 1
        tokenEmbedding = Embedding(try t.matrix("transformer.wte.weight", c.vocabSize, H))
        positionEmbedding = Embedding(try t.matrix("transformer.wpe.weight", c.maxPositionEmbeddings, H))
        let qkvRows = H + 2 * c.numKVHeads * c.headDim
        layers = try (0..<c.numLayers).map { l in
            let p = "transformer.h.\(l)."
            return Layer(attentionNorm: try t.layerNorm(p + "ln_1", H, eps: eps),
                         qkv: try t.dense(p + "attn.c_attn", qkvRows, H), projection: try t.dense(p + "attn.c_proj", H, H),
                         mlpNorm: try t.layerNorm(p + "ln_2", H, eps: eps),
                         fc: try t.dense(p + "mlp.c_fc", c.intermediateSize, H),
                         mlpProjection: try t.dense(p + "mlp.c_proj", H, c.intermediateSize))
        }
        finalNorm = try t.layerNorm("transformer.ln_f", H, eps: eps)
        lmHead = weights.contains("lm_head.weight") && !c.tieWordEmbeddings
            ? try t.matrix("lm_head.weight", c.vocabSize, H) : tokenEmbedding.table
        tokenShares = TokenShares(layers: layers.map(\.matrices), attentionWidth: c.numHeads * c.headDim)
    }

    public func forward(_ batch: Batch, cache: PagedKVCache) throws -> Logits {
        let c = config
        let T = batch.count, H = c.hiddenSize, kvDim = c.numKVHeads * c.headDim
        let addressing = try cache.positionedAddressing(for: batch)
        let x = FloatBuffer(T * H), h = FloatBuffer(T * H)
        try tokenEmbedding.lookup(batch.tokens.map(\.id), into: x.pointer)
        try positionEmbedding.lookup(batch.tokens.map(\.position), into: h.pointer)
        axpy(1, h.pointer, x.pointer, T * H)

        let fused = FloatBuffer(T * (H + 2 * kvDim))
        let q = FloatBuffer(T * H), k = FloatBuffer(T * kvDim), v = FloatBuffer(T * kvDim), attended = FloatBuffer(T * H)
        let I = c.intermediateSize, hidden = FloatBuffer(T * I)
        // Attention block up to the cache write: LayerNorm, fused QKV.
        func upToCacheWrite(_ l: Int, _ r: Range<Int>, _ pool: ThreadPool) {
            let layer = layers[l], t0 = r.lowerBound, n = r.count
            layer.attentionNorm(x.pointer + t0 * H, rows: n, out: h.pointer + t0 * H, pool: pool)
            layer.qkv(h.pointer + t0 * H, tokens: n, out: fused.pointer + t0 * (H + 2 * kvDim), pool: pool)
            // Multi-query: [all queries | key | value] is one group of the grouped layout; multi-head: one group per head.
            splitGroupedQKV(fused.pointer, tokens: r, heads: c.numHeads, kvHeads: c.numKVHeads, headDim: c.headDim,
                            q: q.pointer, k: k.pointer, v: v.pointer)
            addressing.writeKeysAndValues(layer: l, cache: cache, tokens: r, k: k.pointer, v: v.pointer, kvDim: kvDim)
        }
        // Attention, projection and residual; MLP block: LayerNorm, fc → GELU → projection, residual.
        func fromAttention(_ l: Int, _ r: Range<Int>, _ pool: ThreadPool) {
            let layer = layers[l], t0 = r.lowerBound, n = r.count
            let xs = x.pointer + t0 * H, hs = h.pointer + t0 * H
            addressing.attend(layer: l, cache: cache, tokens: r, q: q.pointer, heads: c.numHeads, kvHeads: c.numKVHeads,
                              headDim: c.headDim, scale: scale, out: attended.pointer, pool: pool)
            layer.projection(attended.pointer + t0 * H, tokens: n, out: hs, pool: pool)
            axpy(1, hs, xs, n * H)

            layer.mlpNorm(xs, rows: n, out: hs, pool: pool)
            layer.fc(hs, tokens: n, out: hidden.pointer + t0 * I, pool: pool)
            activation.apply(hidden.pointer + t0 * I, count: n * I, pool: pool)
            layer.mlpProjection(hidden.pointer + t0 * I, tokens: n, out: hs, pool: pool)
            axpy(1, hs, xs, n * H)
        }
        tokenShares.runLayers(layers.count, slotStart: addressing.slotStart,
                              upToCacheWrite: upToCacheWrite, fromAttention: fromAttention)
        return logitsOfWantedTokens(x, batch: batch, dim: H, outDim: H, vocabSize: c.vocabSize, head: lmHead) { rows, src, dst in
            finalNorm(src, rows: rows, out: dst, pool: .shared)
        }
    }
}
