/// Typed launches of the decoder kernels in `LlamaKernelSource` for one storage type.
/// All pointers are device addresses; every launch is queued on the device's stream.
struct LlamaKernels {
    let module: KernelModule
    let type: CUDADataType
    /// Threads per block for the row-wise kernels.
    let threads = 256

    init(device: CUDADevice, type: CUDADataType) throws {
        module = try device.compiler().module(named: LlamaKernelSource.moduleName, source: LlamaKernelSource.code)
        self.type = type
    }

    private func name(_ base: String) -> String { base + "_" + type.kernelSuffix }

    func embed(ids: DevicePointer, table: DevicePointer, out: DevicePointer, tokens: Int, dim: Int) throws {
        try module.launch(name("embed"), grid: (tokens, 1, 1), block: threads, [.pointer(ids), .pointer(table), .pointer(out), .int(dim)])
    }

    /// `rows`: 0 for rows 0..<count, else a device list of the source rows.
    func rmsNorm(x: DevicePointer, rows: DevicePointer, count: Int, weight: DevicePointer, out: DevicePointer, dim: Int, eps: Float) throws {
        guard count > 0 else { return }
        try module.launch(name("rmsnorm"), grid: (count, 1, 1), block: threads,
                          [.pointer(x), .pointer(rows), .pointer(weight), .pointer(out), .int(dim), .float(eps)])
    }

    func ropeAndStore(qkv: DevicePointer, bias: DevicePointer, cos: DevicePointer, sin: DevicePointer, write: DevicePointer,
                      keys: DevicePointer, values: DevicePointer, tokens: Int, heads: Int, kvHeads: Int, headDim: Int) throws {
        try module.launch(name("rope_store"), grid: (tokens, 1, 1), block: 128,
                          [.pointer(qkv), .pointer(bias), .pointer(cos), .pointer(sin), .pointer(write),
                           .pointer(keys), .pointer(values), .int(heads), .int(kvHeads), .int(headDim)])
    }

    /// Whether `attention2` can take a step whose longest visible list is `maxVisible` (its shared memory holds the
    /// scores and the slot indices; 200 KB leaves room under Hopper's 227 KB).
    static func attention2Handles(headDim: Int, maxVisible: Int) -> Bool {
        headDim % 8 == 0 && headDim <= 256 && (headDim + 2 * maxVisible) * 4 <= 200 * 1024
    }

    func attention(qkv: DevicePointer, keys: DevicePointer, values: DevicePointer, slotStart: DevicePointer, slots: DevicePointer,
                   out: DevicePointer, tokens: Int, maxVisible: Int, heads: Int, kvHeads: Int, headDim: Int, scale: Float,
                   version2: Bool = false) throws {
        if version2 && Self.attention2Handles(headDim: headDim, maxVisible: maxVisible) {
            try module.launch(name("attention2"), grid: (tokens, heads, 1), block: 256, sharedBytes: (headDim + 2 * maxVisible) * 4,
                              [.pointer(qkv), .pointer(keys), .pointer(values), .pointer(slotStart), .pointer(slots),
                               .pointer(out), .int(heads), .int(kvHeads), .int(headDim), .float(scale)])
            return
        }
        try module.launch(name("attention"), grid: (tokens, heads, 1), block: 128, sharedBytes: (headDim + maxVisible) * 4,
                          [.pointer(qkv), .pointer(keys), .pointer(values), .pointer(slotStart), .pointer(slots),
                           .pointer(out), .int(heads), .int(kvHeads), .int(headDim), .float(scale)])
    }

    func siluMultiply(gateUp: DevicePointer, out: DevicePointer, tokens: Int, inner: Int) throws {
        let total = tokens * inner
        let blocks = min((total + threads - 1) / threads, 65_536)
        try module.launch(name("silu_mul"), grid: (blocks, 1, 1), block: threads,
                          [.pointer(gateUp), .pointer(out), .int(inner), .int64(Int64(total))])
    }

    /// Copies slot `moves[2m]` to `moves[2m+1]`, in order, in every plane of `cache`.
    func moveSlots(cache: DevicePointer, moves: DevicePointer, count: Int, slots: Int, kvDim: Int, planes: Int) throws {
        guard count > 0 else { return }
        let total = planes * kvDim
        try module.launch(name("kv_move"), grid: ((total + threads - 1) / threads, 1, 1), block: threads,
                          [.pointer(cache), .pointer(moves), .int(count), .int64(Int64(slots)), .int(kvDim), .int(planes)])
    }
}
