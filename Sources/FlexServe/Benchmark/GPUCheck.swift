import Foundation
import FlexServeCUDA
import FlexServeModels

/// The GPU backend's end-to-end checks (run by `flexserve gpu-check` on a GPU machine): greedy decoding on the
/// GPU against the CPU backend, and batch-1 speed against the card's copy-bandwidth roofline.
public enum GPUCheck {
    public struct Correctness: Codable, Sendable {
        public var dataType: String
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

    /// Greedy `newTokens` per prompt on the CPU (weights dequantized to fp32) and on the GPU in `dataType`.
    public static func correctness(model path: String, prompts: [String], newTokens: Int, dataTypes: [CUDADataType],
                                   log: (String) -> Void = { _ in }) throws -> [Correctness] {
        let resolved = try ModelLocator.resolve(path)
        let cpu = try LLM(resolved, weightFormat: .f32)
        let ids = prompts.map { cpu.tokenizer.encode($0) }
        // The CPU reference runs once and is compared against every data type.
        let loaded = try ModelLoader.load(path: resolved)
        return try dataTypes.map { type in
            let gpu = try CUDALlama(config: loaded.model.config, weights: loaded.weights, dataType: type)
            var results: [GreedyComparison] = []
            for (i, prompt) in ids.enumerated() {
                let r = try GreedyComparison.run(reference: cpu.model, candidate: gpu, prompt: prompt, newTokens: newTokens)
                log("\(type.rawValue) prompt \(i): \(r.identicalPrefix)/\(newTokens) identical, max |Δlogit| \(r.maxAbsLogitError)")
                results.append(r)
            }
            return Correctness(dataType: type.rawValue, newTokens: newTokens, prompts: prompts.count,
                               promptsFullyIdentical: results.filter(\.allIdentical).count,
                               minIdenticalPrefix: results.map(\.identicalPrefix).min() ?? 0,
                               maxAbsLogitError: results.map(\.maxAbsLogitError).max() ?? 0,
                               maxAbsLogit: results.map(\.maxAbsLogit).max() ?? 0, perPrompt: results)
        }
    }

    public struct Speed: Codable, Sendable {
        public var device: String
        public var dataType: String
        /// Matrix products of few-token steps: "cublas", or "gemv" (FLEXSERVE_CUDA_GEMV=1).
        public var smallStepKernel: String
        /// `CUDALlama.Options.summary`: matrix-product path and whether steps replay CUDA graphs.
        public var execution: String?
        public var graphCaptures: Int?
        public var graphReplays: Int?
        public var graphFailure: String?
        public var weightBytes: Int
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
    static func uploadMeasuringBandwidth(model path: String, dataType: CUDADataType, log: (String) -> Void) throws
        -> (device: CUDADevice, copyBytesPerSecond: Double, model: CUDALlama) {
        let device = try CUDADevice.shared()
        let bandwidth = try DecodeSpeed.copyBandwidth(device: device)
        log(String(format: "%@: copy bandwidth %.0f GB/s", device.name, bandwidth / 1e9))
        let loaded = try ModelLoader.load(path: try ModelLocator.resolve(path))
        let start = Date()
        let gpu = try CUDALlama(config: loaded.model.config, weights: loaded.weights, dataType: dataType, device: device)
        log(String(format: "uploaded %.2f GB of weights in %.1f s", Double(gpu.weightBytes) / 1e9, Date().timeIntervalSince(start)))
        return (device, bandwidth, gpu)
    }

    public static func speed(model path: String, dataType: CUDADataType, promptTokens: Int, decodeSteps: Int,
                             treeSizes: [Int], log: (String) -> Void = { _ in }) throws -> Speed {
        let (device, bandwidth, gpu) = try uploadMeasuringBandwidth(model: path, dataType: dataType, log: log)
        let decode = try DecodeSpeed.decode(gpu, promptTokens: promptTokens, steps: decodeSteps)
        let roofline = bandwidth / Double(gpu.weightBytes)
        log(String(format: "decode %.1f steps/s (roofline %.1f)", decode.stepsPerSecond, roofline))
        let verify = try DecodeSpeed.verify(gpu, prefix: promptTokens, sizes: treeSizes)
        return Speed(device: device.name, dataType: dataType.rawValue, smallStepKernel: gpu.smallStepKernel,
                     execution: gpu.options.summary, graphCaptures: gpu.graphCaptures, graphReplays: gpu.graphReplays,
                     graphFailure: gpu.graphFailure, weightBytes: gpu.weightBytes,
                     copyBytesPerSecond: bandwidth, rooflineStepsPerSecond: roofline, decode: decode,
                     decodeStepsPerSecond: decode.stepsPerSecond, fractionOfRoofline: decode.stepsPerSecond / roofline,
                     verify: verify)
    }
}
