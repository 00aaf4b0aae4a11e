#if FLEXSERVE_AVX2
import _Builtin_intrinsics.intel

/// `groupDots` for AVX2 machines, which have no `vpdpbusd`: `vpmaddubsw` multiplies unsigned by signed bytes into
/// 16-bit sums of pairs (saturating past 32,767) and `vpmaddwd` adds those pairs into 32 bits. Each 32-bit lane holds
/// four values of one row (rows 0–7 in a chunk's first 256 bits, rows 8–15 in its second), as with `vpdpbusd`, and the
/// sums stay exact, so the results are the AVX-512 kernels' bit for bit. Activations are at most 127 in magnitude
/// (`Q8Activations`).
///
/// 4-bit values (0...15): a pair's sum is at most 2·15·127 = 3,810 in magnitude and all eight chunks' 30,480, so the
/// chunks add up in 16 bits and widen once. Bytes (0...255): unsigned, a pair could reach 2·255·127 and saturate. So
/// each byte enters as s = u − 128, its magnitude as the unsigned operand and its sign moved onto the activation (a pair
/// at most 2·128·127 = 32,512), and Σ u·x = Σ s·x + 128·Σ x. Records that hold s itself (`storedSigned`, Q8_0) skip the
/// subtraction.
enum ByteDotsAVX2 {
    /// One block of a group's record (`p`) against up to four tokens' blocks (the first `count` of `x`, whose sums
    /// are `xSums`). Chunk by chunk, each chunk's values meeting every token while in registers: the block's sixteen
    /// vectors of values unpacked first (`GroupChunks`) and four tokens' sums are more than AVX2's sixteen registers,
    /// and kernels that did so spilled every step.
    @inline(__always)
    static func tokens<F: IntegerBlockFormat>(_ p: UnsafeRawPointer, _ x: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer),
                                              xSums: SIMD4<Int32>, count: Int, _: F.Type)
        -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
        let zero = _mm256_setzero_si256()
        var (l0, h0, l1, h1, l2, h2, l3, h3) = (zero, zero, zero, zero, zero, zero, zero, zero)
        @inline(__always) func each(_ body: (inout __m256i, inout __m256i, UnsafeRawPointer) -> Void) {
            body(&l0, &h0, x.0)
            if count > 1 { body(&l1, &h1, x.1) }
            if count > 2 { body(&l2, &h2, x.2) }
            if count > 3 { body(&l3, &h3, x.3) }
        }
        if F.valueBits == 4 {
            let mask = _mm256_set1_epi8(15)
            @inline(__always) func add(_ rows0: __m256i, _ rows8: __m256i, _ c: Int) {
                each { low, high, x in
                    let xc = broadcast(x, c)
                    low = _mm256_add_epi16(low, _mm256_maddubs_epi16(rows0, xc))
                    high = _mm256_add_epi16(high, _mm256_maddubs_epi16(rows8, xc))
                }
            }
            for i in 0..<4 {
                let a = p.load(fromByteOffset: 64 * i, as: __m256i.self), b = p.load(fromByteOffset: 64 * i + 32, as: __m256i.self)
                add(_mm256_and_si256(a, mask), _mm256_and_si256(b, mask), i)
                add(_mm256_and_si256(_mm256_srli_epi16(a, 4), mask), _mm256_and_si256(_mm256_srli_epi16(b, 4), mask), i + 4)
            }
            each { low, high, _ in low = widen(low); high = widen(high) }
        } else {
            for c in 0..<8 {
                let s0 = signed(p.load(fromByteOffset: 64 * c, as: __m256i.self), F.storedSigned)
                let s8 = signed(p.load(fromByteOffset: 64 * c + 32, as: __m256i.self), F.storedSigned)
                let u0 = _mm256_abs_epi8(s0), u8 = _mm256_abs_epi8(s8)
                each { low, high, x in
                    let xc = broadcast(x, c)
                    low = _mm256_add_epi32(low, signedDot(u0, s0, xc))
                    high = _mm256_add_epi32(high, signedDot(u8, s8, xc))
                }
            }
            var k = 0
            each { low, high, _ in
                let offset = _mm256_set1_epi32(xSums[k] &<< 7)
                low = _mm256_add_epi32(low, offset); high = _mm256_add_epi32(high, offset)
                k += 1
            }
        }
        return (floats(l0, h0), floats(l1, h1), floats(l2, h2), floats(l3, h3))
    }

    /// s = u − 128 (the byte's top bit flipped), or the record's bytes where they are stored signed.
    @inline(__always)
    private static func signed(_ v: __m256i, _ storedSigned: Bool) -> __m256i {
        storedSigned ? v : _mm256_xor_si256(v, _mm256_set1_epi8(-128))
    }

    /// Σ s·x in 32-bit lanes of four, with |s| (`magnitudes`) as the unsigned operand and s's sign on x.
    @inline(__always)
    private static func signedDot(_ magnitudes: __m256i, _ s: __m256i, _ xc: __m256i) -> __m256i {
        _mm256_madd_epi16(_mm256_maddubs_epi16(magnitudes, _mm256_sign_epi8(xc, s)), _mm256_set1_epi16(1))
    }

    /// 16-bit sums of pairs into 32-bit sums of fours.
    @inline(__always)
    private static func widen(_ v: __m256i) -> __m256i { _mm256_madd_epi16(v, _mm256_set1_epi16(1)) }

    /// Activations 4c..<4c + 4 in every lane.
    @inline(__always)
    private static func broadcast(_ x: UnsafeRawPointer, _ c: Int) -> __m256i {
        _mm256_set1_epi32(x.loadUnaligned(fromByteOffset: 4 * c, as: Int32.self))
    }

    @inline(__always)
    private static func floats(_ rows0: __m256i, _ rows8: __m256i) -> SIMD16<Float> {
        unsafeBitCast((_mm256_cvtepi32_ps(rows0), _mm256_cvtepi32_ps(rows8)), to: SIMD16<Float>.self)
    }
}
#endif
