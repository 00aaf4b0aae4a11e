import ArgumentParser
import FlexServe
import FlexServeCUDA
import Foundation

/// `flexserve gpu-check`: the GPU backend's checks on a GPU machine (bench/gpu_check.sh runs them).
struct GPUCheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpu-check", abstract: "GPU backend checks: correctness against the CPU, speed against the roofline.",
        subcommands: [GPUSelfTestCommand.self, GPUCorrectnessCommand.self, GPUSpeedCommand.self, GPUSpeculativeCommand.self,
                      GPUProfileCommand.self, GPUSamplerCommand.self, GPUQuantizedGEMVCommand.self])
}

/// Greedy tokens and logits of the GPU backend against the CPU backend.
struct GPUCorrectnessCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "correctness", abstract: "Greedy decoding on the GPU vs the CPU (fp32 weights) over a prompt file.")

    @Option(name: [.customLong("model"), .customLong("llm-model")]) var model: String
    @Option(help: "JSON array of prompt strings.") var prompts: String
    @Option(name: .customLong("new-tokens")) var newTokens = 32
    @Option(name: .customLong("data-types"), help: "Comma-separated: fp32,fp16,bf16.") var dataTypes = "fp32,fp16,bf16"
    @Option(name: .customLong("weight-format"), help: "Projection matrices on both CPU and GPU: int8, int4 (FlexFlow's 8/4-bit groups), bf16... (default: CPU fp32).")
    var weightFormat: String?
    @Option(name: .customLong("cpu-reference"), help: "Comma-separated CPU references: fp32 (the CPU as it serves), storage (the CPU rounding weights, activations and K/V to the GPU's type where the GPU stores them).")
    var cpuReference = "fp32"
    @Option var output = "gpu-correctness.json"

    mutating func run() async throws {
        let texts = try PromptFile.load(prompts).map(\.text)
        let references = try cpuReference.split(separator: ",").map { name in
            guard let r = GPUCheck.CPUReference(rawValue: String(name)) else { throw ValidationError("unknown CPU reference \(name): fp32 or storage") }
            return r
        }
        let types = try dataTypes.split(separator: ",").map { name in
            guard let t = CUDADataType(name: String(name)) else { throw ValidationError("unknown data type \(name)") }
            return t
        }
        let format = try weightFormat.flatMap { try WeightFormat.parse($0) }
        let reports = try GPUCheck.correctness(model: model, prompts: texts, newTokens: newTokens, dataTypes: types,
                                               weightFormat: format, references: references, log: logProgress)
        print("weights: \(weightFormat ?? "CPU f32")")
        print("type | CPU reference | prompts fully identical | min identical prefix | max |Δlogit| | max |logit|")
        for r in reports {
            print(String(format: "%-4@ | %-7@ | %d/%d | %d/%d | %.5f | %.2f", r.dataType as NSString, (r.cpuReference ?? "fp32") as NSString,
                         r.promptsFullyIdentical, r.prompts, r.minIdenticalPrefix, r.newTokens, r.maxAbsLogitError, r.maxAbsLogit))
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
    @Option(name: .customLong("weight-format"), help: "int8 or int4: projection matrices packed on the GPU (FlexFlow-style groups of 32).") var weightFormat: String?
    @Flag(help: "Stream the decoder layers from pinned host memory every step (and measure the host-to-device bandwidth).")
    var offload = false
    @Option var output = "gpu-speed.json"

    mutating func run() async throws {
        guard let type = CUDADataType(name: dataType) else { throw ValidationError("unknown data type \(dataType)") }
        let sizes = treeSizes.split(separator: ",").compactMap { Int($0) }
        let format = try weightFormat.flatMap { try WeightFormat.parse($0) }
        let r = try GPUCheck.speed(model: model, dataType: type, promptTokens: promptTokens, decodeSteps: decodeSteps,
                                   treeSizes: sizes, weightFormat: format, offload: offload, log: logProgress)
        if let read = r.decodeReadBytes, let roof = r.rooflineOfReadBytesStepsPerSecond, let f = r.fractionOfReadRoofline {
            print(String(format: "weights %@: a decode step reads %.3f GB; roofline of those bytes %.1f steps/s; decode at %.1f%% of it",
                         (r.weightFormat ?? "dense") as NSString, Double(read) / 1e9, roof, 100 * f))
        }
        if let streamed = r.offloadStreamedBytes, let h2d = r.hostToDeviceBytesPerSecond, let roof = r.hostToDeviceRooflineStepsPerSecond,
           let f = r.fractionOfHostToDeviceRoofline {
            print(String(format: "offload: %.2f GB streamed per step at %.1f GB/s host-to-device -> roofline %.2f steps/s; decode %.2f steps/s = %.1f%% of it",
                         Double(streamed) / 1e9, h2d / 1e9, roof, r.decodeStepsPerSecond, 100 * f))
        }
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

    @Option(help: "Execution to check: env (the built-in default, gemv+graphs+attn3+nr2 with GEMV variant w4, as the FLEXSERVE_CUDA_* variables change it), cublas, or '+'-joined gemv, graphs, attn2, attn3, chunk4 (attn3 with 4-slot chunks), nr2 (e.g. gemv+graphs+attn3+nr2), int8 / int4 (FlexFlow-style group-quantized matrices on both sides), offload (layers streamed from pinned host memory).")
    var variant = "env"

    mutating func run() async throws {
        var options = CUDALlama.Options.environment
        let parts = Set(variant.split(separator: "+").map(String.init))
        let format: WeightFormat? = parts.contains("int8") ? .int8Group : parts.contains("int4") ? .int4Group : nil
        let offload = parts.contains("offload")
        if variant != "env" {
            guard parts.isSubset(of: ["cublas", "gemv", "graphs", "attn2", "attn3", "chunk4", "nr2", "int8", "int4", "offload"]) else { throw ValidationError("unknown variant \(variant)") }
            options.gemv = parts.contains("gemv")
            options.graphs = parts.contains("graphs")
            options.attention2 = parts.contains("attn2")
            options.attention3 = parts.contains("attn3")
            // chunk4: attention3 with chunks of 4 slots, so the selftest's short lists span several chunks.
            if parts.contains("chunk4") { options.attentionChunk = 4 }
            options.normRope2 = parts.contains("nr2")
        }
        let device = try CUDADevice.shared()
        print("device: \(device.name) (\(device.architecture), \(device.totalMemory >> 20) MiB), execution \(options.summary)"
              + (format.map { ", weights \($0.rawValue)" } ?? "") + (offload ? ", offload" : ""))
        // Tolerances: fp32 rounding only; fp16/bf16 storage of weights, activations and K/V.
        let tolerance: [CUDADataType: Float] = [.fp32: 1e-3, .fp16: 2e-2, .bf16: 1e-1]
        var failed = false
        for type in CUDADataType.allCases {
            let r: CUDASelfTest.Result
            do {
                r = try CUDASelfTest.run(device: device, dataType: type, options: options, weightFormat: format, offload: offload)
            } catch {
                print("\(type.rawValue): FAILED: \(error)")
                failed = true
                continue
            }
            // Graphs asked for must have been used, and replayed (the four decode steps share a shape); offload runs without.
            let graphsOK = !options.graphs || offload || (r.graphFailure == nil && r.graphReplays > 0)
            // With the GEMV every kernel is batch-invariant: a token alone must get the logits it got in a 2-token step.
            // (The quantized GEMV's single-token variant s1 sums in its own order: not batch-invariant by design.)
            let invariantOK = !options.gemv || r.batchInvariant || r.quantizedVariant == "s1"
            let ok = r.maxAbsError.allSatisfy { $0 <= tolerance[type]! } && graphsOK && invariantOK
            failed = failed || !ok
            print("\(type.rawValue): max |GPU - CPU| logit per step (prefill, tree, 4 decodes after move):",
                  r.maxAbsError.map { String(format: "%.2e", $0) }.joined(separator: " "),
                  options.graphs ? "graphs \(r.graphCaptures) captured \(r.graphReplays) replayed\(r.graphFailure.map { " FAILED: \($0)" } ?? "")" : "",
                  r.batchInvariant ? "batch-invariant" : "NOT batch-invariant\(options.gemv && r.quantizedVariant != "s1" ? " (FAILED)" : " (cuBLAS or qgemv s1: expected)")",
                  ok ? "ok" : "FAILED (tolerance \(tolerance[type]!))")
        }
        if failed { throw ExitCode.failure }
    }
}

/// Where a batch-1 decode step's time goes: products alone per shape and kernel, the step by kernel category, host overhead.
struct GPUProfileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "Batch-1 decode profile with CUDA events: GB/s per weight shape (cuBLAS and each GEMV variant), step time by kernel category, host overhead.")

    @Option(name: [.customLong("model"), .customLong("llm-model")]) var model: String
    @Option(name: .customLong("data-type")) var dataType = "fp16"
    @Option(help: "Tokens of context before the profiled decode steps.") var context = 256
    @Option(help: "Comma-separated GEMV variants (default,u8,w2,w4,w8); cuBLAS is always measured.") var variants = "all"
    @Option(help: "Decode steps per wall-time measurement.") var steps = 32
    @Option var output = "gpu-profile.json"

    mutating func run() async throws {
        guard let type = CUDADataType(name: dataType) else { throw ValidationError("unknown data type \(dataType)") }
        let chosen = variants == "all" ? nil : variants.split(separator: ",").map(String.init)
        let r = try GPUCheck.profile(model: model, dataType: type, context: context, variants: chosen, steps: steps, log: logProgress)
        print(String(format: "\n%@ %@, attention%@ (%@), context %d: copy %.0f GB/s, weights %.2f GB, roofline %.3f ms/step",
                     r.device as NSString, r.dataType as NSString, (r.attention2 ? "2" : "1") as NSString, (r.execution ?? "") as NSString, r.contextTokens,
                     r.copyBytesPerSecond / 1e9, Double(r.weightBytes) / 1e9, r.rooflineMilliseconds))
        print("\n(a) one product alone (batch 1), us per call | GB/s of weights (copy = \(Int(r.copyBytesPerSecond / 1e9)))")
        let kernels = r.executions.map(\.kernel)
        let shapeNames = r.shapes.reduce(into: [String]()) { if !$0.contains($1.shape) { $0.append($1.shape) } }
        print("shape            | " + kernels.map { $0.padding(toLength: 15, withPad: " ", startingAt: 0) }.joined(separator: " | "))
        for name in shapeNames {
            let first = r.shapes.first { $0.shape == name }!
            var line = "\(name) \(first.n)x\(first.k)".padding(toLength: 16, withPad: " ", startingAt: 0) + " | "
            line += kernels.map { k in
                guard let t = r.shapes.first(where: { $0.shape == name && $0.kernel == k }) else { return "-".padding(toLength: 15, withPad: " ", startingAt: 0) }
                return String(format: "%6.1f %6.0f  ", t.microsecondsPerCall, t.gigabytesPerSecond)
            }.joined(separator: " | ")
            print(line)
        }
        print("max |GEMV - cuBLAS| / max |cuBLAS| on one product with a random input (a wrong variant shows here):")
        for k in kernels where k != "cublas" {
            print("  \(k): " + shapeNames.map { name in
                guard let t = r.shapes.first(where: { $0.shape == name && $0.kernel == k }), let d = t.maxAbsDifferenceFromCUBLAS,
                      let m = t.maxAbsOutput else { return "\(name) -" }
                return String(format: "%@ %.2g/%.3g", name as NSString, d, m)
            }.joined(separator: ", "))
        }
        print("\n(b) one decode step by kernel category, ms summed over layers: GPU-only (queued behind a spin) / as launched")
        let categories = r.executions.first.map { $0.queued.map(\.name) } ?? []
        print("category         | " + kernels.map { $0.padding(toLength: 15, withPad: " ", startingAt: 0) }.joined(separator: " | "))
        for name in categories {
            var line = name.padding(toLength: 16, withPad: " ", startingAt: 0) + " | "
            line += r.executions.map { e in
                let q = e.queued.first { $0.name == name }?.milliseconds ?? 0
                let a = e.eager.first { $0.name == name }?.milliseconds ?? 0
                return String(format: "%6.3f/%6.3f  ", q, a)
            }.joined(separator: " | ")
            print(line)
        }
        func row(_ title: String, _ value: (DecodeProfile.Execution) -> Double?) {
            print(title.padding(toLength: 16, withPad: " ", startingAt: 0) + " | " + r.executions.map { e in
                value(e).map { String(format: "%13.3f  ", $0) } ?? "            -  "
            }.joined(separator: " | "))
        }
        row("step GPU-only") { $0.queuedMilliseconds }
        row("step launched") { $0.eagerMilliseconds }
        print("\n(c) host side, ms per step")
        row("host encode") { $0.hostEncodeMilliseconds }
        row("wall (eager)") { $0.wallMilliseconds }
        row("wall (graphs)") { $0.wallGraphsMilliseconds }
        row("overhead eager") { $0.hostOverheadMilliseconds }
        row("overhead graphs") { $0.hostOverheadGraphsMilliseconds }
        try writeJSON(r, to: output)
    }
}

/// The GPU sampler against the CPU Sampler: chi-square over many draws, same-uniform agreement, greedy rows.
struct GPUSamplerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sampler", abstract: "Top-k/top-p sampling on the GPU vs the CPU Sampler's exact probabilities (chi-square) and argmax.")

    @Option var draws = 200_000
    @Option var seed: UInt64 = 7
    @Option var output = "gpu-sampler.json"

    mutating func run() async throws {
        let r = try GPUSamplerCheck.run(draws: draws, seed: seed, log: logProgress)
        print("case                    | vocab | support (exact) | chi2 / df (p)          | same token: CPU walk / exact walk | outside (exact) | us/row | result")
        for c in r.cases {
            print(String(format: "%-23@ | %5d | %7d (%5d) | %8.1f / %5d (%.3f) | %.5f / %.5f | %5d (%d) | %6.0f | %@", c.name as NSString, c.vocabSize,
                         c.support, c.exactSupport, c.chiSquare, c.degreesOfFreedom, c.pValue, c.sameTokenFraction, c.sameTokenAsExactFraction,
                         c.outsideSupport, c.outsideExactSupport, c.microsecondsPerRow, (c.passed ? "ok" : "FAILED") as NSString))
        }
        print(String(format: "greedy: %d/%d rows identical to Sampler.argmax, %.0f us/row", r.argmaxIdentical, r.argmaxRows, r.greedyMicrosecondsPerRow))
        try writeJSON(r, to: output)
        if !r.passed { throw ExitCode.failure }
    }
}

/// The quantized GEMV alone on 7B shapes, per launch variant.
struct GPUQuantizedGEMVCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qgemv", abstract: "int8/int4 GEMV alone on LLaMA-7B shapes per launch variant: us per call, GB/s, difference from cuBLAS.")

    @Option(name: .customLong("data-type")) var dataType = "fp16"
    @Option var tokens = "1,8"
    @Option var output = "gpu-qgemv.json"

    mutating func run() async throws {
        guard let type = CUDADataType(name: dataType) else { throw ValidationError("unknown data type \(dataType)") }
        let device = try CUDADevice.shared()
        let r = try QuantizedGEMVBench.run(device: device, type: type, tokens: tokens.split(separator: ",").compactMap { Int($0) },
                                           log: logProgress)
        print(String(format: "%@: copy %.0f GB/s; dequantize pass (gate/up, read + write): %@", r.device as NSString, r.copyBytesPerSecond / 1e9,
                     r.dequantizeGigabytesPerSecond.map { String(format: "%@ %.0f GB/s", $0.key as NSString, $0.value) }.sorted().joined(separator: ", ") as NSString))
        print("format    | shape   | tokens | " + QuantizedGEMVBench.variants.map { $0.padding(toLength: 14, withPad: " ", startingAt: 0) }.joined(separator: " | "))
        var seen = Set<String>()
        for t in r.timings where seen.insert("\(t.format) \(t.shape) \(t.tokens)").inserted {
            let cells = QuantizedGEMVBench.variants.map { v -> String in
                guard let x = r.timings.first(where: { $0.format == t.format && $0.shape == t.shape && $0.tokens == t.tokens && $0.variant == v }) else { return "-" }
                return String(format: "%6.1f us %4.0f", x.microsecondsPerCall, x.gigabytesPerSecond)
            }
            print("\(t.format.padding(toLength: 9, withPad: " ", startingAt: 0)) | \(t.shape.padding(toLength: 7, withPad: " ", startingAt: 0)) | \(String(t.tokens).padding(toLength: 6, withPad: " ", startingAt: 0)) | " + cells.joined(separator: " | "))
        }
        let worst = r.timings.map { $0.maxAbsDifferenceFromCUBLAS / max($0.maxAbsOutput, 1e-6) }.max() ?? 0
        print(String(format: "largest |qgemv - dequantize+cuBLAS| / max |output| over all: %.2g", worst))
        try writeJSON(r, to: output)
    }
}
