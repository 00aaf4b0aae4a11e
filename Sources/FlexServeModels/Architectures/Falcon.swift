import Foundation
import FlexServeTensor

/// Falcon (Almazrouei et al. 2023) and its RefinedWeb predecessors (RWForCausalLM).
///
/// One fused QKV projection laid out as `kvHeads` groups of (query heads, key, value): multi-query
/// (Falcon-7B: one group), grouped (new_decoder_architecture, Falcon-40B/180B) or multi-head (falcon-rw).
/// Positions come from RoPE or, for falcon-rw, ALiBi. With `parallel_attn` (and always in the new
/// architecture) attention and MLP read the same normalised input and both add to the residual:
/// `x + attn(ln(x)) + mlp(ln(x))`, the new architecture with its own `ln_attn` and `ln_mlp`. Otherwise
/// the layer is sequential: `x' = x + attn(ln₁(x))`, `x' + mlp(ln₂(x'))`. The MLP is 4h→GELU→h.
public final class FalconModel: CausalLM, ModelMatrices, TokenSharing, @unchecked Sendable {
    public let config: ModelConfig
    let newArchitecture: Bool
    let parallel: Bool
    let alibiSlopes: [Float]?
    let rope: RotaryEmbedding?
    let activation: FeedForwardActivation
    let embedding: Embedding
    let layers: [Layer]
    let finalNorm: LayerNormWeights
    let lmHead: TensorView
    var tokenShares: TokenShares
    public var projectionMatrices: [TensorView] { layers.flatMap(\.matrices) }
    public var vocabularyHead: TensorView { lmHead }

    struct Layer {
        /// `input_layernorm`, or the new architecture's `ln_attn`.
        let attentionNorm: LayerNormWeights
        /// The new architecture's `ln_mlp`, or the sequential layer's `post_attention_layernorm`.
        let mlpNorm: LayerNormWeights?
        let qkv, dense: Dense
        let up, down: Dense
        var matrices: [TensorView] { [qkv, dense, up, down].map(\.weight) }
    }

    public init(config: ModelConfig, weights: WeightStore) throws {
        var c = config
        let raw = config.raw
        let t = CheckpointTensors(weights)
        // RefinedWeb (Falcon-40B's remote-code model type) is the new decoder architecture.
        let newArchitecture = raw["new_decoder_architecture"]?.bool ?? (raw["model_type"]?.string == "RefinedWeb")
        let parallel = raw["parallel_attn"]?.bool ?? true
        self.newArchitecture = newArchitecture
        self.parallel = parallel
        let multiQuery = raw["multi_query"]?.bool ?? true
        if newArchitecture {
            c.numKVHeads = raw["num_kv_heads"]?.int ?? raw["n_head_kv"]?.int ?? c.numHeads
        } else {
            c.numKVHeads = multiQuery ? 1 : c.numHeads
        }
        c.headDim = c.hiddenSize / c.numHeads
        // llama.cpp's converter writes 4·h as the feed-forward length whatever ffn_hidden_size is: trust the checkpoint.
        c.intermediateSize = (try? weights.tensor("transformer.h.0.mlp.dense_h_to_4h.weight").shape[0])
            ?? raw["ffn_hidden_size"]?.int ?? 4 * c.hiddenSize
        c.tieWordEmbeddings = raw["tie_word_embeddings"]?.bool ?? true
        guard c.numHeads % c.numKVHeads == 0 else {
            throw ModelError("\(weights.source): \(c.numHeads) heads do not split into \(c.numKVHeads) KV groups")
        }
        self.config = c
        let eps = Float(raw["layer_norm_epsilon"]?.double ?? 1e-5)
        activation = try FeedForwardActivation(raw["activation"]?.string ?? "gelu", source: weights.source)
        if raw["alibi"]?.bool ?? false {
            // (q·k + alibi)/√d: the slopes are scaled like the scores; transformers keeps them in bf16.
            let scale = 1 / Float(c.headDim).squareRoot()
            alibiSlopes = ALiBi.bloomSlopes(heads: c.numHeads).map { ALiBi.bfloat16($0) * scale }
            rope = nil
        } else {
            alibiSlopes = nil
            rope = RotaryEmbedding(rotaryDim: c.headDim, theta: c.ropeTheta,
                                   inverseFrequencies: RotaryEmbedding.scaledFrequencies(config: c))
        }
        let H = c.hiddenSize, qkvRows = (c.numHeads + 2 * c.numKVHeads) * c.headDim
        let twoNorms = newArchitecture && (raw["num_ln_in_parallel_attn"]?.int ?? 2) == 2
        embedding = Embedding(try t.matrix("transformer.word_embeddings.weight", c.vocabSize, H))
        layers = try (0..<c.numLayers).map { l in
            let p = "transformer.h.\(l)."
            return Layer(
                attentionNorm: try t.layerNorm(p + (twoNorms ? "ln_attn" : "input_layernorm"), H, eps: eps),
                mlpNorm: twoNorms ? try t.layerNorm(p + "ln_mlp", H, eps: eps)
                    : !newArchitecture && !parallel ? try t.layerNorm(p + "post_attention_layernorm", H, eps: eps) : nil,
                qkv: try t.dense(p + "self_attention.query_key_value", qkvRows, H),
                dense: try t.dense(p + "self_attention.dense", H, c.numHeads * c.headDim),
                up: try t.dense(p + "mlp.dense_h_to_4h", c.intermediateSize, H),
                down: try t.dense(p + "mlp.dense_4h_to_h", H, c.intermediateSize))
        }
        finalNorm = try t.layerNorm("transformer.ln_f", H, eps: eps)
        lmHead = weights.contains("lm_head.weight") ? try t.matrix("lm_head.weight", c.vocabSize, H) : embedding.table
        tokenShares = TokenShares(layers: layers.map(\.matrices), attentionWidth: c.numHeads * c.headDim)
    }

    public func forward(_ batch: Batch, cache: PagedKVCache) throws -> Logits {
        let c = config
        let T = batch.count, H = c.hiddenSize, d = c.headDim
        let qDim = c.numHeads * d, kvDim = c.numKVHeads * d
        let addressing = try cache.positionedAddressing(for: batch)
        let x = FloatBuffer(T * H), attentionIn = FloatBuffer(T * H), mlpIn = FloatBuffer(T * H)
        let fused = FloatBuffer(T * (qDim + 2 * kvDim))
        let q = FloatBuffer(T * qDim), k = FloatBuffer(T * kvDim), v = FloatBuffer(T * kvDim)
        let attended = FloatBuffer(T * qDim), attentionOut = FloatBuffer(T * H)
        let hidden = FloatBuffer(T * c.intermediateSize), mlpOut = FloatBuffer(T * H)
        try embedding.lookup(batch.tokens.map(\.id), into: x.pointer)
        let tables = rope.map { $0.tables(positions: batch.tokens.map { Int32($0.position) }) }

        let qkvDim = qDim + 2 * kvDim, I = c.intermediateSize
        // Attention block up to the cache write: norm(s), the fused grouped QKV, RoPE.
        func upToCacheWrite(_ l: Int, _ r: Range<Int>, _ pool: ThreadPool) {
            let layer = layers[l], t0 = r.lowerBound, n = r.count
            layer.attentionNorm(x.pointer + t0 * H, rows: n, out: attentionIn.pointer + t0 * H, pool: pool)
            if newArchitecture, let mlpNorm = layer.mlpNorm {
                mlpNorm(x.pointer + t0 * H, rows: n, out: mlpIn.pointer + t0 * H, pool: pool)
            }
            layer.qkv(attentionIn.pointer + t0 * H, tokens: n, out: fused.pointer + t0 * qkvDim, pool: pool)
            splitGroupedQKV(fused.pointer, tokens: r, heads: c.numHeads, kvHeads: c.numKVHeads, headDim: d,
                            q: q.pointer, k: k.pointer, v: v.pointer)
            if let rope, let tables { applyRotary(rope, tables, q: q.pointer, k: k.pointer, tokens: r) }
            addressing.writeKeysAndValues(layer: l, cache: cache, tokens: r, k: k.pointer, v: v.pointer, kvDim: kvDim)
        }
        // Attention and its projection; the MLP on the same normalised input (parallel) or on the updated residual
        // (sequential); the residual sum.
        func fromAttention(_ l: Int, _ r: Range<Int>, _ pool: ThreadPool) {
            let layer = layers[l], t0 = r.lowerBound, n = r.count
            let xs = x.pointer + t0 * H, attentionOuts = attentionOut.pointer + t0 * H, mlpOuts = mlpOut.pointer + t0 * H
            addressing.attend(layer: l, cache: cache, tokens: r, q: q.pointer, heads: c.numHeads, kvHeads: c.numKVHeads,
                              headDim: d, scale: 1 / Float(d).squareRoot(), alibiSlopes: alibiSlopes,
                              out: attended.pointer, pool: pool)
            layer.dense(attended.pointer + t0 * qDim, tokens: n, out: attentionOuts, pool: pool)

            let mlpInput: UnsafePointer<Float>
            if newArchitecture {
                mlpInput = UnsafePointer((layer.mlpNorm == nil ? attentionIn.pointer : mlpIn.pointer) + t0 * H)
            } else if parallel {
                mlpInput = UnsafePointer(attentionIn.pointer + t0 * H)
            } else {
                axpy(1, attentionOuts, xs, n * H)
                layer.mlpNorm!(xs, rows: n, out: mlpIn.pointer + t0 * H, pool: pool)
                mlpInput = UnsafePointer(mlpIn.pointer + t0 * H)
            }
            layer.up(mlpInput, tokens: n, out: hidden.pointer + t0 * I, pool: pool)
            activation.apply(hidden.pointer + t0 * I, count: n * I, pool: pool)
            layer.down(hidden.pointer + t0 * I, tokens: n, out: mlpOuts, pool: pool)
            if newArchitecture || parallel { axpy(1, attentionOuts, mlpOuts, n * H) }
            axpy(1, mlpOuts, xs, n * H)
        }
        tokenShares.runLayers(layers.count, slotStart: addressing.slotStart,
                              upToCacheWrite: upToCacheWrite, fromAttention: fromAttention)
        return logitsOfWantedTokens(x, batch: batch, dim: H, outDim: H, vocabSize: c.vocabSize, head: lmHead) { rows, src, dst in
            finalNorm(src, rows: rows, out: dst, pool: .shared)
        }
    }

    func applyRotary(_ rope: RotaryEmbedding, _ tables: (cos: [Float], sin: [Float]),
                     q: UnsafeMutablePointer<Float>, k: UnsafeMutablePointer<Float>, tokens r: Range<Int>) {
        let c = config, half = c.headDim / 2
        tables.cos.withUnsafeBufferPointer { cosines in
            tables.sin.withUnsafeBufferPointer { sines in
                for t in r {
                    rope.apply(q + t * c.numHeads * c.headDim, heads: c.numHeads, headDim: c.headDim,
                               cos: cosines.baseAddress! + t * half, sin: sines.baseAddress! + t * half)
                    rope.apply(k + t * c.numKVHeads * c.headDim, heads: c.numKVHeads, headDim: c.headDim,
                               cos: cosines.baseAddress! + t * half, sin: sines.baseAddress! + t * half)
                }
            }
        }
    }
}

/// ALiBi (Press et al. 2022): head h adds `slope[h] · (keyPosition − queryPosition)` to its scores.
enum ALiBi {
    /// BLOOM's and Falcon's slopes: a geometric sequence from 2^(-8/n) for the n = 2^⌊log₂ heads⌋ first heads,
    /// then every other slope of the 2n sequence for the rest.
    static func bloomSlopes(heads: Int) -> [Float] {
        let closest = 1 << Int(log2(Double(heads)).rounded(.down))
        let base = Float(pow(2.0, -pow(2.0, -(log2(Double(closest)) - 3))))
        var slopes = (1...closest).map { Foundation.pow(base, Float($0)) }
        if closest != heads {
            let extraBase = Float(pow(2.0, -pow(2.0, -(log2(Double(2 * closest)) - 3))))
            let remaining = min(closest, heads - closest)
            slopes += stride(from: 1, to: 1 + 2 * remaining, by: 2).map { Foundation.pow(extraBase, Float($0)) }
        }
        return slopes
    }

    /// MPT's slopes: 1/2^(i·maxBias/n) for i in 1...n with n the next power of two, interleaved when n > heads.
    static func mptSlopes(heads: Int, maxBias: Double) -> [Float] {
        let n = 1 << Int(log2(Double(heads)).rounded(.up))
        let all = (1...n).map { i in 1 / Foundation.pow(Float(2), Float(i) * Float(maxBias / Double(n))) }
        if n == heads { return all }
        let odd = stride(from: 1, to: n, by: 2).map { all[$0] }, even = stride(from: 0, to: n, by: 2).map { all[$0] }
        return Array((odd + even).prefix(heads))
    }

    /// Rounds to bfloat16 (nearest, ties to even), as transformers' Falcon stores its slopes.
    static func bfloat16(_ x: Float) -> Float {
        let bits = x.bitPattern
        let rounded = (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) & 0xFFFF_0000
        return Float(bitPattern: rounded)
    }
}
