import XCTest
import FlexServeTensor
@testable import FlexServeModels
import FlexServeTestSupport

/// Every non-LLaMA architecture against transformers on tiny random checkpoints (tools/fixtures/make_arch_fixtures.py):
/// the logits of every prompt position within 1e-4 (relative to the row's largest logit) and 24 greedy tokens
/// decoded one at a time through the paged KV cache identical to transformers'.
final class ArchitectureTests: XCTestCase {
    struct Case {
        let promptIDs: [Int]
        let logits: [[Float]]
        let greedy: [Int]
    }

    static func reference(_ name: String) throws -> [Case] {
        let json = try Fixtures.json("arch/\(name)/reference.json")
        let vocab = json["vocab_size"] as! Int
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("arch/\(name)/logits.f32")))
        let all: [Float] = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        return (json["results"] as! [[String: Any]]).map { r in
            let offset = r["logits_offset"] as! Int, n = r["positions"] as! Int
            return Case(promptIDs: r["prompt_ids"] as! [Int],
                        logits: (0..<n).map { Array(all[(offset + $0) * vocab..<(offset + $0 + 1) * vocab]) },
                        greedy: r["greedy"] as! [Int])
        }
    }

    func prefillLogits(_ model: any CausalLM, _ ids: [Int], cacheType: KVCacheType = .f32) throws -> Logits {
        let cache = model.makeCache(capacityTokens: 256, type: cacheType)
        try cache.reserve(sequence: 0, length: ids.count)
        var batch = Batch()
        batch.appendCausal(ids, sequence: 0, start: 0, logits: .all)
        return try model.forward(batch, cache: cache)
    }

    /// Greedy decoding one token per forward through a cache of 4-token blocks.
    func greedy(_ model: any CausalLM, _ ids: [Int], count: Int) throws -> [Int] {
        let cache = model.makeCache(capacityTokens: 256, blockSize: 4)
        var tokens = ids, committed = 0, out: [Int] = []
        while out.count < count {
            try cache.reserve(sequence: 3, length: tokens.count)
            var batch = Batch()
            batch.appendCausal(Array(tokens[committed...]), sequence: 3, start: committed, logits: .last)
            let row = try model.forward(batch, cache: cache).rowArray(0)
            committed = tokens.count
            let next = row.indices.max { row[$0] < row[$1] || (row[$0] == row[$1] && $0 > $1) }!
            tokens.append(next)
            out.append(next)
        }
        return out
    }

    /// Largest |ours − reference| / max|reference row| over every position of every prompt.
    func check(_ name: String, architecture: String, gguf: Bool = false, file: StaticString = #filePath, line: UInt = #line) throws {
        let loaded = try ModelLoader.load(path: Fixtures.path("arch/" + name + (gguf ? "/\(name)-f32.gguf" : "")))
        XCTAssertEqual(loaded.model.config.architecture, architecture, file: file, line: line)
        var worst: Float = 0
        for c in try Self.reference(name) {
            let logits = try prefillLogits(loaded.model, c.promptIDs)
            XCTAssertEqual(logits.rows, c.promptIDs.count, file: file, line: line)
            for (p, expected) in c.logits.enumerated() {
                let ours = logits.rowArray(p)
                let scale = max(1e-6, expected.map(abs).max()!)
                let error = zip(ours, expected).map { abs($0 - $1) }.max()! / scale
                worst = max(worst, error)
            }
            XCTAssertEqual(try greedy(loaded.model, c.promptIDs, count: c.greedy.count), c.greedy,
                           "\(name): greedy tokens of prompt \(c.promptIDs)", file: file, line: line)
        }
        XCTAssertLessThan(worst, 1e-4, "\(name): largest relative logit error", file: file, line: line)
        print("\(name): largest relative logit error \(worst)")
    }

    /// With an fp16 KV cache (keys and values rounded, relative error up to 2⁻¹¹) every architecture's logits stay
    /// near transformers': ALiBi, multi-query, sliding windows and biases all read the same store.
    func testEveryArchitectureWithAnFP16Cache() throws {
        for name in ["opt", "opt-postnorm-proj", "falcon", "falcon-new", "falcon-rw", "starcoder", "starcoder-mha", "mpt", "mistral", "qwen2"] {
            let model = try ModelLoader.load(path: Fixtures.path("arch/" + name)).model
            var worst: Float = 0, moved = false
            for c in try Self.reference(name) {
                let half = try prefillLogits(model, c.promptIDs, cacheType: .f16), full = try prefillLogits(model, c.promptIDs)
                for (p, expected) in c.logits.enumerated() {
                    let ours = half.rowArray(p)
                    if ours != full.rowArray(p) { moved = true }
                    let scale = max(1e-6, expected.map(abs).max()!)
                    worst = max(worst, zip(ours, expected).map { abs($0 - $1) }.max()! / scale)
                }
            }
            XCTAssertTrue(moved, "\(name): the fp16 cache changed no logit")
            print("\(name), fp16 KV cache: largest relative logit error \(worst)")
            // Measured 1.9e-4 (MPT) to 3.9e-4 (Mistral), against under 1e-4 with the fp32 cache.
            XCTAssertLessThan(worst, 1e-3, "\(name): largest relative logit error with an fp16 KV cache")
        }
    }

    func testOPTPreNorm() throws { try check("opt", architecture: "OPTForCausalLM") }
    /// OPT-350m's layout: post-norm blocks, no final LayerNorm, project_in/project_out around a 64-wide decoder.
    func testOPTPostNormWithProjections() throws { try check("opt-postnorm-proj", architecture: "OPTForCausalLM") }
    /// Falcon-7B's layout: multi-query, parallel attention and MLP, RoPE.
    func testFalconMultiQuery() throws { try check("falcon", architecture: "FalconForCausalLM") }
    /// Falcon-40B's new decoder architecture: grouped KV (2 groups), ln_attn and ln_mlp.
    func testFalconNewDecoderArchitecture() throws { try check("falcon-new", architecture: "FalconForCausalLM") }
    /// falcon-rw-1b's layout and remote-code config: RWForCausalLM, n_head/n_layer, ALiBi, sequential, biases.
    func testFalconRWWithALiBi() throws { try check("falcon-rw", architecture: "RWForCausalLM") }
    func testGPTBigCodeMultiQuery() throws { try check("starcoder", architecture: "GPTBigCodeForCausalLM") }
    func testGPTBigCodeMultiHead() throws { try check("starcoder-mha", architecture: "GPTBigCodeForCausalLM") }
    /// ALiBi with 6 heads (interleaved slopes), clip_qkv 0.6, bias-free LayerNorms.
    func testMPT() throws { try check("mpt", architecture: "MptForCausalLM") }
    /// Sliding window 8 with prompts of up to 36 tokens and 24 more decoded.
    func testMistralSlidingWindow() throws { try check("mistral", architecture: "MistralForCausalLM") }
    func testQwen2() throws { try check("qwen2", architecture: "Qwen2ForCausalLM") }

    // GGUF files written as llama.cpp's converter writes these architectures (same weights, same references).
    func testFalconGGUF() throws { try check("falcon", architecture: "FalconForCausalLM", gguf: true) }
    /// Falcon-40B layout in GGUF: QKV regrouped from [Q | K | V], ln_attn/ln_mlp as attn_norm_2/attn_norm.
    func testFalconNewDecoderArchitectureGGUF() throws { try check("falcon-new", architecture: "FalconForCausalLM", gguf: true) }
    func testStarCoderGGUF() throws { try check("starcoder", architecture: "GPTBigCodeForCausalLM", gguf: true) }
    /// MPT's clip_qkv and ALiBi bias maximum from GGUF metadata.
    func testMPTGGUF() throws { try check("mpt", architecture: "MPTForCausalLM", gguf: true) }

    /// The fixture's window matters: without it the long prompts' logits are far from transformers'.
    func testMistralWindowChangesTheLongPrompts() throws {
        var config = try ModelConfig(configJSON: Fixtures.path("arch/mistral/config.json"))
        XCTAssertEqual(config.slidingWindow, 8)
        config.slidingWindow = nil
        let model = try ModelLoader.build(config: config, weights: SafetensorsStore(folder: Fixtures.path("arch/mistral")))
        let c = try Self.reference("mistral").last!
        let logits = try prefillLogits(model, c.promptIDs)
        let last = c.promptIDs.count - 1
        let error = zip(logits.rowArray(last), c.logits[last]).map { abs($0 - $1) }.max()!
        XCTAssertGreaterThan(error, 0.05)
        // Within the window both agree.
        let early = zip(logits.rowArray(5), c.logits[5]).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(early, 1e-3)
    }

    /// The draft models (the LLMs plus noise, stored in f16) load and run.
    func testF16DraftModelsLoad() throws {
        for name in ["opt", "falcon", "starcoder", "mpt", "mistral", "qwen2"] {
            let model = try ModelLoader.load(path: Fixtures.path("arch/\(name)-ssm")).model
            let logits = try prefillLogits(model, [1, 2, 3])
            XCTAssertEqual(logits.rows, 3)
            XCTAssertTrue(logits.rowArray(2).allSatisfy(\.isFinite), name)
        }
    }

    func testALiBiSlopes() {
        // transformers' build_alibi_tensor / build_mpt_alibi_tensor for 6 heads.
        XCTAssertEqual(ALiBi.bloomSlopes(heads: 4), [0.25, 0.0625, 0.015625, 0.00390625])
        XCTAssertEqual(ALiBi.bloomSlopes(heads: 6), [0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125])
        XCTAssertEqual(ALiBi.mptSlopes(heads: 6, maxBias: 8), [0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125])
        XCTAssertEqual(ALiBi.mptSlopes(heads: 8, maxBias: 8), (1...8).map { 1 / Float(1 << $0) })
    }
}
