/// Dot products of activation vectors with weight rows: the inner loops of `Linear` (and of
/// attention's scores).
///
/// Each result is accumulated in eight lanes (lane j sums the products at i ≡ j mod 8, in order),
/// reduced by `horizontalSum`, then the tail (n mod 8) is added in order. Every kernel here follows
/// exactly this sequence per (token, row), which is what makes `Linear` batch-invariant.
public enum RowDot {
    public typealias Rows = (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>)

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD8<Float> {
        UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
    }

    /// A fixed reduction tree (the standard library's `sum()` is a serial chain of 7 adds).
    @inline(__always)
    public static func horizontalSum(_ v: SIMD8<Float>) -> Float {
        let a = v.lowHalf + v.highHalf
        let b = a.lowHalf + a.highHalf
        return b[0] + b[1]
    }

    @inline(__always)
    static func tail(_ x: UnsafePointer<Float>, _ w: Rows, from start: Int, _ n: Int, _ s: inout SIMD4<Float>) {
        var i = start
        while i < n {
            s[0] += x[i] * w.0[i]; s[1] += x[i] * w.1[i]; s[2] += x[i] * w.2[i]; s[3] += x[i] * w.3[i]
            i += 1
        }
    }

    @inline(__always)
    public static func oneToken(_ x: UnsafePointer<Float>, _ w: Rows, _ n: Int) -> SIMD4<Float> {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        var i = 0
        while i + 8 <= n {
            let xv = load(x, i)
            a0 = a0.addingProduct(xv, load(w.0, i))
            a1 = a1.addingProduct(xv, load(w.1, i))
            a2 = a2.addingProduct(xv, load(w.2, i))
            a3 = a3.addingProduct(xv, load(w.3, i))
            i += 8
        }
        var s = SIMD4(horizontalSum(a0), horizontalSum(a1), horizontalSum(a2), horizontalSum(a3))
        tail(x, w, from: i, n, &s)
        return s
    }

    /// `oneToken` for one row still in a block format, decoded in registers as it streams in (for
    /// decoding, where each weight is used once). Same values, same order. One row at a time keeps
    /// the reads sequential, which streamed from memory twice as fast as four rows interleaved.
    @inline(__always)
    static func oneToken<F: BlockFormat>(_ x: UnsafePointer<Float>, packedRow w: UnsafeRawPointer, _: F.Type, blocks: Int) -> Float {
        var a = SIMD8<Float>()
        for b in 0..<blocks {
            let i = b * 32
            let (lo, hi) = F.decode(w + b * F.blockBytes)
            a = a.addingProduct(load(x, i), lo.lowHalf)
            a = a.addingProduct(load(x, i + 8), lo.highHalf)
            a = a.addingProduct(load(x, i + 16), hi.lowHalf)
            a = a.addingProduct(load(x, i + 24), hi.highHalf)
        }
        return horizontalSum(a)
    }

    @inline(__always)
    public static func twoTokens(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ w: Rows,
                                 _ n: Int) -> (SIMD4<Float>, SIMD4<Float>) {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        var b0 = SIMD8<Float>(), b1 = SIMD8<Float>(), b2 = SIMD8<Float>(), b3 = SIMD8<Float>()
        var i = 0
        while i + 8 <= n {
            let xv = load(x, i), yv = load(y, i)
            let w0 = load(w.0, i), w1 = load(w.1, i), w2 = load(w.2, i), w3 = load(w.3, i)
            a0 = a0.addingProduct(xv, w0); b0 = b0.addingProduct(yv, w0)
            a1 = a1.addingProduct(xv, w1); b1 = b1.addingProduct(yv, w1)
            a2 = a2.addingProduct(xv, w2); b2 = b2.addingProduct(yv, w2)
            a3 = a3.addingProduct(xv, w3); b3 = b3.addingProduct(yv, w3)
            i += 8
        }
        var s = SIMD4(horizontalSum(a0), horizontalSum(a1), horizontalSum(a2), horizontalSum(a3))
        var t = SIMD4(horizontalSum(b0), horizontalSum(b1), horizontalSum(b2), horizontalSum(b3))
        tail(x, w, from: i, n, &s)
        tail(y, w, from: i, n, &t)
        return (s, t)
    }
}

/// One dot product, eight lanes and a fixed reduction tree.
@inline(__always)
public func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
    var i = 0
    while i + 16 <= n {
        acc0 = acc0.addingProduct(RowDot.load(a, i), RowDot.load(b, i))
        acc1 = acc1.addingProduct(RowDot.load(a, i + 8), RowDot.load(b, i + 8))
        i += 16
    }
    if i + 8 <= n { acc0 = acc0.addingProduct(RowDot.load(a, i), RowDot.load(b, i)); i += 8 }
    var s = RowDot.horizontalSum(acc0 + acc1)
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// y += a · x, vectorised.
@inline(__always)
public func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    let xr = UnsafeRawPointer(x), yr = UnsafeMutableRawPointer(y)
    let av = SIMD8<Float>(repeating: a)
    var i = 0
    while i + 8 <= n {
        let v = yr.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            .addingProduct(av, xr.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self))
        yr.storeBytes(of: v, toByteOffset: i * 4, as: SIMD8<Float>.self)
        i += 8
    }
    while i < n { y[i] += a * x[i]; i += 1 }
}
