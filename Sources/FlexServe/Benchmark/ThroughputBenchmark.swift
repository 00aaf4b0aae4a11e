import Foundation
import FlexServeModels
import FlexServeTensor

/// Prefill and decode speed of one model per weight format, batch 1, reported against the
/// machine's measured ceilings: decode (from a short prompt, as llama-bench's "tg") as weight
/// bytes streamed per second over read bandwidth, prefill as flops per second over the all-core
/// FMA peak; and decode right after the prefill, where the KV cache adds to what a step reads.
public enum ThroughputBenchmark {
    public struct Row: Codable, Sendable {
        public var format: String
        public var activations: ActivationFormat
        public var weightBytes: Int
        public var prefillTokens: Int
        public var prefillTokensPerSecond: Double
        public var prefillGFLOPs: Double
        public var prefillFractionOfFMAPeak: Double
        public var decodeTokensPerSecond: Double
        public var decodeGBs: Double
        public var decodeFractionOfBandwidth: Double
        /// Decoding with a bandwidth probe read interleaved token by token (each step, then a read of as
        /// many bytes): the median over eight segments of the steps' GB/s over the reads' GB/s. On a
        /// shared machine the probe's best pass and the decode's best segment may see different
        /// neighbours (this VM's probe swings between 23 and 59 GB/s); interleaved, both see the same.
        public var decodeFractionOfConcurrentBandwidth: Double
        /// Decoding right after the prefill, at a context of `prefillTokens` and more.
        public var decodeAfterPrefillTokensPerSecond: Double
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

    public static func run(path: String, format: DType?, activations: ActivationFormat = .f32, machine: MachineProbe,
                           prefillTokens: Int = 512, decodeTokens: Int = 64, decodePrompt: Int = 16) throws -> Row {
        let loaded = try ModelLoader.load(path: path, weightFormat: format, activations: activations)
        let model = loaded.model
        let config = model.config
        let (bytes, params, headParams) = streamed(loaded.weights, config: config)
        let capacity = prefillTokens + decodeTokens + 1
        let cache = model.makeCache(capacityTokens: 4 * (capacity + 64))  // four sequences, each rounded up to whole blocks
        func prompt(_ n: Int) -> [Int] { (0..<n).map { ($0 * 7919 + 13) % config.vocabSize } }

        /// Tokens per second of greedy decoding after `logits` (the prompt's), at positions from `start`: the
        /// best of eight equal segments, as the machine probes take their best pass (this machine is shared; a
        /// neighbour's burst should not count against the kernels).
        func decode(sequence: Int, start: Int, after logits: Logits) throws -> Double {
            var next = logits.withRow(0) { Sampler.argmax($0) }
            let segment = max(1, decodeTokens / 8)
            var best = 0.0, t0 = Date()
            for i in 0..<decodeTokens {
                var step = Batch()
                step.appendCausal([next], sequence: sequence, start: start + i, logits: .last)
                next = try model.forward(step, cache: cache).withRow(0) { Sampler.argmax($0) }
                if (i + 1) % segment == 0 {
                    best = max(best, Double(segment) / Date().timeIntervalSince(t0))
                    t0 = Date()
                }
            }
            return best
        }

        /// `decodeFractionOfConcurrentBandwidth`: after each step, the probe reads the step's weight bytes (one
        /// sequential stream and four prefetched streams per task, alternately; the faster counts).
        func interleavedFraction(sequence: Int, start: Int, after logits: Logits, probe: ReadProbe) throws -> Double {
            var next = logits.withRow(0) { Sampler.argmax($0) }
            let segment = max(1, decodeTokens / 8)
            var fractions: [Double] = []
            var stepSeconds = 0.0, readSeconds = [0.0, 0.0], reads = [0, 0]
            for i in 0..<decodeTokens {
                var step = Batch()
                step.appendCausal([next], sequence: sequence, start: start + i, logits: .last)
                let t0 = Date()
                next = try model.forward(step, cache: cache).withRow(0) { Sampler.argmax($0) }
                stepSeconds += Date().timeIntervalSince(t0)
                readSeconds[i % 2] += Double(bytes) / 1e9 / probe.read(bytes: bytes, streams: i % 2 == 0 ? 1 : 4)
                reads[i % 2] += 1
                if (i + 1) % segment == 0 {
                    let bandwidth = (0..<2).map { reads[$0] == 0 ? 0 : Double(reads[$0] * bytes) / readSeconds[$0] }.max()!
                    fractions.append(Double(segment * bytes) / stepSeconds / bandwidth)
                    stepSeconds = 0; readSeconds = [0, 0]; reads = [0, 0]
                }
            }
            return fractions.sorted()[fractions.count / 2]
        }

        /// The short prompt's logits in a fresh `sequence`.
        func shortPrompt(sequence: Int) throws -> Logits {
            cache.release(sequence: sequence)
            try cache.reserve(sequence: sequence, length: decodePrompt + decodeTokens + 1)
            var batch = Batch()
            batch.appendCausal(prompt(decodePrompt), sequence: sequence, start: 0, logits: .last)
            return try model.forward(batch, cache: cache)
        }
        // A warm-up run first, as llama-bench does.
        _ = try decode(sequence: 3, start: decodePrompt, after: try shortPrompt(sequence: 3))
        // Decoding from a short prompt (llama-bench's "tg": the weights dominate what a step reads).
        let decodeRate = try decode(sequence: 2, start: decodePrompt, after: try shortPrompt(sequence: 2))
        let concurrentFraction = try interleavedFraction(sequence: 3, start: decodePrompt, after: try shortPrompt(sequence: 3),
                                                         probe: .shared)

        // Prefill (the better of two runs), then decoding after it (each step also reads the long prompt's KV cache).
        var prefillSeconds = Double.infinity
        var logits: Logits?
        for sequence in 0..<2 {
            try cache.reserve(sequence: sequence, length: capacity)
            var batch = Batch()
            batch.appendCausal(prompt(prefillTokens), sequence: sequence, start: 0, logits: .last)
            let t0 = Date()
            logits = try model.forward(batch, cache: cache)
            prefillSeconds = min(prefillSeconds, Date().timeIntervalSince(t0))
        }
        let longDecodeRate = try decode(sequence: 1, start: prefillTokens, after: logits!)

        // 2 flops per weight per token for the projections (the vocabulary head runs for the last
        // token only); attention adds ~4·layers·hidden·position.
        let attentionFlops = 4.0 * Double(config.numLayers * config.numHeads * config.headDim) * Double(prefillTokens) * Double(prefillTokens) / 2
        let prefillFlops = 2 * Double(params - headParams) * Double(prefillTokens) + 2 * Double(headParams) + attentionFlops
        return Row(format: format?.rawValue ?? "as stored", activations: activations, weightBytes: bytes, prefillTokens: prefillTokens,
                   prefillTokensPerSecond: Double(prefillTokens) / prefillSeconds,
                   prefillGFLOPs: prefillFlops / prefillSeconds / 1e9,
                   prefillFractionOfFMAPeak: prefillFlops / prefillSeconds / 1e9 / machine.fmaGFLOPsAllCores,
                   decodeTokensPerSecond: decodeRate, decodeGBs: Double(bytes) * decodeRate / 1e9,
                   decodeFractionOfBandwidth: Double(bytes) * decodeRate / 1e9 / machine.readBandwidthGBs,
                   decodeFractionOfConcurrentBandwidth: concurrentFraction,
                   decodeAfterPrefillTokensPerSecond: longDecodeRate)
    }
}
