import Foundation
import FlexServeCUDA
import FlexServeModels
import FlexServeTensor

/// The GPU backend's end-to-end checks (run by `flexserve gpu-check` on a GPU machine): greedy decoding on the
/// GPU against the CPU backend, and batch-1 speed against the card's copy-bandwidth roofline.
public enum GPUCheck {
    public struct Correctness: Codable, Sendable {
        public var dataType: String
        /// Projection matrices on both sides: "f32" (the CPU reference in fp32, GPU in `dataType`), or a format
        /// both run with (int8Group, int4Group, bf16...: the same quantized values on CPU and GPU).
        public var weightFormat: String?
        /// The CPU reference: "fp32" (fp32 activations, K/V and embedding) or "storage" (the CPU rounding weights,
        /// activations and K/V to `dataType` at the GPU's store points: `LlamaModel.storageRounding`). nil: fp32.
        public var cpuReference: String?
        public var newTokens: Int
        public var prompts: Int
        /// Prompts whose every generated token matches the CPU.
        public var promptsFullyIdentical: Int
        /// The shortest run of leading identical tokens over the prompts.
        public var minIdenticalPrefix: Int
        public var maxAbsLogitError: Float
        public var maxAbsLogit: Float
        public var perPrompt: [GreedyComparison]
    }

    /// Which CPU computation the GPU is compared against.
    public enum CPUReference: String, CaseIterable, Sendable {
        /// The CPU backend as it serves: fp32 activations, K/V and embedding; projection matrices in fp32 (or `weightFormat`).
        case fp32
        /// The CPU emulating the GPU's storage: every matrix in the GPU's type (int8/int4 groups kept), values rounded
        /// to it where the GPU stores them (`LlamaModel.storageRounding`); for fp32 the same as `fp32`.
        case storage
    }

    /// Greedy `newTokens` per prompt on the CPU (weights dequantized to fp32) and on the GPU in `dataType`.
    /// With `weightFormat` (e.g. `.int8Group`) the CPU runs its projection matrices in that format and the GPU gets
    /// the same converted weights (quantized formats stay packed on the GPU, float ones become `dataType`).
    /// Each data type is compared against each of `references`; a reference decodes each prompt once.
    public static func correctness(model path: String, prompts: [String], newTokens: Int, dataTypes: [CUDADataType],
                                   weightFormat: WeightFormat? = nil, references: [CPUReference] = [.fp32],
                                   log: (String) -> Void = { _ in }) throws -> [Correctness] {
        let resolved = try ModelLocator.resolve(path)
        let cpu = try LLM(resolved, weightFormat: weightFormat ?? .f32)
        let ids = prompts.map { cpu.tokenizer.encode($0) }
        // The CPU reference runs once and is compared against every data type.
        let loaded = try ModelLoader.load(path: resolved, weightFormat: weightFormat)
        var decoded: [String: [(tokens: [Int], logits: [[Float]])]] = [:]
        func referenceRuns(_ reference: CPUReference, _ type: CUDADataType) throws -> [(tokens: [Int], logits: [[Float]])] {
            let rounding: DType? = reference == .storage ? type.storageDType : nil
            let key = rounding.map { "storage-\($0.rawValue)" } ?? "fp32"
            if let done = decoded[key] { return done }
            let model: CausalLM
            if let rounding {
                model = try LlamaModel(config: loaded.model.config, weights: loaded.weights, storageRounding: rounding)
            } else {
                model = cpu.model
            }
            let runs = try ids.map { try GreedyComparison.greedy(model, prompt: $0, newTokens: newTokens) }
            decoded[key] = runs
            return runs
        }
        var reports: [Correctness] = []
        for type in dataTypes {
            let gpu = try CUDALlama(config: loaded.model.config, weights: loaded.weights, dataType: type)
            log("\(type.rawValue): GPU projection matrices \(gpu.weightFormat), \(gpu.weightBytes) bytes of weights, \(gpu.options.summary)")
            for reference in references {
                let refs = try referenceRuns(reference, type)
                var results: [GreedyComparison] = []
                for (i, prompt) in ids.enumerated() {
                    let r = try GreedyComparison.run(reference: refs[i], candidate: gpu, prompt: prompt, newTokens: newTokens)
                    log("\(type.rawValue) vs CPU \(reference.rawValue) prompt \(i): \(r.identicalPrefix)/\(newTokens) identical, max |Δlogit| \(r.maxAbsLogitError)")
                    results.append(r)
                }
                reports.append(Correctness(dataType: type.rawValue, weightFormat: (weightFormat ?? .f32).rawValue,
                                           cpuReference: reference.rawValue, newTokens: newTokens, prompts: prompts.count,
                                           promptsFullyIdentical: results.filter(\.allIdentical).count,
                                           minIdenticalPrefix: results.map(\.identicalPrefix).min() ?? 0,
                                           maxAbsLogitError: results.map(\.maxAbsLogitError).max() ?? 0,
                                           maxAbsLogit: results.map(\.maxAbsLogit).max() ?? 0, perPrompt: results))
            }
        }
        return reports
    }

    public struct Speed: Codable, Sendable {
        public var device: String
        public var dataType: String
        /// Matrix products of few-token steps: "gemv" (the default), or "cublas" (FLEXSERVE_CUDA_GEMV=0).
        public var smallStepKernel: String
        /// `CUDALlama.Options.summary`: matrix-product path and whether steps replay CUDA graphs.
        public var execution: String?
        public var graphCaptures: Int?
        public var graphReplays: Int?
        public var graphFailure: String?
        public var weightBytes: Int
        /// How the projection matrices are stored on the GPU: dense, int8Group, int4Group.
        public var weightFormat: String?
        /// Weight bytes a batch-1 decode step reads (every layer, the final norm and the head; not the embedding
        /// table, of which it reads one row): the roofline of quantized formats uses these.
        public var decodeReadBytes: Int?
        public var rooflineOfReadBytesStepsPerSecond: Double?
        public var fractionOfReadRoofline: Double?
        /// --offload: bytes copied from pinned host memory per step, the measured host-to-device bandwidth, the
        /// steps/s that bandwidth allows (bandwidth / streamed bytes) and the measured decode's fraction of it.
        public var offloadStreamedBytes: Int?
        public var hostToDeviceBytesPerSecond: Double?
        public var hostToDeviceRooflineStepsPerSecond: Double?
        public var fractionOfHostToDeviceRoofline: Double?
        /// Device-to-device copy bandwidth, bytes read plus written per second.
        public var copyBytesPerSecond: Double
        /// Steps per second if every step only streamed the weights at the copy bandwidth.
        public var rooflineStepsPerSecond: Double
        public var decode: DecodeSpeed.Decode
        public var decodeStepsPerSecond: Double
        public var fractionOfRoofline: Double
        public var verify: [DecodeSpeed.Verify]
    }

    /// The GPU's copy bandwidth (the roofline's numerator) and the model uploaded to it, both logged.
    static func uploadMeasuringBandwidth(model path: String, dataType: CUDADataType, weightFormat: WeightFormat? = nil,
                                         offload: Bool = false, log: (String) -> Void) throws
        -> (device: CUDADevice, copyBytesPerSecond: Double, model: CUDALlama) {
        let device = try CUDADevice.shared()
        let bandwidth = try DecodeSpeed.copyBandwidth(device: device)
        log(String(format: "%@: copy bandwidth %.0f GB/s", device.name, bandwidth / 1e9))
        // The CPU model the loader builds maps the file; only the GPU's copy is converted (once).
        let loaded = try ModelLoader.load(path: try ModelLocator.resolve(path))
        let weights: any WeightStore = weightFormat.map { ConvertingStore(loaded.weights, to: $0) } ?? loaded.weights
        let start = Date()
        let gpu = try CUDALlama(config: loaded.model.config, weights: weights, dataType: dataType, device: device, offload: offload)
        log(String(format: "uploaded %.2f GB of weights in %.1f s", Double(gpu.weightBytes) / 1e9, Date().timeIntervalSince(start)))
        return (device, bandwidth, gpu)
    }

    public static func speed(model path: String, dataType: CUDADataType, promptTokens: Int, decodeSteps: Int,
                             treeSizes: [Int], weightFormat: WeightFormat? = nil, offload: Bool = false,
                             log: (String) -> Void = { _ in }) throws -> Speed {
        let (device, bandwidth, gpu) = try uploadMeasuringBandwidth(model: path, dataType: dataType, weightFormat: weightFormat,
                                                                    offload: offload, log: log)
        // Measured in the same run as the decode it bounds.
        let h2d = offload ? try device.pinnedHostToDeviceBandwidth() : nil
        if let h2d { log(String(format: "host-to-device bandwidth (pinned) %.1f GB/s", h2d / 1e9)) }
        let decode = try DecodeSpeed.decode(gpu, promptTokens: promptTokens, steps: decodeSteps)
        let roofline = bandwidth / Double(gpu.weightBytes)
        let readRoofline = bandwidth / Double(gpu.decodeReadBytes)
        let h2dRoofline = h2d.map { $0 / Double(gpu.streamedBytesPerStep) }
        log(String(format: "decode %.1f steps/s (roofline %.1f, of read bytes %.1f)", decode.stepsPerSecond, roofline, readRoofline)
            + (h2dRoofline.map { String(format: ", host-to-device roofline %.2f", $0) } ?? ""))
        let verify = try DecodeSpeed.verify(gpu, prefix: promptTokens, sizes: treeSizes)
        return Speed(device: device.name, dataType: dataType.rawValue, smallStepKernel: gpu.smallStepKernel,
                     execution: gpu.options.summary + (gpu.quantizedVariant.map { "+qgemv[\($0)]" } ?? ""), graphCaptures: gpu.graphCaptures, graphReplays: gpu.graphReplays,
                     graphFailure: gpu.graphFailure, weightBytes: gpu.weightBytes,
                     weightFormat: gpu.weightFormat, decodeReadBytes: gpu.decodeReadBytes,
                     rooflineOfReadBytesStepsPerSecond: readRoofline, fractionOfReadRoofline: decode.stepsPerSecond / readRoofline,
                     offloadStreamedBytes: offload ? gpu.streamedBytesPerStep : nil, hostToDeviceBytesPerSecond: h2d,
                     hostToDeviceRooflineStepsPerSecond: h2dRoofline, fractionOfHostToDeviceRoofline: h2dRoofline.map { decode.stepsPerSecond / $0 },
                     copyBytesPerSecond: bandwidth, rooflineStepsPerSecond: roofline, decode: decode,
                     decodeStepsPerSecond: decode.stepsPerSecond, fractionOfRoofline: decode.stepsPerSecond / roofline,
                     verify: verify)
    }
}

extension CUDADataType {
    /// The CPU storage type of this GPU type, for storage emulation.
    var storageDType: DType {
        switch self {
        case .fp32: return .f32
        case .fp16: return .f16
        case .bf16: return .bf16
        }
    }
}
