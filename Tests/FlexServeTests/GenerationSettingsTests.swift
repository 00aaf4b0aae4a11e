import XCTest
@testable import FlexServe
import FlexServeTestSupport

/// Per-request settings through the engine: seeds, stop strings, limits, bad settings.
final class GenerationSettingsTests: XCTestCase {
    func llm() throws -> LLM {
        let llm = try LLM(Fixtures.path("tiny-llama"))
        try llm.compile(GenerationConfig(), maxRequestsPerBatch: 4, maxSeqLength: 128, maxTokensPerBatch: 64)
        return llm
    }

    func testSameSeedSameSampleDifferentSeedsDiffer() async throws {
        let llm = try llm()
        var config = GenerationConfig(doSample: true, temperature: 1.0, topP: 0.95, topK: 0, maxNewTokens: 20, seed: 42)
        let a = try await llm.generate(tokens: [1, 2, 3], config: config)
        let b = try await llm.generate(tokens: [1, 2, 3], config: config)
        XCTAssertEqual(a.outputTokens, b.outputTokens)
        var outputs = Set<[Int]>()
        for seed in 0..<8 {
            config.seed = UInt64(seed)
            outputs.insert(try await llm.generate(tokens: [1, 2, 3], config: config).outputTokens)
        }
        XCTAssertGreaterThan(outputs.count, 4)
    }

    func testTopKOneIsGreedy() async throws {
        let llm = try llm()
        let greedy = try await llm.generate(tokens: [9, 8, 7], maxNewTokens: 16)
        let sampled = try await llm.generate(tokens: [9, 8, 7], config: GenerationConfig(doSample: true, temperature: 2, topP: 1, topK: 1, maxNewTokens: 16, seed: 3))
        XCTAssertEqual(greedy.outputTokens, sampled.outputTokens)
    }

    func testStopStringCutsTheText() async throws {
        let llm = try llm()
        let full = try await llm.generate(tokens: [83, 52, 133], maxNewTokens: 30)
        // Stop at the text of generated tokens 5...6.
        let stop = llm.tokenizer.decode(Array(full.outputTokens[5...6]))
        let cut = try await llm.generate(tokens: [83, 52, 133], config: GenerationConfig(maxNewTokens: 30, stop: [stop]))
        XCTAssertEqual(cut.finishReason, .stop)
        XCTAssertFalse(cut.outputText.contains(stop))
        XCTAssertTrue(full.outputText.hasPrefix(cut.outputText))
        XCTAssertLessThan(cut.outputTokens.count, full.outputTokens.count)
    }

    func testLimits() async throws {
        let llm = try llm()
        let r = try await llm.generate(tokens: [5, 6], config: GenerationConfig(maxNewTokens: 50, maxLength: 10))
        XCTAssertEqual(r.promptTokens.count + r.outputTokens.count, 10)
        XCTAssertEqual(r.finishReason, .length)
    }

    func testBadInputIsAClearError() async throws {
        let llm = try llm()
        do {
            _ = try await llm.generate(tokens: [5], config: GenerationConfig(doSample: true, temperature: 0))
            XCTFail("temperature 0 with sampling must be refused")
        } catch { XCTAssertTrue("\(error)".contains("temperature")) }
        do {
            _ = try await llm.generate(tokens: Array(repeating: 3, count: 500))
            XCTFail("an over-long prompt must be refused")
        } catch { XCTAssertTrue("\(error)".contains("maxSeqLength")) }
        do {
            _ = try await llm.generate(tokens: [300])
            XCTFail("an out-of-vocabulary id must be refused")
        } catch { XCTAssertTrue("\(error)".contains("vocabulary")) }
        // The engine keeps serving.
        let ok = try await llm.generate(tokens: [5], maxNewTokens: 3)
        XCTAssertEqual(ok.outputTokens.count, 3)
    }

    /// A list of prompts is queued together: the engine batches them from its first step (FlexFlow's `generate` of a
    /// list), and a bad prompt fails the whole list before any of it runs.
    func testPromptListIsQueuedTogether() async throws {
        let llm = try llm()
        let prompts: [[Int]] = [[1, 2, 3], [4, 5], [6], [7, 8, 9, 10]]
        let configs = prompts.map { _ in GenerationConfig(maxNewTokens: 12, stopAtEOS: false) }
        for round in 0..<5 {
            let before = llm.metrics.steps
            let results = try await llm.generate(tokens: prompts, configs: configs)
            XCTAssertEqual(results.map(\.outputTokens.count), [12, 12, 12, 12])
            // One step prefills all four (each samples its first token), eleven more decode them together.
            XCTAssertEqual(llm.metrics.steps - before, 12, "round \(round): the prompts did not start in one step")
        }
        let before = llm.metrics
        do {
            _ = try await llm.generate(tokens: [[1, 2], [300]], configs: [GenerationConfig(maxNewTokens: 4), GenerationConfig(maxNewTokens: 4)])
            XCTFail("an out-of-vocabulary id must fail the list")
        } catch { XCTAssertTrue("\(error)".contains("vocabulary")) }
        do {
            _ = try await llm.generate(tokens: [[1, 2]], configs: [])
            XCTFail("a config per prompt is required")
        } catch { XCTAssertTrue("\(error)".contains("configs")) }
        XCTAssertEqual(llm.metrics.steps, before.steps)
        XCTAssertEqual(llm.metrics.requestsFinished, before.requestsFinished)
        XCTAssertEqual(llm.metrics.queueDepth, 0)
    }

    func testStreamingPiecesAddUpToTheText() async throws {
        let llm = try llm()
        var text = ""
        for try await piece in llm.stream("Hello", maxNewTokens: 12) { text += piece.text }
        let whole = try await llm.generate("Hello", maxNewTokens: 12)
        XCTAssertEqual(text, whole.outputText)
    }

    /// A piece that starts with a combining mark joins the previous piece's last Character; the
    /// stream must still carry every byte (CI once lost a U+0734 that followed a stray lead byte).
    func testStreamedPiecesKeepCombiningMarks() throws {
        let tokenizer = try LLM(Fixtures.path("tiny-llama")).tokenizer
        // The fixture's vocabulary is one token per byte: the first token of "’" is the lone lead byte 0xE2.
        let strayLeadByte = tokenizer.encode("\u{2019}", addSpecialTokens: false)[0]
        let cases: [(ids: [Int], stops: [String], expected: String)] = [
            ([strayLeadByte] + tokenizer.encode("\u{0734}b", addSpecialTokens: false), [], "\u{FFFD}\u{0734}b"),
            (tokenizer.encode("e\u{0301}\u{0301}xy\u{0301}z", addSpecialTokens: false), ["y\u{0301}z"], "e\u{0301}\u{0301}x"),
            (tokenizer.encode("a\u{0301}stop", addSpecialTokens: false), ["\u{0301}s"], "a"),
        ]
        for (ids, stops, expected) in cases {
            let assembler = TextAssembler(tokenizer: tokenizer, stops: stops)
            var streamed = ""
            for id in ids { streamed += assembler.append(id, visible: true).piece }
            streamed += assembler.flush()
            XCTAssertEqual(Array(streamed.unicodeScalars), Array(expected.unicodeScalars))
            XCTAssertEqual(Array(assembler.text.unicodeScalars), Array(expected.unicodeScalars))
        }
    }
}
