import XCTest
import FlexServeTensor
@testable import FlexServeModels
import FlexServeTestSupport

/// A draft model as tools/distill/gguf_export.py writes it (Tests/Fixtures/draft-gguf, made by
/// tools/distill/make_draft_fixture.py): Q8_0 GGUF without a tokenizer, trimmed vocabulary, tied head,
/// OOV input id in `flexserve.draft.oov_input_token_id`, alone in its folder.
final class DraftGGUFTests: XCTestCase {
    func testFolderWithOneGGUFLoadsItWithTheOOVID() throws {
        let reference = try Fixtures.json("draft-gguf/reference.json")
        let loaded = try ModelLoader.load(path: Fixtures.path("draft-gguf"))
        let config = loaded.model.config
        XCTAssertNotNil(loaded.gguf)
        XCTAssertEqual(config.vocabSize, reference["vocab_size"] as? Int)
        XCTAssertEqual(config.draftOOVTokenID, reference["oov_input_token_id"] as? Int)
        XCTAssertTrue(config.tieWordEmbeddings)
        XCTAssertEqual(config.ropeTheta, 100000)

        let ids = reference["prompt_ids"] as! [Int]
        let expected = (reference["logits"] as! [[NSNumber]]).map { $0.map(\.floatValue) }
        let cache = loaded.model.makeCache(capacityTokens: 64)
        try cache.reserve(sequence: 0, length: ids.count)
        var batch = Batch()
        batch.appendCausal(ids, sequence: 0, start: 0, logits: .all)
        let logits = try loaded.model.forward(batch, cache: cache)
        defer { withExtendedLifetime(logits) {} }
        XCTAssertEqual(logits.rows, ids.count)
        var worst: Float = 0
        for (t, row) in expected.enumerated() {
            let got = logits.row(t)
            XCTAssertEqual(got.count, row.count)
            let scale = max(1, row.map(abs).max()!)
            for i in row.indices { worst = max(worst, abs(got[i] - row[i]) / scale) }
        }
        XCTAssertLessThan(worst, 1e-3, "logits differ from transformers (dequantised Q8_0 weights) by \(worst)")
    }

    func testGGUFWithoutTheKeyHasNoOOVID() throws {
        let gguf = try GGUFFile(path: Fixtures.path("tiny-llama/tiny-llama-q8_0.gguf"))
        XCTAssertNil(try ModelConfig(gguf: gguf).draftOOVTokenID)
    }
}
