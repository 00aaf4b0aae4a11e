import Foundation
import FlexServeCUDA
import FlexServeModels

extension GPUCheck {
    /// `gpu-check profile`: where a batch-1 decode step's time goes (see `DecodeProfile`), for cuBLAS and every
    /// GEMV launch configuration, on a model folder (a LLaMA-7B shape in bench/gpu_profile.sh).
    public static func profile(model path: String, dataType: CUDADataType, context: Int, variants: [String]?, steps: Int,
                               log: (String) -> Void = { _ in }) throws -> DecodeProfile.Report {
        let device = try CUDADevice.shared()
        let bandwidth = try DecodeSpeed.copyBandwidth(device: device)
        log(String(format: "%@: copy bandwidth %.0f GB/s", device.name, bandwidth / 1e9))
        let loaded = try ModelLoader.load(path: try ModelLocator.resolve(path))
        let start = Date()
        let gpu = try CUDALlama(config: loaded.model.config, weights: loaded.weights, dataType: dataType, device: device)
        log(String(format: "uploaded %.2f GB of weights in %.1f s", Double(gpu.weightBytes) / 1e9, Date().timeIntervalSince(start)))
        return try DecodeProfile.run(gpu, copyBytesPerSecond: bandwidth, context: context, variants: variants, steps: steps, log: log)
    }
}
