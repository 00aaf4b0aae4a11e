import FlexServeModels
import FlexServeTensor

/// A small random LLaMA (grouped-query attention, 2 layers) run on the CPU and on the GPU in fp32 through the
/// steps the engine takes: a continuous batch of two prefills, a token-tree verification, committing accepted
/// nodes with `PagedKVCache.move`, and decode steps that read the moved entries (four of the same shape, so a
/// captured CUDA graph is replayed over changing inputs). Used by the tests and by `flexserve gpu-check selftest`.
public enum CUDASelfTest {
    public struct Result: Sendable {
        /// Largest |GPU − CPU| logit per step: prefill, tree, decodes after move.
        public var maxAbsError: [Float]
        /// Graph captures and replays the GPU model made (0 unless `options.graphs`).
        public var graphCaptures = 0, graphReplays = 0
        /// Why graph capture was given up (the steps then ran directly).
        public var graphFailure: String?
        /// Whether the last decode step's first token, run again alone, got bit-identical logits (batch invariance:
        /// expected with the GEMV, whose per-token sums do not depend on the step's size; not with cuBLAS).
        public var batchInvariant = false
        /// The quantized GEMV's launch variant (nil: dense weights); `s1` sums a single token in its own order, so a
        /// quantized model is batch-invariant only with the others.
        public var quantizedVariant: String?
    }

    /// - weightFormat: projection matrices in this format on both sides (`.int8Group` / `.int4Group`: the GPU keeps
    ///   them packed; the prefill then takes the dequantize + cuBLAS path, the other steps the quantized GEMV).
    /// - offload: the GPU streams its layers from pinned host memory every step.
    public static func run(device: CUDADevice? = nil, dataType: CUDADataType = .fp32,
                           options: CUDALlama.Options = .environment, weightFormat: DType? = nil,
                           offload: Bool = false) throws -> Result {
        let config = ModelConfig(architecture: "LlamaForCausalLM", vocabSize: 64, hiddenSize: 64, intermediateSize: 128,
                                 numLayers: 2, numHeads: 4, numKVHeads: 2)
        let random = RandomWeights(config: config, seed: 7)
        let weights: any WeightStore = weightFormat.map { ConvertingStore(random, to: $0) } ?? random
        let cpu = try LlamaModel(config: config, weights: weights)
        let gpu = try CUDALlama(config: config, weights: weights, dataType: dataType, device: device, options: options,
                                offload: offload)
        let cpuCache = cpu.makeCache(capacityTokens: 96), gpuCache = gpu.makeCache(capacityTokens: 96)
        var errors: [Float] = []
        func both(_ batch: Batch) throws {
            let a = try cpu.forward(batch, cache: cpuCache), b = try gpu.forward(batch, cache: gpuCache)
            var e: Float = 0
            for r in 0..<a.rows { for (x, y) in zip(a.rowArray(r), b.rowArray(r)) { e = max(e, abs(x - y)) } }
            errors.append(e)
        }
        for cache in [cpuCache, gpuCache] {
            try cache.reserve(sequence: 0, length: 40)
            try cache.reserve(sequence: 1, length: 40)
        }
        // Two sequences prefilled in one batch.
        var prefill = Batch()
        prefill.appendCausal([1, 5, 9, 13, 17, 21, 25, 29, 33, 37], sequence: 0, start: 0, logits: .all)
        prefill.appendCausal([2, 4, 6, 8, 10, 12], sequence: 1, start: 0, logits: .last)
        try both(prefill)
        // A tree of 5 nodes after sequence 0's 10 tokens: parents [-, 0, 0, 1, 2].
        let parents = [-1, 0, 0, 1, 2]
        var tree = Batch()
        for i in 0..<5 {
            var chain = [10 + i], depth = 0, node = i
            while parents[node] >= 0 { node = parents[node]; chain.insert(10 + node, at: 0); depth += 1 }
            tree.tokens.append(Batch.Token(id: 40 + i, position: 10 + depth, sequence: 0, cacheIndex: 10 + i,
                                           visiblePrefix: 10, visibleExtra: chain, wantsLogits: true))
        }
        try both(tree)
        // Accept the path 0 → 1 → 3: entry 13 moves to 12; then decode at 13 reads it.
        for cache in [cpuCache, gpuCache] {
            cache.move(sequence: 0, from: 11, to: 11)
            cache.move(sequence: 0, from: 13, to: 12)
        }
        var decode = Batch()
        for step in 0..<4 {
            decode = Batch()
            decode.appendCausal([50 - step], sequence: 0, start: 13 + step, logits: .last)
            decode.appendCausal([14 + step], sequence: 1, start: 6 + step, logits: .last)
            try both(decode)
        }
        // The last step again on the GPU (it rewrites the same K/V), then its first token alone.
        let pair = try gpu.forward(decode, cache: gpuCache).rowArray(0)
        var alone = Batch()
        alone.appendCausal([50 - 3], sequence: 0, start: 13 + 3, logits: .last)
        let single = try gpu.forward(alone, cache: gpuCache).rowArray(0)
        let invariant = pair.count == single.count && zip(pair, single).allSatisfy { $0.bitPattern == $1.bitPattern }
        var result = Result(maxAbsError: errors, graphCaptures: gpu.graphCaptures, graphReplays: gpu.graphReplays, graphFailure: gpu.graphFailure)
        result.batchInvariant = invariant
        result.quantizedVariant = gpu.quantizedVariant
        return result
    }
}

/// Deterministic random LLaMA weights held in memory (f32), for tests without a checkpoint.
public struct RandomWeights: WeightStore {
    public let source = "random weights"
    let tensors: [String: TensorView]

    public init(config c: ModelConfig, seed: UInt64) {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func values(_ n: Int, scale: Float, offset: Float = 0) -> [Float] {
            (0..<n).map { _ in
                state ^= state << 13; state ^= state >> 7; state ^= state << 17
                return offset + scale * (Float(state % 20_001) / 10_000 - 1)
            }
        }
        let q = c.numHeads * c.headDim, kv = c.numKVHeads * c.headDim, h = c.hiddenSize, i = c.intermediateSize
        var t: [String: TensorView] = [:]
        func add(_ name: String, _ shape: [Int], scale: Float = 0.2, offset: Float = 0) {
            t[name] = .owned(values(shape.reduce(1, *), scale: scale, offset: offset), shape: shape)
        }
        add("model.embed_tokens.weight", [c.vocabSize, h], scale: 1)
        for l in 0..<c.numLayers {
            let p = "model.layers.\(l)."
            add(p + "input_layernorm.weight", [h], scale: 0.1, offset: 1)
            add(p + "self_attn.q_proj.weight", [q, h])
            add(p + "self_attn.k_proj.weight", [kv, h])
            add(p + "self_attn.v_proj.weight", [kv, h])
            add(p + "self_attn.o_proj.weight", [h, q])
            add(p + "post_attention_layernorm.weight", [h], scale: 0.1, offset: 1)
            add(p + "mlp.gate_proj.weight", [i, h])
            add(p + "mlp.up_proj.weight", [i, h])
            add(p + "mlp.down_proj.weight", [h, i])
        }
        add("model.norm.weight", [h], scale: 0.1, offset: 1)
        add("lm_head.weight", [c.vocabSize, h])
        tensors = t
    }

    public func tensor(_ name: String) throws -> TensorView {
        guard let t = tensors[name] else { throw WeightFileError(file: source, tensor: name, problem: "missing") }
        return t
    }

    public func contains(_ name: String) -> Bool { tensors[name] != nil }
}
