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
