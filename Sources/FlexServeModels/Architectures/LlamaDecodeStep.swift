import Foundation
import FlexServeTensor

/// A LLaMA decode step (one token, its logits wanted, every matrix in a block format or fp32) as one parallel region
/// (`ThreadPool.runPhases`) instead of a dispatch per projection with the glue between them on the
/// caller alone. Per layer:
///
///     norm → quantize │ Q K V │ RoPE, cache write (per KV head) │ attention → quantize (per head set) │ O
///     residual → norm → quantize │ gate up │ SiLU·up → quantize (two halves) │ down
///
/// where `│` is the end of a phase (a head set whose output is not whole blocks of 32 leaves the quantization to a
/// phase of its own) and each projection runs one `TokenProjection` slot per thread
/// (with up to three query heads per KV head, each head set's task does its head's RoPE and cache
/// write itself). The same kernels in the same order as `LlamaModel.forward`, so the same logits bit
/// for bit. Measured in interleaved segments of SmolLM2 decoding (contexts 16–80), against the dispatches:
/// with q8 activations 3.8–5.5% faster (Q8_0 and Q4_1, 29–34 of 38 segment pairs, four runs), with fp32
/// activations, whose kernels spend longer per byte, −1.3 to +3.3% (24–27 of 38 pairs, four runs).
///
/// A projection's tasks each run their thread's slot, and a thread waiting for a phase (a norm on the other thread,
/// the other's last attention head set or stolen piece) asks for the first lines of its slot of the next projection
/// (`TokenProjection.warm`): the weight reads go on through the glue between projections (measured at
/// `IntegerLinear.warmGroupsPerStream`). Waiting for Q/K/V, it first asks for the key and value rows of the head set
/// it will likely attend (`Attention.HeadSets.warm`).
///
/// Over `Attention.splitMinimumKeys` keys, a head set that does not share out evenly (SmolLM2's third of three on two
/// threads) is shared: each thread scores part of its keys, and after a phase end computes the softmax itself and
/// its own columns of the weighted values (RoPE and the cache writes then take their own phase first). Alternated
/// `incr-decoding` runs at contexts 600–870 (Emerald Rapids, q8 activations): steps 3,374 against 3,587 µs (medians of 6 pairs; 5 won).
///
/// Everything a phase calls runs on the calling thread (`serial`): a nested dispatch to the pool would
/// wait on the region it runs in.
final class LlamaDecodeStep: @unchecked Sendable {
    private let config: ModelConfig
    /// Each layer's two norm weights, `[layer][hiddenSize]`, and the final one.
    private let attentionNorms: FloatBuffer, mlpNorms: FloatBuffer, finalNorm: FloatBuffer
    private let rope: RotaryEmbedding
    private let embedding: Embedding
    private let pool: ThreadPool
    private let x: FloatBuffer, h: FloatBuffer, q: FloatBuffer, k: FloatBuffer, v: FloatBuffer
    private let attended: FloatBuffer, gate: FloatBuffer, up: FloatBuffer
    private let qkv: [TokenProjection], o: [TokenProjection], gateUp: [TokenProjection], down: [TokenProjection]
    private let head: TokenProjection
    /// The same projections for the region's tasks, unretained (the arrays above keep them): each layer's Q/K/V, output,
    /// gate/up and down, then the head. Both threads call every projection; a reference counted on each call would pass
    /// the object's cache line between their cores (~200 ns apart in two core complexes).
    private let table: UnsafeMutableBufferPointer<Unmanaged<TokenProjection>>
    /// Tasks in each phase of a step (`phasesPerLayer` a layer, then the final norm and the head).
    private let phaseCounts: [Int]
    /// The same where the last head set is shared by the threads (steps over many keys); nil where the sets share out evenly,
    /// or the step cannot split it (the output projection's input quantized in a phase of its own, or a head dimension
    /// not a multiple of 32).
    private let splitPhaseCounts: [Int]?
    /// Whether steps over `Attention.splitMinimumKeys` keys or more share the last head set between the threads.
    var sharesLastHeadSet: Bool { splitPhaseCounts != nil }
    /// The shared set's scores, then each thread's copy for its softmax (`Attention.HeadSets.score`, `finish`).
    private var lastSetScores = FloatBuffer(0)
    /// The output projection's input blocks each head set writes, where every set's output is whole blocks: the set's
    /// task then quantizes them itself, and the step has no quantize phase (one barrier and one handoff fewer a layer).
    private let setBlocks: [Range<Int>]?
    /// Per thread (a cache line each): the phase whose projection it warms while waiting and the chunks asked for, then
    /// the same for the key and value rows of a head set.
    private let warming: UnsafeMutablePointer<Int>
    /// Steps run so far: each step is a new round of the projections' stealable ranges (`TokenProjection.run`).
    private var steps = 0
    /// The last step's logits, handed out again by a step that finds no caller holding them (the head writes every
    /// value): no allocation and no zeroing of a vocabulary's floats a step.
    private var logits: FloatBuffer?
    /// Held while a step runs (the buffers are the step's): a concurrent call takes `forward`'s general path.
    let lock = NSLock()
    /// Where the next steps record their phases (`flexserve bench phases`); nil: not recorded.
    var timeline: PhaseTimeline?
    /// What the next steps run: `whole`, except while `flexserve bench bound` cuts them down.
    var parts = DecodeStepParts.whole
    /// Whether the projections can run without their arithmetic (`DecodeStepParts.arithmetic` false): all `InterleavedRows`.
    var readsWithoutArithmetic: Bool { ([head] + qkv + o + gateUp + down).allSatisfy(\.quantizes) }

    /// What each phase of a layer does, then the two after the last layer (`phaseCounts`' order).
    static let layerPhaseNames = ["attention norm", "Q/K/V", "RoPE", "attention", "quantize", "output", "MLP norm", "gate/up", "SiLU·up", "down"]
    static let finalPhaseNames = ["final norm", "head"]

    private static let phasesPerLayer = layerPhaseNames.count
    /// A pool without workers, for the kernels a phase calls that take one.
    private static let serial = ThreadPool(threads: 1)

    /// nil where the step does not apply: rows not in blocks of 32 values, GPU storage emulation, or fewer KV
    /// heads than threads (attention then splits each head over keys, which needs dispatches of its own).
    init?(model: LlamaModel, pool: ThreadPool = .shared) {
        let c = model.config
        guard model.storageRounding == nil, c.numKVHeads >= pool.threadCount, c.numHeads % c.numKVHeads == 0 else { return nil }
        let H = c.hiddenSize, qDim = c.numHeads * c.headDim, kvDim = c.numKVHeads * c.headDim
        x = FloatBuffer(H); h = FloatBuffer(H)
        q = FloatBuffer(qDim); k = FloatBuffer(kvDim); v = FloatBuffer(kvDim)
        attended = FloatBuffer(qDim); gate = FloatBuffer(c.intermediateSize); up = FloatBuffer(c.intermediateSize)
        var qkv: [TokenProjection] = [], o: [TokenProjection] = [], gateUp: [TokenProjection] = [], down: [TokenProjection] = []
        for layer in model.layers {
            guard let a = TokenProjection(input: h.pointer, projections: [
                      Linear.Projection(weight: layer.wq, bias: layer.bq?.pointer, out: q.pointer),
                      Linear.Projection(weight: layer.wk, bias: layer.bk?.pointer, out: k.pointer),
                      Linear.Projection(weight: layer.wv, bias: layer.bv?.pointer, out: v.pointer)], pool: pool),
                  let b = TokenProjection(input: attended.pointer, projections: [Linear.Projection(weight: layer.wo, out: h.pointer)], pool: pool),
                  let m = TokenProjection(input: h.pointer, projections: [Linear.Projection(weight: layer.gate, out: gate.pointer),
                                                                          Linear.Projection(weight: layer.up, out: up.pointer)], pool: pool),
                  let d = TokenProjection(input: gate.pointer, projections: [Linear.Projection(weight: layer.down, out: h.pointer)], pool: pool)
            else { return nil }
            qkv.append(a); o.append(b); gateUp.append(m); down.append(d)
        }
        // The head's output is set to each step's logits.
        guard let head = TokenProjection(input: h.pointer, projections: [Linear.Projection(weight: model.lmHead, out: x.pointer)], pool: pool)
        else { return nil }
        (self.qkv, self.o, self.gateUp, self.down, self.head) = (qkv, o, gateUp, down, head)
        table = .allocate(capacity: 4 * c.numLayers + 1)
        for l in 0..<c.numLayers {
            for (k, p) in [qkv[l], o[l], gateUp[l], down[l]].enumerated() { table[4 * l + k] = .passUnretained(p) }
        }
        table[4 * c.numLayers] = .passUnretained(head)
        let sets = Attention.HeadSets.count(tokens: 1, numHeads: c.numHeads, numKVHeads: c.numKVHeads)
        let outputs = (0..<sets).map { Attention.HeadSets.heads(set: $0, numHeads: c.numHeads, numKVHeads: c.numKVHeads) }
            .map { ($0.lowerBound * c.headDim)..<($0.upperBound * c.headDim) }
        setBlocks = o[0].quantizes && outputs.allSatisfy({ $0.lowerBound % 32 == 0 && $0.upperBound % 32 == 0 })
            ? outputs.map { ($0.lowerBound / 32)..<($0.upperBound / 32) } : nil
        var counts: [Int] = [], split: [Int] = []
        for l in 0..<c.numLayers {
            counts += [1, qkv[l].slots, sets == c.numKVHeads ? 0 : c.numKVHeads, sets, o[l].quantizes && setBlocks == nil ? 1 : 0,
                       o[l].slots, 1, gateUp[l].slots, 2, down[l].slots]
            // The last set's parts all need its head rotated and stored first: every head is, in the RoPE phase.
            split += [1, qkv[l].slots, c.numKVHeads, sets - 1 + pool.threadCount, pool.threadCount,
                      o[l].slots, 1, gateUp[l].slots, 2, down[l].slots]
        }
        phaseCounts = counts + [1, head.slots]
        let splits = sets % pool.threadCount != 0 && c.headDim % 32 == 0 && (setBlocks != nil || !o[0].quantizes)
        splitPhaseCounts = splits ? split + [1, head.slots] : nil
        config = c
        attentionNorms = FloatBuffer(c.numLayers * H); mlpNorms = FloatBuffer(c.numLayers * H); finalNorm = FloatBuffer(H)
        for (l, layer) in model.layers.enumerated() {
            (attentionNorms.pointer + l * H).update(from: layer.attentionNorm, count: H)
            (mlpNorms.pointer + l * H).update(from: layer.mlpNorm, count: H)
        }
        finalNorm.pointer.update(from: model.finalNorm, count: H)
        rope = model.rope
        embedding = model.embedding
        self.pool = pool
        warming = .allocate(capacity: 8 * pool.threadCount)
        warming.initialize(repeating: -1, count: 8 * pool.threadCount)
    }

    deinit {
        warming.deallocate()
        table.deallocate()
    }

    /// A layer's projections in `table`, and the head's place there (layer `numLayers`, `qkv`).
    private enum Projection: Int { case qkv, output, gateUp, down }

    /// Runs `body` on layer `l`'s `projection` (the head: `l == numLayers`, `.qkv`) without retaining it.
    @inline(__always)
    private func with<R>(_ l: Int, _ projection: Projection, _ body: (TokenProjection) -> R) -> R {
        table[4 * l + projection.rawValue]._withUnsafeGuaranteedRef(body)
    }

    /// Whether a layer's phase `k` (of the phases after the last layer, where `final`) is a projection's.
    private static func streams(phase k: Int, final: Bool) -> Bool { final ? k == 1 : k == 1 || k == 5 || k == 7 || k == 9 }

    /// The first projection phase after `phase`, and its projection (layer and kind, as `with` takes them).
    private func nextProjection(after phase: Int) -> (phase: Int, layer: Int, projection: Projection)? {
        let l = phase / Self.phasesPerLayer, layers = config.numLayers
        guard l < layers else { return phase % Self.phasesPerLayer == 0 ? (phase + 1, layers, .qkv) : nil }
        switch phase % Self.phasesPerLayer {
        case 0: return (phase + 1, l, .qkv)
        case 1...4: return (l * Self.phasesPerLayer + 5, l, .output)
        case 5, 6: return (l * Self.phasesPerLayer + 7, l, .gateUp)
        case 7, 8: return (l * Self.phasesPerLayer + 9, l, .down)
        default: return l + 1 < layers ? (phase + 2, l + 1, .qkv) : (phase + 2, layers, .qkv)
        }
    }

    /// The logits of `token`, written to the cache at `addressing`'s slot and attending to its slots, with RoPE's
    /// `cos`/`sin` for its position.
    func run(token: Int, addressing: (write: [Int32], slotStart: [Int32], slots: [Int32]),
             cos: [Float], sin: [Float], cache: PagedKVCache) throws -> Logits {
        let c = config
        let H = c.hiddenSize, group = c.numHeads / c.numKVHeads, headDim = c.headDim
        try embedding.lookup([token], into: x.pointer)
        if !isKnownUniquelyReferenced(&self.logits) { self.logits = FloatBuffer(c.vocabSize) }
        let logits = Logits(storage: self.logits!, rows: 1, vocabSize: c.vocabSize)
        head.setOutput(logits.storage.pointer, projection: 0)
        steps += 1
        let round = steps
        for t in 0..<pool.threadCount { warming[8 * t] = -1; warming[8 * t + 2] = -1 }
        let sets = Attention.HeadSets.count(tokens: 1, numHeads: c.numHeads, numKVHeads: c.numKVHeads)
        let slot = Int(addressing.write[0]), scale = 1 / Float(headDim).squareRoot()
        // Over many keys the threads share the head set that does not share out evenly (SmolLM2's third of three):
        // the parts' scores, a phase end, then each thread's columns. Below `Attention.splitMinimumKeys` the phase end
        // costs more than the half set it saves.
        let keys = Int(addressing.slotStart[1] - addressing.slotStart[0]), threads = pool.threadCount
        let splitsLastSet = splitPhaseCounts != nil && keys >= Attention.splitMinimumKeys
        if splitsLastSet, lastSetScores.count < 3 * keys * (1 + threads) { lastSetScores = FloatBuffer(3 * keys * (1 + threads) * 5 / 4) }
        let lastSet = sets - 1, scores = lastSetScores.pointer
        let columnsPerThread = (headDim / 32 + threads - 1) / threads * 32
        /// RoPE on KV head j's queries and key, then its key and value into the cache.
        @inline(__always) func rotateAndStore(kvHead j: Int, layer l: Int, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
            rope.apply(q.pointer + j * group * headDim, heads: group, headDim: headDim, cos: cos, sin: sin)
            rope.apply(k.pointer + j * headDim, heads: 1, headDim: headDim, cos: cos, sin: sin)
            cache.write(layer: l, slot: slot, head: j, key: k.pointer + j * headDim, value: v.pointer + j * headDim)
        }
        let downBlocks = down[0].blocks, halfBlocks = downBlocks / 2
        addressing.slotStart.withUnsafeBufferPointer { slotStart in
            addressing.slots.withUnsafeBufferPointer { slots in
                cos.withUnsafeBufferPointer { cos in
                    sin.withUnsafeBufferPointer { sin in
                        let timeline = self.timeline
                        /// Layer l's attention, a task per head set.
                        func headSets(layer l: Int) -> Attention.HeadSets {
                            Attention.HeadSets(q: self.q.pointer, tokens: 1, numHeads: c.numHeads, numKVHeads: c.numKVHeads, headDim: headDim,
                                               kv: cache.store(layer: l), slotStart: slotStart.baseAddress!,
                                               slots: slots.baseAddress!, scale: scale, out: self.attended.pointer)
                        }
                        let parts = self.parts, readOnly = !parts.arithmetic
                        guard parts.phaseEnds else {
                            // Every projection in turn in one phase, the head last, as the table lists them.
                            pool.runPhases([pool.threadCount], { _, task, thread in
                                for i in 0..<self.table.count {
                                    self.table[i]._withUnsafeGuaranteedRef { $0.run(task: task, thread: thread, round: round, readOnly: readOnly) }
                                }
                            })
                            return
                        }
                        pool.runPhases(splitsLastSet ? splitPhaseCounts! : phaseCounts, { phase, task, thread in
                            let start = timeline == nil ? 0 : PhaseTimeline.now()
                            defer { timeline?.record(phase: phase, thread: thread, start: start, end: PhaseTimeline.now()) }
                            let l = phase / Self.phasesPerLayer
                            if !parts.glue, !Self.streams(phase: phase % Self.phasesPerLayer, final: l == c.numLayers) { return }
                            guard l < c.numLayers else {
                                if phase % Self.phasesPerLayer == 0 {
                                    axpy(1, h.pointer, x.pointer, H)
                                    Normalization.rms(x.pointer, rows: 1, dim: H, weight: finalNorm.pointer, eps: c.rmsNormEps, out: h.pointer, pool: Self.serial)
                                    with(c.numLayers, .qkv) { $0.quantize(blocks: 0..<$0.blocks) }
                                } else {
                                    with(c.numLayers, .qkv) { $0.run(task: task, thread: thread, round: round, readOnly: readOnly) }
                                }
                                return
                            }
                            switch phase % Self.phasesPerLayer {
                            case 0:
                                if l > 0 { axpy(1, h.pointer, x.pointer, H) }
                                Normalization.rms(x.pointer, rows: 1, dim: H, weight: attentionNorms.pointer + l * H, eps: c.rmsNormEps, out: h.pointer, pool: Self.serial)
                                with(l, .qkv) { $0.quantize(blocks: 0..<$0.blocks) }
                            case 1:
                                with(l, .qkv) { $0.run(task: task, thread: thread, round: round, readOnly: readOnly) }
                            case 2:
                                rotateAndStore(kvHead: task, layer: l, cos: cos.baseAddress!, sin: sin.baseAddress!)
                            case 3:
                                if splitsLastSet, task >= lastSet {
                                    headSets(layer: l).score(set: lastSet, part: task - lastSet, of: threads, into: scores)
                                    return
                                }
                                // With one set per KV head, the set's task rotates and stores its head first (no phase 2).
                                if sets == c.numKVHeads, !splitsLastSet {
                                    rotateAndStore(kvHead: task, layer: l, cos: cos.baseAddress!, sin: sin.baseAddress!)
                                }
                                headSets(layer: l).run(set: task)
                                if let setBlocks { with(l, .output) { $0.quantize(blocks: setBlocks[task]) } }
                            case 4:
                                guard splitsLastSet else {
                                    with(l, .output) { $0.quantize(blocks: 0..<$0.blocks) }
                                    return
                                }
                                let lo = min(headDim, task * columnsPerThread), columns = lo..<min(headDim, lo + columnsPerThread)
                                headSets(layer: l).finish(set: lastSet, scores: scores, scratch: scores + 3 * keys * (1 + thread), columns: columns)
                                if setBlocks != nil, !columns.isEmpty {
                                    for head in Attention.HeadSets.heads(set: lastSet, numHeads: c.numHeads, numKVHeads: c.numKVHeads) {
                                        let first = head * headDim
                                        with(l, .output) { $0.quantize(blocks: (first + columns.lowerBound) / 32..<(first + columns.upperBound) / 32) }
                                    }
                                }
                            case 5:
                                with(l, .output) { $0.run(task: task, thread: thread, round: round, readOnly: readOnly) }
                            case 6:
                                axpy(1, h.pointer, x.pointer, H)
                                Normalization.rms(x.pointer, rows: 1, dim: H, weight: mlpNorms.pointer + l * H, eps: c.rmsNormEps, out: h.pointer, pool: Self.serial)
                                with(l, .gateUp) { $0.quantize(blocks: 0..<$0.blocks) }
                            case 7:
                                with(l, .gateUp) { $0.run(task: task, thread: thread, round: round, readOnly: readOnly) }
                            case 8:
                                let blocks = task == 0 ? 0..<halfBlocks : halfBlocks..<downBlocks
                                Activation.siluMultiply(gate.pointer + 32 * blocks.lowerBound, up.pointer + 32 * blocks.lowerBound,
                                                        count: 32 * blocks.count, pool: Self.serial)
                                with(l, .down) { $0.quantize(blocks: blocks) }
                            default:
                                with(l, .down) { $0.run(task: task, thread: thread, round: round, readOnly: readOnly) }
                            }
                        }, whileWaiting: { phase, thread in
                            let w = self.warming + 8 * thread
                            // A thread waiting for Q/K/V asks for the key and value rows of the second head set first: the
                            // other thread, done last, sees the phase end first and takes the first set. `bench phases`, Q4_1,
                            // alternated: attention 12–17% shorter in both placements (~1% of a step); the first set's rows
                            // helped only with the threads sharing an L3.
                            if phase % Self.phasesPerLayer == 1, phase / Self.phasesPerLayer < c.numLayers {
                                if w[2] != phase { w[2] = phase; w[3] = 0 }
                                w[3] += 1
                                if headSets(layer: phase / Self.phasesPerLayer).warm(set: min(1, sets - 1), chunk: w[3] - 1) { return true }
                            }
                            guard let next = self.nextProjection(after: phase) else { return false }
                            if w[0] != next.phase { w[0] = next.phase; w[1] = 0 }
                            w[1] += 1
                            return self.with(next.layer, next.projection) { $0.warm(thread: thread, chunk: w[1] - 1) }
                        })
                    }
                }
            }
        }
        return logits
    }
}
