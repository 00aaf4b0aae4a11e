import Foundation
import FlexServeModels
import FlexServeTensor

/// LLaMA-family decoder (LLaMA 1/2/3, SmolLM2, Mistral, Qwen2) on one NVIDIA GPU, as `LlamaModel` computes it
/// on the CPU: weights uploaded once in `dataType`, matrix products with fp32 accumulation (the package's GEMV for
/// steps of ≤ 8 tokens by default, cuBLAS beyond; `Options`), and the
/// package's own kernels for the rest. It conforms to `CausalLM`, so the request manager's continuous batching
/// and speculative decoding drive it unchanged; its K/V live on the GPU at the host cache's slots.
public final class CUDALlama: CausalLM, @unchecked Sendable {
    public let config: ModelConfig
    public let device: CUDADevice
    public let dataType: CUDADataType
    /// Bytes of weights on the GPU.
    public let weightBytes: Int
    let kernels: LlamaKernels
    let blas: CUBLAS
    /// The weight-streaming GEMV for steps of few tokens, unless turned off (`FLEXSERVE_CUDA_GEMV=0`: cuBLAS).
    private(set) var gemv: GEMVKernel?
    public private(set) var options: Options
    /// Profiling hook (`DecodeProfile`): called with a category name before each part of a step is queued
    /// ("upload", "embed", "norm", "qkv", ..., "logits-copy") and with "end" once the logits are on the host.
    var profileMark: ((String) throws -> Void)?
    /// Why CUDA graphs were turned off for this model after a failed capture (nil: never failed).
    public private(set) var graphFailure: String?
    /// Steps run as a captured graph: captures and replays (a replay count far above captures is the aim).
    public private(set) var graphCaptures = 0, graphReplays = 0
    let rope: RotaryEmbedding
    /// The embedding table and the vocabulary head (one block, always on the GPU).
    let globals: DeviceBuffer
    let embedding: DevicePointer
    let lmHead: DeviceMatrix
    let finalNorm: DeviceBuffer
    let layers: [Layer]
    /// Products of int8/int4 matrices (nil when every matrix is dense).
    let quantized: QuantizedKernel?
    /// A dense copy of one quantized matrix, for cuBLAS on steps too large for the quantized GEMV.
    private var dequantScratch: DeviceBuffer?
    /// `--offload`: the layers' blocks in pinned host memory, streamed to the GPU per step (nil: resident).
    let streamer: LayerStreamer?
    /// Bytes copied from the host per step with `--offload` (0 when resident).
    public var streamedBytesPerStep: Int { streamer?.streamedBytes ?? 0 }
    /// How the projection matrices are stored: "dense", "int8Group" or "int4Group".
    public let weightFormat: String
    /// The quantized GEMV's launch variant (nil when every matrix is dense).
    public var quantizedVariant: String? { quantized?.variant }
    /// Weight bytes a batch-1 decode step reads: every layer's matrices, norms and bias, the final norm and the
    /// head (the embedding table only for its one row, not counted).
    public let decodeReadBytes: Int
    private var scratch: Scratch?
    private var caches: [ObjectIdentifier: DeviceKVCache] = [:]
    private let lock = NSLock()

    struct Layer {
        let attentionNorm: DeviceBuffer
        let qkvBias: DeviceBuffer?
        let mlpNorm: DeviceBuffer
        /// q, k and v projections stacked: one GEMM.
        let qkv: DeviceMatrix
        let wo: DeviceMatrix
        /// gate and up projections stacked: one GEMM.
        let gateUp: DeviceMatrix
        let down: DeviceMatrix
        /// The block holding the four matrices on the GPU; nil with `--offload` (streamed per step).
        let resident: DeviceBuffer?

        /// A matrix's address in a resident layer (profiling).
        func address(_ m: DeviceMatrix) -> DevicePointer { (resident?.pointer ?? 0) + DevicePointer(m.offset) }
    }

    public static let architectures: Set<String> = [
        "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "llama", "mistral", "qwen2",
    ]

    /// How steps are executed; by default from the environment (`Options.environment`).
    ///
    /// The built-in default (`Options()`, since 2026-12-02) is the GEMV (launch variant w4) for steps of ≤ 8 tokens,
    /// CUDA graphs, attention 3 and the wide norm/RoPE kernels: 76.3–77.6% of the copy roofline (two runs) on the LLaMA-7B shape
    /// (fp16, batch 1, H200) against 43.5% with cuBLAS, SmolLM2 fp32 and fp16 16/16 prompts identical to the CPU over
    /// 32 greedy tokens (`bench/gpu/NOTES.md`). `Options.cublas` is the execution that was the default before.
    /// With `--offload` the steps run without graphs whatever `graphs` says (the layer copies cross streams).
    public struct Options: Sendable, Equatable {
        /// Matrix products of steps of at most `gemvMaxTokens` tokens through the package's GEMV instead of cuBLAS.
        public var gemv: Bool
        public var gemvMaxTokens: Int
        /// Steps of at most `graphMaxTokens` tokens that want logits captured once per shape as a CUDA graph and replayed.
        public var graphs: Bool
        public var graphMaxTokens: Int
        /// Attention through `attention2` (slots in parallel across the block) instead of `attention`.
        public var attention2: Bool
        /// Attention of steps of at most `attention3MaxTokens` tokens through `attention3` (split over chunks of each
        /// token's list, then combined in chunk order); larger steps take `attention2`. `FLEXSERVE_CUDA_ATTENTION=3`.
        public var attention3: Bool
        public var attention3MaxTokens: Int = 64
        /// Smallest chunk of `attention3` (a token's chunk length is a multiple of it; `FLEXSERVE_CUDA_ATTENTION_CHUNK`).
        public var attentionChunk: Int = 32
        /// RMSNorm and RoPE through `rmsnorm2` / `rope_store2` (wide launches). `FLEXSERVE_CUDA_NORM_ROPE=2`.
        public var normRope2: Bool
        /// The GEMV's launch configuration: "default" (the kernel's base launch) or a name from
        /// `GEMVKernelSource.tuningVariants`; w4 unless set.
        public var gemvVariant: String

        public init(gemv: Bool = true, gemvMaxTokens: Int = 8, graphs: Bool = true, graphMaxTokens: Int = 32,
                    attention2: Bool = false, attention3: Bool = true, normRope2: Bool = true, gemvVariant: String = "w4") {
            self.gemvVariant = gemvVariant
            self.gemv = gemv
            self.gemvMaxTokens = gemvMaxTokens
            self.graphs = graphs
            self.graphMaxTokens = graphMaxTokens
            self.attention2 = attention2
            self.attention3 = attention3
            self.normRope2 = normRope2
        }

        /// cuBLAS for every product, no graphs, the first attention and norm/RoPE kernels: the default before
        /// 2026-12-02 (`FLEXSERVE_CUDA_GEMV=0 FLEXSERVE_CUDA_GRAPHS=0 FLEXSERVE_CUDA_ATTENTION=1 FLEXSERVE_CUDA_NORM_ROPE=1`).
        public static let cublas = Options(gemv: false, graphs: false, attention3: false, normRope2: false)

        /// The built-in default changed by the environment: `FLEXSERVE_CUDA_GEMV=0|1`, `FLEXSERVE_CUDA_GEMV_MAX_TOKENS`,
        /// `FLEXSERVE_CUDA_GEMV_VARIANT` (default, u8, w2, w4, w8), `FLEXSERVE_CUDA_GRAPHS=0|1`,
        /// `FLEXSERVE_CUDA_GRAPH_MAX_TOKENS`, `FLEXSERVE_CUDA_ATTENTION=1|2|3`, `FLEXSERVE_CUDA_ATTENTION_CHUNK`,
        /// `FLEXSERVE_CUDA_ATTENTION3_MAX_TOKENS`, `FLEXSERVE_CUDA_NORM_ROPE=1|2`.
        public static var environment: Options { Options(environment: ProcessInfo.processInfo.environment) }

        /// `Options()` with the `FLEXSERVE_CUDA_*` variables of `env` applied; an unset, empty or unrecognised
        /// value leaves that part at its default.
        public init(environment env: [String: String]) {
            self.init()
            func flag(_ name: String) -> Bool? { env[name] == "1" ? true : env[name] == "0" ? false : nil }
            func count(_ name: String) -> Int? { env[name].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil } }
            if let on = flag("FLEXSERVE_CUDA_GEMV") { gemv = on }
            if let n = count("FLEXSERVE_CUDA_GEMV_MAX_TOKENS") { gemvMaxTokens = n }
            if let v = env["FLEXSERVE_CUDA_GEMV_VARIANT"], !v.isEmpty { gemvVariant = v }
            if let on = flag("FLEXSERVE_CUDA_GRAPHS") { graphs = on }
            if let n = count("FLEXSERVE_CUDA_GRAPH_MAX_TOKENS") { graphMaxTokens = n }
            switch env["FLEXSERVE_CUDA_ATTENTION"] {
            case "1": attention2 = false; attention3 = false
            case "2": attention2 = true; attention3 = false
            case "3": attention2 = false; attention3 = true
            default: break
            }
            if let n = count("FLEXSERVE_CUDA_ATTENTION_CHUNK") { attentionChunk = n }
            if let n = count("FLEXSERVE_CUDA_ATTENTION3_MAX_TOKENS") { attention3MaxTokens = n }
            switch env["FLEXSERVE_CUDA_NORM_ROPE"] {
            case "1": normRope2 = false
            case "2": normRope2 = true
            default: break
            }
        }

        /// A short name for reports: "cublas", "gemv<=8" (base launch), "gemv<=8[w4]", "+graphs", "+attn2", "+attn3", "+nr2";
        /// the default is "gemv<=8[w4]+graphs+attn3+nr2".
        public var summary: String {
            (gemv ? "gemv<=\(gemvMaxTokens)" + (gemvVariant == "default" ? "" : "[\(gemvVariant)]") : "cublas") + (graphs ? "+graphs" : "") + (attention2 ? "+attn2" : "")
                + (attention3 ? "+attn3" + (attentionChunk == 32 ? "" : "[chunk \(attentionChunk)]") : "") + (normRope2 ? "+nr2" : "")
        }
    }

    /// - weights: projection matrices already in `DType.int8Group` / `.int4Group` (a `ConvertingStore`, as
    ///   `--8bit-quantization` / `--4bit-quantization` load them) stay packed on the GPU; other formats are
    ///   converted to `dataType`, which is also the activations' type.
    /// - offload: keep the decoder layers in pinned host memory and stream them to the GPU every step.
    public init(config: ModelConfig, weights: WeightStore, dataType: CUDADataType = .fp16, device: CUDADevice? = nil,
                options: Options = .environment, offload: Bool = false) throws {
        guard Self.architectures.contains(config.architecture) else {
            throw CUDAError.unsupported("architecture '\(config.architecture)' has no GPU implementation (LLaMA-family only); use --device cpu")
        }
        let device = try device ?? CUDADevice.shared()
        try device.makeCurrent()
        self.config = config
        self.device = device
        self.dataType = dataType
        kernels = try LlamaKernels(device: device, type: dataType)
        blas = try device.cublas()
        // With --offload the steps run without graphs (`graphsApply`); say so in `options.summary` too.
        self.options = options
        if offload { self.options.graphs = false }
        gemv = options.gemv ? try GEMVKernel(device: device, type: dataType, maxTokens: options.gemvMaxTokens,
                                             variant: options.gemvVariant) : nil
        let c = config, src = weights.source
        let qDim = c.numHeads * c.headDim, kvDim = c.numKVHeads * c.headDim
        func matrix(_ name: String, _ rows: Int, _ cols: Int) throws -> TensorView {
            try weights.tensor(name).expecting([rows, cols], name, in: src)
        }
        func vector(_ name: String, _ n: Int) throws -> [Float] {
            try weights.tensor(name).expecting([n], name, in: src).floats()
        }
        var upload = DeviceWeights(device: device, type: dataType)
        var global = WeightBlock(type: dataType)
        _ = try global.append([matrix("model.embed_tokens.weight", c.vocabSize, c.hiddenSize)])
        if global.matrices[0].format != .dense {
            throw CUDAError.unsupported("the embedding table must be dense on the GPU (it is \(global.matrices[0].format.rawValue))")
        }
        if !c.tieWordEmbeddings, weights.contains("lm_head.weight") {
            _ = try global.append([matrix("lm_head.weight", c.vocabSize, c.hiddenSize)])
        }
        var blocks: [WeightBlock] = []
        var parts: [(norm: DeviceBuffer, bias: DeviceBuffer?, mlpNorm: DeviceBuffer)] = []
        for l in 0..<c.numLayers {
            let p = "model.layers.\(l)."
            let biasNames = ["q_proj", "k_proj", "v_proj"].map { p + "self_attn.\($0).bias" }
            var bias: DeviceBuffer?
            if biasNames.contains(where: weights.contains) {
                let sizes = [qDim, kvDim, kvDim]
                let values = try zip(biasNames, sizes).flatMap { name, n in
                    weights.contains(name) ? try vector(name, n) : [Float](repeating: 0, count: n)
                }
                bias = try upload.floats(values)
            }
            var block = WeightBlock(type: dataType)
            _ = try block.append([matrix(p + "self_attn.q_proj.weight", qDim, c.hiddenSize),
                                  matrix(p + "self_attn.k_proj.weight", kvDim, c.hiddenSize),
                                  matrix(p + "self_attn.v_proj.weight", kvDim, c.hiddenSize)])
            _ = try block.append([matrix(p + "self_attn.o_proj.weight", c.hiddenSize, qDim)])
            _ = try block.append([matrix(p + "mlp.gate_proj.weight", c.intermediateSize, c.hiddenSize),
                                  matrix(p + "mlp.up_proj.weight", c.intermediateSize, c.hiddenSize)])
            _ = try block.append([matrix(p + "mlp.down_proj.weight", c.hiddenSize, c.intermediateSize)])
            blocks.append(block)
            parts.append((try upload.floats(vector(p + "input_layernorm.weight", c.hiddenSize)), bias,
                          try upload.floats(vector(p + "post_attention_layernorm.weight", c.hiddenSize))))
        }
        globals = try DeviceWeights.upload(global, device: device)
        embedding = globals.pointer + DevicePointer(global.matrices[0].offset)
        lmHead = global.matrices.count > 1 ? global.matrices[1] : global.matrices[0]
        if offload {
            streamer = try LayerStreamer(device: device, blocks: blocks)
        } else {
            streamer = nil
        }
        layers = try zip(blocks, parts).map { block, part in
            Layer(attentionNorm: part.norm, qkvBias: part.bias, mlpNorm: part.mlpNorm,
                  qkv: block.matrices[0], wo: block.matrices[1], gateUp: block.matrices[2], down: block.matrices[3],
                  resident: offload ? nil : try DeviceWeights.upload(block, device: device))
        }
        finalNorm = try upload.floats(vector("model.norm.weight", c.hiddenSize))
        let all = blocks.flatMap(\.matrices) + global.matrices
        let packed = all.filter { $0.format != .dense }
        let formats = Set(packed.map(\.format.rawValue)).sorted().joined(separator: "+")
        weightFormat = formats.isEmpty ? "dense" : formats
        quantized = packed.isEmpty ? nil : try QuantizedKernel(device: device, type: dataType, maxTokens: options.gemvMaxTokens)
        if let largest = packed.map({ $0.rows * $0.cols }).max() {
            dequantScratch = try device.allocate(bytes: largest * dataType.bytes)
        }
        weightBytes = upload.uploadedBytes + global.bytes + blocks.reduce(0) { $0 + $1.bytes }
        decodeReadBytes = upload.uploadedBytes + lmHead.bytes + blocks.reduce(0) { $0 + $1.bytes }
        rope = RotaryEmbedding(rotaryDim: c.headDim, theta: c.ropeTheta,
                               inverseFrequencies: RotaryEmbedding.scaledFrequencies(config: c))
        try device.synchronize()
    }

    /// The device K/V for a host cache, made on first use.
    private func deviceCache(for cache: PagedKVCache) throws -> DeviceKVCache {
        let id = ObjectIdentifier(cache)
        if let existing = caches[id], existing.owner === cache { return existing }
        caches = caches.filter { $0.value.owner != nil }
        let made = try DeviceKVCache(device: device, cache: cache, type: dataType)
        caches[id] = made
        return made
    }

    public func forward(_ batch: Batch, cache: PagedKVCache) throws -> Logits {
        lock.lock(); defer { lock.unlock() }
        try device.makeCurrent()
        guard batch.count > 0 else { return Logits(rows: 0, vocabSize: config.vocabSize) }
        let (s, R) = try run(batch, cache: cache)
        let logits = Logits(rows: R, vocabSize: config.vocabSize)
        try profileMark?("logits-copy")
        if R > 0 {
            try device.copy(toHost: logits.storage.pointer, from: s.logits.pointer, bytes: R * config.vocabSize * 4)
        } else {
            try device.synchronize()
        }
        try profileMark?("end")
        return logits
    }

    /// A step whose listed rows are sampled on the GPU (`DeviceSampler`): only their token ids come back, not their
    /// logits; the other rows' logits are copied as `forward` copies them (a sampled row's host row is left zero).
    public func forward(_ batch: Batch, cache: PagedKVCache, sampling: [RowSampling]) throws -> (logits: Logits, tokens: [Int]) {
        lock.lock(); defer { lock.unlock() }
        try device.makeCurrent()
        let V = config.vocabSize
        guard batch.count > 0 else { return (Logits(rows: 0, vocabSize: V), []) }
        let (s, R) = try run(batch, cache: cache)
        guard sampling.allSatisfy({ $0.row >= 0 && $0.row < R }) else {
            throw CUDAError.unsupported("device sampling asked for a row outside the step's \(R) logits rows")
        }
        if sampler == nil { sampler = try DeviceSampler(device: device) }
        if samplerScratch?.bytes ?? 0 < DeviceSampler.scratchBytes(count: sampling.count) {
            samplerScratch = try device.allocate(bytes: DeviceSampler.scratchBytes(count: max(sampling.count, 64)))
        }
        let logits = Logits(rows: R, vocabSize: V)
        // Rows nobody samples here (tree nodes to verify, other requests) still go to the host, in runs.
        let sampled = Set(sampling.map(\.row))
        var r = 0
        while r < R {
            if sampled.contains(r) { r += 1; continue }
            var end = r
            while end < R, !sampled.contains(end) { end += 1 }
            try device.copy(toHost: logits.storage.pointer + r * V, from: s.logits.pointer + DevicePointer(r * V * 4), bytes: (end - r) * V * 4)
            r = end
        }
        let tokens = try sampler!.sample(logits: s.logits.pointer, vocabSize: V, requests: sampling, scratch: samplerScratch!.pointer)
        return (logits, tokens)
    }

    private var sampler: DeviceSampler?
    private var samplerScratch: DeviceBuffer?

    /// Queues one step and leaves its logits (fp32, the rows that asked for them) in the scratch's `logits`.
    private func run(_ batch: Batch, cache: PagedKVCache) throws -> (Scratch, Int) {
        let c = config
        let T = batch.count
        let kvDim = c.numKVHeads * c.headDim, V = c.vocabSize, half = c.headDim / 2
        let kv = try deviceCache(for: cache)
        guard kv.slots == cache.capacityTokens, kv.kvDim == kvDim else {
            throw CUDAError.unsupported("KV cache shape does not match the model")
        }
        // Mistral's sliding window drops keys more than `slidingWindow - 1` positions back, as on the CPU.
        let addressing = try c.slidingWindow.map { window in
            let a = try cache.positionedAddressing(for: batch, slidingWindow: window)
            return (write: a.write, slotStart: a.slotStart, slots: a.slots)
        } ?? cache.addressing(for: batch)
        let picked = batch.tokens.indices.filter { batch.tokens[$0].wantsLogits }.map { Int32($0) }
        let R = picked.count
        let (cosines, sines) = rope.tables(positions: batch.tokens.map { Int32($0.position) })
        let moves = kv.takeMoves()
        var maxVisible = 1
        for t in 0..<T { maxVisible = max(maxVisible, Int(addressing.slotStart[t + 1] - addressing.slotStart[t])) }

        // Everything the step needs from the host goes up in one copy. The fixed-size arrays come first, so
        // their offsets depend only on (T, R) and a captured graph finds them again at the next step of that
        // shape; the slot lists (which grow with the sequence) and the moves follow.
        var step = StepLayout()
        var packed: [Int32] = []
        packed.reserveCapacity(4 * T + addressing.slots.count + R + moves.count + 2 * T * half + 1)
        step.ids = packed.count; packed.append(contentsOf: batch.tokens.map { Int32($0.id) })
        step.write = packed.count; packed.append(contentsOf: addressing.write)
        step.slotStart = packed.count; packed.append(contentsOf: addressing.slotStart)
        step.picked = packed.count; packed.append(contentsOf: picked)
        step.cos = packed.count; packed.append(contentsOf: cosines.map { Int32(bitPattern: $0.bitPattern) })
        step.sin = packed.count; packed.append(contentsOf: sines.map { Int32(bitPattern: $0.bitPattern) })
        step.slots = packed.count; packed.append(contentsOf: addressing.slots)
        step.moves = packed.count; packed.append(contentsOf: moves)
        for t in batch.tokens where t.id < 0 || t.id >= V {
            throw ModelError("token id \(t.id) is outside the vocabulary (0..<\(V))")
        }

        let s = try scratch(tokens: T, logitRows: R, stepInts: packed.count)
        try profileMark?("upload")
        try packed.withUnsafeBytes { try device.copy(toDevice: s.step.pointer, from: $0.baseAddress!, bytes: $0.count) }
        // Moves vary in number, so they run outside any graph, before the step reads the cache.
        try kernels.moveSlots(cache: kv.storage.pointer, moves: s.step.offset(step.moves * 4), count: moves.count / 2,
                              slots: kv.slots, kvDim: kvDim, planes: 2 * c.numLayers)
        if graphsApply(tokens: T, logitRows: R) {
            // Attention's shared memory is sized by the longest visible list; rounding it up lets one graph
            // serve 256 consecutive positions.
            let bound = (maxVisible + 255) / 256 * 256
            let key = GraphKey(tokens: T, logitRows: R, visibleBound: bound, cache: kv.storage.pointer, slots: kv.slots)
            if let graph = s.graphs[key] {
                try graph.launch()
                graphReplays += 1
            } else if s.seenShapes.insert(key).inserted {
                // A shape's first step runs directly: one-off shapes (prefills) are not worth a capture, and
                // libraries finish their lazy set-up (module loading, cuBLAS heuristics) outside a capture.
                try encode(s, kv: kv, step: step, tokens: T, logitRows: R, maxVisible: maxVisible)
            } else {
                do {
                    let graph = try CUDAGraph(device: device) {
                        try encode(s, kv: kv, step: step, tokens: T, logitRows: R, maxVisible: bound)
                    }
                    if s.graphs.count >= 64 { s.graphs.removeAll(); s.seenShapes.removeAll() }
                    s.graphs[key] = graph
                    graphCaptures += 1
                    try graph.launch()
                } catch {
                    // Nothing captured ran: note why, stop trying, and run this step directly.
                    graphFailure = "\(error)"
                    FileHandle.standardError.write("flexserve: CUDA graph capture failed, running steps directly: \(error)\n".data(using: .utf8)!)
                    try encode(s, kv: kv, step: step, tokens: T, logitRows: R, maxVisible: maxVisible)
                }
            }
        } else {
            try encode(s, kv: kv, step: step, tokens: T, logitRows: R, maxVisible: maxVisible)
        }
        return (s, R)
    }

    /// Whether a step of this shape runs as a captured graph.
    private func graphsApply(tokens: Int, logitRows: Int) -> Bool {
        guard options.graphs, streamer == nil, graphFailure == nil, device.driver.graphs != nil, logitRows > 0, tokens <= options.graphMaxTokens else {
            return false
        }
        // cuBLAS without a workspace of ours may allocate while capturing, which a capture forbids.
        return blas.workspace != nil || (gemv?.maxTokens ?? 0 >= tokens && (quantized?.maxTokens ?? Int.max) >= tokens)
    }

    /// Queues one step's kernels, from the embedding to the vocabulary head, reading the step's arrays from
    /// `s.step` at `step`'s offsets. Every address it passes is fixed for a given (scratch, cache, T, R), so the
    /// launches can be captured once and replayed.
    private func encode(_ s: Scratch, kv: DeviceKVCache, step: StepLayout, tokens T: Int, logitRows R: Int, maxVisible: Int) throws {
        let c = config
        let H = c.hiddenSize, I = c.intermediateSize  // matrix shapes come with each DeviceMatrix
        func at(_ index: Int) -> DevicePointer { s.step.offset(index * 4) }
        let mark = profileMark ?? { _ in }
        try mark("embed")
        try kernels.embed(ids: at(step.ids), table: embedding, out: s.x.pointer, tokens: T, dim: H)
        let scale = 1 / Float(c.headDim).squareRoot()
        // attention3 for steps of few tokens (its partial sums are sized for attention3MaxTokens); a chunk's scores
        // and slot indices must fit in shared memory.
        let split = options.attention3 && T <= options.attention3MaxTokens
            && LlamaKernels.attention3Handles(headDim: c.headDim, type: dataType)
            && (c.headDim + 2 * LlamaKernels.attention3Chunk(visible: maxVisible, minChunk: options.attentionChunk).length) * 4 <= 40 * 1024
        for (l, layer) in layers.enumerated() {
            // With --offload the compute stream waits here for this layer's copy.
            let base = try layer.resident?.pointer ?? streamer!.acquire(layer: l)
            // Attention block: x += Wo · attention(rope(Wqkv · norm(x))).
            try mark("norm")
            try norm(x: s.x.pointer, rows: 0, count: T, weight: layer.attentionNorm.pointer, out: s.act.pointer,
                     dim: H, eps: c.rmsNormEps)
            try mark("qkv")
            try linear(x: s.act.pointer, matrix: layer.qkv, base: base, out: s.qkv.pointer, tokens: T)
            try mark("rope+kv-write")
            if options.normRope2 {
                try kernels.ropeAndStore2(qkv: s.qkv.pointer, bias: layer.qkvBias?.pointer ?? 0, cos: at(step.cos), sin: at(step.sin),
                                          write: at(step.write), keys: kv.keys(layer: l), values: kv.values(layer: l),
                                          tokens: T, heads: c.numHeads, kvHeads: c.numKVHeads, headDim: c.headDim)
            } else {
                try kernels.ropeAndStore(qkv: s.qkv.pointer, bias: layer.qkvBias?.pointer ?? 0, cos: at(step.cos), sin: at(step.sin),
                                         write: at(step.write), keys: kv.keys(layer: l), values: kv.values(layer: l),
                                         tokens: T, heads: c.numHeads, kvHeads: c.numKVHeads, headDim: c.headDim)
            }
            try mark("attention")
            if split, let part = s.attentionPart {
                try kernels.attention3(qkv: s.qkv.pointer, keys: kv.keys(layer: l), values: kv.values(layer: l),
                                       slotStart: at(step.slotStart), slots: at(step.slots), part: part.pointer, out: s.act.pointer,
                                       tokens: T, maxVisible: maxVisible, heads: c.numHeads, kvHeads: c.numKVHeads,
                                       headDim: c.headDim, scale: scale, minChunk: options.attentionChunk)
            } else {
                try kernels.attention(qkv: s.qkv.pointer, keys: kv.keys(layer: l), values: kv.values(layer: l),
                                      slotStart: at(step.slotStart), slots: at(step.slots), out: s.act.pointer,
                                      tokens: T, maxVisible: maxVisible, heads: c.numHeads, kvHeads: c.numKVHeads,
                                      headDim: c.headDim, scale: scale, version2: options.attention2 || options.attention3)
            }
            try mark("o-proj")
            try linear(x: s.act.pointer, matrix: layer.wo, base: base, out: s.x.pointer, tokens: T, accumulate: true)
            // MLP block: x += Wdown · (silu(Wgate · h) ⊙ Wup · h), h = norm(x).
            try mark("norm")
            try norm(x: s.x.pointer, rows: 0, count: T, weight: layer.mlpNorm.pointer, out: s.act.pointer,
                     dim: H, eps: c.rmsNormEps)
            try mark("gate/up")
            try linear(x: s.act.pointer, matrix: layer.gateUp, base: base, out: s.gateUp.pointer, tokens: T)
            try mark("silu*up")
            try kernels.siluMultiply(gateUp: s.gateUp.pointer, out: s.act.pointer, tokens: T, inner: I)
            try mark("down")
            try linear(x: s.act.pointer, matrix: layer.down, base: base, out: s.x.pointer, tokens: T, accumulate: true)
            if layer.resident == nil { try streamer!.release() }
        }
        if R > 0 {
            // Final norm and vocabulary head only for the rows that asked for logits.
            try mark("norm")
            try norm(x: s.x.pointer, rows: at(step.picked), count: R, weight: finalNorm.pointer, out: s.act.pointer,
                     dim: H, eps: c.rmsNormEps)
            try mark("lm-head")
            try linear(x: s.act.pointer, matrix: lmHead, base: globals.pointer, out: s.logits.pointer, tokens: R)
        }
    }

    private func norm(x: DevicePointer, rows: DevicePointer, count: Int, weight: DevicePointer, out: DevicePointer,
                      dim: Int, eps: Float) throws {
        if options.normRope2 {
            try kernels.rmsNorm2(x: x, rows: rows, count: count, weight: weight, out: out, dim: dim, eps: eps)
        } else {
            try kernels.rmsNorm(x: x, rows: rows, count: count, weight: weight, out: out, dim: dim, eps: eps)
        }
    }

    /// Profiling: switches the few-token product path (a GEMV variant, or nil for cuBLAS) and CUDA graphs; drops
    /// captured graphs, which hold the old kernels.
    func setExecution(gemvVariant: String?, graphs: Bool) throws {
        lock.lock(); defer { lock.unlock() }
        if let v = gemvVariant {
            gemv = try GEMVKernel(device: device, type: dataType, maxTokens: options.gemvMaxTokens, variant: v)
            options.gemvVariant = v
        } else {
            gemv = nil
        }
        options.gemv = gemvVariant != nil
        options.graphs = graphs
        scratch?.graphs.removeAll()
        scratch?.seenShapes.removeAll()
    }

    /// Which matrix-product path few-token steps take: "gemv" or "cublas".
    public var smallStepKernel: String { gemv == nil ? "cublas" : "gemv" }

    /// A captured step's identity: its shape and every address it bakes in besides the scratch's own.
    struct GraphKey: Hashable {
        let tokens: Int, logitRows: Int, visibleBound: Int
        let cache: DevicePointer, slots: Int
    }

    /// `out[tokens][rows] (+)= x[tokens][cols] · m[rows][cols]ᵀ` for a matrix of a block at `base`, fp32 out:
    /// dense through the GEMV or cuBLAS; quantized through the dequantizing GEMV for few tokens, else
    /// dequantized into a dense scratch for cuBLAS.
    private func linear(x: DevicePointer, matrix m: DeviceMatrix, base: DevicePointer, out: DevicePointer, tokens: Int,
                        accumulate: Bool = false) throws {
        let w = base + DevicePointer(m.offset)
        guard m.format != .dense else {
            return try linear(x: x, w: w, out: out, tokens: tokens, n: m.rows, k: m.cols, accumulate: accumulate)
        }
        guard let quantized else { throw CUDAError.unsupported("a quantized matrix without the quantized kernels") }
        if tokens <= quantized.maxTokens {
            try quantized.linear(matrix: m, base: base, x: x, out: out, tokens: tokens, accumulate: accumulate)
        } else {
            guard let scratch = dequantScratch else { throw CUDAError.unsupported("no dequantization scratch") }
            try quantized.dequantize(matrix: m, base: base, out: scratch.pointer)
            try blas.linear(x: x, w: scratch.pointer, inputType: dataType.blasType, out: out, tokens: tokens, n: m.rows, k: m.cols,
                            accumulate: accumulate)
        }
    }

    /// `out[tokens][n] (+)= x[tokens][k] · w[n][k]ᵀ`, fp32 out, through the GEMV kernel when it applies.
    private func linear(x: DevicePointer, w: DevicePointer, out: DevicePointer, tokens: Int, n: Int, k: Int,
                        accumulate: Bool = false) throws {
        if let gemv, gemv.handles(tokens: tokens, k: k) {
            try gemv.linear(x: x, w: w, out: out, tokens: tokens, n: n, k: k, accumulate: accumulate)
        } else {
            try blas.linear(x: x, w: w, inputType: dataType.blasType, out: out, tokens: tokens, n: n, k: k, accumulate: accumulate)
        }
    }

    /// Offsets (in 4-byte words) of the step's host-provided arrays in the step buffer.
    struct StepLayout {
        var ids = 0, write = 0, slotStart = 0, slots = 0, picked = 0, moves = 0, cos = 0, sin = 0
    }

    /// Activation buffers sized for the largest step so far.
    final class Scratch {
        let tokens: Int, logitRows: Int, stepInts: Int
        let x, act, qkv, gateUp, logits, step: DeviceBuffer
        /// attention3's per-chunk partial results, for steps of up to attention3MaxTokens tokens (nil unless attention3).
        let attentionPart: DeviceBuffer?
        /// Graphs captured over these buffers; they go with them when the scratch is replaced.
        var graphs: [GraphKey: CUDAGraph] = [:]
        /// Shapes stepped through at least once (captured from their second step on).
        var seenShapes: Set<GraphKey> = []

        init(model: CUDALlama, tokens: Int, logitRows: Int, stepInts: Int) throws {
            let c = model.config, d = model.device
            let qDim = c.numHeads * c.headDim, kvDim = c.numKVHeads * c.headDim
            self.tokens = tokens
            self.logitRows = logitRows
            self.stepInts = stepInts
            x = try d.allocate(bytes: tokens * c.hiddenSize * 4)
            act = try d.allocate(bytes: tokens * max(c.hiddenSize, qDim, c.intermediateSize) * model.dataType.bytes)
            qkv = try d.allocate(bytes: tokens * (qDim + 2 * kvDim) * 4)
            gateUp = try d.allocate(bytes: tokens * 2 * c.intermediateSize * 4)
            logits = try d.allocate(bytes: logitRows * c.vocabSize * 4)
            step = try d.allocate(bytes: stepInts * 4)
            attentionPart = model.options.attention3
                ? try d.allocate(bytes: LlamaKernels.attention3PartFloats(tokens: min(tokens, model.options.attention3MaxTokens),
                                                                           heads: c.numHeads, headDim: c.headDim) * 4)
                : nil
        }
    }

    private func scratch(tokens: Int, logitRows: Int, stepInts: Int) throws -> Scratch {
        if let s = scratch, s.tokens >= tokens, s.logitRows >= logitRows, s.stepInts >= stepInts { return s }
        let old = scratch
        scratch = nil
        // Grow geometrically so a run of slowly growing steps does not reallocate each time.
        let made = try Scratch(model: self, tokens: max(tokens, 2 * (old?.tokens ?? 0), 16),
                               logitRows: max(logitRows, old?.logitRows ?? 0, 1),
                               stepInts: max(stepInts, 2 * (old?.stepInts ?? 0), 4096))
        scratch = made
        return made
    }
}
