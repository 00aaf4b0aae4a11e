#if FLEXSERVE_AVX512
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
/// prepared (exact too), so every product is `q·x`. That is three instructions per value for sixteen rows
/// (mask, convert, FMA), where decoding rows to floats first took about eight (widen, mask, convert, scale,
/// offset, FMA for two rows at a time), and prefill reuses each converted vector for eight tokens.
///
/// Per token and block it holds the 32 inputs in the order the kernel meets them (`floatColumn`), each scaled,
/// and their plain sum for the offsets.
struct F32Activations: GroupActivations {
    let values: UnsafeMutablePointer<Float>
    let sums: UnsafeMutablePointer<Float>
    let blocks: Int

    /// Four everywhere: a token's block is one chain of dependent FMAs per group, and four groups side by side keep
    /// four chains in flight.
    static var decodeStreams: Int { 4 }

    /// Bytes of scratch for `tokens` rows of `cols` values (cols a multiple of 32).
    static func byteCount(tokens: Int, cols: Int) -> Int { 4 * tokens * cols + 4 * tokens * (cols / 32) }

    init(scratch: UnsafeMutableRawPointer, tokens: Int, cols: Int) {
        blocks = cols / 32
        values = scratch.bindMemory(to: Float.self, capacity: tokens * cols + tokens * blocks)
        sums = values + tokens * cols
    }

    /// Token t's block b, ready for `F`'s kernel.
    @inline(__always)
    func block(_ t: Int, _ b: Int) -> UnsafePointer<Float> { UnsafePointer(values + (t * blocks + b) * 32) }

    func prepare<F: IntegerBlockFormat>(_ x: UnsafePointer<Float>, token t: Int, _: F.Type) {
        prepare(x, token: t, blocks: 0..<blocks, F.self)
    }

    /// Blocks `range` of token t.
    func prepare<F: IntegerBlockFormat>(_ x: UnsafePointer<Float>, token t: Int, blocks range: Range<Int>, _: F.Type) {
        for b in range {
            let src = x + b * 32, dst = values + (t * blocks + b) * 32
            var sum: Float = 0
            for i in 0..<32 {
                let (column, scale) = F.floatColumn(i)
                dst[i] = src[column] * scale
                sum += src[i]
            }
            sums[t * blocks + b] = sum
        }
    }

    @inline(__always)
    func accumulate<F: IntegerBlockFormat>(_ sums: inout SIMD16<Float>, _ offsets: inout SIMD16<Float>, token t: Int, block b: Int,
                                           _ integers: UnsafeRawPointer, scales d: SIMD16<Float>, offsetsPerUnit c: SIMD16<Float>, _: F.Type) {
        sums = sums.addingProduct(floatDots(integers, block(t, b), F.self), d)
        if !F.signedBytes { offsets = offsets.addingProduct(c, self.sums[t * blocks + b]) }
    }

    /// The four groups' dots side by side: one chain of FMAs per group (a chain alone waits on each FMA's latency).
    @inline(__always)
    func accumulate<F: IntegerBlockFormat>(_ sums: inout FourSums, _ offsets: inout FourSums, block b: Int,
                                           _ w: (IntegerLinear.Group, IntegerLinear.Group, IntegerLinear.Group, IntegerLinear.Group), _: F.Type) {
        let x = block(0, b), record = b * F.groupIntegerBytes, header = b * F.groupHeaderBytes
        var dots = FourSums()
        for v in 0..<F.floatVectors {
            let u0 = F.floatVector(w.0.integers + record, v), u1 = F.floatVector(w.1.integers + record, v)
            let u2 = F.floatVector(w.2.integers + record, v), u3 = F.floatVector(w.3.integers + record, v)
            for f in 0..<F.floatFields {
                let xi = SIMD16<Float>(repeating: x[v * F.floatFields + f])
                dots.s0 = dots.s0.addingProduct(F.floatField(u0, f), xi); dots.s1 = dots.s1.addingProduct(F.floatField(u1, f), xi)
                dots.s2 = dots.s2.addingProduct(F.floatField(u2, f), xi); dots.s3 = dots.s3.addingProduct(F.floatField(u3, f), xi)
            }
        }
        let sum = self.sums[b]
        @inline(__always) func scale(_ s: inout SIMD16<Float>, _ o: inout SIMD16<Float>, _ dot: SIMD16<Float>, _ g: IntegerLinear.Group) {
            let (d, c) = F.groupScalesAndOffsets(g.headers + header)
            s = s.addingProduct(dot, d)
            if !F.signedBytes { o = o.addingProduct(c, sum) }
        }
        scale(&sums.s0, &offsets.s0, dots.s0, w.0); scale(&sums.s1, &offsets.s1, dots.s1, w.1)
        scale(&sums.s2, &offsets.s2, dots.s2, w.2); scale(&sums.s3, &offsets.s3, dots.s3, w.3)
    }
}

/// One block of a group's sixteen rows against one token's prepared block `x`: a lane per row.
@inline(__always)
func floatDots<F: IntegerBlockFormat>(_ integers: UnsafeRawPointer, _ x: UnsafePointer<Float>, _: F.Type) -> SIMD16<Float> {
    var dot = SIMD16<Float>()
    for v in 0..<F.floatVectors {
        let u = F.floatVector(integers, v)
        for f in 0..<F.floatFields {
            dot = dot.addingProduct(F.floatField(u, f), SIMD16(repeating: x[v * F.floatFields + f]))
        }
    }
    return dot
}

/// The same for eight tokens (`x.k` token k's block): each converted vector used eight times.
@inline(__always)
func floatDots<F: IntegerBlockFormat>(_ integers: UnsafeRawPointer, _ x: EightBlocks, _: F.Type) -> EightSums {
    var s = EightSums()
    for v in 0..<F.floatVectors {
        let u = F.floatVector(integers, v)
        // The fields written out, so each mask and activation offset is a constant (the compiler does not unroll this loop).
        @inline(__always) func field(_ f: Int) {
            let w = F.floatField(u, f), i = v * F.floatFields + f
            s.s0 = s.s0.addingProduct(w, SIMD16(repeating: x.x0[i])); s.s1 = s.s1.addingProduct(w, SIMD16(repeating: x.x1[i]))
            s.s2 = s.s2.addingProduct(w, SIMD16(repeating: x.x2[i])); s.s3 = s.s3.addingProduct(w, SIMD16(repeating: x.x3[i]))
            s.s4 = s.s4.addingProduct(w, SIMD16(repeating: x.x4[i])); s.s5 = s.s5.addingProduct(w, SIMD16(repeating: x.x5[i]))
            s.s6 = s.s6.addingProduct(w, SIMD16(repeating: x.x6[i])); s.s7 = s.s7.addingProduct(w, SIMD16(repeating: x.x7[i]))
        }
        field(0); field(1); field(2); field(3)
        if F.floatFields == 8 { field(4); field(5); field(6); field(7) }
    }
    return s
}

/// Eight tokens' prepared blocks.
struct EightBlocks {
    var x0, x1, x2, x3, x4, x5, x6, x7: UnsafePointer<Float>
}

/// Sixteen rows' sums for eight tokens.
struct EightSums {
    var s0 = SIMD16<Float>(), s1 = SIMD16<Float>(), s2 = SIMD16<Float>(), s3 = SIMD16<Float>()
    var s4 = SIMD16<Float>(), s5 = SIMD16<Float>(), s6 = SIMD16<Float>(), s7 = SIMD16<Float>()
}

extension IntegerBlockFormat {
    /// 512-bit vectors of a block's integer record, and values per 32-bit lane of each.
    static var floatVectors: Int { valueBits == 4 ? 4 : 8 }
    static var floatFields: Int { 32 / floatVectors }

    /// Vector v of the record, for `floatField`: signed bytes stored offset by 128 get their sign back.
    @inline(__always)
    static func floatVector(_ p: UnsafeRawPointer, _ v: Int) -> SIMD16<UInt32> {
        let u = p.load(fromByteOffset: 64 * v, as: SIMD16<UInt32>.self)
        return signedBytes ? u ^ 0x8080_8080 : u
    }

    /// Field f of every lane as a float: `q·2^s`, s = 4f for 4-bit fields and 8f for unsigned bytes; signed
    /// bytes are moved to the top of the lane (`q·2^24`) so the conversion keeps their sign.
    @inline(__always)
    static func floatField(_ u: SIMD16<UInt32>, _ f: Int) -> SIMD16<Float> {
        if valueBits == 4 { return unsignedFloats(u & SIMD16(repeating: 0xF << (4 * f))) }
        if signedBytes { return signedFloats((u &<< UInt32(24 - 8 * f)) & SIMD16(repeating: 0xFF00_0000)) }
        return unsignedFloats(u & SIMD16(repeating: 0xFF << (8 * f)))
    }

    /// The input column the kernel's i-th value of a block multiplies, and the power of two that undoes the field's
    /// position (`floatField`). Field f of vector v holds, for 4-bit records, column 4v + f/2 (low nibble) or
    /// 16 + 4v + f/2 (high); for 8-bit ones column 4v + f (v < 4) or 16 + 4(v − 4) + f (`packGroupIntegers`).
    @inline(__always)
    static func floatColumn(_ i: Int) -> (column: Int, scale: Float) {
        let v = i / floatFields, f = i % floatFields
        if valueBits == 4 {
            return ((f % 2 == 0 ? 0 : 16) + 4 * v + f / 2, Float(sign: .plus, exponent: -4 * f, significand: 1))
        }
        let column = v < 4 ? 4 * v + f : 16 + 4 * (v - 4) + f
        return (column, Float(sign: .plus, exponent: signedBytes ? -24 : -8 * f, significand: 1))
    }
}

@inline(__always)
private func unsignedFloats(_ u: SIMD16<UInt32>) -> SIMD16<Float> {
    #if FLEXSERVE_AVX512
    _mm512_cvtepu32_ps(unsafeBitCast(u, to: __m512i.self))
    #else
    var r = SIMD16<Float>()
    for k in 0..<16 { r[k] = Float(u[k]) }
    return r
    #endif
}

@inline(__always)
private func signedFloats(_ u: SIMD16<UInt32>) -> SIMD16<Float> {
    #if FLEXSERVE_AVX512
    _mm512_cvtepi32_ps(unsafeBitCast(u, to: __m512i.self))
    #else
    var r = SIMD16<Float>()
    for k in 0..<16 { r[k] = Float(Int32(bitPattern: u[k])) }
    return r
    #endif
}
