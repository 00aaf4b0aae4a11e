/// Dot products of an fp32 vector with one weight row in a packed format, decoding each block in
/// registers (no scratch row). Decoding streams weights at memory speed only if these stay
/// branch-free SIMD: conversions are written as element loops that LLVM turns into vector
/// instructions, since the standard library's SIMD conversions are calls.
public enum QuantizedDot {
    @inline(__always)
    static func widen(_ v: SIMD16<UInt8>) -> SIMD16<Float> {
        var r = SIMD16<Float>()
        for i in 0..<16 { r[i] = Float(v[i]) }
        return r
    }

    @inline(__always)
    static func widen(_ v: SIMD16<Int8>) -> SIMD16<Float> {
        var r = SIMD16<Float>()
        for i in 0..<16 { r[i] = Float(v[i]) }
        return r
    }

    @inline(__always)
    static func widenHalf(_ v: SIMD16<UInt16>) -> SIMD16<Float> {
        var r = SIMD16<Float>()
        for i in 0..<16 { r[i] = Float(Float16(bitPattern: v[i])) }
        return r
    }

    @inline(__always)
    static func widenBF16(_ v: SIMD16<UInt16>) -> SIMD16<Float> {
        var r = SIMD16<UInt32>()
        for i in 0..<16 { r[i] = UInt32(v[i]) << 16 }
        return unsafeBitCast(r, to: SIMD16<Float>.self)
    }

    /// Σ x·w for one row; `blockSums[b]` = Σ of x over block b (used by formats with an offset).
    @inline(__always)
    public static func row(_ dtype: DType, _ x: UnsafePointer<Float>, _ blockSums: UnsafePointer<Float>,
                           _ w: UnsafeRawPointer, _ n: Int) -> Float {
        let xr = UnsafeRawPointer(x)
        switch dtype {
        case .f32:
            return dot(x, w.assumingMemoryBound(to: Float.self), n)
        case .f16, .bf16:
            var acc = SIMD16<Float>()
            var i = 0
            while i + 16 <= n {
                let h = w.loadUnaligned(fromByteOffset: i * 2, as: SIMD16<UInt16>.self)
                let wv = dtype == .f16 ? widenHalf(h) : widenBF16(h)
                acc = acc.addingProduct(xr.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self), wv)
                i += 16
            }
            var s = acc.sum()
            let h = w.assumingMemoryBound(to: UInt16.self)
            while i < n { s += x[i] * (dtype == .f16 ? f16ToFloat(h[i]) : bf16ToFloat(h[i])); i += 1 }
            return s
        case .q8_0:
            // Vector accumulators across blocks: one horizontal sum per row, not per block.
            var acc = SIMD16<Float>()
            for b in 0..<(n / 32) {
                let block = w + b * 34
                let d = SIMD16<Float>(repeating: f16ToFloat(block.loadUnaligned(as: UInt16.self)))
                let q0 = widen((block + 2).loadUnaligned(as: SIMD16<Int8>.self))
                let q1 = widen((block + 18).loadUnaligned(as: SIMD16<Int8>.self))
                let x0 = xr.loadUnaligned(fromByteOffset: b * 128, as: SIMD16<Float>.self)
                let x1 = xr.loadUnaligned(fromByteOffset: b * 128 + 64, as: SIMD16<Float>.self)
                acc = acc.addingProduct(d, (q0 * x0).addingProduct(q1, x1))
            }
            return acc.sum()
        case .q4_0, .q4_1:
            var acc = SIMD16<Float>()
            var offsetTerm: Float = 0
            let hasMin = dtype == .q4_1
            let stride = hasMin ? 20 : 18
            let dataOffset = hasMin ? 4 : 2
            for b in 0..<(n / 32) {
                let block = w + b * stride
                let dScalar = f16ToFloat(block.loadUnaligned(as: UInt16.self))
                let packed = (block + dataOffset).loadUnaligned(as: SIMD16<UInt8>.self)
                let lo = widen(packed & 0x0F), hi = widen(packed &>> 4)
                let x0 = xr.loadUnaligned(fromByteOffset: b * 128, as: SIMD16<Float>.self)
                let x1 = xr.loadUnaligned(fromByteOffset: b * 128 + 64, as: SIMD16<Float>.self)
                acc = acc.addingProduct(SIMD16<Float>(repeating: dScalar), (lo * x0).addingProduct(hi, x1))
                // Q4_1: value = q·d + m; Q4_0: value = (q − 8)·d.
                offsetTerm += (hasMin ? f16ToFloat((block + 2).loadUnaligned(as: UInt16.self)) : -8 * dScalar) * blockSums[b]
            }
            return acc.sum() + offsetTerm
        case .int8Group, .int4Group:
            var acc = SIMD16<Float>()
            var offsetTerm: Float = 0
            let isInt8 = dtype == .int8Group
            for b in 0..<(n / 32) {
                let block = w + b * (isInt8 ? 40 : 24)
                let d = block.loadUnaligned(as: Float.self)
                let m = (block + 4).loadUnaligned(as: Float.self)
                let x0 = xr.loadUnaligned(fromByteOffset: b * 128, as: SIMD16<Float>.self)
                let x1 = xr.loadUnaligned(fromByteOffset: b * 128 + 64, as: SIMD16<Float>.self)
                let qx: SIMD16<Float>
                if isInt8 {
                    qx = (widen((block + 8).loadUnaligned(as: SIMD16<UInt8>.self)) * x0)
                        .addingProduct(widen((block + 24).loadUnaligned(as: SIMD16<UInt8>.self)), x1)
                } else {
                    let packed = (block + 8).loadUnaligned(as: SIMD16<UInt8>.self)
                    qx = (widen(packed & 0x0F) * x0).addingProduct(widen(packed &>> 4), x1)
                }
                acc = acc.addingProduct(SIMD16<Float>(repeating: d), qx)
                offsetTerm += m * blockSums[b]
            }
            return acc.sum() + offsetTerm
        }
    }

    /// Per-block sums of x (32 values each), needed by the offset formats.
    public static func blockSums(_ x: UnsafePointer<Float>, _ n: Int, into out: UnsafeMutablePointer<Float>) {
        let xr = UnsafeRawPointer(x)
        for b in 0..<(n / 32) {
            out[b] = (xr.loadUnaligned(fromByteOffset: b * 128, as: SIMD16<Float>.self)
                + xr.loadUnaligned(fromByteOffset: b * 128 + 64, as: SIMD16<Float>.self)).sum()
        }
    }
}
