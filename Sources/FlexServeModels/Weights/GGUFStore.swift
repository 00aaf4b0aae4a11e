import FlexServeTensor

/// A GGUF file seen under HuggingFace tensor names.
public struct GGUFStore: WeightStore {
    public let gguf: GGUFFile
    public var source: String { gguf.path }
    let headCount: Int
    let kvHeadCount: Int
    let permutedQK: Bool

    public init(_ gguf: GGUFFile) {
        self.gguf = gguf
        let arch = gguf.metadata["general.architecture"]?.string ?? "llama"
        headCount = gguf.metadata["\(arch).attention.head_count"]?.int ?? 1
        kvHeadCount = gguf.metadata["\(arch).attention.head_count_kv"]?.int ?? headCount
        // llama.cpp's converter permutes Q and K rows of LLaMA-family models for its RoPE kernel.
        permutedQK = ["llama", "mistral"].contains(arch)
    }

    public func contains(_ name: String) -> Bool {
        guard let g = Self.ggufName(name) else { return false }
        return gguf.hasTensor(g)
    }

    public func tensor(_ name: String) throws -> TensorView {
        guard let g = Self.ggufName(name) else {
            throw WeightFileError(file: source, tensor: name, problem: "no GGUF name known for this tensor")
        }
        let t = try gguf.tensor(g)
        if name.hasSuffix("self_attention.query_key_value.weight") || name.hasSuffix("self_attention.query_key_value.bias") {
            return try falconGroupedQKV(t, name: g)
        }
        if permutedQK, name.hasSuffix("self_attn.q_proj.weight") {
            return try unpermute(t, heads: headCount, name: g)
        }
        if permutedQK, name.hasSuffix("self_attn.k_proj.weight") {
            return try unpermute(t, heads: kvHeadCount, name: g)
        }
        return t
    }

    /// Undoes llama.cpp's `permute`: within each head, GGUF row 2j+s holds HF row s*(d/2)+j.
    func unpermute(_ t: TensorView, heads: Int, name: String) throws -> TensorView {
        let rows = t.shape[0]
        guard t.shape.count == 2, heads > 0, rows % (heads * 2) == 0 else {
            throw WeightFileError(file: source, tensor: name, problem: "shape \(t.shape) does not split into \(heads) heads")
        }
        let rowBytes = t.byteCount / rows
        let headDim = rows / heads
        let half = headDim / 2
        let out = OwnedBuffer(byteCount: t.byteCount)
        for h in 0..<heads {
            for s in 0..<2 {
                for j in 0..<half {
                    let hfRow = h * headDim + s * half + j
                    let ggufRow = h * headDim + 2 * j + s
                    (out.pointer + hfRow * rowBytes).copyMemory(from: t.data + ggufRow * rowBytes, byteCount: rowBytes)
                }
            }
        }
        return TensorView(dtype: t.dtype, shape: t.shape, data: UnsafeRawPointer(out.pointer), owner: out)
    }

    static func ggufName(_ hf: String) -> String? {
        if hf.hasPrefix("transformer.") { return transformerGGUFName(hf) }
        switch hf {
        case "model.embed_tokens.weight": return "token_embd.weight"
        case "model.norm.weight": return "output_norm.weight"
        case "lm_head.weight": return "output.weight"
        default: break
        }
        let parts = hf.split(separator: ".")
        guard parts.count >= 5, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]) else { return nil }
        let rest = parts[3...].joined(separator: ".")
        let table: [String: String] = [
            "input_layernorm.weight": "attn_norm.weight",
            "self_attn.q_proj.weight": "attn_q.weight",
            "self_attn.k_proj.weight": "attn_k.weight",
            "self_attn.v_proj.weight": "attn_v.weight",
            "self_attn.q_proj.bias": "attn_q.bias",
            "self_attn.k_proj.bias": "attn_k.bias",
            "self_attn.v_proj.bias": "attn_v.bias",
            "self_attn.o_proj.weight": "attn_output.weight",
            "post_attention_layernorm.weight": "ffn_norm.weight",
            "mlp.gate_proj.weight": "ffn_gate.weight",
            "mlp.up_proj.weight": "ffn_up.weight",
            "mlp.down_proj.weight": "ffn_down.weight",
        ]
        guard let g = table[rest] else { return nil }
        return "blk.\(layer).\(g)"
    }
}

// Falcon, StarCoder (GPTBigCode) and MPT: their HF names all start with "transformer.".
extension GGUFStore {
    /// llama.cpp's names (gguf-py's TensorNameMap) for Falcon's, GPTBigCode's and MPT's HF tensors.
    static func transformerGGUFName(_ hf: String) -> String? {
        let global: [String: String] = [
            "transformer.word_embeddings.weight": "token_embd.weight",  // Falcon
            "transformer.wte.weight": "token_embd.weight",              // GPTBigCode, MPT
            "transformer.wpe.weight": "position_embd.weight",           // GPTBigCode
            "transformer.ln_f.weight": "output_norm.weight", "transformer.ln_f.bias": "output_norm.bias",
            "transformer.norm_f.weight": "output_norm.weight",          // MPT
        ]
        if let g = global[hf] { return g }
        let parts = hf.split(separator: ".")
        guard parts.count >= 5, parts[1] == "h" || parts[1] == "blocks", let layer = Int(parts[2]) else { return nil }
        let leaf = parts[3..<(parts.count - 1)].joined(separator: ".")
        let suffix = parts.last!
        let table: [String: String] = [
            // Falcon: the 40B layout's ln_attn normalises attention's input, ln_mlp the MLP's (and llama.cpp's attn_norm).
            "input_layernorm": "attn_norm", "ln_attn": "attn_norm_2", "ln_mlp": "attn_norm",
            "post_attention_layernorm": "ffn_norm",
            "self_attention.query_key_value": "attn_qkv", "self_attention.dense": "attn_output",
            "mlp.dense_h_to_4h": "ffn_up", "mlp.dense_4h_to_h": "ffn_down",
            // GPTBigCode
            "ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output",
            "ln_2": "ffn_norm", "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down",
            // MPT
            "norm_1": "attn_norm", "attn.Wqkv": "attn_qkv", "attn.out_proj": "attn_output",
            "norm_2": "ffn_norm", "ffn.up_proj": "ffn_up", "ffn.down_proj": "ffn_down",
        ]
        guard let g = table[leaf] else { return nil }
        return "blk.\(layer).\(g).\(suffix)"
    }

    /// llama.cpp's converter stores Falcon's fused QKV as [all queries | all keys | all values]; HF groups it
    /// per KV head (the group's queries, its key, its value). Puts the rows back in HF's order.
    func falconGroupedQKV(_ t: TensorView, name: String) throws -> TensorView {
        let rows = t.shape[0]
        let headDim = rows / (headCount + 2 * kvHeadCount)
        guard kvHeadCount > 0, headCount % kvHeadCount == 0, headDim * (headCount + 2 * kvHeadCount) == rows else {
            throw WeightFileError(file: source, tensor: name, problem: "shape \(t.shape) does not split into \(headCount) query and 2×\(kvHeadCount) KV heads")
        }
        let rowBytes = t.byteCount / rows
        let perGroup = headCount / kvHeadCount
        let out = OwnedBuffer(byteCount: t.byteCount)
        func copy(_ hfRow: Int, _ ggufRow: Int, _ count: Int) {
            (out.pointer + hfRow * rowBytes).copyMemory(from: t.data + ggufRow * rowBytes, byteCount: count * rowBytes)
        }
        for g in 0..<kvHeadCount {
            let base = g * (perGroup + 2) * headDim
            copy(base, g * perGroup * headDim, perGroup * headDim)
            copy(base + perGroup * headDim, headCount * headDim + g * headDim, headDim)
            copy(base + (perGroup + 1) * headDim, (headCount + kvHeadCount) * headDim + g * headDim, headDim)
        }
        return TensorView(dtype: t.dtype, shape: t.shape, data: UnsafeRawPointer(out.pointer), owner: out)
    }
}
