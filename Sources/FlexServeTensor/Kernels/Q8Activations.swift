/// Activation rows quantized for integer dot products: per block of 32 values, int8 values
/// `q = round(x / d)` (nearest, ties to even) with `d = max|x| / 127`, the scale `d`, and
/// `d · Σq`, which the weight formats with an offset need (Σ_i w_i·x_i gains `offset · Σ x_i`), and `Σq` itself
/// (AVX2's byte dot products add `128 · Σq` to every row).
///
/// Blocks are stored block-major (`[block][token]`), so a tile of tokens finds token t + k's block 32k bytes (its
/// scale 4k bytes) further on: constant offsets in the kernels (`Q8TokenTiles`).
struct Q8Activations {
    let values: UnsafeMutablePointer<Int8>
    let scales: UnsafeMutablePointer<Float>
    let scaledSums: UnsafeMutablePointer<Float>
    let sums: UnsafeMutablePointer<Int32>
    let blocks: Int
    let tokens: Int

    /// Bytes of scratch for `tokens` rows of `cols` values (cols a multiple of 32).
    static func byteCount(tokens: Int, cols: Int) -> Int { tokens * cols + 12 * tokens * (cols / 32) }

    init(scratch: UnsafeMutableRawPointer, tokens: Int, cols: Int) {
        blocks = cols / 32
        self.tokens = tokens
        scales = scratch.bindMemory(to: Float.self, capacity: tokens * blocks)
        scaledSums = (scratch + 4 * tokens * blocks).bindMemory(to: Float.self, capacity: tokens * blocks)
        sums = (scratch + 8 * tokens * blocks).bindMemory(to: Int32.self, capacity: tokens * blocks)
        values = (scratch + 12 * tokens * blocks).bindMemory(to: Int8.self, capacity: tokens * cols)
    }

    /// One token's block of 32 values.
    struct Block {
        let values: UnsafeRawPointer
        let scale: Float
        /// scale · Σ values.
        let scaledSum: Float
        /// Σ values.
        let sum: Int32
    }

    /// Where token t's block b lies in the arrays (values at 32 times it).
    @inline(__always)
    func index(_ t: Int, _ b: Int) -> Int { b * tokens + t }

    /// Token t's block b.
    @inline(__always)
    func block(_ t: Int, _ b: Int) -> Block {
        let i = index(t, b)
        return Block(values: UnsafeRawPointer(values + i * 32), scale: scales[i], scaledSum: scaledSums[i], sum: sums[i])
    }

    func quantize(_ x: UnsafePointer<Float>, token t: Int) { quantize(x, token: t, blocks: 0..<blocks) }

    /// Blocks `range` of token t (each block's values, scale and sum depend on its 32 inputs alone).
    func quantize(_ x: UnsafePointer<Float>, token t: Int, blocks range: Range<Int>) {
        for b in range {
            let src = x + b * 32
            var amax = SIMD8<Float>()
            for k in 0..<4 {
                let v = RowDot.load(src, 8 * k)
                for l in 0..<8 { amax[l] = Swift.max(amax[l], Swift.abs(v[l])) }
            }
            let d = Swift.max(Swift.max(Swift.max(amax[0], amax[1]), Swift.max(amax[2], amax[3])),
                              Swift.max(Swift.max(amax[4], amax[5]), Swift.max(amax[6], amax[7]))) / 127
            let inverse: Float = d == 0 ? 0 : 1 / d
            let i = index(t, b), dst = values + i * 32
            var sum: Int32 = 0
            for l in 0..<32 {
                let q = Int32((src[l] * inverse).rounded(.toNearestOrEven))
                dst[l] = Int8(truncatingIfNeeded: q)
                sum &+= q
            }
            scales[i] = d
            scaledSums[i] = d * Float(sum)
            sums[i] = sum
        }
    }
}
