/// Conversion of any storage format to fp32, a row (a whole number of blocks) at a time.
public enum Dequantize {
    public static func row(_ dtype: DType, _ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        switch dtype {
        case .f32: dst.update(from: src.assumingMemoryBound(to: Float.self), count: count)
        case .f16: halfRow(F16Blocks.self, src, count: count, into: dst) { f16ToFloat($0) }
        case .bf16: halfRow(BF16Blocks.self, src, count: count, into: dst) { bf16ToFloat($0) }
        case .q8_0: blockRow(Q8_0Blocks.self, src, blocks: count / 32, into: dst)
        case .q4_0: blockRow(Q4_0Blocks.self, src, blocks: count / 32, into: dst)
        case .q4_1: blockRow(Q4_1Blocks.self, src, blocks: count / 32, into: dst)
        case .int8Group: blockRow(Int8GroupBlocks.self, src, blocks: count / 32, into: dst)
        case .int4Group: blockRow(Int4GroupBlocks.self, src, blocks: count / 32, into: dst)
        }
    }

    @inline(__always)
    static func blockRow<F: BlockFormat>(_: F.Type, _ src: UnsafeRawPointer, blocks: Int, into dst: UnsafeMutablePointer<Float>) {
        let out = UnsafeMutableRawPointer(dst)
        for b in 0..<blocks {
            let (v0, v1, v2, v3) = F.decode8(src + b * F.blockBytes)
            out.storeBytes(of: v0, toByteOffset: b * 128, as: SIMD8<Float>.self)
            out.storeBytes(of: v1, toByteOffset: b * 128 + 32, as: SIMD8<Float>.self)
            out.storeBytes(of: v2, toByteOffset: b * 128 + 64, as: SIMD8<Float>.self)
            out.storeBytes(of: v3, toByteOffset: b * 128 + 96, as: SIMD8<Float>.self)
        }
    }

    /// fp16/bf16 rows need not be whole blocks: the rest is converted one value at a time.
    @inline(__always)
    static func halfRow<F: BlockFormat>(_: F.Type, _ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>,
                                        _ convert: (UInt16) -> Float) {
        blockRow(F.self, src, blocks: count / 32, into: dst)
        let s = src.assumingMemoryBound(to: UInt16.self)
        for i in (count / 32 * 32)..<count { dst[i] = convert(s[i]) }
    }
}
