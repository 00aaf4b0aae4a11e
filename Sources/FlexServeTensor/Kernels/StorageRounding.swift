/// Rounding fp32 values to the values an fp16 or bf16 store keeps, the result still held as fp32.
///
/// Why: a GPU running a model in half precision computes each kernel in fp32 but stores what it hands to the next
/// kernel (norm outputs, K/V, attention outputs, ...) in fp16/bf16. The CPU backend computes everything in fp32, so
/// it is not the same numerics. Rounding the CPU's buffers at exactly the GPU's store points (`LlamaModel`'s
/// `storageRounding`) reproduces those numerics with fp32 arithmetic in between: a reference for the GPU that
/// differs from it only in the order of fp32 sums. Round to nearest, ties to even, as the GPU's
/// `cvt.rn.f16.f32` / `cvt.rn.bf16.f32` and the weight conversions (`floatToF16`, `floatToBF16`) do.
public enum StorageRounding {
    /// The types values can be rounded to: fp16 and bf16 (fp32 is the identity, accepted too).
    public static func supports(_ dtype: DType) -> Bool { dtype == .f16 || dtype == .bf16 || dtype == .f32 }

    /// `value` as a `dtype` store would keep it (f16: overflow to ±inf, subnormals kept; NaN stays NaN).
    @inline(__always)
    public static func round(_ value: Float, to dtype: DType) -> Float {
        switch dtype {
        case .f16: return f16ToFloat(floatToF16(value))
        case .bf16: return bf16ToFloat(floatToBF16(value))
        default: return value
        }
    }

    /// Rounds `count` values in place.
    public static func round(_ values: UnsafeMutablePointer<Float>, count: Int, to dtype: DType) {
        switch dtype {
        case .f16: for i in 0..<count { values[i] = f16ToFloat(floatToF16(values[i])) }
        case .bf16: for i in 0..<count { values[i] = bf16ToFloat(floatToBF16(values[i])) }
        default: return
        }
    }
}
