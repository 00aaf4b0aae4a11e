import FlexServe
import FlexServeTokenizers
import Foundation
import Hummingbird
import NIOCore

/// A checked generation request, ready for the engine.
struct Job: Sendable {
    var tokens: [Int]
    var text: String
    var config: GenerationConfig
}

/// What a streaming response's writer gets from the engine and the heartbeat.
private enum Outgoing: Sendable {
    case event(GenerationEvent)
    case failure(Error)
    case heartbeat
}

struct Handlers: Sendable {
    let state: ServerState

    var llm: LLM { state.llm }
    var options: ServerOptions { state.options }

    // MARK: GET endpoints

    func health() -> Response {
        state.isDraining
            ? json(.object([("status", .string("draining"))]), status: .serviceUnavailable)
            : json(.object([("status", .string("ok"))]))
    }

    func metrics() -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: state.metricsText())))
    }

    private var modelObject: Out {
        .object([
            ("id", .string(options.modelName)),
            ("object", .string("model")),
            ("created", .int(state.created)),
            ("owned_by", .string("flexserve")),
            ("max_model_len", .int(options.maxSequenceLength)),
        ])
    }

    func models() -> Response {
        json(.object([("object", .string("list")), ("data", .array([modelObject]))]))
    }

    func model(_ id: String) throws -> Response {
        guard state.servesModel(id) else { throw APIError.modelNotFound(id) }
        return json(modelObject)
    }

    // MARK: POST endpoints

    func completions(_ request: Request, channel: any Channel) async throws -> Response {
        try await withBody(request, channel) { body in
            let f = try Fields(body)
            let s = try SamplingRequest(f, maxTokensKeys: ["max_tokens"])
            try checkModel(s.model)
            let echo = try f.bool("echo") ?? false
            if let suffix = try f.string("suffix"), !suffix.isEmpty {
                throw APIError.badRequest("'suffix' is not supported.", param: "suffix", code: "unsupported_value")
            }
            let (ids, text) = try promptTokens(parsePrompt(f))
            let job = try makeJob(ids: ids, text: text, sampling: s, defaultMaxTokens: options.defaultCompletionMaxTokens, promptParam: "prompt")
            let ticket = try state.admit()
            let id = "cmpl-" + randomID()
            let created = Int(Date().timeIntervalSince1970)
            let model = options.modelName
            let prefix = echo ? text : ""

            @Sendable func chunk(_ text: String, finish: FinishReason?) -> Out {
                var members: [(String, Out)] = [
                    ("id", .string(id)), ("object", .string("text_completion")), ("created", .int(created)), ("model", .string(model)),
                    ("choices", .array([.object([
                        ("text", .string(text)), ("index", .int(0)), ("logprobs", .null),
                        ("finish_reason", finish.map { .string(openAIReason($0)) } ?? .null),
                    ])])),
                ]
                if s.includeUsage { members.append(("usage", .null)) }
                return .object(members)
            }

            if s.stream {
                return sse(job, ticket: ticket,
                           head: prefix.isEmpty ? [] : [chunk(prefix, finish: nil)],
                           piece: { p in
                               var out: [Out] = []
                               if !p.text.isEmpty { out.append(chunk(p.text, finish: nil)) }
                               if let r = p.finishReason { out.append(chunk("", finish: r)) }
                               return out
                           },
                           final: { r in
                               guard s.includeUsage else { return [] }
                               return [.object([
                                   ("id", .string(id)), ("object", .string("text_completion")), ("created", .int(created)),
                                   ("model", .string(model)), ("choices", .array([])), ("usage", usage(r)),
                               ])]
                           })
            }
            defer { ticket.release() }
            let r = try await runToEnd(job)
            return json(.object([
                ("id", .string(id)), ("object", .string("text_completion")), ("created", .int(created)), ("model", .string(model)),
                ("choices", .array([.object([
                    ("text", .string(prefix + r.outputText)), ("index", .int(0)), ("logprobs", .null),
                    ("finish_reason", .string(openAIReason(r.finishReason))),
                ])])),
                ("usage", usage(r)),
            ]))
        }
    }

    func chat(_ request: Request, channel: any Channel) async throws -> Response {
        try await withBody(request, channel) { body in
            let f = try Fields(body)
            let s = try SamplingRequest(f, maxTokensKeys: ["max_completion_tokens", "max_tokens"])
            try checkModel(s.model)
            let messages = try parseMessages(f)
            guard let template = state.template else {
                throw APIError.badRequest(state.templateError ?? "no chat template", param: "messages", code: "no_chat_template")
            }
            let prompt: String
            do {
                prompt = try template.render(messages: messages, addGenerationPrompt: true,
                                             bosToken: state.bosToken, eosToken: state.eosToken)
            } catch let e as ChatTemplateError {
                // Templates raise for conversations they refuse (e.g. roles out of order): the client's mistake.
                throw APIError.badRequest("The chat template rejected the messages: \(e.message)", param: "messages", code: "invalid_messages")
            }
            let ids = llm.tokenizer.encode(prompt, addSpecialTokens: false)
            let job = try makeJob(ids: ids, text: prompt, sampling: s, defaultMaxTokens: nil, promptParam: "messages")
            let ticket = try state.admit()
            let id = "chatcmpl-" + randomID()
            let created = Int(Date().timeIntervalSince1970)
            let model = options.modelName

            @Sendable func chunk(_ delta: Out, finish: FinishReason?) -> Out {
                var members: [(String, Out)] = [
                    ("id", .string(id)), ("object", .string("chat.completion.chunk")), ("created", .int(created)),
                    ("model", .string(model)), ("system_fingerprint", .string("flexserve")),
                    ("choices", .array([.object([
                        ("index", .int(0)), ("delta", delta), ("logprobs", .null),
                        ("finish_reason", finish.map { .string(openAIReason($0)) } ?? .null),
                    ])])),
                ]
                if s.includeUsage { members.append(("usage", .null)) }
                return .object(members)
            }

            if s.stream {
                return sse(job, ticket: ticket,
                           head: [chunk(.object([("role", .string("assistant")), ("content", .string(""))]), finish: nil)],
                           piece: { p in
                               var out: [Out] = []
                               if !p.text.isEmpty { out.append(chunk(.object([("content", .string(p.text))]), finish: nil)) }
                               if let r = p.finishReason { out.append(chunk(.object([]), finish: r)) }
                               return out
                           },
                           final: { r in
                               guard s.includeUsage else { return [] }
                               return [.object([
                                   ("id", .string(id)), ("object", .string("chat.completion.chunk")), ("created", .int(created)),
                                   ("model", .string(model)), ("system_fingerprint", .string("flexserve")),
                                   ("choices", .array([])), ("usage", usage(r)),
                               ])]
                           })
            }
            defer { ticket.release() }
            let r = try await runToEnd(job)
            return json(.object([
                ("id", .string(id)), ("object", .string("chat.completion")), ("created", .int(created)), ("model", .string(model)),
                ("system_fingerprint", .string("flexserve")),
                ("choices", .array([.object([
                    ("index", .int(0)),
                    ("message", .object([("role", .string("assistant")), ("content", .string(r.outputText))])),
                    ("logprobs", .null),
                    ("finish_reason", .string(openAIReason(r.finishReason))),
                ])])),
                ("usage", usage(r)),
            ]))
        }
    }

    /// FlexFlow's `POST /generate`: `{"prompt", "max_new_tokens"}` → `{"text", "tokens", ...}`, with the
    /// server's compiled generation settings unless the request overrides them.
    func generate(_ request: Request, channel: any Channel) async throws -> Response {
        try await withBody(request, channel) { body in
            let f = try Fields(body)
            guard let v = f.value("prompt") else {
                throw APIError.badRequest("Missing required parameter: 'prompt'.", param: "prompt", code: "missing_required_parameter")
            }
            guard case .string(let prompt) = v else { throw APIError.wrongType("prompt", expected: "a string", got: v) }
            var config = llm.defaults
            if let n = try f.int("max_new_tokens") {
                guard n >= 0 else {
                    throw APIError.badRequest("'max_new_tokens' must be >= 0, got \(n).", param: "max_new_tokens", code: "invalid_value")
                }
                config.maxNewTokens = Int(clamping: n)
            }
            if let b = try f.bool("do_sample") { config.doSample = b }
            if let t = try f.number("temperature") { config.temperature = Float(t) }
            if let p = try f.number("topp") ?? f.number("top_p") { config.topP = Float(p) }
            if let k = try f.int("topk") ?? f.int("top_k") { config.topK = Int(clamping: k) }
            if let s = try f.int("seed") { config.seed = UInt64(bitPattern: s) }
            if let stop = f.value("stop") {
                switch stop {
                case .string(let s): config.stop = [s]
                case .array(let items):
                    config.stop = try items.map {
                        guard case .string(let s) = $0 else { throw APIError.wrongType("stop", expected: "a string or an array of strings", got: $0) }
                        return s
                    }
                default: throw APIError.wrongType("stop", expected: "a string or an array of strings", got: stop)
                }
            }
            do { try config.validate() } catch { throw APIError.from(engine: error) }
            let ids = llm.tokenizer.encode(prompt)
            try checkPromptLength(ids.count, param: "prompt")
            let limit = options.maxSequenceLength - ids.count
            if let n = config.maxNewTokens, n > limit {
                throw contextError(promptTokens: ids.count, maxTokens: n, param: "max_new_tokens")
            }
            let ticket = try state.admit()
            defer { ticket.release() }
            let r = try await runToEnd(Job(tokens: ids, text: prompt, config: config))
            return json(.object([
                ("prompt", .string(prompt)),
                ("text", .string(r.outputText)),
                ("response", .string(r.outputText)),
                ("tokens", .array(r.outputTokens.map(Out.int))),
                ("prompt_tokens", .int(r.promptTokens.count)),
                ("finish_reason", .string(r.finishReason.rawValue)),
                ("llm_decoding_steps", .int(r.llmDecodingSteps)),
            ]))
        }
    }

    // MARK: helpers

    /// Reads and parses the body (413 past the limit) and runs `operation`; a client that closes
    /// its connection before the response starts cancels it (and so its engine request).
    private func withBody(_ request: Request, _ channel: any Channel, _ operation: @escaping @Sendable (JSON) async throws -> Response) async throws -> Response {
        if state.isDraining { throw APIError.draining }
        let limit = options.maxBodyBytes
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw APIError.tooLarge(limit: limit)
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw APIError.tooLarge(limit: limit)
        }
        let body = try JSON.parse(Data(buffer.readableBytesView))
        // A client that disconnects before the response starts cancels this task (and its engine request).
        return try await cancellingOnDisconnect(channel) { try await operation(body) }
    }

    private func checkModel(_ name: String?) throws {
        if let name, !state.servesModel(name) { throw APIError.modelNotFound(name) }
    }

    private func promptTokens(_ prompt: PromptInput) throws -> ([Int], String) {
        switch prompt {
        case .text(let text):
            return (llm.tokenizer.encode(text), text)
        case .tokens(let ids):
            let vocab = llm.config.vocabSize
            if let bad = ids.first(where: { $0 < 0 || $0 >= vocab }) {
                throw APIError.badRequest("Token id \(bad) in 'prompt' is outside the vocabulary (0..<\(vocab)).", param: "prompt", code: "invalid_value")
            }
            return (ids, llm.tokenizer.decode(ids))
        }
    }

    private func checkPromptLength(_ count: Int, param: String) throws {
        guard count > 0 else {
            throw APIError.badRequest("The prompt is empty (it has no tokens).", param: param, code: "invalid_value")
        }
        guard count < options.maxSequenceLength else {
            throw APIError.badRequest("This model's maximum context length is \(options.maxSequenceLength) tokens. However, your prompt has \(count) tokens, which leaves no room for a completion. Please reduce the length of the prompt.",
                                      param: param, code: "context_length_exceeded")
        }
    }

    private func contextError(promptTokens: Int, maxTokens: Int, param: String) -> APIError {
        .badRequest("This model's maximum context length is \(options.maxSequenceLength) tokens. However, you requested \(promptTokens + maxTokens) tokens (\(promptTokens) in the prompt, \(maxTokens) for the completion). Please reduce the length of the prompt or the completion.",
                    param: param, code: "context_length_exceeded")
    }

    private func makeJob(ids: [Int], text: String, sampling s: SamplingRequest, defaultMaxTokens: Int?, promptParam: String) throws -> Job {
        try checkPromptLength(ids.count, param: promptParam)
        let room = options.maxSequenceLength - ids.count
        let maxTokens: Int
        if let n = s.maxTokens {
            guard n <= room else { throw contextError(promptTokens: ids.count, maxTokens: n, param: s.maxTokensParam) }
            maxTokens = n
        } else {
            maxTokens = min(defaultMaxTokens ?? room, room)
        }
        let config = s.generationConfig(maxNewTokens: maxTokens)
        do { try config.validate() } catch { throw APIError.from(engine: error) }
        return Job(tokens: ids, text: text, config: config)
    }

    /// Runs a request to its end; cancelled (and its KV blocks freed) if this task is cancelled.
    private func runToEnd(_ job: Job) async throws -> GenerationResult {
        var result: GenerationResult?
        do {
            for try await event in llm.events(tokens: job.tokens, text: job.text, config: job.config) {
                if case .finished(let r) = event { result = r }
            }
        } catch {
            throw APIError.from(engine: error)
        }
        guard let result else { throw CancellationError() }
        state.record(result)
        return result
    }

    /// A server-sent event stream: `head` chunks, then the chunks of every piece, then `final`'s, then `[DONE]`.
    /// The engine request starts when the body is written and is cancelled if a write fails (client gone).
    private func sse(_ job: Job, ticket: Ticket, head: [Out], piece: @escaping @Sendable (GenerationPiece) -> [Out],
                     final: @escaping @Sendable (GenerationResult) -> [Out]) -> Response {
        let state = self.state
        let heartbeat = UInt64(max(0.05, options.heartbeatSeconds) * 1e9)
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream; charset=utf-8"
        headers[.cacheControl] = "no-cache"
        let body = ResponseBody { writer in
            defer { ticket.release() }
            let (out, sink) = AsyncStream<Outgoing>.makeStream()
            let producer = Task {
                do {
                    for try await event in state.llm.events(tokens: job.tokens, text: job.text, config: job.config) {
                        sink.yield(.event(event))
                    }
                } catch {
                    sink.yield(.failure(error))
                }
                sink.finish()
            }
            let beat = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(nanoseconds: heartbeat)
                    sink.yield(.heartbeat)
                }
            }
            defer {
                producer.cancel()
                beat.cancel()
            }
            var lastWrite = DispatchTime.now().uptimeNanoseconds
            func send(_ chunks: [Out], _ writer: inout any ResponseBodyWriter) async throws {
                guard !chunks.isEmpty else { return }
                var text = ""
                for c in chunks { text += "data: "; c.write(into: &text); text += "\n\n" }
                try await writer.write(ByteBuffer(string: text))
                lastWrite = DispatchTime.now().uptimeNanoseconds
            }
            try await send(head, &writer)
            for await item in out {
                switch item {
                case .event(.piece(let p)):
                    try await send(piece(p), &writer)
                case .event(.finished(let r)):
                    state.record(r)
                    try await send(final(r), &writer)
                case .failure(let error):
                    try await send([APIError.from(engine: error).json], &writer)
                case .heartbeat:
                    if DispatchTime.now().uptimeNanoseconds - lastWrite >= heartbeat / 2 {
                        try await writer.write(ByteBuffer(string: ": ping\n\n"))
                        lastWrite = DispatchTime.now().uptimeNanoseconds
                    }
                }
            }
            try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }
}

func json(_ value: Out, status: HTTPResponse.Status = .ok) -> Response {
    var headers = HTTPFields()
    headers[.contentType] = "application/json"
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: value.text)))
}

func usage(_ r: GenerationResult) -> Out {
    .object([
        ("prompt_tokens", .int(r.promptTokens.count)),
        ("completion_tokens", .int(r.outputTokens.count)),
        ("total_tokens", .int(r.promptTokens.count + r.outputTokens.count)),
        ("prompt_tokens_details", .object([("cached_tokens", .int(r.cachedPromptTokens))])),
    ])
}

func openAIReason(_ reason: FinishReason) -> String {
    switch reason {
    case .stop: return "stop"
    case .length: return "length"
    case .cancelled: return "abort"
    }
}

func randomID() -> String {
    var g = SystemRandomNumberGenerator()
    return (0..<24).map { _ in String("0123456789abcdefghijklmnopqrstuvwxyz".randomElement(using: &g)!) }.joined()
}
