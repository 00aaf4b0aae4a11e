import Foundation
import XCTest
@testable import FlexServe
@testable import FlexServeModels
import FlexServeTestSupport

/// Lossless stochastic verification: the first three generated tokens of speculative sampling
/// (the first from the prefill, the next two from one verified tree) must follow the LLM's own
/// sampling distribution. 20,000 seeded runs are compared with the exact distribution (computed
/// from the LLM's logits) by a chi-square test at p = 1e-4; the same test rejects the naive rule
/// that keeps sampling from p after a rejection.
final class StochasticVerificationTests: XCTestCase {
    let prompt = [83, 52, 133, 115, 173]
    let config = GenerationConfig(doSample: true, temperature: 1.0, topP: 1.0, topK: 4)
    let samples = 20_000

    /// P(t1, t2, t3) under the LLM's top-4 sampling, from its logits.
    func exactDistribution() throws -> [[Int]: Double] {
        let model = try ModelLoader.load(path: Fixtures.path("tiny-llama")).model
        func next(_ ids: [Int]) throws -> TokenDistribution {
            let cache = model.makeCache(capacityTokens: 64)
            try cache.reserve(sequence: 0, length: ids.count)
            var batch = Batch()
            batch.appendCausal(ids, sequence: 0, start: 0, logits: .last)
            return try model.forward(batch, cache: cache).withRow(0) { Sampler.distribution($0, config: config) }
        }
        var exact: [[Int]: Double] = [:]
        let d1 = try next(prompt)
        for (t1, p1) in zip(d1.ids, d1.probabilities) {
            let d2 = try next(prompt + [t1])
            for (t2, p2) in zip(d2.ids, d2.probabilities) {
                let d3 = try next(prompt + [t1, t2])
                for (t3, p3) in zip(d3.ids, d3.probabilities) { exact[[t1, t2, t3]] = Double(p1) * Double(p2) * Double(p3) }
            }
        }
        return exact
    }

    func sampleTriples(rule: TreeVerifier.StochasticRule) async throws -> (counts: [[Int]: Int], stats: SpeculationStats) {
        let llm = try LLM(Fixtures.path("tiny-llama"))
        var options = EngineOptions(maxRequestsPerBatch: 64, maxSeqLength: 64, maxTokensPerBatch: 1024,
                                    tree: TreeShape(depth: 2, expansion: [2, 2], maxWidth: 4))
        options.stochasticRule = rule
        try llm.compile(config, ssms: [try SSM(Fixtures.path("tiny-llama-noisy"))], options: options)
        var counts: [[Int]: Int] = [:]
        var stats = SpeculationStats()
        let chunk = 256
        for start in stride(from: 0, to: samples, by: chunk) {
            try await withThrowingTaskGroup(of: GenerationResult.self) { group in
                for seed in start..<min(samples, start + chunk) {
                    var c = config
                    c.seed = UInt64(seed)
                    c.maxNewTokens = 3
                    let settings = c
                    group.addTask { try await llm.generate(tokens: self.prompt, config: settings) }
                }
                for try await r in group {
                    counts[r.outputTokens, default: 0] += 1
                    stats.add(r.speculation)
                }
            }
        }
        return (counts, stats)
    }

    /// Pearson's statistic over cells with expected count ≥ 5 (the rest pooled), and its critical value.
    func chiSquare(_ counts: [[Int]: Int], _ exact: [[Int]: Double]) -> (statistic: Double, critical: Double) {
        var statistic = 0.0, pooledObserved = 0.0, pooledExpected = 0.0
        var cells = 0
        for (key, p) in exact {
            let expected = p * Double(samples), observed = Double(counts[key] ?? 0)
            if expected >= 5 {
                statistic += (observed - expected) * (observed - expected) / expected
                cells += 1
            } else {
                pooledObserved += observed
                pooledExpected += expected
            }
        }
        // Outcomes the LLM cannot produce count against the pool.
        pooledObserved += Double(counts.filter { exact[$0.key] == nil }.values.reduce(0, +))
        if pooledExpected > 0 {
            statistic += (pooledObserved - pooledExpected) * (pooledObserved - pooledExpected) / pooledExpected
            cells += 1
        } else if pooledObserved > 0 {
            statistic = .infinity
        }
        // Wilson–Hilferty: the chi-square quantile at p = 1e-4 (z = 3.719).
        let k = Double(cells - 1)
        let z = 3.719
        let critical = k * pow(1 - 2 / (9 * k) + z * (2 / (9 * k)).squareRoot(), 3)
        return (statistic, critical)
    }

    func testSpeculativeSamplingMatchesTheLLMDistribution() async throws {
        let exact = try exactDistribution()
        let (counts, stats) = try await sampleTriples(rule: .specInfer)
        XCTAssertEqual(counts.values.reduce(0, +), samples)
        // The test means something only if drafts are both accepted and rejected.
        let accepted = stats.acceptedAtDepth.first ?? 0
        XCTAssertGreaterThan(accepted, samples / 10, "too few drafts accepted to test anything")
        XCTAssertLessThan(accepted, stats.verifySteps * 95 / 100, "too few drafts rejected to test anything")
        let (statistic, critical) = chiSquare(counts, exact)
        XCTAssertLessThan(statistic, critical, "speculative sampling deviates from the LLM's distribution")
    }

    func testNaiveRuleIsDetected() async throws {
        let exact = try exactDistribution()
        let (counts, _) = try await sampleTriples(rule: .naive)
        let (statistic, critical) = chiSquare(counts, exact)
        XCTAssertGreaterThan(statistic, critical, "the check should reject the naive rule (statistic \(statistic), critical \(critical))")
    }
}
