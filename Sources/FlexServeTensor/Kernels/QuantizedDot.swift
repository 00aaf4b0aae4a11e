/// Dot products of fp32 activations with one weight row in a packed format, decoding each block
/// in registers (no scratch row) and applying it to a tile of tokens.
///
/// Every token's result is computed by the same operations in the same order whatever the tile
/// size, so a token's logits do not depend on what else is in the batch: speculative verification
/// (many tokens) then gives bit-for-bit the argmax of incremental decoding (one token).
/// Conversions are element loops that LLVM turns into vector instructions; the standard library's
/// SIMD conversions are calls.
public enum QuantizedDot {
    public static let maxTile = 8

    /// Unsigned bytes convert slowly (LLVM takes a scalar path); signed ones vectorise. Flipping
    /// the top bit maps 0...255 onto -128...127 exactly.
    @inline(__always)
    static func widen(_ v: SIMD16<UInt8>) -> SIMD16<Float> {
        widen(unsafeBitCast(v ^ 0x80, to: SIMD16<Int8>.self)) + 128
    }

    /// Nibbles (0...15) are already valid signed bytes.
    @inline(__always)
    static func widenNibbles(_ v: SIMD16<UInt8>) -> SIMD16<Float> {
        widen(unsafeBitCast(v, to: SIMD16<Int8>.self))
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

    /// `out[t * outStride] = Σ x_t · w` for t in 0..<tokens (≤ maxTile), x_t at `x + t * n`.
    /// `blockSums[t * (n/32) + b]` = Σ of x_t over block b (for formats with an offset).
    @inline(__always)
    public static func rows(_ dtype: DType, x: UnsafePointer<Float>, tokens: Int, blockSums: UnsafePointer<Float>,
                            w: UnsafeRawPointer, n: Int, out: UnsafeMutablePointer<Float>, outStride: Int) {
        let xr = UnsafeRawPointer(x)
        let blocks = n / 32
        var acc = (SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(),
                   SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>())
        var offset = SIMD8<Float>()
        withUnsafeMutableBytes(of: &acc) { accBytes in
            let a = accBytes.baseAddress!.assumingMemoryBound(to: SIMD16<Float>.self)
            @inline(__always) func xv(_ t: Int, _ byte: Int) -> SIMD16<Float> {
                xr.loadUnaligned(fromByteOffset: t * n * 4 + byte, as: SIMD16<Float>.self)
            }
            switch dtype {
            case .f32, .f16, .bf16:
                var i = 0
                while i + 16 <= n {
                    let wv: SIMD16<Float>
                    switch dtype {
                    case .f32: wv = w.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
                    case .f16: wv = widenHalf(w.loadUnaligned(fromByteOffset: i * 2, as: SIMD16<UInt16>.self))
                    default: wv = widenBF16(w.loadUnaligned(fromByteOffset: i * 2, as: SIMD16<UInt16>.self))
                    }
                    for t in 0..<tokens { a[t] = a[t].addingProduct(xv(t, i * 4), wv) }
                    i += 16
                }
                for t in 0..<tokens {
                    var s = a[t].sum()
                    var j = i
                    while j < n {
                        let wj: Float
                        switch dtype {
                        case .f32: wj = w.load(fromByteOffset: j * 4, as: Float.self)
                        case .f16: wj = f16ToFloat(w.loadUnaligned(fromByteOffset: j * 2, as: UInt16.self))
                        default: wj = bf16ToFloat(w.loadUnaligned(fromByteOffset: j * 2, as: UInt16.self))
                        }
                        s += x[t * n + j] * wj
                        j += 1
                    }
                    out[t * outStride] = s
                }
                return
            case .q8_0:
                for b in 0..<blocks {
                    let block = w + b * 34
                    let d = SIMD16<Float>(repeating: f16ToFloat(block.loadUnaligned(as: UInt16.self)))
                    let q0 = widen((block + 2).loadUnaligned(as: SIMD16<Int8>.self))
                    let q1 = widen((block + 18).loadUnaligned(as: SIMD16<Int8>.self))
                    for t in 0..<tokens {
                        a[t] = a[t].addingProduct(d, (q0 * xv(t, b * 128)).addingProduct(q1, xv(t, b * 128 + 64)))
                    }
                }
            case .q4_0, .q4_1:
                let hasMin = dtype == .q4_1
                let stride = hasMin ? 20 : 18
                let dataOffset = hasMin ? 4 : 2
                for b in 0..<blocks {
                    let block = w + b * stride
                    let dScalar = f16ToFloat(block.loadUnaligned(as: UInt16.self))
                    let d = SIMD16<Float>(repeating: dScalar)
                    let packed = (block + dataOffset).loadUnaligned(as: SIMD16<UInt8>.self)
                    let lo = widenNibbles(packed & 0x0F), hi = widenNibbles(packed &>> 4)
                    // Q4_1: value = q·d + m; Q4_0: value = (q − 8)·d.
                    let o = hasMin ? f16ToFloat((block + 2).loadUnaligned(as: UInt16.self)) : -8 * dScalar
                    for t in 0..<tokens {
                        a[t] = a[t].addingProduct(d, (lo * xv(t, b * 128)).addingProduct(hi, xv(t, b * 128 + 64)))
                        offset[t] += o * blockSums[t * blocks + b]
                    }
                }
            case .int8Group, .int4Group:
                let isInt8 = dtype == .int8Group
                for b in 0..<blocks {
                    let block = w + b * (isInt8 ? 40 : 24)
                    let d = SIMD16<Float>(repeating: block.loadUnaligned(as: Float.self))
                    let m = (block + 4).loadUnaligned(as: Float.self)
                    let q0: SIMD16<Float>, q1: SIMD16<Float>
                    if isInt8 {
                        q0 = widen((block + 8).loadUnaligned(as: SIMD16<UInt8>.self))
                        q1 = widen((block + 24).loadUnaligned(as: SIMD16<UInt8>.self))
                    } else {
                        let packed = (block + 8).loadUnaligned(as: SIMD16<UInt8>.self)
                        q0 = widenNibbles(packed & 0x0F)
                        q1 = widenNibbles(packed &>> 4)
                    }
                    for t in 0..<tokens {
                        a[t] = a[t].addingProduct(d, (q0 * xv(t, b * 128)).addingProduct(q1, xv(t, b * 128 + 64)))
                        offset[t] += m * blockSums[t * blocks + b]
                    }
                }
            }
            for t in 0..<tokens { out[t * outStride] = a[t].sum() + offset[t] }
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
