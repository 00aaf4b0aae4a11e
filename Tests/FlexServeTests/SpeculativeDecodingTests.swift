import XCTest
@testable import FlexServe
@testable import FlexServeModels
import FlexServeTestSupport

/// Greedy speculative inference must emit exactly the tokens of incremental decoding, whatever
/// the drafts: random SSMs (almost every draft rejected), the LLM as its own SSM (almost every draft
/// accepted), two SSMs merged, batches of several requests, and the edges.
final class SpeculativeDecodingTests: XCTestCase {
    static let llmPath = Fixtures.path("tiny-llama")
    static let prompts: [[Int]] = [[95], [83, 52, 133, 115, 173], [7, 73, 19, 91, 57, 198, 241, 28, 21, 236, 23, 107],
                                   [150, 192, 238, 101, 58, 111, 56, 36, 220, 107, 159, 233, 37, 72, 133, 151, 132], [3, 3, 3]]

    func incremental(_ prompts: [[Int]], maxNewTokens: Int, llmPath: String = llmPath) async throws -> [GenerationResult] {
        let llm = try LLM(llmPath)
        try llm.compile(GenerationConfig(), maxRequestsPerBatch: 8, maxSeqLength: 256, maxTokensPerBatch: 64)
        return try await llm.generate(tokens: prompts, maxNewTokens: maxNewTokens)
    }

    func speculative(_ prompts: [[Int]], ssms: [String], maxNewTokens: Int, tree: TreeShape = TreeShape(),
                     llmPath: String = llmPath) async throws -> [GenerationResult] {
        let llm = try LLM(llmPath)
        try llm.compile(GenerationConfig(), ssms: try ssms.map { try SSM($0) }, maxRequestsPerBatch: 8,
                        maxSeqLength: 256, maxTokensPerBatch: 256, tree: tree)
        return try await llm.generate(tokens: prompts, maxNewTokens: maxNewTokens)
    }

    /// All prompts queued together (the engine batches them from its first step), prompt i generating `lengths[i]` tokens.
    func generateAll(_ llm: LLM, _ prompts: [[Int]], lengths: [Int]) async throws -> [GenerationResult] {
        try await llm.generate(tokens: prompts, configs: lengths.map { n in
            var config = llm.defaults
            config.maxNewTokens = n
            return config
        })
    }

    func assertSameTokens(_ a: [GenerationResult], _ b: [GenerationResult], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        for (x, y) in zip(a, b) {
            XCTAssertEqual(x.outputTokens, y.outputTokens, "prompt \(x.promptTokens)", file: file, line: line)
        }
    }

    /// The engine's incremental decoding against transformers' greedy tokens.
    func testIncrementalDecodingMatchesTransformers() async throws {
        let reference = try Fixtures.json("tiny-llama/reference.json")
        let f32 = ((reference["variants"] as! [String: Any])["f32"] as! [String: Any])["results"] as! [[String: Any]]
        let prompts = f32.map { $0["prompt_ids"] as! [Int] }
        let results = try await incremental(prompts, maxNewTokens: 24)
        for (r, ref) in zip(results, f32) {
            XCTAssertEqual(r.outputTokens, ref["greedy"] as! [Int])
            XCTAssertEqual(r.llmDecodingSteps, 24)
        }
    }

    func testRandomSSMGivesIncrementalOutput() async throws {
        let base = try await incremental(Self.prompts, maxNewTokens: 40)
        let spec = try await speculative(Self.prompts, ssms: [Fixtures.path("tiny-llama-ssm")], maxNewTokens: 40)
        assertSameTokens(base, spec)
    }

    /// `disableAtBatchSize`: steps with that many requests decoding draft nothing, and drafting resumes (the SSM catching
    /// up on every token it skipped) once the batch is smaller, with the incremental tokens throughout.
    func testDraftingStopsAtBatchSize() async throws {
        let ssm = Fixtures.path("tiny-llama")  // the LLM as its own SSM: a step that drafts accepts most of its tree
        let lengths = [60, 10, 10, 10, 10]
        func run(_ disable: Int) async throws -> [GenerationResult] {
            let llm = try LLM(Self.llmPath)
            try llm.compile(GenerationConfig(), ssms: [try SSM(ssm)], maxRequestsPerBatch: 8, maxSeqLength: 256, maxTokensPerBatch: 256,
                            tree: TreeShape(depth: 3, expansion: [1], maxWidth: 1, disableAtBatchSize: disable))
            return try await generateAll(llm, Self.prompts, lengths: lengths)
        }
        let llm = try LLM(Self.llmPath)
        try llm.compile(GenerationConfig(), maxRequestsPerBatch: 8, maxSeqLength: 256, maxTokensPerBatch: 64)
        let base = try await generateAll(llm, Self.prompts, lengths: lengths)

        let never = try await run(1)
        assertSameTokens(base, never)
        XCTAssertTrue(never.allSatisfy { $0.speculation.verifySteps == 0 && $0.llmDecodingSteps == $0.outputTokens.count })

        let always = try await run(6)
        assertSameTokens(base, always)
        XCTAssertTrue(always.allSatisfy { $0.speculation.verifySteps > 0 })

        // Five requests decode together until the four short ones finish: only the long one drafts, and only then.
        let late = try await run(3)
        assertSameTokens(base, late)
        XCTAssertTrue(late.dropFirst().allSatisfy { $0.speculation.verifySteps == 0 })
        XCTAssertGreaterThan(late[0].speculation.verifySteps, 0)
        XCTAssertLessThan(late[0].llmDecodingSteps, 60 - 9)
    }

    func testTwoMergedSSMsGiveIncrementalOutput() async throws {
        let base = try await incremental(Self.prompts, maxNewTokens: 40)
        let spec = try await speculative(Self.prompts, ssms: [Fixtures.path("tiny-llama-ssm"), Fixtures.path("tiny-llama-ssm-b")],
                                         maxNewTokens: 40, tree: TreeShape(depth: 4, expansion: [2, 2, 1, 1], maxWidth: 4))
        assertSameTokens(base, spec)
    }

    func testPromptLookupGivesIncrementalOutput() async throws {
        let base = try await incremental(Self.prompts, maxNewTokens: 40)
        let alone = try await speculative(Self.prompts, ssms: [], maxNewTokens: 40, tree: TreeShape(depth: 0, promptLookup: 5))
        assertSameTokens(base, alone)
        var stats = SpeculationStats()
        alone.forEach { stats.add($0.speculation) }
        XCTAssertGreaterThan(stats.draftedNodes, 0, "the prompt [3, 3, 3] repeats, so lookup must draft")
        let withSSM = try await speculative(Self.prompts, ssms: [Fixtures.path("tiny-llama-ssm")], maxNewTokens: 40,
                                            tree: TreeShape(depth: 3, expansion: [2, 1, 1], maxWidth: 2, promptLookup: 5))
        assertSameTokens(base, withSSM)
    }

    func testLLMAsItsOwnSSMAcceptsWholeTrees() async throws {
        let base = try await incremental(Self.prompts, maxNewTokens: 45)
        let spec = try await speculative(Self.prompts, ssms: [Self.llmPath], maxNewTokens: 45)
        assertSameTokens(base, spec)
        for r in spec {
            // Depth 8 → 9 tokens per step. A longer prompt is prefilled first, which yields one token;
            // a one-token prompt is the root of the first tree at once.
            let expected = r.promptTokens.count == 1 ? 5 : 1 + 5
            XCTAssertEqual(r.llmDecodingSteps, expected, "\(r.promptTokens)")
            XCTAssertGreaterThan(r.speculation.tokensPerStep, 8.5)
        }
    }

    func testNoisySSMAcrossTreeShapes() async throws {
        let base = try await incremental(Self.prompts, maxNewTokens: 40)
        for tree in [TreeShape(depth: 1, expansion: [1], maxWidth: 1), TreeShape(depth: 3, expansion: [3, 3, 3], maxWidth: 5),
                     TreeShape(depth: 8), TreeShape(depth: 12, expansion: [4, 1], maxWidth: 64)] {
            let spec = try await speculative(Self.prompts, ssms: [Fixtures.path("tiny-llama-noisy")], maxNewTokens: 40, tree: tree)
            assertSameTokens(base, spec)
            let stats = spec.reduce(into: SpeculationStats()) { $0.add($1.speculation) }
            XCTAssertGreaterThan(stats.tokensPerStep, 1.0, "the noisy SSM should get some drafts accepted (\(tree))")
        }
    }

    /// Max length reached in the middle of an accepted path, and a one-token prompt.
    func testMaxNewTokensInsideAcceptedPath() async throws {
        for n in [1, 2, 5, 9, 10] {
            let base = try await incremental([[95], [1, 2]], maxNewTokens: n)
            let spec = try await speculative([[95], [1, 2]], ssms: [Self.llmPath], maxNewTokens: n)
            assertSameTokens(base, spec)
            XCTAssertEqual(spec[0].outputTokens.count, n)
        }
    }

    /// An end-of-sequence token inside an accepted path ends the output there, as in incremental decoding.
    func testEOSInsideAcceptedPath() async throws {
        let plain = try await incremental([[83, 52, 133, 115, 173]], maxNewTokens: 20)[0].outputTokens
        // Make the 6th generated token (not seen earlier in the output) the model's EOS.
        let position = plain.indices.first { $0 >= 5 && !plain[..<$0].contains(plain[$0]) }!
        let folder = try copyWithEOS(plain[position])
        let base = try await incremental([[83, 52, 133, 115, 173]], maxNewTokens: 20, llmPath: folder)
        let spec = try await speculative([[83, 52, 133, 115, 173]], ssms: [Self.llmPath], maxNewTokens: 20, llmPath: folder)
        XCTAssertEqual(base[0].outputTokens, Array(plain[...position]))
        XCTAssertEqual(spec[0].outputTokens, base[0].outputTokens)
        XCTAssertEqual(spec[0].finishReason, .stop)
    }

    /// The tiny LLM's folder with `eos_token_id` set.
    func copyWithEOS(_ eos: Int) throws -> String {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("tiny-eos-\(UUID().uuidString)")
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        for f in ["model.safetensors", "tokenizer.json"] {
            try fm.copyItem(atPath: Fixtures.path("tiny-llama/" + f), toPath: dir.appendingPathComponent(f).path)
        }
        var config = try Fixtures.json("tiny-llama/config.json")
        config["eos_token_id"] = eos
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
        addTeardownBlock { try? fm.removeItem(at: dir) }
        return dir.path
    }
}
