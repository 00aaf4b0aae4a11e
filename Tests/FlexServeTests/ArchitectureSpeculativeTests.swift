import XCTest
@testable import FlexServe
@testable import FlexServeModels
import FlexServeTestSupport

/// For every architecture family, greedy speculative inference emits exactly the tokens of incremental
/// decoding: with a draft model of the same family (the LLM plus noise, in f16: drafts partly accepted)
/// and with the LLM as its own SSM (whole trees accepted, so tree nodes deep past Mistral's window and
/// ALiBi over tree positions are exercised). Incremental decoding itself matches transformers' greedy tokens.
final class ArchitectureSpeculativeTests: XCTestCase {
    static func path(_ name: String) -> String { Fixtures.path("arch/" + name) }

    static func referencePrompts(_ name: String) throws -> [(prompt: [Int], greedy: [Int])] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path(name) + "/reference.json"))
        let json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        return (json["results"] as! [[String: Any]]).map { ($0["prompt_ids"] as! [Int], $0["greedy"] as! [Int]) }
    }

    func incremental(_ llmPath: String, _ prompts: [[Int]], maxNewTokens: Int) async throws -> [GenerationResult] {
        let llm = try LLM(llmPath)
        try llm.compile(GenerationConfig(), maxRequestsPerBatch: 8, maxSeqLength: 128, maxTokensPerBatch: 64)
        return try await llm.generate(tokens: prompts, maxNewTokens: maxNewTokens)
    }

    func speculative(_ llmPath: String, ssm: String, _ prompts: [[Int]], maxNewTokens: Int,
                     tree: TreeShape = TreeShape()) async throws -> [GenerationResult] {
        let llm = try LLM(llmPath)
        try llm.compile(GenerationConfig(), ssms: [try SSM(ssm)], maxRequestsPerBatch: 8, maxSeqLength: 128,
                        maxTokensPerBatch: 256, tree: tree)
        return try await llm.generate(tokens: prompts, maxNewTokens: maxNewTokens)
    }

    func checkFamily(_ llm: String, ssm: String, file: StaticString = #filePath, line: UInt = #line) async throws {
        let reference = try Self.referencePrompts(llm)
        let prompts = reference.map(\.prompt) + [[7, 7, 7], Array(repeating: 42, count: 12)]
        let base = try await incremental(Self.path(llm), prompts, maxNewTokens: 40)
        for (r, ref) in zip(base, reference) {
            XCTAssertEqual(Array(r.outputTokens.prefix(ref.greedy.count)), ref.greedy,
                           "\(llm): incremental decoding vs transformers, prompt \(ref.prompt)", file: file, line: line)
        }
        let drafted = try await speculative(Self.path(llm), ssm: Self.path(ssm), prompts, maxNewTokens: 40)
        let own = try await speculative(Self.path(llm), ssm: Self.path(llm), prompts, maxNewTokens: 40)
        let wide = try await speculative(Self.path(llm), ssm: Self.path(ssm), prompts, maxNewTokens: 40,
                                         tree: TreeShape(depth: 4, expansion: [3, 2, 1, 1], maxWidth: 6))
        for (name, spec) in [("family SSM", drafted), ("LLM as its own SSM", own), ("family SSM, wide tree", wide)] {
            for (b, s) in zip(base, spec) {
                XCTAssertEqual(s.outputTokens, b.outputTokens, "\(llm) with \(name): prompt \(b.promptTokens)", file: file, line: line)
            }
        }
        // The LLM drafting for itself has every draft accepted: far fewer LLM steps than tokens.
        for r in own { XCTAssertLessThan(r.llmDecodingSteps, 12, "\(llm): \(r.promptTokens)", file: file, line: line) }
        let accepted = drafted.map(\.llmDecodingSteps).reduce(0, +)
        print("\(llm): family SSM \(accepted) LLM steps for \(40 * prompts.count) tokens; own \(own.map(\.llmDecodingSteps))")
    }

    func testOPT() async throws {
        try await checkFamily("opt", ssm: "opt-ssm")
        try await checkFamily("opt-postnorm-proj", ssm: "opt-ssm")
    }

    func testFalcon() async throws {
        try await checkFamily("falcon", ssm: "falcon-ssm")
        try await checkFamily("falcon-new", ssm: "falcon-ssm")
        try await checkFamily("falcon-rw", ssm: "falcon-ssm")
    }

    func testGPTBigCode() async throws {
        try await checkFamily("starcoder", ssm: "starcoder-ssm")
        try await checkFamily("starcoder-mha", ssm: "starcoder-ssm")
    }

    func testMPT() async throws { try await checkFamily("mpt", ssm: "mpt-ssm") }
    func testMistral() async throws { try await checkFamily("mistral", ssm: "mistral-ssm") }
    func testQwen2() async throws { try await checkFamily("qwen2", ssm: "qwen2-ssm") }
}
