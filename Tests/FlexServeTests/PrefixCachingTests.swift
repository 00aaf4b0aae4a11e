import XCTest
@testable import FlexServe
import FlexServeTestSupport

/// Requests that start alike share KV blocks (prefix caching), and still give transformers' greedy tokens: blocks
/// adopted from a finished request, blocks of generated tokens, blocks computed by two requests at once, the SSMs'
/// caches, and a cache small enough to evict.
final class PrefixCachingTests: XCTestCase {
    let reference: [(prompt: [Int], greedy: [Int])] = {
        let json = try! Fixtures.json("tiny-llama/reference.json")
        let f32 = ((json["variants"] as! [String: Any])["f32"] as! [String: Any])["results"] as! [[String: Any]]
        return f32.map { ($0["prompt_ids"] as! [Int], $0["greedy"] as! [Int]) }
    }()

    func engine(ssms: [String] = [], kvCacheTokens: Int? = nil, maxRequests: Int = 4, tree: TreeShape = TreeShape()) throws -> LLM {
        let llm = try LLM(Fixtures.path("tiny-llama"))
        try llm.compile(GenerationConfig(), ssms: try ssms.map { try SSM($0) }, options: EngineOptions(
            maxRequestsPerBatch: maxRequests, maxSeqLength: 256, maxTokensPerBatch: 128, kvCacheTokens: kvCacheTokens, tree: tree))
        return llm
    }

    func testAdoptedBlocksGiveTransformersTokens() async throws {
        let llm = try engine(maxRequests: 8)
        let (p40, g40) = reference[3]
        XCTAssertEqual(p40.count, 40)
        let first = try await llm.generate(tokens: [p40], maxNewTokens: 24)[0]
        XCTAssertEqual(first.cachedPromptTokens, 0)
        XCTAssertEqual(first.outputTokens, g40)
        // Two whole blocks of the 40 prompt tokens; the last block's tokens are computed.
        let again = try await llm.generate(tokens: [p40], maxNewTokens: 24)[0]
        XCTAssertEqual(again.cachedPromptTokens, 32)
        XCTAssertEqual(again.outputTokens, g40)
        // The prompt and 20 of its greedy tokens: the third block holds generated tokens, written one decode step at a time.
        let extended = try await llm.generate(tokens: [p40 + g40.prefix(20)], maxNewTokens: 4)[0]
        XCTAssertEqual(extended.cachedPromptTokens, 48)
        XCTAssertEqual(extended.outputTokens, Array(g40[20...]))
        // Every reference prompt twice in one batch: the copies compute their blocks side by side (nothing to adopt
        // yet for the 17-token prompt), and all give transformers' tokens.
        let both = try await llm.generate(tokens: reference.map(\.prompt) + reference.map(\.prompt), maxNewTokens: 24)
        XCTAssertEqual(both.map(\.outputTokens), reference.map(\.greedy) + reference.map(\.greedy))
        let repeated = try await llm.generate(tokens: [reference[2].prompt], maxNewTokens: 24)[0]
        XCTAssertEqual(repeated.cachedPromptTokens, 16)
        XCTAssertEqual(repeated.outputTokens, reference[2].greedy)
    }

    func testSpeculativeDecodingAdoptsTheSSMsBlocksToo() async throws {
        // The LLM as its own SSM: nearly every draft is accepted, so a draft spoilt by wrong K/V would show.
        let llm = try engine(ssms: [Fixtures.path("tiny-llama")], tree: TreeShape(depth: 3, expansion: [2, 1, 1]))
        var firstRound: [GenerationResult] = []
        for round in 0..<2 {
            let results = try await llm.generate(tokens: reference.map(\.prompt), maxNewTokens: 24)
            XCTAssertEqual(results.map(\.outputTokens), reference.map(\.greedy), "round \(round)")
            XCTAssertEqual(results.map(\.cachedPromptTokens), round == 0 ? [0, 0, 0, 0] : [0, 0, 16, 32], "round \(round)")
            if round == 0 {
                firstRound = results
                // Other prompts take the blocks the first round freed, so nothing of its K/V is left there by chance.
                var rng = SeededRandom(seed: 9)
                _ = try await llm.generate(tokens: (0..<4).map { _ in (0..<60).map { _ in Int(rng.next() % 256) } }, maxNewTokens: 24)
                continue
            }
            // The output is the LLM's whatever the drafts; the SSM's adopted K/V show in the drafts. The 40-token prompt
            // still has 8 tokens to compute, as before: the same trees, so the same steps and acceptance. The 17-token
            // one has only its last token left, so it drafts in its first step instead of after it: no more steps.
            for i in [0, 1, 3] {
                XCTAssertEqual(results[i].llmDecodingSteps, firstRound[i].llmDecodingSteps, "prompt \(i)")
                XCTAssertEqual(results[i].speculation.acceptedAtDepth, firstRound[i].speculation.acceptedAtDepth, "prompt \(i)")
            }
            XCTAssertLessThanOrEqual(results[2].llmDecodingSteps, firstRound[2].llmDecodingSteps)
        }
    }

    func testEvictionUnderPressureKeepsTheOutput() async throws {
        // Eight blocks, one request at a time: each prompt's blocks push out the least recently used ones.
        let llm = try engine(kvCacheTokens: 8 * 16, maxRequests: 1)
        var rng = SeededRandom(seed: 5)
        let (p40, g40) = reference[3]
        for round in 0..<3 {
            let others = (0..<3).map { _ in (0..<40).map { _ in Int(rng.next() % 256) } }
            let results = try await llm.generate(tokens: [p40] + others, maxNewTokens: 24)
            XCTAssertEqual(results[0].outputTokens, g40, "round \(round)")
            let fresh = try await engine(maxRequests: 1).generate(tokens: others, maxNewTokens: 24)
            XCTAssertEqual(results.dropFirst().map(\.outputTokens), fresh.map(\.outputTokens), "round \(round)")
        }
    }
}
