/// Launches of the weight-streaming GEMV in `GEMVKernelSource`: `out[t][n] (+)= x[t][k] · w[n][k]ᵀ`,
/// the same contract as `CUBLAS.linear`, for steps of at most `maxTokens` tokens (default 8). Steps of more than 8 tokens run as several launches of at most 8 tokens, each streaming the
/// weights again: slower than cuBLAS for big trees, but batch-invariant (see `GEMVKernelSource`).
struct GEMVKernel {
    let module: KernelModule
    let type: CUDADataType
    let rowsPerBlock = 8
    /// Largest step this kernel takes; larger ones go to cuBLAS.
    let maxTokens: Int

    init(device: CUDADevice, type: CUDADataType, maxTokens: Int? = nil) throws {
        module = try device.compiler().module(named: GEMVKernelSource.moduleName, source: GEMVKernelSource.code)
        self.type = type
        self.maxTokens = max(1, maxTokens ?? GEMVKernelSource.maxTokens)
    }

    /// Whether this kernel can do the product (few tokens, rows 16-byte aligned).
    func handles(tokens: Int, k: Int) -> Bool {
        tokens <= maxTokens && (k * type.bytes) % 16 == 0
    }

    func linear(x: DevicePointer, w: DevicePointer, out: DevicePointer, tokens: Int, n: Int, k: Int, accumulate: Bool) throws {
        for chunk in Self.chunks(tokens: tokens) {
            let variant = Self.variant(for: chunk.count)
            try module.launch("gemv_\(type.kernelSuffix)_\(variant)", grid: ((n + rowsPerBlock - 1) / rowsPerBlock, 1, 1),
                              block: 32 * rowsPerBlock,
                              [.pointer(w), .pointer(x + DevicePointer(chunk.first * k * type.bytes)),
                               .pointer(out + DevicePointer(chunk.first * n * 4)),
                               .int(n), .int(k), .int(chunk.count), .int(accumulate ? 1 : 0)])
        }
    }

    /// Consecutive token ranges of at most `GEMVKernelSource.maxTokens`.
    static func chunks(tokens: Int) -> [(first: Int, count: Int)] {
        stride(from: 0, to: tokens, by: GEMVKernelSource.maxTokens).map { ($0, min(GEMVKernelSource.maxTokens, tokens - $0)) }
    }

    /// The smallest kernel variant that holds `tokens` accumulators.
    static func variant(for tokens: Int) -> Int {
        GEMVKernelSource.tokenVariants.first { $0 >= tokens } ?? GEMVKernelSource.maxTokens
    }
}
