import FlexServeTensor

/// GPTBigCode (SantaCoder / StarCoder, Allal et al. 2023; Li et al. 2023): GPT-2 with multi-query attention.
/// Learned absolute positions are added to the token embeddings; each pre-LayerNorm block runs attention
/// through one fused `c_attn` projection (the query heads, then the single shared key and value head; without
/// `multi_query`, per head its query, key and value) and a GELU (tanh) MLP, each added to the residual.
/// The vocabulary head is tied to the token embeddings.
public final class GPTBigCodeModel: CausalLM, @unchecked Sendable {
    public let config: ModelConfig
    let tokenEmbedding, positionEmbedding: Embedding
    let activation: FeedForwardActivation
    let scale: Float
    let layers: [Layer]
    let finalNorm: LayerNormWeights
    let lmHead: TensorView

    struct Layer {
        let attentionNorm: LayerNormWeights
        let qkv, projection: Dense
        let mlpNorm: LayerNormWeights
        let fc, mlpProjection: Dense
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
        let hidden = FloatBuffer(T * c.intermediateSize)
        for (l, layer) in layers.enumerated() {
            layer.attentionNorm(x.pointer, rows: T, out: h.pointer)
            layer.qkv(h.pointer, tokens: T, out: fused.pointer)
            // Multi-query: [all queries | key | value] is one group of the grouped layout; multi-head: one group per head.
            splitGroupedQKV(fused.pointer, tokens: T, heads: c.numHeads, kvHeads: c.numKVHeads, headDim: c.headDim,
                            q: q.pointer, k: k.pointer, v: v.pointer)
            cachedAttention(layer: l, cache: cache, addressing: addressing, q: q.pointer, k: k.pointer, v: v.pointer,
                            tokens: T, heads: c.numHeads, kvHeads: c.numKVHeads, headDim: c.headDim, scale: scale,
                            out: attended.pointer)
            layer.projection(attended.pointer, tokens: T, out: h.pointer)
            axpy(1, h.pointer, x.pointer, T * H)

            layer.mlpNorm(x.pointer, rows: T, out: h.pointer)
            layer.fc(h.pointer, tokens: T, out: hidden.pointer)
            activation.apply(hidden.pointer, count: T * c.intermediateSize)
            layer.mlpProjection(hidden.pointer, tokens: T, out: h.pointer)
            axpy(1, h.pointer, x.pointer, T * H)
        }
        return logitsOfWantedTokens(x, batch: batch, dim: H, outDim: H, vocabSize: c.vocabSize, head: lmHead) { rows, src, dst in
            finalNorm(src, rows: rows, out: dst)
        }
    }
}
