import FlexServe
import FlexServeServer
import Foundation
import XCTest

final class RequestValidationTests: XCTestCase {
    func json(_ s: String) throws -> JSON { try JSON.parse(Data(s.utf8)) }

    func apiError(_ body: () throws -> Void) -> APIError? {
        do { try body() } catch let e as APIError { return e } catch { XCTFail("not an APIError: \(error)") }
        return nil
    }

    func testJSONKeepsTypesApart() throws {
        let v = try json(#"{"a": true, "b": 3, "c": 2.5, "d": "x", "e": null, "f": [1, "y"], "g": {"h": 9007199254740993}}"#)
        XCTAssertEqual(v["a"], .bool(true))
        XCTAssertEqual(v["b"], .int(3))
        XCTAssertEqual(v["c"], .double(2.5))
        XCTAssertEqual(v["d"], .string("x"))
        XCTAssertEqual(v["e"], .null)
        XCTAssertEqual(v["f"], .array([.int(1), .string("y")]))
        XCTAssertEqual(v["g"]?["h"], .int(9007199254740993))
    }

    func testMalformedJSONIs400() {
        for text in ["{", "", "nope", #"{"a": }"#, "[1,"] {
            let e = apiError { _ = try json(text) }
            XCTAssertEqual(e?.status, 400, text)
            XCTAssertEqual(e?.code, "invalid_json", text)
        }
    }

    func testSamplingDefaultsFollowOpenAI() throws {
        let sampled = try OpenAIRequest.generationConfig(json(#"{"prompt": "x"}"#))
        XCTAssertTrue(sampled.doSample)
        XCTAssertEqual(sampled.temperature, 1)
        XCTAssertEqual(sampled.maxNewTokens, 16)
        let greedy = try OpenAIRequest.generationConfig(json(#"{"temperature": 0, "max_tokens": 5, "stop": "\n", "seed": 3, "top_k": 4}"#))
        XCTAssertFalse(greedy.doSample)
        XCTAssertEqual(greedy.maxNewTokens, 5)
        XCTAssertEqual(greedy.stop, ["\n"])
        XCTAssertEqual(greedy.seed, 3)
        XCTAssertEqual(greedy.topK, 4)
        let chat = try OpenAIRequest.generationConfig(json(#"{"max_completion_tokens": 7, "stop": ["a", "b"], "top_p": 0.5}"#))
        XCTAssertEqual(chat.maxNewTokens, 7)
        XCTAssertEqual(chat.stop, ["a", "b"])
        XCTAssertEqual(chat.topP, 0.5)
    }

    func testBadSettingsNameTheirParameter() throws {
        let cases: [(String, String)] = [
            (#"{"max_tokens": -1}"#, "max_tokens"), (#"{"max_tokens": "5"}"#, "max_tokens"), (#"{"max_tokens": 1.5}"#, "max_tokens"),
            (#"{"max_tokens": true}"#, "max_tokens"), (#"{"temperature": 2.5}"#, "temperature"), (#"{"temperature": "hot"}"#, "temperature"),
            (#"{"top_p": 2}"#, "top_p"), (#"{"n": 3}"#, "n"), (#"{"stop": 4}"#, "stop"), (#"{"stop": ["a","b","c","d","e"]}"#, "stop"),
            (#"{"stream": 1}"#, "stream"), (#"{"seed": "s"}"#, "seed"), (#"{"model": 3}"#, "model"), (#"{"logprobs": 2}"#, "logprobs"),
            (#"{"stream_options": []}"#, "stream_options"), (#"{"top_k": -5}"#, "top_k"),
        ]
        for (body, param) in cases {
            let e = apiError { _ = try OpenAIRequest.generationConfig(json(body)) }
            XCTAssertEqual(e?.status, 400, body)
            XCTAssertEqual(e?.param, param, body)
            XCTAssertEqual(e?.type, "invalid_request_error", body)
        }
        XCTAssertEqual(apiError { _ = try OpenAIRequest.generationConfig(json("[1]")) }?.status, 400)
    }

    func testPrompts() throws {
        XCTAssertEqual(try OpenAIRequest.prompt(json(#"{"prompt": "hi"}"#)).text, "hi")
        XCTAssertEqual(try OpenAIRequest.prompt(json(#"{"prompt": ["hi"]}"#)).text, "hi")
        XCTAssertEqual(try OpenAIRequest.prompt(json(#"{"prompt": [1, 2]}"#)).tokens, [1, 2])
        XCTAssertEqual(try OpenAIRequest.prompt(json(#"{"prompt": [[1, 2]]}"#)).tokens, [1, 2])
        for body in [#"{}"#, #"{"prompt": 3}"#, #"{"prompt": ["a", "b"]}"#, #"{"prompt": []}"#, #"{"prompt": [1, "a"]}"#] {
            let e = apiError { _ = try OpenAIRequest.prompt(json(body)) }
            XCTAssertEqual(e?.status, 400, body)
            XCTAssertEqual(e?.param, "prompt", body)
        }
    }

    func testMessages() throws {
        let m = try OpenAIRequest.messages(json(#"{"messages": [{"role": "developer", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}"#))
        XCTAssertEqual(m.map(\.role), ["system", "user"])
        XCTAssertEqual(m.map(\.content), ["be brief", "ab"])
        let cases: [(String, String)] = [
            (#"{}"#, "messages"), (#"{"messages": "hi"}"#, "messages"), (#"{"messages": []}"#, "messages"),
            (#"{"messages": [3]}"#, "messages[0]"), (#"{"messages": [{"content": "x"}]}"#, "messages[0].role"),
            (#"{"messages": [{"role": "king", "content": "x"}]}"#, "messages[0].role"),
            (#"{"messages": [{"role": "user", "content": 5}]}"#, "messages[0].content"),
            (#"{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}"#, "messages[0].content[0]"),
        ]
        for (body, param) in cases {
            let e = apiError { _ = try OpenAIRequest.messages(json(body)) }
            XCTAssertEqual(e?.status, 400, body)
            XCTAssertEqual(e?.param, param, body)
        }
    }

    func testEngineErrorsMapToStatuses() {
        XCTAssertEqual(APIError.from(engine: GenerationError.promptTooLong(tokens: 9, limit: 4)).status, 400)
        XCTAssertEqual(APIError.from(engine: GenerationError.promptTooLong(tokens: 9, limit: 4)).code, "context_length_exceeded")
        XCTAssertEqual(APIError.from(engine: GenerationError.invalidSetting("x")).status, 400)
        XCTAssertEqual(APIError.from(engine: GenerationError.emptyPrompt).status, 400)
        XCTAssertEqual(APIError.from(engine: GenerationError.engineFailure("boom")).status, 500)
        XCTAssertEqual(APIError.from(engine: GenerationError.engineFailure("boom")).type, "server_error")
        XCTAssertEqual(APIError.from(engine: GenerationError.notCompiled).status, 503)
        XCTAssertEqual(APIError.from(engine: CocoaError(.fileNoSuchFile)).status, 500)
    }

    func testErrorObjectShape() throws {
        let e = APIError.badRequest("bad \"thing\"\n", param: "max_tokens", code: "invalid_value")
        let obj = try JSONSerialization.jsonObject(with: Data(e.body.utf8)) as! [String: [String: Any]]
        XCTAssertEqual(obj["error"]?["message"] as? String, "bad \"thing\"\n")
        XCTAssertEqual(obj["error"]?["type"] as? String, "invalid_request_error")
        XCTAssertEqual(obj["error"]?["param"] as? String, "max_tokens")
        XCTAssertEqual(obj["error"]?["code"] as? String, "invalid_value")
        let bare = try JSONSerialization.jsonObject(with: Data(APIError.overloaded(limit: 3).body.utf8)) as! [String: [String: Any]]
        XCTAssertTrue(bare["error"]?["param"] is NSNull)
        XCTAssertEqual(APIError.overloaded(limit: 3).status, 429)
        XCTAssertEqual(APIError.tooLarge(limit: 3).status, 413)
        XCTAssertEqual(APIError.draining.status, 503)
    }
}

final class ServerStateTests: XCTestCase {
    static let tinyLlama = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tiny-llama").path

    func makeState(batch: Int, queue: Int) throws -> ServerState {
        let llm = try LLM(Self.tinyLlama)
        try llm.compile(GenerationConfig(), maxRequestsPerBatch: batch, maxSeqLength: 256)
        var options = ServerOptions(modelName: "tiny")
        options.maxRequestsPerBatch = batch
        options.maxQueue = queue
        return ServerState(llm: llm, options: options)
    }

    func testAdmissionLimitAndDraining() throws {
        let state = try makeState(batch: 2, queue: 1)
        var tickets = try (0..<3).map { _ in try state.admit() }
        XCTAssertThrowsError(try state.admit()) { XCTAssertEqual(($0 as? APIError)?.status, 429) }
        tickets[0].release()
        tickets[0].release()  // twice is once
        XCTAssertEqual(state.inFlightCount, 2)
        tickets.removeLast()  // dropping a ticket gives its slot back
        XCTAssertEqual(state.inFlightCount, 1)
        XCTAssertNoThrow(try state.admit().release())
        state.beginDraining()
        XCTAssertThrowsError(try state.admit()) { XCTAssertEqual(($0 as? APIError)?.status, 503) }
        withExtendedLifetime(tickets) {}
    }

    func testMetricsExposition() async throws {
        let state = try makeState(batch: 2, queue: 0)
        _ = try await state.llm.generate("hello", maxNewTokens: 4)
        let text = state.metricsText()
        for name in ["flexserve_requests_total{outcome=\"finished\"} 1", "flexserve_generated_tokens_total 4", "flexserve_kv_blocks_total",
                     "# TYPE flexserve_time_to_first_token_seconds histogram", "flexserve_time_per_output_token_seconds_bucket{le=\"+Inf\"}",
                     "flexserve_speculation_acceptance_rate", "flexserve_tokens_per_step", "flexserve_queue_depth 0"] {
            XCTAssertTrue(text.contains(name), name)
        }
        // every sample line is "name[{labels}] number"
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            XCTAssertEqual(parts.count, 2, String(line))
            XCTAssertNotNil(Double(parts.last!) ?? (parts.last == "+Inf" ? 1 : nil), String(line))
        }
    }
}
