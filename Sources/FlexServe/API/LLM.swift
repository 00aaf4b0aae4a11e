import Foundation
import FlexServeModels
import FlexServeTensor
import FlexServeTokenizers

/// A large language model to serve, as `flexflow.serve.LLM`: load, `compile` with serving limits
/// (and SSMs for speculative inference), then `generate` or `stream`.
public final class LLM: @unchecked Sendable {
    public let path: String
    public let model: any CausalLM
    public let tokenizer: Tokenizer
    public private(set) var defaults = GenerationConfig()
    private(set) var manager: RequestManager?

    /// Loads a model from a HuggingFace folder, a `.gguf` file, or an id already in the HuggingFace cache.
    /// `weightFormat` converts the projection matrices at load (e.g. `.int8Group`, `.int4Group`: FlexFlow's
    /// 8- and 4-bit quantization). `activations: .q8` multiplies integer block formats with int8-quantized
    /// activations (CPU only; llama.cpp's numerics, faster decoding). `device` chooses the CPU backend or a GPU.
    public init(_ model: String, weightFormat: WeightFormat? = nil, activations: ActivationFormat = .f32,
                device: ComputeDevice = .cpu) throws {
        try device.check(activations)
        let path = try ModelLocator.resolve(model)
        let loaded = try ModelLoader.load(path: path, weightFormat: weightFormat, activations: activations, interleaving: device == .cpu)
        self.path = path
        self.model = try device.place(loaded, weightFormat: weightFormat)
        if let gguf = loaded.gguf {
            tokenizer = try Tokenizer(gguf: gguf)
        } else {
            tokenizer = try Tokenizer(tokenizerJSON: (path as NSString).appendingPathComponent("tokenizer.json"))
        }
    }

    public var config: ModelConfig { model.config }

    /// Tokens that end generation: the tokenizer's and the model config's.
    public var eosTokenIDs: Set<Int> { tokenizer.eosTokenIDs.union(model.config.eosTokenIDs) }

    /// Fixes the default generation settings and the serving limits, and starts the engine.
    public func compile(_ config: GenerationConfig = GenerationConfig(), ssms: [SSM] = [],
                        maxRequestsPerBatch: Int = 16, maxSeqLength: Int = 1024, maxTokensPerBatch: Int = 256,
                        kvCacheTokens: Int? = nil, kvCacheType: KVCacheType = .f32, tree: TreeShape = TreeShape()) throws {
        try compile(config, ssms: ssms, options: EngineOptions(
            maxRequestsPerBatch: maxRequestsPerBatch, maxSeqLength: maxSeqLength, maxTokensPerBatch: maxTokensPerBatch,
            kvCacheTokens: kvCacheTokens, kvCacheType: kvCacheType, tree: tree))
    }

    public func compile(_ config: GenerationConfig, ssms: [SSM], options: EngineOptions) throws {
        try config.validate()
        try options.validate()
        for ssm in ssms where ssm.model.config.vocabSize > model.config.vocabSize {
            throw GenerationError.invalidSetting("SSM \(ssm.path) has a larger vocabulary (\(ssm.model.config.vocabSize)) than the LLM (\(model.config.vocabSize))")
        }
        manager?.shutdown()
        defaults = config
        manager = RequestManager(llm: model, ssms: ssms.map(\.model), tokenizer: tokenizer, eos: eosTokenIDs, options: options)
    }

    public var metrics: EngineMetrics { manager?.snapshotMetrics() ?? EngineMetrics() }

    /// Generates a completion of `prompt`; per-call settings override the compiled defaults.
    public func generate(_ prompt: String, maxNewTokens: Int? = nil, config: GenerationConfig? = nil) async throws -> GenerationResult {
        try await generate(tokens: tokenizer.encode(prompt), text: prompt, maxNewTokens: maxNewTokens, config: config)
    }

    /// Generates completions of several prompts, queued together so the engine batches them from its first step; results
    /// in prompt order.
    public func generate(_ prompts: [String], maxNewTokens: Int? = nil, config: GenerationConfig? = nil) async throws -> [GenerationResult] {
        let settings = settings(config, maxNewTokens)
        return try await generate(tokens: prompts.map { tokenizer.encode($0) }, texts: prompts,
                                  configs: Array(repeating: settings, count: prompts.count))
    }

    /// `generate(_:)` from token ids.
    public func generate(tokens prompts: [[Int]], maxNewTokens: Int? = nil, config: GenerationConfig? = nil) async throws -> [GenerationResult] {
        try await generate(tokens: prompts, configs: Array(repeating: settings(config, maxNewTokens), count: prompts.count))
    }

    /// Several requests from token ids, `configs[i]` for prompt i, queued together (all or none: a bad prompt fails the
    /// call before any runs); results in prompt order.
    public func generate(tokens prompts: [[Int]], texts: [String]? = nil, configs: [GenerationConfig]) async throws -> [GenerationResult] {
        guard let manager else { throw GenerationError.notCompiled }
        guard configs.count == prompts.count, texts.map({ $0.count == prompts.count }) ?? true else {
            throw GenerationError.invalidSetting("\(prompts.count) prompts with \(configs.count) configs and \(texts?.count ?? prompts.count) texts")
        }
        let streams = prompts.map { _ in AsyncThrowingStream<GenerationEvent, Error>.makeStream() }
        let requests = try manager.submit(prompts.indices.map { i in
            RequestManager.Submission(text: texts?[i] ?? "", promptIDs: prompts[i], config: configs[i],
                                      emit: Self.forwarding(to: streams[i].continuation))
        })
        for (request, stream) in zip(requests, streams) { stream.continuation.onTermination = { _ in request.cancel() } }
        return try await withThrowingTaskGroup(of: (Int, GenerationResult).self) { group in
            for (i, stream) in streams.enumerated() {
                group.addTask { (i, try await Self.result(of: stream.stream)) }
            }
            var results = [GenerationResult?](repeating: nil, count: prompts.count)
            for try await (i, r) in group { results[i] = r }
            return results.map { $0! }
        }
    }

    /// Generates from token ids (the prompt is not re-tokenized).
    public func generate(tokens: [Int], text: String = "", maxNewTokens: Int? = nil, config: GenerationConfig? = nil) async throws -> GenerationResult {
        try await Self.result(of: events(tokens: tokens, text: text, maxNewTokens: maxNewTokens, config: config))
    }

    /// The result a request's events end with.
    private static func result(of events: AsyncThrowingStream<GenerationEvent, Error>) async throws -> GenerationResult {
        var final: GenerationResult?
        for try await event in events {
            if case .finished(let r) = event { final = r }
        }
        guard let final else { throw GenerationError.cancelled }
        return final
    }

    /// Streams the completion piece by piece as tokens are accepted. Ending the iteration early cancels the request.
    public func stream(_ prompt: String, maxNewTokens: Int? = nil, config: GenerationConfig? = nil) -> AsyncThrowingStream<GenerationPiece, Error> {
        let upstream = events(tokens: tokenizer.encode(prompt), text: prompt, maxNewTokens: maxNewTokens, config: config)
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    for try await event in upstream {
                        if case .piece(let p) = event { continuation.yield(p) }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// The engine's events for one request, as an async sequence: pieces, then the result.
    public func events(tokens: [Int], text: String = "", maxNewTokens: Int? = nil, config: GenerationConfig? = nil) -> AsyncThrowingStream<GenerationEvent, Error> {
        AsyncThrowingStream { continuation in
            guard let manager else {
                continuation.finish(throwing: GenerationError.notCompiled)
                return
            }
            do {
                let request = try manager.submit(text: text, promptIDs: tokens, config: settings(config, maxNewTokens),
                                                 emit: Self.forwarding(to: continuation))
                continuation.onTermination = { _ in request.cancel() }
            } catch {
                continuation.finish(throwing: error)
            }
        }
    }

    /// The compiled defaults with a call's overrides.
    private func settings(_ config: GenerationConfig?, _ maxNewTokens: Int?) -> GenerationConfig {
        var settings = config ?? defaults
        if let maxNewTokens { settings.maxNewTokens = maxNewTokens }
        return settings
    }

    /// A request's engine events as `GenerationEvent`s into `continuation`.
    private static func forwarding(to continuation: AsyncThrowingStream<GenerationEvent, Error>.Continuation) -> (RequestEvent) -> Void {
        { event in
            switch event {
            case .piece(let p): continuation.yield(.piece(p))
            case .finished(let r): continuation.yield(.finished(r)); continuation.finish()
            case .failed(let e): continuation.finish(throwing: e)
            }
        }
    }

    deinit { manager?.shutdown() }
}

/// What the engine reports for a request: text pieces as they are accepted, then the result.
public enum GenerationEvent: Sendable {
    case piece(GenerationPiece)
    case finished(GenerationResult)
}

/// A small speculative model that drafts tokens for an `LLM` (same tokenizer; its vocabulary may be a prefix of the LLM's).
public final class SSM: @unchecked Sendable {
    public let path: String
    public let model: any CausalLM

    public init(_ model: String, weightFormat: WeightFormat? = nil, activations: ActivationFormat = .f32,
                device: ComputeDevice = .cpu) throws {
        try device.check(activations)
        path = try ModelLocator.resolve(model)
        self.model = try device.place(ModelLoader.load(path: path, weightFormat: weightFormat, activations: activations,
                                                       interleaving: device == .cpu),
                                      weightFormat: weightFormat)
    }
}

extension ComputeDevice {
    /// `q8` activations are a choice of the CPU kernels; a GPU computes in its data type.
    fileprivate func check(_ activations: ActivationFormat) throws {
        guard activations == .f32 || self == .cpu else {
            throw GenerationError.invalidSetting("--activations q8 applies to the CPU backend only (this model runs on \(self))")
        }
    }
}
