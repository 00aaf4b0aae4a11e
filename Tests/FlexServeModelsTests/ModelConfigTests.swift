import XCTest
@testable import FlexServeModels
import FlexServeTestSupport

final class ModelConfigTests: XCTestCase {
    let base: [String: Any] = [
        "architectures": ["LlamaForCausalLM"], "vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    ]

    func config(_ extra: [String: Any]) throws -> ModelConfig {
        try ModelConfig(json: base.merging(extra) { $1 }, source: "config.json")
    }

    func testRopeThetaInBothSpellings() throws {
        XCTAssertEqual(try config(["rope_theta": 100000]).ropeTheta, 100000)
        XCTAssertEqual(try config(["rope_parameters": ["rope_theta": 500000, "rope_type": "default"]]).ropeTheta, 500000)
    }

    func testDtypeInBothSpellings() throws {
        XCTAssertEqual(try config(["torch_dtype": "bfloat16"]).dtype, "bfloat16")
        XCTAssertEqual(try config(["dtype": "float16"]).dtype, "float16")
    }

    func testRopeScaling() throws {
        XCTAssertEqual(try config(["rope_scaling": ["type": "linear", "factor": 2.0]]).ropeScaling, .linear(factor: 2))
        let llama3 = try config(["rope_scaling": ["rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                  "high_freq_factor": 4.0, "original_max_position_embeddings": 8192]])
        XCTAssertEqual(llama3.ropeScaling, .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192))
        XCTAssertThrowsError(try config(["rope_scaling": ["type": "yarn-unknown", "factor": 2.0]]))
    }

    func testImpossibleConfigsAreNamed() {
        XCTAssertThrowsError(try config(["num_key_value_heads": 3])) { XCTAssertTrue("\($0)".contains("num_key_value_heads")) }
        XCTAssertThrowsError(try config(["hidden_size": 0])) { XCTAssertTrue("\($0)".contains("hidden_size")) }
    }

    func testFromGGUFMetadata() throws {
        let gguf = try GGUFFile(path: Fixtures.path("tiny-llama/tiny-llama-f32.gguf"))
        let c = try ModelConfig(gguf: gguf)
        let hf = try ModelConfig(configJSON: Fixtures.path("tiny-llama/config.json"))
        XCTAssertEqual(c.hiddenSize, hf.hiddenSize)
        XCTAssertEqual(c.numKVHeads, hf.numKVHeads)
        XCTAssertEqual(c.headDim, hf.headDim)
        XCTAssertEqual(c.intermediateSize, hf.intermediateSize)
        XCTAssertEqual(c.ropeTheta, hf.ropeTheta)
        XCTAssertEqual(c.vocabSize, hf.vocabSize)
    }
}
