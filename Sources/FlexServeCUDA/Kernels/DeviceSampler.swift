/// How to pick one row's token on the GPU (`SamplerKernelSource`): greedy, or sampled with temperature, top-k
/// and top-p and a uniform number in [0, 1) drawn on the host.
public struct RowSampling: Sendable, Equatable {
    /// Logits row (of the step's rows that asked for logits).
    public var row: Int
    public var greedy: Bool
    public var temperature: Float
    /// 0: no top-k.
    public var topK: Int
    public var topP: Float
    public var uniform: Float

    public init(row: Int, greedy: Bool, temperature: Float = 1, topK: Int = 0, topP: Float = 1, uniform: Float = 0) {
        self.row = row
        self.greedy = greedy
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.uniform = uniform
    }
}

/// Launches of `sample_rows`: one block per requested row, the token ids back in one small copy.
public struct DeviceSampler {
    let module: KernelModule
    let device: CUDADevice

    public init(device: CUDADevice) throws {
        self.device = device
        module = try device.compiler().module(named: SamplerKernelSource.moduleName, source: SamplerKernelSource.code)
    }

    /// Samples `requests` from the fp32 logits rows at `logits` (`vocabSize` wide); `scratch` holds at least
    /// `scratchBytes(count:)`. Returns the token ids (waits for the GPU).
    public func sample(logits: DevicePointer, vocabSize: Int, requests: [RowSampling], scratch: DevicePointer) throws -> [Int] {
        guard !requests.isEmpty else { return [] }
        guard vocabSize < 1 << 24 else { throw CUDAError.unsupported("device sampling needs a vocabulary under 2^24 tokens") }
        var params: [Int32] = []
        params.reserveCapacity(6 * requests.count)
        for r in requests {
            guard r.greedy || r.temperature > 0 else {
                throw CUDAError.unsupported("sampling with temperature \(r.temperature): use greedy decoding")
            }
            params += [Int32(r.row), Int32(r.topK), r.greedy ? 1 : 0, Int32(bitPattern: r.uniform.bitPattern),
                       Int32(bitPattern: (1 / r.temperature).bitPattern), Int32(bitPattern: r.topP.bitPattern)]
        }
        let out = scratch + DevicePointer(params.count * 4)
        try params.withUnsafeBytes { try device.copy(toDevice: scratch, from: $0.baseAddress!, bytes: $0.count) }
        try module.launch("sample_rows", grid: (requests.count, 1, 1), block: 1024,
                          [.pointer(logits), .pointer(scratch), .pointer(out), .int(vocabSize)])
        var tokens = [Int32](repeating: -1, count: requests.count)
        try tokens.withUnsafeMutableBytes { try device.copy(toHost: $0.baseAddress!, from: out, bytes: $0.count) }
        return tokens.map(Int.init)
    }

    /// Device bytes `sample` needs for `count` rows.
    public static func scratchBytes(count: Int) -> Int { count * 7 * 4 }
}
