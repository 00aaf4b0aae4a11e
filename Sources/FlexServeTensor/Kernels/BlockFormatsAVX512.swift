#if FLEXSERVE_AVX512
import _Builtin_intrinsics.intel

/// `decode8` with AVX-512 instructions (compiled only for CPUs with AVX-512 VL): the same values
/// as the portable `decode`, bit for bit, in about half the instructions. Bytes are widened with
/// vpmovzx/vpmovsx and converted with vcvtdq2ps; each format's scale and offset are applied with
/// the operations the portable decoder uses, or with one FMA where the product is exact.
enum AVX512Decode {
    @inline(__always)
    static func bytes8(_ p: UnsafeRawPointer, _ offset: Int) -> __m128i {
        SIMD2<Int64>(p.loadUnaligned(fromByteOffset: offset, as: Int64.self), 0)
    }

    /// The 16 bytes of nibbles at `p + offset` as floats: low nibbles (values 0..<16), then high (16..<32).
    @inline(__always)
    static func nibbles(_ p: UnsafeRawPointer, _ offset: Int) -> (__m256, __m256, __m256, __m256) {
        let i0 = _mm256_cvtepu8_epi32(bytes8(p, offset)), i1 = _mm256_cvtepu8_epi32(bytes8(p, offset + 8))
        let mask = _mm256_set1_epi32(15)
        return (_mm256_cvtepi32_ps(_mm256_and_si256(i0, mask)), _mm256_cvtepi32_ps(_mm256_and_si256(i1, mask)),
                _mm256_cvtepi32_ps(_mm256_srli_epi32(i0, 4)), _mm256_cvtepi32_ps(_mm256_srli_epi32(i1, 4)))
    }

    /// `nibbles` of two rows' blocks, row `a`'s in the low half of each vector and `b`'s in the high half.
    @inline(__always)
    static func nibblePairs(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ offset: Int) -> (__m512, __m512, __m512, __m512) {
        let i0 = _mm512_cvtepu8_epi32(bytePairs(a, b, offset)), i1 = _mm512_cvtepu8_epi32(bytePairs(a, b, offset + 8))
        let mask = _mm512_set1_epi32(15)
        return (_mm512_cvtepi32_ps(_mm512_and_si512(i0, mask)), _mm512_cvtepi32_ps(_mm512_and_si512(i1, mask)),
                _mm512_cvtepi32_ps(_mm512_srli_epi32(i0, 4)), _mm512_cvtepi32_ps(_mm512_srli_epi32(i1, 4)))
    }

    /// Two rows' eight bytes at `offset`, row `a`'s first.
    @inline(__always)
    static func bytePairs(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ offset: Int) -> __m128i {
        SIMD2<Int64>(a.loadUnaligned(fromByteOffset: offset, as: Int64.self), b.loadUnaligned(fromByteOffset: offset, as: Int64.self))
    }

    /// `halfScales` of two rows, row `a`'s in the low halves.
    @inline(__always)
    static func halfScalePairs(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>) {
        let (da, ma) = halfScales(a), (db, mb) = halfScales(b)
        return (SIMD16(lowHalf: da, highHalf: db), SIMD16(lowHalf: ma, highHalf: mb))
    }

    /// Two rows' fp32 scale and offset (FlexFlow's groups), row `a`'s in the low halves.
    @inline(__always)
    static func floatScalePairs(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>) {
        (SIMD16(lowHalf: SIMD8(repeating: a.loadUnaligned(as: Float.self)), highHalf: SIMD8(repeating: b.loadUnaligned(as: Float.self))),
         SIMD16(lowHalf: SIMD8(repeating: a.loadUnaligned(fromByteOffset: 4, as: Float.self)),
                highHalf: SIMD8(repeating: b.loadUnaligned(fromByteOffset: 4, as: Float.self))))
    }

    /// The first two fp16 values at `p`, each broadcast.
    @inline(__always)
    static func halfScales(_ p: UnsafeRawPointer) -> (__m256, __m256) {
        let v = _mm_cvtph_ps(SIMD2<Int64>(Int64(p.loadUnaligned(as: UInt32.self)), 0))
        return (_mm256_broadcastss_ps(v), _mm256_broadcastss_ps(_mm_movehdup_ps(v)))
    }
}

extension Q4_1Blocks {
    /// q·d is exact (a 4-bit integer times an fp16 scale fits in fp32's significand), so one FMA
    /// gives the same rounded q·d + m as the portable multiply then add.
    @inline(__always) static func decode8(_ p: UnsafeRawPointer) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        let (d, m) = AVX512Decode.halfScales(p)
        let (q0, q1, q2, q3) = AVX512Decode.nibbles(p, 4)
        return (_mm256_fmadd_ps(q0, d, m), _mm256_fmadd_ps(q1, d, m), _mm256_fmadd_ps(q2, d, m), _mm256_fmadd_ps(q3, d, m))
    }

    @inline(__always) static func decodePair(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
        let (d, m) = AVX512Decode.halfScalePairs(a, b)
        let (q0, q1, q2, q3) = AVX512Decode.nibblePairs(a, b, 4)
        return (_mm512_fmadd_ps(q0, d, m), _mm512_fmadd_ps(q1, d, m), _mm512_fmadd_ps(q2, d, m), _mm512_fmadd_ps(q3, d, m))
    }
}

extension Q4_0Blocks {
    /// (q − 8)·d is exact for the same reason, and so is −8·d: one FMA, q·d − 8·d, gives it.
    @inline(__always) static func decode8(_ p: UnsafeRawPointer) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        let (d, _) = AVX512Decode.halfScales(p)
        let m = _mm256_mul_ps(d, _mm256_set1_ps(-8))
        let (q0, q1, q2, q3) = AVX512Decode.nibbles(p, 2)
        return (_mm256_fmadd_ps(q0, d, m), _mm256_fmadd_ps(q1, d, m), _mm256_fmadd_ps(q2, d, m), _mm256_fmadd_ps(q3, d, m))
    }

    @inline(__always) static func decodePair(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
        let (d, _) = AVX512Decode.halfScalePairs(a, b)
        let m = d * -8
        let (q0, q1, q2, q3) = AVX512Decode.nibblePairs(a, b, 2)
        return (_mm512_fmadd_ps(q0, d, m), _mm512_fmadd_ps(q1, d, m), _mm512_fmadd_ps(q2, d, m), _mm512_fmadd_ps(q3, d, m))
    }
}

extension Int4GroupBlocks {
    /// An fp32 scale makes q·d inexact: multiply and add separately, as the portable decoder does.
    @inline(__always) static func decode8(_ p: UnsafeRawPointer) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        let d = _mm256_set1_ps(p.loadUnaligned(as: Float.self)), m = _mm256_set1_ps(p.loadUnaligned(fromByteOffset: 4, as: Float.self))
        let (q0, q1, q2, q3) = AVX512Decode.nibbles(p, 8)
        @inline(__always) func v(_ q: __m256) -> SIMD8<Float> { _mm256_add_ps(_mm256_mul_ps(q, d), m) }
        return (v(q0), v(q1), v(q2), v(q3))
    }

    @inline(__always) static func decodePair(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
        let (d, m) = AVX512Decode.floatScalePairs(a, b)
        let (q0, q1, q2, q3) = AVX512Decode.nibblePairs(a, b, 8)
        @inline(__always) func v(_ q: __m512) -> SIMD16<Float> { _mm512_add_ps(_mm512_mul_ps(q, d), m) }
        return (v(q0), v(q1), v(q2), v(q3))
    }
}

extension Q8_0Blocks {
    @inline(__always) static func decode8(_ p: UnsafeRawPointer) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        let (d, _) = AVX512Decode.halfScales(p)
        @inline(__always) func q(_ o: Int) -> SIMD8<Float> {
            _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(AVX512Decode.bytes8(p, o))), d)
        }
        return (q(2), q(10), q(18), q(26))
    }

    @inline(__always) static func decodePair(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
        let (d, _) = AVX512Decode.halfScalePairs(a, b)
        @inline(__always) func q(_ o: Int) -> SIMD16<Float> {
            _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(AVX512Decode.bytePairs(a, b, o))), d)
        }
        return (q(2), q(10), q(18), q(26))
    }
}

extension Int8GroupBlocks {
    @inline(__always) static func decode8(_ p: UnsafeRawPointer) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        let d = _mm256_set1_ps(p.loadUnaligned(as: Float.self)), m = _mm256_set1_ps(p.loadUnaligned(fromByteOffset: 4, as: Float.self))
        @inline(__always) func q(_ o: Int) -> SIMD8<Float> {
            _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(AVX512Decode.bytes8(p, o))), d), m)
        }
        return (q(8), q(16), q(24), q(32))
    }

    @inline(__always) static func decodePair(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
        let (d, m) = AVX512Decode.floatScalePairs(a, b)
        @inline(__always) func q(_ o: Int) -> SIMD16<Float> {
            _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(AVX512Decode.bytePairs(a, b, o))), d), m)
        }
        return (q(8), q(16), q(24), q(32))
    }
}

extension F16Blocks {
    @inline(__always) static func decode8(_ p: UnsafeRawPointer) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        @inline(__always) func h(_ o: Int) -> SIMD8<Float> { _mm256_cvtph_ps(p.loadUnaligned(fromByteOffset: o, as: SIMD2<Int64>.self)) }
        return (h(0), h(16), h(32), h(48))
    }

    @inline(__always) static func decodePair(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
        @inline(__always) func h(_ o: Int) -> SIMD16<Float> {
            let u = a.loadUnaligned(fromByteOffset: o, as: SIMD2<Int64>.self), v = b.loadUnaligned(fromByteOffset: o, as: SIMD2<Int64>.self)
            return _mm512_cvtph_ps(SIMD4<Int64>(u[0], u[1], v[0], v[1]))
        }
        return (h(0), h(16), h(32), h(48))
    }
}

extension BF16Blocks {
    @inline(__always) static func decode8(_ p: UnsafeRawPointer) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        @inline(__always) func h(_ o: Int) -> SIMD8<Float> {
            unsafeBitCast(_mm256_slli_epi32(_mm256_cvtepu16_epi32(p.loadUnaligned(fromByteOffset: o, as: SIMD2<Int64>.self)), 16), to: SIMD8<Float>.self)
        }
        return (h(0), h(16), h(32), h(48))
    }

    @inline(__always) static func decodePair(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
        @inline(__always) func h(_ o: Int) -> SIMD16<Float> {
            let u = a.loadUnaligned(fromByteOffset: o, as: SIMD2<Int64>.self), v = b.loadUnaligned(fromByteOffset: o, as: SIMD2<Int64>.self)
            return unsafeBitCast(_mm512_slli_epi32(_mm512_cvtepu16_epi32(SIMD4<Int64>(u[0], u[1], v[0], v[1])), 16), to: SIMD16<Float>.self)
        }
        return (h(0), h(16), h(32), h(48))
    }
}
#endif
