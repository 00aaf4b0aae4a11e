#if FLEXSERVE_AVX512 || FLEXSERVE_AVX2
import _Builtin_intrinsics.intel
#endif

/// The block formats as integers for dot products with `Q8Activations`: each block's 32 weights
/// as unsigned bytes `u` with a scale `d` and an offset `c` such that the block's dot product
/// with activations `a·x_q` (scale a) is `d·a·Σ u·x_q + c·(a·Σ x_q)`:
///
/// - Q4_1, int4/int8 groups: `w = u·d + m`, so `c = m`;
/// - Q4_0: `w = (u − 8)·d`, so `c = −8·d`;
/// - Q8_0: signed bytes, made unsigned by `u = q + 128`, so `c = −128·d` (exact: a power of 2); AVX2 records keep `q`
///   (`storedSigned`) and their dot products still give Σ u·x.
///
/// The kernels read them from `InterleavedRows`: sixteen rows' blocks side by side, each row in one
/// 32-bit lane of a 512-bit vector, so eight `vpdpbusd` give a block's sixteen dot products and the
/// rows' scales apply lane by lane. This file says how each format's blocks are written into that
/// layout (`integers`, `packGroupHeader`) and read back (`groupChunks`, `groupScalesAndOffsets`).
protocol IntegerBlockFormat: BlockFormat {
    /// 4 (two values per byte) or 8.
    static var valueBits: Int { get }
    /// Bytes of the sixteen rows' scales (and offsets) of one block in the interleaved layout.
    static var groupHeaderBytes: Int { get }
    /// The block's 32 values as unsigned bytes, in order.
    static func integers(_ p: UnsafeRawPointer) -> SIMD32<UInt8>
    /// The header of sixteen rows' blocks (`rows[k]` at row k's block), in the format's own precision (fp16 stays fp16).
    static func packGroupHeader(_ rows: [UnsafeRawPointer], into header: UnsafeMutableRawPointer)
    /// The sixteen rows' (d, c) of a packed header.
    static func groupScalesAndOffsets(_ header: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>)
    /// Whether the values are signed bytes (Q8_0), stored offset by 128 unless `storedSigned`: fp32 activations take
    /// them signed, with no offset.
    static var signedBytes: Bool { get }
}

/// Rows in a group of `InterleavedRows`: one per 32-bit lane of a 512-bit vector.
let groupRows = 16

/// A block of a group's sixteen rows as eight chunks: chunk c holds values 4c..<4c+4 of every row
/// (row r in bytes 4r..<4r+4), the bytes one `vpdpbusd` multiplies with activations 4c..<4c+4.
struct GroupChunks {
    var c0, c1, c2, c3, c4, c5, c6, c7: SIMD64<UInt8>
}

extension IntegerBlockFormat {
    static var signedBytes: Bool { false }

    /// Whether the interleaved records hold signed bytes as they are (AVX2, whose dot products and conversions take
    /// them signed) rather than offset by 128 (`vpdpbusd`'s unsigned operand): one `vpxor` less for every value.
    static var storedSigned: Bool {
        #if FLEXSERVE_AVX2
        signedBytes
        #else
        false
        #endif
    }

    /// Bytes of the sixteen rows' values of one block: 256 (4-bit) or 512 (8-bit).
    static var groupIntegerBytes: Int { groupRows * 32 * valueBits / 8 }

    #if !FLEXSERVE_AVX2
    /// The block's chunks from the interleaved record at `p`: for 8-bit formats the eight chunks in
    /// order; for 4-bit ones four vectors, chunk c in the low nibbles and chunk c + 4 in the high ones.
    /// (AVX2 reads them chunk by chunk instead: `ByteDotsAVX2`.)
    @inline(__always)
    static func groupChunks(_ p: UnsafeRawPointer) -> GroupChunks {
        @inline(__always) func load(_ i: Int) -> SIMD64<UInt8> { p.load(fromByteOffset: 64 * i, as: SIMD64<UInt8>.self) }
        if valueBits == 8 {
            return GroupChunks(c0: load(0), c1: load(1), c2: load(2), c3: load(3), c4: load(4), c5: load(5), c6: load(6), c7: load(7))
        }
        #if FLEXSERVE_AVX512
        let mask = _mm512_set1_epi8(15)
        @inline(__always) func low(_ i: Int) -> SIMD64<UInt8> {
            unsafeBitCast(_mm512_and_si512(p.load(fromByteOffset: 64 * i, as: __m512i.self), mask), to: SIMD64<UInt8>.self)
        }
        @inline(__always) func high(_ i: Int) -> SIMD64<UInt8> {
            unsafeBitCast(_mm512_and_si512(_mm512_srli_epi16(p.load(fromByteOffset: 64 * i, as: __m512i.self), 4), mask), to: SIMD64<UInt8>.self)
        }
        return GroupChunks(c0: low(0), c1: low(1), c2: low(2), c3: low(3), c4: high(0), c5: high(1), c6: high(2), c7: high(3))
        #else
        let (a, b, c, d) = (load(0), load(1), load(2), load(3))
        return GroupChunks(c0: a & 0x0F, c1: b & 0x0F, c2: c & 0x0F, c3: d & 0x0F, c4: a &>> 4, c5: b &>> 4, c6: c &>> 4, c7: d &>> 4)
        #endif
    }
    #endif

    /// Writes one block of sixteen rows (`rows[k]` at row k's block) into the interleaved record at `p`.
    static func packGroupIntegers(_ rows: [UnsafeRawPointer], into p: UnsafeMutableRawPointer) {
        let bytes = p.assumingMemoryBound(to: UInt8.self)
        for (r, block) in rows.enumerated() {
            let u = integers(block)
            for c in 0..<4 {
                for j in 0..<4 {
                    if valueBits == 8 {
                        let flip: UInt8 = storedSigned ? 0x80 : 0
                        bytes[64 * c + 4 * r + j] = u[4 * c + j] ^ flip
                        bytes[64 * (c + 4) + 4 * r + j] = u[16 + 4 * c + j] ^ flip
                    } else {
                        bytes[64 * c + 4 * r + j] = u[4 * c + j] | (u[16 + 4 * c + j] &<< 4)
                    }
                }
            }
        }
    }
}

/// Σ u·x_q of one block of a group's sixteen rows (`integers`, its interleaved record) for up to four tokens' blocks of
/// activations (the first `count` of `x`), exactly (int32, then converted: |sum| < 2^24). Results past `count` are not
/// meaningful.
@inline(__always)
func groupDots<F: IntegerBlockFormat>(_ integers: UnsafeRawPointer, _ x: (Q8Activations.Block, Q8Activations.Block, Q8Activations.Block, Q8Activations.Block),
                                      count: Int, _: F.Type) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
    #if FLEXSERVE_AVX2
    return ByteDotsAVX2.tokens(integers, (x.0.values, x.1.values, x.2.values, x.3.values),
                               xSums: SIMD4(x.0.sum, x.1.sum, x.2.sum, x.3.sum), count: count, F.self)
    #else
    let u = F.groupChunks(integers), none = SIMD16<Float>()
    return (chunkDots(u, x.0.values, F.self), count > 1 ? chunkDots(u, x.1.values, F.self) : none,
            count > 2 ? chunkDots(u, x.2.values, F.self) : none, count > 3 ? chunkDots(u, x.3.values, F.self) : none)
    #endif
}

#if !FLEXSERVE_AVX2
/// One token's `groupDots` against the block's chunks.
@inline(__always)
private func chunkDots<F: IntegerBlockFormat>(_ u: GroupChunks, _ x: UnsafeRawPointer, _: F.Type) -> SIMD16<Float> {
    #if FLEXSERVE_AVX512
    // The unmasked intrinsic is a C macro Swift cannot import; an all-ones mask compiles to plain vpdpbusd.
    @inline(__always) func dot(_ sum: __m512i, _ chunk: SIMD64<UInt8>, _ c: Int) -> __m512i {
        _mm512_maskz_dpbusd_epi32(0xFFFF, sum, unsafeBitCast(chunk, to: __m512i.self),
                                  _mm512_set1_epi32(x.loadUnaligned(fromByteOffset: 4 * c, as: Int32.self)))
    }
    // Two chains, values 0..<16 and 16..<32, so the multiply-adds overlap.
    let zero = _mm512_setzero_si512()
    let first = dot(dot(dot(dot(zero, u.c0, 0), u.c1, 1), u.c2, 2), u.c3, 3)
    let second = dot(dot(dot(dot(zero, u.c4, 4), u.c5, 5), u.c6, 6), u.c7, 7)
    return _mm512_cvtepi32_ps(_mm512_add_epi32(first, second))
    #else
    let xs = x.loadUnaligned(as: SIMD32<Int8>.self)
    var r = SIMD16<Float>()
    // The eight chunks lie one after another in `u`: chunk c's byte k at 64c + k.
    withUnsafeBytes(of: u) { chunks in
        for row in 0..<groupRows {
            var s: Int32 = 0
            for c in 0..<8 {
                for j in 0..<4 { s &+= Int32(chunks[64 * c + 4 * row + j]) &* Int32(xs[4 * c + j]) }
            }
            r[row] = Float(s)
        }
    }
    return r
    #endif
}
#endif

/// Sixteen fp16 values as floats.
@inline(__always) private func halves16(_ p: UnsafeRawPointer) -> SIMD16<Float> {
    #if FLEXSERVE_AVX512
    _mm512_cvtph_ps(p.loadUnaligned(as: __m256i.self))
    #else
    var r = SIMD16<Float>()
    for k in 0..<16 { r[k] = Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: 2 * k, as: UInt16.self))) }
    return r
    #endif
}

/// The fp16 field at `offset` of each row's block, side by side.
private func packHalfScales(_ rows: [UnsafeRawPointer], at offset: Int, into header: UnsafeMutableRawPointer) {
    for (k, block) in rows.enumerated() {
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
/// The sixteen rows' scales are packed side by side (32 bytes).
protocol ScaleOnlyIntegerBlocks: IntegerBlockFormat {
    static var zeroPoint: Float { get }
}

extension ScaleOnlyIntegerBlocks {
    static var groupHeaderBytes: Int { 32 }
    static func packGroupHeader(_ rows: [UnsafeRawPointer], into header: UnsafeMutableRawPointer) {
        packHalfScales(rows, at: 0, into: header)
    }
    @inline(__always) static func groupScalesAndOffsets(_ header: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>) {
        let d = halves16(header)
        return (d, d * -zeroPoint)
    }
}

extension Q8_0Blocks: ScaleOnlyIntegerBlocks {
    static var valueBits: Int { 8 }
    static var zeroPoint: Float { 128 }
    static var signedBytes: Bool { true }
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
    static var groupHeaderBytes: Int { 64 }
    static func integers(_ p: UnsafeRawPointer) -> SIMD32<UInt8> { nibbleBytes(p + 4) }
    /// d0…d15 then m0…m15.
    static func packGroupHeader(_ rows: [UnsafeRawPointer], into header: UnsafeMutableRawPointer) {
        packHalfScales(rows, at: 0, into: header)
        packHalfScales(rows, at: 2, into: header + 32)
    }
    @inline(__always) static func groupScalesAndOffsets(_ header: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>) {
        (halves16(header), halves16(header + 32))
    }
}

/// The FlexFlow groups: an fp32 scale and minimum first (`c = m`); the sixteen rows' packed as d0…d15
/// then m0…m15 (128 bytes).
protocol FloatGroupIntegerBlocks: IntegerBlockFormat {}

extension FloatGroupIntegerBlocks {
    static var groupHeaderBytes: Int { 128 }
    static func packGroupHeader(_ rows: [UnsafeRawPointer], into header: UnsafeMutableRawPointer) {
        for (k, block) in rows.enumerated() {
            header.storeBytes(of: block.loadUnaligned(as: Float.self), toByteOffset: 4 * k, as: Float.self)
            header.storeBytes(of: block.loadUnaligned(fromByteOffset: 4, as: Float.self), toByteOffset: 64 + 4 * k, as: Float.self)
        }
    }
    @inline(__always) static func groupScalesAndOffsets(_ header: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>) {
        (header.load(as: SIMD16<Float>.self), header.load(fromByteOffset: 64, as: SIMD16<Float>.self))
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
