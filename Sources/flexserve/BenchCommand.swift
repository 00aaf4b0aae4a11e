import ArgumentParser
import FlexServe
import Foundation

/// `flexserve bench`: speculative vs incremental decoding on a prompt dataset, in one run.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmark speculative inference against incremental decoding on a prompt dataset (batch 1, greedy).",
        discussion: "Prints a table and writes JSON. Prompts are wrapped in the model's chat template. Datasets come from `flexserve datasets build`.")

    @Option(name: [.customLong("llm-model"), .customLong("model")]) var llmModel: String
    @Option(name: .customLong("ssm-model")) var ssmModels: [String] = []
    @Option(help: "Dataset name in datasets/ (e.g. sharegpt-eval) or a JSON prompt file.") var dataset = "sharegpt-eval"
    @Option(name: .customLong("num-prompts")) var numPrompts = 32
    @Option(name: .customLong("max-new-tokens")) var maxNewTokens = 128
    @Option(name: .customLong("max-tree-depth")) var maxTreeDepth = 8
    @Option(name: .customLong("expansion-degree")) var expansionDegree = 3
    @Option(name: .customLong("max-prompt-chars"), help: "Skip prompts longer than this.") var maxPromptChars = 2000
    @Flag(name: .customLong("raw"), help: "Do not apply the chat template.") var raw = false
    @Flag(name: .customLong("machine"), help: "Also measure memory bandwidth and FMA peak.") var machine = false
    @Option var output = "bench-speculative.json"

    mutating func run() async throws {
        let llm = try LLM(llmModel)
        let ssms = try ssmModels.map { try SSM($0) }
        let all = try PromptDataset.load(named: dataset)
        let prompts = all.filter { $0.count <= maxPromptChars }.prefix(numPrompts)
            .map { raw ? $0 : SpeculativeBenchmark.chatPrompt($0, tokenizer: llm.tokenizer) }
        let tree = TreeShape(depth: maxTreeDepth, expansion: TreeShape.flexFlow(depth: max(1, maxTreeDepth), expansionDegree: expansionDegree))
        let bench = SpeculativeBenchmark(llm: llm, ssms: ssms, tree: tree, maxNewTokens: maxNewTokens)
        let interactive = isatty(2) != 0
        var report = try await bench.run(prompts: Array(prompts), dataset: dataset) { line in
            if interactive { FileHandle.standardError.write("\r\(line)\u{1B}[K".data(using: .utf8)!) }
        }
        if interactive { FileHandle.standardError.write("\n".data(using: .utf8)!) }
        if machine { report.machine = MachineProbe.measure() }

        print("model \(llmModel), SSMs \(ssmModels), dataset \(dataset) (\(prompts.count) prompts), \(maxNewTokens) new tokens, greedy, batch 1")
        print("mode         | tokens | seconds | tokens/s | tokens/LLM step | drafting s | verifying s | mismatches")
        for r in report.results {
            print(String(format: "%-12@ | %6d | %7.2f | %8.2f | %15.2f | %10.2f | %11.2f | %d", r.mode as NSString, r.generatedTokens,
                         r.seconds, r.tokensPerSecond, r.tokensPerLLMStep, r.draftingSeconds, r.verifyingSeconds, r.mismatches))
        }
        if let spec = report.results.last, spec.mode == "speculative" {
            print("acceptance by depth:", spec.acceptanceByDepth.map { String(format: "%.2f", $0) }.joined(separator: " "))
            print(String(format: "speculative / incremental tokens/s: %.2fx", report.speedup))
        }
        if let m = report.machine {
            print(String(format: "machine: %@, %d threads, read %.1f GB/s, fp32 FMA %.0f GFLOP/s per core, %.0f all cores",
                         m.cpu as NSString, m.threads, m.readBandwidthGBs, m.fmaGFLOPsPerCore, m.fmaGFLOPsAllCores))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(report).write(to: URL(fileURLWithPath: output))
        print("wrote \(output)")
    }
}
