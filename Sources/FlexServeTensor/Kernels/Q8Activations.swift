#if FLEXSERVE_AVX512
import _Builtin_intrinsics.intel
#endif

/// Activation rows quantized for integer dot products: per block of 32 values, int8 values
/// `q = round(x / d)` (nearest, ties to even) with `d = max|x| / 127`, the scale `d`, and
/// `d · Σq`, which the weight formats with an offset need (Σ_i w_i·x_i gains `offset · Σ x_i`), and `Σq` itself
/// (AVX2's byte dot products add `128 · Σq` to every row).
struct Q8Activations {
    let values: UnsafeMutablePointer<Int8>
    let scales: UnsafeMutablePointer<Float>
    let scaledSums: UnsafeMutablePointer<Float>
    let sums: UnsafeMutablePointer<Int32>
    let blocks: Int

    /// Bytes of scratch for `tokens` rows of `cols` values (cols a multiple of 32).
    static func byteCount(tokens: Int, cols: Int) -> Int { tokens * cols + 12 * tokens * (cols / 32) }

    init(scratch: UnsafeMutableRawPointer, tokens: Int, cols: Int) {
        blocks = cols / 32
        scales = scratch.bindMemory(to: Float.self, capacity: tokens * blocks)
        scaledSums = (scratch + 4 * tokens * blocks).bindMemory(to: Float.self, capacity: tokens * blocks)
        sums = (scratch + 8 * tokens * blocks).bindMemory(to: Int32.self, capacity: tokens * blocks)
        values = (scratch + 12 * tokens * blocks).bindMemory(to: Int8.self, capacity: tokens * cols)
    }

    /// One token's block of 32 values.
    struct Block {
        let values: UnsafeRawPointer
        let scale: Float
        /// scale · Σ values.
        let scaledSum: Float
        /// Σ values.
        let sum: Int32
    }

    /// Token t's block b.
    @inline(__always)
    func block(_ t: Int, _ b: Int) -> Block {
        let i = t * blocks + b
        return Block(values: UnsafeRawPointer(values + i * 32), scale: scales[i], scaledSum: scaledSums[i], sum: sums[i])
    }

    func quantize(_ x: UnsafePointer<Float>, token t: Int) { quantize(x, token: t, blocks: 0..<blocks) }

    /// Blocks `range` of token t (each block's values, scale and sum depend on its 32 inputs alone).
    func quantize(_ x: UnsafePointer<Float>, token t: Int, blocks range: Range<Int>) {
        for b in range {
            let src = x + b * 32
            #if FLEXSERVE_AVX512
            // The element loop's values (the largest |x| is exact in any order; the conversion rounds to nearest even;
            // the bytes are the integers' low bytes): in a 1,536-token prefill the loop took 2.6% of the time.
            let lo = Float.load16(src, 0), hi = Float.load16(src, 16)
            let magnitude = SIMD16<UInt32>(repeating: 0x7fff_ffff)
            let amax = _mm512_reduce_max_ps(_mm512_max_ps(unsafeBitCast(unsafeBitCast(lo, to: SIMD16<UInt32>.self) & magnitude, to: __m512.self),
                                                          unsafeBitCast(unsafeBitCast(hi, to: SIMD16<UInt32>.self) & magnitude, to: __m512.self)))
            let d = amax / 127
            let inverse = SIMD16<Float>(repeating: d == 0 ? 0 : 1 / d)
            let qlo = _mm512_cvtps_epi32(unsafeBitCast(lo * inverse, to: __m512.self))
            let qhi = _mm512_cvtps_epi32(unsafeBitCast(hi * inverse, to: __m512.self))
            let dst = UnsafeMutableRawPointer(values + (t * blocks + b) * 32)
            dst.storeBytes(of: _mm512_cvtepi32_epi8(qlo), as: __m128i.self)
            dst.storeBytes(of: _mm512_cvtepi32_epi8(qhi), toByteOffset: 16, as: __m128i.self)
            let sum = _mm512_reduce_add_epi32(_mm512_add_epi32(qlo, qhi))
            #else
            var amax = SIMD8<Float>()
            for k in 0..<4 {
                let v = RowDot.load(src, 8 * k)
                for l in 0..<8 { amax[l] = Swift.max(amax[l], Swift.abs(v[l])) }
            }
            let d = Swift.max(Swift.max(Swift.max(amax[0], amax[1]), Swift.max(amax[2], amax[3])),
                              Swift.max(Swift.max(amax[4], amax[5]), Swift.max(amax[6], amax[7]))) / 127
            let inverse: Float = d == 0 ? 0 : 1 / d
            let dst = values + (t * blocks + b) * 32
            var sum: Int32 = 0
            for l in 0..<32 {
                let q = Int32((src[l] * inverse).rounded(.toNearestOrEven))
                dst[l] = Int8(truncatingIfNeeded: q)
                sum &+= q
            }
            #endif
            scales[t * blocks + b] = d
            scaledSums[t * blocks + b] = d * Float(sum)
            sums[t * blocks + b] = sum
        }
    }
}
