import XCTest
import FlexServeTensor
@testable import FlexServeModels
import FlexServeTestSupport

/// `TokenShares` (a long forward with each thread keeping a share of the tokens): how the tokens are cut, the logits
/// bit for bit those of the step-by-step forward (each projection's rows shared out instead) for LLaMA and every other
/// architecture, and SmolLM2's logits over a 640-token prompt against transformers'.
final class TokenSharesTests: XCTestCase {
    func testSharesAreContiguousBalancedAndOnMultiplesOfSix() throws {
        // A causal prompt's costs: the later tokens attend to more keys.
        let costs = (0..<512).map { 1000 + 3 * Double($0) }
        for threads in [2, 3, 4] {
            let shares = try XCTUnwrap(TokenShares.shares(costs: costs, threads: threads, perThread: 48))
            XCTAssertEqual(shares.count, threads)
            XCTAssertEqual(shares.first?.lowerBound, 0)
            XCTAssertEqual(shares.last?.upperBound, costs.count)
            for (a, b) in zip(shares, shares.dropFirst()) { XCTAssertEqual(a.upperBound, b.lowerBound) }
            for s in shares.dropLast() { XCTAssertEqual(s.upperBound % 6, 0, "\(shares)") }
            let sums = shares.map { costs[$0].reduce(0, +) }
            // Off by at most the three tokens each boundary moves to a multiple of six, on either side.
            XCTAssertLessThan(sums.max()! - sums.min()!, 6 * costs.max()!, "\(shares)")
            // The later shares are shorter.
            XCTAssertGreaterThan(shares[0].count, shares[threads - 1].count, "\(shares)")
        }
        XCTAssertEqual(TokenShares.shares(costs: Array(repeating: 1, count: 120), threads: 2, perThread: 48), [0..<60, 60..<120])
        // A threshold above `minimumTokens` decides whether to share, not where: the shares stay balanced.
        let float = try XCTUnwrap(TokenShares.shares(costs: costs, threads: 2, perThread: 256))
        XCTAssertEqual(float, try XCTUnwrap(TokenShares.shares(costs: costs, threads: 2, perThread: 48)))
        XCTAssertGreaterThan(float[0].count, 256)
        // Every share keeps the minimum, however uneven the costs.
        let skewed = (0..<100).map { $0 < 90 ? 1.0 : 1000 }
        XCTAssertEqual(TokenShares.shares(costs: skewed, threads: 2, perThread: 48), [0..<52, 52..<100])
        XCTAssertNil(TokenShares.shares(costs: Array(repeating: 1, count: 95), threads: 2, perThread: 48))
        XCTAssertNil(TokenShares.shares(costs: Array(repeating: 1, count: 512), threads: 1, perThread: 48))
    }

    /// Two sequences in one batch (the first continuing a cached prefix, so its attention reads keys from before the
    /// batch), every position's logits, on pools of two and three threads against no shares: the same floats. Over head
    /// layouts with Q/K/V biases and a sliding window, integer blocks with both kinds of activations, float weights,
    /// GPU storage emulation and an fp16 KV cache.
    func testSharesGiveTheLogitsOfTheProjectionPath() throws {
        let shapes: [(heads: Int, kvHeads: Int, biases: Bool, window: Int?)] = [(6, 2, true, nil), (4, 4, false, 37)]
        for (i, shape) in shapes.enumerated() {
            var config = ModelConfig(architecture: "LlamaForCausalLM", vocabSize: 101, hiddenSize: 128, intermediateSize: 96,
                                     numLayers: 2, numHeads: shape.heads, numKVHeads: shape.kvHeads, headDim: 16)
            config.slidingWindow = shape.window
            let weights = LlamaDecodeStepTests.RandomWeights(config: config, biases: shape.biases, seed: UInt64(20 + i))
            let runs: [(DType, ActivationFormat, KVCacheType, DType?)] = [
                (.q4_1, .f32, .f32, nil), (.q8_0, .q8, .f32, nil), (.int4Group, .f32, .f16, nil), (.f16, .f32, .f32, nil),
                (.f32, .f32, .f32, nil), (.bf16, .f32, .f32, .bf16),
            ]
            for (format, activations, cacheType, rounding) in runs {
                let store = ConvertingStore(weights, to: format, activations: activations)
                let model = try LlamaModel(config: config, weights: store, storageRounding: rounding)
                // Shares of a few dozen tokens, so that the test's batches take them with float weights too.
                model.tokenShares.perThread = 30
                let what = "\(shape.heads)/\(shape.kvHeads) heads, window \(shape.window ?? 0), \(format), \(activations) activations, "
                    + "\(cacheType) cache, rounding \(rounding?.rawValue ?? "none")"
                model.tokenShares.pool = nil
                let plain = try logits(model, cacheType: cacheType, vocabulary: config.vocabSize)
                for threads in [2, 3] {
                    model.tokenShares.pool = ThreadPool(threads: threads)
                    let shared = try logits(model, cacheType: cacheType, vocabulary: config.vocabSize, sharesExpected: true)
                    let differing = plain.indices.filter { shared[$0] != plain[$0] }
                    XCTAssertEqual(differing, [], "\(what), \(threads) threads: the logits of these batch rows differ")
                }
            }
        }
    }

    /// Every position's logits of a batch of sequence 0's tokens 20..<130 (after 0..<20 in an earlier forward) and
    /// sequence 1's 0..<71.
    private func logits(_ model: LlamaModel, cacheType: KVCacheType, vocabulary: Int, sharesExpected: Bool = false) throws -> [[Float]] {
        let tokens = (0..<130).map { ($0 * 37 + 5) % vocabulary }, other = (0..<71).map { ($0 * 53 + 11) % vocabulary }
        let cache = model.makeCache(capacityTokens: 256, type: cacheType)
        try cache.reserve(sequence: 0, length: tokens.count)
        try cache.reserve(sequence: 1, length: other.count)
        var prefix = Batch()
        prefix.appendCausal(Array(tokens.prefix(20)), sequence: 0, start: 0, logits: .none)
        _ = try model.forward(prefix, cache: cache)
        var batch = Batch()
        batch.appendCausal(Array(tokens.dropFirst(20)), sequence: 0, start: 20, logits: .all)
        batch.appendCausal(other, sequence: 1, start: 0, logits: .all)
        if sharesExpected {
            let addressing = try model.config.slidingWindow.map { try cache.positionedAddressing(for: batch, slidingWindow: $0).slotStart }
                ?? cache.addressing(for: batch).slotStart
            let shares = model.tokenShares.shares(slotStart: addressing)
            XCTAssertNotNil(shares, "a batch of \(batch.count) tokens should be shared out")
        }
        let out = try model.forward(batch, cache: cache)
        return (0..<out.rows).map { out.rowArray($0) }
    }

    /// SmolLM2 (as stored, fp32 activations) over a 640-token prompt: the top logits at positions in every share stay
    /// within 1e-3 (relative) of transformers', with two threads' shares and without.
    func testSmolLM2LongPromptMatchesTransformers() throws {
        let fixture = try Fixtures.json("smollm2/long-prompt.json")
        let ids = fixture["prompt_ids"] as! [Int]
        let records = fixture["top_logits"] as! [[String: Any]]
        let model = try ModelLoader.load(path: try Fixtures.smolLM2).model as! LlamaModel
        var runs: [[[Float]]] = []
        for pool in [ThreadPool(threads: 2), nil] {
            model.tokenShares.pool = pool
            let cache = model.makeCache(capacityTokens: ids.count)
            try cache.reserve(sequence: 0, length: ids.count)
            var batch = Batch()
            batch.appendCausal(ids, sequence: 0, start: 0, logits: .all)
            let out = try model.forward(batch, cache: cache)
            var rows: [[Float]] = []
            for record in records {
                let position = record["position"] as! Int, top = record["ids"] as! [Int]
                let expected = (record["values"] as! [NSNumber]).map(\.floatValue)
                let row = out.rowArray(position)
                for (id, value) in zip(top, expected) {
                    XCTAssertEqual(row[id], value, accuracy: 1e-3 * max(1, abs(value)),
                                   "position \(position), token \(id), \(pool == nil ? "no shares" : "two shares")")
                }
                rows.append(row)
            }
            runs.append(rows)
        }
        XCTAssertEqual(runs[0], runs[1], "shares should give the projection path's logits bit for bit")
    }
}

extension TokenSharesTests {
    /// Every other architecture (OPT pre- and post-norm, Falcon multi-query, new-architecture and ALiBi, GPTBigCode
    /// multi-query and multi-head, MPT with ALiBi and clipping) in shares on pools of two and three threads: a batch of
    /// one prompt continuing a cached prefix and a second prompt, every position's logits the step-by-step forward's
    /// bit for bit and within 1e-4 of transformers' (relative to the row's largest logit).
    func testEveryArchitectureInSharesMatchesTransformers() throws {
        for name in ["opt", "opt-postnorm-proj", "falcon", "falcon-new", "falcon-rw", "starcoder", "starcoder-mha", "mpt"] {
            let model = try ModelLoader.load(path: Fixtures.path("arch/" + name)).model
            let sharing = try XCTUnwrap(model as? any TokenSharing, name)
            let cases = try ArchitectureTests.reference(name)
            let long = try XCTUnwrap(cases.first { $0.promptIDs.count == 36 }), short = try XCTUnwrap(cases.first { $0.promptIDs.count == 21 })
            let prefix = 6
            func logits(_ pool: ThreadPool?) throws -> [[Float]] {
                sharing.tokenShares.pool = pool
                sharing.tokenShares.perThread = 8
                let cache = model.makeCache(capacityTokens: 128, blockSize: 4)
                try cache.reserve(sequence: 0, length: long.promptIDs.count)
                try cache.reserve(sequence: 1, length: short.promptIDs.count)
                var first = Batch()
                first.appendCausal(Array(long.promptIDs.prefix(prefix)), sequence: 0, start: 0, logits: .none)
                _ = try model.forward(first, cache: cache)
                var batch = Batch()
                batch.appendCausal(Array(long.promptIDs.dropFirst(prefix)), sequence: 0, start: prefix, logits: .all)
                batch.appendCausal(short.promptIDs, sequence: 1, start: 0, logits: .all)
                let out = try model.forward(batch, cache: cache)
                return (0..<out.rows).map { out.rowArray($0) }
            }
            let stepByStep = try logits(nil)
            let expected = Array(long.logits.dropFirst(prefix)) + short.logits
            for threads in [2, 3] {
                let shared = try logits(ThreadPool(threads: threads))
                XCTAssertEqual(shared.count, expected.count)
                let differing = stepByStep.indices.filter { shared[$0] != stepByStep[$0] }
                XCTAssertEqual(differing, [], "\(name), \(threads) threads: the logits of these batch rows differ")
                var worst: Float = 0
                for (ours, reference) in zip(shared, expected) {
                    let scale = max(1e-6, reference.map(abs).max()!)
                    worst = max(worst, zip(ours, reference).map { abs($0 - $1) }.max()! / scale)
                }
                XCTAssertLessThan(worst, 1e-4, "\(name), \(threads) threads: largest relative logit error")
            }
        }
    }
}
