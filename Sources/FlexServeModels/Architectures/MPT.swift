import FlexServeTensor

/// MPT (MosaicML 2023): no position embeddings but ALiBi, LayerNorms without bias, no linear biases
/// (`no_bias`), one fused `Wqkv` projection whose outputs are clamped to ±`clip_qkv` (MPT-7B-8k, MPT-30B)
/// before splitting into query, key and value, and a GELU MLP of `expansion_ratio`·d. Pre-norm residual
/// blocks; the vocabulary head is tied to the token embeddings.
public final class MPTModel: CausalLM, ModelMatrices, TokenSharing, @unchecked Sendable {
    public let config: ModelConfig
    let clip: Float?
    let scale: Float
    let alibiSlopes: [Float]
    let embedding: Embedding
    let layers: [Layer]
    let finalNorm: LayerNormWeights
    let lmHead: TensorView
    var tokenShares: TokenShares
    public var projectionMatrices: [TensorView] { layers.flatMap(\.matrices) }
    public var vocabularyHead: TensorView { lmHead }

    struct Layer {
        let attentionNorm: LayerNormWeights
        let qkv, out: Dense
        let mlpNorm: LayerNormWeights
        let up, down: Dense
        var matrices: [TensorView] { [qkv, out, up, down].map(\.weight) }
    }

    public init(config: ModelConfig, weights: WeightStore) throws {
        var c = config
        let raw = config.raw
        let attention = raw["attn_config"]?.object ?? [:]
        let t = CheckpointTensors(weights)
        c.numKVHeads = c.numHeads
        c.headDim = c.hiddenSize / c.numHeads
        // transformers' MptMLP is 4·d whatever expansion_ratio says: trust the checkpoint.
        c.intermediateSize = (try? weights.tensor("transformer.blocks.0.ffn.up_proj.weight").shape[0])
            ?? (raw["expansion_ratio"]?.int ?? 4) * c.hiddenSize
        c.maxPositionEmbeddings = raw["max_seq_len"]?.int ?? c.maxPositionEmbeddings
        c.tieWordEmbeddings = true
        self.config = c
        guard attention["alibi"]?.bool ?? true else {
            throw ModelError("\(weights.source): MPT without ALiBi (learned positions) is not supported")
        }
        guard !(attention["qk_ln"]?.bool ?? false) else {
            throw ModelError("\(weights.source): MPT with qk_ln is not supported")
        }
        clip = attention["clip_qkv"]?.double.map(Float.init)
        scale = attention["softmax_scale"]?.double.map(Float.init) ?? 1 / Float(c.headDim).squareRoot()
        alibiSlopes = ALiBi.mptSlopes(heads: c.numHeads, maxBias: attention["alibi_bias_max"]?.double ?? 8)
        let H = c.hiddenSize, eps = Float(raw["layer_norm_epsilon"]?.double ?? 1e-5)
        embedding = Embedding(try t.matrix("transformer.wte.weight", c.vocabSize, H))
        layers = try (0..<c.numLayers).map { l in
            let p = "transformer.blocks.\(l)."
            return Layer(attentionNorm: try t.layerNorm(p + "norm_1", H, eps: eps),
                         qkv: try t.dense(p + "attn.Wqkv", 3 * H, H), out: try t.dense(p + "attn.out_proj", H, H),
                         mlpNorm: try t.layerNorm(p + "norm_2", H, eps: eps),
                         up: try t.dense(p + "ffn.up_proj", c.intermediateSize, H),
                         down: try t.dense(p + "ffn.down_proj", H, c.intermediateSize))
        }
        finalNorm = try t.layerNorm("transformer.norm_f", H, eps: eps)
        lmHead = embedding.table
        tokenShares = TokenShares(layers: layers.map(\.matrices), attentionWidth: c.numHeads * c.headDim)
    }

    public func forward(_ batch: Batch, cache: PagedKVCache) throws -> Logits {
        let c = config
        let T = batch.count, H = c.hiddenSize
        let addressing = try cache.positionedAddressing(for: batch)
        let x = FloatBuffer(T * H), h = FloatBuffer(T * H)
        try embedding.lookup(batch.tokens.map(\.id), into: x.pointer)
        let fused = FloatBuffer(T * 3 * H)
        let q = FloatBuffer(T * H), k = FloatBuffer(T * H), v = FloatBuffer(T * H), attended = FloatBuffer(T * H)
        let I = c.intermediateSize, hidden = FloatBuffer(T * I)
        // Attention block up to the cache write: LayerNorm, fused QKV (clamped), split.
        func upToCacheWrite(_ l: Int, _ r: Range<Int>, _ pool: ThreadPool) {
            let layer = layers[l], t0 = r.lowerBound, n = r.count
            layer.attentionNorm(x.pointer + t0 * H, rows: n, out: h.pointer + t0 * H, pool: pool)
            let rows = fused.pointer + t0 * 3 * H
            layer.qkv(h.pointer + t0 * H, tokens: n, out: rows, pool: pool)
            if let clip {
                for i in 0..<(n * 3 * H) { rows[i] = min(max(rows[i], -clip), clip) }
            }
            for t in r {
                let row = fused.pointer + t * 3 * H
                (q.pointer + t * H).update(from: row, count: H)
                (k.pointer + t * H).update(from: row + H, count: H)
                (v.pointer + t * H).update(from: row + 2 * H, count: H)
            }
            addressing.writeKeysAndValues(layer: l, cache: cache, tokens: r, k: k.pointer, v: v.pointer, kvDim: H)
        }
        // Attention (ALiBi), projection and residual; MLP block: LayerNorm, up → GELU → down, residual.
        func fromAttention(_ l: Int, _ r: Range<Int>, _ pool: ThreadPool) {
            let layer = layers[l], t0 = r.lowerBound, n = r.count
            let xs = x.pointer + t0 * H, hs = h.pointer + t0 * H
            addressing.attend(layer: l, cache: cache, tokens: r, q: q.pointer, heads: c.numHeads, kvHeads: c.numHeads,
                              headDim: c.headDim, scale: scale, alibiSlopes: alibiSlopes, out: attended.pointer, pool: pool)
            layer.out(attended.pointer + t0 * H, tokens: n, out: hs, pool: pool)
            axpy(1, hs, xs, n * H)

            layer.mlpNorm(xs, rows: n, out: hs, pool: pool)
            layer.up(hs, tokens: n, out: hidden.pointer + t0 * I, pool: pool)
            Activation.gelu(hidden.pointer + t0 * I, count: n * I, approximate: false, pool: pool)
            layer.down(hidden.pointer + t0 * I, tokens: n, out: hs, pool: pool)
            axpy(1, hs, xs, n * H)
        }
        tokenShares.runLayers(layers.count, slotStart: addressing.slotStart,
                              upToCacheWrite: upToCacheWrite, fromAttention: fromAttention)
        return logitsOfWantedTokens(x, batch: batch, dim: H, outDim: H, vocabSize: c.vocabSize, head: lmHead) { rows, src, dst in
            finalNorm(src, rows: rows, out: dst, pool: .shared)
        }
    }
}
