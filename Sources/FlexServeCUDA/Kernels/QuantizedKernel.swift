import Foundation

/// Launches of `QuantizedKernelSource` for one activation type: the in-kernel-dequantizing GEMV (steps of at
/// most `maxTokens` tokens) and the dequantization of a matrix into a dense scratch (larger steps, for cuBLAS).
struct QuantizedKernel {
    let module: KernelModule
    let type: CUDADataType
    let maxTokens: Int
    /// Launch configuration: "w<warps per row>u<loads in flight>", one of `variants`.
    let variant: String
    let rowsPerBlock: Int

    /// Launch configurations compiled in `QuantizedKernelSource`, the default first.
    /// `s1`: single-token steps through `qgemv_s1` (x staged in shared memory as fp32, the minimum factored out of
    /// the inner loop), larger steps (or rows too long to stage) as `w1u4`.
    static let variants = ["s1", "w1u4", "w2u4", "w4u2", "w8u2"]
    public static var variantNames: [String] { variants }

    /// `variant` nil: `FLEXSERVE_CUDA_QGEMV`, else the default.
    init(device: CUDADevice, type: CUDADataType, maxTokens: Int, variant: String? = nil) throws {
        let chosen = variant ?? ProcessInfo.processInfo.environment["FLEXSERVE_CUDA_QGEMV"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.variants[0]
        let warps = chosen == "s1" ? 1 : Int(chosen.dropFirst().prefix { $0.isNumber })
        guard Self.variants.contains(chosen), let warps else {
            throw CUDAError.unsupported("unknown quantized GEMV variant '\(chosen)' (\(Self.variants.joined(separator: ", ")))")
        }
        module = try device.compiler().module(named: QuantizedKernelSource.moduleName, source: QuantizedKernelSource.code)
        self.type = type
        self.maxTokens = max(1, maxTokens)
        self.variant = chosen
        rowsPerBlock = 8 / warps
    }

    /// `out[t][n] (+)= x[t][k] · dequant(w)[n][k]ᵀ` for a quantized matrix at `base`.
    func linear(matrix m: DeviceMatrix, base: DevicePointer, x: DevicePointer, out: DevicePointer, tokens: Int,
                accumulate: Bool) throws {
        guard let bits = m.format.bits else { throw CUDAError.unsupported("QuantizedKernel given a dense matrix") }
        let staging = (m.cols + m.cols * bits / 128) * 4
        if variant == "s1", tokens == 1, staging <= 48 * 1024 {
            try module.launch("qgemv_s1_\(bits)_\(type.kernelSuffix)", grid: ((m.rows + 7) / 8, 1, 1), block: 256, sharedBytes: staging,
                              [.pointer(base + DevicePointer(m.offset)), .pointer(base + DevicePointer(m.scalesOffset)), .pointer(x),
                               .pointer(out), .int(m.rows), .int(m.cols), .int(accumulate ? 1 : 0)])
            return
        }
        let launchVariant = variant == "s1" ? "w1u4" : variant
        for chunk in GEMVKernel.chunks(tokens: tokens) {
            let tokenVariant = GEMVKernel.variant(for: chunk.count)
            try module.launch("qgemv_\(launchVariant)_\(bits)_\(type.kernelSuffix)_\(tokenVariant)",
                              grid: ((m.rows + rowsPerBlock - 1) / rowsPerBlock, 1, 1), block: 256,
                              [.pointer(base + DevicePointer(m.offset)), .pointer(base + DevicePointer(m.scalesOffset)),
                               .pointer(x + DevicePointer(chunk.first * m.cols * type.bytes)),
                               .pointer(out + DevicePointer(chunk.first * m.rows * 4)),
                               .int(m.rows), .int(m.cols), .int(chunk.count), .int(accumulate ? 1 : 0)])
        }
    }

    /// The dense matrix (rows × cols in `type`) into `out`.
    func dequantize(matrix m: DeviceMatrix, base: DevicePointer, out: DevicePointer) throws {
        guard let bits = m.format.bits else { throw CUDAError.unsupported("QuantizedKernel given a dense matrix") }
        let chunks = m.rows * m.cols * bits / 128
        try module.launch("dequant_\(bits)_\(type.kernelSuffix)", grid: ((chunks + 255) / 256, 1, 1), block: 256,
                          [.pointer(base + DevicePointer(m.offset)), .pointer(base + DevicePointer(m.scalesOffset)),
                           .pointer(out), .int64(Int64(chunks))])
    }
}
