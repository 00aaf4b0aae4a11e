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
        public var kvCacheType: KVCacheType
        public var weightBytes: Int
        public var prefillTokens: Int
        public var prefillTokensPerSecond: Double
        public var prefillGFLOPs: Double
        public var prefillFractionOfFMAPeak: Double
        /// Prefills alternated with all-core FMA passes of about the same length (`MachineProbe.fmaRate`: a pass, a
        /// prefill, a pass, ...): the median over the prefills of their GFLOP/s over the mean of the passes just before
        /// and just after. This VM's speed moves from second to second (one core's FMA rate 95–155 GFLOP/s), so
        /// `prefillFractionOfFMAPeak` sets one prefill's average rate against the best few milliseconds of the run's
        /// probes; here both are averages over like windows, side by side (as the concurrent bandwidth for decode). Passes
        /// that lose a vCPU while the prefills beside them do not make it overstate, so every pass is kept below.
        public var prefillFractionOfConcurrentFMAPeak: Double
        /// GFLOP/s of each of those prefills and of the FMA passes around them (`prefillRuns + 1`).
        public var prefillRunGFLOPs: [Double]
        public var prefillRunProbeGFLOPs: [Double]
        public var decodeTokensPerSecond: Double
        public var decodeGBs: Double
        public var decodeFractionOfBandwidth: Double
        /// Decoding with a bandwidth probe read interleaved token by token (each step, then a read of as
        /// many bytes): the median over eight segments of the steps' GB/s over the reads' GB/s. On a
        /// shared machine the probe's best pass and the decode's best segment may see different
        /// neighbours (this VM's probe swings between 23 and 59 GB/s); interleaved, both see the same.
        public var decodeFractionOfConcurrentBandwidth: Double
        /// The same steps against reads of their weights in the step's own phases (`ReadProbe.read(phases:)`,
        /// interleaved likewise): what the step's dependent phases leave of the bandwidth before any arithmetic.
        /// nil where the step's matrices are not LLaMA's.
        public var decodeFractionOfPhasedReads: Double?
        /// Median `ThreadPlacement` handoff over the interleaved segments: ~50 ns with the threads in one core
        /// complex, ~160–210 ns across two.
        public var threadHandoffNanoseconds: Double?
        public var interleavedSegments: [InterleavedSegment]
        /// Decoding right after the prefill, at a context of `prefillTokens` and more.
        public var decodeAfterPrefillTokensPerSecond: Double
    }

    /// One segment of the interleaved decode: GB/s of the steps, of the plain reads and of the phased reads
    /// between them, and the threads' handoff just before it.
    public struct InterleavedSegment: Codable, Sendable {
        public var decodeGBs: Double
        public var readGBs: Double
        public var phasedReadGBs: Double?
        public var handoffNanoseconds: Double?
    }

    /// Bytes a LLaMA decode step streams in each of its phases (Q/K/V, output, gate/up and down of every layer, then
    /// the head), or nil where the matrices have other names.
    static func phaseBytes(_ store: any WeightStore, config: ModelConfig) -> [Int]? {
        func bytes(_ names: [String]) -> Int? {
            let tensors = names.compactMap { try? store.tensor($0) }
            return tensors.count == names.count ? tensors.reduce(0) { $0 + $1.byteCount } : nil
        }
        var phases: [Int] = []
        for l in 0..<config.numLayers {
            for group in [["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"], ["self_attn.o_proj"],
                          ["mlp.gate_proj", "mlp.up_proj"], ["mlp.down_proj"]] {
                guard let b = bytes(group.map { "model.layers.\(l).\($0).weight" }) else { return nil }
                phases.append(b)
            }
        }
        guard let head = bytes(["lm_head.weight"]) ?? bytes(["model.embed_tokens.weight"]) else { return nil }
        return phases + [head]
    }

    /// Bytes of the matrices a decode step streams (every projection and the vocabulary head), their parameters and the
    /// head's.
    static func streamed(_ model: any CausalLM) throws -> (bytes: Int, parameters: Int, headParameters: Int) {
        guard let matrices = model as? ModelMatrices else { throw ModelError("the benchmark needs a CPU model") }
        let all = matrices.projectionMatrices + [matrices.vocabularyHead]
        return (all.reduce(0) { $0 + $1.byteCount }, all.reduce(0) { $0 + $1.count }, matrices.vocabularyHead.count)
    }

    public static func run(path: String, format: DType?, activations: ActivationFormat = .f32, kvCacheType: KVCacheType = .f32, machine: MachineProbe,
                           prefillTokens: Int = 512, prefillRuns: Int = 5, decodeTokens: Int = 64, decodePrompt: Int = 16) throws -> Row {
        let loaded = try ModelLoader.load(path: path, weightFormat: format, activations: activations)
        let model = loaded.model
        let config = model.config
        let (bytes, params, headParams) = try streamed(model)
        // (nil, too, where the probe's buffer cannot hold a step's weights)
        let phases = phaseBytes(loaded.weights, config: config).flatMap { $0.reduce(0, +) <= ReadProbe.shared.capacityBytes ? $0 : nil }
        let capacity = prefillTokens + decodeTokens + 1
        let cache = model.makeCache(capacityTokens: 4 * (capacity + 64), type: kvCacheType)  // four sequences, each rounded up to whole blocks
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

        /// The interleaved decode: after each step one read of the step's weight bytes, in turn each `ReadProbe.Pattern`
        /// (`InterleavedReads`: the fastest counts) and, every fourth step where known, the step's own phases.
        func interleaved(sequence: Int, start: Int, after logits: Logits, probe: ReadProbe) throws -> [InterleavedSegment] {
            var next = logits.withRow(0) { Sampler.argmax($0) }
            let segment = max(4, decodeTokens / 8)
            var segments: [InterleavedSegment] = []
            var stepSeconds = 0.0, reads = InterleavedReads(probe: probe, bytes: bytes), phasedSeconds = 0.0, phasedReads = 0
            var handoff = ThreadPlacement.handoffNanoseconds(pool: probe.pool)
            for i in 0..<decodeTokens {
                var step = Batch()
                step.appendCausal([next], sequence: sequence, start: start + i, logits: .last)
                let t0 = Date()
                next = try model.forward(step, cache: cache).withRow(0) { Sampler.argmax($0) }
                stepSeconds += Date().timeIntervalSince(t0)
                if let phases, i % 4 == 3 {
                    phasedSeconds += Double(bytes) / 1e9 / probe.read(phases: phases)
                    phasedReads += 1
                } else {
                    reads.read()
                }
                if (i + 1) % segment == 0 {
                    segments.append(InterleavedSegment(decodeGBs: Double(segment * bytes) / stepSeconds / 1e9, readGBs: reads.gbs!,
                                                       phasedReadGBs: phasedReads == 0 ? nil : Double(phasedReads * bytes) / phasedSeconds / 1e9,
                                                       handoffNanoseconds: handoff))
                    (stepSeconds, reads, phasedSeconds, phasedReads) = (0, InterleavedReads(probe: probe, bytes: bytes), 0, 0)
                    handoff = ThreadPlacement.handoffNanoseconds(pool: probe.pool)
                }
            }
            return segments
        }
        func median(_ values: [Double]) -> Double? { values.isEmpty ? nil : values.sorted()[values.count / 2] }

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
        let segments = try interleaved(sequence: 3, start: decodePrompt, after: try shortPrompt(sequence: 3), probe: .shared)

        // 2 flops per weight per token for the projections (the vocabulary head runs for the last
        // token only); attention adds ~4·layers·hidden·position.
        let attentionFlops = 4.0 * Double(config.numLayers * config.numHeads * config.headDim) * Double(prefillTokens) * Double(prefillTokens) / 2
        let prefillFlops = 2 * Double(params - headParams) * Double(prefillTokens) + 2 * Double(headParams) + attentionFlops

        // Prefill (the best of `prefillRuns`, each between two FMA passes), then decoding after it (each step also
        // reads the long prompt's KV cache).
        var prefillSeconds = Double.infinity, runGFLOPs: [Double] = []
        var probeGFLOPs = [MachineProbe.fmaRate(pool: .shared)]
        var logits: Logits?
        for run in 0..<prefillRuns {
            let sequence = run % 2
            cache.release(sequence: sequence)
            try cache.reserve(sequence: sequence, length: capacity)
            var batch = Batch()
            batch.appendCausal(prompt(prefillTokens), sequence: sequence, start: 0, logits: .last)
            let t0 = Date()
            logits = try model.forward(batch, cache: cache)
            let seconds = Date().timeIntervalSince(t0)
            prefillSeconds = min(prefillSeconds, seconds)
            runGFLOPs.append(prefillFlops / seconds / 1e9)
            probeGFLOPs.append(MachineProbe.fmaRate(pool: .shared))
        }
        let concurrent = median(runGFLOPs.indices.map { runGFLOPs[$0] / ((probeGFLOPs[$0] + probeGFLOPs[$0 + 1]) / 2) })!
        let longDecodeRate = try decode(sequence: (prefillRuns - 1) % 2, start: prefillTokens, after: logits!)

        return Row(format: format?.rawValue ?? "as stored", activations: activations, kvCacheType: kvCacheType, weightBytes: bytes, prefillTokens: prefillTokens,
                   prefillTokensPerSecond: Double(prefillTokens) / prefillSeconds,
                   prefillGFLOPs: prefillFlops / prefillSeconds / 1e9,
                   prefillFractionOfFMAPeak: prefillFlops / prefillSeconds / 1e9 / machine.fmaGFLOPsAllCores,
                   prefillFractionOfConcurrentFMAPeak: concurrent, prefillRunGFLOPs: runGFLOPs, prefillRunProbeGFLOPs: probeGFLOPs,
                   decodeTokensPerSecond: decodeRate, decodeGBs: Double(bytes) * decodeRate / 1e9,
                   decodeFractionOfBandwidth: Double(bytes) * decodeRate / 1e9 / machine.readBandwidthGBs,
                   decodeFractionOfConcurrentBandwidth: median(segments.map { $0.decodeGBs / $0.readGBs })!,
                   decodeFractionOfPhasedReads: median(segments.compactMap { s in s.phasedReadGBs.map { s.decodeGBs / $0 } }),
                   threadHandoffNanoseconds: median(segments.compactMap(\.handoffNanoseconds)), interleavedSegments: segments,
                   decodeAfterPrefillTokensPerSecond: longDecodeRate)
    }
}
