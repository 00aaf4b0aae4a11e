import FlexServeTensor

/// LLaMA (1/2/3), SmolLM2, Mistral and Qwen2: pre-norm decoder layers of RMSNorm → grouped-query
/// attention with RoPE → residual → RMSNorm → SwiGLU MLP → residual.
public final class LlamaModel: CausalLM, ModelMatrices, TokenSharing, @unchecked Sendable {
    public let config: ModelConfig
    let embedding: Embedding
    let layers: [LlamaLayer]
    let finalNorm: [Float]
    let lmHead: TensorView
    let rope: RotaryEmbedding
    /// GPU storage emulation (opt-in, nil by default): the type (f16 or bf16) a GPU running this model stores its
    /// weights and inter-kernel values in. The CPU then holds every matrix (embedding and head included) in that
    /// type and rounds its fp32 buffers to it at the CUDA backend's store points: norm outputs, K and V (after RoPE,
    /// before the cache), attention outputs, silu·up. Q, the residual stream, projection outputs and logits stay fp32,
    /// as on the GPU. So the CPU computes the GPU's half-precision numerics with fp32 arithmetic in between: a
    /// reference for `gpu-check correctness --cpu-reference storage`. Off: no rounding, no cost.
    public let storageRounding: DType?
    /// Decoding one token as one parallel region, where every matrix is in a block format (nil otherwise); tests set
    /// it to steps on pools of other sizes.
    var decodeStep: LlamaDecodeStep?
    /// How a forward of many tokens runs its layers (in shares of the tokens from `perThread` tokens a thread on).
    var tokenShares: TokenShares
    public var projectionMatrices: [TensorView] { layers.flatMap(\.matrices) }
    public var vocabularyHead: TensorView { lmHead }

    struct LlamaLayer {
        let attentionNorm: [Float]
        let wq, wk, wv, wo: TensorView
        /// Qwen2's Q/K/V biases, in memory the kernels may keep pointers to.
        let bq, bk, bv: FloatBuffer?
        let mlpNorm: [Float]
        let gate, up, down: TensorView
        var matrices: [TensorView] { [wq, wk, wv, wo, gate, up, down] }
    }

    public init(config: ModelConfig, weights: WeightStore, storageRounding: DType? = nil) throws {
        self.config = config
        let c = config
        let src = weights.source
        if let r = storageRounding, !StorageRounding.supports(r) {
            throw ModelError("storage rounding to \(r) is not supported (f16, bf16 or f32)")
        }
        let stored = storageRounding == .f32 ? nil : storageRounding
        self.storageRounding = stored
        func matrix(_ name: String, _ rows: Int, _ cols: Int) throws -> TensorView {
            let t = try weights.tensor(name).expecting([rows, cols], name, in: src)
            // Storage emulation: the GPU converts every matrix but int8/int4 groups (kept packed) to its type.
            guard let stored, t.dtype != stored, t.dtype != .int8Group, t.dtype != .int4Group else { return t }
            guard let converted = t.converted(to: stored) else {
                throw WeightFileError(file: src, tensor: name, problem: "cannot be stored as \(stored)")
            }
            return converted
        }
        func vector(_ name: String, _ n: Int) throws -> [Float] {
            try weights.tensor(name).expecting([n], name, in: src).floats()
        }
        func optionalBuffer(_ name: String, _ n: Int) throws -> FloatBuffer? {
            guard weights.contains(name) else { return nil }
            let values = try vector(name, n), buffer = FloatBuffer(n)
            buffer.pointer.update(from: values, count: n)
            return buffer
        }
        let qDim = c.numHeads * c.headDim, kvDim = c.numKVHeads * c.headDim
        embedding = Embedding(try matrix("model.embed_tokens.weight", c.vocabSize, c.hiddenSize))
        layers = try (0..<c.numLayers).map { l in
            let p = "model.layers.\(l)."
            return LlamaLayer(
                attentionNorm: try vector(p + "input_layernorm.weight", c.hiddenSize),
                wq: try matrix(p + "self_attn.q_proj.weight", qDim, c.hiddenSize),
                wk: try matrix(p + "self_attn.k_proj.weight", kvDim, c.hiddenSize),
                wv: try matrix(p + "self_attn.v_proj.weight", kvDim, c.hiddenSize),
                wo: try matrix(p + "self_attn.o_proj.weight", c.hiddenSize, qDim),
                bq: try optionalBuffer(p + "self_attn.q_proj.bias", qDim),
                bk: try optionalBuffer(p + "self_attn.k_proj.bias", kvDim),
                bv: try optionalBuffer(p + "self_attn.v_proj.bias", kvDim),
                mlpNorm: try vector(p + "post_attention_layernorm.weight", c.hiddenSize),
                gate: try matrix(p + "mlp.gate_proj.weight", c.intermediateSize, c.hiddenSize),
                up: try matrix(p + "mlp.up_proj.weight", c.intermediateSize, c.hiddenSize),
                down: try matrix(p + "mlp.down_proj.weight", c.hiddenSize, c.intermediateSize))
        }
        finalNorm = try vector("model.norm.weight", c.hiddenSize)
        if !c.tieWordEmbeddings, weights.contains("lm_head.weight") {
            lmHead = try matrix("lm_head.weight", c.vocabSize, c.hiddenSize)
        } else {
            lmHead = embedding.table
        }
        rope = RotaryEmbedding(rotaryDim: c.headDim, theta: c.ropeTheta,
                               inverseFrequencies: RotaryEmbedding.scaledFrequencies(config: c))
        tokenShares = TokenShares(layers: layers.map(\.matrices), attentionWidth: c.numHeads * c.headDim)
        decodeStep = LlamaDecodeStep(model: self)
    }

    /// The phases of a one-token decode step run as one parallel region, for `flexserve bench phases`: every layer's in
    /// order, then those after the last layer; nil where this model decodes projection by projection.
    public var decodePhases: (perLayer: [String], final: [String])? {
        decodeStep.map { _ in (LlamaDecodeStep.layerPhaseNames, LlamaDecodeStep.finalPhaseNames) }
    }

    /// Records the phases of the decode steps that follow into `timeline` (one step's worth: reset it between steps),
    /// or stops recording (nil).
    public func recordDecodePhases(into timeline: PhaseTimeline?) { decodeStep?.timeline = timeline }

    /// Runs only `parts` of the decode steps that follow (`flexserve bench bound`; `.whole` again to decode). False,
    /// changing nothing, where this model has no such step or its projections cannot read without their arithmetic.
    public func runDecodeSteps(_ parts: DecodeStepParts) -> Bool {
        guard let decodeStep, parts.arithmetic || decodeStep.readsWithoutArithmetic else { return false }
        decodeStep.parts = parts
        return true
    }

    public func forward(_ batch: Batch, cache: PagedKVCache) throws -> Logits {
        let c = config
        let T = batch.count
        let H = c.hiddenSize, qDim = c.numHeads * c.headDim, kvDim = c.numKVHeads * c.headDim
        // Mistral's sliding window drops the keys more than `slidingWindow - 1` positions back.
        let addressing = try c.slidingWindow.map { window in
            let a = try cache.positionedAddressing(for: batch, slidingWindow: window)
            return (write: a.write, slotStart: a.slotStart, slots: a.slots)
        } ?? cache.addressing(for: batch)
        let (cosTable, sinTable) = rope.tables(positions: batch.tokens.map { Int32($0.position) })
        if T == 1, batch.tokens[0].wantsLogits, let step = decodeStep, step.lock.try() {
            defer { step.lock.unlock() }
            return try step.run(token: batch.tokens[0].id, addressing: addressing, cos: cosTable, sin: sinTable, cache: cache)
        }
        let half = c.headDim / 2, I = c.intermediateSize
        let x = FloatBuffer(T * H)
        // The embedding rows need no rounding: with storage emulation the table itself is in the stored type.
        try embedding.lookup(batch.tokens.map(\.id), into: x.pointer)
        let h = FloatBuffer(T * H), q = FloatBuffer(T * qDim), k = FloatBuffer(T * kvDim), v = FloatBuffer(T * kvDim)
        let attended = FloatBuffer(T * qDim), gate = FloatBuffer(T * I), up = FloatBuffer(T * I)
        let scale = 1 / Float(c.headDim).squareRoot()
        cosTable.withUnsafeBufferPointer { cosines in
        sinTable.withUnsafeBufferPointer { sines in
        addressing.write.withUnsafeBufferPointer { write in
        addressing.slotStart.withUnsafeBufferPointer { slotStart in
        addressing.slots.withUnsafeBufferPointer { slots in
            // Attention block, up to the cache write: norm, Q/K/V, RoPE.
            func upToCacheWrite(_ l: Int, _ r: Range<Int>, _ pool: ThreadPool) {
                let layer = layers[l], t0 = r.lowerBound, n = r.count
                Normalization.rms(x.pointer + t0 * H, rows: n, dim: H, weight: layer.attentionNorm, eps: c.rmsNormEps,
                                  out: h.pointer + t0 * H, pool: pool)
                stored(h.pointer + t0 * H, n * H)
                Linear.forward(x: h.pointer + t0 * H, tokens: n, projections: [
                    Linear.Projection(weight: layer.wq, bias: layer.bq?.pointer, out: q.pointer + t0 * qDim),
                    Linear.Projection(weight: layer.wk, bias: layer.bk?.pointer, out: k.pointer + t0 * kvDim),
                    Linear.Projection(weight: layer.wv, bias: layer.bv?.pointer, out: v.pointer + t0 * kvDim),
                ], pool: pool)
                for t in r {
                    rope.apply(q.pointer + t * qDim, heads: c.numHeads, headDim: c.headDim,
                               cos: cosines.baseAddress! + t * half, sin: sines.baseAddress! + t * half)
                    rope.apply(k.pointer + t * kvDim, heads: c.numKVHeads, headDim: c.headDim,
                               cos: cosines.baseAddress! + t * half, sin: sines.baseAddress! + t * half)
                }
                // The GPU's K/V cache holds the stored type; Q stays fp32 (rotated in place in the fp32 product output).
                stored(k.pointer + t0 * kvDim, n * kvDim)
                stored(v.pointer + t0 * kvDim, n * kvDim)
                for t in r {
                    cache.write(layer: l, slot: Int(write[t]), keys: k.pointer + t * kvDim, values: v.pointer + t * kvDim)
                }
            }
            // Attention, output projection and residual; MLP block.
            func fromAttention(_ l: Int, _ r: Range<Int>, _ pool: ThreadPool) {
                let layer = layers[l], t0 = r.lowerBound, n = r.count
                Attention.forward(q: q.pointer + t0 * qDim, tokens: n, numHeads: c.numHeads, numKVHeads: c.numKVHeads,
                                  headDim: c.headDim, kv: cache.store(layer: l), slotStart: slotStart.baseAddress! + t0,
                                  slots: slots.baseAddress!, scale: scale, out: attended.pointer + t0 * qDim, pool: pool)
                stored(attended.pointer + t0 * qDim, n * qDim)
                Linear.forward(x: attended.pointer + t0 * qDim, tokens: n, weight: layer.wo, out: h.pointer + t0 * H, pool: pool)
                axpy(1, h.pointer + t0 * H, x.pointer + t0 * H, n * H)

                Normalization.rms(x.pointer + t0 * H, rows: n, dim: H, weight: layer.mlpNorm, eps: c.rmsNormEps,
                                  out: h.pointer + t0 * H, pool: pool)
                stored(h.pointer + t0 * H, n * H)
                Linear.forward(x: h.pointer + t0 * H, tokens: n, projections: [
                    Linear.Projection(weight: layer.gate, out: gate.pointer + t0 * I),
                    Linear.Projection(weight: layer.up, out: up.pointer + t0 * I),
                ], pool: pool)
                Activation.siluMultiply(gate.pointer + t0 * I, up.pointer + t0 * I, count: n * I, pool: pool)
                stored(gate.pointer + t0 * I, n * I)
                Linear.forward(x: gate.pointer + t0 * I, tokens: n, weight: layer.down, out: h.pointer + t0 * H, pool: pool)
                axpy(1, h.pointer + t0 * H, x.pointer + t0 * H, n * H)
            }
            tokenShares.runLayers(layers.count, slotStart: addressing.slotStart,
                                  upToCacheWrite: upToCacheWrite, fromAttention: fromAttention)
        }}}}}
        return projectToVocabulary(x, batch: batch, norm: { rows, src, dst in
            Normalization.rms(src, rows: rows, dim: H, weight: finalNorm, eps: c.rmsNormEps, out: dst)
            stored(dst, rows * H)
        }, head: lmHead)
    }

    /// A GPU store point: rounds the buffer to the emulated storage type (nothing when emulation is off).
    func stored(_ p: UnsafeMutablePointer<Float>, _ count: Int) {
        if let storageRounding { StorageRounding.round(p, count: count, to: storageRounding) }
    }

    /// Final norm and vocabulary head for the tokens that want logits only.
    func projectToVocabulary(_ x: FloatBuffer, batch: Batch,
                             norm: (Int, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void,
                             head: TensorView) -> Logits {
        let H = config.hiddenSize
        let picked = batch.tokens.indices.filter { batch.tokens[$0].wantsLogits }
        let rows = FloatBuffer(max(1, picked.count) * H)
        for (r, t) in picked.enumerated() { (rows.pointer + r * H).update(from: x.pointer + t * H, count: H) }
        let normed = FloatBuffer(max(1, picked.count) * H)
        norm(picked.count, rows.pointer, normed.pointer)
        let logits = Logits(rows: picked.count, vocabSize: config.vocabSize)
        if !picked.isEmpty {
            Linear.forward(x: normed.pointer, tokens: picked.count, weight: head, out: logits.storage.pointer)
        }
        return logits
    }
}

extension RotaryEmbedding {
    /// Inverse frequencies with the config's rope scaling applied (linear or LLaMA-3), in fp32 as transformers computes them.
    public static func scaledFrequencies(config c: ModelConfig) -> [Float] {
        let base = RotaryEmbedding(rotaryDim: c.headDim, theta: c.ropeTheta).inverseFrequencies
        switch c.ropeScaling {
        case .none: return base
        case .linear(let factor): return base.map { $0 / Float(factor) }
        case let .llama3(factor, low, high, original):
            let lowWavelength = Float(original) / Float(low)
            let highWavelength = Float(original) / Float(high)
            return base.map { f in
                let wavelength = 2 * Float.pi / f
                if wavelength < highWavelength { return f }
                if wavelength > lowWavelength { return f / Float(factor) }
                let smooth = (Float(original) / wavelength - Float(low)) / (Float(high) - Float(low))
                return (1 - smooth) * f / Float(factor) + smooth * f
            }
        }
    }
}
