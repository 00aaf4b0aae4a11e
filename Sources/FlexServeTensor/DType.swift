/// Storage formats of weights. Block formats follow ggml's layouts byte for byte so GGUF
/// tensors can be used in place from the memory map.
public enum DType: String, Sendable, CaseIterable {
    case f32, f16, bf16
    /// ggml Q8_0: blocks of 32 values, an f16 scale then 32 int8.
    case q8_0
    /// ggml Q4_0: blocks of 32, an f16 scale then 16 bytes of nibbles, value = (q - 8) * d.
    case q4_0
    /// ggml Q4_1: blocks of 32, f16 scale and f16 minimum then 16 bytes of nibbles, value = q * d + m.
    case q4_1
    /// FlexFlow-style asymmetric int8, groups of 32: f32 scale, f32 minimum, 32 uint8.
    case int8Group
    /// FlexFlow-style asymmetric int4, groups of 32: f32 scale, f32 minimum, 16 bytes of nibbles.
    case int4Group

    /// Values per block (1 for plain floats).
    public var blockValues: Int {
        switch self {
        case .f32, .f16, .bf16: return 1
        default: return 32
        }
    }

    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q8_0: return 34
        case .q4_0: return 18
        case .q4_1: return 20
        case .int8Group: return 40
        case .int4Group: return 24
        }
    }

    /// Bytes taken by `count` values; nil when `count` is not a whole number of blocks.
    public func byteCount(values count: Int) -> Int? {
        guard count % blockValues == 0 else { return nil }
        let (bytes, overflow) = (count / blockValues).multipliedReportingOverflow(by: blockBytes)
        return overflow ? nil : bytes
    }

    public var isQuantized: Bool { blockValues > 1 }
}
