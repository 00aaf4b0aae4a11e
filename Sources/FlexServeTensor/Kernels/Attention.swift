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
        pool.parallelFor(tokens * numKVHeads) { task in
            let t = task / numKVHeads
            let kvHead = task % numKVHeads
            let lo = Int(slotStart[t]), hi = Int(slotStart[t + 1])
            let n = hi - lo
            withUnsafeTemporaryAllocation(of: Float.self, capacity: max(1, n)) { scores in
                for g in 0..<group {
                    let h = kvHead * group + g
                    let qv = q + (t * numHeads + h) * headDim
                    var maxScore = -Float.infinity
                    for j in 0..<n {
                        let k = keys + Int(slots[lo + j]) * kvStride + kvHead * headDim
                        var s = dot(qv, k, headDim) * scale
                        if let alibiSlopes {
                            s += alibiSlopes[h] * Float(slotPositions![lo + j] - queryPositions![t])
                        }
                        scores[j] = s
                        if s > maxScore { maxScore = s }
                    }
                    var sum: Float = 0
                    for j in 0..<n {
                        let e = Foundation.exp(scores[j] - maxScore)
                        scores[j] = e
                        sum += e
                    }
                    let o = out + (t * numHeads + h) * headDim
                    o.initialize(repeating: 0, count: headDim)
                    let inv = 1 / sum
                    for j in 0..<n {
                        let v = values + Int(slots[lo + j]) * kvStride + kvHead * headDim
                        axpy(scores[j] * inv, v, o, headDim)
                    }
                }
            }
        }
    }
}
