import Foundation
import FlexServeCUDA

extension GPUCheck {
    /// Speculative inference with the LLM and its SSM both on the GPU, against incremental decoding on the GPU,
    /// for one tree shape: `SpeculativeBenchmark`'s report (tokens/s of each mode, tokens per LLM step, drafting and
    /// verifying time, and the requests whose greedy tokens differ from incremental decoding: 0 is the claim).
    public struct Speculative: Codable, Sendable {
        public var tree: String
        public var dataType: String
        /// How the GPU models run their steps (`CUDALlama.Options.summary`), e.g. "gemv<=16+graphs".
        public var llmExecution: String
        public var ssmExecution: String
        /// The LLM's CUDA graph captures and replays over the whole run, and why graphs were given up if they were.
        public var graphCaptures: Int
        public var graphReplays: Int
        public var graphFailure: String?
        public var report: SpeculativeBenchmark.Report
    }

    /// A tree shape by name: `chainN` (one child per depth) or `flexflowN` (FlexFlow's schedule, 3 children at depth 3).
    public static func treeShape(named name: String) -> TreeShape? {
        if name.hasPrefix("chain"), let depth = Int(name.dropFirst(5)), depth > 0 {
            return TreeShape(depth: depth, expansion: Array(repeating: 1, count: depth))
        }
        if name.hasPrefix("flexflow"), let depth = Int(name.dropFirst(8)), depth > 0 {
            return TreeShape(depth: depth, expansion: TreeShape.flexFlow(depth: depth, expansionDegree: 3))
        }
        return nil
    }

    /// Loads the LLM and the SSM on the GPU once, then runs incremental and speculative decoding per tree (batch 1,
    /// greedy). A tree whose run throws is logged and skipped, so one failure does not lose the others.
    public static func speculative(model: String, ssm: String, prompts: [String], maxNewTokens: Int, dataType: CUDADataType,
                                   trees: [String], chat: Bool = true,
                                   log: @escaping (String) -> Void = { _ in }) async throws -> [Speculative] {
        let start = Date()
        let llm = try LLM(model, device: .cuda(dataType))
        let draft = try SSM(ssm, device: .cuda(dataType))
        guard let gpuLLM = llm.model as? CUDALlama, let gpuSSM = draft.model as? CUDALlama else {
            throw CUDAError.unsupported("the LLM or the SSM did not load on the GPU")
        }
        log(String(format: "loaded LLM (%.0f MB) and SSM (%.0f MB, vocabulary %d, OOV input id %@) on the GPU in %.1f s",
                   Double(gpuLLM.weightBytes) / 1e6, Double(gpuSSM.weightBytes) / 1e6, gpuSSM.config.vocabSize,
                   gpuSSM.config.draftOOVTokenID.map(String.init) ?? "none (0)", Date().timeIntervalSince(start)))
        let texts = chat ? prompts.map { SpeculativeBenchmark.chatPrompt($0, tokenizer: llm.tokenizer) } : prompts
        // Warm-up (cuBLAS's first calls, first graph captures) outside the timed runs, through both models.
        if let first = texts.first {
            try llm.compile(GenerationConfig(doSample: false), ssms: [draft], options: EngineOptions(
                maxRequestsPerBatch: 1, maxSeqLength: 2048, maxTokensPerBatch: 512, tree: TreeShape(depth: 4, expansion: [1, 1, 1, 1])))
            _ = try await llm.generate(first, maxNewTokens: 16)
        }
        var results: [Speculative] = []
        for name in trees {
            guard let shape = treeShape(named: name) else {
                log("unknown tree '\(name)' (chainN or flexflowN): skipped")
                continue
            }
            do {
                let bench = SpeculativeBenchmark(llm: llm, ssms: [draft], tree: shape, maxNewTokens: maxNewTokens)
                let report = try await bench.run(prompts: texts, dataset: "gpu-prompts") { _ in }
                results.append(Speculative(tree: name, dataType: dataType.rawValue, llmExecution: gpuLLM.options.summary,
                                           ssmExecution: gpuSSM.options.summary, graphCaptures: gpuLLM.graphCaptures,
                                           graphReplays: gpuLLM.graphReplays, graphFailure: gpuLLM.graphFailure, report: report))
                for r in report.results {
                    log(String(format: "%@ %@: %.1f tokens/s, %.2f tokens per LLM step, %d mismatches", name, r.mode,
                               r.tokensPerSecond, r.tokensPerLLMStep, r.mismatches))
                }
            } catch {
                log("tree \(name) failed: \(error)")
            }
        }
        return results
    }
}
