import FlexServeCUDA
import FlexServeModels

/// Where a model runs: the CPU backend, or one NVIDIA GPU with weights stored in the given type.
public enum ComputeDevice: Sendable, Equatable, CustomStringConvertible {
    case cpu
    case cuda(CUDADataType)

    /// `device` is "cpu" or "cuda" ("gpu" too); `dataType` (fp16 by default) applies to cuda.
    public init(device: String, dataType: String? = nil) throws {
        switch device.lowercased() {
        case "cpu":
            self = .cpu
        case "cuda", "gpu", "cuda:0":
            let name = dataType ?? "fp16"
            guard let type = CUDADataType(name: name) else {
                throw GenerationError.invalidSetting("--data-type \(name): expected fp16, bf16 or fp32")
            }
            self = .cuda(type)
        default:
            throw GenerationError.invalidSetting("--device \(device): expected cpu or cuda")
        }
    }

    public var description: String {
        switch self {
        case .cpu: return "cpu"
        case .cuda(let type): return "cuda (\(type.rawValue))"
        }
    }

    /// The model to serve from what the loader opened: the CPU model as is, or its GPU counterpart.
    func place(_ loaded: ModelLoader.Loaded, weightFormat: WeightFormat?) throws -> any CausalLM {
        switch self {
        case .cpu:
            return loaded.model
        case .cuda(let type):
            if let weightFormat {
                throw CUDAError.unsupported("weight format \(weightFormat.rawValue) (int8/int4 quantization) is not implemented on the GPU yet")
            }
            return try CUDALlama(config: loaded.model.config, weights: loaded.weights, dataType: type)
        }
    }
}
