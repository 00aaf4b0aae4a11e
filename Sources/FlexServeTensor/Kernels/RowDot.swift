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

    /// Three tokens against four rows (attention: three query heads against four keys), 12
    /// independent sums. Per (row, token) the same lanes, order, reduction and tail as `oneToken`.
    @inline(__always)
    public static func threeTokens(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ z: UnsafePointer<Float>,
                                   _ w: Rows, _ n: Int) -> (SIMD4<Float>, SIMD4<Float>, SIMD4<Float>) {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        var b0 = SIMD8<Float>(), b1 = SIMD8<Float>(), b2 = SIMD8<Float>(), b3 = SIMD8<Float>()
        var c0 = SIMD8<Float>(), c1 = SIMD8<Float>(), c2 = SIMD8<Float>(), c3 = SIMD8<Float>()
        var i = 0
        while i + 8 <= n {
            let w0 = load(w.0, i), w1 = load(w.1, i), w2 = load(w.2, i), w3 = load(w.3, i)
            let xv = load(x, i), yv = load(y, i), zv = load(z, i)
            a0 = a0.addingProduct(xv, w0); a1 = a1.addingProduct(xv, w1); a2 = a2.addingProduct(xv, w2); a3 = a3.addingProduct(xv, w3)
            b0 = b0.addingProduct(yv, w0); b1 = b1.addingProduct(yv, w1); b2 = b2.addingProduct(yv, w2); b3 = b3.addingProduct(yv, w3)
            c0 = c0.addingProduct(zv, w0); c1 = c1.addingProduct(zv, w1); c2 = c2.addingProduct(zv, w2); c3 = c3.addingProduct(zv, w3)
            i += 8
        }
        var s = SIMD4(horizontalSum(a0), horizontalSum(a1), horizontalSum(a2), horizontalSum(a3))
        var t = SIMD4(horizontalSum(b0), horizontalSum(b1), horizontalSum(b2), horizontalSum(b3))
        var u = SIMD4(horizontalSum(c0), horizontalSum(c1), horizontalSum(c2), horizontalSum(c3))
        tail(x, w, from: i, n, &s)
        tail(y, w, from: i, n, &t)
        tail(z, w, from: i, n, &u)
        return (s, t, u)
    }

    /// `oneToken` for one row still in a block format, decoded in registers as it streams in (for
    /// decoding, where each weight is used once). Same values, same order.
    @inline(__always)
    static func oneToken<F: BlockFormat>(_ x: UnsafePointer<Float>, packedRow w: UnsafeRawPointer, _: F.Type, blocks: Int) -> Float {
        var a = SIMD8<Float>()
        for b in 0..<blocks {
            let i = b * 32
            let (v0, v1, v2, v3) = F.decode8(w + b * F.blockBytes)
            a = a.addingProduct(load(x, i), v0)
            a = a.addingProduct(load(x, i + 8), v1)
            a = a.addingProduct(load(x, i + 16), v2)
            a = a.addingProduct(load(x, i + 24), v3)
        }
        return horizontalSum(a)
    }

    /// The same for four packed rows at once: four independent chains of FMAs (one row's chain is
    /// bound by the FMA latency), and each activation vector loaded once for four rows.
    @inline(__always)
    static func oneToken<F: BlockFormat>(_ x: UnsafePointer<Float>, packedRows w: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer),
                                         _: F.Type, blocks: Int) -> SIMD4<Float> {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        @inline(__always) func step(_ a: inout SIMD8<Float>, _ p: UnsafeRawPointer,
                                    _ x0: SIMD8<Float>, _ x1: SIMD8<Float>, _ x2: SIMD8<Float>, _ x3: SIMD8<Float>) {
            let (v0, v1, v2, v3) = F.decode8(p)
            a = a.addingProduct(x0, v0)
            a = a.addingProduct(x1, v1)
            a = a.addingProduct(x2, v2)
            a = a.addingProduct(x3, v3)
        }
        for b in 0..<blocks {
            let i = b * 32
            let x0 = load(x, i), x1 = load(x, i + 8), x2 = load(x, i + 16), x3 = load(x, i + 24)
            let o = b * F.blockBytes
            Prefetch.ahead(w.0 + o); Prefetch.ahead(w.1 + o); Prefetch.ahead(w.2 + o); Prefetch.ahead(w.3 + o)
            step(&a0, w.0 + o, x0, x1, x2, x3)
            step(&a1, w.1 + o, x0, x1, x2, x3)
            step(&a2, w.2 + o, x0, x1, x2, x3)
            step(&a3, w.3 + o, x0, x1, x2, x3)
        }
        return SIMD4(horizontalSum(a0), horizontalSum(a1), horizontalSum(a2), horizontalSum(a3))
    }

    /// Four rows against six tokens: 24 accumulators in registers (AVX-512 has 32 vector
    /// registers), each weight vector loaded once for six tokens and each activation vector once
    /// for four rows. Per (row, token) the same lanes, order, reduction and tail as `oneToken`.
    @inline(__always)
    public static func sixTokens(_ x: UnsafePointer<Float>, stride: Int, _ w: Rows, _ n: Int)
        -> (SIMD4<Float>, SIMD4<Float>, SIMD4<Float>, SIMD4<Float>, SIMD4<Float>, SIMD4<Float>) {
        var a00 = SIMD8<Float>(), a01 = SIMD8<Float>(), a02 = SIMD8<Float>(), a03 = SIMD8<Float>()
        var a10 = SIMD8<Float>(), a11 = SIMD8<Float>(), a12 = SIMD8<Float>(), a13 = SIMD8<Float>()
        var a20 = SIMD8<Float>(), a21 = SIMD8<Float>(), a22 = SIMD8<Float>(), a23 = SIMD8<Float>()
        var a30 = SIMD8<Float>(), a31 = SIMD8<Float>(), a32 = SIMD8<Float>(), a33 = SIMD8<Float>()
        var a40 = SIMD8<Float>(), a41 = SIMD8<Float>(), a42 = SIMD8<Float>(), a43 = SIMD8<Float>()
        var a50 = SIMD8<Float>(), a51 = SIMD8<Float>(), a52 = SIMD8<Float>(), a53 = SIMD8<Float>()
        let x0 = x, x1 = x + 1 * stride, x2 = x + 2 * stride, x3 = x + 3 * stride, x4 = x + 4 * stride, x5 = x + 5 * stride
        var i = 0
        while i + 8 <= n {
            let w0 = load(w.0, i), w1 = load(w.1, i), w2 = load(w.2, i), w3 = load(w.3, i)
            let v0 = load(x0, i)
            a00 = a00.addingProduct(v0, w0); a01 = a01.addingProduct(v0, w1); a02 = a02.addingProduct(v0, w2); a03 = a03.addingProduct(v0, w3)
            let v1 = load(x1, i)
            a10 = a10.addingProduct(v1, w0); a11 = a11.addingProduct(v1, w1); a12 = a12.addingProduct(v1, w2); a13 = a13.addingProduct(v1, w3)
            let v2 = load(x2, i)
            a20 = a20.addingProduct(v2, w0); a21 = a21.addingProduct(v2, w1); a22 = a22.addingProduct(v2, w2); a23 = a23.addingProduct(v2, w3)
            let v3 = load(x3, i)
            a30 = a30.addingProduct(v3, w0); a31 = a31.addingProduct(v3, w1); a32 = a32.addingProduct(v3, w2); a33 = a33.addingProduct(v3, w3)
            let v4 = load(x4, i)
            a40 = a40.addingProduct(v4, w0); a41 = a41.addingProduct(v4, w1); a42 = a42.addingProduct(v4, w2); a43 = a43.addingProduct(v4, w3)
            let v5 = load(x5, i)
            a50 = a50.addingProduct(v5, w0); a51 = a51.addingProduct(v5, w1); a52 = a52.addingProduct(v5, w2); a53 = a53.addingProduct(v5, w3)
            i += 8
        }
        var s0 = SIMD4(horizontalSum(a00), horizontalSum(a01), horizontalSum(a02), horizontalSum(a03))
        tail(x0, w, from: i, n, &s0)
        var s1 = SIMD4(horizontalSum(a10), horizontalSum(a11), horizontalSum(a12), horizontalSum(a13))
        tail(x1, w, from: i, n, &s1)
        var s2 = SIMD4(horizontalSum(a20), horizontalSum(a21), horizontalSum(a22), horizontalSum(a23))
        tail(x2, w, from: i, n, &s2)
        var s3 = SIMD4(horizontalSum(a30), horizontalSum(a31), horizontalSum(a32), horizontalSum(a33))
        tail(x3, w, from: i, n, &s3)
        var s4 = SIMD4(horizontalSum(a40), horizontalSum(a41), horizontalSum(a42), horizontalSum(a43))
        tail(x4, w, from: i, n, &s4)
        var s5 = SIMD4(horizontalSum(a50), horizontalSum(a51), horizontalSum(a52), horizontalSum(a53))
        tail(x5, w, from: i, n, &s5)
        return (s0, s1, s2, s3, s4, s5)
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
