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
/// The kernels read them from `InterleavedRows`: four rows' blocks side by side, so one 512-bit
/// `vpdpbusd` pair covers a block of four rows. This file says how each format's blocks are
/// written into that layout (`integers`, `packQuadHeader`) and read back (`quadIntegers`,
/// `quadScalesAndOffsets`).
protocol IntegerBlockFormat: BlockFormat {
    /// 4 (two values per byte) or 8.
    static var valueBits: Int { get }
    /// Bytes of the four rows' scales (and offsets) of one block in the interleaved layout.
    static var quadHeaderBytes: Int { get }
    /// The block's 32 values as unsigned bytes, in order.
    static func integers(_ p: UnsafeRawPointer) -> SIMD32<UInt8>
    /// The header of four rows' blocks, in the format's own precision (fp16 stays fp16).
    static func packQuadHeader(_ blocks: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer),
                               into header: UnsafeMutableRawPointer)
    /// The four rows' (d, c) of a packed header.
    static func quadScalesAndOffsets(_ header: UnsafeRawPointer) -> (SIMD4<Float>, SIMD4<Float>)
}

extension IntegerBlockFormat {
    /// Bytes of the four rows' values of one block: 64 (4-bit) or 128 (8-bit).
    static var quadIntegerBytes: Int { 4 * 32 * valueBits / 8 }

    /// The four rows' values of one block as two 64-byte vectors, each holding 16 values of
    /// every row (row k in bytes 16k..<16k+16): values 0..<16 in `low`, 16..<32 in `high`.
    @inline(__always)
    static func quadIntegers(_ p: UnsafeRawPointer) -> (low: SIMD64<UInt8>, high: SIMD64<UInt8>) {
        if valueBits == 8 {
            return (p.load(as: SIMD64<UInt8>.self), p.load(fromByteOffset: 64, as: SIMD64<UInt8>.self))
        }
        // 4-bit: byte j of a row holds value j in its low nibble and value j + 16 in its high one.
        #if FLEXSERVE_AVX512
        let packed = p.load(as: __m512i.self), mask = _mm512_set1_epi8(15)
        return (unsafeBitCast(_mm512_and_si512(packed, mask), to: SIMD64<UInt8>.self),
                unsafeBitCast(_mm512_and_si512(_mm512_srli_epi16(packed, 4), mask), to: SIMD64<UInt8>.self))
        #else
        let packed = p.load(as: SIMD64<UInt8>.self)
        return (packed & 0x0F, packed &>> 4)
        #endif
    }

    /// Writes block `b`'s values of four rows into the interleaved record at `p`.
    static func packQuadIntegers(_ blocks: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer),
                                 into p: UnsafeMutableRawPointer) {
        let bytes = p.assumingMemoryBound(to: UInt8.self)
        for (k, block) in [blocks.0, blocks.1, blocks.2, blocks.3].enumerated() {
            let u = integers(block)
            for j in 0..<16 {
                if valueBits == 8 {
                    bytes[16 * k + j] = u[j]
                    bytes[64 + 16 * k + j] = u[16 + j]
                } else {
                    bytes[16 * k + j] = u[j] | (u[16 + j] &<< 4)
                }
            }
        }
    }
}

/// Σ u·x_q over a block of four rows: lane 4k+j (row k) sums the products of values 4j..<4j+4
/// and 16+4j..<16+4j+4, exactly (int32, then converted: |sum| < 2^24).
/// `x` points at the token's 32 quantized activations of the block.
@inline(__always)
func quadDots(_ low: SIMD64<UInt8>, _ high: SIMD64<UInt8>, _ x: UnsafeRawPointer) -> SIMD16<Float> {
    #if FLEXSERVE_AVX512
    // The unmasked intrinsic is a C macro Swift cannot import; an all-ones mask compiles to plain vpdpbusd.
    let xLow = _mm512_broadcast_i32x4(x.loadUnaligned(as: __m128i.self))
    let xHigh = _mm512_broadcast_i32x4(x.loadUnaligned(fromByteOffset: 16, as: __m128i.self))
    let first = _mm512_maskz_dpbusd_epi32(0xFFFF, _mm512_setzero_si512(), unsafeBitCast(low, to: __m512i.self), xLow)
    let sums = _mm512_maskz_dpbusd_epi32(0xFFFF, first, unsafeBitCast(high, to: __m512i.self), xHigh)
    return unsafeBitCast(_mm512_cvtepi32_ps(sums), to: SIMD16<Float>.self)
    #else
    let xs = x.loadUnaligned(as: SIMD32<Int8>.self)
    var r = SIMD16<Float>()
    for lane in 0..<16 {
        let (k, j) = lane.quotientAndRemainder(dividingBy: 4)
        var s: Int32 = 0
        for i in 0..<4 {
            s &+= Int32(low[16 * k + 4 * j + i]) &* Int32(xs[4 * j + i])
            s &+= Int32(high[16 * k + 4 * j + i]) &* Int32(xs[16 + 4 * j + i])
        }
        r[lane] = Float(s)
    }
    return r
    #endif
}

/// Each row's value on its four lanes.
@inline(__always)
func quadLanes(_ v: SIMD4<Float>) -> SIMD16<Float> {
    #if FLEXSERVE_AVX512
    let index = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0)
    return unsafeBitCast(_mm512_permutexvar_ps(index, _mm512_castps128_ps512(unsafeBitCast(v, to: __m128.self))),
                         to: SIMD16<Float>.self)
    #else
    SIMD16(v[0], v[0], v[0], v[0], v[1], v[1], v[1], v[1], v[2], v[2], v[2], v[2], v[3], v[3], v[3], v[3])
    #endif
}

@inline(__always) private func halves4(_ p: UnsafeRawPointer) -> SIMD4<Float> {
    #if FLEXSERVE_AVX512
    unsafeBitCast(_mm_cvtph_ps(_mm_loadl_epi64(p.assumingMemoryBound(to: __m128i.self))), to: SIMD4<Float>.self)
    #else
    @inline(__always) func half(_ k: Int) -> Float { Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: 2 * k, as: UInt16.self))) }
    return SIMD4(half(0), half(1), half(2), half(3))
    #endif
}

/// The fp16 scales of four blocks (at byte 0 of each), side by side.
private func packHalfScales(_ blocks: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer),
                            at offset: Int, into header: UnsafeMutableRawPointer) {
    for (k, block) in [blocks.0, blocks.1, blocks.2, blocks.3].enumerated() {
        header.storeBytes(of: block.loadUnaligned(fromByteOffset: offset, as: UInt16.self), toByteOffset: 2 * k, as: UInt16.self)
    }
}

/// 16 bytes of nibbles as 32 bytes: the low nibbles (values 0..<16), then the high ones.
@inline(__always) private func nibbleBytes(_ p: UnsafeRawPointer) -> SIMD32<UInt8> {
    let packed = p.loadUnaligned(as: SIMD16<UInt8>.self)
    var r = SIMD32<UInt8>()
    for i in 0..<16 { r[i] = packed[i] & 0x0F; r[i + 16] = packed[i] &>> 4 }
    return r
}

/// GGUF's scale-only formats: the block's fp16 scale first, `w = (u − zeroPoint)·d`, so `c = −zeroPoint·d`.
/// The four rows' scales are packed side by side (8 bytes).
protocol ScaleOnlyIntegerBlocks: IntegerBlockFormat {
    static var zeroPoint: Float { get }
}

extension ScaleOnlyIntegerBlocks {
    static var quadHeaderBytes: Int { 8 }
    static func packQuadHeader(_ blocks: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer),
                               into header: UnsafeMutableRawPointer) {
        packHalfScales(blocks, at: 0, into: header)
    }
    @inline(__always) static func quadScalesAndOffsets(_ header: UnsafeRawPointer) -> (SIMD4<Float>, SIMD4<Float>) {
        let d = halves4(header)
        return (d, d * -zeroPoint)
    }
}

extension Q8_0Blocks: ScaleOnlyIntegerBlocks {
    static var valueBits: Int { 8 }
    static var zeroPoint: Float { 128 }
    static func integers(_ p: UnsafeRawPointer) -> SIMD32<UInt8> {
        var v = p.loadUnaligned(fromByteOffset: 2, as: SIMD32<UInt8>.self)
        for i in 0..<32 { v[i] ^= 0x80 }
        return v
    }
}

extension Q4_0Blocks: ScaleOnlyIntegerBlocks {
    static var valueBits: Int { 4 }
    static var zeroPoint: Float { 8 }
    static func integers(_ p: UnsafeRawPointer) -> SIMD32<UInt8> { nibbleBytes(p + 2) }
}

extension Q4_1Blocks: IntegerBlockFormat {
    static var valueBits: Int { 4 }
    static var quadHeaderBytes: Int { 16 }
    static func integers(_ p: UnsafeRawPointer) -> SIMD32<UInt8> { nibbleBytes(p + 4) }
    /// d0…d3 then m0…m3, so one conversion yields both vectors.
    static func packQuadHeader(_ blocks: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer),
                               into header: UnsafeMutableRawPointer) {
        packHalfScales(blocks, at: 0, into: header)
        packHalfScales(blocks, at: 2, into: header + 8)
    }
    @inline(__always) static func quadScalesAndOffsets(_ header: UnsafeRawPointer) -> (SIMD4<Float>, SIMD4<Float>) {
        #if FLEXSERVE_AVX512
        let f = unsafeBitCast(_mm256_cvtph_ps(header.load(as: __m128i.self)), to: SIMD8<Float>.self)
        return (f.lowHalf, f.highHalf)
        #else
        (halves4(header), halves4(header + 8))
        #endif
    }
}

/// The FlexFlow groups: an fp32 scale and minimum first (`c = m`); the four rows' packed as d0…d3 then
/// m0…m3 (32 bytes).
protocol FloatGroupIntegerBlocks: IntegerBlockFormat {}

extension FloatGroupIntegerBlocks {
    static var quadHeaderBytes: Int { 32 }
    static func packQuadHeader(_ blocks: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer),
                               into header: UnsafeMutableRawPointer) {
        for (k, block) in [blocks.0, blocks.1, blocks.2, blocks.3].enumerated() {
            header.storeBytes(of: block.loadUnaligned(as: Float.self), toByteOffset: 4 * k, as: Float.self)
            header.storeBytes(of: block.loadUnaligned(fromByteOffset: 4, as: Float.self), toByteOffset: 16 + 4 * k, as: Float.self)
        }
    }
    @inline(__always) static func quadScalesAndOffsets(_ header: UnsafeRawPointer) -> (SIMD4<Float>, SIMD4<Float>) {
        (header.load(as: SIMD4<Float>.self), header.load(fromByteOffset: 16, as: SIMD4<Float>.self))
    }
}

extension Int8GroupBlocks: FloatGroupIntegerBlocks {
    static var valueBits: Int { 8 }
    static func integers(_ p: UnsafeRawPointer) -> SIMD32<UInt8> { p.loadUnaligned(fromByteOffset: 8, as: SIMD32<UInt8>.self) }
}

extension Int4GroupBlocks: FloatGroupIntegerBlocks {
    static var valueBits: Int { 4 }
    static func integers(_ p: UnsafeRawPointer) -> SIMD32<UInt8> { nibbleBytes(p + 8) }
}
