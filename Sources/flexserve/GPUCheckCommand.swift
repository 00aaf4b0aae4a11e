import ArgumentParser
import FlexServe
import FlexServeCUDA
import Foundation

/// `flexserve gpu-check`: the GPU backend's checks on a GPU machine (bench/gpu_check.sh runs them).
struct GPUCheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpu-check", abstract: "GPU backend checks: correctness against the CPU, speed against the roofline.",
        subcommands: [GPUSelfTestCommand.self, GPUCorrectnessCommand.self, GPUSpeedCommand.self, GPUSpeculativeCommand.self])
}

/// Greedy tokens and logits of the GPU backend against the CPU backend.
struct GPUCorrectnessCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "correctness", abstract: "Greedy decoding on the GPU vs the CPU (fp32 weights) over a prompt file.")

    @Option(name: [.customLong("model"), .customLong("llm-model")]) var model: String
    @Option(help: "JSON array of prompt strings.") var prompts: String
    @Option(name: .customLong("new-tokens")) var newTokens = 32
    @Option(name: .customLong("data-types"), help: "Comma-separated: fp32,fp16,bf16.") var dataTypes = "fp32,fp16,bf16"
    @Option var output = "gpu-correctness.json"

    mutating func run() async throws {
        let texts = try PromptFile.load(prompts).map(\.text)
        let types = try dataTypes.split(separator: ",").map { name in
            guard let t = CUDADataType(name: String(name)) else { throw ValidationError("unknown data type \(name)") }
            return t
        }
        let reports = try GPUCheck.correctness(model: model, prompts: texts, newTokens: newTokens, dataTypes: types, log: logProgress)
        print("type | prompts fully identical | min identical prefix | max |Δlogit| | max |logit|")
        for r in reports {
            print(String(format: "%-4@ | %d/%d | %d/%d | %.5f | %.2f", r.dataType as NSString, r.promptsFullyIdentical, r.prompts,
                         r.minIdenticalPrefix, r.newTokens, r.maxAbsLogitError, r.maxAbsLogit))
        }
        try writeJSON(reports, to: output)
    }
}

/// Batch-1 decode speed and tree-verification cost on the GPU.
struct GPUSpeedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "speed", abstract: "Decode steps/s vs the copy-bandwidth roofline, and verify cost per tree size.")

    @Option(name: [.customLong("model"), .customLong("llm-model")]) var model: String
    @Option(name: .customLong("data-type")) var dataType = "fp16"
    @Option(name: .customLong("prompt-tokens")) var promptTokens = 128
    @Option(name: .customLong("decode-steps")) var decodeSteps = 128
    @Option(name: .customLong("tree-sizes")) var treeSizes = "1,8,16,32,64"
    @Option var output = "gpu-speed.json"

    mutating func run() async throws {
        guard let type = CUDADataType(name: dataType) else { throw ValidationError("unknown data type \(dataType)") }
        let sizes = treeSizes.split(separator: ",").compactMap { Int($0) }
        let r = try GPUCheck.speed(model: model, dataType: type, promptTokens: promptTokens, decodeSteps: decodeSteps,
                                   treeSizes: sizes, log: logProgress)
        print(String(format: "%@ %@ [%@]: copy %.0f GB/s, weights %.2f GB, roofline %.1f steps/s, decode %.1f steps/s (%.0f%%)",
                     r.device as NSString, r.dataType as NSString, (r.execution ?? r.smallStepKernel) as NSString, r.copyBytesPerSecond / 1e9, Double(r.weightBytes) / 1e9,
                     r.rooflineStepsPerSecond, r.decodeStepsPerSecond, 100 * r.fractionOfRoofline))
        let base = r.verify.first { $0.treeTokens == 1 }?.milliseconds
        for v in r.verify {
            print(String(format: "verify %3d tree tokens: %.2f ms%@", v.treeTokens, v.milliseconds,
                         base.map { String(format: " (%.2fx a 1-token step)", v.milliseconds / $0) as NSString } ?? ""))
        }
        if let captures = r.graphCaptures, let replays = r.graphReplays, captures + replays > 0 || r.graphFailure != nil {
            print("CUDA graphs: \(captures) captured, \(replays) replayed" + (r.graphFailure.map { "; FAILED, ran directly: \($0)" } ?? ""))
        }
        try writeJSON(r, to: output)
    }
}

/// Speculative inference with the LLM and the SSM on the GPU vs incremental decoding on the GPU.
struct GPUSpeculativeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "speculative",
        abstract: "Spec-infer vs incr-decoding on the GPU (LLM and SSM both there): tokens/s, tokens per step, greedy mismatches.")

    @Option(name: [.customLong("model"), .customLong("llm-model")]) var model: String
    @Option(name: .customLong("ssm-model")) var ssm: String
    @Option(help: "JSON array of prompt strings.") var prompts: String
    @Option(name: .customLong("num-prompts")) var numPrompts = 8
    @Option(name: .customLong("max-new-tokens")) var maxNewTokens = 128
    @Option(name: .customLong("data-type")) var dataType = "fp16"
    @Option(help: "Comma-separated tree shapes: chainN (one child per depth), flexflowN (3 children at depth 3).")
    var trees = "chain4,chain8,flexflow8"
    @Flag(name: .customLong("raw"), help: "Do not apply the chat template.") var raw = false
    @Option var output = "gpu-speculative.json"

    mutating func run() async throws {
        guard let type = CUDADataType(name: dataType) else { throw ValidationError("unknown data type \(dataType)") }
        let texts = Array(try PromptFile.load(prompts).map(\.text).prefix(numPrompts))
        let results = try await GPUCheck.speculative(model: model, ssm: ssm, prompts: texts, maxNewTokens: maxNewTokens, dataType: type,
                                                     trees: trees.split(separator: ",").map(String.init), chat: !raw, log: logProgress)
        print("tree      | execution        | incr tok/s | spec tok/s | speedup | tokens/LLM step | drafting s | verifying s | mismatches")
        for r in results {
            guard let incr = r.report.results.first(where: { $0.mode == "incremental" }),
                  let spec = r.report.results.first(where: { $0.mode == "speculative" }) else { continue }
            print(String(format: "%-9@ | %-16@ | %10.1f | %10.1f | %6.2fx | %15.2f | %10.2f | %11.2f | %d", r.tree as NSString,
                         r.llmExecution as NSString, incr.tokensPerSecond, spec.tokensPerSecond, r.report.speedup,
                         spec.tokensPerLLMStep, spec.draftingSeconds, spec.verifyingSeconds, spec.mismatches))
        }
        try writeJSON(results, to: output)
        if results.isEmpty { throw ExitCode.failure }
    }
}

/// A random small LLaMA on CPU and GPU through prefill, tree verification, `move` and decode.
struct GPUSelfTestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest", abstract: "Random small LLaMA: GPU vs CPU logits through batching, tree verify and KV move.")

    @Option(help: "Execution to check: env (as the environment sets it), cublas, or '+'-joined gemv, graphs, attn2 (e.g. gemv+graphs).")
    var variant = "env"

    mutating func run() async throws {
        var options = CUDALlama.Options.environment
        if variant != "env" {
            let parts = Set(variant.split(separator: "+").map(String.init))
            guard parts.isSubset(of: ["cublas", "gemv", "graphs", "attn2"]) else { throw ValidationError("unknown variant \(variant)") }
            options.gemv = parts.contains("gemv")
            options.graphs = parts.contains("graphs")
            options.attention2 = parts.contains("attn2")
        }
        let device = try CUDADevice.shared()
        print("device: \(device.name) (\(device.architecture), \(device.totalMemory >> 20) MiB), execution \(options.summary)")
        // Tolerances: fp32 rounding only; fp16/bf16 storage of weights, activations and K/V.
        let tolerance: [CUDADataType: Float] = [.fp32: 1e-3, .fp16: 2e-2, .bf16: 1e-1]
        var failed = false
        for type in CUDADataType.allCases {
            let r: CUDASelfTest.Result
            do {
                r = try CUDASelfTest.run(device: device, dataType: type, options: options)
            } catch {
                print("\(type.rawValue): FAILED: \(error)")
                failed = true
                continue
            }
            // Graphs asked for must have been used, and replayed (the four decode steps share a shape).
            let graphsOK = !options.graphs || (r.graphFailure == nil && r.graphReplays > 0)
            let ok = r.maxAbsError.allSatisfy { $0 <= tolerance[type]! } && graphsOK
            failed = failed || !ok
            print("\(type.rawValue): max |GPU - CPU| logit per step (prefill, tree, 4 decodes after move):",
                  r.maxAbsError.map { String(format: "%.2e", $0) }.joined(separator: " "),
                  options.graphs ? "graphs \(r.graphCaptures) captured \(r.graphReplays) replayed\(r.graphFailure.map { " FAILED: \($0)" } ?? "")" : "",
                  ok ? "ok" : "FAILED (tolerance \(tolerance[type]!))")
        }
        if failed { throw ExitCode.failure }
    }
}
