import FlexServeTensor

/// A LLaMA forward of many tokens (a prompt's prefill) as one parallel region in which every thread keeps a share of
/// the tokens through every step of every layer (`ThreadPool.runShares`): its rows of the norms, projections, RoPE,
/// attention, residuals and SwiGLU are written and read on one core. `LlamaModel.forward` shares out each projection's
/// rows between the threads instead, so every token's activations and outputs pass between the cores at every step
/// (~210 ns a cache line where the two threads run in two core complexes). Each thread here runs the kernels alone on
/// all of a layer's weights (read from memory once per thread: ~3 MB of Q4_1 a layer against ~10 ms of arithmetic); the only rows
/// that cross are the keys and values of the earlier shares, read by the later shares' attention. A layer is one phase
/// from its attention to the next layer's cache write, so a prefill waits 31 times, not ~300.
///
/// The same kernels per token as `forward`, whose results do not depend on the other tokens of a call: the same logits
/// bit for bit.
enum LlamaTokenShares {
    /// The fewest tokens a share may have (the pair kernels want a tile of them), and the fewest a forward needs per
    /// thread where every matrix is in `InterleavedRows`. Against `forward` on Zen 5 (alternated `bench throughput`
    /// rounds, of the concurrent FMA passes; Q4_1 weights): 512 tokens 0.71 → 0.73 with the threads in one core complex
    /// and 0.58 → 0.72 in two, 256 tokens 0.69 → 0.74, 96 tokens 0.69 → 0.74.
    static let minimumTokens = 48
    /// The fewest tokens a forward needs per thread where a matrix is in a float format (f32, f16, bf16, or integer
    /// blocks as the file's rows): `RowPanel` converts sixteen rows into its panel for every share that meets them, so
    /// the shares want more tokens than tiles of integer blocks do. Against `forward` (Zen 5, since `RowPanel` converts
    /// straight from the rows): 256 tokens f16 0.65 → 0.69, bf16 0.69 → 0.70 (0.63 → 0.69 with the threads apart), f32
    /// 0.67 → 0.65; 144 tokens f16 0.66 → 0.66, f32 0.65 → 0.63; 512 tokens f16 0.64 → 0.69, f32 0.62 → 0.65.
    static let minimumFloatTokens = 128

    /// Contiguous shares of the tokens (`costs[t]` each) for `threads` threads, of about equal cost, their boundaries on
    /// multiples of six (the fp32 pair kernels' pass) and each of at least `minimumTokens` (or `perThread`, if fewer);
    /// nil where there are fewer than `perThread` tokens a thread.
    static func shares(costs: [Double], threads: Int, perThread: Int) -> [Range<Int>]? {
        let tokens = costs.count, minimum = min(minimumTokens, perThread)
        guard threads > 1, tokens >= threads * perThread else { return nil }
        var prefix = [0.0]
        for c in costs { prefix.append(prefix.last! + c) }
        var bounds = [0]
        for s in 1..<threads {
            let target = prefix[tokens] * Double(s) / Double(threads)
            let t = (prefix.firstIndex { $0 >= target } ?? tokens + 1) - 1
            let rounded = (t + 3) / 6 * 6
            bounds.append(min(max(rounded, bounds.last! + minimum), tokens - (threads - s) * minimum))
        }
        bounds.append(tokens)
        return (0..<threads).map { bounds[$0]..<bounds[$0 + 1] }
    }

    /// A pool without workers, for the kernels a share calls: a nested dispatch to the pool would wait on the region it runs in.
    static let serial = ThreadPool(threads: 1)
}

extension LlamaModel {
    /// Each token's share of the work: its projections' multiply-adds, and its attention's (scores and weighted values)
    /// counted 1.5 times, the rate `perf` put the attention at against the pair kernels.
    func tokenCosts(slotStart: [Int32]) -> [Double] {
        let c = config
        let H = c.hiddenSize, qDim = c.numHeads * c.headDim, kvDim = c.numKVHeads * c.headDim
        let projection: Double = Double(H * (2 * qDim + 2 * kvDim) + 3 * H * c.intermediateSize)
        let perKey: Double = 1.5 * Double(2 * qDim)
        return (0..<(slotStart.count - 1)).map { t -> Double in projection + perKey * Double(slotStart[t + 1] - slotStart[t]) }
    }

    /// `forward`'s layers for `shares` of the batch (see `LlamaTokenShares`), into `x` (the embedded tokens, then the
    /// residual stream).
    func forwardInShares(_ shares: [Range<Int>], x: FloatBuffer,
                         addressing: (write: [Int32], slotStart: [Int32], slots: [Int32]),
                         cos cosTable: [Float], sin sinTable: [Float], cache: PagedKVCache, pool: ThreadPool) {
        let c = config
        let H = c.hiddenSize, qDim = c.numHeads * c.headDim, kvDim = c.numKVHeads * c.headDim, I = c.intermediateSize
        let T = x.count / H, half = c.headDim / 2
        let h = FloatBuffer(T * H), q = FloatBuffer(T * qDim), k = FloatBuffer(T * kvDim), v = FloatBuffer(T * kvDim)
        let attended = FloatBuffer(T * qDim), gate = FloatBuffer(T * I), up = FloatBuffer(T * I)
        let scale = 1 / Float(c.headDim).squareRoot()
        let serial = LlamaTokenShares.serial
        cosTable.withUnsafeBufferPointer { cosines in
        sinTable.withUnsafeBufferPointer { sines in
        addressing.write.withUnsafeBufferPointer { write in
        addressing.slotStart.withUnsafeBufferPointer { slotStart in
        addressing.slots.withUnsafeBufferPointer { slots in
            // Norm, Q/K/V, RoPE and the cache write of layer l for tokens `r`.
            func attentionInputs(_ l: Int, _ r: Range<Int>) {
                let layer = layers[l], t0 = r.lowerBound, n = r.count
                Normalization.rms(x.pointer + t0 * H, rows: n, dim: H, weight: layer.attentionNorm, eps: c.rmsNormEps,
                                  out: h.pointer + t0 * H, pool: serial)
                stored(h.pointer + t0 * H, n * H)
                Linear.forward(x: h.pointer + t0 * H, tokens: n, projections: [
                    Linear.Projection(weight: layer.wq, bias: layer.bq?.pointer, out: q.pointer + t0 * qDim),
                    Linear.Projection(weight: layer.wk, bias: layer.bk?.pointer, out: k.pointer + t0 * kvDim),
                    Linear.Projection(weight: layer.wv, bias: layer.bv?.pointer, out: v.pointer + t0 * kvDim),
                ], pool: serial)
                for t in r {
                    rope.apply(q.pointer + t * qDim, heads: c.numHeads, headDim: c.headDim,
                               cos: cosines.baseAddress! + t * half, sin: sines.baseAddress! + t * half)
                    rope.apply(k.pointer + t * kvDim, heads: c.numKVHeads, headDim: c.headDim,
                               cos: cosines.baseAddress! + t * half, sin: sines.baseAddress! + t * half)
                }
                stored(k.pointer + t0 * kvDim, n * kvDim)
                stored(v.pointer + t0 * kvDim, n * kvDim)
                for t in r {
                    cache.write(layer: l, slot: Int(write[t]), keys: k.pointer + t * kvDim, values: v.pointer + t * kvDim)
                }
            }
            // Attention, output projection, residual and MLP block of layer l for tokens `r`.
            func attentionAndMLP(_ l: Int, _ r: Range<Int>) {
                let layer = layers[l], t0 = r.lowerBound, n = r.count
                Attention.forward(q: q.pointer + t0 * qDim, tokens: n, numHeads: c.numHeads, numKVHeads: c.numKVHeads,
                                  headDim: c.headDim, kv: cache.store(layer: l), slotStart: slotStart.baseAddress! + t0,
                                  slots: slots.baseAddress!, scale: scale, out: attended.pointer + t0 * qDim, pool: serial)
                stored(attended.pointer + t0 * qDim, n * qDim)
                Linear.forward(x: attended.pointer + t0 * qDim, tokens: n, weight: layer.wo, out: h.pointer + t0 * H, pool: serial)
                axpy(1, h.pointer + t0 * H, x.pointer + t0 * H, n * H)

                Normalization.rms(x.pointer + t0 * H, rows: n, dim: H, weight: layer.mlpNorm, eps: c.rmsNormEps,
                                  out: h.pointer + t0 * H, pool: serial)
                stored(h.pointer + t0 * H, n * H)
                Linear.forward(x: h.pointer + t0 * H, tokens: n, projections: [
                    Linear.Projection(weight: layer.gate, out: gate.pointer + t0 * I),
                    Linear.Projection(weight: layer.up, out: up.pointer + t0 * I),
                ], pool: serial)
                Activation.siluMultiply(gate.pointer + t0 * I, up.pointer + t0 * I, count: n * I, pool: serial)
                stored(gate.pointer + t0 * I, n * I)
                Linear.forward(x: gate.pointer + t0 * I, tokens: n, weight: layer.down, out: h.pointer + t0 * H, pool: serial)
                axpy(1, h.pointer + t0 * H, x.pointer + t0 * H, n * H)
            }
            let L = layers.count
            pool.runShares(phases: L + 1, shares: shares.count) { p, s in
                if p > 0 { attentionAndMLP(p - 1, shares[s]) }
                if p < L { attentionInputs(p, shares[s]) }
            }
        }}}}}
    }
}
