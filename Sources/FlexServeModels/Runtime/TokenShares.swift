import FlexServeTensor

/// How a decoder runs its layers over the tokens of one forward. A forward of many tokens (a prompt's prefill) is one
/// parallel region in which every thread keeps a contiguous share of the tokens through every step of every layer
/// (`ThreadPool.runShares`): its rows of the norms, projections, positions, attention, residuals and MLP are written and
/// read on one core. Fewer tokens run each step over all of them, its kernels sharing their rows out between the
/// threads, so every token's activations and outputs pass between the cores at every step (~210 ns a cache line where
/// the two threads run in two core complexes).
///
/// In shares each thread runs the kernels alone on all of a layer's weights (read from memory once per thread: ~3 MB of
/// Q4_1 a SmolLM2 layer against ~10 ms of arithmetic); the only rows that cross are the keys and values of the earlier
/// shares, read by the later shares' attention. A layer is therefore two steps: up to its cache write, then from its
/// attention on; one phase runs a layer's second step and the next layer's first, so a prefill waits once a layer.
///
/// Both ways run the same kernels per token, whose results do not depend on the other tokens of a call: the same logits
/// bit for bit.
struct TokenShares {
    /// The fewest tokens a share may have (the pair kernels want a tile of them), and the fewest a forward needs per
    /// thread where every matrix is in `InterleavedRows`. Against the projection-by-projection forward on Zen 5
    /// (SmolLM2, alternated `bench throughput` rounds, of the concurrent FMA passes; Q4_1 weights): 512 tokens 0.71 →
    /// 0.73 with the threads in one core complex and 0.58 → 0.72 in two, 256 tokens 0.69 → 0.74, 96 tokens 0.69 → 0.74.
    static let minimumTokens = 48
    /// The fewest tokens a forward needs per thread where a matrix is in a float format (f32, f16, bf16, or integer
    /// blocks as the file's rows): `RowPanel` converts sixteen rows into its panel for every share that meets them, so
    /// the shares want more tokens than tiles of integer blocks do. Against the projection-by-projection forward (Zen 5,
    /// SmolLM2): 256 tokens f16 0.65 → 0.69, bf16 0.69 → 0.70 (0.63 → 0.69 with the threads apart), f32 0.67 → 0.65;
    /// 144 tokens f16 0.66 → 0.66, f32 0.65 → 0.63; 512 tokens f16 0.64 → 0.69, f32 0.62 → 0.65.
    static let minimumFloatTokens = 128

    /// A pool without workers, for the kernels a share calls: a nested dispatch to the pool would wait on the region it
    /// runs in.
    static let serial = ThreadPool(threads: 1)

    /// The pool whose threads each keep a share of a long forward's tokens; nil: every forward runs step by step over
    /// all its tokens. Tests set pools of other sizes.
    var pool: ThreadPool? = .shared
    /// A forward takes shares from this many tokens per thread on.
    var perThread: Int
    /// A token's projection multiply-adds in one layer, and its attention's width (heads × head size).
    let projectionWork: Double, attentionWidth: Int
    /// What an attention multiply-add costs against a projection's: 1.5 against the fp32 pair kernels (`perf`, SmolLM2),
    /// 2.5 against the q8 kernels, twice as fast. Alternated 1,536-token prefills (q8, Emerald Rapids): 1.5 gave
    /// 1,311–1,407 tokens/s, 2.5 1,409–1,436 and 3.5 1,381–1,403; with fp32 activations 1.5 gave 864–873, 1.0 864–869
    /// and 2.5 824–855 (the later tokens' share is the longer: their attention sees more keys).
    let attentionRate: Double

    /// For a model whose layers have the projection matrices `layers[l]`, all layers alike.
    init(layers: [[TensorView]], attentionWidth: Int) {
        perThread = layers.joined().allSatisfy { $0.interleaved != nil } ? Self.minimumTokens : Self.minimumFloatTokens
        projectionWork = Double(layers.first?.reduce(0) { $0 + $1.count } ?? 0)
        self.attentionWidth = attentionWidth
        attentionRate = !layers.isEmpty && layers.joined().allSatisfy { $0.activations == .q8 } ? 2.5 : 1.5
    }

    /// Runs `layers` layers over the tokens of a forward whose token t attends to the slots
    /// `slotStart[t]..<slotStart[t + 1]`: in shares where there are enough tokens, else step by step.
    /// `upToCacheWrite(layer, tokens, pool)` runs a layer's steps up to writing its keys and values into the cache,
    /// `fromAttention(layer, tokens, pool)` the rest, each for the tokens given and with their kernels on `pool`.
    func runLayers(_ layers: Int, slotStart: [Int32],
                   upToCacheWrite: (_ layer: Int, _ tokens: Range<Int>, _ pool: ThreadPool) -> Void,
                   fromAttention: (_ layer: Int, _ tokens: Range<Int>, _ pool: ThreadPool) -> Void) {
        guard let pool, let shares = shares(slotStart: slotStart) else {
            for l in 0..<layers {
                upToCacheWrite(l, 0..<(slotStart.count - 1), .shared)
                fromAttention(l, 0..<(slotStart.count - 1), .shared)
            }
            return
        }
        pool.runShares(phases: layers + 1, shares: shares.count) { p, s in
            if p > 0 { fromAttention(p - 1, shares[s], Self.serial) }
            if p < layers { upToCacheWrite(p, shares[s], Self.serial) }
        }
    }

    /// The shares of a forward (see `runLayers`), nil where it runs step by step. Costs are counted only where there are
    /// enough tokens to share: a decode step of one token allocates nothing here.
    func shares(slotStart: [Int32]) -> [Range<Int>]? {
        guard let pool, slotStart.count - 1 >= pool.threadCount * perThread else { return nil }
        return Self.shares(costs: costs(slotStart: slotStart), threads: pool.threadCount, perThread: perThread)
    }

    /// Each token's share of a layer's work: its projections' multiply-adds, and its attention's (scores and weighted
    /// values, for each key its slots list) at `attentionRate`.
    func costs(slotStart: [Int32]) -> [Double] {
        let perKey = attentionRate * Double(2 * attentionWidth)
        return (0..<(slotStart.count - 1)).map { t in projectionWork + perKey * Double(slotStart[t + 1] - slotStart[t]) }
    }

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
}

/// A model whose forward runs its layers through `TokenShares` (tests set the pool and threshold).
protocol TokenSharing: AnyObject {
    var tokenShares: TokenShares { get set }
}
