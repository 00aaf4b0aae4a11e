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

    /// Three tokens against four rows (attention: three query heads against four keys, in the KV store's
    /// type; fp32 prefill on AVX2), 12 independent sums. Per (row, token) the same lanes, order, reduction and tail as `oneToken`.
    @inline(__always)
    static func threeTokens<E: KVElement>(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ z: UnsafePointer<Float>,
                                          _ w: (UnsafePointer<E>, UnsafePointer<E>, UnsafePointer<E>, UnsafePointer<E>),
                                          _ n: Int) -> (SIMD4<Float>, SIMD4<Float>, SIMD4<Float>) {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        var b0 = SIMD8<Float>(), b1 = SIMD8<Float>(), b2 = SIMD8<Float>(), b3 = SIMD8<Float>()
        var c0 = SIMD8<Float>(), c1 = SIMD8<Float>(), c2 = SIMD8<Float>(), c3 = SIMD8<Float>()
        var i = 0
        while i + 8 <= n {
            // Each row's vector just before its three FMAs: with the twelve sums and three activation vectors, the sixteen
            // registers of AVX2, where loading the four rows first spilled (f32 prefill kernel at 40% of the FMA peak).
            let xv = load(x, i), yv = load(y, i), zv = load(z, i)
            var r = E.load8(w.0, i)
            a0 = a0.addingProduct(xv, r); b0 = b0.addingProduct(yv, r); c0 = c0.addingProduct(zv, r)
            r = E.load8(w.1, i)
            a1 = a1.addingProduct(xv, r); b1 = b1.addingProduct(yv, r); c1 = c1.addingProduct(zv, r)
            r = E.load8(w.2, i)
            a2 = a2.addingProduct(xv, r); b2 = b2.addingProduct(yv, r); c2 = c2.addingProduct(zv, r)
            r = E.load8(w.3, i)
            a3 = a3.addingProduct(xv, r); b3 = b3.addingProduct(yv, r); c3 = c3.addingProduct(zv, r)
            i += 8
        }
        var s = SIMD4(horizontalSum(a0), horizontalSum(a1), horizontalSum(a2), horizontalSum(a3))
        var t = SIMD4(horizontalSum(b0), horizontalSum(b1), horizontalSum(b2), horizontalSum(b3))
        var u = SIMD4(horizontalSum(c0), horizontalSum(c1), horizontalSum(c2), horizontalSum(c3))
        while i < n {
            let r = SIMD4(E.load(w.0, i), E.load(w.1, i), E.load(w.2, i), E.load(w.3, i))
            for k in 0..<4 { s[k] += x[i] * r[k]; t[k] += y[i] * r[k]; u[k] += z[i] * r[k] }
            i += 1
        }
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
    /// bound by the FMA latency), and each activation vector loaded once for four rows. Two rows share
    /// each 512-bit register, eight lanes each (`BlockFormat.decodePair`), so the decoding too runs
    /// sixteen lanes wide: on Zen 5, fp32-activation decoding of SmolLM2 ran 20% faster as stored (Q4_1),
    /// 22% with int4 and 11% with Q8_0 than with a row per 256-bit register (interleaved segments).
    @inline(__always)
    static func oneToken<F: BlockFormat>(_ x: UnsafePointer<Float>, packedRows w: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer),
                                         _: F.Type, blocks: Int) -> SIMD4<Float> {
        var a01 = SIMD16<Float>(), a23 = SIMD16<Float>()
        for b in 0..<blocks {
            let xs = activationsTwice(x, b * 32), o = b * F.blockBytes
            prefetch(F.self, w.0 + o); prefetch(F.self, w.1 + o); prefetch(F.self, w.2 + o); prefetch(F.self, w.3 + o)
            accumulate(&a01, xs, F.decodePair(w.0 + o, w.1 + o))
            accumulate(&a23, xs, F.decodePair(w.2 + o, w.3 + o))
        }
        return pairSums(a01, a23)
    }

    /// The same for eight packed rows `stride` bytes apart, from `w`: four pairs, so four independent chains
    /// of FMAs where four rows gave two (each chain takes a block's four FMAs one after another). On Zen 5,
    /// fp32-activation decoding of SmolLM2 ran 7.5% faster as stored (29 of 30 interleaved segment pairs),
    /// 7.7% with int4 and 2.3% with Q8_0 than with four rows.
    @inline(__always)
    static func oneToken<F: BlockFormat>(_ x: UnsafePointer<Float>, eightPackedRows w: UnsafeRawPointer, stride: Int,
                                         _: F.Type, blocks: Int) -> SIMD8<Float> {
        var a01 = SIMD16<Float>(), a23 = SIMD16<Float>(), a45 = SIMD16<Float>(), a67 = SIMD16<Float>()
        for b in 0..<blocks {
            let xs = activationsTwice(x, b * 32), p = w + b * F.blockBytes
            for r in 0..<8 { prefetch(F.self, p + r * stride) }
            accumulate(&a01, xs, F.decodePair(p, p + stride))
            accumulate(&a23, xs, F.decodePair(p + 2 * stride, p + 3 * stride))
            accumulate(&a45, xs, F.decodePair(p + 4 * stride, p + 5 * stride))
            accumulate(&a67, xs, F.decodePair(p + 6 * stride, p + 7 * stride))
        }
        return SIMD8(lowHalf: pairSums(a01, a23), highHalf: pairSums(a45, a67))
    }

    /// Up to four tokens (`count`; the sums past it are not computed) against four packed rows, each block decoded in
    /// registers once for all of them (verifying a few draft tokens), two rows to a 512-bit register. Per
    /// (row, token) the same lanes, order and reduction as `oneToken`.
    @inline(__always)
    static func fourTokens<F: BlockFormat>(_ x: UnsafePointer<Float>, stride: Int, count: Int,
                                           packedRows w: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer),
                                           _: F.Type, blocks: Int) -> (SIMD4<Float>, SIMD4<Float>, SIMD4<Float>, SIMD4<Float>) {
        var a0 = SIMD16<Float>(), b0 = SIMD16<Float>(), a1 = SIMD16<Float>(), b1 = SIMD16<Float>()
        var a2 = SIMD16<Float>(), b2 = SIMD16<Float>(), a3 = SIMD16<Float>(), b3 = SIMD16<Float>()
        for block in 0..<blocks {
            let i = block * 32, o = block * F.blockBytes
            prefetch(F.self, w.0 + o); prefetch(F.self, w.1 + o); prefetch(F.self, w.2 + o); prefetch(F.self, w.3 + o)
            let u = F.decodePair(w.0 + o, w.1 + o), v = F.decodePair(w.2 + o, w.3 + o)
            @inline(__always) func token(_ a: inout SIMD16<Float>, _ b: inout SIMD16<Float>, _ t: Int) {
                let xs = activationsTwice(x + t * stride, i)
                accumulate(&a, xs, u)
                accumulate(&b, xs, v)
            }
            token(&a0, &b0, 0)
            if count > 1 { token(&a1, &b1, 1) }
            if count > 2 { token(&a2, &b2, 2) }
            if count > 3 { token(&a3, &b3, 3) }
        }
        return (pairSums(a0, b0), pairSums(a1, b1), pairSums(a2, b2), pairSums(a3, b3))
    }

    /// `fourTokens` for five to eight tokens (`count`): each block decoded once for all of them, sixteen
    /// accumulators. `store(t, sums)` takes token t's four row sums.
    @inline(__always)
    static func eightTokens<F: BlockFormat>(_ x: UnsafePointer<Float>, stride: Int, count: Int,
                                            packedRows w: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer),
                                            _: F.Type, blocks: Int, _ store: (Int, SIMD4<Float>) -> Void) {
        var a0 = SIMD16<Float>(), b0 = SIMD16<Float>(), a1 = SIMD16<Float>(), b1 = SIMD16<Float>()
        var a2 = SIMD16<Float>(), b2 = SIMD16<Float>(), a3 = SIMD16<Float>(), b3 = SIMD16<Float>()
        var a4 = SIMD16<Float>(), b4 = SIMD16<Float>(), a5 = SIMD16<Float>(), b5 = SIMD16<Float>()
        var a6 = SIMD16<Float>(), b6 = SIMD16<Float>(), a7 = SIMD16<Float>(), b7 = SIMD16<Float>()
        for block in 0..<blocks {
            let i = block * 32, o = block * F.blockBytes
            prefetch(F.self, w.0 + o); prefetch(F.self, w.1 + o); prefetch(F.self, w.2 + o); prefetch(F.self, w.3 + o)
            let u = F.decodePair(w.0 + o, w.1 + o), v = F.decodePair(w.2 + o, w.3 + o)
            @inline(__always) func token(_ a: inout SIMD16<Float>, _ b: inout SIMD16<Float>, _ t: Int) {
                let xs = activationsTwice(x + t * stride, i)
                accumulate(&a, xs, u)
                accumulate(&b, xs, v)
            }
            token(&a0, &b0, 0); token(&a1, &b1, 1); token(&a2, &b2, 2); token(&a3, &b3, 3); token(&a4, &b4, 4)
            if count > 5 { token(&a5, &b5, 5) }
            if count > 6 { token(&a6, &b6, 6) }
            if count > 7 { token(&a7, &b7, 7) }
        }
        store(0, pairSums(a0, b0)); store(1, pairSums(a1, b1)); store(2, pairSums(a2, b2)); store(3, pairSums(a3, b3)); store(4, pairSums(a4, b4))
        if count > 5 { store(5, pairSums(a5, b5)) }
        if count > 6 { store(6, pairSums(a6, b6)) }
        if count > 7 { store(7, pairSums(a7, b7)) }
    }

    /// Asks for each line of the block at `p` (two for fp32's 128-byte blocks) `F.prefetchDistance` ahead of it.
    @inline(__always)
    static func prefetch<F: BlockFormat>(_: F.Type, _ p: UnsafeRawPointer) {
        Prefetch.ahead(p, by: F.prefetchDistance)
        if F.blockBytes > 64 { Prefetch.ahead(p + 64, by: F.prefetchDistance) }
    }

    /// One token's four eight-value activation vectors of the block at `i`, each in both halves of a register.
    @inline(__always)
    static func activationsTwice(_ x: UnsafePointer<Float>, _ i: Int) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
        (twice(x, i), twice(x, i + 8), twice(x, i + 16), twice(x, i + 24))
    }

    /// A block of two rows (`BlockFormat.decodePair`) against one token's activations into `a`: per lane the
    /// four products in order, as `oneToken` adds them.
    @inline(__always)
    static func accumulate(_ a: inout SIMD16<Float>, _ x: (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>),
                           _ w: (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>)) {
        a = a.addingProduct(x.0, w.0)
        a = a.addingProduct(x.1, w.1)
        a = a.addingProduct(x.2, w.2)
        a = a.addingProduct(x.3, w.3)
    }

    /// The four row sums of two two-row accumulators (rows 0 and 1 in `a`, 2 and 3 in `b`).
    @inline(__always)
    static func pairSums(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD4<Float> {
        SIMD4(horizontalSum(a.lowHalf), horizontalSum(a.highHalf), horizontalSum(b.lowHalf), horizontalSum(b.highHalf))
    }

    /// Two rows' eight lanes side by side in one 512-bit register.
    @inline(__always)
    static func pair(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ i: Int) -> SIMD16<Float> {
        SIMD16(lowHalf: load(a, i), highHalf: load(b, i))
    }

    /// One token's eight values in both halves of a 512-bit register.
    @inline(__always)
    static func twice(_ x: UnsafePointer<Float>, _ i: Int) -> SIMD16<Float> {
        let v = load(x, i)
        return SIMD16(lowHalf: v, highHalf: v)
    }

    /// Four rows against eight tokens, each 512-bit register holding two rows' eight lanes for one token
    /// (rows 0 and 1, or 2 and 3): sixteen accumulators, each weight vector loaded once for eight tokens and
    /// each activation vector once for four rows, and every instruction sixteen lanes wide, which a core with
    /// full-width AVX-512 units (Zen 5) needs for its FMA peak. Against six tokens in 256-bit registers, SmolLM2's
    /// 512-token prefill with fp32 activations ran 25% faster on Zen 5 (f32 and Q4_1 weights, 10 of 10 alternating
    /// runs, the same logits bit for bit). Per (row, token) the same lanes, order, reduction and tail as
    /// `oneToken`. `store(t, sums)` takes token t's four row sums.
    @inline(__always)
    public static func eightTokens(_ x: UnsafePointer<Float>, stride: Int, _ w: Rows, _ n: Int, _ store: (Int, SIMD4<Float>) -> Void) {
        var a0 = SIMD16<Float>(), b0 = SIMD16<Float>(), a1 = SIMD16<Float>(), b1 = SIMD16<Float>()
        var a2 = SIMD16<Float>(), b2 = SIMD16<Float>(), a3 = SIMD16<Float>(), b3 = SIMD16<Float>()
        var a4 = SIMD16<Float>(), b4 = SIMD16<Float>(), a5 = SIMD16<Float>(), b5 = SIMD16<Float>()
        var a6 = SIMD16<Float>(), b6 = SIMD16<Float>(), a7 = SIMD16<Float>(), b7 = SIMD16<Float>()
        let x0 = x, x1 = x + stride, x2 = x + 2 * stride, x3 = x + 3 * stride
        let x4 = x + 4 * stride, x5 = x + 5 * stride, x6 = x + 6 * stride, x7 = x + 7 * stride
        var i = 0
        while i + 8 <= n {
            let w01 = pair(w.0, w.1, i), w23 = pair(w.2, w.3, i)
            var v = twice(x0, i); a0 = a0.addingProduct(v, w01); b0 = b0.addingProduct(v, w23)
            v = twice(x1, i); a1 = a1.addingProduct(v, w01); b1 = b1.addingProduct(v, w23)
            v = twice(x2, i); a2 = a2.addingProduct(v, w01); b2 = b2.addingProduct(v, w23)
            v = twice(x3, i); a3 = a3.addingProduct(v, w01); b3 = b3.addingProduct(v, w23)
            v = twice(x4, i); a4 = a4.addingProduct(v, w01); b4 = b4.addingProduct(v, w23)
            v = twice(x5, i); a5 = a5.addingProduct(v, w01); b5 = b5.addingProduct(v, w23)
            v = twice(x6, i); a6 = a6.addingProduct(v, w01); b6 = b6.addingProduct(v, w23)
            v = twice(x7, i); a7 = a7.addingProduct(v, w01); b7 = b7.addingProduct(v, w23)
            i += 8
        }
        @inline(__always) func finish(_ t: Int, _ xt: UnsafePointer<Float>, _ a: SIMD16<Float>, _ b: SIMD16<Float>) {
            var s = pairSums(a, b)
            tail(xt, w, from: i, n, &s)
            store(t, s)
        }
        finish(0, x0, a0, b0); finish(1, x1, a1, b1); finish(2, x2, a2, b2); finish(3, x3, a3, b3)
        finish(4, x4, a4, b4); finish(5, x5, a5, b5); finish(6, x6, a6, b6); finish(7, x7, a7, b7)
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
