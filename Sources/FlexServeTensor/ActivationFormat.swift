/// What `Linear` multiplies a block-format weight with.
public enum ActivationFormat: String, Sendable, CaseIterable, Codable {
    /// fp32 activations: the reference numerics (what HF transformers computes on the dequantized
    /// weights, up to rounding order). Integer block formats take each weight's integer as a float and
    /// apply the block's scale and offset once per block (`F32Activations`); f16/bf16 rows are decoded.
    case f32
    /// Activations quantized per token to blocks of 32 int8 with an fp32 scale (amax/127, as
    /// GGUF Q8_0), dotted with the weights' integers (VNNI `vpdpbusd`): llama.cpp's scheme for
    /// quantized weights. About half the instructions per weight of `f32`, so decoding can keep
    /// up with memory; it adds the activations' rounding (perplexity in the README).
    case q8
}

extension DType {
    /// Formats whose blocks are integers with a per-block scale (and offset), which `q8`
    /// activations can be dotted with in integer arithmetic.
    public var hasIntegerBlocks: Bool {
        switch self {
        case .q8_0, .q4_0, .q4_1, .int8Group, .int4Group: return true
        case .f32, .f16, .bf16: return false
        }
    }
}
