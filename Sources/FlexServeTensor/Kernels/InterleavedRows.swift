/// A matrix in an integer block format rearranged for `IntegerLinear`, for one kind of activations: rows in groups of sixteen, and
/// for each group its blocks in order, each block holding the sixteen rows' values side by side, one
/// row per 32-bit lane (`IntegerBlockFormat.groupChunks`). The scales and offsets go to a second
/// array in the same order. Same bytes as the format, so decoding streams no more memory, but a
/// 32-value block of sixteen rows is eight 512-bit integer dot products whose sixteen lanes are the
/// rows' sums, scaled lane by lane with no shuffle, and every load is aligned; with fp32 activations each
/// value is masked in its lane and converted, sixteen rows at a time (`F32Activations`). (Groups of four rows,
/// four lanes a row, needed a permute for every block's scales and four times the float work: that
/// kernel computed 18 GB/s of Q4_1 per core on L2-resident weights, this one 74.)
///
/// A last group with fewer than sixteen rows repeats its last row (its results are not stored).
public final class InterleavedRows: @unchecked Sendable {
    public let dtype: DType
    /// What `Linear` multiplies these rows with.
    public let activations: ActivationFormat
    public let rows: Int
    /// Blocks of 32 values per row.
    public let blocks: Int
    let integers: OwnedBuffer
    let headers: OwnedBuffer

    var groups: Int { (rows + groupRows - 1) / groupRows }

    /// Bytes readable after the last record: the AVX2 fp32-activation kernels load each field from its own byte
    /// (`IntegerBlockFormat.floatField`), up to three bytes past a record.
    static let readPastEnd = 64

    /// `nil` if the tensor is not a matrix of integer blocks.
    public init?(_ weight: TensorView, activations: ActivationFormat, pool: ThreadPool = .shared) {
        guard weight.shape.count == 2, weight.dtype.hasIntegerBlocks, weight.shape[1] % 32 == 0 else { return nil }
        dtype = weight.dtype
        self.activations = activations
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
        let groups = (rows + groupRows - 1) / groupRows
        let integers = OwnedBuffer(byteCount: groups * blocks * F.groupIntegerBytes + readPastEnd, hugePages: true)
        let headers = OwnedBuffer(byteCount: groups * blocks * F.groupHeaderBytes, hugePages: true)
        let rowBytes = blocks * F.blockBytes
        pool.parallelChunks(groups, minChunk: 16) { range in
            for g in range {
                let starts = (0..<groupRows).map { weight.data + min(groupRows * g + $0, rows - 1) * rowBytes }
                for b in 0..<blocks {
                    let sources = starts.map { $0 + b * F.blockBytes }, record = g * blocks + b
                    F.packGroupIntegers(sources, into: integers.pointer + record * F.groupIntegerBytes)
                    F.packGroupHeader(sources, into: headers.pointer + record * F.groupHeaderBytes)
                }
            }
        }
        return (integers, headers)
    }
}

extension TensorView {
    /// This matrix set up for `activations`: its blocks rearranged into `InterleavedRows`, which `Linear`
    /// then uses; the original bytes stay for everything else (an embedding lookup of a tied head, the
    /// GPU). Tensors that are not matrices of integer blocks are returned unchanged.
    public func withInterleavedRows(for activations: ActivationFormat, pool: ThreadPool = .shared) -> TensorView {
        var t = self
        t.interleaved = InterleavedRows(self, activations: activations, pool: pool)
        return t
    }
}
