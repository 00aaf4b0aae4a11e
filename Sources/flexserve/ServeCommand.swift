import ArgumentParser
import FlexServe
import FlexServeTensor
import FlexServeServer
import Foundation
import Logging

/// `flexserve serve`: the OpenAI-compatible HTTP server (and FlexFlow's /generate).
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a model over HTTP: OpenAI /v1/completions, /v1/chat/completions, /v1/models, /health, /metrics and FlexFlow's /generate.")

    @Option(name: [.customLong("model"), .customLong("llm-model")], help: "LLM: a HuggingFace folder, a .gguf file, or a hub id in the cache.")
    var model: String
    @Option(name: .customLong("ssm-model"), help: "SSM for speculative decoding (repeatable).")
    var ssmModels: [String] = []
    @Option var host = "127.0.0.1"
    @Option(help: "TCP port (0 picks a free one; the bound port is printed).") var port = 8000
    @Option(name: .customLong("served-model-name"), help: "The model name clients use (default: the model file or folder name).")
    var servedModelName: String?

    @Option(name: .customLong("max-requests-per-batch")) var maxRequestsPerBatch = 16
    @Option(name: .customLong("max-tokens-per-batch")) var maxTokensPerBatch = 256
    @Option(name: [.customLong("max-sequence-length"), .customLong("max-seq-length")],
            help: "Prompt plus generated tokens per request (default: the model's context, at most 1024).")
    var maxSequenceLength: Int?
    @Option(name: .customLong("kv-cache-tokens"), help: "KV-cache capacity in tokens (default: a full sequence per batch slot).")
    var kvCacheTokens: Int?
    @Option(name: .customLong("kv-cache-dtype"), help: "How the KV cache holds keys and values: f32 (as computed) or f16 (half the memory and attention reads).")
    var kvCacheType: KVCacheType = .f32
    @Flag(inversion: .prefixedEnableDisable, help: "Share the KV blocks of prompts that start alike (vLLM's automatic prefix caching).")
    var prefixCaching = true
    @Option(name: .customLong("max-queue"), help: "Requests that may wait beyond the running batch; more get 429.")
    var maxQueue = 256
    @Option(name: .customLong("max-body-bytes"), help: "Largest request body; larger ones get 413.")
    var maxBodyBytes = 4 << 20
    @Option(name: .customLong("chat-template"), help: "A Jinja chat template file to use instead of the model's own.")
    var chatTemplate: String?
    @Option(name: .customLong("drain-timeout"), help: "Seconds SIGTERM waits for in-flight requests.")
    var drainTimeout = 300.0

    @OptionGroup var tree: TreeOptions
    @Option(help: "Activations against quantized weights: f32 (reference numerics) or q8 (int8 dot products: faster on CPUs with AVX-512 VNNI or AVX2, slower elsewhere).")
    var activations: ActivationFormat = .f32

    @Flag(name: .customLong("verbose"), help: "Log every request.") var verbose = false
    @OptionGroup var threads: ThreadOptions

    mutating func run() async throws {
        threads.apply()
        let status = LoadingStatus()
        status.begin(model)
        let llm = try LLM(model, activations: activations)
        let ssms = try ssmModels.map { try SSM($0, activations: activations) }
        status.done(([model] + ssmModels).joined(separator: ", "))

        let contextLimit = llm.config.maxPositionEmbeddings > 0 ? llm.config.maxPositionEmbeddings : 1024
        let seqLength = maxSequenceLength ?? min(1024, contextLimit)
        try llm.compile(GenerationConfig(), ssms: ssms, options: EngineOptions(
            maxRequestsPerBatch: maxRequestsPerBatch, maxSeqLength: seqLength, maxTokensPerBatch: maxTokensPerBatch,
            kvCacheTokens: kvCacheTokens, kvCacheType: kvCacheType, tree: try tree.shape, prefixCaching: prefixCaching))

        var options = ServerOptions(modelName: servedModelName ?? Self.defaultName(llm.path))
        options.modelAliases = Array(Set([model, llm.path, Self.defaultName(llm.path)]))
        options.host = host
        options.port = port
        options.maxQueue = maxQueue
        options.maxRequestsPerBatch = maxRequestsPerBatch
        options.maxSequenceLength = seqLength
        options.maxBodyBytes = maxBodyBytes
        options.drainTimeoutSeconds = drainTimeout
        if let chatTemplate {
            guard let source = try? String(contentsOfFile: chatTemplate, encoding: .utf8) else {
                throw ValidationError("cannot read chat template file \(chatTemplate)")
            }
            options.chatTemplate = source
        }
        guard maxQueue >= 0 else { throw ValidationError("--max-queue must be >= 0") }

        let server = FlexServeHTTPServer(llm: llm, options: options)
        var logger = Logger(label: "flexserve")
        logger.logLevel = verbose ? .info : .warning
        let name = options.modelName
        let host = self.host
        let speculative = ssms.isEmpty ? "" : " with \(ssms.count) SSM(s)"
        try await server.run(logger: logger) { boundPort in
            print("FlexServe serving \(name)\(speculative) on http://\(host):\(boundPort) (max sequence length \(seqLength))")
            fflush(stdout)
        }
        let m = llm.metrics
        FileHandle.standardError.write("FlexServe stopped after \(m.requestsFinished) finished and \(m.requestsCancelled) cancelled requests\n".data(using: .utf8)!)
    }

    /// The file or folder name without a .gguf extension.
    static func defaultName(_ path: String) -> String {
        var name = (path as NSString).lastPathComponent
        if name.hasSuffix(".gguf") { name = String(name.dropLast(5)) }
        return name
    }
}
