import ArgumentParser
import FlexServe
import Foundation

/// FlexFlow's `incr_decoding`: plain incremental decoding over a prompt file.
struct IncrDecodingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "incr-decoding", abstract: "Incremental decoding (no speculation) over a prompt file.")

    @OptionGroup var options: ServingOptions

    mutating func run() async throws {
        try await runDecoding(options: options, ssmModels: [], tree: TreeShape(depth: 0))
    }
}

/// FlexFlow's `spec_infer`: speculative inference with one or more SSMs.
struct SpecInferCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "spec-infer", abstract: "Speculative inference: SSMs draft token trees, the LLM verifies them.")

    @OptionGroup var options: ServingOptions

    @Option(name: [.customLong("ssm-model"), .customLong("ssm-model", withSingleDash: true)], help: "SSM (repeatable).")
    var ssmModels: [String] = []

    @OptionGroup var tree: TreeOptions

    mutating func run() async throws {
        guard !ssmModels.isEmpty || tree.promptLookup > 0 else { throw ValidationError("spec-infer needs at least one --ssm-model (or --prompt-lookup)") }
        try await runDecoding(options: options, ssmModels: ssmModels, tree: try tree.shape)
    }
}

func runDecoding(options: ServingOptions, ssmModels: [String], tree: TreeShape) async throws {
    try options.checkSupported()
    guard let promptPath = options.prompt else { throw ValidationError("--prompt FILE is required") }
    let prompts = try PromptFile.load(promptPath)
    let status = LoadingStatus()
    status.begin(options.llmModel)
    let device = try options.computeDevice()
    let llm = try LLM(options.llmModel, weightFormat: options.weightFormat, activations: options.activations, device: device)
    let ssms = try ssmModels.map { try SSM($0, weightFormat: options.weightFormat, activations: options.activations, device: device) }
    status.done(([options.llmModel] + ssmModels).joined(separator: ", "))
    try llm.compile(options.generationConfig, ssms: ssms, options: EngineOptions(
        maxRequestsPerBatch: options.maxRequestsPerBatch, maxSeqLength: options.maxSequenceLength,
        maxTokensPerBatch: options.maxTokensPerBatch, kvCacheType: options.kvCacheType, tree: tree,
        prefixCaching: options.prefixCaching))

    let start = Date()
    // All prompts queued at once, as FlexFlow registers them before it runs.
    let results = try await llm.generate(tokens: prompts.map { llm.tokenizer.encode($0.text) }, texts: prompts.map(\.text),
                                         configs: prompts.map { p in
                                             var config = options.generationConfig
                                             if let n = p.maxNewTokens { config.maxNewTokens = n }
                                             return config
                                         })
    let seconds = Date().timeIntervalSince(start)

    var report = ""
    for r in results {
        report += OutputFile.entry(r)
        print("--- guid \(r.guid): \(r.outputTokens.count) tokens in \(r.llmDecodingSteps) LLM steps")
        if options.verbose { print(verboseLine(r)) }
        print(r.inputText + r.outputText)
    }
    if let path = options.outputFile {
        try report.write(toFile: path, atomically: true, encoding: .utf8)
    }
    let tokens = results.reduce(0) { $0 + $1.outputTokens.count }
    let steps = results.reduce(0) { $0 + $1.llmDecodingSteps }
    var summary = String(format: "\n%d requests, %d new tokens in %.2f s: %.1f tokens/s, %.2f tokens per LLM step",
                         results.count, tokens, seconds, Double(tokens) / seconds, Double(tokens) / Double(max(1, steps)))
    var spec = SpeculationStats()
    results.forEach { spec.add($0.speculation) }
    if spec.verifySteps > 0 {
        summary += String(format: "; drafting %.2f s, verifying %.2f s", spec.draftingSeconds, spec.verifyingSeconds)
    }
    print(summary)
}

/// `--verbose`'s line for a request.
func verboseLine(_ r: GenerationResult) -> String {
    var line = String(format: "prompt %d tokens (%d from the prefix cache), latency %.1f ms, first token %.1f ms, finished: %@", r.promptTokens.count, r.cachedPromptTokens,
                      1e3 * r.latencySeconds, 1e3 * r.timeToFirstTokenSeconds, r.finishReason.rawValue as NSString)
    let s = r.speculation
    if s.verifySteps > 0 {
        line += String(format: "; %d trees of %.1f nodes, %.2f tokens a step, accepted by depth %@", s.verifySteps,
                       Double(s.draftedNodes) / Double(s.verifySteps), s.tokensPerStep,
                       s.acceptanceRateByDepth.map { String(format: "%.2f", $0) }.joined(separator: " ") as NSString)
    }
    return line
}

/// FlexFlow's output file format.
enum OutputFile {
    static func entry(_ r: GenerationResult) -> String {
        let latency = Int(r.latencySeconds * 1e6), ttft = Int(r.timeToFirstTokenSeconds * 1e6)
        let ids = (r.promptTokens + r.outputTokens).map(String.init).joined(separator: ",")
        return "[Profile] guid(\(r.guid)) llm_decoding_steps(\(r.llmDecodingSteps)) latency(\(latency)) ttft(\(ttft))\n"
            + "token IDs: \(ids)\n" + r.inputText + r.outputText + "\n"
    }
}
