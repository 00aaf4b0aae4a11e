/// `Linear` for a weight in `InterleavedRows` with `q8` activations: each token's activations are
/// quantized once (`Q8Activations`), then every quad of rows and token takes, over the blocks in
/// order,
///
///     lanes   += Float(Σ u·x_q) · (d·a)     (four lanes per row, one fused multiply-add)
///     offsets += c · (a·Σx_q)               (fused)
///     out      = (lanes₀ + lanes₁) + (lanes₂ + lanes₃) + offset (+ bias)
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

    /// Tokens that go past a quad while its blocks stay in L1.
    static let tokenTile = 128

    /// One projection's quads as a range of the quads of all.
    struct Segment {
        let quads: Range<Int>
        let rows: Int
        let integers: UnsafeRawPointer, headers: UnsafeRawPointer
        let bias: UnsafePointer<Float>?
        var out: UnsafeMutablePointer<Float>

        /// Local quad `q`'s records.
        @inline(__always) func quad<F: IntegerBlockFormat>(_ q: Int, _: F.Type, blocks: Int) -> Quad {
            let record = q * blocks
            return Quad(integers: integers + record * F.quadIntegerBytes, headers: headers + record * F.quadHeaderBytes)
        }

        /// Stores the results of local quad `q` (rows 4q..<4q+4 that exist) for token t.
        @inline(__always) func store(_ v: SIMD4<Float>, quad q: Int, token t: Int) {
            let o = out + t * rows
            for k in 0..<min(4, rows - 4 * q) { o[4 * q + k] = v[k] + (bias?[4 * q + k] ?? 0) }
        }
    }

    /// Where one quad's records start.
    struct Quad {
        let integers: UnsafeRawPointer, headers: UnsafeRawPointer
    }

    static func forward<F: IntegerBlockFormat>(_: F.Type, x: UnsafePointer<Float>, tokens: Int, projections: [Linear.Projection],
                                               pool: ThreadPool) {
        let cols = projections[0].weight.shape.last!
        var segments: [Segment] = []
        var first = 0
        for p in projections {
            let packed = p.weight.interleaved!
            segments.append(Segment(quads: first..<(first + packed.quads), rows: packed.rows,
                                    integers: UnsafeRawPointer(packed.integers.pointer), headers: UnsafeRawPointer(packed.headers.pointer),
                                    bias: p.bias, out: p.out))
            first += packed.quads
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
                    decode(F.self, a, segments, totalQuads: first, pool: pool)
                } else {
                    forward(F.self, a, tokens: tokens, segments, totalQuads: first, pool: pool)
                }
            }
        }
    }

    /// Calls `body(segment, local quad range)` for the parts of `range` (global quads) in each segment.
    @inline(__always)
    static func forEachPart(of range: Range<Int>, in segments: UnsafeBufferPointer<Segment>, _ body: (Segment, Range<Int>) -> Void) {
        for s in segments where s.quads.overlaps(range) {
            body(s, (max(range.lowerBound, s.quads.lowerBound) - s.quads.lowerBound)..<(min(range.upperBound, s.quads.upperBound) - s.quads.lowerBound))
        }
    }

    /// One token. Each thread owns two parts of the quads (of all projections together) and streams
    /// them side by side, prefetched ahead, taking pieces of `decodePieceBytes` from their fronts; when
    /// both are done it takes pieces from the backs of the other threads' parts (`StealableRanges`).
    /// A decode step makes ~120 of these dispatches of 0.3–2 MB: smaller tasks would each start cold
    /// memory streams (four tasks per thread decoded 1–15% slower than one, four streams per thread
    /// 8–20% slower, measured in interleaved segments). With one fixed task per thread the threads
    /// finished 1–2 ms apart per token; stealing brings that to 0.1–0.2 ms (at the same median speed:
    /// memory is shared, so the idle core's bandwidth had gone to the other), and a core slowed by a
    /// neighbour no longer holds up the step.
    static func decode<F: IntegerBlockFormat>(_: F.Type, _ a: Q8Activations, _ segments: UnsafeBufferPointer<Segment>,
                                              totalQuads: Int, pool: ThreadPool) {
        let threads = decodeThreads(totalQuads: totalQuads, pool: pool)
        let piece = decodePiece(F.self, a)
        let parts = StealableRanges(splitting: totalQuads, into: 2 * threads)
        pool.parallelFor(threads) { t in decodeSlot(F.self, t, a, segments, parts: parts, piece: piece) }
    }

    static func decodeThreads(totalQuads: Int, pool: ThreadPool) -> Int { min(pool.threadCount, max(1, totalQuads / 16)) }

    static func decodePiece<F: IntegerBlockFormat>(_: F.Type, _ a: Q8Activations) -> Int {
        max(1, decodePieceBytes / (a.blocks * (F.quadIntegerBytes + F.quadHeaderBytes)))
    }

    /// Thread slot `t`'s share of a decode: parts 2t and 2t + 1 streamed side by side, then pieces stolen from the others.
    @inline(__always)
    static func decodeSlot<F: IntegerBlockFormat>(_: F.Type, _ t: Int, _ a: Q8Activations, _ segments: UnsafeBufferPointer<Segment>,
                                                  parts: StealableRanges, piece: Int) {
        @inline(__always) func one(_ q: Int) {
            let (s, local) = locate(q, segments)
            s.store(quad(a, token: 0, s.quad(local, F.self, blocks: a.blocks), F.self), quad: local, token: 0)
        }
        var first = 0..<0, second = 0..<0
        while true {
            if first.isEmpty { first = parts.takeFront(2 * t, piece) ?? 0..<0 }
            if second.isEmpty { second = parts.takeFront(2 * t + 1, piece) ?? 0..<0 }
            if first.isEmpty || second.isEmpty {
                if first.isEmpty && second.isEmpty { break }
                for q in first { one(q) }
                for q in second { one(q) }
                first = 0..<0; second = 0..<0
                continue
            }
            let (s, local) = locate(first.lowerBound, segments), (u, other) = locate(second.lowerBound, segments)
            let (v, w) = twoQuads(a, s.quad(local, F.self, blocks: a.blocks), u.quad(other, F.self, blocks: a.blocks), F.self)
            s.store(v, quad: local, token: 0)
            u.store(w, quad: other, token: 0)
            first = first.dropFirst()
            second = second.dropFirst()
        }
        for victim in 1..<parts.parts {
            let part = (2 * t + victim) % parts.parts
            while let stolen = parts.takeBack(part, piece) { for q in stolen { one(q) } }
        }
    }

    /// Bytes of a decode piece: about two microseconds of one stream, the most a thread can be left waiting at
    /// the join. Measured in interleaved segments of SmolLM2 decoding with q8 activations: 32 KB against 16 KB
    /// 1.3–5.2% faster (Q8_0 and Q4_1, 20–27 of 38 segment pairs, five runs); 64 KB 0.8–2.5% slower than 32 KB.
    static let decodePieceBytes = 32 << 10

    /// The segment holding global quad `q`, and `q`'s index in it.
    @inline(__always)
    static func locate(_ q: Int, _ segments: UnsafeBufferPointer<Segment>) -> (Segment, Int) {
        var i = 0
        while q >= segments[i].quads.upperBound { i += 1 }
        return (segments[i], q - segments[i].quads.lowerBound)
    }

    /// Several tokens: a quad's blocks stay in L1 while the tokens go past them four at a time.
    static func forward<F: IntegerBlockFormat>(_: F.Type, _ a: Q8Activations, tokens: Int, _ segments: UnsafeBufferPointer<Segment>,
                                               totalQuads: Int, pool: ThreadPool) {
        pool.parallelChunks(totalQuads, minChunk: max(1, 64 / tokens)) { range in
            var tile = 0
            while tile < tokens {
                let tileEnd = min(tokens, tile + tokenTile)
                forEachPart(of: range, in: segments) { s, local in
                    for q in local {
                        let w = s.quad(q, F.self, blocks: a.blocks)
                        var t = tile
                        while t + 4 <= tileEnd {
                            let v = quadFourTokens(a, token: t, w, F.self)
                            s.store(v.0, quad: q, token: t); s.store(v.1, quad: q, token: t + 1)
                            s.store(v.2, quad: q, token: t + 2); s.store(v.3, quad: q, token: t + 3)
                            t += 4
                        }
                        while t < tileEnd {
                            s.store(quad(a, token: t, w, F.self), quad: q, token: t)
                            t += 1
                        }
                    }
                }
                tile = tileEnd
            }
        }
    }

    /// One block of one token into a quad's sums: the step every path takes.
    @inline(__always)
    static func accumulate(_ lanes: inout SIMD16<Float>, _ offsets: inout SIMD4<Float>, _ a: Q8Activations, token t: Int, block b: Int,
                           _ low: SIMD64<UInt8>, _ high: SIMD64<UInt8>, scales: SIMD16<Float>, offsetsPerUnit c: SIMD4<Float>) {
        let (x, scale, scaledSum) = a.block(t, b)
        lanes = lanes.addingProduct(quadDots(low, high, x), scales * scale)
        offsets = offsets.addingProduct(c, scaledSum)
    }

    @inline(__always)
    static func result(_ lanes: SIMD16<Float>, _ offsets: SIMD4<Float>) -> SIMD4<Float> {
        let pairs = lanes.evenHalf + lanes.oddHalf
        return (pairs.evenHalf + pairs.oddHalf) + offsets
    }

    /// One token against one quad.
    @inline(__always)
    static func quad<F: IntegerBlockFormat>(_ a: Q8Activations, token t: Int, _ w: Quad, _: F.Type) -> SIMD4<Float> {
        var lanes = SIMD16<Float>(), offsets = SIMD4<Float>()
        for b in 0..<a.blocks {
            let (low, high) = F.quadIntegers(w.integers + b * F.quadIntegerBytes)
            let (d, c) = F.quadScalesAndOffsets(w.headers + b * F.quadHeaderBytes)
            accumulate(&lanes, &offsets, a, token: t, block: b, low, high, scales: quadLanes(d), offsetsPerUnit: c)
        }
        return result(lanes, offsets)
    }

    /// One token against two quads (decoding): two independent chains, both streams prefetched.
    @inline(__always)
    static func twoQuads<F: IntegerBlockFormat>(_ a: Q8Activations, _ v: Quad, _ w: Quad, _: F.Type) -> (SIMD4<Float>, SIMD4<Float>) {
        var lanesV = SIMD16<Float>(), offsetsV = SIMD4<Float>(), lanesW = SIMD16<Float>(), offsetsW = SIMD4<Float>()
        for b in 0..<a.blocks {
            let i = b * F.quadIntegerBytes, h = b * F.quadHeaderBytes
            Prefetch.ahead(v.integers + i); Prefetch.ahead(w.integers + i)
            if F.quadIntegerBytes > 64 { Prefetch.ahead(v.integers + i + 64); Prefetch.ahead(w.integers + i + 64) }
            // Headers are 8–32 bytes a block: one prefetch per cache line is enough.
            if Int(bitPattern: v.headers + h) & 63 < F.quadHeaderBytes { Prefetch.ahead(v.headers + h) }
            if Int(bitPattern: w.headers + h) & 63 < F.quadHeaderBytes { Prefetch.ahead(w.headers + h) }
            let (lowV, highV) = F.quadIntegers(v.integers + i), (lowW, highW) = F.quadIntegers(w.integers + i)
            let (dV, cV) = F.quadScalesAndOffsets(v.headers + h), (dW, cW) = F.quadScalesAndOffsets(w.headers + h)
            accumulate(&lanesV, &offsetsV, a, token: 0, block: b, lowV, highV, scales: quadLanes(dV), offsetsPerUnit: cV)
            accumulate(&lanesW, &offsetsW, a, token: 0, block: b, lowW, highW, scales: quadLanes(dW), offsetsPerUnit: cW)
        }
        return (result(lanesV, offsetsV), result(lanesW, offsetsW))
    }

    /// Four tokens against one quad (prefill, verification): each block unpacked once for four tokens.
    @inline(__always)
    static func quadFourTokens<F: IntegerBlockFormat>(_ a: Q8Activations, token t: Int, _ w: Quad, _: F.Type)
        -> (SIMD4<Float>, SIMD4<Float>, SIMD4<Float>, SIMD4<Float>) {
        var l0 = SIMD16<Float>(), l1 = SIMD16<Float>(), l2 = SIMD16<Float>(), l3 = SIMD16<Float>()
        var o0 = SIMD4<Float>(), o1 = SIMD4<Float>(), o2 = SIMD4<Float>(), o3 = SIMD4<Float>()
        for b in 0..<a.blocks {
            let (low, high) = F.quadIntegers(w.integers + b * F.quadIntegerBytes)
            let (d, c) = F.quadScalesAndOffsets(w.headers + b * F.quadHeaderBytes)
            let scales = quadLanes(d)
            accumulate(&l0, &o0, a, token: t, block: b, low, high, scales: scales, offsetsPerUnit: c)
            accumulate(&l1, &o1, a, token: t + 1, block: b, low, high, scales: scales, offsetsPerUnit: c)
            accumulate(&l2, &o2, a, token: t + 2, block: b, low, high, scales: scales, offsetsPerUnit: c)
            accumulate(&l3, &o3, a, token: t + 3, block: b, low, high, scales: scales, offsetsPerUnit: c)
        }
        return (result(l0, o0), result(l1, o1), result(l2, o2), result(l3, o3))
    }
}
