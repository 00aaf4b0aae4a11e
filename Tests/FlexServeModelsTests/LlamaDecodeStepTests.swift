import XCTest
import FlexServeTensor
@testable import FlexServeModels
import FlexServeTestSupport

/// `LlamaDecodeStep` (one token as one parallel region) against the general path: the logits of a token
/// decoded alone must equal, bit for bit, its logits at the end of a batch (the multi-token kernels), over
/// head layouts that take each of the step's phases (one head set per KV head, and two; Q/K/V biases;
/// Mistral's sliding window, shorter than the prompt), an MLP whose blocks split unevenly, a vocabulary that
/// is not a whole number of 16-row groups, fp32 rows, and every block format with `q8` and with fp32 activations (integer
/// blocks in `InterleavedRows`, and also as the file's rows, as for a GPU); with the KV cache in fp32 and in fp16.
final class LlamaDecodeStepTests: XCTestCase {
    /// Random weights by name, in memory.
    struct RandomWeights: WeightStore {
        var source: String { "random" }
        let tensors: [String: TensorView]
        func contains(_ name: String) -> Bool { tensors[name] != nil }
        func tensor(_ name: String) throws -> TensorView {
            guard let t = tensors[name] else { throw WeightFileError(file: source, tensor: name, problem: "missing") }
            return t
        }

        init(config c: ModelConfig, biases: Bool, seed: UInt64) {
            var state = seed
            func next() -> Float {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return Float(Int64(bitPattern: state) >> 40) / Float(1 << 23)
            }
            var t: [String: TensorView] = [:]
            func add(_ name: String, _ shape: [Int], scale: Float, offset: Float = 0) {
                t[name] = .owned((0..<shape.reduce(1, *)).map { _ in offset + scale * next() }, shape: shape)
            }
            let qDim = c.numHeads * c.headDim, kvDim = c.numKVHeads * c.headDim
            add("model.embed_tokens.weight", [c.vocabSize, c.hiddenSize], scale: 1)
            for l in 0..<c.numLayers {
                let p = "model.layers.\(l)."
                add(p + "input_layernorm.weight", [c.hiddenSize], scale: 0.2, offset: 1)
                add(p + "post_attention_layernorm.weight", [c.hiddenSize], scale: 0.2, offset: 1)
                add(p + "self_attn.q_proj.weight", [qDim, c.hiddenSize], scale: 0.3)
                add(p + "self_attn.k_proj.weight", [kvDim, c.hiddenSize], scale: 0.3)
                add(p + "self_attn.v_proj.weight", [kvDim, c.hiddenSize], scale: 0.3)
                add(p + "self_attn.o_proj.weight", [c.hiddenSize, qDim], scale: 0.3)
                add(p + "mlp.gate_proj.weight", [c.intermediateSize, c.hiddenSize], scale: 0.3)
                add(p + "mlp.up_proj.weight", [c.intermediateSize, c.hiddenSize], scale: 0.3)
                add(p + "mlp.down_proj.weight", [c.hiddenSize, c.intermediateSize], scale: 0.3)
                if biases {
                    add(p + "self_attn.q_proj.bias", [qDim], scale: 0.5)
                    add(p + "self_attn.k_proj.bias", [kvDim], scale: 0.5)
                    add(p + "self_attn.v_proj.bias", [kvDim], scale: 0.5)
                }
            }
            add("model.norm.weight", [c.hiddenSize], scale: 0.2, offset: 1)
            add("lm_head.weight", [c.vocabSize, c.hiddenSize], scale: 0.3)
            tensors = t
        }
    }

    func testDecodeStepEqualsTheBatchedPath() throws {
        let shapes: [(heads: Int, kvHeads: Int, headDim: Int, biases: Bool, window: Int?)] = [
            (8, 2, 16, false, nil), (6, 2, 16, true, nil), (4, 4, 16, false, nil), (9, 3, 32, false, nil), (4, 2, 16, false, 5)]
        for (i, shape) in shapes.enumerated() {
            var config = ModelConfig(architecture: "LlamaForCausalLM", vocabSize: 101, hiddenSize: 128, intermediateSize: 96,
                                     numLayers: 2, numHeads: shape.heads, numKVHeads: shape.kvHeads, headDim: shape.headDim)
            config.slidingWindow = shape.window
            let weights = RandomWeights(config: config, biases: shape.biases, seed: UInt64(i + 1))
            let runs = [DType.q8_0, .q4_0, .q4_1, .int8Group, .int4Group].map { ($0, ActivationFormat.q8, KVCacheType.f32, true) }
                + [DType.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .int8Group, .int4Group].map { ($0, ActivationFormat.f32, KVCacheType.f32, true) }
                + [DType.q8_0, .q4_1, .int4Group].map { ($0, ActivationFormat.f32, KVCacheType.f32, false) }
                + [(DType.q4_1, ActivationFormat.q8, KVCacheType.f16, true), (.f16, .f32, .f16, true)]
            for (format, activations, cacheType, interleaving) in runs {
                let store = ConvertingStore(weights, to: format, activations: activations, interleaving: interleaving)
                let model = try ModelLoader.build(config: config, weights: store) as! LlamaModel
                let what = "\(shape.heads)/\(shape.kvHeads) heads, window \(shape.window ?? 0), \(format)\(interleaving ? "" : " as rows"), "
                    + "\(activations) activations, \(cacheType) KV cache"
                if shape.kvHeads >= ThreadPool.shared.threadCount { XCTAssertNotNil(model.decodeStep, what) }
                try assertDecodedEqualsBatched(model, prompt: (0..<9).map { ($0 * 37 + 5) % config.vocabSize }, steps: 5, cacheType: cacheType, what)
            }
        }
    }

    /// The same with the step on pools of one and of three threads (more than this machine's two cores): a thread then
    /// often runs several tasks of a phase, as when the other has not started, and its projections take every slot.
    func testDecodeStepOnPoolsOfOtherSizes() throws {
        let config = ModelConfig(architecture: "LlamaForCausalLM", vocabSize: 101, hiddenSize: 128, intermediateSize: 160,
                                 numLayers: 2, numHeads: 9, numKVHeads: 3, headDim: 32)
        let weights = RandomWeights(config: config, biases: false, seed: 11)
        for threads in [1, 3] {
            for (format, activations) in [(DType.q4_1, ActivationFormat.q8), (.f16, .f32)] {
                let model = try ModelLoader.build(config: config, weights: ConvertingStore(weights, to: format, activations: activations)) as! LlamaModel
                model.decodeStep = try XCTUnwrap(LlamaDecodeStep(model: model, pool: ThreadPool(threads: threads)))
                try assertDecodedEqualsBatched(model, prompt: (0..<9).map { ($0 * 31 + 2) % config.vocabSize }, steps: 6,
                                               "\(threads) threads, \(format), \(activations) activations")
            }
        }
    }

    /// Over `Attention.splitMinimumKeys` keys, three head sets on two threads: the threads share the third (its scores
    /// by parts of the keys, then each thread's columns), with sets of three heads and of two, both kinds of
    /// activations and both caches; the same logits as the batched path, bit for bit.
    func testLongContextsShareTheLastHeadSet() throws {
        for (i, shape) in [(heads: 9, kvHeads: 3, headDim: 32), (heads: 6, kvHeads: 3, headDim: 64)].enumerated() {
            let config = ModelConfig(architecture: "LlamaForCausalLM", vocabSize: 101, hiddenSize: 96, intermediateSize: 64,
                                     numLayers: 2, numHeads: shape.heads, numKVHeads: shape.kvHeads, headDim: shape.headDim)
            let weights = RandomWeights(config: config, biases: false, seed: UInt64(21 + i))
            for (format, activations, cacheType) in [(DType.q4_1, ActivationFormat.q8, KVCacheType.f32), (.q8_0, .q8, .f16),
                                                     (.int4Group, .f32, .f32)] {
                let model = try ModelLoader.build(config: config, weights: ConvertingStore(weights, to: format, activations: activations)) as! LlamaModel
                let step = try XCTUnwrap(LlamaDecodeStep(model: model, pool: ThreadPool(threads: 2)))
                XCTAssertTrue(step.sharesLastHeadSet)
                model.decodeStep = step
                let prompt = (0..<(Attention.splitMinimumKeys + 7)).map { ($0 * 29 + 3) % config.vocabSize }
                try assertDecodedEqualsBatched(model, prompt: prompt, steps: 3, cacheType: cacheType,
                                               "\(shape.heads)/\(shape.kvHeads) heads, \(format), \(activations) activations, \(cacheType) KV cache")
            }
        }
    }

    /// The step hands its logits buffer out again only once no caller holds it: logits kept across later steps keep
    /// their values.
    func testKeptLogitsSurviveLaterSteps() throws {
        let config = ModelConfig(architecture: "LlamaForCausalLM", vocabSize: 101, hiddenSize: 128, intermediateSize: 96,
                                 numLayers: 2, numHeads: 6, numKVHeads: 2, headDim: 16)
        let store = ConvertingStore(RandomWeights(config: config, biases: false, seed: 5), to: .q4_1, activations: .q8)
        let model = try ModelLoader.build(config: config, weights: store) as! LlamaModel
        model.decodeStep = try XCTUnwrap(LlamaDecodeStep(model: model, pool: ThreadPool(threads: 2)))
        let cache = model.makeCache(capacityTokens: 32)
        try cache.reserve(sequence: 0, length: 8)
        var kept: [(Logits, [Float])] = []
        for position in 0..<8 {
            var step = Batch()
            step.appendCausal([(position * 13 + 3) % config.vocabSize], sequence: 0, start: position, logits: .last)
            let logits = try model.forward(step, cache: cache)
            if position % 2 == 0 { kept.append((logits, logits.rowArray(0))) }
        }
        for (logits, values) in kept { XCTAssertEqual(logits.rowArray(0), values) }
        XCTAssertNotEqual(kept[0].1, kept[1].1)
    }

    /// The same on SmolLM2 with both kinds of activations, weights as stored and in int4 groups.
    func testSmolLM2DecodeStepEqualsTheBatchedPath() throws {
        let prompt = ((try Fixtures.json("smollm2/greedy.json")["items"] as! [[String: Any]])[0]["prompt_ids"] as! [Int])
        for (format, activations) in [nil, DType.int4Group].flatMap({ f in ActivationFormat.allCases.map { (f, $0) } }) {
            let model = try ModelLoader.load(path: try Fixtures.smolLM2, weightFormat: format, activations: activations).model as! LlamaModel
            let what = "\(format?.rawValue ?? "stored"), \(activations) activations"
            if ThreadPool.shared.threadCount <= 3 { XCTAssertNotNil(model.decodeStep, "\(what): the decode step should apply") }
            try assertDecodedEqualsBatched(model, prompt: prompt, steps: 4, what)
        }
    }

    /// A recorded step (`flexserve bench phases`) gives the same logits, and its timeline holds every phase that has tasks
    /// (RoPE has none where each head set rotates its own head), in order: no task of a phase starts before every task of
    /// the phase before it has ended.
    func testRecordedPhasesFollowOneAnother() throws {
        let config = ModelConfig(architecture: "LlamaForCausalLM", vocabSize: 101, hiddenSize: 128, intermediateSize: 96,
                                 numLayers: 2, numHeads: 6, numKVHeads: 2, headDim: 16)
        let store = ConvertingStore(RandomWeights(config: config, biases: false, seed: 7), to: .q4_1, activations: .q8, interleaving: true)
        let model = try ModelLoader.build(config: config, weights: store) as! LlamaModel
        let names = try XCTUnwrap(model.decodePhases)
        let phases = config.numLayers * names.perLayer.count + names.final.count
        let pool = ThreadPool.shared
        let timeline = PhaseTimeline(phases: phases, threads: pool.threadCount)
        func step(recording: Bool) throws -> [Float] {
            let cache = model.makeCache(capacityTokens: 32)
            try cache.reserve(sequence: 0, length: 4)
            var prompt = Batch()
            prompt.appendCausal([3, 14, 15], sequence: 0, start: 0, logits: .none)
            _ = try model.forward(prompt, cache: cache)
            model.recordDecodePhases(into: recording ? timeline : nil)
            defer { model.recordDecodePhases(into: nil) }
            var batch = Batch()
            batch.appendCausal([92], sequence: 0, start: 3, logits: .last)
            return try model.forward(batch, cache: cache).withRow(0) { Array($0) }
        }
        let plain = try step(recording: false)
        XCTAssertEqual(try step(recording: true), plain)
        var previousEnd: UInt64 = 0
        for p in 0..<phases {
            let spans = (0..<pool.threadCount).compactMap { timeline.span(phase: p, thread: $0) }
            let name = p < config.numLayers * names.perLayer.count ? names.perLayer[p % names.perLayer.count] : names.final[p - config.numLayers * names.perLayer.count]
            // One head set per KV head: no RoPE phase. The sets' outputs (3 heads of 16) are not whole blocks of 32: a
            // quantize phase.
            if name == "RoPE" { XCTAssertTrue(spans.isEmpty, "one head set per KV head: no RoPE phase"); continue }
            XCTAssertFalse(spans.isEmpty, "phase \(p) (\(name)) not recorded")
            for s in spans {
                XCTAssertLessThanOrEqual(s.start, s.end, "phase \(p) (\(name))")
                XCTAssertGreaterThanOrEqual(s.start, previousEnd, "phase \(p) (\(name)) began before the phase before it ended")
            }
            previousEnd = spans.map(\.end).max() ?? previousEnd
        }
    }

    /// Each cut of the step (`flexserve bench bound`) runs and changes the logits, and the whole step after them gives the
    /// same logits bit for bit; rows decoded as they stream have no reads without their arithmetic, and the model says so.
    func testCutStepsRunAndTheWholeStepComesBack() throws {
        let config = ModelConfig(architecture: "LlamaForCausalLM", vocabSize: 101, hiddenSize: 128, intermediateSize: 96,
                                 numLayers: 2, numHeads: 6, numKVHeads: 2, headDim: 16)
        let weights = RandomWeights(config: config, biases: false, seed: 13)
        let model = try ModelLoader.build(config: config, weights: ConvertingStore(weights, to: .q4_1, activations: .q8, interleaving: true)) as! LlamaModel
        func step() throws -> [Float] {
            let cache = model.makeCache(capacityTokens: 32)
            try cache.reserve(sequence: 0, length: 4)
            var prompt = Batch()
            prompt.appendCausal([3, 14, 15], sequence: 0, start: 0, logits: .none)
            _ = try model.forward(prompt, cache: cache)
            var batch = Batch()
            batch.appendCausal([92], sequence: 0, start: 3, logits: .last)
            return try model.forward(batch, cache: cache).withRow(0) { Array($0) }
        }
        let whole = try step()
        for parts in DecodeStepParts.cuts where parts != .whole {
            XCTAssertTrue(model.runDecodeSteps(parts), "\(parts)")
            XCTAssertNotEqual(try step(), whole, "\(parts): the cut should change the logits")
        }
        XCTAssertTrue(model.runDecodeSteps(.whole))
        XCTAssertEqual(try step(), whole)

        let rows = try ModelLoader.build(config: config, weights: ConvertingStore(weights, to: .q4_1, activations: .f32, interleaving: false)) as! LlamaModel
        XCTAssertFalse(rows.runDecodeSteps(DecodeStepParts(arithmetic: false)))
        XCTAssertTrue(rows.runDecodeSteps(DecodeStepParts(glue: false)))
    }

    /// Greedy-decodes `steps` tokens after `prompt` one at a time; each token's logits must equal, bit for bit,
    /// those at the end of a batch holding the whole sequence so far.
    func assertDecodedEqualsBatched(_ model: LlamaModel, prompt: [Int], steps: Int, cacheType: KVCacheType = .f32, _ what: String) throws {
        let capacity = prompt.count + steps + 16
        let stepped = model.makeCache(capacityTokens: capacity, type: cacheType)
        try stepped.reserve(sequence: 0, length: prompt.count + steps)
        var batch = Batch()
        batch.appendCausal(Array(prompt.dropLast()), sequence: 0, start: 0, logits: .none)
        _ = try model.forward(batch, cache: stepped)
        var tokens = prompt
        for position in (prompt.count - 1)..<(prompt.count - 1 + steps) {
            var step = Batch()
            step.appendCausal([tokens[position]], sequence: 0, start: position, logits: .last)
            let decoded = try model.forward(step, cache: stepped).withRow(0) { Array($0) }
            let whole = model.makeCache(capacityTokens: capacity, type: cacheType)
            try whole.reserve(sequence: 0, length: position + 1)
            var all = Batch()
            all.appendCausal(Array(tokens.prefix(position + 1)), sequence: 0, start: 0, logits: .last)
            let batched = try model.forward(all, cache: whole).withRow(0) { Array($0) }
            XCTAssertEqual(decoded, batched, "\(what) at position \(position)")
            XCTAssertTrue(decoded.allSatisfy(\.isFinite), what)
            tokens.append(decoded.indices.max { decoded[$0] < decoded[$1] }!)
        }
    }
}
