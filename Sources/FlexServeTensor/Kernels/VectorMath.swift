#if FLEXSERVE_AVX512 || FLEXSERVE_AVX2
import _Builtin_intrinsics.intel
#endif

/// Elementary functions on eight (or sixteen) lanes at once (the C library's are scalar calls, which made
/// softmax and SiLU cost more than the matrix products around them).
public enum VectorMath {
    /// e^x within a few ulp over [-87.3, 88.3] (Cephes' expf polynomial); inputs beyond are
    /// clamped, so the result is never 0 or infinity, which softmax and SiLU tolerate.
    @inline(__always)
    public static func exp(_ x: SIMD8<Float>) -> SIMD8<Float> {
        // Masked replaces compile to two compares and blends; `clamped` is a generic call per vector, and an
        // element loop of min/max made SwiGLU's activation 3x slower (6.3 against 2.0 µs for 1,536 values).
        var v = x
        v.replace(with: SIMD8(repeating: -87.3), where: x .< -87.3)
        v.replace(with: SIMD8(repeating: 88.3), where: x .> 88.3)
        // Adding 1.5·2^23 rounds v·log2(e) to an integer n and leaves n in the low mantissa bits.
        let magic = SIMD8<Float>(repeating: 12_582_912)
        let shifted = v * 1.442_695_04 + magic
        let n = shifted - magic
        // r = v − n·ln 2, with ln 2 split in two so that the product is exact.
        let r = v.addingProduct(n, SIMD8(repeating: -0.693_359_375)).addingProduct(n, SIMD8(repeating: 2.121_944_4e-4))
        var p = SIMD8<Float>(repeating: 1.987_569_15e-4)
        p = SIMD8(repeating: 1.398_199_950_7e-3).addingProduct(p, r)
        p = SIMD8(repeating: 8.333_451_907_3e-3).addingProduct(p, r)
        p = SIMD8(repeating: 4.166_579_589_4e-2).addingProduct(p, r)
        p = SIMD8(repeating: 1.666_666_545_9e-1).addingProduct(p, r)
        p = SIMD8(repeating: 5.000_000_120_1e-1).addingProduct(p, r)
        p = (r + 1).addingProduct(p, r * r)
        let n32 = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
        return p * unsafeBitCast((n32 &+ 127) &<< 23, to: SIMD8<Float>.self)
    }

    /// `a > b ? a : b` lane by lane (`b` where either is NaN): `b.replacing(with: a, where: a .> b)`, as x86's maximum
    /// instruction. The standard library's masked replace is an element loop that LLVM vectorizes again, and around
    /// it LLVM compiled the vector that fed it lane by lane (the tile scores' scaling, through permutes).
    @inline(__always)
    public static func greater(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> {
        #if FLEXSERVE_AVX512
        _mm512_max_ps(a, b)  // `__m512` is `SIMD16<Float>`
        #elseif FLEXSERVE_AVX2
        let (a0, a1) = unsafeBitCast(a, to: (__m256, __m256).self), (b0, b1) = unsafeBitCast(b, to: (__m256, __m256).self)
        return unsafeBitCast((_mm256_max_ps(a0, b0), _mm256_max_ps(a1, b1)), to: SIMD16<Float>.self)
        #else
        b.replacing(with: a, where: a .> b)
        #endif
    }

    /// `a < b ? a : b` lane by lane (`b` where either is NaN), as `greater`.
    @inline(__always)
    public static func lesser(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> {
        #if FLEXSERVE_AVX512
        _mm512_min_ps(a, b)  // `__m512` is `SIMD16<Float>`
        #elseif FLEXSERVE_AVX2
        let (a0, a1) = unsafeBitCast(a, to: (__m256, __m256).self), (b0, b1) = unsafeBitCast(b, to: (__m256, __m256).self)
        return unsafeBitCast((_mm256_min_ps(a0, b0), _mm256_min_ps(a1, b1)), to: SIMD16<Float>.self)
        #else
        b.replacing(with: a, where: a .< b)
        #endif
    }

    /// `exp` on sixteen lanes, each lane the same operations as the eight-lane `exp` (so the same bits): the clamps as
    /// `greater`/`lesser`, whose NaN lanes pass through as the masked replaces let them. Two eight-lane calls compiled
    /// to one 512-bit sequence only while the loop around them stayed small.
    @inline(__always)
    public static func exp(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let v = lesser(SIMD16(repeating: 88.3), greater(SIMD16(repeating: -87.3), x))
        let magic = SIMD16<Float>(repeating: 12_582_912)
        let shifted = v * SIMD16(repeating: 1.442_695_04) + magic
        let n = shifted - magic
        let r = v.addingProduct(n, SIMD16(repeating: -0.693_359_375)).addingProduct(n, SIMD16(repeating: 2.121_944_4e-4))
        var p = SIMD16<Float>(repeating: 1.987_569_15e-4)
        p = SIMD16(repeating: 1.398_199_950_7e-3).addingProduct(p, r)
        p = SIMD16(repeating: 8.333_451_907_3e-3).addingProduct(p, r)
        p = SIMD16(repeating: 4.166_579_589_4e-2).addingProduct(p, r)
        p = SIMD16(repeating: 1.666_666_545_9e-1).addingProduct(p, r)
        p = SIMD16(repeating: 5.000_000_120_1e-1).addingProduct(p, r)
        p = (r + SIMD16(repeating: 1)).addingProduct(p, r * r)
        let n32 = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- unsafeBitCast(magic, to: SIMD16<Int32>.self)
        return p * unsafeBitCast((n32 &+ SIMD16(repeating: 127)) &<< SIMD16(repeating: 23), to: SIMD16<Float>.self)
    }

    /// `exp` of a scalar through the same polynomial (tails of vector loops stay consistent).
    @inline(__always)
    public static func exp(_ x: Float) -> Float { exp(SIMD8(repeating: x))[0] }

    /// erf(x) within a few ulp: x·P(x²)/Q(x²) on x clamped to [-4, 4] (beyond, erf is ±1 in fp32), with the
    /// minimax coefficients Eigen and XLA use for fp32.
    @inline(__always)
    public static func erf(_ x: SIMD8<Float>) -> SIMD8<Float> {
        var v = x
        v.replace(with: SIMD8(repeating: -4), where: x .< -4)
        v.replace(with: SIMD8(repeating: 4), where: x .> 4)
        let v2 = v * v
        var p = SIMD8<Float>(repeating: -2.726_142_258_013_06e-10)
        p = SIMD8(repeating: 2.770_681_424_959_02e-08).addingProduct(p, v2)
        p = SIMD8(repeating: -2.101_024_020_825_08e-06).addingProduct(p, v2)
        p = SIMD8(repeating: -5.692_506_394_623_46e-05).addingProduct(p, v2)
        p = SIMD8(repeating: -7.349_906_303_268_55e-04).addingProduct(p, v2)
        p = SIMD8(repeating: -2.954_599_808_540_25e-03).addingProduct(p, v2)
        p = SIMD8(repeating: -1.609_603_332_624_15e-02).addingProduct(p, v2)
        var q = SIMD8<Float>(repeating: -1.456_607_184_649_96e-05)
        q = SIMD8(repeating: -2.133_740_552_789_05e-04).addingProduct(q, v2)
        q = SIMD8(repeating: -1.682_826_974_382_03e-03).addingProduct(q, v2)
        q = SIMD8(repeating: -7.373_329_167_204_68e-03).addingProduct(q, v2)
        q = SIMD8(repeating: -1.426_473_905_141_89e-02).addingProduct(q, v2)
        return v * p / q
    }
}
