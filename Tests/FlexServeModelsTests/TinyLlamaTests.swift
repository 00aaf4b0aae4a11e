import XCTest
import FlexServeTensor
@testable import FlexServeModels
import FlexServeTestSupport

/// The tiny random LLaMA against HuggingFace transformers' logits and greedy tokens, for every
/// weight format (safetensors f32/f16/bf16, GGUF f32/f16/Q8_0/Q4_0/Q4_1).
final class TinyLlamaTests: XCTestCase {
    struct Case {
        let promptIDs: [Int]
        let logits: [[Float]]
        let greedy: [Int]
    }

    func loadVariant(_ name: String) throws -> (any CausalLM, [Case]) {
        let reference = try Fixtures.json("tiny-llama/reference.json")
        let variant = (reference["variants"] as! [String: Any])[name] as! [String: Any]
        let file = Fixtures.path("tiny-llama/" + (variant["file"] as! String))
        let model: any CausalLM
        if file.hasSuffix(".gguf") {
            model = try ModelLoader.load(path: file).model
        } else {
            let config = try ModelConfig(configJSON: Fixtures.path("tiny-llama/config.json"))
            model = try ModelLoader.build(config: config, weights: SafetensorsStore(files: [SafetensorsFile(path: file)]))
        }
        let cases = (variant["results"] as! [[String: Any]]).map { r in
            Case(promptIDs: r["prompt_ids"] as! [Int],
                 logits: (r["logits"] as! [[NSNumber]]).map { $0.map(\.floatValue) },
                 greedy: r["greedy"] as! [Int])
        }
        return (model, cases)
    }

    func prefillLogits(_ model: any CausalLM, _ ids: [Int]) throws -> Logits {
        let cache = model.makeCache(capacityTokens: 256)
        try cache.reserve(sequence: 0, length: ids.count)
        var batch = Batch()
        batch.appendCausal(ids, sequence: 0, start: 0, logits: .all)
        return try model.forward(batch, cache: cache)
    }

    /// Greedy decoding one token per forward, through the KV cache.
    func greedy(_ model: any CausalLM, _ ids: [Int], count: Int) throws -> [Int] {
        let cache = model.makeCache(capacityTokens: 256, blockSize: 4)
        var tokens = ids
        var committed = 0
        var out: [Int] = []
        while out.count < count {
            try cache.reserve(sequence: 7, length: tokens.count)
            var batch = Batch()
            batch.appendCausal(Array(tokens[committed...]), sequence: 7, start: committed, logits: .last)
            let logits = try model.forward(batch, cache: cache)
            committed = tokens.count
            let row = logits.rowArray(0)
            let next = row.indices.max { row[$0] < row[$1] || (row[$0] == row[$1] && $0 > $1) }!
            tokens.append(next)
            out.append(next)
        }
        return out
    }

    func check(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (model, cases) = try loadVariant(name)
        for c in cases {
            let logits = try prefillLogits(model, c.promptIDs)
            XCTAssertEqual(logits.rows, c.promptIDs.count, file: file, line: line)
            var worst: Float = 0
            defer { withExtendedLifetime(logits) {} }
            for (t, expected) in c.logits.enumerated() {
                let got = logits.row(t)
                let scale = max(1, expected.map(abs).max()!)
                for i in expected.indices { worst = max(worst, abs(got[i] - expected[i]) / scale) }
            }
            XCTAssertLessThan(worst, 1e-4, "\(name): logits differ from transformers by \(worst) (relative) for prompt of \(c.promptIDs.count)", file: file, line: line)
            XCTAssertEqual(try greedy(model, c.promptIDs, count: c.greedy.count), c.greedy,
                           "\(name): greedy tokens differ for prompt of \(c.promptIDs.count)", file: file, line: line)
        }
    }

    func testSafetensorsF32() throws { try check("f32") }
    func testSafetensorsF16() throws { try check("f16") }
    func testSafetensorsBF16() throws { try check("bf16") }
    func testGGUFF32() throws { try check("gguf-f32") }
    func testGGUFF16() throws { try check("gguf-f16") }
    func testGGUFQ8_0() throws { try check("gguf-q8_0") }
    func testGGUFQ4_0() throws { try check("gguf-q4_0") }
    func testGGUFQ4_1() throws { try check("gguf-q4_1") }

    /// llama.cpp permutes Q/K rows; after undoing it both formats must give the same numbers.
    func testSafetensorsAndGGUFGiveTheSameLogits() throws {
        let (st, cases) = try loadVariant("f32")
        let (gg, _) = try loadVariant("gguf-f32")
        for c in cases {
            let a = try prefillLogits(st, c.promptIDs), b = try prefillLogits(gg, c.promptIDs)
            for r in 0..<a.rows {
                for i in 0..<a.vocabSize { XCTAssertEqual(a.row(r)[i], b.row(r)[i], accuracy: 1e-5) }
            }
        }
    }

    /// Prefill in chunks, token by token, or in one go must agree (the cache is paged in blocks of 4).
    func testChunkedPrefillMatchesOneShot() throws {
        let (model, cases) = try loadVariant("f32")
        let ids = cases.last!.promptIDs
        let whole = try prefillLogits(model, ids)
        let cache = model.makeCache(capacityTokens: 256, blockSize: 4)
        try cache.reserve(sequence: 3, length: ids.count)
        var start = 0
        var last: [Float] = []
        for size in [1, 3, 7, 100] where start < ids.count {
            let end = min(ids.count, start + size)
            var batch = Batch()
            batch.appendCausal(Array(ids[start..<end]), sequence: 3, start: start, logits: .last)
            last = try model.forward(batch, cache: cache).rowArray(0)
            start = end
        }
        let expected = whole.rowArray(whole.rows - 1)
        for i in expected.indices { XCTAssertEqual(last[i], expected[i], accuracy: 1e-4) }
    }
}
