/// A tensor's bytes in some storage format, with its shape in PyTorch order (outermost first).
/// `owner` keeps the memory (a file map or an owned buffer) alive.
public struct TensorView: @unchecked Sendable {
    public let dtype: DType
    public let shape: [Int]
    public let data: UnsafeRawPointer
    public let owner: AnyObject?
    /// The matrix rearranged into groups of sixteen rows for `Linear` (`withInterleavedRows`).
    public internal(set) var interleaved: InterleavedRows?
    /// How `Linear` treats activations against this weight.
    public var activations: ActivationFormat { interleaved?.activations ?? .f32 }

    public init(dtype: DType, shape: [Int], data: UnsafeRawPointer, owner: AnyObject?) {
        self.dtype = dtype
        self.shape = shape
        self.data = data
        self.owner = owner
    }

    public var count: Int { shape.reduce(1, *) }
    public var byteCount: Int { dtype.byteCount(values: count) ?? 0 }

    /// All values as fp32.
    public func floats() -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            Dequantize.row(dtype, data, count: count, into: buffer.baseAddress!)
            initialized = count
        }
    }

    /// A tensor holding `values` as f32 in memory it owns.
    public static func owned(_ values: [Float], shape: [Int]) -> TensorView {
        let storage = OwnedBuffer(byteCount: values.count * 4)
        values.withUnsafeBytes { storage.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return TensorView(dtype: .f32, shape: shape, data: UnsafeRawPointer(storage.pointer), owner: storage)
    }
}

/// 64-byte aligned heap memory with a lifetime tied to the object.
public final class OwnedBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutableRawPointer
    public let byteCount: Int
    /// The huge-page region holding the bytes, or nil for ordinary heap memory.
    private let region: HugePageArena.Region?

    /// - hugePages: for data streamed whole on every step (see `HugePageArena`).
    public init(byteCount: Int, hugePages: Bool = false) {
        self.byteCount = byteCount
        if hugePages {
            (pointer, region) = HugePageArena.shared.allocate(byteCount: byteCount)
        } else {
            pointer = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
            region = nil
        }
    }

    deinit { if region == nil { pointer.deallocate() } }
}
