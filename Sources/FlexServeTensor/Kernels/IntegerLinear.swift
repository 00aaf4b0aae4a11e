/// `Linear` for a weight in an integer block format with `q8` activations: each token's
/// activations are quantized once (`Q8Activations`), then every (row, token) output is, over
/// the blocks in order,
///
///     lanes  += Float(Σ₄ u·x_q) · (d·a)     (eight lanes, one fused multiply-add)
///     offset += c · (a·Σx_q)                (fused)
///     out     = horizontalSum(lanes) + offset (+ bias)
///
/// whatever the number of tokens, so decoding and tree verification agree bit for bit here too.
enum IntegerLinear {
    /// Several projections of the same activations (Q, K and V; gate and up): the activations are
    /// quantized once and all rows are shared out in one dispatch.
    static func forward(x: UnsafePointer<Float>, tokens: Int, projections: [Linear.Projection], pool: ThreadPool) {
        guard tokens > 0 else { return }
        switch projections[0].weight.dtype {
        case .q8_0: forward(Q8_0Blocks.self, x: x, tokens: tokens, projections: projections, pool: pool)
        case .q4_0: forward(Q4_0Blocks.self, x: x, tokens: tokens, projections: projections, pool: pool)
        case .q4_1: forward(Q4_1Blocks.self, x: x, tokens: tokens, projections: projections, pool: pool)
        case .int8Group: forward(Int8GroupBlocks.self, x: x, tokens: tokens, projections: projections, pool: pool)
        case .int4Group: forward(Int4GroupBlocks.self, x: x, tokens: tokens, projections: projections, pool: pool)
        case let dtype: preconditionFailure("\(dtype) has no integer blocks")
        }
    }

    static let tokenTile = 128

    /// One projection's rows as a range of the rows of all.
    struct Segment {
        let rows: Range<Int>
        let base: UnsafeRawPointer, rowBytes: Int
        let bias: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>
    }

    static func forward<F: IntegerBlockFormat>(_: F.Type, x: UnsafePointer<Float>, tokens: Int, projections: [Linear.Projection],
                                               pool: ThreadPool) {
        let cols = projections[0].weight.shape.last!
        var segments: [Segment] = []
        var first = 0
        for p in projections {
            let rows = p.weight.shape[0]
            segments.append(Segment(rows: first..<(first + rows), base: p.weight.data, rowBytes: p.weight.dtype.byteCount(values: cols)!,
                                    bias: p.bias, out: p.out))
            first += rows
        }
        withUnsafeTemporaryAllocation(byteCount: Q8Activations.byteCount(tokens: tokens, cols: cols), alignment: 64) { scratch in
            let a = Q8Activations(scratch: scratch.baseAddress!, tokens: tokens, cols: cols)
            if tokens >= 16 {
                pool.parallelChunks(tokens, minChunk: 8) { range in for t in range { a.quantize(x + t * cols, token: t) } }
            } else {
                for t in 0..<tokens { a.quantize(x + t * cols, token: t) }
            }
            segments.withUnsafeBufferPointer { segments in
                if tokens == 1 {
                    decode(F.self, a, segments, totalRows: first, pool: pool)
                } else {
                    forward(F.self, a, tokens: tokens, segments, pool: pool)
                }
            }
        }
    }

    /// One token: as `Linear.decodeOneToken`, four sequential row streams per task.
    static func decode<F: IntegerBlockFormat>(_: F.Type, _ a: Q8Activations, _ segments: UnsafeBufferPointer<Segment>,
                                              totalRows: Int, pool: ThreadPool) {
        pool.parallelChunks(totalRows, minChunk: 32) { range in
            for s in segments where s.rows.overlaps(range) {
                let lo = max(range.lowerBound, s.rows.lowerBound) - s.rows.lowerBound
                let hi = min(range.upperBound, s.rows.upperBound) - s.rows.lowerBound
                @inline(__always) func row(_ r: Int) -> UnsafeRawPointer { s.base + r * s.rowBytes }
                @inline(__always) func store(_ r: Int, _ v: Float) { s.out[r] = v + (s.bias?[r] ?? 0) }
                let quarter = (hi - lo) / 4
                for i in 0..<quarter {
                    let r = lo + i
                    let d = fourRows(a, token: 0, (row(r), row(r + quarter), row(r + 2 * quarter), row(r + 3 * quarter)), F.self, streaming: true)
                    store(r, d[0]); store(r + quarter, d[1]); store(r + 2 * quarter, d[2]); store(r + 3 * quarter, d[3])
                }
                for r in (lo + 4 * quarter)..<hi {
                    store(r, fourRows(a, token: 0, (row(r), row(r), row(r), row(r)), F.self, streaming: true)[0])
                }
            }
        }
    }

    /// Several tokens: four rows at a time stay in L1 while a tile of tokens goes past them.
    static func forward<F: IntegerBlockFormat>(_: F.Type, _ a: Q8Activations, tokens: Int, _ segments: UnsafeBufferPointer<Segment>,
                                               pool: ThreadPool) {
        // Blocks of four rows, numbered across the segments.
        var firstBlock = [0]
        for s in segments { firstBlock.append(firstBlock.last! + (s.rows.count + 3) / 4) }
        firstBlock.withUnsafeBufferPointer { firstBlock in
            pool.parallelChunks(firstBlock.last!, minChunk: max(1, 64 / tokens)) { blockRange in
                var tile = 0
                while tile < tokens {
                    let tileEnd = min(tokens, tile + tokenTile)
                    for block in blockRange {
                        var k = 0
                        while firstBlock[k + 1] <= block { k += 1 }
                        let s = segments[k]
                        let r0 = (block - firstBlock[k]) * 4, n = min(4, s.rows.count - r0)
                        let rs = (r0, r0 + min(1, n - 1), r0 + min(2, n - 1), r0 + min(3, n - 1))
                        let w = (s.base + rs.0 * s.rowBytes, s.base + rs.1 * s.rowBytes, s.base + rs.2 * s.rowBytes, s.base + rs.3 * s.rowBytes)
                        @inline(__always) func store(_ d: SIMD4<Float>, token t: Int) {
                            let o = s.out + t * s.rows.count
                            o[rs.0] = d[0] + (s.bias?[rs.0] ?? 0)
                            if n > 1 { o[rs.1] = d[1] + (s.bias?[rs.1] ?? 0) }
                            if n > 2 { o[rs.2] = d[2] + (s.bias?[rs.2] ?? 0) }
                            if n > 3 { o[rs.3] = d[3] + (s.bias?[rs.3] ?? 0) }
                        }
                        var t = tile
                        while t + 3 <= tileEnd {
                            let d = fourRowsThreeTokens(a, token: t, w, F.self)
                            store(d.0, token: t); store(d.1, token: t + 1); store(d.2, token: t + 2)
                            t += 3
                        }
                        while t < tileEnd {
                            store(fourRows(a, token: t, w, F.self, streaming: false), token: t)
                            t += 1
                        }
                    }
                    tile = tileEnd
                }
            }
        }
    }

    /// Three tokens against four rows (prefill, verification): each block's weights unpacked once
    /// for three tokens, 12 chains. Per (row, token) the same steps as `fourRows`.
    @inline(__always)
    static func fourRowsThreeTokens<F: IntegerBlockFormat>(_ a: Q8Activations, token t: Int,
                                                           _ w: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer),
                                                           _: F.Type) -> (SIMD4<Float>, SIMD4<Float>, SIMD4<Float>) {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        var b0 = SIMD8<Float>(), b1 = SIMD8<Float>(), b2 = SIMD8<Float>(), b3 = SIMD8<Float>()
        var c0 = SIMD8<Float>(), c1 = SIMD8<Float>(), c2 = SIMD8<Float>(), c3 = SIMD8<Float>()
        var offsetsA = SIMD4<Float>(), offsetsB = SIMD4<Float>(), offsetsC = SIMD4<Float>()
        for b in 0..<a.blocks {
            let o = b * F.blockBytes
            let (d, e) = F.scalesAndOffsets((w.0 + o, w.1 + o, w.2 + o, w.3 + o))
            let u0 = F.integers(w.0 + o), u1 = F.integers(w.1 + o), u2 = F.integers(w.2 + o), u3 = F.integers(w.3 + o)
            @inline(__always) func token(_ k: Int, _ l0: inout SIMD8<Float>, _ l1: inout SIMD8<Float>, _ l2: inout SIMD8<Float>,
                                         _ l3: inout SIMD8<Float>, _ offsets: inout SIMD4<Float>) {
                let (xq, scale, scaledSum) = a.block(t + k, b)
                let s = d * scale
                l0 = l0.addingProduct(integerLanes(u0, xq), s[0])
                l1 = l1.addingProduct(integerLanes(u1, xq), s[1])
                l2 = l2.addingProduct(integerLanes(u2, xq), s[2])
                l3 = l3.addingProduct(integerLanes(u3, xq), s[3])
                offsets = offsets.addingProduct(e, scaledSum)
            }
            token(0, &a0, &a1, &a2, &a3, &offsetsA)
            token(1, &b0, &b1, &b2, &b3, &offsetsB)
            token(2, &c0, &c1, &c2, &c3, &offsetsC)
        }
        @inline(__always) func sums(_ l0: SIMD8<Float>, _ l1: SIMD8<Float>, _ l2: SIMD8<Float>, _ l3: SIMD8<Float>) -> SIMD4<Float> {
            SIMD4(RowDot.horizontalSum(l0), RowDot.horizontalSum(l1), RowDot.horizontalSum(l2), RowDot.horizontalSum(l3))
        }
        return (sums(a0, a1, a2, a3) + offsetsA, sums(b0, b1, b2, b3) + offsetsB, sums(c0, c1, c2, c3) + offsetsC)
    }

    /// One token against four rows: four independent chains, the token's blocks loaded once for them.
    @inline(__always)
    static func fourRows<F: IntegerBlockFormat>(_ a: Q8Activations, token t: Int,
                                                _ w: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer),
                                                _: F.Type, streaming: Bool) -> SIMD4<Float> {
        var l0 = SIMD8<Float>(), l1 = SIMD8<Float>(), l2 = SIMD8<Float>(), l3 = SIMD8<Float>()
        var offsets = SIMD4<Float>()
        for b in 0..<a.blocks {
            let (xq, scale, scaledSum) = a.block(t, b)
            let o = b * F.blockBytes
            if streaming { Prefetch.ahead(w.0 + o); Prefetch.ahead(w.1 + o); Prefetch.ahead(w.2 + o); Prefetch.ahead(w.3 + o) }
            let (d, c) = F.scalesAndOffsets((w.0 + o, w.1 + o, w.2 + o, w.3 + o))
            let s = d * scale
            l0 = l0.addingProduct(integerLanes(F.integers(w.0 + o), xq), s[0])
            l1 = l1.addingProduct(integerLanes(F.integers(w.1 + o), xq), s[1])
            l2 = l2.addingProduct(integerLanes(F.integers(w.2 + o), xq), s[2])
            l3 = l3.addingProduct(integerLanes(F.integers(w.3 + o), xq), s[3])
            offsets = offsets.addingProduct(c, scaledSum)
        }
        return SIMD4(RowDot.horizontalSum(l0), RowDot.horizontalSum(l1), RowDot.horizontalSum(l2), RowDot.horizontalSum(l3)) + offsets
    }
}
