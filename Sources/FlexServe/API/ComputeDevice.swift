import FlexServeCUDA
import FlexServeModels

/// Where a model runs: the CPU backend, or one NVIDIA GPU with weights stored in the given type.
public enum ComputeDevice: Sendable, Equatable, CustomStringConvertible {
    case cpu
    case cuda(CUDADataType)
    /// The GPU with the decoder layers kept in pinned host memory and streamed to it every step (`--offload`):
    /// for models larger than the GPU's memory, at the host-to-device bandwidth.
    case cudaOffload(CUDADataType)

    /// This placement with the layers streamed from host memory (`--offload`); the CPU has no such mode.
    public func offloaded() throws -> ComputeDevice {
        switch self {
        case .cpu:
            throw GenerationError.invalidSetting("--offload applies to the GPU backend only (on the CPU the weights are already in host memory)")
        case .cuda(let type), .cudaOffload(let type):
            return .cudaOffload(type)
        }
    }

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
        case .cudaOffload(let type): return "cuda (\(type.rawValue), layers streamed from host memory)"
        }
    }

    /// The model to serve from what the loader opened: the CPU model as is, or its GPU counterpart. On the GPU,
    /// int8/int4 group formats (`--8bit-quantization` / `--4bit-quantization`) stay packed and are dequantized in
    /// the kernels; other formats (ggml blocks, floats) are converted to the data type. `offload` streams the layers from pinned host
    /// memory every step (`.cudaOffload`).
    func place(_ loaded: ModelLoader.Loaded, weightFormat: WeightFormat?) throws -> any CausalLM {
        switch self {
        case .cpu:
            return loaded.model
        case .cuda(let type), .cudaOffload(let type):
            // `loaded.weights` already holds the converted matrices (`weightFormat` applied by the loader).
            return try CUDALlama(config: loaded.model.config, weights: loaded.weights, dataType: type, offload: self == .cudaOffload(type))
        }
    }
}
