/// Launches of the weight-streaming GEMV in `GEMVKernelSource`: `out[t][n] (+)= x[t][k] · w[n][k]ᵀ`,
/// the same contract as `CUBLAS.linear`, for steps of at most `maxTokens` tokens (default 8). Steps of more than 8 tokens run as several launches of at most 8 tokens, each streaming the
/// weights again: slower than cuBLAS for big trees, but batch-invariant (see `GEMVKernelSource`).
struct GEMVKernel {
    let module: KernelModule
    let type: CUDADataType
    /// Launch configuration: "default" (`gemv_<type>_<tokens>`) or one of `GEMVKernelSource.tuningVariants`.
    let variant: String
    let rowsPerBlock: Int
    /// Kernel name prefix: "gemv" or "gemv_u<U>w<W>".
    let prefix: String
    /// Largest step this kernel takes; larger ones go to cuBLAS.
    let maxTokens: Int

    init(device: CUDADevice, type: CUDADataType, maxTokens: Int? = nil, variant: String = "default") throws {
        guard let plan = Self.plan(variant: variant) else {
            throw CUDAError.unsupported("unknown GEMV variant '\(variant)' (\(Self.variantNames.joined(separator: ", ")))")
        }
        module = try device.compiler().module(named: GEMVKernelSource.moduleName, source: GEMVKernelSource.code)
        self.type = type
        self.maxTokens = max(1, maxTokens ?? GEMVKernelSource.maxTokens)
        self.variant = variant
        rowsPerBlock = plan.rowsPerBlock
        prefix = plan.prefix
    }

    /// Every launch configuration, the default first.
    static var variantNames: [String] { ["default"] + GEMVKernelSource.tuningVariants.map(\.name) }

    /// Kernel name prefix and rows per 256-thread block of a variant; nil for an unknown name.
    static func plan(variant: String) -> (prefix: String, rowsPerBlock: Int)? {
        if variant == "default" { return ("gemv", 8) }
        guard let v = GEMVKernelSource.tuningVariants.first(where: { $0.name == variant }) else { return nil }
        return ("gemv_u\(v.loads)w\(v.warpsPerRow)", 8 / v.warpsPerRow)
    }

    /// Whether this kernel can do the product (few tokens, rows 16-byte aligned).
    func handles(tokens: Int, k: Int) -> Bool {
        tokens <= maxTokens && (k * type.bytes) % 16 == 0
    }

    func linear(x: DevicePointer, w: DevicePointer, out: DevicePointer, tokens: Int, n: Int, k: Int, accumulate: Bool) throws {
        for chunk in Self.chunks(tokens: tokens) {
            let variant = Self.variant(for: chunk.count)
            try module.launch("\(prefix)_\(type.kernelSuffix)_\(variant)", grid: ((n + rowsPerBlock - 1) / rowsPerBlock, 1, 1),
                              block: 256,  // 8 warps: rowsPerBlock rows of 8 / rowsPerBlock warps each
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
