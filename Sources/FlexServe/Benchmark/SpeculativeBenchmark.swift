import Foundation
import FlexServeTensor
import FlexServeTokenizers

/// Incremental decoding and speculative inference on the same prompts, one request at a time
/// (batch 1, the latency case), in the same process: tokens/s of each, their ratio, tokens per
/// LLM step, acceptance by depth, and where speculative time goes (drafting vs verifying).
public struct SpeculativeBenchmark {
    public struct ModeResult: Codable, Sendable {
        public var mode: String
        public var requests: Int
        public var generatedTokens: Int
        public var seconds: Double
        public var tokensPerSecond: Double
        public var llmSteps: Int
        public var tokensPerLLMStep: Double
        public var meanTimeToFirstTokenMs: Double
        public var draftingSeconds: Double
        public var verifyingSeconds: Double
        public var acceptanceByDepth: [Double]
        /// Requests whose tokens differ from incremental decoding (greedy must give 0).
        public var mismatches: Int
    }

    public struct Report: Codable, Sendable {
        public var model: String
        public var ssms: [String]
        public var dataset: String
        public var maxNewTokens: Int
        public var tree: TreeShape
        public var machine: MachineProbe?
        public var results: [ModeResult]
        public var speedup: Double
    }

    public var llm: LLM
    public var ssms: [SSM]
    public var tree: TreeShape
    public var maxNewTokens: Int
    public var kvCacheType: KVCacheType

    public init(llm: LLM, ssms: [SSM], tree: TreeShape, maxNewTokens: Int, kvCacheType: KVCacheType = .f32) {
        self.llm = llm
        self.ssms = ssms
        self.tree = tree
        self.maxNewTokens = maxNewTokens
        self.kvCacheType = kvCacheType
    }

    /// Wraps a user prompt in the model's chat template when it has one.
    public static func chatPrompt(_ text: String, tokenizer: Tokenizer) -> String {
        guard let source = tokenizer.chatTemplate, let template = try? ChatTemplate(source),
              let rendered = try? template.render(messages: [ChatMessage(role: "user", content: text)], addGenerationPrompt: true,
                                                  bosToken: tokenizer.bosTokenID.flatMap { tokenizer.token($0) } ?? "",
                                                  eosToken: tokenizer.eosTokenID.flatMap { tokenizer.token($0) } ?? "")
        else { return text }
        return rendered
    }

    public func run(prompts: [String], dataset: String, progress: (String) -> Void = { _ in }) async throws -> Report {
        let config = GenerationConfig(doSample: false, maxNewTokens: maxNewTokens)
        var reference: [[Int]] = []
        var results: [ModeResult] = []
        let speculates = !ssms.isEmpty || tree.promptLookup > 0
        for (mode, drafts) in [("incremental", [SSM]()), ("speculative", ssms)] where mode == "incremental" || speculates {
            try llm.compile(config, ssms: drafts, options: EngineOptions(maxRequestsPerBatch: 1, maxSeqLength: 2048,
                                                                         maxTokensPerBatch: 512, kvCacheType: kvCacheType,
                                                                         tree: mode == "incremental" ? TreeShape(depth: 0) : tree))
            var outputs: [GenerationResult] = []
            let start = Date()
            for (i, p) in prompts.enumerated() {
                outputs.append(try await llm.generate(p, config: config))
                progress("\(mode) \(i + 1)/\(prompts.count)")
            }
            let seconds = Date().timeIntervalSince(start)
            var spec = SpeculationStats()
            outputs.forEach { spec.add($0.speculation) }
            let tokens = outputs.reduce(0) { $0 + $1.outputTokens.count }
            let steps = outputs.reduce(0) { $0 + $1.llmDecodingSteps }
            if mode == "incremental" { reference = outputs.map(\.outputTokens) }
            results.append(ModeResult(
                mode: mode, requests: outputs.count, generatedTokens: tokens, seconds: seconds,
                tokensPerSecond: Double(tokens) / seconds, llmSteps: steps, tokensPerLLMStep: Double(tokens) / Double(max(1, steps)),
                meanTimeToFirstTokenMs: outputs.reduce(0) { $0 + $1.timeToFirstTokenSeconds } / Double(max(1, outputs.count)) * 1000,
                draftingSeconds: spec.draftingSeconds, verifyingSeconds: spec.verifyingSeconds,
                acceptanceByDepth: spec.acceptanceRateByDepth,
                mismatches: zip(outputs, reference).filter { $0.outputTokens != $1 }.count))
        }
        let speedup = results.count == 2 ? results[1].tokensPerSecond / results[0].tokensPerSecond : 1
        return Report(model: llm.path, ssms: ssms.map(\.path), dataset: dataset, maxNewTokens: maxNewTokens, tree: tree,
                      machine: nil, results: results, speedup: speedup)
    }
}
