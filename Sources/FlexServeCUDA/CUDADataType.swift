/// How weights, KV cache and GEMM inputs are stored on the GPU. Arithmetic is fp32 in every mode
/// (fp32 GEMM accumulation, fp32 residual stream); fp32 storage exists for exact comparison with the CPU.
public enum CUDADataType: String, CaseIterable, Sendable {
    case fp32, fp16, bf16

    /// Accepts fp32/f32/float32, fp16/f16/float16/half, bf16/bfloat16.
    public init?(name: String) {
        switch name.lowercased() {
        case "fp32", "f32", "float32", "float": self = .fp32
        case "fp16", "f16", "float16", "half": self = .fp16
        case "bf16", "bfloat16": self = .bf16
        default: return nil
        }
    }

    public var bytes: Int { self == .fp32 ? 4 : 2 }

    /// The suffix of this type's kernel instantiations.
    var kernelSuffix: String {
        switch self {
        case .fp32: return "f32"
        case .fp16: return "f16"
        case .bf16: return "bf16"
        }
    }

    var blasType: CUBLAS.ElementType {
        switch self {
        case .fp32: return .f32
        case .fp16: return .f16
        case .bf16: return .bf16
        }
    }
}
