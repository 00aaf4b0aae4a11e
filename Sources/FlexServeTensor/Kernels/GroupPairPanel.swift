/// Prefill with fp32 activations, two groups (32 rows) at a time. `F32Activations.group` converts each vector of
/// values once for a tile of twelve tokens and meets it with one FMA per token, each broadcasting its activation from
/// memory: one load per FMA. Measured alone on one core of the Intel host, that loop reached 39–64% of the FMA probe;
/// two groups against six tokens, each activation broadcast into a register for both groups' FMAs, with the per-block
/// steps, 42–65% with the weights' floats in L2 and 78–88% with them in L1 (docs/cpu-performance.md). So the pair's
/// values are converted to floats, with their scales, into a panel `[block][value][2 × 16 rows]` of `chunkBlocks`
/// blocks that stays in L1 while every six tokens of a tile meet it (two loads, six broadcasts and twelve FMAs per
/// value, the twelve sums and twelve totals in 24 of the 32 registers); each six tokens' totals wait in memory for the
/// next chunk.
///
/// Per token, row and block the steps are `F32Activations.accumulate`'s: the same products in the same order into a
/// dot that starts at zero, then `blockTotal` (a total stored and loaded back is the same float), so the results are
/// the same bit for bit as any other path.
struct GroupPairPanel {
    private let panel: UnsafeMutablePointer<SIMD16<Float>>
    private let totals: UnsafeMutablePointer<SIMD16<Float>>

    /// A block's 32 values of both groups, then d and c of each.
    private static let vectorsPerBlock = 2 * 32 + 4

    /// Blocks converted at a time: 17 KB of floats, in L1 beside the tile's totals (17 KB) and the activations going past.
    static let chunkBlocks = 4

    /// Forwards of at least this many tokens take panels (a few tokens, as in speculative verification, keep
    /// `F32Activations.group`, which streams the records from memory once).
    static let minimumTokens = 24

    /// Tokens that go past a panel: a multiple of six, so only a forward's last few tokens fall outside the sixes (with
    /// 128, two of every tile did, one at a time: `groupTokens` took 2.6% of a perplexity run's samples, 0.8% with 132);
    /// about as many as `IntegerLinear.tokenTile`, whose activations stay in L2.
    static let tokenTile = 132

    static var byteCount: Int { (chunkBlocks * vectorsPerBlock + tokenTile / 6 * 12) * 64 }

    init(_ memory: UnsafeMutableRawPointer) {
        panel = memory.bindMemory(to: SIMD16<Float>.self, capacity: Self.byteCount / 64)
        totals = panel + Self.chunkBlocks * Self.vectorsPerBlock
    }

    /// Groups `w0` and `w1` against tokens `tokens` (a multiple of six, at most `tokenTile`): `store(t, rows of w0,
    /// rows of w1)` for each token t.
    @inline(__always)
    func run<F: IntegerBlockFormat>(_ w0: IntegerLinear.Group, _ w1: IntegerLinear.Group, _ a: F32Activations, tokens: Range<Int>,
                                    _: F.Type, store: (Int, SIMD16<Float>, SIMD16<Float>) -> Void) {
        let passes = tokens.count / 6
        guard passes > 0 else { return }
        for first in stride(from: 0, to: a.blocks, by: Self.chunkBlocks) {
            let chunk = first..<min(a.blocks, first + Self.chunkBlocks)
            fill(w0, w1, chunk, F.self)
            for p in 0..<passes {
                let t = tokens.lowerBound + 6 * p
                #if FLEXSERVE_AVX2
                // Sixteen 256-bit registers hold one group's sums for six tokens, its values and the activation, not
                // two groups' (two groups for three tokens, with their values, spilled one sum every step).
                pass(GroupTile6<FirstGroup>.self, a, token: t, blocks: chunk, totals: totals + 12 * p, F.self)
                pass(GroupTile6<SecondGroup>.self, a, token: t, blocks: chunk, totals: totals + 12 * p, F.self)
                #else
                pass(PairTile6.self, a, token: t, blocks: chunk, totals: totals + 12 * p, F.self)
                #endif
            }
        }
        // + 0, as the other paths' `sums + offsets`, so a −0 total comes out +0 in every path alike.
        for p in 0..<passes {
            let t = totals + 12 * p
            for k in 0..<6 { store(tokens.lowerBound + 6 * p + k, t[k] + SIMD16<Float>(), t[6 + k] + SIMD16<Float>()) }
        }
    }

    /// Converts blocks `chunk` of groups `w0` and `w1`.
    @inline(__always)
    private func fill<F: IntegerBlockFormat>(_ w0: IntegerLinear.Group, _ w1: IntegerLinear.Group, _ chunk: Range<Int>, _: F.Type) {
        for b in chunk {
            IntegerLinear.prefetchAhead(w0, block: b, F.self, by: IntegerLinear.decodePrefetchBytes)
            IntegerLinear.prefetchAhead(w1, block: b, F.self, by: IntegerLinear.decodePrefetchBytes)
            let p = panel + (b - chunk.lowerBound) * Self.vectorsPerBlock
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

    /// Tokens t..<t + 6 over blocks `chunk` of the panel, their totals carried in `totals` (zero before the first block).
    @inline(__always)
    private func pass<T: PairTile, F: IntegerBlockFormat>(_: T.Type, _ a: F32Activations, token t: Int, blocks chunk: Range<Int>,
                                                          totals memory: UnsafeMutablePointer<SIMD16<Float>>, _: F.Type) {
        var totals = chunk.lowerBound == 0 ? T() : T(memory)
        for b in chunk {
            let p = panel + (b - chunk.lowerBound) * Self.vectorsPerBlock, x = a.block(t, b)
            var dots = T()
            for i in 0..<32 { dots.addProducts(p[2 * i], p[2 * i + 1], x + i) }
            dots.scale(into: &totals, p[64], p[65], p[66], p[67], F.self) { k in a.sum(t + k, b) }
        }
        totals.store(memory)
    }
}

/// Sums of the pair's groups, both (`PairTile6`) or one (`GroupTile6`), for six consecutive tokens (token k's prepared
/// block at `x + 32k`); in memory, token k's sums of the first group at `p[k]` and of the second at `p[6 + k]`.
private protocol PairTile {
    init()
    init(_ p: UnsafePointer<SIMD16<Float>>)
    func store(_ p: UnsafeMutablePointer<SIMD16<Float>>)
    mutating func addProducts(_ w0: SIMD16<Float>, _ w1: SIMD16<Float>, _ x: UnsafePointer<Float>)
    func scale<F: IntegerBlockFormat>(into t: inout Self, _ d0: SIMD16<Float>, _ c0: SIMD16<Float>,
                                      _ d1: SIMD16<Float>, _ c1: SIMD16<Float>, _: F.Type, sum: (Int) -> Float)
}

private protocol PairMember { static var index: Int { get } }
private enum FirstGroup: PairMember { static var index: Int { 0 } }
private enum SecondGroup: PairMember { static var index: Int { 1 } }

/// One group of the pair (`G`), six tokens: `TokenTiles<6>`'s sums and steps.
private struct GroupTile6<G: PairMember>: PairTile {
    var tile = TokenTiles<6>()

    init() {}

    @inline(__always) init(_ p: UnsafePointer<SIMD16<Float>>) {
        tile = TokenTiles<6>(p + 6 * G.index)
    }

    @inline(__always) func store(_ p: UnsafeMutablePointer<SIMD16<Float>>) {
        let q = p + 6 * G.index
        tile.forEach { k, s in q[k] = s }
    }

    @inline(__always) mutating func addProducts(_ w0: SIMD16<Float>, _ w1: SIMD16<Float>, _ x: UnsafePointer<Float>) {
        tile.addProducts(G.index == 0 ? w0 : w1, x)
    }

    @inline(__always) func scale<F: IntegerBlockFormat>(into t: inout Self, _ d0: SIMD16<Float>, _ c0: SIMD16<Float>,
                                                        _ d1: SIMD16<Float>, _ c1: SIMD16<Float>, _: F.Type, sum: (Int) -> Float) {
        let (d, c) = G.index == 0 ? (d0, c0) : (d1, c1)
        tile.scale(into: &t.tile, d, c, F.self, sum: sum)
    }
}

private struct PairTile6: PairTile {
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>(), a4 = SIMD16<Float>(), a5 = SIMD16<Float>()
    var b0 = SIMD16<Float>(), b1 = SIMD16<Float>(), b2 = SIMD16<Float>(), b3 = SIMD16<Float>(), b4 = SIMD16<Float>(), b5 = SIMD16<Float>()

    init() {}

    /// Tokens 0–5 of the first group at `p[0...5]`, of the second at `p[6...11]`.
    @inline(__always) init(_ p: UnsafePointer<SIMD16<Float>>) {
        (a0, a1, a2, a3, a4, a5) = (p[0], p[1], p[2], p[3], p[4], p[5])
        (b0, b1, b2, b3, b4, b5) = (p[6], p[7], p[8], p[9], p[10], p[11])
    }

    @inline(__always) func store(_ p: UnsafeMutablePointer<SIMD16<Float>>) {
        p[0] = a0; p[1] = a1; p[2] = a2; p[3] = a3; p[4] = a4; p[5] = a5
        p[6] = b0; p[7] = b1; p[8] = b2; p[9] = b3; p[10] = b4; p[11] = b5
    }

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
}
