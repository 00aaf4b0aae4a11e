/// The projection every model layer is made of: `out[t, o] = Σ_i x[t, i] · W[o, i] (+ bias[o])`,
/// with W stored `[outFeatures, inFeatures]` in any `DType`.
///
/// Several tokens: rows are taken four at a time (packed formats are first decoded into an fp32
/// scratch that stays in L1) and dotted with a tile of tokens, eight tokens per step where AVX-512's
/// 32 vector registers can hold the 32 (row, token) sums, two rows to a register (else two tokens), so
/// that both the decoded rows and the activations are reused from registers and cache; a prefill's
/// many tokens take sixteen rows at a time against three tokens (`RowPanel`). A few tokens (decoding, verifying a
/// tree) take the rows, fp32 ones included, as 32-value blocks decoded in registers as they stream from memory.
/// Matrices in `InterleavedRows` (integer block formats, as the loader sets them up) go to `IntegerLinear`.
///
/// Every output is the same sequence of operations whatever the batch: `RowDot`'s lane order,
/// then its fixed horizontal sum. A token's logits therefore do not depend on what else is in
/// the batch, and speculative verification (many tokens) reproduces incremental decoding (one
/// token) bit for bit.
public enum Linear {
    static let tokenTile = 96

    public static func forward(x: UnsafePointer<Float>, tokens: Int, weight: TensorView,
                               bias: UnsafePointer<Float>? = nil, out: UnsafeMutablePointer<Float>,
                               pool: ThreadPool = .shared) {
        let rows = weight.shape[0]
        let cols = weight.shape[weight.shape.count - 1]
        let dtype = weight.dtype
        if weight.interleaved != nil {
            IntegerLinear.forward(x: x, tokens: tokens, projections: [Projection(weight: weight, bias: bias, out: out)], pool: pool)
            return
        }
        if tokens <= fewTokens(dtype), cols % 32 == 0 {
            decodeTokens(x: x, tokens: tokens, projections: [Projection(weight: weight, bias: bias, out: out)], pool: pool)
            return
        }
        #if FLEXSERVE_AVX512
        if tokens >= RowPanel.minimumTokens, cols % 8 == 0 {
            forwardInPanels(x: x, tokens: tokens, weight: weight, bias: bias, out: out, pool: pool)
            return
        }
        #endif
        let rowBytes = dtype.byteCount(values: cols)!
        let base = weight.data
        let blocks = (rows + 3) / 4
        // Enough tasks to balance the threads, few enough that each streams a long run of rows.
        let minBlocks = max(1, 64 / max(1, tokens))
        pool.parallelChunks(blocks, minChunk: minBlocks) { blockRange in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: dtype == .f32 ? 1 : 4 * cols) { scratch in
                var tile = 0
                while tile < tokens {
                    let tileEnd = min(tokens, tile + tokenTile)
                    for block in blockRange {
                        let r0 = block * 4
                        let n = min(4, rows - r0)
                        // Rows past the end repeat the last real row; their results are not stored.
                        func row(_ k: Int) -> UnsafePointer<Float> {
                            let r = min(k, n - 1)
                            if dtype == .f32 { return (base + (r0 + r) * rowBytes).assumingMemoryBound(to: Float.self) }
                            return UnsafePointer(scratch.baseAddress! + r * cols)
                        }
                        if dtype != .f32 {
                            for k in 0..<n {
                                Dequantize.row(dtype, base + (r0 + k) * rowBytes, count: cols, into: scratch.baseAddress! + k * cols)
                            }
                        }
                        let w = (row(0), row(1), row(2), row(3))
                        @inline(__always) func store(_ d: SIMD4<Float>, token t: Int) {
                            let o = out + t * rows + r0
                            for k in 0..<n { o[k] = d[k] + (bias?[r0 + k] ?? 0) }
                        }
                        var t = tile
                        #if FLEXSERVE_AVX512
                        while t + 8 <= tileEnd {
                            RowDot.eightTokens(x + t * cols, stride: cols, w, cols) { k, d in store(d, token: t + k) }
                            t += 8
                        }
                        #elseif FLEXSERVE_AVX2
                        // Twelve sums, three activation and one weight register: all sixteen, no spills. Against
                        // `twoTokens` (bench kernels, 512 × 576 in L2, alternated, Zen 3): f32 71–72 → 73–77 GFLOP/s,
                        // f16 64–65 → 72–74.
                        while t + 3 <= tileEnd {
                            let (d0, d1, d2) = RowDot.threeTokens(x + t * cols, x + (t + 1) * cols, x + (t + 2) * cols, w, cols)
                            store(d0, token: t); store(d1, token: t + 1); store(d2, token: t + 2)
                            t += 3
                        }
                        #endif
                        while t + 2 <= tileEnd {
                            let (d0, d1) = RowDot.twoTokens(x + t * cols, x + (t + 1) * cols, w, cols)
                            store(d0, token: t)
                            store(d1, token: t + 1)
                            t += 2
                        }
                        if t < tileEnd { store(RowDot.oneToken(x + t * cols, w, cols), token: t) }
                    }
                    tile = tileEnd
                }
            }
        }
    }

    #if FLEXSERVE_AVX512
    /// Sixteen rows at a time against a tile of `RowPanel.tokenTile` tokens, three by three (`RowPanel`), handed out tile
    /// by tile to whichever thread asks.
    static func forwardInPanels(x: UnsafePointer<Float>, tokens: Int, weight: TensorView, bias: UnsafePointer<Float>?,
                                out: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        let rows = weight.shape[0], cols = weight.shape[weight.shape.count - 1]
        let rowBlocks = (rows + RowPanel.rows - 1) / RowPanel.rows
        let units = rowBlocks * ((tokens + RowPanel.tokenTile - 1) / RowPanel.tokenTile)
        pool.forEachUnit(units, scratchBytes: RowPanel.byteCount) { scratch, u in
            let tile = u / rowBlocks * RowPanel.tokenTile, r0 = u % rowBlocks * RowPanel.rows
            let n = min(RowPanel.rows, rows - r0)
            RowPanel(scratch).run(weight, firstRow: r0, x: x, cols: cols, tokens: tile..<min(tokens, tile + RowPanel.tokenTile)) { t, sums in
                let o = out + t * rows + r0
                if n == RowPanel.rows {
                    let b = bias.map { UnsafeRawPointer($0 + r0).loadUnaligned(as: SIMD16<Float>.self) } ?? SIMD16<Float>()
                    UnsafeMutableRawPointer(o).storeBytes(of: sums + b, as: SIMD16<Float>.self)
                } else {
                    for k in 0..<n { o[k] = sums[k] + (bias?[r0 + k] ?? 0) }
                }
            }
        }
    }
    #endif

    /// One weight matrix applied to the shared input, with its bias and output.
    public struct Projection {
        public let weight: TensorView
        public let bias: UnsafePointer<Float>?
        public let out: UnsafeMutablePointer<Float>

        public init(weight: TensorView, bias: UnsafePointer<Float>? = nil, out: UnsafeMutablePointer<Float>) {
            self.weight = weight
            self.bias = bias
            self.out = out
        }
    }

    /// Several projections of the same input (Q, K, V; gate, up): the same results as one
    /// `forward` each, in one dispatch where the weights take integer dot products or one token decodes
    /// packed rows (fused, SmolLM2's decode steps ran 2.7–3.7% faster in interleaved segments).
    public static func forward(x: UnsafePointer<Float>, tokens: Int, projections: [Projection], pool: ThreadPool = .shared) {
        let first = projections[0].weight
        let cols = first.shape.last!
        let fusable = first.interleaved != nil
            && projections.allSatisfy { $0.weight.interleaved?.dtype == first.dtype && $0.weight.activations == first.activations
                                        && $0.weight.shape.last == cols }
        if fusable {
            IntegerLinear.forward(x: x, tokens: tokens, projections: projections, pool: pool)
        } else if tokens <= fewTokens(first.dtype), cols % 32 == 0,
                  projections.allSatisfy({ $0.weight.interleaved == nil && $0.weight.dtype == first.dtype && $0.weight.shape.last == cols }) {
            decodeTokens(x: x, tokens: tokens, projections: projections, pool: pool)
        } else {
            for p in projections { forward(x: x, tokens: tokens, weight: p.weight, bias: p.bias, out: p.out, pool: pool) }
        }
    }

    /// Up to this many tokens (a speculative step's draft tokens) take packed rows decoded in registers
    /// (`decodeTokens`); more take rows decoded into an fp32 scratch and the eight-token kernel. SmolLM2
    /// forwards of k tokens as stored, fp32 activations, against the scratch for every k > 1 (alternating, Zen 5):
    /// k = 2: −26%, 3: −36%, 4: −31%, 5: −46%, 8: −19%, 12: −14%, 16: −3%. fp32 rows (`F32Blocks`) too: against
    /// the fp32 kernels on the rows in place (`bench verify --format f32`, Emerald Rapids) k = 2 to 16: −13 to −17%.
    static let fewTokens = 16

    /// Float rows (fp32, f16, bf16) take packed rows up to the panels' first size with AVX-512, a few tokens more than
    /// the block formats: `bench kernels` (one thread, 512 × 576 in L2, Emerald Rapids) against the fp32 kernels / a
    /// widened scratch for 17–23 tokens: fp32 17 tokens 102.7 → 87.8 µs, 20 124.7 → 95.5, 23 156.1 → 106.1; f16 113.5
    /// → 99.7, 133.9 → 110.6, 163.7 → 121.8 (bf16 the same as f16); 16 tokens unchanged.
    @inline(__always)
    static func fewTokens(_ dtype: DType) -> Int {
        #if FLEXSERVE_AVX512
        dtype.isQuantized ? fewTokens : RowPanel.minimumTokens - 1
        #else
        fewTokens
        #endif
    }

    /// A few tokens against packed rows: decoded in registers, no scratch (one token uses each weight once).
    /// Several projections of the same tokens share one dispatch, their rows split between the threads as one range.
    static func decodeTokens(x: UnsafePointer<Float>, tokens: Int, projections: [Projection], pool: ThreadPool) {
        switch projections[0].weight.dtype {
        case .f32: decodeTokens(F32Blocks.self, x: x, tokens: tokens, projections: projections, pool: pool)
        case .f16: decodeTokens(F16Blocks.self, x: x, tokens: tokens, projections: projections, pool: pool)
        case .bf16: decodeTokens(BF16Blocks.self, x: x, tokens: tokens, projections: projections, pool: pool)
        case .q8_0: decodeTokens(Q8_0Blocks.self, x: x, tokens: tokens, projections: projections, pool: pool)
        case .q4_0: decodeTokens(Q4_0Blocks.self, x: x, tokens: tokens, projections: projections, pool: pool)
        case .q4_1: decodeTokens(Q4_1Blocks.self, x: x, tokens: tokens, projections: projections, pool: pool)
        case .int8Group: decodeTokens(Int8GroupBlocks.self, x: x, tokens: tokens, projections: projections, pool: pool)
        case .int4Group: decodeTokens(Int4GroupBlocks.self, x: x, tokens: tokens, projections: projections, pool: pool)
        }
    }

    static func decodeTokens<F: BlockFormat>(_ format: F.Type, x: UnsafePointer<Float>, tokens: Int, projections: [Projection], pool: ThreadPool) {
        let cols = projections[0].weight.shape.last!
        let rowBytes = projections[0].weight.dtype.byteCount(values: cols)!
        let total = projections.reduce(0) { $0 + $1.weight.shape[0] }
        // One task per thread, of at least 32 rows: each task already streams four rows at once, and more,
        // shorter tasks start more cold streams (measured in interleaved segments of SmolLM2 decoding: one
        // task per thread 5.5–7.5% faster than four, Q4_1 and Q8_0, 32–37 of 38 segment pairs).
        pool.parallelChunks(total, minChunk: 32, perThread: 1) { range in
            decodeRows(F.self, x: x, tokens: tokens, projections: projections, rowBytes: rowBytes, blocks: cols / 32, range)
        }
    }

    /// Rows `range` of several projections' rows taken together (the first projection's, then the next's).
    @inline(__always)
    static func decodeRows<F: BlockFormat>(_: F.Type, x: UnsafePointer<Float>, tokens: Int = 1, projections: [Projection], rowBytes: Int,
                                           blocks: Int, _ range: Range<Int>) {
        var start = 0
        for p in projections {
            let rows = p.weight.shape[0]
            let lo = max(range.lowerBound, start), hi = min(range.upperBound, start + rows)
            if lo < hi, tokens == 1 {
                decodeRows(F.self, x: x, p.weight.data, rowBytes: rowBytes, blocks: blocks, (lo - start)..<(hi - start), bias: p.bias, out: p.out)
            } else if lo < hi {
                decodeRows(F.self, x: x, tokens: tokens, p.weight.data, rows: rows, rowBytes: rowBytes, blocks: blocks, (lo - start)..<(hi - start),
                           bias: p.bias, out: p.out)
            }
            start += rows
        }
    }

    /// Rows `range` of one packed matrix (of `rows`) against several tokens: four consecutive rows at a time
    /// (past the end, the last row again, its results not stored), up to eight tokens at a time while more
    /// than four are left, then the last four or fewer.
    @inline(__always)
    static func decodeRows<F: BlockFormat>(_: F.Type, x: UnsafePointer<Float>, tokens: Int, _ base: UnsafeRawPointer, rows: Int, rowBytes: Int,
                                           blocks: Int, _ range: Range<Int>, bias: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>) {
        let cols = blocks * 32
        var r = range.lowerBound
        while r < range.upperBound {
            let n = min(4, range.upperBound - r)
            let w = (base + r * rowBytes, base + (r + min(1, n - 1)) * rowBytes, base + (r + min(2, n - 1)) * rowBytes, base + (r + min(3, n - 1)) * rowBytes)
            var t = 0
            while tokens - t > 4 {
                let count = min(8, tokens - t)
                RowDot.eightTokens(x + t * cols, stride: cols, count: count, packedRows: w, F.self, blocks: blocks) { k, sums in
                    let o = out + (t + k) * rows
                    for j in 0..<n { o[r + j] = sums[j] + (bias?[r + j] ?? 0) }
                }
                t += count
            }
            while t < tokens {
                let count = min(4, tokens - t)
                let d = RowDot.fourTokens(x + t * cols, stride: cols, count: count, packedRows: w, F.self, blocks: blocks)
                for k in 0..<count {
                    let sums = k == 0 ? d.0 : k == 1 ? d.1 : k == 2 ? d.2 : d.3
                    let o = out + (t + k) * rows
                    for j in 0..<n { o[r + j] = sums[j] + (bias?[r + j] ?? 0) }
                }
                t += count
            }
            r += n
        }
    }

    /// Rows `range` of one packed matrix: eight at a time, from the eight eighths of the range, so eight
    /// independent sums (one row's chain of FMAs is latency-bound) over eight sequential streams; then four
    /// consecutive rows, then one at a time.
    @inline(__always)
    static func decodeRows<F: BlockFormat>(_: F.Type, x: UnsafePointer<Float>, _ base: UnsafeRawPointer, rowBytes: Int, blocks: Int,
                                           _ range: Range<Int>, bias: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>) {
        let eighth = range.count / 8
        for i in 0..<eighth {
            let r = range.lowerBound + i
            let d = RowDot.oneToken(x, eightPackedRows: base + r * rowBytes, stride: eighth * rowBytes, F.self, blocks: blocks)
            for k in 0..<8 { out[r + k * eighth] = d[k] + (bias?[r + k * eighth] ?? 0) }
        }
        var r = range.lowerBound + 8 * eighth
        if range.upperBound - r >= 4 {
            let d = RowDot.oneToken(x, packedRows: (base + r * rowBytes, base + (r + 1) * rowBytes, base + (r + 2) * rowBytes, base + (r + 3) * rowBytes),
                                    F.self, blocks: blocks)
            for k in 0..<4 { out[r + k] = d[k] + (bias?[r + k] ?? 0) }
            r += 4
        }
        while r < range.upperBound {
            out[r] = RowDot.oneToken(x, packedRow: base + r * rowBytes, F.self, blocks: blocks) + (bias?[r] ?? 0)
            r += 1
        }
    }
}
