import FlexServeCUDA

extension GPUCheck {
    /// `gpu-check profile`: where a batch-1 decode step's time goes (see `DecodeProfile`), for cuBLAS and every
    /// GEMV launch configuration, on a model folder (a LLaMA-7B shape in bench/gpu_profile.sh).
    public static func profile(model path: String, dataType: CUDADataType, context: Int, variants: [String]?, steps: Int,
                               log: (String) -> Void = { _ in }) throws -> DecodeProfile.Report {
        let (_, bandwidth, gpu) = try uploadMeasuringBandwidth(model: path, dataType: dataType, log: log)
        return try DecodeProfile.run(gpu, copyBytesPerSecond: bandwidth, context: context, variants: variants, steps: steps, log: log)
    }
}
