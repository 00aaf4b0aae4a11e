import FlexServeTensor

/// OPT (Zhang et al. 2022): learned absolute positions (table offset by 2), LayerNorm, multi-head attention
/// with biases, ReLU MLP. `do_layer_norm_before` picks pre-norm (OPT-125m, 1.3b and up) or post-norm
/// (OPT-350m), and when `word_embed_proj_dim` differs from `hidden_size` (OPT-350m) the token embeddings
/// are projected in before the decoder and the hidden states out before the tied vocabulary head.
public final class OPTModel: CausalLM, ModelMatrices, TokenSharing, @unchecked Sendable {
    public let config: ModelConfig
    let preNorm: Bool
    let activation: FeedForwardActivation
    let tokenEmbedding: Embedding
    let positionEmbedding: Embedding
    let projectIn, projectOut: TensorView?
    let layers: [Layer]
    let finalNorm: LayerNormWeights?
    let lmHead: TensorView
    var tokenShares: TokenShares
    public var projectionMatrices: [TensorView] { layers.flatMap(\.matrices) + [projectIn, projectOut].compactMap { $0 } }
    public var vocabularyHead: TensorView { lmHead }

    /// OPT's learned position table starts at row 2 (rows 0 and 1 were reserved for padding in fairseq).
    static let positionOffset = 2

    struct Layer {
        let attentionNorm: LayerNormWeights
        let q, k, v, out: Dense
        let mlpNorm: LayerNormWeights
        let fc1, fc2: Dense
        var matrices: [TensorView] { [q, k, v, out, fc1, fc2].map(\.weight) }
    }

    public init(config: ModelConfig, weights: WeightStore) throws {
        var c = config
        let raw = config.raw
        let t = CheckpointTensors(weights)
        let H = c.hiddenSize
        let embedDim = raw["word_embed_proj_dim"]?.int ?? H
        c.intermediateSize = raw["ffn_dim"]?.int ?? c.intermediateSize
        c.numKVHeads = c.numHeads
        c.tieWordEmbeddings = raw["tie_word_embeddings"]?.bool ?? true
        self.config = c
        preNorm = raw["do_layer_norm_before"]?.bool ?? true
        activation = try FeedForwardActivation(raw["activation_function"]?.string ?? "relu", source: weights.source)
        let eps: Float = 1e-5  // nn.LayerNorm's default, which OPT uses
        let d = "model.decoder."
        tokenEmbedding = Embedding(try t.matrix(d + "embed_tokens.weight", c.vocabSize, embedDim))
        positionEmbedding = Embedding(try t.matrix(d + "embed_positions.weight", c.maxPositionEmbeddings + Self.positionOffset, H))
        projectIn = embedDim != H ? try t.matrix(d + "project_in.weight", H, embedDim) : nil
        projectOut = embedDim != H ? try t.matrix(d + "project_out.weight", embedDim, H) : nil
        layers = try (0..<c.numLayers).map { l in
            let p = d + "layers.\(l)."
            return Layer(attentionNorm: try t.layerNorm(p + "self_attn_layer_norm", H, eps: eps),
                         q: try t.dense(p + "self_attn.q_proj", H, H), k: try t.dense(p + "self_attn.k_proj", H, H),
                         v: try t.dense(p + "self_attn.v_proj", H, H), out: try t.dense(p + "self_attn.out_proj", H, H),
                         mlpNorm: try t.layerNorm(p + "final_layer_norm", H, eps: eps),
                         fc1: try t.dense(p + "fc1", c.intermediateSize, H), fc2: try t.dense(p + "fc2", H, c.intermediateSize))
        }
        let removeFinalNorm = raw["_remove_final_layer_norm"]?.bool ?? false
        finalNorm = preNorm && !removeFinalNorm ? try t.layerNorm(d + "final_layer_norm", H, eps: eps) : nil
        lmHead = weights.contains("lm_head.weight") && !c.tieWordEmbeddings
            ? try t.matrix("lm_head.weight", c.vocabSize, embedDim) : tokenEmbedding.table
        tokenShares = TokenShares(layers: layers.map(\.matrices), attentionWidth: c.numHeads * c.headDim)
    }

    public func forward(_ batch: Batch, cache: PagedKVCache) throws -> Logits {
        let c = config
        let T = batch.count, H = c.hiddenSize
        let addressing = try cache.positionedAddressing(for: batch)

        // Token embeddings (projected in when narrower) plus learned positions.
        let x = FloatBuffer(T * H), h = FloatBuffer(T * H)
        if let projectIn {
            let e = FloatBuffer(T * tokenEmbedding.dim)
            try tokenEmbedding.lookup(batch.tokens.map(\.id), into: e.pointer)
            Linear.forward(x: e.pointer, tokens: T, weight: projectIn, out: x.pointer)
        } else {
            try tokenEmbedding.lookup(batch.tokens.map(\.id), into: x.pointer)
        }
        try positionEmbedding.lookup(batch.tokens.map { $0.position + Self.positionOffset }, into: h.pointer)
        axpy(1, h.pointer, x.pointer, T * H)

        let q = FloatBuffer(T * H), k = FloatBuffer(T * H), v = FloatBuffer(T * H), attended = FloatBuffer(T * H)
        let I = c.intermediateSize, mlp = FloatBuffer(T * I)
        let scale = 1 / Float(c.headDim).squareRoot()
        // Attention block up to the cache write: pre-norm normalises its input, post-norm its residual sum (below).
        func upToCacheWrite(_ l: Int, _ r: Range<Int>, _ pool: ThreadPool) {
            let layer = layers[l], t0 = r.lowerBound, n = r.count
            var input = x.pointer + t0 * H
            if preNorm {
                layer.attentionNorm(input, rows: n, out: h.pointer + t0 * H, pool: pool)
                input = h.pointer + t0 * H
            }
            Linear.forward(x: input, tokens: n, projections: [layer.q.projection(out: q.pointer + t0 * H),
                                                               layer.k.projection(out: k.pointer + t0 * H),
                                                               layer.v.projection(out: v.pointer + t0 * H)], pool: pool)
            addressing.writeKeysAndValues(layer: l, cache: cache, tokens: r, k: k.pointer, v: v.pointer, kvDim: H)
        }
        // Attention, output projection and residual; MLP block: fc1 → activation → fc2.
        func fromAttention(_ l: Int, _ r: Range<Int>, _ pool: ThreadPool) {
            let layer = layers[l], t0 = r.lowerBound, n = r.count
            let xs = x.pointer + t0 * H, hs = h.pointer + t0 * H
            addressing.attend(layer: l, cache: cache, tokens: r, q: q.pointer, heads: c.numHeads, kvHeads: c.numHeads,
                              headDim: c.headDim, scale: scale, out: attended.pointer, pool: pool)
            layer.out(attended.pointer + t0 * H, tokens: n, out: hs, pool: pool)
            axpy(1, hs, xs, n * H)
            if !preNorm { layer.attentionNorm(xs, rows: n, out: xs, pool: pool) }

            if preNorm { layer.mlpNorm(xs, rows: n, out: hs, pool: pool) }
            layer.fc1(preNorm ? hs : xs, tokens: n, out: mlp.pointer + t0 * I, pool: pool)
            activation.apply(mlp.pointer + t0 * I, count: n * I, pool: pool)
            layer.fc2(mlp.pointer + t0 * I, tokens: n, out: hs, pool: pool)
            axpy(1, hs, xs, n * H)
            if !preNorm { layer.mlpNorm(xs, rows: n, out: xs, pool: pool) }
        }
        tokenShares.runLayers(layers.count, slotStart: addressing.slotStart,
                              upToCacheWrite: upToCacheWrite, fromAttention: fromAttention)
        let outDim = projectOut?.shape[0] ?? H
        return logitsOfWantedTokens(x, batch: batch, dim: H, outDim: outDim, vocabSize: c.vocabSize, head: lmHead) { rows, src, dst in
            let normed = FloatBuffer(max(1, rows) * H)
            if let finalNorm { finalNorm(src, rows: rows, out: normed.pointer, pool: .shared) } else { normed.pointer.update(from: src, count: rows * H) }
            if let projectOut {
                Linear.forward(x: normed.pointer, tokens: rows, weight: projectOut, out: dst)
            } else {
                dst.update(from: normed.pointer, count: rows * H)
            }
        }
    }
}
