#if FLEXSERVE_AVX512
import _Builtin_intrinsics.intel

/// Sixteen rows' sums and offsets for a tile of `n` consecutive tokens (1 to 8) with `q8` activations, in registers
/// (prefill, verification, a batch's decode step): each chunk of a block's integers meets every token of the tile,
/// one `vpdpbusd` per chunk and token, and each token's block then takes `IntegerLinear.accumulate`'s step, so the
/// results are decoding's bit for bit (the integer sums are exact in any order).
///
/// A block's eight `vpdpbusd` per token are the arithmetic; the rest of its step (convert, scale, two FMAs) and the
/// chunks' unpacking are overhead on the same two vector ports, the unpacking shared by the tile. Four tokens at a
/// time spent about 45 cycles a block of 4-bit rows where the ports allow 34; eight share the unpacking twice as far
/// and drop the add of a second chain (28 of the 32 vector registers: 16 sums and offsets, 8 chains, a record vector,
/// its chunk, d and c; nothing spills).
struct Q8TokenTiles<let n: Int> {
    var s0 = SIMD16<Float>(), s1 = SIMD16<Float>(), s2 = SIMD16<Float>(), s3 = SIMD16<Float>()
    var s4 = SIMD16<Float>(), s5 = SIMD16<Float>(), s6 = SIMD16<Float>(), s7 = SIMD16<Float>()
    var o0 = SIMD16<Float>(), o1 = SIMD16<Float>(), o2 = SIMD16<Float>(), o3 = SIMD16<Float>()
    var o4 = SIMD16<Float>(), o5 = SIMD16<Float>(), o6 = SIMD16<Float>(), o7 = SIMD16<Float>()

    /// Whether each token's block takes two chains of `vpdpbusd` (values 0..<16 and 16..<32, added): a few tokens' single
    /// chains of eight would wait on the five-cycle latency.
    static var twoChains: Bool { n <= 4 }

    /// Tokens t..<t + n against group `w`: `store(k, rows)` with token t + k's sixteen results. A pass that streams the
    /// group from memory asks for the lines `prefetch` bytes ahead (`IntegerLinear.prefetchAhead`).
    @inline(__always)
    static func run<F: IntegerBlockFormat>(_ a: Q8Activations, token t: Int, _ w: IntegerLinear.Group, _: F.Type, prefetch: Int,
                                           store: (Int, SIMD16<Float>) -> Void) {
        var tile = Self()
        for b in 0..<a.blocks {
            IntegerLinear.prefetchAhead(w, block: b, F.self, by: prefetch)
            let (d, c) = F.groupScalesAndOffsets(w.headers + b * F.groupHeaderBytes)
            let i = a.index(t, b)
            tile.add(w.integers + b * F.groupIntegerBytes, UnsafeRawPointer(a.values + 32 * i), scales: a.scales + i,
                     scaledSums: a.scaledSums + i, d, c, F.self)
        }
        tile.forEach(store)
    }

    /// One block of the group (`integers`, its interleaved record) against the tile's blocks of activations (token k's
    /// values at `x + 32k`, its scale and scaled sum k on from `scales` and `scaledSums`).
    @inline(__always)
    mutating func add<F: IntegerBlockFormat>(_ integers: UnsafeRawPointer, _ x: UnsafeRawPointer, scales: UnsafePointer<Float>,
                                             scaledSums: UnsafePointer<Float>, _ d: SIMD16<Float>, _ c: SIMD16<Float>, _: F.Type) {
        let zero = _mm512_setzero_si512()
        var a0 = zero, a1 = zero, a2 = zero, a3 = zero, a4 = zero, a5 = zero, a6 = zero, a7 = zero
        var b0 = zero, b1 = zero, b2 = zero, b3 = zero
        // The unmasked intrinsic is a C macro Swift cannot import; an all-ones mask compiles to plain vpdpbusd.
        @inline(__always) func dot(_ sum: __m512i, _ u: __m512i, _ k: Int, _ i: Int) -> __m512i {
            _mm512_maskz_dpbusd_epi32(0xFFFF, sum, u, _mm512_set1_epi32(x.loadUnaligned(fromByteOffset: 32 * k + 4 * i, as: Int32.self)))
        }
        @inline(__always) func chunk(_ i: Int) {
            let u = F.groupChunk(integers, i)
            if Self.twoChains && i >= 4 {
                b0 = dot(b0, u, 0, i)
                if n > 1 { b1 = dot(b1, u, 1, i) }
                if n > 2 { b2 = dot(b2, u, 2, i) }
                if n > 3 { b3 = dot(b3, u, 3, i) }
                return
            }
            a0 = dot(a0, u, 0, i)
            if n > 1 { a1 = dot(a1, u, 1, i) }
            if n > 2 { a2 = dot(a2, u, 2, i) }
            if n > 3 { a3 = dot(a3, u, 3, i) }
            if n > 4 { a4 = dot(a4, u, 4, i) }
            if n > 5 { a5 = dot(a5, u, 5, i) }
            if n > 6 { a6 = dot(a6, u, 6, i) }
            if n > 7 { a7 = dot(a7, u, 7, i) }
        }
        // A 4-bit record's vector holds chunks i and i + 4: each is used while it is in a register.
        chunk(0); chunk(4); chunk(1); chunk(5); chunk(2); chunk(6); chunk(3); chunk(7)
        @inline(__always) func step(_ s: inout SIMD16<Float>, _ o: inout SIMD16<Float>, _ a: __m512i, _ b: __m512i, _ k: Int) {
            let dots = _mm512_cvtepi32_ps(Self.twoChains ? _mm512_add_epi32(a, b) : a)
            IntegerLinear.accumulate(&s, &o, dots, scale: scales[k], scaledSum: scaledSums[k], scales: d, offsetsPerUnit: c)
        }
        step(&s0, &o0, a0, b0, 0)
        if n > 1 { step(&s1, &o1, a1, b1, 1) }
        if n > 2 { step(&s2, &o2, a2, b2, 2) }
        if n > 3 { step(&s3, &o3, a3, b3, 3) }
        if n > 4 { step(&s4, &o4, a4, zero, 4) }
        if n > 5 { step(&s5, &o5, a5, zero, 5) }
        if n > 6 { step(&s6, &o6, a6, zero, 6) }
        if n > 7 { step(&s7, &o7, a7, zero, 7) }
    }

    /// `body(k, sums + offsets)` for each token k of the tile.
    @inline(__always)
    func forEach(_ body: (Int, SIMD16<Float>) -> Void) {
        body(0, s0 + o0)
        if n > 1 { body(1, s1 + o1) }
        if n > 2 { body(2, s2 + o2) }
        if n > 3 { body(3, s3 + o3) }
        if n > 4 { body(4, s4 + o4) }
        if n > 5 { body(5, s5 + o5) }
        if n > 6 { body(6, s6 + o6) }
        if n > 7 { body(7, s7 + o7) }
    }
}

extension IntegerBlockFormat {
    /// Chunk i of a block's interleaved record (`GroupChunks`' c_i): for 4-bit formats chunks i and i + 4 share a vector.
    @inline(__always)
    static func groupChunk(_ p: UnsafeRawPointer, _ i: Int) -> __m512i {
        if valueBits == 8 { return p.load(fromByteOffset: 64 * i, as: __m512i.self) }
        let v = p.load(fromByteOffset: 64 * (i % 4), as: __m512i.self)
        return _mm512_and_si512(i < 4 ? v : _mm512_srli_epi16(v, 4), _mm512_set1_epi8(15))
    }
}
#endif
