import XCTest
@testable import FlexServeModels
import FlexServeTensor
import FlexServeTestSupport

/// The CPU emulating a GPU's half-precision storage (`LlamaModel.storageRounding`, the reference of
/// `gpu-check correctness --cpu-reference storage`) on the real default model, against HuggingFace transformers in fp32
/// (`smollm2/greedy.json`'s last-position top-20 logits). The emulated model must stay near fp32 (it computes the
/// same function, rounded) and must differ from it (the rounding took effect: the fp32 CPU is within 1e-3 of the
/// fixture, `SmolLM2Tests`).
final class SmolLM2StorageRoundingTests: XCTestCase {
    func check(_ dtype: DType, tolerance: Float, minimumDeviation: Float) throws {
        let path = try Fixtures.smolLM2
        let loaded = try ModelLoader.load(path: path)
        let model = try LlamaModel(config: loaded.model.config, weights: loaded.weights, storageRounding: dtype)
        XCTAssertEqual(model.storageRounding, dtype)
        XCTAssertEqual(model.lmHead.dtype, dtype, "the tied head is the converted embedding table")
        let items = (try Fixtures.json("smollm2/greedy.json")["items"] as! [[String: Any]]).filter { $0["top_logits"] != nil }
        XCTAssertFalse(items.isEmpty)
        var largest: Float = 0
        for item in items {
            let prompt = item["prompt_ids"] as! [Int]
            let top = item["top_logits"] as! [String: Any]
            let ids = top["ids"] as! [Int], values = (top["values"] as! [NSNumber]).map(\.floatValue)
            let cache = model.makeCache(capacityTokens: 1024)
            try cache.reserve(sequence: 0, length: prompt.count)
            var batch = Batch()
            batch.appendCausal(prompt, sequence: 0, start: 0, logits: .last)
            try model.forward(batch, cache: cache).withRow(0) { row in
                for (id, expected) in zip(ids, values) {
                    XCTAssertEqual(row[id], expected, accuracy: tolerance, "\(dtype) token \(id)")
                    largest = max(largest, abs(row[id] - expected))
                }
                // transformers' greedy choice, when it leads by a clear margin.
                if values[0] - values[1] > 4 * tolerance {
                    XCTAssertEqual((0..<row.count).max { row[$0] < row[$1] }, ids[0], "\(dtype) argmax")
                }
            }
        }
        print("storage rounding \(dtype): max |logit - transformers| over the fixture's top-20 logits \(largest)")
        XCTAssertGreaterThan(largest, minimumDeviation, "\(dtype): rounding had no visible effect")
    }

    func testEmulatedBF16StaysNearTransformers() throws {
        try check(.bf16, tolerance: 0.3, minimumDeviation: 0.01)  // measured 2026-12-02: 0.139
    }

    func testEmulatedFP16StaysNearTransformers() throws {
        try check(.f16, tolerance: 0.1, minimumDeviation: 0.005)  // measured: 0.039
    }
}
