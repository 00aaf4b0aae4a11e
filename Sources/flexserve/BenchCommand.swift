import ArgumentParser
import FlexServe
import FlexServeTensor
import Foundation

/// `flexserve bench`: speculative vs incremental decoding (default), or raw throughput per weight format.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks: speculative vs incremental decoding, throughput per weight format.",
        subcommands: [SpeculativeBenchCommand.self, ThroughputBenchCommand.self, PhasesBenchCommand.self, AttentionBenchCommand.self, BoundBenchCommand.self, StreamingBenchCommand.self,
                      KernelsBenchCommand.self, VerifyBenchCommand.self],
        defaultSubcommand: SpeculativeBenchCommand.self)
}

/// `flexserve bench speculative`: speculative vs incremental decoding on a prompt dataset, in one run.
struct SpeculativeBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "speculative",
        abstract: "Benchmark speculative inference against incremental decoding on a prompt dataset (batch 1, greedy).",
        discussion: "Prints a table and writes JSON. Prompts are wrapped in the model's chat template. Datasets come from `flexserve datasets build`.")

    @Option(name: [.customLong("llm-model"), .customLong("model")]) var llmModel: String
    @Option(name: .customLong("ssm-model")) var ssmModels: [String] = []
    @Option(help: "Dataset name in datasets/ (e.g. sharegpt-eval) or a JSON prompt file.") var dataset = "sharegpt-eval"
    @Option(name: .customLong("num-prompts")) var numPrompts = 32
    @Option(name: .customLong("max-new-tokens")) var maxNewTokens = 128
    @OptionGroup var tree: TreeOptions
    @Option(name: .customLong("max-prompt-chars"), help: "Skip prompts longer than this.") var maxPromptChars = 2000
    @Flag(name: .customLong("raw"), help: "Do not apply the chat template.") var raw = false
    @Flag(name: .customLong("machine"), help: "Also measure memory bandwidth and FMA peak.") var machine = false
    @Option var output = "bench-speculative.json"
    @Option(help: "cpu or cuda (the LLM and the SSMs on an NVIDIA GPU).") var device = "cpu"
    @Option(name: .customLong("data-type"), help: "GPU storage type: fp16 (default), bf16 or fp32.") var dataType: String?
    @Option(help: "f32 or q8 activations against integer block weights (CPU).") var activations: ActivationFormat = .f32
    @Option(name: .customLong("kv-cache-dtype"), help: "How the CPU KV caches hold keys and values: f32 or f16.") var kvCacheType: KVCacheType = .f32

    mutating func run() async throws {
        let computeDevice = try ComputeDevice(device: device, dataType: dataType)
        let llm = try LLM(llmModel, activations: activations, device: computeDevice)
        let ssms = try ssmModels.map { try SSM($0, activations: activations, device: computeDevice) }
        let all = try PromptDataset.load(named: dataset)
        let prompts = all.filter { $0.count <= maxPromptChars }.prefix(numPrompts)
            .map { raw ? $0 : SpeculativeBenchmark.chatPrompt($0, tokenizer: llm.tokenizer) }
        let bench = SpeculativeBenchmark(llm: llm, ssms: ssms, tree: try tree.shape, maxNewTokens: maxNewTokens, kvCacheType: kvCacheType)
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
        try writeJSON(report, to: output)
        print("wrote \(output)")
    }
}

/// `flexserve bench throughput`: prefill and decode speed per weight format, against the measured machine.
struct ThroughputBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "throughput",
        abstract: "Prefill (512 tokens) and decode tokens/s per weight format, as fractions of measured bandwidth and FMA peak.",
        discussion: "Decode is measured from a 16-token prompt (as llama-bench's tg) and again right after the prefill; each figure is the best of eight segments (decode) or five runs (prefill), as the machine probes take their best pass. 'Of FMA peak' is against the best all-core FMA probe of the whole run; 'of concurrent FMA peak' is the median over the five prefills of each one's GFLOP/s over the mean of two all-core FMA passes of about the same length (a quarter of a second) run just before and just after it (it overstates when the passes lose a vCPU and the prefills do not: the JSON keeps every pass). 'Of bandwidth' is against the best read-probe pass of the whole run (probed at the start, before each row and at the end). 'Of concurrent bandwidth' decodes again with a bandwidth read of the same bytes after every step, and gives the median over eight segments of the steps' GB/s over the reads' (on a shared machine the best probe pass and the best decode segment may see different loads). 'Of phased reads' is against reads of the same bytes in the step's own dependent phases (Q/K/V, output, gate/up, down per layer, then the head), interleaved likewise. 'Handoff ns' is how long a cache line takes from one thread to the other: ~50 ns within one core complex of an AMD host, ~160–210 across two; ~110–140 on an Intel mesh.")

    @Option(name: [.customLong("model"), .customLong("llm-model")]) var model: String
    @Option(help: "Comma-separated formats: stored, f32, f16, bf16, q8_0, q4_0, q4_1, int8, int4.") var formats = "stored,f32,q8_0,q4_1,int8,int4"
    @Option(name: .customLong("prefill-tokens")) var prefillTokens = 512
    @Option(name: .customLong("decode-tokens")) var decodeTokens = 128
    @Option(help: "Comma-separated activation formats for integer block weights: f32 (reference numerics), q8 (int8 dot products).")
    var activations = "f32"
    @Option(name: .customLong("kv-cache-dtype"), help: "Comma-separated KV cache types: f32, f16.") var kvCacheTypes = "f32"
    @Option var output = "bench-throughput.json"

    struct Report: Codable {
        var model: String
        /// `readBandwidthGBs` is the best of all `readProbes`.
        var machine: MachineProbe
        /// The best pass of each read probe: at the start, before each row, at the end.
        var readProbes: [Double]
        var rows: [ThroughputBenchmark.Row]
    }

    mutating func run() async throws {
        var machine = MachineProbe.measure()
        print(String(format: "machine: %@, %d threads, read %.1f GB/s, fp32 FMA %.0f GFLOP/s per core, %.0f all cores",
                     machine.cpu as NSString, machine.threads, machine.readBandwidthGBs, machine.fmaGFLOPsPerCore, machine.fmaGFLOPsAllCores))
        // The read bandwidth of this shared machine moves from minute to minute (23–59 GB/s): the probe runs again
        // before each row and at the end, and every row is reported against the best pass of the whole run (the FMA
        // peak likewise, probed at the start and the end).
        var probes = [machine.readBandwidthGBs]
        var rows: [ThroughputBenchmark.Row] = []
        let activationFormats = try ActivationFormat.parseList(activations)
        let cacheTypes = try parseCacheTypes(kvCacheTypes)
        var names: [String] = []
        for name in formats.split(separator: ",").map(String.init) {
            let format = try WeightFormat.parse(name)
            for a in activationFormats {
                if a == .q8, let format, !format.hasIntegerBlocks { continue }
                for kv in cacheTypes {
                    probes.append(MachineProbe.readBandwidth())
                    let row = try ThroughputBenchmark.run(path: model, format: format, activations: a, kvCacheType: kv, machine: machine,
                                                          prefillTokens: prefillTokens, decodeTokens: decodeTokens)
                    rows.append(row)
                    names.append(name)
                    print(String(format: "  %@, %@ activations, %@ KV cache: decode %.1f tok/s (read probe before it %.1f GB/s)", name as NSString,
                                 a.rawValue as NSString, kv.rawValue as NSString, row.decodeTokensPerSecond, probes.last!))
                }
            }
        }
        probes.append(MachineProbe.readBandwidth())
        machine.readBandwidthGBs = probes.max()!
        // The FMA peak too (one run's all-core probe read a single core's figure: a vCPU taken away meanwhile).
        machine.fmaGFLOPsPerCore = max(machine.fmaGFLOPsPerCore, MachineProbe.fmaPeak(pool: ThreadPool(threads: 1)))
        machine.fmaGFLOPsAllCores = max(machine.fmaGFLOPsAllCores, MachineProbe.fmaPeak(pool: .shared))
        print(String(format: "read bandwidth: best pass of the run %.1f GB/s (probes %@); fp32 FMA, best of two probes: %.0f GFLOP/s per core, %.0f all cores",
                     machine.readBandwidthGBs, probes.map { String(format: "%.1f", $0) }.joined(separator: ", ") as NSString,
                     machine.fmaGFLOPsPerCore, machine.fmaGFLOPsAllCores))
        rows = rows.map {
            var r = $0
            r.decodeFractionOfBandwidth = r.decodeGBs / machine.readBandwidthGBs
            r.prefillFractionOfFMAPeak = r.prefillGFLOPs / machine.fmaGFLOPsAllCores
            return r
        }
        print("format     | acts |  kv | weight MB | prefill tok/s | prefill GFLOP/s | of FMA peak | of concurrent FMA peak | decode tok/s | decode GB/s | of bandwidth | of concurrent bandwidth | of phased reads | handoff ns | decode after prefill")
        func column(_ text: String, _ width: Int) -> NSString { (String(repeating: " ", count: max(0, width - text.count)) + text) as NSString }
        for (name, row) in zip(names, rows) {
            print(String(format: "%-10@ | %4@ | %3@ | %9.1f | %13.1f | %15.1f | %10.0f%% | %21.0f%% | %12.1f | %11.2f | %11.0f%% | %22.0f%% | %15@ | %10@ | %20.1f", name as NSString,
                         row.activations.rawValue as NSString, row.kvCacheType.rawValue as NSString, Double(row.weightBytes) / 1e6, row.prefillTokensPerSecond, row.prefillGFLOPs,
                         row.prefillFractionOfFMAPeak * 100, row.prefillFractionOfConcurrentFMAPeak * 100, row.decodeTokensPerSecond, row.decodeGBs, row.decodeFractionOfBandwidth * 100,
                         row.decodeFractionOfConcurrentBandwidth * 100,
                         column(row.decodeFractionOfPhasedReads.map { String(format: "%.0f%%", $0 * 100) } ?? "-", 15),
                         column(row.threadHandoffNanoseconds.map { String(format: "%.0f", $0) } ?? "-", 10), row.decodeAfterPrefillTokensPerSecond))
        }
        // An AMD host moves the threads between one core complex (shared memory link) and two (one link each): the
        // interleaved segments split by where the threads were. (On an Intel mesh every handoff takes ~110–140 ns
        // and there is nothing to split.)
        let splitsPlacements = machine.cpu.contains("AMD")
        if splitsPlacements {
            print("interleaved segments by thread placement: decode GB/s / read GB/s (of concurrent bandwidth), phased-read GB/s")
        }
        for (name, row) in zip(names, rows) where splitsPlacements {
            let parts = [("one core complex", row.interleavedSegments.filter { ($0.handoffNanoseconds ?? 0) < ThreadPlacement.sharedCacheLimitNanoseconds }),
                         ("two core complexes", row.interleavedSegments.filter { ($0.handoffNanoseconds ?? 0) >= ThreadPlacement.sharedCacheLimitNanoseconds })]
            let text = parts.filter { !$0.1.isEmpty }.map { label, segments -> String in
                func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
                let phased = segments.compactMap(\.phasedReadGBs)
                return String(format: "%@ (%d segments): %.1f / %.1f GB/s (%.0f%%)%@", label as NSString, segments.count,
                              median(segments.map(\.decodeGBs)), median(segments.map(\.readGBs)), median(segments.map { $0.decodeGBs / $0.readGBs }) * 100,
                              (phased.isEmpty ? "" : String(format: ", phased reads %.1f GB/s", median(phased))) as NSString)
            }
            print("  \(name), \(row.activations.rawValue), \(row.kvCacheType.rawValue) KV: " + text.joined(separator: "; "))
        }
        try writeJSON(Report(model: model, machine: machine, readProbes: probes, rows: rows), to: output)
        print("wrote \(output)")
    }
}

/// `flexserve bench streaming`: the q8 decode kernels' streaming rate by dispatch size.
struct StreamingBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "streaming",
        abstract: "q8 decode kernels' GB/s by how much one dispatch streams (65,536 × 576 weights as matrices of 256 to 65,536 rows), against read bandwidth.")

    @Option var passes = 20
    @Option(help: "Tokens per forward (1: decoding; a few: a speculative step's verification).") var tokens = 1
    @Option(help: "Weight format: q8_0, q4_0, q4_1, int8 or int4.") var format = "q8_0"
    @Option(help: "Threads (default: all cores). One thread shows a single core's stream, as each core pulls its own when a host's threads sit in different core complexes.")
    var threads: Int?
    @Option var output = "bench-streaming.json"

    struct Report: Codable {
        var readBandwidthGBs: Double
        var rows: [StreamingBenchmark.Row]
    }

    mutating func run() async throws {
        guard (1...64).contains(tokens) else { throw ValidationError("--tokens is 1 to 64") }
        guard let dtype = try WeightFormat.parse(format), [.q8_0, .q4_0, .q4_1, .int8Group, .int4Group].contains(dtype) else {
            throw ValidationError("--format is an integer block format: q8_0, q4_0, q4_1, int8 or int4")
        }
        if let threads, !(1...1024).contains(threads) { throw ValidationError("--threads is 1 to 1024") }
        let pool = threads.map { ThreadPool(threads: $0) } ?? .shared
        let (bandwidth, rows) = StreamingBenchmark.run(passes: passes, tokens: tokens, format: dtype, pool: pool)
        print(String(format: "%@ weights, %d threads; read bandwidth (best pass, same run): %.1f GB/s", format as NSString, pool.threadCount, bandwidth))
        print("matrix rows | matrices per dispatch | KB per dispatch | GB/s | of bandwidth")
        for r in rows {
            print(String(format: "%11d | %21d | %15d | %4.1f | %11.0f%%", r.matrixRows, r.matricesPerDispatch, r.kilobytesPerDispatch,
                         r.gigabytesPerSecond, r.fractionOfBandwidth * 100))
        }
        try writeJSON(Report(readBandwidthGBs: bandwidth, rows: rows), to: output)
        print("wrote \(output)")
    }
}

/// `flexserve bench attention`: a decode step's attention alone, on one thread with the cache's rows in the caches.
struct AttentionBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attention",
        abstract: "A decode token's attention (or a run of tokens') over a cache of keys, one thread, against the FMA probe.",
        discussion: "One query token (or --tokens, a causal run whose last token sees all the keys: 16 is a prefill's tile, 32 a pair of tiles on AVX-512) of a model's head shape (default SmolLM2's: 9 query heads over 3 KV heads of 64) against each count of cached keys, the rows read over and over so they come from the caches: the arithmetic apart from memory (`bench phases --prompt-tokens` times it inside the decode step). Each figure is the best of the passes; the passes go round every configuration in turn.")

    @Option(help: "Comma-separated counts of cached keys.") var keys = "64,256,1024"
    @Option(name: .customLong("kv-cache-dtype"), help: "Comma-separated cache types: f32, f16.") var kvCacheTypes = "f32,f16"
    @Option var heads = 9
    @Option var kvHeads = 3
    @Option var headDim = 64
    @Option(help: "Query tokens, a causal run ending at each key count.") var tokens = 1
    @Option var passes = 20
    @Option var output = "bench-attention.json"

    mutating func run() async throws {
        let counts = try parseCounts(keys, in: 1...65_536, "key counts"), types = try parseCacheTypes(kvCacheTypes)
        guard passes > 0 else { throw ValidationError("--passes must be positive") }
        guard heads > 0, kvHeads > 0, heads % kvHeads == 0 else { throw ValidationError("--heads must be a positive multiple of --kv-heads") }
        guard headDim > 0, headDim % 8 == 0, headDim <= 1024 else { throw ValidationError("--head-dim must be a multiple of 8 up to 1024, not \(headDim)") }
        guard (1...4096).contains(tokens), counts.allSatisfy({ $0 >= tokens }) else {
            throw ValidationError("--tokens must be 1 to 4096 and at most every key count, not \(tokens)")
        }
        let report = AttentionKernelBenchmark.run(keys: counts, types: types, numHeads: heads, numKVHeads: kvHeads, headDim: headDim,
                                                  tokens: tokens, passes: passes)
        print(String(format: "%@, %d tokens, %d heads over %d KV heads of %d, one thread, fp32 FMA %.0f GFLOP/s", report.cpu as NSString, tokens,
                     heads, kvHeads, headDim, report.fmaGFLOPsPerCore))
        print("cache | keys  |      µs | GFLOP/s | of FMA peak | rows GB/s")
        for r in report.rows {
            print(String(format: "%@   | %5d | %7.2f | %7.1f | %10.0f%% | %9.1f", r.kvCacheType.rawValue as NSString, r.keys, r.microseconds, r.gflops,
                         r.fractionOfFMAPeak * 100, r.rowGBs))
        }
        try writeJSON(report, to: output)
        print("wrote \(output)")
    }
}

/// `flexserve bench kernels`: the projection kernels' GFLOP/s on one thread with the weights in L2.
struct KernelsBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "Projection kernels' GFLOP/s against the FMA probe: by default one thread and a 512 × 576 matrix in L2.",
        discussion: "Apart from memory and thread placement: on a shared host the comparison that holds still between two builds (run them alternately). Each figure is the best of the passes; the passes go round every configuration in turn. With --threads 2 (and a model's shapes, --rows/--cols) each pass first times a cache-line handoff, and each configuration keeps its best pass per placement of the threads (one core complex or two), against the FMA probe on all threads.")

    @Option(help: "Comma-separated formats: f32, f16, bf16, q8_0, q4_0, q4_1, int8, int4.") var formats = "q8_0,q4_1,int8,int4"
    @Option(help: "Comma-separated activation formats: f32, q8 (integer block formats only).") var activations = "f32,q8"
    @Option(help: "Comma-separated token counts per forward.") var tokens = "1,12,128"
    @Option var passes = 20
    @Option(help: "Threads sharing each forward.") var threads = 1
    @Option(help: "Matrix rows (outputs), a multiple of 16.") var rows = 512
    @Option(help: "Matrix columns (inputs), a multiple of 32.") var cols = 576
    @Option var output = "bench-kernels.json"

    mutating func run() async throws {
        let dtypes = try formats.split(separator: ",").map { name -> DType in
            guard let f = try WeightFormat.parse(String(name)) else { throw ValidationError("'stored' has no meaning here: name a format") }
            return f
        }
        let activationFormats = try ActivationFormat.parseList(activations)
        let counts = try parseCounts(tokens, in: 1...4096, "token counts")
        guard passes > 0 else { throw ValidationError("--passes must be positive") }
        guard (1...64).contains(threads) else { throw ValidationError("--threads is 1 to 64, not \(threads)") }
        guard rows > 0, rows % 16 == 0, rows <= 65_536 else { throw ValidationError("--rows must be a positive multiple of 16 (at most 65536), not \(rows)") }
        guard cols > 0, cols % 32 == 0, cols <= 65_536 else { throw ValidationError("--cols must be a positive multiple of 32 (at most 65536), not \(cols)") }
        let report = KernelBenchmark.run(formats: dtypes, activations: activationFormats, tokens: counts, passes: passes,
                                         threads: threads, rows: rows, cols: cols)
        print(String(format: "%@, %d × %d matrix, %d thread%@, fp32 FMA %.0f GFLOP/s per thread", report.cpu as NSString, rows, cols,
                     threads, threads == 1 ? "" : "s", report.fmaGFLOPsPerCore))
        print("format    | activations | tokens |      µs | GFLOP/s | of FMA peak" + (threads > 1 ? " | placement" : ""))
        for r in report.rows {
            print(r.format.padding(toLength: 9, withPad: " ", startingAt: 0), "|", r.activations.padding(toLength: 11, withPad: " ", startingAt: 0),
                  String(format: "| %6d | %7.1f | %7.1f | %10.0f%%", r.tokens, r.microseconds, r.gflops, r.fractionOfFMAPeak * 100)
                      + (r.placement.map { " | \($0) (\(r.passes) passes)" } ?? ""))
        }
        try writeJSON(report, to: output)
        print("wrote \(output)")
    }
}

/// `flexserve bench verify`: what verifying k tokens costs in decode steps.
struct VerifyBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Forwards of k tokens (a speculative step's verification) against one decode step, after a context.",
        discussion: "Speculation pays where a step accepts more tokens than its tree costs in decode steps (plus the drafting). Rounds go through every k in turn; each figure is the median.")

    @Option(name: [.customLong("model"), .customLong("llm-model")]) var model: String
    @Option(help: "Weight format: stored, f32, f16, bf16, q8_0, q4_0, q4_1, int8, int4.") var format = "stored"
    @Option(help: "f32 or q8 activations against integer block weights.") var activations: ActivationFormat = .f32
    @Option(help: "Comma-separated token counts per forward (1 is always measured).") var tokens = "1,2,3,4,5,6,8,12,16"
    @Option(help: "Tokens in the cache before each forward.") var context = 256
    @Option var rounds = 20
    @Option var output = "bench-verify.json"

    mutating func run() async throws {
        let counts = try parseCounts(tokens, in: 1...1024, "token counts")
        guard context > 0, rounds > 0 else { throw ValidationError("--context and --rounds must be positive") }
        let report = try VerifyCostBenchmark.run(path: model, format: try WeightFormat.parse(format), activations: activations,
                                                 tokens: counts, context: context, rounds: rounds)
        print(String(format: "%@, %@ weights, %@ activations, context %d, %d rounds, handoff %@ ns", report.cpu as NSString,
                     report.format as NSString, report.activations as NSString, report.context, report.rounds,
                     (report.handoffNanoseconds.map { String(format: "%.0f", $0) } ?? "-") as NSString))
        print("tokens |     ms | decode steps")
        for r in report.rows { print(String(format: "%6d | %6.2f | %12.2f", r.tokens, r.milliseconds, r.decodeSteps)) }
        try writeJSON(report, to: output)
        print("wrote \(output)")
    }
}

struct PhasesBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "phases",
        abstract: "Where a decode step's time goes, phase by phase, split by where the host put the threads.",
        discussion: "A LLaMA-family decode step with its matrices in a block format runs as one parallel region of phases. Per kind of phase, over all layers: ms per step and share of the step (from the previous phase's end to its own), start µs (per layer: from the previous phase's end to its first task: the handoff between threads), busy µs (per layer: the busiest thread's first start to last end), and GB/s of weights for the projections. Each figure is the median over the rounds of a placement.")

    @Option(name: [.customLong("model"), .customLong("llm-model")]) var model: String
    @Option(help: "Weight format: stored, q8_0, q4_0, q4_1, int8, int4 (a block format).") var format = "stored"
    @Option(help: "f32 or q8 activations against integer block weights.") var activations: ActivationFormat = .q8
    @Option var rounds = 20
    @Option(help: "Greedy tokens per round, after the prompt.") var steps = 64
    @Option(help: "Prompt tokens before each round's steps (attention over a longer context).") var promptTokens = 16
    @Option(name: .customLong("kv-cache-dtype"), help: "How the KV cache holds keys and values: f32 or f16.") var kvCacheType: KVCacheType = .f32
    @Option var output = "bench-phases.json"

    mutating func run() async throws {
        guard rounds > 0, steps > 0, promptTokens > 0 else { throw ValidationError("--rounds, --steps and --prompt-tokens must be positive") }
        let report = try DecodePhaseBenchmark.run(path: model, format: try WeightFormat.parse(format), activations: activations,
                                                  kvCacheType: kvCacheType, rounds: rounds, steps: steps, promptTokens: promptTokens)
        print(String(format: "%@, %@ weights, %@ activations, %@ KV cache, %d steps a round after %d prompt tokens", report.cpu as NSString,
                     report.format as NSString, report.activations as NSString, report.kvCacheType.rawValue as NSString,
                     report.stepsPerRound, report.promptTokens))
        for p in report.placements {
            print(String(format: "\n%@: %d rounds, handoff %@ ns, step %.3f ms (%.3f outside the region: %.3f before it, %.3f after)",
                         p.placement as NSString, p.rounds, (p.handoffNanoseconds.map { String(format: "%.0f", $0) } ?? "-") as NSString,
                         p.stepMilliseconds, p.outsideMilliseconds, p.beforeRegionMilliseconds, p.afterRegionMilliseconds))
            print("phase          | ms/step | of step | start µs | busy µs |  GB/s")
            for r in p.rows {
                print(String(format: "%@ | %7.3f | %6.1f%% | %8.2f | %7.2f | %@", r.phase.padding(toLength: 14, withPad: " ", startingAt: 0) as NSString,
                             r.milliseconds, 100 * r.shareOfStep, r.startMicroseconds, r.busyMicroseconds,
                             (r.gbs.map { String(format: "%5.1f", $0) } ?? "    -") as NSString))
            }
        }
        try writeJSON(report, to: output)
        print("wrote \(output)")
    }
}

/// `flexserve bench bound`: the decode step against itself cut down, as fractions of concurrent reads, by placement.
struct BoundBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bound",
        abstract: "What holds a decode step: the step against itself without its arithmetic, glue or phase ends, against concurrent reads.",
        discussion: "A LLaMA-family decode step with its matrices in an integer block format runs as one parallel region: a phase per projection and per piece of glue (norms, RoPE and the cache write, attention, quantization, SiLU·up). Each cut leaves parts out (the logits are then meaningless): 'no arithmetic' reads every weight line the kernels would (the same pieces, prefetches and headers) without the dot products; 'no glue' runs only the projections' phases; 'no phase ends' has each thread stream every projection in turn. Each figure is the median over the segments (of --steps steps after a 16-token prompt) run with the threads in that placement, of the steps' weight GB/s over reads of the same bytes after each step.")

    @Option(name: [.customLong("model"), .customLong("llm-model")]) var model: String
    @Option(help: "Comma-separated integer block formats: stored, q8_0, q4_0, q4_1, int8, int4.") var formats = "q4_1,q8_0"
    @Option(help: "f32 or q8 activations.") var activations: ActivationFormat = .q8
    @Option var rounds = 12
    @Option(help: "Steps a segment.") var steps = 48
    @Option var output = "bench-bound.json"

    mutating func run() async throws {
        guard rounds > 0, steps > 0 else { throw ValidationError("--rounds and --steps must be positive") }
        let names = formats.split(separator: ",").map(String.init)
        guard !names.isEmpty else { throw ValidationError("--formats names no format") }
        let report = try DecodeBoundBenchmark.run(path: model, formats: try names.map { try WeightFormat.parse($0) }, activations: activations,
                                                  rounds: rounds, steps: steps)
        print(String(format: "%@, %@ activations, %d rounds of a segment of %d steps per format and cut", report.cpu as NSString,
                     report.activations as NSString, report.rounds, report.stepsPerSegment))
        print("format | parts                             | placement          | segments | decode GB/s | read GB/s | of reads")
        for r in report.rows {
            print(String(format: "%@ | %@ | %@ | %8d | %11.1f | %9.1f | %7.0f%%", r.format.padding(toLength: 6, withPad: " ", startingAt: 0) as NSString,
                         r.parts.padding(toLength: 33, withPad: " ", startingAt: 0) as NSString,
                         r.placement.padding(toLength: 18, withPad: " ", startingAt: 0) as NSString, r.segments, r.decodeGBs, r.readGBs,
                         100 * r.fractionOfConcurrentReads))
        }
        try writeJSON(report, to: output)
        print("wrote \(output)")
    }
}

/// `flexserve perplexity --model M FILE`: sliding-window perplexity of a text file.
struct PerplexityCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "perplexity", abstract: "Sliding-window perplexity of a text file.")

    @Option(name: [.customLong("model"), .customLong("llm-model")]) var model: String
    @Option(help: "Weight format: stored, f32, f16, bf16, q8_0, q4_0, q4_1, int8, int4.") var format = "stored"
    @Option var context = 512
    @Option(help: "f32 or q8 activations against integer block weights.") var activations: ActivationFormat = .f32
    @Option var stride = 256
    @Option(name: .customLong("max-tokens"), help: "Score at most this many tokens of the file.") var maxTokens: Int?
    @Option(name: .customLong("kv-cache-dtype"), help: "How the KV cache holds keys and values: f32 or f16.") var kvCacheType: KVCacheType = .f32
    @Argument var file: String

    mutating func run() async throws {
        let text = try String(contentsOfFile: file, encoding: .utf8)
        let llm = try LLM(model, weightFormat: try WeightFormat.parse(format), activations: activations)
        var tokens = llm.tokenizer.encode(text)
        if let maxTokens { tokens = Array(tokens.prefix(maxTokens)) }
        let start = Date()
        let result = try Perplexity.evaluate(model: llm.model, tokens: tokens, context: context, stride: stride, kvCacheType: kvCacheType)
        print(String(format: "perplexity %.4f over %d tokens (format %@, activations %@, KV cache %@, context %d, stride %d, %.1f s)",
                     result.perplexity, result.tokens, format as NSString, activations.rawValue as NSString, kvCacheType.rawValue as NSString,
                     context, stride, Date().timeIntervalSince(start)))
    }
}

extension ActivationFormat {
    /// Parses a comma-separated list of activation formats ("f32,q8").
    static func parseList(_ names: String) throws -> [ActivationFormat] {
        try names.split(separator: ",").map { name in
            guard let a = ActivationFormat(rawValue: String(name)) else {
                throw ValidationError("unknown activation format '\(name)' (expected f32 or q8)")
            }
            return a
        }
    }
}

extension WeightFormat {
    /// Parses a command-line format name; "stored" means the file's own formats.
    static func parse(_ name: String) throws -> WeightFormat? {
        switch name.lowercased() {
        case "stored", "": return nil
        case "int8": return .int8Group
        case "int4": return .int4Group
        default:
            guard let f = WeightFormat(rawValue: name.lowercased()) else {
                throw ValidationError("unknown weight format '\(name)' (stored, f32, f16, bf16, q8_0, q4_0, q4_1, int8, int4)")
            }
            return f
        }
    }
}
