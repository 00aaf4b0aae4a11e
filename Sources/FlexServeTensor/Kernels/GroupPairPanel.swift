/// Prefill with fp32 activations, two groups (32 rows) at a time. `F32Activations.group` converts each vector of
/// values once for a tile of twelve tokens and meets it with one FMA per token, each broadcasting its activation from
/// memory: one load per FMA. On one core of the Intel host (a loop over L1-resident data) that shape reached 40–45% of the
/// FMA probe, where a broadcast into a register feeding two groups' FMAs reached 55–60% with the same per-block steps
/// (and ~70% without them). So the pair's values are converted to floats once per token tile, with their scales, into a
/// panel `[block][value][2 × 16 rows]`, and six tokens at a time meet it: two loads, six broadcasts and twelve FMAs per
/// value, the twelve sums and twelve totals in 24 of the 32 registers.
///
/// Per token, row and block the steps are `F32Activations.accumulate`'s: the same products in the same order into a
/// dot that starts at zero, then `blockTotal`, so the results are the same bit for bit as any other path.
struct GroupPairPanel {
    let base: UnsafeMutablePointer<SIMD16<Float>>
    let blocks: Int

    /// A block's 32 values of both groups, then d and c of each.
    private static let vectorsPerBlock = 2 * 32 + 4

    /// Forwards of at least this many tokens take panels (a panel costs a pass over the pair; a few tokens, as in
    /// speculative verification, keep `F32Activations.group`, which streams the records from memory once).
    static let minimumTokens = 24

    /// Tokens that go past a panel between fills: a multiple of six, so only a forward's last few tokens fall outside
    /// the sixes (with 128, two of every tile did, one at a time: `groupTokens` took 2.6% of a perplexity run's samples,
    /// 0.8% with 132); about as many as `IntegerLinear.tokenTile`, whose activations stay in L2.
    static let tokenTile = 132

    static func byteCount(blocks: Int) -> Int { blocks * vectorsPerBlock * 64 }

    init(_ memory: UnsafeMutableRawPointer, blocks: Int) {
        base = memory.bindMemory(to: SIMD16<Float>.self, capacity: blocks * Self.vectorsPerBlock)
        self.blocks = blocks
    }

    /// Converts groups `w0` and `w1`.
    @inline(__always)
    func fill<F: IntegerBlockFormat>(_ w0: IntegerLinear.Group, _ w1: IntegerLinear.Group, _: F.Type) {
        for b in 0..<blocks {
            IntegerLinear.prefetchAhead(w0, block: b, F.self, by: IntegerLinear.decodePrefetchBytes)
            IntegerLinear.prefetchAhead(w1, block: b, F.self, by: IntegerLinear.decodePrefetchBytes)
            let p = base + b * Self.vectorsPerBlock
            let r0 = w0.integers + b * F.groupIntegerBytes, r1 = w1.integers + b * F.groupIntegerBytes
            for v in 0..<F.floatVectors {
                let u0 = F.floatVector(r0, v), u1 = F.floatVector(r1, v)
                for f in 0..<F.floatFields {
                    let i = v * F.floatFields + f
                    p[2 * i] = F.floatField(u0, f)
                    p[2 * i + 1] = F.floatField(u1, f)
                }
            }
            let (d0, c0) = F.groupScalesAndOffsets(w0.headers + b * F.groupHeaderBytes)
            let (d1, c1) = F.groupScalesAndOffsets(w1.headers + b * F.groupHeaderBytes)
            p[64] = d0; p[65] = c0; p[66] = d1; p[67] = c1
        }
    }

    /// Tokens t..<t + 6 against the pair: `store(k, rows of w0, rows of w1)` for token t + k.
    @inline(__always)
    func sixTokens<F: IntegerBlockFormat>(_ a: F32Activations, token t: Int, _: F.Type,
                                           store: (Int, SIMD16<Float>, SIMD16<Float>) -> Void) {
        var totals = PairTile6()
        for b in 0..<blocks {
            let p = base + b * Self.vectorsPerBlock, x = a.block(t, b)
            var dots = PairTile6()
            for i in 0..<32 { dots.addProducts(p[2 * i], p[2 * i + 1], x + i) }
            dots.scale(into: &totals, p[64], p[65], p[66], p[67], F.self) { k in a.sum(t + k, b) }
        }
        totals.forEach { k, s0, s1 in store(k, s0 + SIMD16<Float>(), s1 + SIMD16<Float>()) }
    }
}

/// Two groups' sums for six consecutive tokens (token k's prepared block at `x + 32k`).
private struct PairTile6 {
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>(), a4 = SIMD16<Float>(), a5 = SIMD16<Float>()
    var b0 = SIMD16<Float>(), b1 = SIMD16<Float>(), b2 = SIMD16<Float>(), b3 = SIMD16<Float>(), b4 = SIMD16<Float>(), b5 = SIMD16<Float>()

    /// The activation is broadcast into a register once for both groups' FMAs.
    @inline(__always) mutating func addProducts(_ w0: SIMD16<Float>, _ w1: SIMD16<Float>, _ x: UnsafePointer<Float>) {
        var s = SIMD16<Float>(repeating: x[0]); a0 = a0.addingProduct(w0, s); b0 = b0.addingProduct(w1, s)
        s = SIMD16<Float>(repeating: x[32]); a1 = a1.addingProduct(w0, s); b1 = b1.addingProduct(w1, s)
        s = SIMD16<Float>(repeating: x[64]); a2 = a2.addingProduct(w0, s); b2 = b2.addingProduct(w1, s)
        s = SIMD16<Float>(repeating: x[96]); a3 = a3.addingProduct(w0, s); b3 = b3.addingProduct(w1, s)
        s = SIMD16<Float>(repeating: x[128]); a4 = a4.addingProduct(w0, s); b4 = b4.addingProduct(w1, s)
        s = SIMD16<Float>(repeating: x[160]); a5 = a5.addingProduct(w0, s); b5 = b5.addingProduct(w1, s)
    }

    @inline(__always) func scale<F: IntegerBlockFormat>(into t: inout Self, _ d0: SIMD16<Float>, _ c0: SIMD16<Float>,
                                                        _ d1: SIMD16<Float>, _ c1: SIMD16<Float>, _: F.Type, sum: (Int) -> Float) {
        t.a0 = blockTotal(t.a0, a0, d0, c0, F.self, sum(0)); t.b0 = blockTotal(t.b0, b0, d1, c1, F.self, sum(0))
        t.a1 = blockTotal(t.a1, a1, d0, c0, F.self, sum(1)); t.b1 = blockTotal(t.b1, b1, d1, c1, F.self, sum(1))
        t.a2 = blockTotal(t.a2, a2, d0, c0, F.self, sum(2)); t.b2 = blockTotal(t.b2, b2, d1, c1, F.self, sum(2))
        t.a3 = blockTotal(t.a3, a3, d0, c0, F.self, sum(3)); t.b3 = blockTotal(t.b3, b3, d1, c1, F.self, sum(3))
        t.a4 = blockTotal(t.a4, a4, d0, c0, F.self, sum(4)); t.b4 = blockTotal(t.b4, b4, d1, c1, F.self, sum(4))
        t.a5 = blockTotal(t.a5, a5, d0, c0, F.self, sum(5)); t.b5 = blockTotal(t.b5, b5, d1, c1, F.self, sum(5))
    }

    @inline(__always) func forEach(_ body: (Int, SIMD16<Float>, SIMD16<Float>) -> Void) {
        body(0, a0, b0); body(1, a1, b1); body(2, a2, b2); body(3, a3, b3); body(4, a4, b4); body(5, a5, b5)
    }
}
