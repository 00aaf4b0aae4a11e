import FlexServeTensor

/// OPT (Zhang et al. 2022): learned absolute positions (table offset by 2), LayerNorm, multi-head attention
/// with biases, ReLU MLP. `do_layer_norm_before` picks pre-norm (OPT-125m, 1.3b and up) or post-norm
/// (OPT-350m), and when `word_embed_proj_dim` differs from `hidden_size` (OPT-350m) the token embeddings
/// are projected in before the decoder and the hidden states out before the tied vocabulary head.
public final class OPTModel: CausalLM, @unchecked Sendable {
    public let config: ModelConfig
    let preNorm: Bool
    let activation: FeedForwardActivation
    let tokenEmbedding: Embedding
    let positionEmbedding: Embedding
    let projectIn, projectOut: TensorView?
    let layers: [Layer]
    let finalNorm: LayerNormWeights?
    let lmHead: TensorView

    /// OPT's learned position table starts at row 2 (rows 0 and 1 were reserved for padding in fairseq).
    static let positionOffset = 2

    struct Layer {
        let attentionNorm: LayerNormWeights
        let q, k, v, out: Dense
        let mlpNorm: LayerNormWeights
        let fc1, fc2: Dense
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
        let mlp = FloatBuffer(T * c.intermediateSize)
        let scale = 1 / Float(c.headDim).squareRoot()
        for (l, layer) in layers.enumerated() {
            // Attention: pre-norm normalises its input, post-norm normalises the residual sum.
            let attentionIn: UnsafePointer<Float>
            if preNorm {
                layer.attentionNorm(x.pointer, rows: T, out: h.pointer)
                attentionIn = UnsafePointer(h.pointer)
            } else {
                attentionIn = UnsafePointer(x.pointer)
            }
            layer.q(attentionIn, tokens: T, out: q.pointer)
            layer.k(attentionIn, tokens: T, out: k.pointer)
            layer.v(attentionIn, tokens: T, out: v.pointer)
            cachedAttention(layer: l, cache: cache, addressing: addressing, q: q.pointer, k: k.pointer, v: v.pointer,
                            tokens: T, heads: c.numHeads, kvHeads: c.numHeads, headDim: c.headDim, scale: scale,
                            out: attended.pointer)
            layer.out(attended.pointer, tokens: T, out: h.pointer)
            axpy(1, h.pointer, x.pointer, T * H)
            if !preNorm { layer.attentionNorm(x.pointer, rows: T, out: x.pointer) }

            // MLP: fc1 → ReLU → fc2.
            let mlpIn: UnsafePointer<Float>
            if preNorm {
                layer.mlpNorm(x.pointer, rows: T, out: h.pointer)
                mlpIn = UnsafePointer(h.pointer)
            } else {
                mlpIn = UnsafePointer(x.pointer)
            }
            layer.fc1(mlpIn, tokens: T, out: mlp.pointer)
            activation.apply(mlp.pointer, count: T * c.intermediateSize)
            layer.fc2(mlp.pointer, tokens: T, out: h.pointer)
            axpy(1, h.pointer, x.pointer, T * H)
            if !preNorm { layer.mlpNorm(x.pointer, rows: T, out: x.pointer) }
        }
        let outDim = projectOut?.shape[0] ?? H
        return logitsOfWantedTokens(x, batch: batch, dim: H, outDim: outDim, vocabSize: c.vocabSize, head: lmHead) { rows, src, dst in
            let normed = FloatBuffer(max(1, rows) * H)
            if let finalNorm { finalNorm(src, rows: rows, out: normed.pointer) } else { normed.pointer.update(from: src, count: rows * H) }
            if let projectOut {
                Linear.forward(x: normed.pointer, tokens: rows, weight: projectOut, out: dst)
            } else {
                dst.update(from: normed.pointer, count: rows * H)
            }
        }
    }
}

// MARK: - Pieces the OPT, Falcon, GPTBigCode and MPT files share

/// A checkpoint's tensors under their HuggingFace names, with shapes checked.
struct CheckpointTensors {
    let weights: WeightStore
    init(_ weights: WeightStore) { self.weights = weights }

    func matrix(_ name: String, _ rows: Int, _ cols: Int) throws -> TensorView {
        try weights.tensor(name).expecting([rows, cols], name, in: weights.source)
    }

    func vector(_ name: String, _ n: Int) throws -> [Float] {
        try weights.tensor(name).expecting([n], name, in: weights.source).floats()
    }

    func optionalVector(_ name: String, _ n: Int) throws -> [Float]? {
        weights.contains(name) ? try vector(name, n) : nil
    }

    /// `prefix.weight` `[outFeatures, inFeatures]` and `prefix.bias` when the checkpoint has one.
    func dense(_ prefix: String, _ outFeatures: Int, _ inFeatures: Int) throws -> Dense {
        Dense(weight: try matrix(prefix + ".weight", outFeatures, inFeatures), bias: try optionalVector(prefix + ".bias", outFeatures))
    }

    /// `prefix.weight` and `prefix.bias`, either of which may be absent (MPT's LayerNorms have no bias).
    func layerNorm(_ prefix: String, _ dim: Int, eps: Float) throws -> LayerNormWeights {
        LayerNormWeights(weight: try optionalVector(prefix + ".weight", dim), bias: try optionalVector(prefix + ".bias", dim),
                         dim: dim, eps: eps)
    }
}

/// A linear layer `y = x·Wᵀ (+ b)`.
struct Dense {
    let weight: TensorView
    let bias: [Float]?
    func callAsFunction(_ x: UnsafePointer<Float>, tokens: Int, out: UnsafeMutablePointer<Float>) {
        Linear.forward(x: x, tokens: tokens, weight: weight, bias: bias, out: out)
    }
}

struct LayerNormWeights {
    let weight: [Float]?
    let bias: [Float]?
    let dim: Int
    let eps: Float
    /// Row-wise LayerNorm; `out` may be `x` itself.
    func callAsFunction(_ x: UnsafePointer<Float>, rows: Int, out: UnsafeMutablePointer<Float>) {
        Normalization.layer(x, rows: rows, dim: dim, weight: weight, bias: bias, eps: eps, out: out)
    }
}

enum FeedForwardActivation {
    case relu, gelu, geluTanh

    init(_ name: String, source: String) throws {
        switch name {
        case "relu": self = .relu
        case "gelu": self = .gelu
        case "gelu_new", "gelu_pytorch_tanh", "gelu_fast": self = .geluTanh
        default: throw ModelError("unsupported activation '\(name)' in \(source)")
        }
    }

    func apply(_ x: UnsafeMutablePointer<Float>, count: Int) {
        switch self {
        case .relu: Activation.relu(x, count: count)
        case .gelu: Activation.gelu(x, count: count, approximate: false)
        case .geluTanh: Activation.gelu(x, count: count, approximate: true)
        }
    }
}

/// Writes the batch's keys and values into layer `l` of the cache, then attends (with ALiBi when `alibiSlopes` is given).
func cachedAttention(layer l: Int, cache: PagedKVCache, addressing a: PagedKVCache.PositionedAddressing,
                     q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                     tokens T: Int, heads: Int, kvHeads: Int, headDim: Int, scale: Float,
                     alibiSlopes: [Float]? = nil, out: UnsafeMutablePointer<Float>) {
    let kvDim = kvHeads * headDim
    for t in 0..<T { cache.write(layer: l, slot: Int(a.write[t]), keys: k + t * kvDim, values: v + t * kvDim) }
    a.slotStart.withUnsafeBufferPointer { slotStart in
        a.slots.withUnsafeBufferPointer { slots in
            a.slotPositions.withUnsafeBufferPointer { slotPositions in
                a.queryPositions.withUnsafeBufferPointer { queryPositions in
                    let run = { (slopes: UnsafePointer<Float>?) in
                        Attention.forward(q: q, tokens: T, numHeads: heads, numKVHeads: kvHeads, headDim: headDim,
                                          kv: cache.store(layer: l), slotStart: slotStart.baseAddress!,
                                          slots: slots.baseAddress ?? UnsafePointer(bitPattern: 0x10)!,
                                          scale: scale, out: out, alibiSlopes: slopes,
                                          queryPositions: queryPositions.baseAddress, slotPositions: slotPositions.baseAddress)
                    }
                    if let alibiSlopes { alibiSlopes.withUnsafeBufferPointer { run($0.baseAddress) } } else { run(nil) }
                }
            }
        }
    }
}

/// Splits fused QKV rows laid out as `kvHeads` groups of (heads/kvHeads query heads, one key head, one value head):
/// Falcon's layout (multi-query: one group; multi-head: one query per group) and GPTBigCode's.
func splitGroupedQKV(_ qkv: UnsafePointer<Float>, tokens T: Int, heads: Int, kvHeads: Int, headDim d: Int,
                     q: UnsafeMutablePointer<Float>, k: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>) {
    let perGroup = heads / kvHeads
    let row = (heads + 2 * kvHeads) * d
    for t in 0..<T {
        for g in 0..<kvHeads {
            let src = qkv + t * row + g * (perGroup + 2) * d
            (q + (t * heads + g * perGroup) * d).update(from: src, count: perGroup * d)
            (k + (t * kvHeads + g) * d).update(from: src + perGroup * d, count: d)
            (v + (t * kvHeads + g) * d).update(from: src + (perGroup + 1) * d, count: d)
        }
    }
}

/// The final transform and vocabulary head for the tokens that want logits only. `final(rows, x, out)`
/// maps `rows` hidden states of `dim` to `outDim` (norm, projection).
func logitsOfWantedTokens(_ x: FloatBuffer, batch: Batch, dim: Int, outDim: Int, vocabSize: Int, head: TensorView,
                          final: (Int, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) -> Logits {
    let picked = batch.tokens.indices.filter { batch.tokens[$0].wantsLogits }
    let rows = FloatBuffer(max(1, picked.count) * dim)
    for (r, t) in picked.enumerated() { (rows.pointer + r * dim).update(from: x.pointer + t * dim, count: dim) }
    let out = FloatBuffer(max(1, picked.count) * outDim)
    final(picked.count, rows.pointer, out.pointer)
    let logits = Logits(rows: picked.count, vocabSize: vocabSize)
    if !picked.isEmpty {
        Linear.forward(x: out.pointer, tokens: picked.count, weight: head, out: logits.storage.pointer)
    }
    return logits
}
