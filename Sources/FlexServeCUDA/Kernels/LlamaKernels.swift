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

    /// `rmsnorm2`: 16-byte loads, block size from `dim` alone (at most 1024 threads); needs dim % 4 == 0.
    func rmsNorm2(x: DevicePointer, rows: DevicePointer, count: Int, weight: DevicePointer, out: DevicePointer, dim: Int, eps: Float) throws {
        guard count > 0 else { return }
        guard dim % 4 == 0 else {
            return try rmsNorm(x: x, rows: rows, count: count, weight: weight, out: out, dim: dim, eps: eps)
        }
        let block = min(1024, (dim / 4 + 31) / 32 * 32)
        try module.launch(name("rmsnorm2"), grid: (count, 1, 1), block: block,
                          [.pointer(x), .pointer(rows), .pointer(weight), .pointer(out), .int(dim), .float(eps)])
    }

    /// `rope_store2`: one thread per rotated pair or value element, across the grid.
    func ropeAndStore2(qkv: DevicePointer, bias: DevicePointer, cos: DevicePointer, sin: DevicePointer, write: DevicePointer,
                       keys: DevicePointer, values: DevicePointer, tokens: Int, heads: Int, kvHeads: Int, headDim: Int) throws {
        let work = (heads + kvHeads) * (headDim / 2) + kvHeads * headDim
        try module.launch(name("rope_store2"), grid: ((work + 255) / 256, tokens, 1), block: 256,
                          [.pointer(qkv), .pointer(bias), .pointer(cos), .pointer(sin), .pointer(write),
                           .pointer(keys), .pointer(values), .int(heads), .int(kvHeads), .int(headDim)])
    }

    /// Whether `attention3` can take a head size for this storage type: a key row must be a power-of-two number
    /// (at most 32) of 16-byte loads.
    static func attention3Handles(headDim: Int, type: CUDADataType) -> Bool {
        let bytes = headDim * type.bytes
        guard bytes % 16 == 0 else { return false }
        let r = bytes / 16
        return r >= 1 && r <= 32 && r & (r - 1) == 0
    }

    /// The chunk length `attention3_chunk` gives a list of `n` slots, and the number of chunks (at most 32).
    static func attention3Chunk(visible n: Int, minChunk: Int) -> (length: Int, count: Int) {
        let per = max(1, (n + 31) / 32)
        let c = (per + minChunk - 1) / minChunk * minChunk
        return (c, (max(n, 1) + c - 1) / c)
    }

    /// Floats of `attention3`'s partial buffer for `tokens` tokens.
    static func attention3PartFloats(tokens: Int, heads: Int, headDim: Int) -> Int { tokens * heads * 32 * (headDim + 2) }

    /// Split attention: chunks of each token's list in parallel (`attention3_part`), then their fixed-order combination.
    func attention3(qkv: DevicePointer, keys: DevicePointer, values: DevicePointer, slotStart: DevicePointer, slots: DevicePointer,
                    part: DevicePointer, out: DevicePointer, tokens: Int, maxVisible: Int, heads: Int, kvHeads: Int, headDim: Int,
                    scale: Float, minChunk: Int) throws {
        let bound = Self.attention3Chunk(visible: maxVisible, minChunk: minChunk)
        let z = min(32, (maxVisible + minChunk - 1) / minChunk)
        try module.launch(name("attention3_part"), grid: (tokens, heads, z), block: 128, sharedBytes: (headDim + 2 * bound.length) * 4,
                          [.pointer(qkv), .pointer(keys), .pointer(values), .pointer(slotStart), .pointer(slots),
                           .pointer(part), .int(heads), .int(kvHeads), .int(headDim), .float(scale), .int(minChunk)])
        try module.launch(name("attention3_combine"), grid: (tokens, heads, 1), block: 128,
                          [.pointer(slotStart), .pointer(part), .pointer(out), .int(heads), .int(headDim), .int(minChunk), .int(z)])
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
