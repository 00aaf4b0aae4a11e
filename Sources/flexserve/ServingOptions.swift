import ArgumentParser
import FlexServe
import FlexServeTensor
import Foundation

/// The options FlexFlow's `spec_infer` and `incr_decoding` take, with FlexFlow's single-dash spellings accepted too.
struct ServingOptions: ParsableArguments {
    @Option(name: [.customLong("llm-model"), .customLong("llm-model", withSingleDash: true), .customLong("model")],
            help: "LLM: a HuggingFace folder, a .gguf file, or a hub id in the cache.")
    var llmModel: String

    @Option(name: [.customLong("prompt"), .customLong("prompt", withSingleDash: true)],
            help: "JSON file: an array of prompt strings (or of {prompt, max_new_tokens} objects).")
    var prompt: String?

    @Option(name: [.customLong("output-file"), .customLong("output-file", withSingleDash: true)],
            help: "Write FlexFlow-style results here.")
    var outputFile: String?

    @Option(name: .customLong("max-requests-per-batch")) var maxRequestsPerBatch = 16
    @Option(name: .customLong("max-tokens-per-batch")) var maxTokensPerBatch = 256
    @Option(name: [.customLong("max-sequence-length"), .customLong("max-seq-length")]) var maxSequenceLength = 1024
    @Option(name: .customLong("max-new-tokens"), help: "New tokens per request (default: up to max-length or the sequence limit).")
    var maxNewTokens: Int?
    @Option(name: .customLong("max-length"), help: "Prompt plus new tokens at most.")
    var maxLength: Int?

    @Flag(name: .customLong("do-sample")) var doSample = false
    @Option var temperature: Float = 0.9
    @Option(name: .customLong("topp")) var topP: Float = 0.8
    @Option(name: .customLong("topk")) var topK = 0
    @Option(name: [.customLong("seed"), .customLong("sampling-seed")]) var seed: UInt64?
    @Option(name: .customLong("stop"), help: "Stop string (repeatable).") var stop: [String] = []
    @Flag(help: "Per request: latency, time to first token, why it ended, and how the speculation went.") var verbose = false

    @Flag(name: .customLong("4bit-quantization")) var int4 = false
    @Flag(name: .customLong("8bit-quantization")) var int8 = false
    @Flag(name: [.customLong("offload"), .customLong("offload", withSingleDash: true)]) var offload = false
    @Option(help: "Activations against quantized weights on the CPU: f32 (reference numerics) or q8 (int8 dot products: faster on CPUs with AVX-512 VNNI or AVX2, slower elsewhere).")
    var activations: ActivationFormat = .f32
    @Option(name: .customLong("kv-cache-dtype"), help: "How the CPU KV cache holds keys and values: f32 (as computed) or f16 (half the memory and attention reads).")
    var kvCacheType: KVCacheType = .f32
    @Flag(inversion: .prefixedEnableDisable, help: "Share the KV blocks of prompts that start alike (vLLM's automatic prefix caching).")
    var prefixCaching = true
    @Option(help: "cpu or cuda (an NVIDIA GPU, LLaMA-family models; SSMs stay on the CPU).") var device = "cpu"
    @Option(name: .customLong("data-type"), help: "GPU storage type: fp16 (default), bf16 or fp32.") var dataType: String?
    @Flag(name: .customLong("use-full-precision"), help: "FlexFlow's: fp32 on the GPU (--data-type fp32); the CPU computes in fp32 always.")
    var useFullPrecision = false
    @Flag(help: "FlexFlow's operator fusion: accepted; FlexServe's kernels are fused always.") var fusion = false
    @Option(name: [.customLong("tensor-parallelism-degree"), .customLong("tensor-parallelism-degree", withSingleDash: true)])
    var tensorParallelism = 1
    @Option(name: [.customLong("pipeline-parallelism-degree"), .customLong("pipeline-parallelism-degree", withSingleDash: true)])
    var pipelineParallelism = 1
    @Option(name: [.customLong("data-parallelism-degree"), .customLong("data-parallelism-degree", withSingleDash: true)])
    var dataParallelism = 1
    @Option(name: [.customLong("cache-folder"), .customLong("cache-folder", withSingleDash: true)], help: "HuggingFace cache folder for hub ids.")
    var cacheFolder: String?
    @OptionGroup var threads: ThreadOptions

    func computeDevice() throws -> ComputeDevice {
        if useFullPrecision, let dataType, dataType.lowercased() != "fp32" {
            throw ValidationError("--use-full-precision asks for fp32; --data-type \(dataType) contradicts it")
        }
        do {
            let placement = try ComputeDevice(device: device, dataType: useFullPrecision ? "fp32" : dataType)
            return offload ? try placement.offloaded() : placement
        } catch { throw ValidationError("\(error)") }
    }

    /// FlexFlow's quantization flags: asymmetric groups of 32, applied at load time.
    var weightFormat: WeightFormat? { int8 ? .int8Group : int4 ? .int4Group : nil }

    var generationConfig: GenerationConfig {
        GenerationConfig(doSample: doSample, temperature: temperature, topP: topP, topK: topK,
                         maxNewTokens: maxNewTokens, maxLength: maxLength, stop: stop, seed: seed)
    }

    func checkSupported() throws {
        _ = try computeDevice()  // validates --device, --data-type and --offload
        if tensorParallelism != 1 || pipelineParallelism != 1 || dataParallelism != 1 {
            throw ValidationError("tensor/pipeline/data parallelism degrees other than 1 are not supported yet")
        }
        if int4 && int8 { throw ValidationError("choose one of --4bit-quantization and --8bit-quantization") }
        if let cacheFolder { setenv("HF_HUB_CACHE", cacheFolder, 1) }
        threads.apply()
    }
}

/// One prompt of a prompt file.
struct PromptEntry {
    var text: String
    var maxNewTokens: Int?
}

enum PromptFile {
    static func load(_ path: String) throws -> [PromptEntry] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read prompt file \(path)")
        }
        guard let array = (try? JSONSerialization.jsonObject(with: data)) as? [Any] else {
            throw ValidationError("prompt file \(path) is not a JSON array")
        }
        return try array.enumerated().map { i, item in
            if let s = item as? String { return PromptEntry(text: s) }
            if let o = item as? [String: Any], let s = o["prompt"] as? String {
                return PromptEntry(text: s, maxNewTokens: (o["max_new_tokens"] as? NSNumber)?.intValue)
            }
            throw ValidationError("prompt file \(path): item \(i) is neither a string nor an object with \"prompt\"")
        }
    }
}

/// Shows what is loading on a terminal; silent when stderr is not one.
struct LoadingStatus {
    let start = Date()
    let interactive = isatty(2) != 0

    func begin(_ what: String) {
        if interactive { FileHandle.standardError.write("⏳ loading \(what)…".data(using: .utf8)!) }
    }

    func done(_ what: String) {
        let seconds = String(format: "%.2f", Date().timeIntervalSince(start))
        if interactive {
            FileHandle.standardError.write("\r✓ loaded \(what) in \(seconds) s\u{1B}[K\n".data(using: .utf8)!)
        }
    }
}

extension ActivationFormat: ExpressibleByArgument {}
extension KVCacheType: ExpressibleByArgument {}
