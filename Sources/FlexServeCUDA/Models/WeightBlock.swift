import FlexServeTensor

/// A weight matrix inside a `WeightBlock`: where its bytes are and how they are stored.
///
/// Quantized matrices keep the CPU's FlexFlow-style asymmetric groups of 32 (`DType.int8Group` /
/// `.int4Group`, made by the same `Quantize.row`, so the values are bit for bit the CPU's), split into two
/// arrays: the quantized values (uint8 per value, or the CPU's 16 bytes of nibbles per group: value i in the
/// low nibble of byte i, value i + 16 in its high nibble) and one (scale, minimum) fp32 pair per group. The
/// CPU's interleaved 40- and 24-byte blocks are not 16-byte aligned, which a GPU's coalesced 16-byte loads
/// need; the split layout is also how FlexFlow keeps its quantized weights (values, then scales and minimums).
/// value = q · scale + minimum.
public struct DeviceMatrix: Sendable {
    public enum Format: String, Sendable {
        /// In the model's storage type (fp32/fp16/bf16).
        case dense
        case int8Group
        case int4Group

        /// Bits per quantized value (nil for dense).
        var bits: Int? { self == .int8Group ? 8 : self == .int4Group ? 4 : nil }
    }

    public let format: Format
    public let rows: Int
    public let cols: Int
    /// Bytes into the block: the dense values, or the quantized values.
    let offset: Int
    /// Bytes into the block of the (scale, minimum) pairs, rows × cols/32 of them (quantized only).
    let scalesOffset: Int
    /// Bytes the matrix takes in the block (both arrays).
    let bytes: Int
}

/// One contiguous region of weights (a decoder layer's matrices, or the embedding and head): laid out from
/// the tensors' shapes and formats first, then written into any host memory (pageable for an upload, pinned
/// for `--offload`), so a layer can be resident on the GPU or streamed to it as one copy.
struct WeightBlock {
    let type: CUDADataType
    private(set) var matrices: [DeviceMatrix] = []
    private var sources: [[TensorView]] = []
    private(set) var bytes = 0

    init(type: CUDADataType) { self.type = type }

    /// `parts` stacked row-wise (e.g. q, k, v: one product); quantized when every part is in one group format
    /// and the columns are whole groups, else converted to `type`. Returns the matrix's index.
    mutating func append(_ parts: [TensorView]) throws -> Int {
        let cols = parts[0].shape.last!
        guard parts.allSatisfy({ $0.shape.count == 2 && $0.shape[1] == cols }) else {
            throw CUDAError.unsupported("stacked weight matrices differ in their column count")
        }
        let rows = parts.reduce(0) { $0 + $1.shape[0] }
        let format: DeviceMatrix.Format
        if cols % 32 == 0, parts.allSatisfy({ $0.dtype == .int8Group }) {
            format = .int8Group
        } else if cols % 32 == 0, parts.allSatisfy({ $0.dtype == .int4Group }) {
            format = .int4Group
        } else {
            format = .dense
        }
        let start = Self.aligned(bytes)
        let matrix: DeviceMatrix
        if let bits = format.bits {
            let valueBytes = rows * cols * bits / 8
            let scalesOffset = Self.aligned(start + valueBytes)
            let end = scalesOffset + rows * (cols / 32) * 8
            matrix = DeviceMatrix(format: format, rows: rows, cols: cols, offset: start, scalesOffset: scalesOffset, bytes: end - start)
        } else {
            matrix = DeviceMatrix(format: .dense, rows: rows, cols: cols, offset: start, scalesOffset: 0,
                                  bytes: rows * cols * type.bytes)
        }
        bytes = start + matrix.bytes
        matrices.append(matrix)
        sources.append(parts)
        return matrices.count - 1
    }

    /// 256-byte alignment for every array (16 bytes is what the kernels need).
    static func aligned(_ n: Int) -> Int { (n + 255) / 256 * 256 }

    /// Writes every matrix into `destination` (at least `bytes` long).
    func write(to destination: UnsafeMutableRawPointer) {
        for (matrix, parts) in zip(matrices, sources) {
            var row = 0
            for part in parts {
                let partRows = part.shape[0]
                switch matrix.format {
                case .dense:
                    Self.writeDense(part, type: type, to: destination + matrix.offset + row * matrix.cols * type.bytes)
                case .int8Group, .int4Group:
                    let bits = matrix.format.bits!, groups = matrix.cols / 32
                    let groupBytes = 32 * bits / 8, blockBytes = part.dtype.blockBytes
                    let values = destination + matrix.offset + row * matrix.cols * bits / 8
                    let scales = (destination + matrix.scalesOffset + row * groups * 8).assumingMemoryBound(to: Float.self)
                    // CPU block: fp32 scale, fp32 minimum, then the group's quantized bytes.
                    for g in 0..<(partRows * groups) {
                        let block = part.data + g * blockBytes
                        scales[2 * g] = block.loadUnaligned(as: Float.self)
                        scales[2 * g + 1] = block.loadUnaligned(fromByteOffset: 4, as: Float.self)
                        (values + g * groupBytes).copyMemory(from: block + 8, byteCount: groupBytes)
                    }
                }
                row += partRows
            }
        }
    }

    private static func writeDense(_ view: TensorView, type: CUDADataType, to destination: UnsafeMutableRawPointer) {
        let sameType = (view.dtype == .f32 && type == .fp32) || (view.dtype == .f16 && type == .fp16)
            || (view.dtype == .bf16 && type == .bf16)
        if sameType {
            destination.copyMemory(from: view.data, byteCount: view.byteCount)
            return
        }
        let values = view.floats()
        switch type {
        case .fp32:
            values.withUnsafeBytes { destination.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        case .fp16:
            let d = destination.assumingMemoryBound(to: UInt16.self)
            for i in values.indices { d[i] = floatToF16(values[i]) }
        case .bf16:
            let d = destination.assumingMemoryBound(to: UInt16.self)
            for i in values.indices { d[i] = floatToBF16(values[i]) }
        }
    }
}
