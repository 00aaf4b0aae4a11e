/// A matrix in an integer block format rearranged for `IntegerLinear`: rows in groups of four
/// ("quads"), and for each quad its blocks in order, each block holding the four rows' values side
/// by side (`IntegerBlockFormat.quadIntegers`). The scales and offsets go to a second array in the
/// same order. Same bytes as the format, so decoding streams no more memory, but a 32-value block
/// of four rows is one pair of 512-bit integer dot products instead of four pairs of 256-bit ones
/// with their shuffles, and every load is aligned.
///
/// A last quad with fewer than four rows repeats its last row (its results are not stored).
public final class InterleavedRows: @unchecked Sendable {
    public let dtype: DType
    public let rows: Int
    /// Blocks of 32 values per row.
    public let blocks: Int
    let integers: OwnedBuffer
    let headers: OwnedBuffer

    var quads: Int { (rows + 3) / 4 }

    /// `nil` if the tensor is not a matrix of integer blocks.
    public init?(_ weight: TensorView, pool: ThreadPool = .shared) {
        guard weight.shape.count == 2, weight.dtype.hasIntegerBlocks, weight.shape[1] % 32 == 0 else { return nil }
        dtype = weight.dtype
        rows = weight.shape[0]
        blocks = weight.shape[1] / 32
        switch weight.dtype {
        case .q8_0: (integers, headers) = Self.pack(Q8_0Blocks.self, weight, pool: pool)
        case .q4_0: (integers, headers) = Self.pack(Q4_0Blocks.self, weight, pool: pool)
        case .q4_1: (integers, headers) = Self.pack(Q4_1Blocks.self, weight, pool: pool)
        case .int8Group: (integers, headers) = Self.pack(Int8GroupBlocks.self, weight, pool: pool)
        case .int4Group: (integers, headers) = Self.pack(Int4GroupBlocks.self, weight, pool: pool)
        case .f32, .f16, .bf16: return nil
        }
    }

    private static func pack<F: IntegerBlockFormat>(_: F.Type, _ weight: TensorView, pool: ThreadPool) -> (OwnedBuffer, OwnedBuffer) {
        let rows = weight.shape[0], blocks = weight.shape[1] / 32
        let quads = (rows + 3) / 4
        let integers = OwnedBuffer(byteCount: quads * blocks * F.quadIntegerBytes, hugePages: true)
        let headers = OwnedBuffer(byteCount: quads * blocks * F.quadHeaderBytes, hugePages: true)
        let rowBytes = blocks * F.blockBytes
        pool.parallelChunks(quads, minChunk: 64) { range in
            for q in range {
                @inline(__always) func row(_ k: Int) -> UnsafeRawPointer { weight.data + min(4 * q + k, rows - 1) * rowBytes }
                let r = (row(0), row(1), row(2), row(3))
                for b in 0..<blocks {
                    let o = b * F.blockBytes, record = q * blocks + b
                    let sources = (r.0 + o, r.1 + o, r.2 + o, r.3 + o)
                    F.packQuadIntegers(sources, into: integers.pointer + record * F.quadIntegerBytes)
                    F.packQuadHeader(sources, into: headers.pointer + record * F.quadHeaderBytes)
                }
            }
        }
        return (integers, headers)
    }
}

extension TensorView {
    /// This matrix set up for `q8` activations (`ActivationFormat.q8`): its blocks rearranged into
    /// `InterleavedRows`, which `Linear` then uses; the original bytes stay for everything else
    /// (an embedding lookup of a tied head, the GPU). Other tensors are returned unchanged.
    public func withIntegerDots(pool: ThreadPool = .shared) -> TensorView {
        var t = self
        t.interleaved = InterleavedRows(self, pool: pool)
        return t
    }
}
