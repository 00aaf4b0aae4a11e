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
        // One task per (token, query head): a decoding step has only a few KV heads to share out.
        pool.parallelFor(tokens * numHeads) { task in
            let t = task / numHeads
            let h = task % numHeads
            let kvHead = h / group
            let lo = Int(slotStart[t]), hi = Int(slotStart[t + 1])
            let n = hi - lo
            withUnsafeTemporaryAllocation(of: Float.self, capacity: max(1, n)) { scores in
                let qv = q + (t * numHeads + h) * headDim
                // Scores four keys at a time: the query is loaded once for all four.
                var j = 0
                while j < n {
                    func key(_ k: Int) -> UnsafePointer<Float> {
                        keys + Int(slots[lo + min(j + k, n - 1)]) * kvStride + kvHead * headDim
                    }
                    let s4 = RowDot.oneToken(qv, (key(0), key(1), key(2), key(3)), headDim) * scale
                    for k in 0..<min(4, n - j) { scores[j + k] = s4[k] }
                    j += 4
                }
                if let alibiSlopes {
                    for j in 0..<n { scores[j] += alibiSlopes[h] * Float(slotPositions![lo + j] - queryPositions![t]) }
                }
                var maxScore = -Float.infinity
                for j in 0..<n where scores[j] > maxScore { maxScore = scores[j] }
                let sum = softmaxNumerators(scores.baseAddress!, n, maxScore: maxScore)
                let inv = 1 / sum
                weightedValues(scores.baseAddress!, inv, n: n, values: values + kvHead * headDim, slots: slots + lo,
                               kvStride: kvStride, headDim: headDim, out: out + (t * numHeads + h) * headDim)
            }
        }
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
