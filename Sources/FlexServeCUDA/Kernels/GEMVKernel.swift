/// Launches of the weight-streaming GEMV in `GEMVKernelSource`: `out[t][n] (+)= x[t][k] · w[n][k]ᵀ`,
/// the same contract as `CUBLAS.linear`, for steps of at most `GEMVKernelSource.maxTokens` tokens.
struct GEMVKernel {
    let module: KernelModule
    let type: CUDADataType
    let rowsPerBlock = 8

    init(device: CUDADevice, type: CUDADataType) throws {
        module = try device.compiler().module(named: GEMVKernelSource.moduleName, source: GEMVKernelSource.code)
        self.type = type
    }

    /// Whether this kernel can do the product (few tokens, rows 16-byte aligned).
    func handles(tokens: Int, k: Int) -> Bool {
        tokens <= GEMVKernelSource.maxTokens && (k * type.bytes) % 16 == 0
    }

    func linear(x: DevicePointer, w: DevicePointer, out: DevicePointer, tokens: Int, n: Int, k: Int, accumulate: Bool) throws {
        try module.launch("gemv_" + type.kernelSuffix, grid: ((n + rowsPerBlock - 1) / rowsPerBlock, 1, 1), block: 32 * rowsPerBlock,
                          [.pointer(w), .pointer(x), .pointer(out), .int(n), .int(k), .int(tokens), .int(accumulate ? 1 : 0)])
    }
}
