#if FLEXSERVE_AVX2
import _Builtin_intrinsics.intel

/// `groupDots` for AVX2 machines, which have no `vpdpbusd`: `vpmaddubsw` multiplies unsigned by signed bytes into
/// 16-bit sums of pairs (saturating past 32,767) and `vpmaddwd` adds those pairs into 32 bits. Each 32-bit lane holds
/// four values of one row (rows 0–7 in a chunk's first 256 bits, rows 8–15 in its second), as with `vpdpbusd`, and the
/// sums stay exact, so the results are the AVX-512 kernels' bit for bit. Activations are at most 127 in magnitude
/// (`Q8Activations`).
enum ByteDotsAVX2 {
    /// 4-bit values (0...15): a pair's sum is at most 2·15·127 = 3,810 in magnitude and all eight chunks' 30,480, so
    /// the chunks add up in 16 bits and widen once.
    @inline(__always)
    static func nibbles(_ u: GroupChunks, _ x: UnsafeRawPointer) -> SIMD16<Float> {
        var low = _mm256_setzero_si256(), high = low
        @inline(__always) func add(_ chunk: SIMD64<UInt8>, _ c: Int) {
            let (rows0, rows8) = halves(chunk), xc = broadcast(x, c)
            low = _mm256_add_epi16(low, _mm256_maddubs_epi16(rows0, xc))
            high = _mm256_add_epi16(high, _mm256_maddubs_epi16(rows8, xc))
        }
        add(u.c0, 0); add(u.c1, 1); add(u.c2, 2); add(u.c3, 3); add(u.c4, 4); add(u.c5, 5); add(u.c6, 6); add(u.c7, 7)
        let ones = _mm256_set1_epi16(1)
        return floats(_mm256_madd_epi16(low, ones), _mm256_madd_epi16(high, ones))
    }

    /// Bytes (0...255): unsigned, a pair could reach 2·255·127 and saturate. So each byte enters as s = u − 128, its
    /// magnitude as the unsigned operand and its sign moved onto the activation (a pair at most 2·128·127 = 32,512),
    /// and Σ u·x = Σ s·x + 128·Σ x. Records that hold s itself (`storedSigned`, Q8_0) skip the subtraction.
    @inline(__always)
    static func bytes(_ u: GroupChunks, _ x: UnsafeRawPointer, storedSigned: Bool) -> SIMD16<Float> {
        let ones = _mm256_set1_epi16(1), flip = _mm256_set1_epi8(-128)
        var low = _mm256_setzero_si256(), high = low
        @inline(__always) func dot(_ v: __m256i, _ xc: __m256i) -> __m256i {
            let s = storedSigned ? v : _mm256_xor_si256(v, flip)
            return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(s), _mm256_sign_epi8(xc, s)), ones)
        }
        @inline(__always) func add(_ chunk: SIMD64<UInt8>, _ c: Int) {
            let (rows0, rows8) = halves(chunk), xc = broadcast(x, c)
            low = _mm256_add_epi32(low, dot(rows0, xc))
            high = _mm256_add_epi32(high, dot(rows8, xc))
        }
        add(u.c0, 0); add(u.c1, 1); add(u.c2, 2); add(u.c3, 3); add(u.c4, 4); add(u.c5, 5); add(u.c6, 6); add(u.c7, 7)
        // Σ x over the block's 32 activations, in every lane.
        var sum = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), x.loadUnaligned(as: __m256i.self)), ones)
        sum = _mm256_hadd_epi32(sum, sum)
        sum = _mm256_hadd_epi32(sum, sum)
        sum = _mm256_add_epi32(sum, _mm256_permutevar8x32_epi32(sum, _mm256_setr_epi32(4, 5, 6, 7, 0, 1, 2, 3)))
        let offset = _mm256_slli_epi32(sum, 7)
        return floats(_mm256_add_epi32(low, offset), _mm256_add_epi32(high, offset))
    }

    @inline(__always)
    private static func halves(_ chunk: SIMD64<UInt8>) -> (__m256i, __m256i) { unsafeBitCast(chunk, to: (__m256i, __m256i).self) }

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
