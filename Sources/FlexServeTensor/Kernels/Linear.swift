/// The projection every model layer is made of: `out[t, o] = Σ_i x[t, i] · W[o, i] (+ bias[o])`,
/// with W stored `[outFeatures, inFeatures]` in any `DType`.
///
/// fp32 weights: rows are taken four at a time and dotted with a tile of tokens, so the activations
/// stay in cache. Packed formats go through `fusedRows`, which decodes blocks in registers.
public enum Linear {
    static let tokenTile = 64

    public static func forward(x: UnsafePointer<Float>, tokens: Int, weight: TensorView,
                               bias: UnsafePointer<Float>? = nil, out: UnsafeMutablePointer<Float>,
                               pool: ThreadPool = .shared) {
        if weight.dtype != .f32 {
            fusedRows(x: x, tokens: tokens, weight: weight, bias: bias, out: out, pool: pool)
            return
        }
        let rows = weight.shape[0]
        let cols = weight.shape[weight.shape.count - 1]
        let base = weight.data.assumingMemoryBound(to: Float.self)
        let blocks = (rows + 3) / 4
        // Enough tasks to balance the threads, few enough that each streams a long run of rows.
        let minBlocks = max(1, 64 / max(1, tokens))
        pool.parallelChunks(blocks, minChunk: minBlocks) { blockRange in
            var tile = 0
            while tile < tokens {
                let tileEnd = min(tokens, tile + tokenTile)
                for block in blockRange {
                    let r0 = block * 4
                    let n = min(4, rows - r0)
                    // Rows past the end repeat the last real row; their results are not stored.
                    func row(_ k: Int) -> UnsafePointer<Float> { base + (r0 + min(k, n - 1)) * cols }
                    let w = (row(0), row(1), row(2), row(3))
                    for t in tile..<tileEnd {
                        let d = dot4(x + t * cols, w.0, w.1, w.2, w.3, cols)
                        let o = out + t * rows + r0
                        o[0] = d.0 + (bias?[r0] ?? 0)
                        if n > 1 { o[1] = d.1 + (bias?[r0 + 1] ?? 0) }
                        if n > 2 { o[2] = d.2 + (bias?[r0 + 2] ?? 0) }
                        if n > 3 { o[3] = d.3 + (bias?[r0 + 3] ?? 0) }
                    }
                }
                tile = tileEnd
            }
        }
    }
}

extension Linear {
    /// Packed formats: each row is decoded in registers once per tile of up to `QuantizedDot.maxTile`
    /// tokens while it streams from memory. Results do not depend on the batch's size.
    static func fusedRows(x: UnsafePointer<Float>, tokens: Int, weight: TensorView,
                          bias: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        let rows = weight.shape[0]
        let cols = weight.shape[weight.shape.count - 1]
        let rowBytes = weight.dtype.byteCount(values: cols)!
        let dtype = weight.dtype
        let base = weight.data
        let blocks = cols / 32
        let tile = QuantizedDot.maxTile
        withUnsafeTemporaryAllocation(of: Float.self, capacity: max(1, tokens * blocks)) { sums in
            for t in 0..<tokens { QuantizedDot.blockSums(x + t * cols, cols, into: sums.baseAddress! + t * blocks) }
            let blockSums = UnsafePointer(sums.baseAddress!)
            pool.parallelChunks(rows, minChunk: max(4, 64 / max(1, tokens))) { range in
                for r in range {
                    let w = base + r * rowBytes
                    var t = 0
                    while t < tokens {
                        let n = min(tile, tokens - t)
                        QuantizedDot.rows(dtype, x: x + t * cols, tokens: n, blockSums: blockSums + t * blocks,
                                          w: w, n: cols, out: out + t * rows + r, outStride: rows)
                        t += n
                    }
                    if let bias { for t in 0..<tokens { out[t * rows + r] += bias[r] } }
                }
            }
        }
    }
}

/// Four dot products sharing one vector: the inner loop of `Linear`.
@inline(__always)
public func dot4(_ x: UnsafePointer<Float>, _ w0: UnsafePointer<Float>, _ w1: UnsafePointer<Float>,
                 _ w2: UnsafePointer<Float>, _ w3: UnsafePointer<Float>, _ n: Int) -> (Float, Float, Float, Float) {
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
    let xr = UnsafeRawPointer(x)
    let r0 = UnsafeRawPointer(w0), r1 = UnsafeRawPointer(w1), r2 = UnsafeRawPointer(w2), r3 = UnsafeRawPointer(w3)
    var i = 0
    while i + 16 <= n {
        let xv = xr.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
        a0 = a0.addingProduct(xv, r0.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self))
        a1 = a1.addingProduct(xv, r1.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self))
        a2 = a2.addingProduct(xv, r2.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self))
        a3 = a3.addingProduct(xv, r3.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self))
        i += 16
    }
    var s = (a0.sum(), a1.sum(), a2.sum(), a3.sum())
    while i < n {
        let xv = x[i]
        s.0 += xv * w0[i]; s.1 += xv * w1[i]; s.2 += xv * w2[i]; s.3 += xv * w3[i]
        i += 1
    }
    return s
}

/// One dot product with a SIMD accumulator.
@inline(__always)
public func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD16<Float>()
    let ar = UnsafeRawPointer(a), br = UnsafeRawPointer(b)
    var i = 0
    while i + 16 <= n {
        acc = acc.addingProduct(ar.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self),
                                br.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self))
        i += 16
    }
    var s = acc.sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// y += a · x, vectorised.
@inline(__always)
public func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    let xr = UnsafeRawPointer(x), yr = UnsafeMutableRawPointer(y)
    let av = SIMD16<Float>(repeating: a)
    var i = 0
    while i + 16 <= n {
        let v = yr.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            .addingProduct(av, xr.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self))
        yr.storeBytes(of: v, toByteOffset: i * 4, as: SIMD16<Float>.self)
        i += 16
    }
    while i < n { y[i] += a * x[i]; i += 1 }
}
