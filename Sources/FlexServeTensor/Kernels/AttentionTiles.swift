import Foundation

/// Attention for runs of tokens of one sequence (a prefill, a chain of drafts), sixteen tokens to a tile,
/// one token per lane.
///
/// Token by token, every score is a dot product reduced across its vector (`RowDot.threeTokens`: eight lanes,
/// then a horizontal sum), and a prefill spent ~40% of its time there and in the softmax. Here sixteen tokens'
/// queries are transposed once (`[headDim][16]`), so a key's scores for all sixteen come out of one set of
/// 512-bit FMAs with no horizontal sums, and each value row feeds six tokens' sums. The operations per
/// (token, key) and per output are exactly the token-by-token path's, in the same order (lane `l` of that
/// path's sum is accumulator `l` here; its reduction tree is `tree`; its softmax tail is the masked tail
/// below), so a token's output does not depend on the tokens it was batched with. With AVX-512 two tiles of a
/// run share a task, each key element broadcast once for both (`pairScores`).
extension Attention {
    /// Tokens `first..<first + count` (at most 16), each seeing the slots the one before it sees and more.
    struct QueryTile {
        let first: Int, count: Int
        /// Whether the first token sees what the tile before's last token sees and more: one run, cut at sixteen tokens.
        var extendsPrevious = false
    }

    static let tileTokens = 16
    /// Below this many tokens a tile's idle lanes cost more than the horizontal sums they save. A chain of k tokens
    /// after 200 (1,000) keys, tiles against per-set tasks, alone in one process: k = 4: 1.07 (1.17), 5: 0.91 (0.95),
    /// 6: 0.91 (0.91), 8: 0.75 (0.78), 16: 0.48 (0.48) of the time. In the model the tiles' task per query head (nine for
    /// SmolLM2) shares out worse than the sets' three per token: SmolLM2 forwards of 5, 6 and 7 tokens after 256
    /// (`bench verify`, Zen 5, six alternated runs) took 2.22, 2.36, 2.55 decode steps with tiles from 5 tokens and
    /// 2.00, 2.18, 2.40 from 8 (q8 activations; fp32 3–4% fewer), 8 and 12 tokens the same.
    static let minimumTileTokens = 8

    /// Cuts `tokens` into runs whose visible slots extend one another (one sequence's causal run), up to 16 a tile.
    static func tokenTiles(tokens: Int, slotStart: UnsafePointer<Int32>, slots: UnsafePointer<Int32>) -> [QueryTile] {
        var tiles: [QueryTile] = []
        var first = 0, extendsPrevious = false
        for t in 1...tokens {
            let extends = t < tokens && {
                let lo = Int(slotStart[t - 1]), n = Int(slotStart[t]) - lo, next = Int(slotStart[t])
                // `memcmp`, not an element loop: a 1,536-token prompt compares 1.2 million slots in each layer.
                return Int(slotStart[t + 1]) - next >= n && memcmp(slots + next, slots + lo, n * MemoryLayout<Int32>.stride) == 0
            }()
            if !extends || t - first == tileTokens {
                tiles.append(QueryTile(first: first, count: t - first, extendsPrevious: extendsPrevious))
                first = t
                extendsPrevious = extends
            }
        }
        return tiles
    }

    /// A tile of a query head, with the run's next tile (`pairsTiles`) or alone; or one set of a token, as in `forward`.
    enum TileTask { case tile(QueryTile, next: QueryTile?, head: Int), set(Int) }

    /// Whether a tile and the next of its run take one task, their scores computed together (`pairScores`): with
    /// AVX-512's 32 registers. AVX2's sixteen-token loop is not held by its loads (two query halves per key element).
    #if FLEXSERVE_AVX512
    static let pairsTiles = true
    #else
    static let pairsTiles = false
    #endif

    /// Tiles of enough tokens take a task per query head; the other tokens a task per set, as in `forward`.
    /// The longest tasks go first, so the last to start are short.
    static func tiledForward<E: KVElement>(_ a: Args<E>, tiles: [QueryTile], out: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        var tasks: [(work: Int, task: TileTask)] = []
        let setsPerToken = a.numKVHeads * a.headSets
        func work(_ tile: QueryTile) -> Int { tile.count * a.keyCount(tile) }
        var i = 0
        while i < tiles.count {
            let tile = tiles[i], last = tile.first + tile.count - 1
            if tile.count >= minimumTileTokens {
                let next = i + 1 < tiles.count ? tiles[i + 1] : nil
                if pairsTiles, tile.count == tileTokens, let next, next.extendsPrevious, next.count >= minimumTileTokens {
                    for head in 0..<a.numHeads { tasks.append((work(tile) + work(next), .tile(tile, next: next, head: head))) }
                    i += 2
                    continue
                }
                for head in 0..<a.numHeads { tasks.append((work(tile), .tile(tile, next: nil, head: head))) }
            } else {
                for t in tile.first...last {
                    let work = 3 * Int(a.slotStart[t + 1] - a.slotStart[t])
                    for i in t * setsPerToken..<(t + 1) * setsPerToken { tasks.append((work, .set(i))) }
                }
            }
            i += 1
        }
        tasks.sort { $0.work > $1.work }
        tasks.withUnsafeBufferPointer { tasks in
            pool.parallelFor(tasks.count) {
                switch tasks[$0].task {
                case .tile(let tile, let next, let head): attend(tile: tile, next: next, head: head, a, out: out)
                case .set(let i): a.attend(set: i, out: out)
                }
            }
        }
    }

    /// Whether a head dimension suits the tile kernels (scores by eight columns, values by `ValueColumns.width`).
    static func tilesSupport(headDim: Int) -> Bool { headDim % 64 == 0 }

    /// Eight accumulators, one per lane of the token-by-token path's eight-lane sums.
    struct EightSums {
        var s0 = SIMD16<Float>(), s1 = SIMD16<Float>(), s2 = SIMD16<Float>(), s3 = SIMD16<Float>()
        var s4 = SIMD16<Float>(), s5 = SIMD16<Float>(), s6 = SIMD16<Float>(), s7 = SIMD16<Float>()

        /// `RowDot.horizontalSum`'s tree: ((0+4) + (2+6)) + ((1+5) + (3+7)).
        @inline(__always)
        var tree: SIMD16<Float> { ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7)) }
    }

    typealias ThreeScores = (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>)

    /// Sixteen tokens' scores against three keys (`qt`: the queries transposed, `[headDim][stride]`).
    #if FLEXSERVE_AVX2
    /// Three keys' eight sums are 48 of AVX2's sixteen 256-bit registers (`perf`: the kernel's loops were loads and
    /// stores of spilled sums), so the sums run two at a time, k and k + 4 (twelve registers), each from zero over
    /// the same columns in the same order, and meet in `EightSums.tree`'s order as they finish.
    @inline(__always)
    static func scores(_ qt: UnsafePointer<Float>, _ k0: UnsafePointer<Float>, _ k1: UnsafePointer<Float>, _ k2: UnsafePointer<Float>,
                       headDim: Int, stride: Int = tileTokens) -> ThreeScores {
        /// (s_k + s_{k+4}) of each key.
        @inline(__always) func pair(_ k: Int) -> ThreeScores {
            var a = SIMD16<Float>(), b = SIMD16<Float>(), c = SIMD16<Float>()
            var a4 = SIMD16<Float>(), b4 = SIMD16<Float>(), c4 = SIMD16<Float>()
            var d = k
            while d < headDim {
                let q = Float.load16(qt, d * stride), q4 = Float.load16(qt, (d + 4) * stride)
                a = a.addingProduct(q, SIMD16(repeating: k0[d])); a4 = a4.addingProduct(q4, SIMD16(repeating: k0[d + 4]))
                b = b.addingProduct(q, SIMD16(repeating: k1[d])); b4 = b4.addingProduct(q4, SIMD16(repeating: k1[d + 4]))
                c = c.addingProduct(q, SIMD16(repeating: k2[d])); c4 = c4.addingProduct(q4, SIMD16(repeating: k2[d + 4]))
                d += 8
            }
            return (a + a4, b + b4, c + c4)
        }
        let s04 = pair(0), s26 = pair(2)
        let even = (s04.0 + s26.0, s04.1 + s26.1, s04.2 + s26.2)
        let s15 = pair(1), s37 = pair(3)
        return (even.0 + (s15.0 + s37.0), even.1 + (s15.1 + s37.1), even.2 + (s15.2 + s37.2))
    }
    #else
    @inline(__always)
    static func scores(_ qt: UnsafePointer<Float>, _ k0: UnsafePointer<Float>, _ k1: UnsafePointer<Float>, _ k2: UnsafePointer<Float>,
                       headDim: Int, stride: Int = tileTokens) -> ThreeScores {
        var a = EightSums(), b = EightSums(), c = EightSums()
        @inline(__always) func step(_ x: inout SIMD16<Float>, _ y: inout SIMD16<Float>, _ z: inout SIMD16<Float>, _ d: Int) {
            let q = Float.load16(qt, d * stride)
            x = x.addingProduct(q, SIMD16(repeating: k0[d]))
            y = y.addingProduct(q, SIMD16(repeating: k1[d]))
            z = z.addingProduct(q, SIMD16(repeating: k2[d]))
        }
        var d = 0
        while d < headDim {
            step(&a.s0, &b.s0, &c.s0, d); step(&a.s1, &b.s1, &c.s1, d + 1)
            step(&a.s2, &b.s2, &c.s2, d + 2); step(&a.s3, &b.s3, &c.s3, d + 3)
            step(&a.s4, &b.s4, &c.s4, d + 4); step(&a.s5, &b.s5, &c.s5, d + 5)
            step(&a.s6, &b.s6, &c.s6, d + 6); step(&a.s7, &b.s7, &c.s7, d + 7)
            d += 8
        }
        return (a.tree, b.tree, c.tree)
    }
    #endif

    /// Two tiles' scores against three keys (`qt`: `[headDim][32]`, the first tile's sixteen lanes then the second's),
    /// each as `scores` computes it. Sixteen tokens' loop loads a query vector and three key elements for three FMAs,
    /// so the two load ports hold it to 75% of the FMA peak; here each key element serves two FMAs (ten loads for
    /// twelve). Three keys' eight sums for 32 lanes would be 48 registers, so the sums run two at a time, k and k + 4
    /// (twelve registers), each from zero over the same columns in the same order, and meet in `EightSums.tree`'s order.
    @inline(__always)
    static func pairScores(_ qt: UnsafePointer<Float>, _ k0: UnsafePointer<Float>, _ k1: UnsafePointer<Float>, _ k2: UnsafePointer<Float>,
                           headDim: Int) -> (ThreeScores, ThreeScores) {
        typealias Six = (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>)
        /// (s_k + s_{k+4}) of each key, for each tile.
        @inline(__always) func pair(_ k: Int) -> Six {
            var a = SIMD16<Float>(), b = SIMD16<Float>(), c = SIMD16<Float>(), x = SIMD16<Float>(), y = SIMD16<Float>(), z = SIMD16<Float>()
            var a4 = SIMD16<Float>(), b4 = SIMD16<Float>(), c4 = SIMD16<Float>(), x4 = SIMD16<Float>(), y4 = SIMD16<Float>(), z4 = SIMD16<Float>()
            var d = k
            while d < headDim {
                let q = Float.load16(qt, d * 32), r = Float.load16(qt, d * 32 + 16)
                let e0 = SIMD16<Float>(repeating: k0[d]), e1 = SIMD16<Float>(repeating: k1[d]), e2 = SIMD16<Float>(repeating: k2[d])
                a = a.addingProduct(q, e0); b = b.addingProduct(q, e1); c = c.addingProduct(q, e2)
                x = x.addingProduct(r, e0); y = y.addingProduct(r, e1); z = z.addingProduct(r, e2)
                let q4 = Float.load16(qt, (d + 4) * 32), r4 = Float.load16(qt, (d + 4) * 32 + 16)
                let f0 = SIMD16<Float>(repeating: k0[d + 4]), f1 = SIMD16<Float>(repeating: k1[d + 4]), f2 = SIMD16<Float>(repeating: k2[d + 4])
                a4 = a4.addingProduct(q4, f0); b4 = b4.addingProduct(q4, f1); c4 = c4.addingProduct(q4, f2)
                x4 = x4.addingProduct(r4, f0); y4 = y4.addingProduct(r4, f1); z4 = z4.addingProduct(r4, f2)
                d += 8
            }
            return (a + a4, b + b4, c + c4, x + x4, y + y4, z + z4)
        }
        @inline(__always) func add(_ u: Six, _ v: Six) -> Six { (u.0 + v.0, u.1 + v.1, u.2 + v.2, u.3 + v.3, u.4 + v.4, u.5 + v.5) }
        let even = add(pair(0), pair(2))
        let all = add(even, add(pair(1), pair(3)))
        return ((all.0, all.1, all.2), (all.3, all.4, all.5))
    }

    /// Query head `head` of `tile`'s tokens, whole: scores, softmax, weighted values, into `out`; with `next` (the run's
    /// next tile, `pairsTiles`) its tokens too.
    static func attend<E: KVElement>(tile: QueryTile, next: QueryTile?, head: Int, _ a: Args<E>, out: UnsafeMutablePointer<Float>) {
        let n = a.keyCount(tile), nNext = next.map(a.keyCount) ?? 0
        // fp16 rows are widened to fp32 (exactly) before the loops that use them: three key rows at a time, and the
        // value rows a block of keys at a time.
        let block = E.widens ? valueBlock : max(n, nNext)
        let capacity = a.headDim * 2 * tileTokens + (n + nNext) * tileTokens + 3 * a.headDim + (E.widens ? block * a.headDim : 0) + 4 * tileTokens
        withUnsafeTemporaryAllocation(of: Float.self, capacity: capacity) { buffer in
            withUnsafeTemporaryAllocation(of: UnsafePointer<Float>.self, capacity: block) { rows in
                attend(tile: tile, next: next, head: head, a, out: out, scratch: buffer.baseAddress!, rows: rows.baseAddress!, valueBlock: block)
            }
        }
    }

    /// `attend(tile:next:head:_:out:)`'s work, outside the allocations' closures (as `Args.attend`: inside them the
    /// AVX-512 intrinsics of `VectorMath.exp`'s clamps could stay calls).
    @inline(never)
    static func attend<E: KVElement>(tile: QueryTile, next: QueryTile?, head: Int, _ a: Args<E>, out: UnsafeMutablePointer<Float>,
                                     scratch: UnsafeMutablePointer<Float>, rows: UnsafeMutablePointer<UnsafePointer<Float>>, valueBlock block: Int) {
        let headDim = a.headDim, kvHead = head / a.group, lanes = tileTokens
        // The queries transposed, `[headDim][16]`, or both tiles' side by side, `[headDim][32]`.
        let qtStride = next == nil ? lanes : 2 * lanes
        let n = a.keyCount(tile), nNext = next.map(a.keyCount) ?? 0
        let qt = scratch, s = qt + headDim * qtStride, sNext = s + n * lanes, keyFloats = sNext + nNext * lanes
        // Per tile, each lane's key count, then its maximum score.
        let laneFloats = keyFloats + 3 * headDim, laneFloatsNext = laneFloats + 2 * lanes, valueFloats = laneFloatsNext + 2 * lanes
        let keys = a.keys + kvHead * a.headStride
        let counts = a.transposeQueries(tile, head: head, into: qt, stride: qtStride, counts: laneFloats)
        let countsNext = next.map { a.transposeQueries($0, head: head, into: qt + lanes, stride: qtStride, counts: laneFloatsNext) } ?? SIMD16()

        // The scores and each lane's maximum. ALiBi: each lane's query position, and its head's slope (the key
        // positions are the tile's last token's).
        @inline(__always) func scores<S: TileScaling>(_ scaling: (QueryTile) -> S) {
            if let next {
                tilePairScores(qt, keys: keys, visible: a.visibleSlots(next), n: n, nNext: nNext, slotStride: a.slotStride, headDim: headDim,
                               scalings: (scaling(tile), scaling(next)), keyFloats: keyFloats, into: (s, sNext), lanes: (laneFloats, laneFloatsNext))
            } else {
                tileScores(qt, keys: keys, visible: a.visibleSlots(tile), n: n, slotStride: a.slotStride, headDim: headDim, scaling: scaling(tile),
                           keyFloats: keyFloats, into: s, lanes: laneFloats)
            }
        }
        if let slopes = a.alibiSlopes {
            scores { tile in
                var queryPositions = SIMD16<Float>()
                for i in 0..<tile.count { queryPositions[i] = Float(a.queryPositions![tile.first + i]) }
                return ALiBiScaling(scale: a.scale, slope: slopes[head], keyPositions: a.slotPositions! + Int(a.slotStart[tile.first + tile.count - 1]),
                                    queryPositions: queryPositions)
            }
        } else {
            scores { _ in PlainScaling(scale: a.scale) }
        }
        softmax(s, lanes: laneFloats, keys: n)
        if next != nil { softmax(sNext, lanes: laneFloatsNext, keys: nNext) }

        // Weighted values, a block of keys at a time, and in it six tokens at a time, `ValueColumns.width` columns at a
        // time. The sums wait in `out` between blocks (a float stored and loaded is the same float), so an fp16 block is
        // widened once into a buffer that stays in L1 for all the tiles' tokens (widening every row of the task at once
        // had the loop read a buffer of up to megabytes from L2). fp32 rows are read in place, in one block: in blocks
        // the same speed with a long context, slower with a short one.
        let values = a.values + kvHead * a.headStride, visible = a.visibleSlots(next ?? tile)
        @inline(__always) func addValues(_ tile: QueryTile, _ w: UnsafePointer<Float>, counts: SIMD16<Int32>, keys: Range<Int>) {
            let keys = keys.clamped(to: 0..<a.keyCount(tile))
            if keys.isEmpty { return }
            var i0 = 0
            while i0 < tile.count {
                let group = min(6, tile.count - i0)
                var column = 0
                while column < headDim {
                    weightedValues(ValueColumns.self, w, lanes: i0..<i0 + group, counts: counts, keys: keys, rows: rows, column: column,
                                   out: out + (tile.first * a.numHeads + head) * headDim + column, outStride: a.numHeads * headDim)
                    column += ValueColumns.width
                }
                i0 += group
            }
        }
        var j0 = 0
        while j0 < max(n, nNext) {
            let keys = j0..<min(j0 + block, max(n, nNext))
            for j in keys { rows[j - j0] = E.floats(values + Int(visible[j]) * a.slotStride, count: headDim, scratch: valueFloats + (j - j0) * headDim) }
            addValues(tile, s, counts: counts, keys: keys)
            if let next { addValues(next, sNext, counts: countsNext, keys: keys) }
            j0 = keys.upperBound
        }
    }

    /// A tile's softmax per lane over its own keys, its scores (`s`, `[key][16]`) replaced by its weights, from `lanes`
    /// (each lane's key count, then its maximum score).
    @inline(__always)
    static func softmax(_ s: UnsafeMutablePointer<Float>, lanes laneFloats: UnsafePointer<Float>, keys nMax: Int) {
        let lanes = tileTokens
        let keyCounts = Float.load16(laneFloats, 0), maxScore = Float.load16(laneFloats, lanes)
        // Lane masks by float compares of small integers (the integer vector compares compiled to element loops); each
        // lane's whole multiple of eight keys (exact: small integers times powers of two).
        let whole = (keyCounts * 0.125).rounded(.down) * 8

        // As `normalize` and `softmaxNumerators`, lane by lane. Keys below a lane's multiple of eight go into eight-lane
        // sums, the rest are added after the tree. Below the first lane's multiple every lane's keys are whole (idle
        // lanes' sums are never read).
        @inline(__always) func exponential(_ j: Int) -> SIMD16<Float> {
            let p = UnsafeMutableRawPointer(s + j * lanes)
            let e = VectorMath.exp(p.load(as: SIMD16<Float>.self) - maxScore)
            p.storeBytes(of: e, as: SIMD16<Float>.self)
            return e
        }
        var sums = EightSums()
        let minWhole = Int(whole[0])
        var j = 0
        while j < minWhole {
            sums.s0 += exponential(j); sums.s1 += exponential(j + 1); sums.s2 += exponential(j + 2); sums.s3 += exponential(j + 3)
            sums.s4 += exponential(j + 4); sums.s5 += exponential(j + 5); sums.s6 += exponential(j + 6); sums.s7 += exponential(j + 7)
            j += 8
        }
        for j in minWhole..<nMax {
            let add = SIMD16<Float>().replacing(with: exponential(j), where: whole .> Float(j))
            switch j & 7 {
            case 0: sums.s0 += add
            case 1: sums.s1 += add
            case 2: sums.s2 += add
            case 3: sums.s3 += add
            case 4: sums.s4 += add
            case 5: sums.s5 += add
            case 6: sums.s6 += add
            default: sums.s7 += add
            }
        }
        var total = sums.tree
        for j in minWhole..<nMax {
            let e = Float.load16(s, j * lanes)
            total += SIMD16<Float>().replacing(with: e, where: (whole .<= Float(j)) .& (keyCounts .> Float(j)))
        }
        // Each lane's weights, e · (1 / total): the products the token-by-token path takes key by key.
        let inv = 1 / total
        for j in 0..<nMax {
            let p = UnsafeMutableRawPointer(s + j * lanes)
            p.storeBytes(of: p.load(as: SIMD16<Float>.self) * inv, as: SIMD16<Float>.self)
        }
    }

    /// A score's scaling: by the head's scale, and with ALiBi's term. The token-by-token path's `score · scale + slope ·
    /// (key − query position)`: positions below 2^24 are exact in floats, so the difference is the same float. Each a
    /// type of its own, so `tileScores` is compiled once for each: with both in one function LLVM compiled the plain
    /// scaling lane by lane, through permutes (~10% of the function's time).
    protocol TileScaling {
        func scaled(_ r: SIMD16<Float>, key: Int) -> SIMD16<Float>
    }

    struct PlainScaling: TileScaling {
        let scale: Float
        @inline(__always) func scaled(_ r: SIMD16<Float>, key: Int) -> SIMD16<Float> { r * scale }
    }

    struct ALiBiScaling: TileScaling {
        let scale: Float, slope: Float
        /// The key slots' positions, and each lane's query position.
        let keyPositions: UnsafePointer<Int32>, queryPositions: SIMD16<Float>
        @inline(__always) func scaled(_ r: SIMD16<Float>, key k: Int) -> SIMD16<Float> {
            r * scale + slope * (Float(keyPositions[k]) - queryPositions)
        }
    }

    /// A tile's scores as they are stored (`s`, `[key][16]`) and each lane's maximum over its own keys (`counts`), key
    /// by key as `normalize` takes it. Below the first lane's count every lane's keys are its own (idle lanes' maxima are
    /// never read); the keys after it are taken from memory once stored, lane by lane (a masked replace of a score as
    /// it is computed had LLVM compile the scaling lane by lane, through permutes).
    struct LaneMaxima {
        let s: UnsafeMutablePointer<Float>, counts: SIMD16<Float>, allOwn: Int
        var maxScore = SIMD16<Float>(repeating: -.infinity)

        @inline(__always) init(_ s: UnsafeMutablePointer<Float>, keyCounts: UnsafePointer<Float>) {
            self.s = s
            counts = Float.load16(keyCounts, 0)
            allOwn = Int(counts[0])
        }

        @inline(__always) mutating func keep(_ v: SIMD16<Float>, key k: Int) {
            UnsafeMutableRawPointer(s + k * tileTokens).storeBytes(of: v, as: SIMD16<Float>.self)
            if k < allOwn { maxScore = VectorMath.greater(v, maxScore) }
        }

        /// Keys `allOwn..<n`, then the maxima into `maxima`.
        @inline(__always) mutating func finish(keys n: Int, into maxima: UnsafeMutablePointer<Float>) {
            for k in allOwn..<n {
                let v = Float.load16(s, k * tileTokens)
                maxScore.replace(with: v, where: (v .> maxScore) .& (counts .> Float(k)))
            }
            UnsafeMutableRawPointer(maxima).storeBytes(of: maxScore, as: SIMD16<Float>.self)
        }
    }

    /// The sixteen lanes' scores against keys `0..<n` (`qt`: the queries transposed, `[headDim][16]`), three keys at a
    /// time (the last group repeats the last key), scaled, into `s` (`[key][16]`), and after each lane's key count in
    /// `lanes` its maximum (`LaneMaxima`). The scores loop broadcasts a key's elements one by one, and an fp16 element
    /// would be a load, a convert and a broadcast each, so fp16 rows are widened first. A function of its own, so
    /// that the per-lane setup of `attend` stays out of its loop.
    @inline(never)
    static func tileScores<E: KVElement, S: TileScaling>(_ qt: UnsafePointer<Float>, keys: UnsafePointer<E>, visible: UnsafePointer<Int32>,
                                                         n: Int, slotStride: Int, headDim: Int, scaling: S,
                                                         keyFloats: UnsafeMutablePointer<Float>, into s: UnsafeMutablePointer<Float>,
                                                         lanes: UnsafeMutablePointer<Float>) {
        var maxima = LaneMaxima(s, keyCounts: lanes)
        var j = 0
        while j < n {
            func key(_ k: Int) -> UnsafePointer<Float> {
                E.floats(keys + Int(visible[min(j + k, n - 1)]) * slotStride, count: headDim, scratch: keyFloats + k * headDim)
            }
            let (r0, r1, r2) = scores(qt, key(0), key(1), key(2), headDim: headDim)
            maxima.keep(scaling.scaled(r0, key: j), key: j)
            if j + 1 < n { maxima.keep(scaling.scaled(r1, key: j + 1), key: j + 1) }
            if j + 2 < n { maxima.keep(scaling.scaled(r2, key: j + 2), key: j + 2) }
            j += 3
        }
        maxima.finish(keys: n, into: lanes + tileTokens)
    }

    /// Two tiles of a run (`qt`: their queries transposed side by side, `[headDim][32]`; the second's `visible` slots,
    /// whose first `n` are the first's): `tileScores` of each, the keys both see scored together (`pairScores`).
    @inline(never)
    static func tilePairScores<E: KVElement, S: TileScaling>(_ qt: UnsafePointer<Float>, keys: UnsafePointer<E>, visible: UnsafePointer<Int32>,
                                                             n: Int, nNext: Int, slotStride: Int, headDim: Int, scalings: (S, S),
                                                             keyFloats: UnsafeMutablePointer<Float>,
                                                             into s: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>),
                                                             lanes: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>)) {
        var first = LaneMaxima(s.0, keyCounts: lanes.0), second = LaneMaxima(s.1, keyCounts: lanes.1)
        @inline(__always) func key(_ j: Int, _ end: Int) -> UnsafePointer<Float> {
            E.floats(keys + Int(visible[min(j, end - 1)]) * slotStride, count: headDim, scratch: keyFloats + j % 3 * headDim)
        }
        var j = 0
        while j < n {
            let (r, r2) = pairScores(qt, key(j, n), key(j + 1, n), key(j + 2, n), headDim: headDim)
            first.keep(scalings.0.scaled(r.0, key: j), key: j)
            second.keep(scalings.1.scaled(r2.0, key: j), key: j)
            if j + 1 < n {
                first.keep(scalings.0.scaled(r.1, key: j + 1), key: j + 1)
                second.keep(scalings.1.scaled(r2.1, key: j + 1), key: j + 1)
            }
            if j + 2 < n {
                first.keep(scalings.0.scaled(r.2, key: j + 2), key: j + 2)
                second.keep(scalings.1.scaled(r2.2, key: j + 2), key: j + 2)
            }
            j += 3
        }
        // The keys only the second tile's tokens see.
        j = n
        while j < nNext {
            let (r0, r1, r2) = scores(qt + tileTokens, key(j, nNext), key(j + 1, nNext), key(j + 2, nNext), headDim: headDim, stride: 2 * tileTokens)
            second.keep(scalings.1.scaled(r0, key: j), key: j)
            if j + 1 < nNext { second.keep(scalings.1.scaled(r1, key: j + 1), key: j + 1) }
            if j + 2 < nNext { second.keep(scalings.1.scaled(r2, key: j + 2), key: j + 2) }
            j += 3
        }
        first.finish(keys: n, into: lanes.0 + tileTokens)
        second.finish(keys: nNext, into: lanes.1 + tileTokens)
    }

    /// Keys whose fp16 value rows are widened at a time: 16 KB of fp32 rows of 64.
    static let valueBlock = 64

    #if FLEXSERVE_AVX2
    /// Six tokens' sums of 64 columns would be 48 of AVX2's sixteen 256-bit registers; of 16 columns they are twelve.
    typealias ValueColumns = Columns16
    #else
    typealias ValueColumns = Columns64
    #endif

    /// out(i) += Σ_{j ∈ keys, j < counts[i]} w[j][i] · value_j for the tokens (lanes) of `lanes` (`w`: the weights,
    /// `[key][16]`; `rows[j − keys.lowerBound] + column`: value j's columns; `out + i · outStride`: lane i's), `C.width`
    /// columns, each column's sum in key order, from zero at key 0 and from `out` after it: as `weightedValues3`, lane
    /// by lane. No closures: given them, the inliner left this a call that called them per key.
    @inline(__always)
    static func weightedValues<C: TileColumns>(_: C.Type, _ w: UnsafePointer<Float>, lanes: Range<Int>, counts: SIMD16<Int32>, keys: Range<Int>,
                                               rows: UnsafePointer<UnsafePointer<Float>>, column: Int,
                                               out base: UnsafeMutablePointer<Float>, outStride: Int) {
        @inline(__always) func row(_ j: Int) -> UnsafePointer<Float> { rows[j - keys.lowerBound] + column }
        @inline(__always) func out(_ i: Int) -> UnsafeMutablePointer<Float> { base + i * outStride }
        let first = lanes.lowerBound, count = lanes.count
        // Tokens see more keys lane by lane: all of the group see the first lane's, the last lane the most.
        let shared = Int(counts[first]), nEnd = min(keys.upperBound, Int(counts[first + count - 1]))
        guard keys.lowerBound < nEnd else { return }
        var acc = (C(), C(), C(), C(), C(), C())
        if keys.lowerBound > 0 {
            acc.0 = C(out(first))
            if count > 1 { acc.1 = C(out(first + 1)) }
            if count > 2 { acc.2 = C(out(first + 2)) }
            if count > 3 { acc.3 = C(out(first + 3)) }
            if count > 4 { acc.4 = C(out(first + 4)) }
            if count > 5 { acc.5 = C(out(first + 5)) }
        }
        for j in keys.lowerBound..<nEnd {
            let v = C(row(j))
            let p = w + j * tileTokens + first
            // Past the first lane's keys a lane adds only while the key is its own.
            if j < shared {
                acc.0.add(p[0], v)
                if count > 1 { acc.1.add(p[1], v) }
                if count > 2 { acc.2.add(p[2], v) }
                if count > 3 { acc.3.add(p[3], v) }
                if count > 4 { acc.4.add(p[4], v) }
                if count > 5 { acc.5.add(p[5], v) }
            } else {
                if j < Int(counts[first]) { acc.0.add(p[0], v) }
                if count > 1, j < Int(counts[first + 1]) { acc.1.add(p[1], v) }
                if count > 2, j < Int(counts[first + 2]) { acc.2.add(p[2], v) }
                if count > 3, j < Int(counts[first + 3]) { acc.3.add(p[3], v) }
                if count > 4, j < Int(counts[first + 4]) { acc.4.add(p[4], v) }
                if count > 5, j < Int(counts[first + 5]) { acc.5.add(p[5], v) }
            }
        }
        acc.0.store(out(first))
        if count > 1 { acc.1.store(out(first + 1)) }
        if count > 2 { acc.2.store(out(first + 2)) }
        if count > 3 { acc.3.store(out(first + 3)) }
        if count > 4 { acc.4.store(out(first + 4)) }
        if count > 5 { acc.5.store(out(first + 5)) }
    }
}

extension Attention.Args {
    /// The keys a tile's last token sees, the most of its tokens.
    @inline(__always) func keyCount(_ tile: Attention.QueryTile) -> Int {
        Int(slotStart[tile.first + tile.count] - slotStart[tile.first + tile.count - 1])
    }

    /// The slots of a tile's last token; each of its tokens sees a prefix of them.
    @inline(__always) func visibleSlots(_ tile: Attention.QueryTile) -> UnsafePointer<Int32> { slots + Int(slotStart[tile.first + tile.count - 1]) }

    /// Query head `head` of the tile's tokens into sixteen lanes of `qt` (`[headDim][stride]`, idle lanes zero), and each
    /// lane's key count into `counts` (sixteen floats, for the score and softmax masks); returns the counts.
    func transposeQueries(_ tile: Attention.QueryTile, head: Int, into qt: UnsafeMutablePointer<Float>, stride: Int,
                          counts: UnsafeMutablePointer<Float>) -> SIMD16<Int32> {
        let lanes = Attention.tileTokens
        for d in 0..<headDim { (qt + d * stride).initialize(repeating: 0, count: lanes) }
        counts.initialize(repeating: 0, count: lanes)
        var keyCounts = SIMD16<Int32>()
        for i in 0..<tile.count {
            let t = tile.first + i, q = self.q + (t * numHeads + head) * headDim
            for d in 0..<headDim { qt[d * stride + i] = q[d] }
            keyCounts[i] = slotStart[t + 1] - slotStart[t]
            counts[i] = Float(keyCounts[i])
        }
        return keyCounts
    }
}

/// One token's sums over a run of a value row's columns (`weightedValues`).
protocol TileColumns {
    static var width: Int { get }
    init()
    /// The row's columns.
    init(_ row: UnsafePointer<Float>)
    /// self += w · v.
    mutating func add(_ w: Float, _ v: Self)
    func store(_ out: UnsafeMutablePointer<Float>)
}

struct Columns64: TileColumns {
    var c0 = SIMD16<Float>(), c1 = SIMD16<Float>(), c2 = SIMD16<Float>(), c3 = SIMD16<Float>()
    static var width: Int { 64 }
    init() {}
    @inline(__always) init(_ row: UnsafePointer<Float>) {
        (c0, c1, c2, c3) = (Float.load16(row, 0), Float.load16(row, 16), Float.load16(row, 32), Float.load16(row, 48))
    }
    @inline(__always) mutating func add(_ w: Float, _ v: Self) {
        let x = SIMD16<Float>(repeating: w)
        c0 = c0.addingProduct(x, v.c0); c1 = c1.addingProduct(x, v.c1); c2 = c2.addingProduct(x, v.c2); c3 = c3.addingProduct(x, v.c3)
    }
    @inline(__always) func store(_ out: UnsafeMutablePointer<Float>) {
        let r = UnsafeMutableRawPointer(out)
        r.storeBytes(of: c0, as: SIMD16<Float>.self); r.storeBytes(of: c1, toByteOffset: 64, as: SIMD16<Float>.self)
        r.storeBytes(of: c2, toByteOffset: 128, as: SIMD16<Float>.self); r.storeBytes(of: c3, toByteOffset: 192, as: SIMD16<Float>.self)
    }
}

struct Columns16: TileColumns {
    var c = SIMD16<Float>()
    static var width: Int { 16 }
    init() {}
    @inline(__always) init(_ row: UnsafePointer<Float>) { c = Float.load16(row, 0) }
    @inline(__always) mutating func add(_ w: Float, _ v: Self) { c = c.addingProduct(SIMD16(repeating: w), v.c) }
    @inline(__always) func store(_ out: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(out).storeBytes(of: c, as: SIMD16<Float>.self) }
}
