#if FLEXSERVE_AVX512
import _Builtin_intrinsics.intel
#endif

/// The block formats as integers for dot products with `Q8Activations`: each block's 32 weights
/// as unsigned bytes `u` with a scale `d` and an offset `c` such that the block's dot product
/// with activations `a·x_q` (scale a) is `d·a·Σ u·x_q + c·(a·Σ x_q)`:
///
/// - Q4_1, int4/int8 groups: `w = u·d + m`, so `c = m`;
/// - Q4_0: `w = (u − 8)·d`, so `c = −8·d`;
/// - Q8_0: signed bytes, made unsigned by `u = q + 128`, so `c = −128·d` (exact: a power of 2).
///
/// Σ u·x_q is exact in int32 (`vpdpbusd`: unsigned bytes times signed bytes), so every kernel
/// that follows `IntegerLinear`'s float steps gives the same bits.
protocol IntegerBlockFormat: BlockFormat {
    static func integers(_ p: UnsafeRawPointer) -> SIMD32<UInt8>
    static func scaleAndOffset(_ p: UnsafeRawPointer) -> (Float, Float)
    /// The same for the blocks of four rows at once (the kernels' unit).
    static func scalesAndOffsets(_ p: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer)) -> (SIMD4<Float>, SIMD4<Float>)
}

extension IntegerBlockFormat {
    @inline(__always)
    static func scalesAndOffsets(_ p: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer)) -> (SIMD4<Float>, SIMD4<Float>) {
        let (d0, c0) = scaleAndOffset(p.0), (d1, c1) = scaleAndOffset(p.1), (d2, c2) = scaleAndOffset(p.2), (d3, c3) = scaleAndOffset(p.3)
        return (SIMD4(d0, d1, d2, d3), SIMD4(c0, c1, c2, c3))
    }
}

@inline(__always) private func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
    Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
}

/// 16 bytes of nibbles as 32 bytes: the low nibbles (values 0..<16), then the high ones.
@inline(__always) private func nibbleBytes(_ p: UnsafeRawPointer) -> SIMD32<UInt8> {
    #if FLEXSERVE_AVX512
    let packed = p.loadUnaligned(as: __m128i.self), mask = _mm_set1_epi8(15)
    return unsafeBitCast(_mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(packed, 4), mask), _mm_and_si128(packed, mask)),
                         to: SIMD32<UInt8>.self)
    #else
    let packed = p.loadUnaligned(as: SIMD16<UInt8>.self)
    var r = SIMD32<UInt8>()
    for i in 0..<16 { r[i] = packed[i] & 0x0F; r[i + 16] = packed[i] &>> 4 }
    return r
    #endif
}

/// The block's dot products of four consecutive values each: lane j is Σ_{k<4} u[4j+k]·x[4j+k], as a float (exact).
@inline(__always) func integerLanes(_ u: SIMD32<UInt8>, _ x: SIMD32<Int8>) -> SIMD8<Float> {
    #if FLEXSERVE_AVX512
    // The unmasked intrinsic is a C macro Swift cannot import; an all-ones mask compiles to plain vpdpbusd.
    _mm256_cvtepi32_ps(_mm256_maskz_dpbusd_epi32(0xFF, _mm256_setzero_si256(), unsafeBitCast(u, to: __m256i.self),
                                                  unsafeBitCast(x, to: __m256i.self)))
    #else
    var r = SIMD8<Float>()
    for j in 0..<8 {
        var s: Int32 = 0
        for k in 0..<4 { s &+= Int32(u[4 * j + k]) &* Int32(x[4 * j + k]) }
        r[j] = Float(s)
    }
    return r
    #endif
}

extension Q8_0Blocks: IntegerBlockFormat {
    #if FLEXSERVE_AVX512
    @inline(__always)
    static func scalesAndOffsets(_ p: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer)) -> (SIMD4<Float>, SIMD4<Float>) {
        let halves = SIMD8<UInt16>(p.0.loadUnaligned(as: UInt16.self), p.1.loadUnaligned(as: UInt16.self),
                                   p.2.loadUnaligned(as: UInt16.self), p.3.loadUnaligned(as: UInt16.self), 0, 0, 0, 0)
        let d = unsafeBitCast(_mm_cvtph_ps(unsafeBitCast(halves, to: __m128i.self)), to: SIMD4<Float>.self)
        return (d, d * -128)
    }
    #endif
    @inline(__always) static func integers(_ p: UnsafeRawPointer) -> SIMD32<UInt8> {
        // The generic `^` on SIMD32<UInt8> compiles to a loop of byte inserts.
        #if FLEXSERVE_AVX512
        unsafeBitCast(_mm256_xor_si256(p.loadUnaligned(fromByteOffset: 2, as: __m256i.self), _mm256_set1_epi8(-128)), to: SIMD32<UInt8>.self)
        #else
        var v = p.loadUnaligned(fromByteOffset: 2, as: SIMD32<UInt8>.self)
        for i in 0..<32 { v[i] ^= 0x80 }
        return v
        #endif
    }
    @inline(__always) static func scaleAndOffset(_ p: UnsafeRawPointer) -> (Float, Float) {
        let d = half(p, 0)
        return (d, -128 * d)
    }
}

extension Q4_0Blocks: IntegerBlockFormat {
    @inline(__always) static func integers(_ p: UnsafeRawPointer) -> SIMD32<UInt8> { nibbleBytes(p + 2) }
    @inline(__always) static func scaleAndOffset(_ p: UnsafeRawPointer) -> (Float, Float) {
        let d = half(p, 0)
        return (d, -8 * d)
    }
}

extension Q4_1Blocks: IntegerBlockFormat {
    @inline(__always) static func integers(_ p: UnsafeRawPointer) -> SIMD32<UInt8> { nibbleBytes(p + 4) }
    @inline(__always) static func scaleAndOffset(_ p: UnsafeRawPointer) -> (Float, Float) { (half(p, 0), half(p, 2)) }
    #if FLEXSERVE_AVX512
    /// The four (d, m) headers in one conversion: about a quarter of the per-block instructions of decoding went
    /// to converting and gathering them one by one. fp16 → fp32 is exact, so the values are the same.
    @inline(__always)
    static func scalesAndOffsets(_ p: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer)) -> (SIMD4<Float>, SIMD4<Float>) {
        let headers = SIMD4<UInt32>(p.0.loadUnaligned(as: UInt32.self), p.1.loadUnaligned(as: UInt32.self),
                                    p.2.loadUnaligned(as: UInt32.self), p.3.loadUnaligned(as: UInt32.self))
        let f = unsafeBitCast(_mm256_cvtph_ps(unsafeBitCast(headers, to: __m128i.self)), to: SIMD8<Float>.self)  // d0 m0 d1 m1 …
        return (SIMD4(f[0], f[2], f[4], f[6]), SIMD4(f[1], f[3], f[5], f[7]))
    }
    #endif
}

extension Int8GroupBlocks: IntegerBlockFormat {
    @inline(__always) static func integers(_ p: UnsafeRawPointer) -> SIMD32<UInt8> {
        p.loadUnaligned(fromByteOffset: 8, as: SIMD32<UInt8>.self)
    }
    @inline(__always) static func scaleAndOffset(_ p: UnsafeRawPointer) -> (Float, Float) {
        (p.loadUnaligned(as: Float.self), p.loadUnaligned(fromByteOffset: 4, as: Float.self))
    }
}

extension Int4GroupBlocks: IntegerBlockFormat {
    @inline(__always) static func integers(_ p: UnsafeRawPointer) -> SIMD32<UInt8> { nibbleBytes(p + 8) }
    @inline(__always) static func scaleAndOffset(_ p: UnsafeRawPointer) -> (Float, Float) {
        (p.loadUnaligned(as: Float.self), p.loadUnaligned(fromByteOffset: 4, as: Float.self))
    }
}
