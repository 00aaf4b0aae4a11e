import XCTest
@testable import FlexServe
@testable import FlexServeModels
import FlexServeTensor
import FlexServeTestSupport

/// The real default model against HuggingFace transformers (which dequantizes the same GGUF to
/// fp32): prompt token ids, last-position logits, and 64 greedy tokens for 48 prompts (raw and
/// chat-templated), generated as one batch through the engine.
final class SmolLM2Tests: XCTestCase {
    struct Item {
        let kind: String
        let text: String
        let promptIDs: [Int]
        let outputIDs: [Int]
        let topLogits: (ids: [Int], values: [Float])?
    }

    func items() throws -> [Item] {
        let json = try Fixtures.json("smollm2/greedy.json")
        return (json["items"] as! [[String: Any]]).map { i in
            var top: ([Int], [Float])?
            if let t = i["top_logits"] as? [String: Any] {
                top = (t["ids"] as! [Int], (t["values"] as! [NSNumber]).map(\.floatValue))
            }
            return Item(kind: i["kind"] as! String, text: i["text"] as! String, promptIDs: i["prompt_ids"] as! [Int],
                        outputIDs: i["output_ids"] as! [Int], topLogits: top)
        }
    }

    func testTokenizerGivesTransformersPromptIDs() throws {
        let llm = try LLM(try Fixtures.smolLM2)
        for item in try items() {
            XCTAssertEqual(llm.tokenizer.encode(item.text), item.promptIDs, "\(item.kind): \(item.text.prefix(40))")
        }
    }

    func testLastPositionLogitsMatchTransformers() throws {
        let model = try ModelLoader.load(path: try Fixtures.smolLM2).model
        for item in try items() {
            guard let top = item.topLogits else { continue }
            let cache = model.makeCache(capacityTokens: 1024)
            try cache.reserve(sequence: 0, length: item.promptIDs.count)
            var batch = Batch()
            batch.appendCausal(item.promptIDs, sequence: 0, start: 0, logits: .last)
            try model.forward(batch, cache: cache).withRow(0) { row in
                for (id, expected) in zip(top.ids, top.values) {
                    XCTAssertEqual(row[id], expected, accuracy: 1e-3 * max(1, abs(expected)), "token \(id)")
                }
            }
        }
    }

    /// An fp16 KV cache rounds every key and value (relative error up to 2⁻¹¹): the last-position logits stay
    /// within a looser bound of transformers' fp32 ones, and differ from the fp32 cache's (the cache type is used).
    func testLastPositionLogitsWithAnFP16CacheStayNearTransformers() throws {
        let model = try ModelLoader.load(path: try Fixtures.smolLM2).model
        var worst: Float = 0, compared = 0, changed = 0
        for item in try items() {
            guard let top = item.topLogits else { continue }
            var rows: [[Float]] = []
            for type in [KVCacheType.f32, .f16] {
                let cache = model.makeCache(capacityTokens: 1024, type: type)
                try cache.reserve(sequence: 0, length: item.promptIDs.count)
                var batch = Batch()
                batch.appendCausal(item.promptIDs, sequence: 0, start: 0, logits: .last)
                rows.append(try model.forward(batch, cache: cache).withRow(0) { row in top.ids.map { row[$0] } })
            }
            compared += 1
            if rows[0] != rows[1] { changed += 1 }
            for (got, expected) in zip(rows[1], top.values) { worst = max(worst, abs(got - expected) / max(1, abs(expected))) }
        }
        XCTAssertEqual(changed, compared, "every prompt's logits should move with the fp16 cache")
        // Measured 8.5e-4 (the fp32 cache: within 1e-3 of transformers).
        XCTAssertLessThan(worst, 3e-3, "largest relative logit error with an fp16 KV cache")
    }

    func testGreedyTokensMatchTransformersInOneBatch() async throws {
        let llm = try LLM(try Fixtures.smolLM2)
        try llm.compile(GenerationConfig(), maxRequestsPerBatch: 16, maxSeqLength: 512, maxTokensPerBatch: 256)
        let all = try items()
        let results = try await llm.generate(tokens: all.map(\.promptIDs), maxNewTokens: 64)
        var mismatched = 0
        for (item, r) in zip(all, results) where r.outputTokens != item.outputIDs {
            mismatched += 1
            let firstDiff = zip(r.outputTokens, item.outputIDs).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            XCTFail("\(item.kind) '\(item.text.prefix(40))': differs at token \(firstDiff ?? -1)")
        }
        XCTAssertEqual(mismatched, 0)
    }
}
