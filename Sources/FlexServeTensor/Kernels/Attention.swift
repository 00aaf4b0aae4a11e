import Foundation

/// Scaled dot-product attention of a batch of query tokens over a KV store addressed by slot.
/// Each token lists the slots it may see (its sequence's committed entries, and for a token-tree
/// node its ancestors and itself): that list is the tree mask, so one kernel serves prefill,
/// decoding and tree verification.
public enum Attention {
    public static let splitMinimumKeys = 256

    /// - q: `[tokens][numHeads][headDim]`; keys and values: one layer of a KV store (`kv`).
    /// - visible: slots of token t are `slots[slotStart[t]..<slotStart[t+1]]`.
    /// - out: `[tokens][numHeads][headDim]`.
    /// - alibiSlopes: ALiBi (`[numHeads]`): head h's score gets `slope[h] · (keyPosition − queryPosition)`, with the
    ///   query positions `[tokens]` and the key position of each entry of `slots` (`slotPositions`, parallel to `slots`).
    public static func forward(q: UnsafePointer<Float>, tokens: Int, numHeads: Int, numKVHeads: Int, headDim: Int, kv: KVStore,
                               slotStart: UnsafePointer<Int32>, slots: UnsafePointer<Int32>,
                               scale: Float, out: UnsafeMutablePointer<Float>, pool: ThreadPool = .shared,
                               alibiSlopes: UnsafePointer<Float>? = nil, queryPositions: UnsafePointer<Int32>? = nil,
                               slotPositions: UnsafePointer<Int32>? = nil) {
        switch kv.type {
        case .f32:
            forward(q: q, tokens: tokens, numHeads: numHeads, numKVHeads: numKVHeads, headDim: headDim,
                    keys: kv.keys.assumingMemoryBound(to: Float.self), values: kv.values.assumingMemoryBound(to: Float.self),
                    slotStart: slotStart, slots: slots, scale: scale, out: out, pool: pool, alibiSlopes: alibiSlopes,
                    queryPositions: queryPositions, slotPositions: slotPositions, layout: kv.layout)
        case .f16:
            forward(q: q, tokens: tokens, numHeads: numHeads, numKVHeads: numKVHeads, headDim: headDim,
                    keys: kv.keys.assumingMemoryBound(to: Float16.self), values: kv.values.assumingMemoryBound(to: Float16.self),
                    slotStart: slotStart, slots: slots, scale: scale, out: out, pool: pool, alibiSlopes: alibiSlopes,
                    queryPositions: queryPositions, slotPositions: slotPositions, layout: kv.layout)
        }
    }

    static func forward<E: KVElement>(q: UnsafePointer<Float>, tokens: Int, numHeads: Int, numKVHeads: Int, headDim: Int,
                                      keys: UnsafePointer<E>, values: UnsafePointer<E>,
                                      slotStart: UnsafePointer<Int32>, slots: UnsafePointer<Int32>,
                                      scale: Float, out: UnsafeMutablePointer<Float>, pool: ThreadPool,
                                      alibiSlopes: UnsafePointer<Float>?, queryPositions: UnsafePointer<Int32>?,
                                      slotPositions: UnsafePointer<Int32>?, layout: KVLayout) {
        let group = numHeads / numKVHeads
        let slotStride = layout.slotStride, headStride = layout.headStride
        // Work comes in sets of up to three query heads of one KV head: each key and value row is
        // read once for the three heads (they share it under grouped-query attention), with 12
        // and 24 independent sums in registers. Every head's arithmetic is the same as alone.
        let headSets = (group + 2) / 3
        let sets = tokens * numKVHeads * headSets
        if sets == 0 { return }
        let a = Args(q: q, numHeads: numHeads, group: group, headSets: headSets, numKVHeads: numKVHeads, headDim: headDim,
                     slotStride: slotStride, headStride: headStride, keys: keys, values: values, slotStart: slotStart, slots: slots, scale: scale,
                     alibiSlopes: alibiSlopes, queryPositions: queryPositions, slotPositions: slotPositions)
        if sets < pool.threadCount, Int(slotStart[tokens] - slotStart[0]) >= splitMinimumKeys {
            // Fewer sets than threads over many keys (decoding a long sequence with one KV head): one set
            // per task would leave a core idle, so the work is split across keys, then heads, then columns
            // instead (three dispatches: below this many keys they cost more than the idle core). With at
            // least one set per thread the split loses to the uneven share: SmolLM2's three sets on two
            // threads decoded 2.5–6.9% faster unsplit at 512–776 keys and 18% at 1,800–2,064 (interleaved
            // segments).
            splitForward(a, sets: sets, out: out, pool: pool)
            return
        }
        if tokens >= minimumTileTokens, tilesSupport(headDim: headDim) {
            let tiles = tokenTiles(tokens: tokens, slotStart: slotStart, slots: slots)
            if tiles.contains(where: { $0.count >= minimumTileTokens }) {
                tiledForward(a, tiles: tiles, out: out, pool: pool)
                return
            }
        }
        // One task per set.
        pool.parallelFor(sets) { a.attend(set: $0, out: out) }
    }

    /// Attention cut into independent tasks, one per set of up to three query heads of one KV head (token by
    /// token), for a caller's own parallel region: `run(set:)` for each of `count` computes what `forward`
    /// computes for those heads, bit for bit.
    public struct HeadSets: @unchecked Sendable {
        private enum Typed {
            case f32(Args<Float>), f16(Args<Float16>)
        }
        private let args: Typed
        let out: UnsafeMutablePointer<Float>
        public let count: Int

        /// The arguments of `forward` (without ALiBi).
        public init(q: UnsafePointer<Float>, tokens: Int, numHeads: Int, numKVHeads: Int, headDim: Int, kv: KVStore,
                    slotStart: UnsafePointer<Int32>, slots: UnsafePointer<Int32>, scale: Float, out: UnsafeMutablePointer<Float>) {
            let group = numHeads / numKVHeads, headSets = (group + 2) / 3
            func typed<E: KVElement>(_: E.Type) -> Args<E> {
                Args(q: q, numHeads: numHeads, group: group, headSets: headSets, numKVHeads: numKVHeads, headDim: headDim,
                     slotStride: kv.layout.slotStride, headStride: kv.layout.headStride,
                     keys: kv.keys.assumingMemoryBound(to: E.self), values: kv.values.assumingMemoryBound(to: E.self),
                     slotStart: slotStart, slots: slots, scale: scale, alibiSlopes: nil, queryPositions: nil, slotPositions: nil)
            }
            switch kv.type {
            case .f32: args = .f32(typed(Float.self))
            case .f16: args = .f16(typed(Float16.self))
            }
            self.out = out
            count = Self.count(tokens: tokens, numHeads: numHeads, numKVHeads: numKVHeads)
        }

        public static func count(tokens: Int, numHeads: Int, numKVHeads: Int) -> Int { tokens * numKVHeads * ((numHeads / numKVHeads + 2) / 3) }

        /// The query heads of a token's set `i` (up to three of one KV head; a token's sets are `count(tokens: 1, ...)`).
        public static func heads(set i: Int, numHeads: Int, numKVHeads: Int) -> Range<Int> {
            let group = numHeads / numKVHeads, headSets = (group + 2) / 3
            let kvHead = i / headSets % numKVHeads, first = kvHead * group + i % headSets * 3
            return first..<min(first + 3, (kvHead + 1) * group)
        }

        public func run(set: Int) {
            switch args {
            case .f32(let a): a.attend(set: set, out: out)
            case .f16(let a): a.attend(set: set, out: out)
            }
        }

        /// Set `set` shared by several threads: each scores part `part` of `parts` of its keys into `scores` (`3 · keys`
        /// floats, the set's heads one after another), then, once all parts are in, each runs `finish` for its own
        /// columns. Together they compute what `run(set:)` does, bit for bit (a score, a softmax and a column's sum
        /// do not depend on which thread computes them).
        public func score(set: Int, part: Int, of parts: Int, into scores: UnsafeMutablePointer<Float>) {
            switch args {
            case .f32(let a): a.score(set: set, part: part, of: parts, into: scores)
            case .f16(let a): a.score(set: set, part: part, of: parts, into: scores)
            }
        }

        /// The softmax of each of the set's heads from all its `scores`, on a copy in `scratch` (`3 · keys` floats, the
        /// calling thread's own), then the weighted values of output columns `columns` (whole multiples of 32 from 0).
        public func finish(set: Int, scores: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>, columns: Range<Int>) {
            switch args {
            case .f32(let a): a.finish(set: set, scores: scores, scratch: scratch, columns: columns, out: out)
            case .f16(let a): a.finish(set: set, scores: scores, scratch: scratch, columns: columns, out: out)
            }
        }

        /// Asks for the key and value rows of set `set`'s keys `8·chunk..<8·chunk + 8`, for a thread with time before
        /// the attention; false past the set's last key.
        public func warm(set: Int, chunk: Int) -> Bool {
            switch args {
            case .f32(let a): a.warm(set: set, chunk: chunk)
            case .f16(let a): a.warm(set: set, chunk: chunk)
            }
        }
    }

    /// `forward` in three passes, each spread over all threads: scores by chunks of keys, softmax by
    /// head, weighted values by 32 columns. Every value is computed as in the one-task-per-set path.
    static func splitForward<E: KVElement>(_ a: Args<E>, sets: Int, out: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        var offsets = [Int](repeating: 0, count: sets + 1)
        for i in 0..<sets { offsets[i + 1] = offsets[i] + 3 * a.set(i).n }
        let keyChunks = max(1, (4 * pool.threadCount + sets - 1) / sets)
        let columnChunks = (a.headDim + 31) / 32
        offsets.withUnsafeBufferPointer { offsets in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: max(1, offsets[sets]) + 4 * sets) { buffer in
                let scoresBase = buffer.baseAddress!, invs = buffer.baseAddress! + offsets[sets]
                pool.parallelFor(sets * keyChunks) { task in
                    a.score(set: task / keyChunks, part: task % keyChunks, of: keyChunks, into: scoresBase + offsets[task / keyChunks])
                }
                pool.parallelFor(sets * 3) { task in
                    let i = task / 3, set = a.set(i), k = task % 3
                    if k < set.count { invs[4 * i + k] = a.normalize(set, head: k, scoresBase + offsets[i] + k * set.n) }
                }
                pool.parallelFor(sets * columnChunks) { task in
                    let i = task / columnChunks, set = a.set(i), d = task % columnChunks * 32
                    for k in 0..<set.count {
                        weightedValues(scoresBase + offsets[i] + k * set.n, invs[4 * i + k], n: set.n,
                                       values: a.values + set.kvHead * a.headStride + d, slots: a.slots + set.lo, slotStride: a.slotStride,
                                       headDim: min(32, a.headDim - d), out: out + set.outOffset(k, a) + d)
                    }
                }
            }
        }
    }

    /// The inputs of `forward`, and the steps every path shares.
    struct Args<E: KVElement> {
        let q: UnsafePointer<Float>
        let numHeads: Int, group: Int, headSets: Int, numKVHeads: Int, headDim: Int, slotStride: Int, headStride: Int
        let keys: UnsafePointer<E>, values: UnsafePointer<E>
        let slotStart: UnsafePointer<Int32>, slots: UnsafePointer<Int32>
        let scale: Float
        let alibiSlopes: UnsafePointer<Float>?, queryPositions: UnsafePointer<Int32>?, slotPositions: UnsafePointer<Int32>?

        /// Set `i`: token t, KV head, its first query head and how many (1...3), the token's visible slots.
        struct HeadSet {
            let t: Int, kvHead: Int, first: Int, count: Int, lo: Int, n: Int
            /// Output of the set's k-th head (heads past `count` repeat the last real one).
            func outOffset(_ k: Int, _ a: Args) -> Int { (t * a.numHeads + first + min(k, count - 1)) * a.headDim }
        }

        @inline(__always)
        func set(_ i: Int) -> HeadSet {
            let t = i / (numKVHeads * headSets)
            let heads = HeadSets.heads(set: i, numHeads: numHeads, numKVHeads: numKVHeads)
            let lo = Int(slotStart[t])
            return HeadSet(t: t, kvHead: i / headSets % numKVHeads, first: heads.lowerBound, count: heads.count, lo: lo, n: Int(slotStart[t + 1]) - lo)
        }

        @inline(__always)
        func warm(set i: Int, chunk: Int) -> Bool {
            let s = set(i), first = 8 * chunk
            guard first < s.n else { return false }
            prefetch(s, from: first, count: min(8, s.n - first))
            return true
        }

        /// Asks for the key and value rows of set `s`'s visible slots `j..<j + count`.
        @inline(__always)
        func prefetch(_ s: HeadSet, from j: Int, count: Int) {
            Attention.prefetchRows(keys + s.kvHead * headStride, slots + s.lo + j, count: count, slotStride: slotStride, headDim: headDim)
            Attention.prefetchRows(values + s.kvHead * headStride, slots + s.lo + j, count: count, slotStride: slotStride, headDim: headDim)
        }

        /// Set `i`'s scores against part `part` of `parts` of its keys (`HeadSets.score`, `splitForward`): parts of a
        /// multiple of four keys, as `score` takes them from the first.
        func score(set i: Int, part: Int, of parts: Int, into scores: UnsafeMutablePointer<Float>) {
            let s = set(i)
            let size = ((s.n + parts - 1) / parts + 3) / 4 * 4
            let lo = min(s.n, part * size), hi = min(s.n, lo + size)
            if lo < hi { score(s, scores, keys: lo..<hi) }
        }

        /// `HeadSets.finish`: each head's numerators and 1 / their sum as `attend` takes them, and the columns' sums
        /// (`weightedValues` does per column what `weightedValues3` does).
        func finish(set i: Int, scores: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>, columns: Range<Int>,
                    out: UnsafeMutablePointer<Float>) {
            let s = set(i)
            guard !columns.isEmpty else { return }
            var inv = SIMD4<Float>()
            for k in 0..<s.count {
                let e = scratch + k * s.n
                e.update(from: scores + k * s.n, count: s.n)
                inv[k] = normalize(s, head: k, e)
            }
            let values = values + s.kvHead * headStride + columns.lowerBound
            var d = 0
            if s.count == 3 {
                d = Attention.weightedValues3((scratch, scratch + s.n, scratch + 2 * s.n), inv, n: s.n, values: values, slots: slots + s.lo,
                                              slotStride: slotStride, headDim: columns.count,
                                              out: (out + s.outOffset(0, self) + columns.lowerBound, out + s.outOffset(1, self) + columns.lowerBound,
                                                    out + s.outOffset(2, self) + columns.lowerBound))
            }
            for k in 0..<s.count where d < columns.count {
                Attention.weightedValues(scratch + k * s.n, inv[k], n: s.n, values: values + d, slots: slots + s.lo, slotStride: slotStride,
                                         headDim: columns.count - d, out: out + s.outOffset(k, self) + columns.lowerBound + d)
            }
        }

        /// Set `i` whole: scores, softmax, weighted values, into `out`.
        @inline(__always)
        func attend(set i: Int, out: UnsafeMutablePointer<Float>) {
            let set = set(i)
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 3 * max(1, set.n)) { attend(set, scores: $0.baseAddress!, out: out) }
        }

        /// `attend`'s work, outside its allocation's closure: compiled inside the closure, the AVX-512 intrinsics of
        /// `EightKeyScores` stayed calls.
        @inline(never)
        func attend(_ set: HeadSet, scores: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>) {
            score(set, scores, keys: 0..<set.n)
            var inv = SIMD4<Float>()
            for k in 0..<set.count { inv[k] = normalize(set, head: k, scores + k * set.n) }
            var d = 0
            if set.count == 3 {
                d = Attention.weightedValues3((scores, scores + set.n, scores + 2 * set.n), inv, n: set.n,
                                              values: values + set.kvHead * headStride, slots: slots + set.lo,
                                              slotStride: slotStride, headDim: headDim,
                                              out: (out + set.outOffset(0, self), out + set.outOffset(1, self), out + set.outOffset(2, self)))
            }
            for k in 0..<set.count where d < headDim {
                Attention.weightedValues(scores + k * set.n, inv[k], n: set.n, values: values + set.kvHead * headStride + d,
                                         slots: slots + set.lo, slotStride: slotStride, headDim: headDim - d, out: out + set.outOffset(k, self) + d)
            }
        }

        /// Scaled scores of the set's heads against `keys` (indices into its visible slots), into
        /// `scores + k·n` for head k; four keys at a time, the query vectors loaded once for them.
        @inline(__always)
        func score(_ s: HeadSet, _ scores: UnsafeMutablePointer<Float>, keys range: Range<Int>) {
            func query(_ k: Int) -> UnsafePointer<Float> { q + (s.t * numHeads + s.first + min(k, s.count - 1)) * headDim }
            let keysAhead = Attention.keysAhead(s.n)
            let keyRows = keys + s.kvHead * headStride
            var j = range.lowerBound
            // The first rows are asked for at once, and over a short context each value row with its key: the values are read
            // right after the scores, and in a decode step they come from memory too. Over a long one (`keysAhead` 32) the
            // values asked for with the keys only crowd them (a set's 0.1–0.4 MB of rows does not fit L1), and
            // `weightedValues3` asks for each row ahead as it goes.
            @inline(__always) func ask(from first: Int, count: Int) {
                if keysAhead > 8 {
                    Attention.prefetchRows(keyRows, slots + s.lo + first, count: count, slotStride: slotStride, headDim: headDim)
                } else {
                    prefetch(s, from: first, count: count)
                }
            }
            ask(from: j, count: min(range.count, keysAhead))
            #if FLEXSERVE_AVX512
            if headDim % 8 == 0 {
                let lanes = RowPanel.RowSumLanes.opaque
                while j + 8 <= range.upperBound {
                    if j + keysAhead < s.n { ask(from: j + keysAhead, count: min(8, s.n - j - keysAhead)) }
                    let r = EightKeyScores.scores(query(0), query(1), query(2), keys: keyRows, slots: slots + s.lo + j, slotStride: slotStride, headDim,
                                                  lanes: lanes)
                    let out = UnsafeMutableRawPointer(scores + j)
                    out.storeBytes(of: r.0 * scale, as: SIMD8<Float>.self)
                    if s.count > 1 { out.storeBytes(of: r.1 * scale, toByteOffset: 4 * s.n, as: SIMD8<Float>.self) }
                    if s.count > 2 { out.storeBytes(of: r.2 * scale, toByteOffset: 8 * s.n, as: SIMD8<Float>.self) }
                    j += 8
                }
            }
            #endif
            while j < range.upperBound {
                func key(_ k: Int) -> UnsafePointer<E> { keyRows + Int(slots[s.lo + min(j + k, s.n - 1)]) * slotStride }
                if j + keysAhead < s.n { ask(from: j + keysAhead, count: min(4, s.n - j - keysAhead)) }
                let r = RowDot.threeTokens(query(0), query(1), query(2), (key(0), key(1), key(2), key(3)), headDim)
                let (s0, s1, s2) = (r.0 * scale, r.1 * scale, r.2 * scale)
                for k in 0..<min(4, range.upperBound - j) {
                    scores[j + k] = s0[k]
                    if s.count > 1 { scores[s.n + j + k] = s1[k] }
                    if s.count > 2 { scores[2 * s.n + j + k] = s2[k] }
                }
                j += 4
            }
        }

        /// ALiBi, then exp(score − max) in place; returns 1 / their sum.
        @inline(__always)
        func normalize(_ s: HeadSet, head k: Int, _ sc: UnsafeMutablePointer<Float>) -> Float {
            let h = s.first + k
            if let alibiSlopes {
                for j in 0..<s.n { sc[j] += alibiSlopes[h] * Float(slotPositions![s.lo + j] - queryPositions![s.t]) }
            }
            return 1 / softmaxNumerators(sc, s.n, maxScore: Attention.maximum(sc, s.n))
        }
    }

    /// `weightedValues` for three heads over the same values, 64 columns at a time (each value
    /// vector feeds three heads' sums), with AVX-512 then 32. Returns how many columns it did; the caller does the rest.
    @inline(__always)
    static func weightedValues3<E: KVElement>(_ scores: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>),
                                _ inv: SIMD4<Float>, n: Int, values: UnsafePointer<E>, slots: UnsafePointer<Int32>,
                                slotStride: Int, headDim: Int,
                                out: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>)) -> Int {
        var d = 0
        #if FLEXSERVE_AVX512
        // Sixteen columns a register: half the FMAs, and a column's sum is the same whatever the width. A pass takes 64
        // columns, or 32 (a thread's half of a shared set's, `HeadSets.finish`): `wide` is a constant where it is inlined.
        @inline(__always) func pass(wide: Bool) {
            var a = (SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>())
            var b = a, c = a
            let keysAhead = keysAhead(n)
            for j in 0..<n {
                if d == 0, j + keysAhead < n { prefetchRows(values, slots + j + keysAhead, count: 1, slotStride: slotStride, headDim: headDim) }
                let p = SIMD16<Float>(repeating: scores.0[j] * inv[0])
                let q = SIMD16<Float>(repeating: scores.1[j] * inv[1])
                let r = SIMD16<Float>(repeating: scores.2[j] * inv[2])
                let v = values + Int(slots[j]) * slotStride + d
                @inline(__always) func step(_ x: inout SIMD16<Float>, _ y: inout SIMD16<Float>, _ z: inout SIMD16<Float>, _ o: Int) {
                    let w = E.load16(v, o)
                    x = x.addingProduct(p, w); y = y.addingProduct(q, w); z = z.addingProduct(r, w)
                }
                step(&a.0, &b.0, &c.0, 0); step(&a.1, &b.1, &c.1, 16)
                if wide { step(&a.2, &b.2, &c.2, 32); step(&a.3, &b.3, &c.3, 48) }
            }
            @inline(__always) func store(_ o: UnsafeMutablePointer<Float>, _ s: (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>)) {
                let r = UnsafeMutableRawPointer(o + d)
                r.storeBytes(of: s.0, as: SIMD16<Float>.self); r.storeBytes(of: s.1, toByteOffset: 64, as: SIMD16<Float>.self)
                if wide { r.storeBytes(of: s.2, toByteOffset: 128, as: SIMD16<Float>.self); r.storeBytes(of: s.3, toByteOffset: 192, as: SIMD16<Float>.self) }
            }
            store(out.0, a); store(out.1, b); store(out.2, c)
            d += wide ? 64 : 32
        }
        while d + 64 <= headDim { pass(wide: true) }
        if d + 32 <= headDim { pass(wide: false) }
        #else
        while d + 64 <= headDim {
            var a = (SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>())
            var b = a, c = a
            let keysAhead = keysAhead(n)
            for j in 0..<n {
                if d == 0, j + keysAhead < n { prefetchRows(values, slots + j + keysAhead, count: 1, slotStride: slotStride, headDim: headDim) }
                let p = SIMD8<Float>(repeating: scores.0[j] * inv[0])
                let q = SIMD8<Float>(repeating: scores.1[j] * inv[1])
                let r = SIMD8<Float>(repeating: scores.2[j] * inv[2])
                let v = values + Int(slots[j]) * slotStride + d
                @inline(__always) func step(_ x: inout SIMD8<Float>, _ y: inout SIMD8<Float>, _ z: inout SIMD8<Float>, _ o: Int) {
                    let w = E.load8(v, o)
                    x = x.addingProduct(p, w); y = y.addingProduct(q, w); z = z.addingProduct(r, w)
                }
                step(&a.0, &b.0, &c.0, 0); step(&a.1, &b.1, &c.1, 8); step(&a.2, &b.2, &c.2, 16); step(&a.3, &b.3, &c.3, 24)
                step(&a.4, &b.4, &c.4, 32); step(&a.5, &b.5, &c.5, 40); step(&a.6, &b.6, &c.6, 48); step(&a.7, &b.7, &c.7, 56)
            }
            for (o, s) in [(out.0, a), (out.1, b), (out.2, c)] {
                let r = UnsafeMutableRawPointer(o + d)
                r.storeBytes(of: s.0, as: SIMD8<Float>.self); r.storeBytes(of: s.1, toByteOffset: 32, as: SIMD8<Float>.self)
                r.storeBytes(of: s.2, toByteOffset: 64, as: SIMD8<Float>.self); r.storeBytes(of: s.3, toByteOffset: 96, as: SIMD8<Float>.self)
                r.storeBytes(of: s.4, toByteOffset: 128, as: SIMD8<Float>.self); r.storeBytes(of: s.5, toByteOffset: 160, as: SIMD8<Float>.self)
                r.storeBytes(of: s.6, toByteOffset: 192, as: SIMD8<Float>.self); r.storeBytes(of: s.7, toByteOffset: 224, as: SIMD8<Float>.self)
            }
            d += 64
        }
        #endif
        return d
    }

    /// How many keys ahead the KV rows are prefetched over `n` keys. A decode step finds the layer's cache
    /// in memory (the weights streamed since evicted it). Measured: attention of a short-context decode
    /// step 600 → 475 µs a token with the token-major cache; with the head-major one, whose rows follow
    /// each other, decoding without it was still 2.6–3.8% slower (interleaved segments), and 4 or 16
    /// keys ahead no better than 8. Over many keys 8 rows (2 KB of fp32 keys) in flight are too few for
    /// the bandwidth: in interleaved 8-token segments of SmolLM2 decoding on Zen 5, 32 ahead against 8 was
    /// 5.8% faster at contexts 256–384, 11–17% at 512–640 and 6–14% at 1,024–1,152, but 10% slower at
    /// 16–80 (the first 32 keys went unprefetched then; 16 and 64 ahead gained less at 512–640). Since 2026-12-05 `score`
    /// also asks for each value row with its key and for the first `keysAhead` rows of both at once: a SmolLM2 decode
    /// step's attention 20% shorter at contexts 16–80 (`bench phases`, alternated; Zen 5, both placements).
    @inline(__always)
    static func keysAhead(_ n: Int) -> Int { n >= 256 ? 32 : 8 }

    /// Prefetches the first `headDim` floats of the `count` rows named by `slots`.
    @inline(__always)
    static func prefetchRows<E: KVElement>(_ base: UnsafePointer<E>, _ slots: UnsafePointer<Int32>, count: Int, slotStride: Int, headDim: Int) {
        let bytes = headDim * MemoryLayout<E>.stride
        for k in 0..<count {
            let row = UnsafeRawPointer(base + Int(slots[k]) * slotStride)
            var offset = 0
            while offset < bytes { Prefetch.line(row + offset); offset &+= 64 }
        }
    }

    /// The largest of `scores[0..<n]` (−∞ for none), sixteen lanes at a time: the scalar loop took 1.5% of a decode's
    /// time at contexts 16–528 (`perf`, Emerald Rapids). A maximum is exact in any order.
    @inline(__always)
    static func maximum(_ scores: UnsafePointer<Float>, _ n: Int) -> Float {
        var lanes = SIMD16<Float>(repeating: -.infinity)
        var j = 0
        while j + 16 <= n {
            let v = UnsafeRawPointer(scores + j).loadUnaligned(as: SIMD16<Float>.self)
            lanes.replace(with: v, where: v .> lanes)
            j += 16
        }
        var m = -Float.infinity
        for k in 0..<16 where lanes[k] > m { m = lanes[k] }
        for i in j..<n where scores[i] > m { m = scores[i] }
        return m
    }

    /// scores[j] ← exp(scores[j] − maxScore); returns their sum (lane sums, then a fixed tree).
    @inline(__always)
    static func softmaxNumerators(_ scores: UnsafeMutablePointer<Float>, _ n: Int, maxScore: Float) -> Float {
        let p = UnsafeMutableRawPointer(scores)
        var acc = SIMD8<Float>()
        var j = 0
        while j + 8 <= n {
            let e = VectorMath.exp(p.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self) - maxScore)
            p.storeBytes(of: e, toByteOffset: j * 4, as: SIMD8<Float>.self)
            acc += e
            j += 8
        }
        var sum = RowDot.horizontalSum(acc)
        while j < n {
            scores[j] = VectorMath.exp(scores[j] - maxScore)
            sum += scores[j]
            j += 1
        }
        return sum
    }

    /// out = Σ_j (scores[j]·inv) · value_j. Columns go 32 at a time with the sums in registers
    /// across all slots (the same multiply-adds per element as accumulating row by row in memory).
    @inline(__always)
    static func weightedValues<E: KVElement>(_ scores: UnsafePointer<Float>, _ inv: Float, n: Int, values: UnsafePointer<E>,
                               slots: UnsafePointer<Int32>, slotStride: Int, headDim: Int, out: UnsafeMutablePointer<Float>) {
        var d = 0
        while d + 32 <= headDim {
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
            let keysAhead = keysAhead(n)
            for j in 0..<n {
                if d == 0, j + keysAhead < n { prefetchRows(values, slots + j + keysAhead, count: 1, slotStride: slotStride, headDim: headDim) }
                let p = SIMD8<Float>(repeating: scores[j] * inv)
                let v = values + Int(slots[j]) * slotStride + d
                a0 = a0.addingProduct(p, E.load8(v, 0))
                a1 = a1.addingProduct(p, E.load8(v, 8))
                a2 = a2.addingProduct(p, E.load8(v, 16))
                a3 = a3.addingProduct(p, E.load8(v, 24))
            }
            let o = UnsafeMutableRawPointer(out + d)
            o.storeBytes(of: a0, as: SIMD8<Float>.self)
            o.storeBytes(of: a1, toByteOffset: 32, as: SIMD8<Float>.self)
            o.storeBytes(of: a2, toByteOffset: 64, as: SIMD8<Float>.self)
            o.storeBytes(of: a3, toByteOffset: 96, as: SIMD8<Float>.self)
            d += 32
        }
        if d < headDim {
            let rest = out + d
            rest.initialize(repeating: 0, count: headDim - d)
            for j in 0..<n { axpyValues(scores[j] * inv, values + Int(slots[j]) * slotStride + d, rest, headDim - d) }
        }
    }

    /// `axpy` with x in the store's type: with fp32 the same multiply-adds in the same order.
    @inline(__always)
    static func axpyValues<E: KVElement>(_ a: Float, _ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        let yr = UnsafeMutableRawPointer(y)
        let av = SIMD8<Float>(repeating: a)
        var i = 0
        while i + 8 <= n {
            let v = yr.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self).addingProduct(av, E.load8(x, i))
            yr.storeBytes(of: v, toByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        while i < n { y[i] += a * E.load(x, i); i += 1 }
    }
}
