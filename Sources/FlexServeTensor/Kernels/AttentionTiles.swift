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
/// below), so a token's output does not depend on the tokens it was batched with.
extension Attention {
    /// Tokens `first..<first + count` (at most 16), each seeing the slots the one before it sees and more.
    struct QueryTile {
        let first: Int, count: Int
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
        var first = 0
        for t in 1...tokens {
            let extends = t < tokens && t - first < tileTokens && {
                let lo = Int(slotStart[t - 1]), n = Int(slotStart[t]) - lo, next = Int(slotStart[t])
                // `memcmp`, not an element loop: a 1,536-token prompt compares 1.2 million slots in each layer.
                return Int(slotStart[t + 1]) - next >= n && memcmp(slots + next, slots + lo, n * MemoryLayout<Int32>.stride) == 0
            }()
            if !extends {
                tiles.append(QueryTile(first: first, count: t - first))
                first = t
            }
        }
        return tiles
    }

    enum TileTask { case tile(QueryTile, head: Int), set(Int) }

    /// Tiles of enough tokens take a task per query head; the other tokens a task per set, as in `forward`.
    /// The longest tasks go first, so the last to start are short.
    static func tiledForward<E: KVElement>(_ a: Args<E>, tiles: [QueryTile], out: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        var tasks: [(work: Int, task: TileTask)] = []
        let setsPerToken = a.numKVHeads * a.headSets
        for tile in tiles {
            let last = tile.first + tile.count - 1
            if tile.count >= minimumTileTokens {
                let work = tile.count * Int(a.slotStart[last + 1] - a.slotStart[last])
                for head in 0..<a.numHeads { tasks.append((work, .tile(tile, head: head))) }
            } else {
                for t in tile.first...last {
                    let work = 3 * Int(a.slotStart[t + 1] - a.slotStart[t])
                    for i in t * setsPerToken..<(t + 1) * setsPerToken { tasks.append((work, .set(i))) }
                }
            }
        }
        tasks.sort { $0.work > $1.work }
        tasks.withUnsafeBufferPointer { tasks in
            pool.parallelFor(tasks.count) {
                switch tasks[$0].task {
                case .tile(let tile, let head): attend(tile: tile, head: head, a, out: out)
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

    /// Sixteen tokens' scores against three keys (`qt`: the queries transposed, `[headDim][16]`).
    #if FLEXSERVE_AVX2
    /// Three keys' eight sums are 48 of AVX2's sixteen 256-bit registers (`perf`: the kernel's loops were loads and
    /// stores of spilled sums), so the sums run two at a time, k and k + 4 (twelve registers), each from zero over
    /// the same columns in the same order, and meet in `EightSums.tree`'s order as they finish.
    @inline(__always)
    static func scores(_ qt: UnsafePointer<Float>, _ k0: UnsafePointer<Float>, _ k1: UnsafePointer<Float>, _ k2: UnsafePointer<Float>,
                       headDim: Int) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
        typealias Three = (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>)
        /// (s_k + s_{k+4}) of each key.
        @inline(__always) func pair(_ k: Int) -> Three {
            var a = SIMD16<Float>(), b = SIMD16<Float>(), c = SIMD16<Float>()
            var a4 = SIMD16<Float>(), b4 = SIMD16<Float>(), c4 = SIMD16<Float>()
            var d = k
            while d < headDim {
                let q = Float.load16(qt, d * 16), q4 = Float.load16(qt, (d + 4) * 16)
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
                       headDim: Int) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
        var a = EightSums(), b = EightSums(), c = EightSums()
        @inline(__always) func step(_ x: inout SIMD16<Float>, _ y: inout SIMD16<Float>, _ z: inout SIMD16<Float>, _ d: Int) {
            let q = Float.load16(qt, d * 16)
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

    /// Query head `head` of `tile`'s tokens, whole: scores, softmax, weighted values, into `out`.
    static func attend<E: KVElement>(tile: QueryTile, head: Int, _ a: Args<E>, out: UnsafeMutablePointer<Float>) {
        let last = tile.first + tile.count - 1
        let nMax = Int(a.slotStart[last + 1] - a.slotStart[last])
        // fp16 rows are widened to fp32 (exactly) before the loops that use them: three key rows at a time, and the
        // value rows a block of keys at a time.
        let block = E.widens ? valueBlock : nMax
        let capacity = a.headDim * tileTokens + nMax * tileTokens + 3 * a.headDim + (E.widens ? block * a.headDim : 0) + 2 * tileTokens
        withUnsafeTemporaryAllocation(of: Float.self, capacity: capacity) { buffer in
            withUnsafeTemporaryAllocation(of: UnsafePointer<Float>.self, capacity: block) { rows in
                attend(tile: tile, head: head, a, out: out, scratch: buffer.baseAddress!, rows: rows.baseAddress!, valueBlock: block)
            }
        }
    }

    /// `attend(tile:head:_:out:)`'s work, outside the allocations' closures (as `Args.attend`: inside them the AVX-512
    /// intrinsics of `VectorMath.exp`'s clamps could stay calls).
    @inline(never)
    static func attend<E: KVElement>(tile: QueryTile, head: Int, _ a: Args<E>, out: UnsafeMutablePointer<Float>,
                                     scratch: UnsafeMutablePointer<Float>, rows: UnsafeMutablePointer<UnsafePointer<Float>>, valueBlock block: Int) {
        let headDim = a.headDim, kvHead = head / a.group, lanes = tileTokens
        // The last token sees the most; each token sees a prefix of its slots.
        let last = tile.first + tile.count - 1
        let visible = a.slots + Int(a.slotStart[last])
        let nMax = Int(a.slotStart[last + 1] - a.slotStart[last])
        var counts = SIMD16<Int32>()
        for i in 0..<tile.count { counts[i] = a.slotStart[tile.first + i + 1] - a.slotStart[tile.first + i] }
        let keys = a.keys + kvHead * a.headStride, values = a.values + kvHead * a.headStride
        let qt = scratch, s = qt + headDim * lanes, keyFloats = s + nMax * lanes, valueFloats = keyFloats + 3 * headDim
        let laneFloats = valueFloats + (E.widens ? block * headDim : 0)
        qt.initialize(repeating: 0, count: headDim * lanes)
        for i in 0..<tile.count {
            let q = a.q + ((tile.first + i) * a.numHeads + head) * headDim
            for d in 0..<headDim { qt[d * lanes + i] = q[d] }
        }

        // Lane masks by float compares of small integers (the integer vector compares compiled to element loops).
        var keyCounts = SIMD16<Float>(), whole = SIMD16<Float>()
        for i in 0..<tile.count { keyCounts[i] = Float(counts[i]); whole[i] = Float(counts[i] & ~7) }
        UnsafeMutableRawPointer(laneFloats).storeBytes(of: keyCounts, as: SIMD16<Float>.self)
        // The scores and each lane's maximum. ALiBi: each lane's query position, and its head's slope (the key
        // positions are the tile's last token's).
        @inline(__always) func scores<S: TileScaling>(_ scaling: S) {
            tileScores(qt, keys: keys, visible: visible, n: nMax, slotStride: a.slotStride, headDim: headDim, scaling: scaling,
                       keyCounts: laneFloats, keyFloats: keyFloats, into: s, maxima: laneFloats + lanes)
        }
        if let slopes = a.alibiSlopes {
            var queryPositions = SIMD16<Float>()
            for i in 0..<tile.count { queryPositions[i] = Float(a.queryPositions![tile.first + i]) }
            scores(ALiBiScaling(scale: a.scale, slope: slopes[head], keyPositions: a.slotPositions! + Int(a.slotStart[last]),
                                queryPositions: queryPositions))
        } else {
            scores(PlainScaling(scale: a.scale))
        }
        let maxScore = Float.load16(laneFloats, lanes)

        // Softmax per lane over its own keys: as `normalize` and `softmaxNumerators`, lane by lane. Keys below a
        // lane's multiple of eight go into eight-lane sums, the rest are added after the tree. Below the first lane's
        // multiple every lane's keys are whole (idle lanes' sums are never read).
        @inline(__always) func exponential(_ j: Int) -> SIMD16<Float> {
            let p = UnsafeMutableRawPointer(s + j * lanes)
            let e = VectorMath.exp(p.load(as: SIMD16<Float>.self) - maxScore)
            p.storeBytes(of: e, as: SIMD16<Float>.self)
            return e
        }
        var sums = EightSums()
        let minWhole = Int(counts[0] & ~7)
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

        // Weighted values, a block of keys at a time, and in it six tokens at a time, `ValueColumns.width` columns at a
        // time. The sums wait in `out` between blocks (a float stored and loaded is the same float), so a block's value
        // rows serve all the tile's tokens from L1, and an fp16 block is widened once into a buffer that stays there
        // (widening every row of the task at once had the loop read a buffer of up to megabytes from L2).
        var j0 = 0
        while j0 < nMax {
            let keys = j0..<min(j0 + block, nMax)
            for j in keys { rows[j - j0] = E.floats(values + Int(visible[j]) * a.slotStride, count: headDim, scratch: valueFloats + (j - j0) * headDim) }
            var i0 = 0
            while i0 < tile.count {
                let group = min(6, tile.count - i0)
                var column = 0
                while column < headDim {
                    weightedValues(ValueColumns.self, s, lanes: i0..<i0 + group, counts: counts, keys: keys, rows: rows, column: column,
                                   out: out + (tile.first * a.numHeads + head) * headDim + column, outStride: a.numHeads * headDim)
                    column += ValueColumns.width
                }
                i0 += group
            }
            j0 = keys.upperBound
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

    /// The sixteen lanes' scores against keys `0..<n` (`qt`: the queries transposed, `[headDim][16]`), three keys at a
    /// time (the last group repeats the last key), scaled, into `s` (`[key][16]`), and in `maxima` each lane's maximum
    /// over its own keys (`keyCounts`), key by key as `normalize` takes it. The scores loop broadcasts a key's elements
    /// one by one, and an fp16 element would be a load, a convert and a broadcast each, so fp16 rows are widened first.
    /// A function of its own, so that the per-lane setup of `attend` stays out of its loop.
    @inline(never)
    static func tileScores<E: KVElement, S: TileScaling>(_ qt: UnsafePointer<Float>, keys: UnsafePointer<E>, visible: UnsafePointer<Int32>,
                                                         n: Int, slotStride: Int, headDim: Int, scaling: S, keyCounts: UnsafePointer<Float>,
                                                         keyFloats: UnsafeMutablePointer<Float>, into s: UnsafeMutablePointer<Float>,
                                                         maxima: UnsafeMutablePointer<Float>) {
        let lanes = tileTokens, counts = Float.load16(keyCounts, 0)
        // Below the first lane's count every lane's keys are its own (idle lanes' maxima are never read); the keys
        // after it are taken from memory once stored, lane by lane (a masked replace of a score as it is computed
        // had LLVM compile the scaling lane by lane, through permutes).
        var maxScore = SIMD16<Float>(repeating: -.infinity)
        let allOwn = Int(counts[0])
        @inline(__always) func keep(_ v: SIMD16<Float>, key k: Int) {
            UnsafeMutableRawPointer(s + k * lanes).storeBytes(of: v, as: SIMD16<Float>.self)
            if k < allOwn { maxScore = VectorMath.greater(v, maxScore) }
        }
        var j = 0
        while j < n {
            func key(_ k: Int) -> UnsafePointer<Float> {
                E.floats(keys + Int(visible[min(j + k, n - 1)]) * slotStride, count: headDim, scratch: keyFloats + k * headDim)
            }
            let (r0, r1, r2) = scores(qt, key(0), key(1), key(2), headDim: headDim)
            keep(scaling.scaled(r0, key: j), key: j)
            if j + 1 < n { keep(scaling.scaled(r1, key: j + 1), key: j + 1) }
            if j + 2 < n { keep(scaling.scaled(r2, key: j + 2), key: j + 2) }
            j += 3
        }
        for k in allOwn..<n {
            let v = Float.load16(s, k * lanes)
            maxScore.replace(with: v, where: (v .> maxScore) .& (counts .> Float(k)))
        }
        UnsafeMutableRawPointer(maxima).storeBytes(of: maxScore, as: SIMD16<Float>.self)
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
