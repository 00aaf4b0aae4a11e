/// Conversion of any storage format to fp32, a row (a whole number of blocks) at a time.
public enum Dequantize {
    public static func row(_ dtype: DType, _ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        switch dtype {
        case .f32:
            dst.update(from: src.assumingMemoryBound(to: Float.self), count: count)
        case .f16:
            let s = src.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { dst[i] = f16ToFloat(s[i]) }
        case .bf16:
            let s = src.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { dst[i] = bf16ToFloat(s[i]) }
        case .q8_0:
            for b in 0..<(count / 32) {
                let block = src + b * 34
                let d = f16ToFloat(block.loadUnaligned(as: UInt16.self))
                let q = (block + 2).assumingMemoryBound(to: Int8.self)
                for i in 0..<32 { dst[b * 32 + i] = Float(q[i]) * d }
            }
        case .q4_0:
            for b in 0..<(count / 32) {
                let block = src + b * 18
                let d = f16ToFloat(block.loadUnaligned(as: UInt16.self))
                let q = (block + 2).assumingMemoryBound(to: UInt8.self)
                for i in 0..<16 {
                    dst[b * 32 + i] = Float(Int(q[i] & 0x0F) - 8) * d
                    dst[b * 32 + i + 16] = Float(Int(q[i] >> 4) - 8) * d
                }
            }
        case .q4_1:
            for b in 0..<(count / 32) {
                let block = src + b * 20
                let d = f16ToFloat(block.loadUnaligned(as: UInt16.self))
                let m = f16ToFloat((block + 2).loadUnaligned(as: UInt16.self))
                let q = (block + 4).assumingMemoryBound(to: UInt8.self)
                for i in 0..<16 {
                    dst[b * 32 + i] = Float(q[i] & 0x0F) * d + m
                    dst[b * 32 + i + 16] = Float(q[i] >> 4) * d + m
                }
            }
        case .int8Group:
            for b in 0..<(count / 32) {
                let block = src + b * 40
                let d = block.loadUnaligned(as: Float.self)
                let m = (block + 4).loadUnaligned(as: Float.self)
                let q = (block + 8).assumingMemoryBound(to: UInt8.self)
                for i in 0..<32 { dst[b * 32 + i] = Float(q[i]) * d + m }
            }
        case .int4Group:
            for b in 0..<(count / 32) {
                let block = src + b * 24
                let d = block.loadUnaligned(as: Float.self)
                let m = (block + 4).loadUnaligned(as: Float.self)
                let q = (block + 8).assumingMemoryBound(to: UInt8.self)
                for i in 0..<16 {
                    dst[b * 32 + i] = Float(q[i] & 0x0F) * d + m
                    dst[b * 32 + i + 16] = Float(q[i] >> 4) * d + m
                }
            }
        }
    }
}
