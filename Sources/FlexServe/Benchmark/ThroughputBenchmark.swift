import Foundation
import FlexServeModels
import FlexServeTensor

/// Prefill and decode speed of one model per weight format, batch 1, reported against the
/// machine's measured ceilings: decode as weight bytes streamed per second over read bandwidth,
/// prefill as flops per second over the all-core FMA peak.
public enum ThroughputBenchmark {
    public struct Row: Codable, Sendable {
        public var format: String
        public var weightBytes: Int
        public var prefillTokens: Int
        public var prefillTokensPerSecond: Double
        public var prefillGFLOPs: Double
        public var prefillFractionOfFMAPeak: Double
        public var decodeTokensPerSecond: Double
        public var decodeGBs: Double
        public var decodeFractionOfBandwidth: Double
    }

    /// Bytes of the matrices a decode step streams (every projection and the vocabulary head).
    static func streamed(_ store: any WeightStore, config: ModelConfig) -> (bytes: Int, parameters: Int, headParameters: Int) {
        var names = ["lm_head.weight"]
        if !store.contains("lm_head.weight") { names = ["model.embed_tokens.weight"] }
        for l in 0..<config.numLayers {
            for p in ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"] {
                names.append("model.layers.\(l).\(p).weight")
            }
        }
        let tensors = names.compactMap { try? store.tensor($0) }
        let head = (try? store.tensor(names[0]))?.count ?? 0
        return (tensors.reduce(0) { $0 + $1.byteCount }, tensors.reduce(0) { $0 + $1.count }, head)
    }

    public static func run(path: String, format: DType?, machine: MachineProbe, prefillTokens: Int = 512, decodeTokens: Int = 64) throws -> Row {
        let loaded = try ModelLoader.load(path: path, weightFormat: format)
        let model = loaded.model
        let config = model.config
        let (bytes, params, headParams) = streamed(loaded.weights, config: config)
        let cache = model.makeCache(capacityTokens: prefillTokens + decodeTokens + 1)
        try cache.reserve(sequence: 0, length: prefillTokens + decodeTokens + 1)
        let prompt = (0..<prefillTokens).map { ($0 * 7919 + 13) % config.vocabSize }

        var batch = Batch()
        batch.appendCausal(prompt, sequence: 0, start: 0, logits: .last)
        let t0 = Date()
        var logits = try model.forward(batch, cache: cache)
        let prefillSeconds = Date().timeIntervalSince(t0)

        var next = logits.withRow(0) { Sampler.argmax($0) }
        let t1 = Date()
        for i in 0..<decodeTokens {
            var step = Batch()
            step.appendCausal([next], sequence: 0, start: prefillTokens + i, logits: .last)
            logits = try model.forward(step, cache: cache)
            next = logits.withRow(0) { Sampler.argmax($0) }
        }
        let decodeSeconds = Date().timeIntervalSince(t1)
        // 2 flops per weight per token for the projections (the vocabulary head runs for the last
        // token only); attention adds ~4·layers·hidden·position.
        let attentionFlops = 4.0 * Double(config.numLayers * config.numHeads * config.headDim) * Double(prefillTokens) * Double(prefillTokens) / 2
        let prefillFlops = 2 * Double(params - headParams) * Double(prefillTokens) + 2 * Double(headParams) + attentionFlops
        let decodeRate = Double(decodeTokens) / decodeSeconds
        return Row(format: format?.rawValue ?? "as stored", weightBytes: bytes, prefillTokens: prefillTokens,
                   prefillTokensPerSecond: Double(prefillTokens) / prefillSeconds,
                   prefillGFLOPs: prefillFlops / prefillSeconds / 1e9,
                   prefillFractionOfFMAPeak: prefillFlops / prefillSeconds / 1e9 / machine.fmaGFLOPsAllCores,
                   decodeTokensPerSecond: decodeRate, decodeGBs: Double(bytes) * decodeRate / 1e9,
                   decodeFractionOfBandwidth: Double(bytes) * decodeRate / 1e9 / machine.readBandwidthGBs)
    }
}
