import XCTest
@testable import FlexServe
import FlexServeTensor
import FlexServeTestSupport

/// SmolLM2 with our distilled SSMs: greedy speculative output equals transformers' greedy tokens
/// (which incremental decoding reproduces, see SmolLM2Tests) on 32 prompts, as batches, with one
/// SSM and with two SSMs merged.
final class SmolLM2SpeculativeTests: XCTestCase {
    static let newTokens = 24

    func run(ssms: [String], tree: TreeShape) async throws {
        let json = try Fixtures.json("smollm2/greedy.json")
        let items = (json["items"] as! [[String: Any]]).prefix(32)
        let llm = try LLM(try Fixtures.smolLM2)
        try llm.compile(GenerationConfig(), ssms: try ssms.map { try SSM(Fixtures.packageRoot.appendingPathComponent($0).path) },
                        maxRequestsPerBatch: 16, maxSeqLength: 512, maxTokensPerBatch: 512, tree: tree)
        let results = try await llm.generate(tokens: items.map { $0["prompt_ids"] as! [Int] }, maxNewTokens: Self.newTokens)
        var stats = SpeculationStats()
        for (item, r) in zip(items, results) {
            let expected = Array((item["output_ids"] as! [Int]).prefix(Self.newTokens))
            XCTAssertEqual(r.outputTokens, expected, "\(item["kind"]!) '\((item["text"] as! String).prefix(40))'")
            stats.add(r.speculation)
        }
        XCTAssertGreaterThan(stats.tokensPerStep, 1.2, "the distilled SSMs should get drafts accepted")
    }

    func testOneSSM() async throws {
        try await run(ssms: ["ssms/smollm2-draft-a"], tree: TreeShape(depth: 4, expansion: [1, 1, 2, 1], maxWidth: 4))
    }

    func testOneSSMWithPromptLookup() async throws {
        try await run(ssms: ["ssms/smollm2-draft-a"], tree: TreeShape(depth: 4, expansion: [1, 1, 2, 1], maxWidth: 4, promptLookup: 6))
    }

    func testTwoSSMsMerged() async throws {
        try await run(ssms: ["ssms/smollm2-draft-a", "ssms/smollm2-draft-b"], tree: TreeShape(depth: 3, expansion: [1, 1, 1], maxWidth: 2))
    }

    /// With an fp16 KV cache the tokens are no longer transformers' fp32 ones everywhere, but speculation still
    /// gives exactly what the LLM alone gives with that cache.
    func testFP16CacheSpeculativeEqualsIncremental() async throws {
        let json = try Fixtures.json("smollm2/greedy.json")
        let prompts = (json["items"] as! [[String: Any]]).prefix(16).map { $0["prompt_ids"] as! [Int] }
        var outputs: [[[Int]]] = []
        for ssms in [[], ["ssms/smollm2-draft-a"]] {
            let llm = try LLM(try Fixtures.smolLM2)
            try llm.compile(GenerationConfig(), ssms: try ssms.map { try SSM(Fixtures.packageRoot.appendingPathComponent($0).path) },
                            maxRequestsPerBatch: 16, maxSeqLength: 512, maxTokensPerBatch: 512, kvCacheType: .f16,
                            tree: TreeShape(depth: 4, expansion: [1, 1, 2, 1], maxWidth: 4))
            XCTAssertEqual(llm.manager?.cache.type, .f16, "the LLM's cache")
            XCTAssertEqual(llm.manager?.drafter?.caches.map(\.type) ?? [], ssms.map { _ in .f16 }, "the SSMs' caches")
            var out: [[Int]] = []
            for ids in prompts { out.append(try await llm.generate(tokens: ids, maxNewTokens: Self.newTokens).outputTokens) }
            outputs.append(out)
        }
        for (i, (alone, speculative)) in zip(outputs[0], outputs[1]).enumerated() {
            XCTAssertEqual(speculative, alone, "prompt \(i)")
        }
    }
}
