#if FLEXSERVE_AVX512 || FLEXSERVE_AVX2
import _Builtin_intrinsics.intel
#endif

/// fp32 activations for `InterleavedRows`: the reference numerics (no rounding of the activations), with
/// the scales factored out of the dot products. A block's sixteen rows take
///
///     dot = Σ_i value_i · x_i       (one fused multiply-add per value, 16 rows to a vector, in a fixed order)
///
/// then `d` and the format's offset once per block (`GroupActivations`). The values are read straight out
/// of the interleaved record: each field of a 32-bit lane is masked in place and converted, so a 4-bit value
/// at bit s arrives as `q·2^s` (exact), and the activation it meets was scaled by `2^−s` when the token was
/// prepared (exact too), so every product is `q·x` (with AVX2 a 4-bit field is loaded at its byte instead, `q` or
/// `16q`: `floatField`). That is three instructions per value for sixteen rows
/// (mask, convert, FMA), where decoding rows to floats first took about eight (widen, mask, convert, scale,
/// offset, FMA for two rows at a time), and prefill reuses each converted vector for a tile of twelve tokens.
///
/// Per token and block it holds the 32 inputs in the order the kernel meets them (`prepare`), each scaled,
/// and their plain sum for the offsets.
struct F32Activations: GroupActivations {
    let values: UnsafeMutablePointer<Float>
    let sums: UnsafeMutablePointer<Float>
    let blocks: Int
    let tokens: Int

    /// Four everywhere: a token's block is one chain of dependent FMAs per group, and four groups side by side keep
    /// four chains in flight.
    static var decodeStreams: Int { 4 }

    /// Bytes of scratch for `tokens` rows of `cols` values (cols a multiple of 32).
    static func byteCount(tokens: Int, cols: Int) -> Int { 4 * tokens * cols + 4 * tokens * (cols / 32) }

    init(scratch: UnsafeMutableRawPointer, tokens: Int, cols: Int) {
        blocks = cols / 32
        self.tokens = tokens
        values = scratch.bindMemory(to: Float.self, capacity: tokens * cols + tokens * blocks)
        sums = values + tokens * cols
    }

    /// Token t's block b, ready for `F`'s kernel. Blocks are stored block-major (`[block][token][32]`), so a tile of
    /// tokens finds token t + k's block 32k floats further on.
    @inline(__always)
    func block(_ t: Int, _ b: Int) -> UnsafePointer<Float> { UnsafePointer(values + (b * tokens + t) * 32) }

    /// The plain sum of token t's block b.
    @inline(__always)
    func sum(_ t: Int, _ b: Int) -> Float { sums[b * tokens + t] }

    func prepare<F: IntegerBlockFormat>(_ x: UnsafePointer<Float>, token t: Int, _: F.Type) {
        prepare(x, token: t, blocks: 0..<blocks, F.self)
    }

    /// Blocks `range` of token t: 4-bit records take columns k and 16 + k at places 2k and 2k + 1, 8-bit ones the
    /// columns in order (`fieldScale`); the scales repeat every eight places. (Place by place, with each scale's
    /// exponent worked out and one running sum, this took 5% of a prefill.)
    func prepare<F: IntegerBlockFormat>(_ x: UnsafePointer<Float>, token t: Int, blocks range: Range<Int>, _: F.Type) {
        var scales = SIMD8<Float>()
        for i in 0..<8 { scales[i] = F.fieldScale(i % F.floatFields) }
        for b in range {
            let src = UnsafeRawPointer(x + b * 32), dst = UnsafeMutableRawPointer(values + (b * tokens + t) * 32)
            @inline(__always) func load8(_ i: Int) -> SIMD8<Float> { src.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self) }
            let x0 = load8(0), x1 = load8(8), x2 = load8(16), x3 = load8(24)
            @inline(__always) func interleaved(_ lo: SIMD8<Float>, _ hi: SIMD8<Float>, _ k: Int) -> SIMD8<Float> {
                SIMD8(lo[k], hi[k], lo[k + 1], hi[k + 1], lo[k + 2], hi[k + 2], lo[k + 3], hi[k + 3])
            }
            let places = F.valueBits == 4
                ? (interleaved(x0, x2, 0), interleaved(x0, x2, 4), interleaved(x1, x3, 0), interleaved(x1, x3, 4))
                : (x0, x1, x2, x3)
            dst.storeBytes(of: places.0 * scales, as: SIMD8<Float>.self)
            dst.storeBytes(of: places.1 * scales, toByteOffset: 32, as: SIMD8<Float>.self)
            dst.storeBytes(of: places.2 * scales, toByteOffset: 64, as: SIMD8<Float>.self)
            dst.storeBytes(of: places.3 * scales, toByteOffset: 96, as: SIMD8<Float>.self)
            sums[b * tokens + t] = RowDot.horizontalSum((x0 + x1) + (x2 + x3))
        }
    }

    /// Every path takes, per token and block, `total = dot·d (+ total)`, then `total += c·Σx` where the values are
    /// unsigned; `offsets` stay zero (the caller's `sums + offsets` adds +0 in every path alike).
    @inline(__always)
    func accumulate<F: IntegerBlockFormat>(_ sums: inout SIMD16<Float>, _ offsets: inout SIMD16<Float>, token t: Int, block b: Int,
                                           _ integers: UnsafeRawPointer, scales d: SIMD16<Float>, offsetsPerUnit c: SIMD16<Float>, _: F.Type) {
        var dot = TokenTiles<1>(), total = TokenTiles<1>()
        total.s0 = sums
        floatDots(&dot, integers, block(t, b), F.self)
        dot.scale(into: &total, d, c, F.self) { _ in sum(t, b) }
        sums = total.s0
    }

    /// The four groups' dots side by side: one chain of FMAs per group (a chain alone waits on each FMA's latency).
    @inline(__always)
    func accumulate<F: IntegerBlockFormat>(_ sums: inout FourSums, _ offsets: inout FourSums, block b: Int,
                                           _ w: (IntegerLinear.Group, IntegerLinear.Group, IntegerLinear.Group, IntegerLinear.Group), _: F.Type) {
        let x = block(0, b), record = b * F.groupIntegerBytes, header = b * F.groupHeaderBytes
        var dots = FourSums()
        #if FLEXSERVE_AVX2
        let p0 = w.0.integers + record, p1 = w.1.integers + record, p2 = w.2.integers + record, p3 = w.3.integers + record
        if F.valueBits == 4 {
            // Eight chains of FMAs (four groups, two 256-bit halves each), each byte loaded where its two fields are used
            // (`floatField`). Two groups at a time, their values in registers, left four chains waiting on the FMA
            // latency (`bench kernels` on Zen 3, one token: Q4_1 and int4 43–46% → 47–50% of the FMA peak).
            for v in 0..<F.floatVectors {
                let r = (F.floatVector(p0, v), F.floatVector(p1, v), F.floatVector(p2, v), F.floatVector(p3, v))
                for f in stride(from: 0, to: F.floatFields, by: 2) {
                    let xa = SIMD16<Float>(repeating: x[v * F.floatFields + f])
                    let xb = SIMD16<Float>(repeating: x[v * F.floatFields + f + 1])
                    @inline(__always) func fields(_ s: inout SIMD16<Float>, _ r: RecordVector) {
                        s = s.addingProduct(F.floatField(r, f), xa)
                        s = s.addingProduct(F.floatField(r, f + 1), xb)
                    }
                    fields(&dots.s0, r.0); fields(&dots.s1, r.1); fields(&dots.s2, r.2); fields(&dots.s3, r.3)
                }
            }
        } else {
            // Bytes two groups at a time, their values in registers: four groups spilled them.
            @inline(__always) func two(_ a: inout SIMD16<Float>, _ b: inout SIMD16<Float>, _ ga: UnsafeRawPointer, _ gb: UnsafeRawPointer) {
                for v in 0..<F.floatVectors {
                    let ua = F.floatVector(ga, v), ub = F.floatVector(gb, v)
                    for f in 0..<F.floatFields {
                        let xi = SIMD16<Float>(repeating: x[v * F.floatFields + f])
                        // Signed bytes from the registers here (one token 39–40% of the FMA peak against 36–37% loaded at
                        // their byte, as the tiles take them: 76–77% against 71–72% for six tokens, whose values spilled).
                        @inline(__always) func field(_ r: RecordVector) -> SIMD16<Float> {
                            F.signedBytes ? F.signedByteFloats(r.lanes, f) : F.floatField(r, f)
                        }
                        a = a.addingProduct(field(ua), xi); b = b.addingProduct(field(ub), xi)
                    }
                }
            }
            two(&dots.s0, &dots.s1, p0, p1)
            two(&dots.s2, &dots.s3, p2, p3)
        }
        #else
        for v in 0..<F.floatVectors {
            let u0 = F.floatVector(w.0.integers + record, v), u1 = F.floatVector(w.1.integers + record, v)
            let u2 = F.floatVector(w.2.integers + record, v), u3 = F.floatVector(w.3.integers + record, v)
            for f in 0..<F.floatFields {
                let xi = SIMD16<Float>(repeating: x[v * F.floatFields + f])
                dots.s0 = dots.s0.addingProduct(F.floatField(u0, f), xi); dots.s1 = dots.s1.addingProduct(F.floatField(u1, f), xi)
                dots.s2 = dots.s2.addingProduct(F.floatField(u2, f), xi); dots.s3 = dots.s3.addingProduct(F.floatField(u3, f), xi)
            }
        }
        #endif
        let sum = self.sum(0, b)
        @inline(__always) func scale(_ s: inout SIMD16<Float>, _ dot: SIMD16<Float>, _ g: IntegerLinear.Group) {
            let (d, c) = F.groupScalesAndOffsets(g.headers + header)
            s = blockTotal(s, dot, d, c, F.self, sum)
        }
        scale(&sums.s0, dots.s0, w.0); scale(&sums.s1, dots.s1, w.1)
        scale(&sums.s2, dots.s2, w.2); scale(&sums.s3, dots.s3, w.3)
    }

    /// A tile of tokens t..<t + T.tokens against one group (prefill, verification): each converted vector of values
    /// meets every token of the tile; per token the steps of `accumulate`. `store(k, sums)` gets token t + k's rows.
    /// A pass that streams the group from memory asks for the lines `prefetch` bytes ahead (`IntegerLinear.prefetchAhead`).
    @inline(__always)
    func group<F: IntegerBlockFormat, T: TokenTile>(_: T.Type, token t: Int, _ w: IntegerLinear.Group, _: F.Type, prefetch: Int,
                                                    store: (Int, SIMD16<Float>) -> Void) {
        var totals = T()
        /// Blocks b..<b + u (u ≤ 4) side by side: their dots are independent chains, their steps into the totals in order.
        @inline(__always) func sideBySide(_ b: Int, _ u: Int) {
            for i in 0..<u { IntegerLinear.prefetchAhead(w, block: b + i, F.self, by: prefetch) }
            var dots = (T(), T(), T(), T())
            floatDots(&dots, blocks: u, w.integers + b * F.groupIntegerBytes, block(t, b), blockStride: 32 * tokens, F.self)
            @inline(__always) func scale(_ dots: T, _ i: Int) {
                let (d, c) = F.groupScalesAndOffsets(w.headers + (b + i) * F.groupHeaderBytes)
                dots.scale(into: &totals, d, c, F.self) { k in sum(t + k, b + i) }
            }
            scale(dots.0, 0)
            if u > 1 { scale(dots.1, 1) }
            if u > 2 { scale(dots.2, 2) }
            if u > 3 { scale(dots.3, 3) }
        }
        let u = T.blocksSideBySide
        var b = 0
        while b + u <= blocks { sideBySide(b, u); b += u }
        while b < blocks { sideBySide(b, 1); b += 1 }
        totals.forEach { k, total in store(k, total + SIMD16<Float>()) }
    }
}

/// One block of a group's sixteen rows against a tile of tokens' prepared blocks (token k's at `x + 32k`), into `dots`.
/// The fields are written out so each mask and activation offset is a constant (the compiler does not unroll this).
@inline(__always)
func floatDots<F: IntegerBlockFormat, T: TokenTile>(_ dots: inout T, _ integers: UnsafeRawPointer, _ x: UnsafePointer<Float>, _: F.Type) {
    for v in 0..<F.floatVectors {
        let u = F.floatVector(integers, v)
        @inline(__always) func field(_ f: Int) { dots.addProducts(F.floatField(u, f), x + v * F.floatFields + f) }
        field(0); field(1); field(2); field(3)
        if F.floatFields == 8 { field(4); field(5); field(6); field(7) }
    }
}

/// Blocks b..<b + u (u ≤ 4, a constant where inlined) of a group against a tile of tokens, into `dots.0` to `dots.3`:
/// block b + i's record `i · groupIntegerBytes` on from `integers`, its prepared activations `i · blockStride` floats on
/// from `x`. Each block's dot is a chain of dependent FMAs per token; a tile of a few tokens alone waits on their
/// latency, so the blocks' FMAs are interleaved, field by field. Each block's products are `floatDots`' in its order.
@inline(__always)
func floatDots<F: IntegerBlockFormat, T: TokenTile>(_ dots: inout (T, T, T, T), blocks u: Int, _ integers: UnsafeRawPointer,
                                                     _ x: UnsafePointer<Float>, blockStride: Int, _: F.Type) {
    if u == 1 { return floatDots(&dots.0, integers, x, F.self) }
    let record = F.groupIntegerBytes
    for v in 0..<F.floatVectors {
        let u0 = F.floatVector(integers, v), u1 = F.floatVector(integers + record, v)
        let u2 = u > 2 ? F.floatVector(integers + 2 * record, v) : u0, u3 = u > 3 ? F.floatVector(integers + 3 * record, v) : u0
        let xv = x + v * F.floatFields
        @inline(__always) func field(_ f: Int) {
            dots.0.addProducts(F.floatField(u0, f), xv + f)
            dots.1.addProducts(F.floatField(u1, f), xv + blockStride + f)
            if u > 2 { dots.2.addProducts(F.floatField(u2, f), xv + 2 * blockStride + f) }
            if u > 3 { dots.3.addProducts(F.floatField(u3, f), xv + 3 * blockStride + f) }
        }
        field(0); field(1); field(2); field(3)
        if F.floatFields == 8 { field(4); field(5); field(6); field(7) }
    }
}

/// A block's step into a token's total, the same in every path: `total + dot·d`, then `+ c·Σx` unless the values are signed.
@inline(__always)
func blockTotal<F: IntegerBlockFormat>(_ total: SIMD16<Float>, _ dot: SIMD16<Float>, _ d: SIMD16<Float>, _ c: SIMD16<Float>,
                                       _: F.Type, _ sum: @autoclosure () -> Float) -> SIMD16<Float> {
    let t = total.addingProduct(dot, d)
    return F.signedBytes ? t : t.addingProduct(c, sum())
}

/// Sixteen rows' sums for a tile of consecutive tokens, in registers.
protocol TokenTile {
    /// How many consecutive blocks a pass takes side by side (`F32Activations.group`).
    static var blocksSideBySide: Int { get }
    init()
    /// s_k += w · x[32k] for each token k.
    mutating func addProducts(_ w: SIMD16<Float>, _ x: UnsafePointer<Float>)
    /// total_k += s_k · d, then total_k += c · sum(k) unless the format's values are signed.
    func scale<F: IntegerBlockFormat>(into totals: inout Self, _ d: SIMD16<Float>, _ c: SIMD16<Float>, _: F.Type, sum: (Int) -> Float)
    func forEach(_ body: (Int, SIMD16<Float>) -> Void)
}

/// Sixteen rows' sums for a tile of `n` consecutive tokens (1 to 12) in registers, each width a specialization of its
/// own in which the tests of `n` fold away. A forward's tokens take tiles of twelve (six with AVX2), then the rest in one
/// pass, each converted vector of values meeting all of them: every pass converts the values again. Twelve chains of
/// FMAs are more than the eight that keep two FMA units busy at four cycles' latency, and with their totals take 24 of
/// the 32 vector registers; AVX2's sixteen registers hold six tokens' sums (twelve) beside the values.
struct TokenTiles<let n: Int>: TokenTile {
    var s0 = SIMD16<Float>(), s1 = SIMD16<Float>(), s2 = SIMD16<Float>(), s3 = SIMD16<Float>()
    var s4 = SIMD16<Float>(), s5 = SIMD16<Float>(), s6 = SIMD16<Float>(), s7 = SIMD16<Float>()
    var s8 = SIMD16<Float>(), s9 = SIMD16<Float>(), s10 = SIMD16<Float>(), s11 = SIMD16<Float>()

    init() {}

    /// Enough chains of FMAs (tokens × blocks) to keep two FMA units busy at four cycles' latency, beside the values'
    /// conversions (two instructions a vector); with AVX2 the sixteen registers leave no room.
    static var blocksSideBySide: Int {
        #if FLEXSERVE_AVX2
        1
        #else
        n <= 2 ? 4 : n == 3 ? 3 : n <= 10 ? 2 : 1
        #endif
    }

    /// The first `n` sums from `p`.
    @inline(__always) init(_ p: UnsafePointer<SIMD16<Float>>) {
        s0 = p[0]
        if n > 1 { s1 = p[1] }
        if n > 2 { s2 = p[2] }
        if n > 3 { s3 = p[3] }
        if n > 4 { s4 = p[4] }
        if n > 5 { s5 = p[5] }
        if n > 6 { s6 = p[6] }
        if n > 7 { s7 = p[7] }
        if n > 8 { s8 = p[8] }
        if n > 9 { s9 = p[9] }
        if n > 10 { s10 = p[10] }
        if n > 11 { s11 = p[11] }
    }

    @inline(__always) mutating func addProducts(_ w: SIMD16<Float>, _ x: UnsafePointer<Float>) {
        s0 = s0.addingProduct(w, x[0])
        if n > 1 { s1 = s1.addingProduct(w, x[32]) }
        if n > 2 { s2 = s2.addingProduct(w, x[64]) }
        if n > 3 { s3 = s3.addingProduct(w, x[96]) }
        if n > 4 { s4 = s4.addingProduct(w, x[128]) }
        if n > 5 { s5 = s5.addingProduct(w, x[160]) }
        if n > 6 { s6 = s6.addingProduct(w, x[192]) }
        if n > 7 { s7 = s7.addingProduct(w, x[224]) }
        if n > 8 { s8 = s8.addingProduct(w, x[256]) }
        if n > 9 { s9 = s9.addingProduct(w, x[288]) }
        if n > 10 { s10 = s10.addingProduct(w, x[320]) }
        if n > 11 { s11 = s11.addingProduct(w, x[352]) }
    }

    @inline(__always) func scale<F: IntegerBlockFormat>(into t: inout Self, _ d: SIMD16<Float>, _ c: SIMD16<Float>, _: F.Type,
                                                        sum: (Int) -> Float) {
        t.s0 = blockTotal(t.s0, s0, d, c, F.self, sum(0))
        if n > 1 { t.s1 = blockTotal(t.s1, s1, d, c, F.self, sum(1)) }
        if n > 2 { t.s2 = blockTotal(t.s2, s2, d, c, F.self, sum(2)) }
        if n > 3 { t.s3 = blockTotal(t.s3, s3, d, c, F.self, sum(3)) }
        if n > 4 { t.s4 = blockTotal(t.s4, s4, d, c, F.self, sum(4)) }
        if n > 5 { t.s5 = blockTotal(t.s5, s5, d, c, F.self, sum(5)) }
        if n > 6 { t.s6 = blockTotal(t.s6, s6, d, c, F.self, sum(6)) }
        if n > 7 { t.s7 = blockTotal(t.s7, s7, d, c, F.self, sum(7)) }
        if n > 8 { t.s8 = blockTotal(t.s8, s8, d, c, F.self, sum(8)) }
        if n > 9 { t.s9 = blockTotal(t.s9, s9, d, c, F.self, sum(9)) }
        if n > 10 { t.s10 = blockTotal(t.s10, s10, d, c, F.self, sum(10)) }
        if n > 11 { t.s11 = blockTotal(t.s11, s11, d, c, F.self, sum(11)) }
    }

    @inline(__always) func forEach(_ body: (Int, SIMD16<Float>) -> Void) {
        body(0, s0)
        if n > 1 { body(1, s1) }
        if n > 2 { body(2, s2) }
        if n > 3 { body(3, s3) }
        if n > 4 { body(4, s4) }
        if n > 5 { body(5, s5) }
        if n > 6 { body(6, s6) }
        if n > 7 { body(7, s7) }
        if n > 8 { body(8, s8) }
        if n > 9 { body(9, s9) }
        if n > 10 { body(10, s10) }
        if n > 11 { body(11, s11) }
    }
}

extension IntegerBlockFormat {
    /// 512-bit vectors of a block's integer record, and values per 32-bit lane of each.
    static var floatVectors: Int { valueBits == 4 ? 4 : 8 }
    static var floatFields: Int { 32 / floatVectors }

    /// Vector v of the record, for `floatField`: signed bytes stored offset by 128 get their sign back.
    @inline(__always)
    static func floatVector(_ p: UnsafeRawPointer, _ v: Int) -> RecordVector {
        let address = p + 64 * v, u = address.load(as: SIMD16<UInt32>.self)
        return RecordVector(address: address, lanes: signedBytes && !storedSigned ? u ^ 0x8080_8080 : u)
    }

    /// Field f of every lane as a float. 4-bit fields (and, with AVX-512, unsigned bytes) are masked in place:
    /// `q·2^s`, s = 4f (8f), three instructions a value (mask, convert, FMA); without unsigned conversion the top field
    /// is read one bit lower (`topFieldShift`). Signed bytes are moved to the top of the lane (`q·2^24`) so the
    /// conversion keeps their sign.
    ///
    /// AVX2 has sixteen registers, too few for eight masks beside a tile's sums or eight chains of FMAs, so there
    /// 4-bit fields are read by a load that starts at their byte: `q` in the lane's low nibble or `16q` in its high
    /// one, two masks for all eight fields (`bench kernels` on Zen 3, one token: 43–45% → 48–50% of the FMA peak);
    /// the loads reach three bytes past a record (`InterleavedRows.readPastEnd`). Unsigned bytes are shifted down
    /// (`q`): one mask for the four fields instead of four (int8 with 6 and 12 tokens: 48–52% → 71–75%). Signed bytes,
    /// stored as they are (`storedSigned`), are loaded at their byte and moved to the top: in registers a six-token tile
    /// spilled them (76–77% against 71–72%); the one-token decode keeps them in registers (`signedByteFloats`), where
    /// loads that cross a cache line cost more than the spills.
    @inline(__always)
    static func floatField(_ r: RecordVector, _ f: Int) -> SIMD16<Float> {
        let u = r.lanes
        #if FLEXSERVE_AVX2
        if storedSigned { return signedFloats(r.address.loadUnaligned(fromByteOffset: f, as: SIMD16<UInt32>.self) &<< 24) }
        if valueBits == 4 {
            let w = r.address.loadUnaligned(fromByteOffset: f / 2, as: SIMD16<UInt32>.self)
            return signedFloats(w & SIMD16(repeating: f % 2 == 0 ? 0x0F : 0xF0))
        }
        #endif
        if signedBytes { return signedByteFloats(u, f) }
        #if !FLEXSERVE_AVX512
        if valueBits == 8 {
            let down = f == 0 ? u : u &>> UInt32(8 * f)
            return signedFloats(f == floatFields - 1 ? down : down & SIMD16(repeating: 0xFF))
        }
        #endif
        let shift = f == floatFields - 1 ? topFieldShift : 0
        let field = UInt32((1 << valueBits) - 1) << UInt32(valueBits * f - shift)
        return fieldFloats((shift == 0 ? u : u &>> UInt32(shift)) & SIMD16(repeating: field))
    }

    /// Signed byte f of every lane moved to the top (`q·2^24`), from the lanes in registers.
    @inline(__always)
    static func signedByteFloats(_ u: SIMD16<UInt32>, _ f: Int) -> SIMD16<Float> {
        signedFloats((u &<< UInt32(24 - 8 * f)) & SIMD16(repeating: 0xFF00_0000))
    }

    /// The power of two that undoes field f's position (`floatField`), which its activation is prepared with. Field
    /// f of vector v holds, for 4-bit records, column 4v + f/2 (low nibble) or 16 + 4v + f/2 (high); for 8-bit ones
    /// column 4v + f (v < 4) or 16 + 4(v − 4) + f (`packGroupIntegers`): the kernel's i-th value (i = v · floatFields
    /// + f) meets column i of 8-bit records and, of 4-bit ones, column i/2 (i even) or 16 + i/2 (odd)
    /// (`F32Activations.prepare`).
    @inline(__always)
    static func fieldScale(_ f: Int) -> Float {
        #if FLEXSERVE_AVX2
        let shift = signedBytes ? 24 : valueBits == 4 ? 4 * (f % 2) : 0
        #else
        #if FLEXSERVE_AVX512
        let inPlace = true
        #else
        let inPlace = valueBits == 4
        #endif
        let shift = signedBytes ? 24 : inPlace ? valueBits * f - (f == floatFields - 1 ? topFieldShift : 0) : 0
        #endif
        return Float(sign: .plus, exponent: -shift, significand: 1)
    }
}

/// Vector v of a block's record (`floatVector`): its lanes, and where it lies for kernels that load a field at its byte.
struct RecordVector {
    let address: UnsafeRawPointer
    let lanes: SIMD16<UInt32>
}

/// How far a lane's top field is moved down before conversion: AVX-512 converts unsigned 32-bit integers; without it
/// a field reaching bit 31 would read as negative, so it is read one bit lower (its activation one power of two larger).
#if FLEXSERVE_AVX512
private let topFieldShift = 0
#else
private let topFieldShift = 1
#endif

/// A field's lanes as floats: unsigned on AVX-512, below 2^31 (`topFieldShift`) elsewhere.
@inline(__always)
private func fieldFloats(_ u: SIMD16<UInt32>) -> SIMD16<Float> {
    #if FLEXSERVE_AVX512
    _mm512_cvtepu32_ps(unsafeBitCast(u, to: __m512i.self))
    #else
    signedFloats(u)
    #endif
}

@inline(__always)
private func signedFloats(_ u: SIMD16<UInt32>) -> SIMD16<Float> {
    #if FLEXSERVE_AVX512
    _mm512_cvtepi32_ps(unsafeBitCast(u, to: __m512i.self))
    #elseif FLEXSERVE_AVX2
    let (low, high) = unsafeBitCast(u, to: (__m256i, __m256i).self)
    return unsafeBitCast((_mm256_cvtepi32_ps(low), _mm256_cvtepi32_ps(high)), to: SIMD16<Float>.self)
    #else
    var r = SIMD16<Float>()
    for k in 0..<16 { r[k] = Float(Int32(bitPattern: u[k])) }
    return r
    #endif
}
