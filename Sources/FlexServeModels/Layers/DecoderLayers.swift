import FlexServeTensor

// The pieces the OPT, Falcon, GPTBigCode and MPT files share. Every step takes the pool its kernels run on: the shared
// pool where a forward runs step by step over all its tokens, `TokenShares.serial` inside a share.

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
        let bias = try optionalVector(prefix + ".bias", outFeatures).map { values in
            let buffer = FloatBuffer(outFeatures)
            buffer.pointer.update(from: values, count: outFeatures)
            return buffer
        }
        return Dense(weight: try matrix(prefix + ".weight", outFeatures, inFeatures), bias: bias)
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
    /// In memory the kernels may keep pointers to.
    let bias: FloatBuffer?

    func callAsFunction(_ x: UnsafePointer<Float>, tokens: Int, out: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        Linear.forward(x: x, tokens: tokens, weight: weight, bias: bias?.pointer, out: out, pool: pool)
    }

    /// This layer into `out`, as one of several projections of the same input (`Linear.forward(projections:)`).
    func projection(out: UnsafeMutablePointer<Float>) -> Linear.Projection {
        Linear.Projection(weight: weight, bias: bias?.pointer, out: out)
    }
}

struct LayerNormWeights {
    let weight: [Float]?
    let bias: [Float]?
    let dim: Int
    let eps: Float
    /// Row-wise LayerNorm; `out` may be `x` itself.
    func callAsFunction(_ x: UnsafePointer<Float>, rows: Int, out: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        Normalization.layer(x, rows: rows, dim: dim, weight: weight, bias: bias, eps: eps, out: out, pool: pool)
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

    func apply(_ x: UnsafeMutablePointer<Float>, count: Int, pool: ThreadPool) {
        switch self {
        case .relu: Activation.relu(x, count: count, pool: pool)
        case .gelu: Activation.gelu(x, count: count, approximate: false, pool: pool)
        case .geluTanh: Activation.gelu(x, count: count, approximate: true, pool: pool)
        }
    }
}

extension PagedKVCache.PositionedAddressing {
    /// Writes the keys and values of tokens `r` (rows of `k` and `v`, `kvDim` floats each) into layer `l` of `cache`.
    func writeKeysAndValues(layer l: Int, cache: PagedKVCache, tokens r: Range<Int>,
                            k: UnsafePointer<Float>, v: UnsafePointer<Float>, kvDim: Int) {
        for t in r { cache.write(layer: l, slot: Int(write[t]), keys: k + t * kvDim, values: v + t * kvDim) }
    }

    /// Attention of tokens `r` (rows of `q` and `out`) over layer `l` of `cache`, with ALiBi when `alibiSlopes` is given.
    func attend(layer l: Int, cache: PagedKVCache, tokens r: Range<Int>, q: UnsafePointer<Float>,
                heads: Int, kvHeads: Int, headDim: Int, scale: Float, alibiSlopes: [Float]? = nil,
                out: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        let t0 = r.lowerBound, qDim = heads * headDim
        slotStart.withUnsafeBufferPointer { slotStart in
        slots.withUnsafeBufferPointer { slots in
        slotPositions.withUnsafeBufferPointer { slotPositions in
        queryPositions.withUnsafeBufferPointer { queryPositions in
            let run = { (slopes: UnsafePointer<Float>?) in
                Attention.forward(q: q + t0 * qDim, tokens: r.count, numHeads: heads, numKVHeads: kvHeads, headDim: headDim,
                                  kv: cache.store(layer: l), slotStart: slotStart.baseAddress! + t0,
                                  slots: slots.baseAddress ?? UnsafePointer(bitPattern: 0x10)!,
                                  scale: scale, out: out + t0 * qDim, pool: pool, alibiSlopes: slopes,
                                  queryPositions: queryPositions.baseAddress.map { $0 + t0 },
                                  slotPositions: slotPositions.baseAddress)
            }
            if let alibiSlopes { alibiSlopes.withUnsafeBufferPointer { run($0.baseAddress) } } else { run(nil) }
        }}}}
    }
}

/// Splits fused QKV rows laid out as `kvHeads` groups of (heads/kvHeads query heads, one key head, one value head):
/// Falcon's layout (multi-query: one group; multi-head: one query per group) and GPTBigCode's. Tokens `r` of each.
func splitGroupedQKV(_ qkv: UnsafePointer<Float>, tokens r: Range<Int>, heads: Int, kvHeads: Int, headDim d: Int,
                     q: UnsafeMutablePointer<Float>, k: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>) {
    let perGroup = heads / kvHeads
    let row = (heads + 2 * kvHeads) * d
    for t in r {
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
