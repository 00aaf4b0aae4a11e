import Foundation

/// Scaled dot-product attention of a batch of query tokens over a KV store addressed by slot.
/// Each token lists the slots it may see (its sequence's committed entries, and for a token-tree
/// node its ancestors and itself): that list is the tree mask, so one kernel serves prefill,
/// decoding and tree verification.
public enum Attention {
    /// - q: `[tokens][numHeads][headDim]`; keys/values: `[slot][numKVHeads][headDim]`.
    /// - visible: slots of token t are `slots[slotStart[t]..<slotStart[t+1]]`.
    /// - out: `[tokens][numHeads][headDim]`.
    /// - alibiSlopes: ALiBi (`[numHeads]`): head h's score gets `slope[h] · (keyPosition − queryPosition)`, with the
    ///   query positions `[tokens]` and the key position of each entry of `slots` (`slotPositions`, parallel to `slots`).
    public static func forward(q: UnsafePointer<Float>, tokens: Int, numHeads: Int, numKVHeads: Int, headDim: Int,
                               keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                               slotStart: UnsafePointer<Int32>, slots: UnsafePointer<Int32>,
                               scale: Float, out: UnsafeMutablePointer<Float>, pool: ThreadPool = .shared,
                               alibiSlopes: UnsafePointer<Float>? = nil, queryPositions: UnsafePointer<Int32>? = nil,
                               slotPositions: UnsafePointer<Int32>? = nil) {
        let group = numHeads / numKVHeads
        let kvStride = numKVHeads * headDim
        // One task per (token, up to three query heads of one KV head): each key and value row is
        // read once for the three heads (they share it under grouped-query attention), with 12
        // and 24 independent sums in registers. Every head's arithmetic is the same as alone.
        let headSets = (group + 2) / 3
        pool.parallelFor(tokens * numKVHeads * headSets) { task in
            let t = task / (numKVHeads * headSets)
            let kvHead = task / headSets % numKVHeads
            let first = kvHead * group + task % headSets * 3
            let count = min(3, (kvHead + 1) * group - first)
            let lo = Int(slotStart[t]), hi = Int(slotStart[t + 1])
            let n = hi - lo
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 3 * max(1, n)) { buffer in
                // Heads past `count` repeat the last real one; their results are not stored.
                func query(_ k: Int) -> UnsafePointer<Float> { q + (t * numHeads + first + min(k, count - 1)) * headDim }
                func scoresOf(_ k: Int) -> UnsafeMutablePointer<Float> { buffer.baseAddress! + k * n }
                let scores = (scoresOf(0), scoresOf(1), scoresOf(2))
                var j = 0
                while j < n {
                    func key(_ k: Int) -> UnsafePointer<Float> {
                        keys + Int(slots[lo + min(j + k, n - 1)]) * kvStride + kvHead * headDim
                    }
                    let s = RowDot.threeTokens(query(0), query(1), query(2), (key(0), key(1), key(2), key(3)), headDim)
                    let (s0, s1, s2) = (s.0 * scale, s.1 * scale, s.2 * scale)
                    for k in 0..<min(4, n - j) { scores.0[j + k] = s0[k]; scores.1[j + k] = s1[k]; scores.2[j + k] = s2[k] }
                    j += 4
                }
                var inv = SIMD4<Float>()
                for k in 0..<count {
                    let h = first + k, sc = scoresOf(k)
                    if let alibiSlopes {
                        for j in 0..<n { sc[j] += alibiSlopes[h] * Float(slotPositions![lo + j] - queryPositions![t]) }
                    }
                    var maxScore = -Float.infinity
                    for j in 0..<n where sc[j] > maxScore { maxScore = sc[j] }
                    inv[k] = 1 / softmaxNumerators(sc, n, maxScore: maxScore)
                }
                let outs = (out + (t * numHeads + first) * headDim, out + (t * numHeads + first + min(1, count - 1)) * headDim,
                            out + (t * numHeads + first + min(2, count - 1)) * headDim)
                var d = 0
                if count == 3 {
                    d = weightedValues3(scores, inv, n: n, values: values + kvHead * headDim, slots: slots + lo,
                                        kvStride: kvStride, headDim: headDim, out: outs)
                }
                for k in 0..<count where d < headDim {
                    weightedValues(scoresOf(k), inv[k], n: n, values: values + kvHead * headDim + d, slots: slots + lo,
                                   kvStride: kvStride, headDim: headDim - d, out: out + (t * numHeads + first + k) * headDim + d)
                }
            }
        }
    }

    /// `weightedValues` for three heads over the same values, 64 columns at a time (each value
    /// vector feeds three heads' sums). Returns how many columns it did; the caller does the rest.
    @inline(__always)
    static func weightedValues3(_ scores: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>),
                                _ inv: SIMD4<Float>, n: Int, values: UnsafePointer<Float>, slots: UnsafePointer<Int32>,
                                kvStride: Int, headDim: Int,
                                out: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>)) -> Int {
        var d = 0
        while d + 64 <= headDim {
            var a = (SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>())
            var b = a, c = a
            for j in 0..<n {
                let p = SIMD8<Float>(repeating: scores.0[j] * inv[0])
                let q = SIMD8<Float>(repeating: scores.1[j] * inv[1])
                let r = SIMD8<Float>(repeating: scores.2[j] * inv[2])
                let v = values + Int(slots[j]) * kvStride + d
                @inline(__always) func step(_ x: inout SIMD8<Float>, _ y: inout SIMD8<Float>, _ z: inout SIMD8<Float>, _ o: Int) {
                    let w = RowDot.load(v, o)
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
        return d
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
    static func weightedValues(_ scores: UnsafePointer<Float>, _ inv: Float, n: Int, values: UnsafePointer<Float>,
                               slots: UnsafePointer<Int32>, kvStride: Int, headDim: Int, out: UnsafeMutablePointer<Float>) {
        var d = 0
        while d + 32 <= headDim {
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
            for j in 0..<n {
                let p = SIMD8<Float>(repeating: scores[j] * inv)
                let v = values + Int(slots[j]) * kvStride + d
                a0 = a0.addingProduct(p, RowDot.load(v, 0))
                a1 = a1.addingProduct(p, RowDot.load(v, 8))
                a2 = a2.addingProduct(p, RowDot.load(v, 16))
                a3 = a3.addingProduct(p, RowDot.load(v, 24))
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
            for j in 0..<n { axpy(scores[j] * inv, values + Int(slots[j]) * kvStride + d, rest, headDim - d) }
        }
    }
}
