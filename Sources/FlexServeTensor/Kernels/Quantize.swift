/// fp32 → any storage format, a row (whole blocks) at a time: the inverse of `Dequantize`.
/// Used to convert weights at load time (`--8bit-quantization`, `--4bit-quantization`, and the
/// benchmark's per-format runs).
public enum Quantize {
    public static func row(_ src: UnsafePointer<Float>, count: Int, to dtype: DType, into dst: UnsafeMutableRawPointer) {
        switch dtype {
        case .f32:
            dst.copyMemory(from: src, byteCount: count * 4)
        case .f16:
            let d = dst.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { d[i] = floatToF16(src[i]) }
        case .bf16:
            let d = dst.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { d[i] = floatToBF16(src[i]) }
        case .q8_0:
            for b in 0..<(count / 32) {
                let x = src + b * 32, block = dst + b * 34
                var amax: Float = 0
                for i in 0..<32 { amax = max(amax, abs(x[i])) }
                let d = amax / 127
                let inv: Float = d == 0 ? 0 : 1 / d
                block.storeBytes(of: floatToF16(d), as: UInt16.self)
                for i in 0..<32 { (block + 2 + i).storeBytes(of: Int8((x[i] * inv).rounded()), as: Int8.self) }
            }
        case .q4_0:
            for b in 0..<(count / 32) {
                let x = src + b * 32, block = dst + b * 18
                // ggml: the value of largest magnitude maps to -8.
                var maxValue: Float = 0
                for i in 0..<32 where abs(x[i]) > abs(maxValue) { maxValue = x[i] }
                let d = maxValue / -8
                let inv: Float = d == 0 ? 0 : 1 / d
                block.storeBytes(of: floatToF16(d), as: UInt16.self)
                for i in 0..<16 {
                    let lo = UInt8(min(15, max(0, (x[i] * inv + 8.5).rounded(.down))))
                    let hi = UInt8(min(15, max(0, (x[i + 16] * inv + 8.5).rounded(.down))))
                    (block + 2 + i).storeBytes(of: lo | hi << 4, as: UInt8.self)
                }
            }
        case .q4_1, .int4Group:
            let isGGML = dtype == .q4_1
            for b in 0..<(count / 32) {
                let x = src + b * 32, block = dst + b * (isGGML ? 20 : 24)
                var lo = Float.infinity, hi = -Float.infinity
                for i in 0..<32 { lo = min(lo, x[i]); hi = max(hi, x[i]) }
                let d = (hi - lo) / 15
                let inv: Float = d == 0 ? 0 : 1 / d
                if isGGML {
                    block.storeBytes(of: floatToF16(d), as: UInt16.self)
                    (block + 2).storeBytes(of: floatToF16(lo), as: UInt16.self)
                } else {
                    block.storeBytes(of: d, as: Float.self)
                    (block + 4).storeBytes(of: lo, as: Float.self)
                }
                let q = block + (isGGML ? 4 : 8)
                for i in 0..<16 {
                    let a = UInt8(min(15, max(0, ((x[i] - lo) * inv).rounded())))
                    let c = UInt8(min(15, max(0, ((x[i + 16] - lo) * inv).rounded())))
                    (q + i).storeBytes(of: a | c << 4, as: UInt8.self)
                }
            }
        case .int8Group:
            for b in 0..<(count / 32) {
                let x = src + b * 32, block = dst + b * 40
                var lo = Float.infinity, hi = -Float.infinity
                for i in 0..<32 { lo = min(lo, x[i]); hi = max(hi, x[i]) }
                let d = (hi - lo) / 255
                let inv: Float = d == 0 ? 0 : 1 / d
                block.storeBytes(of: d, as: Float.self)
                (block + 4).storeBytes(of: lo, as: Float.self)
                for i in 0..<32 {
                    (block + 8 + i).storeBytes(of: UInt8(min(255, max(0, ((x[i] - lo) * inv).rounded()))), as: UInt8.self)
                }
            }
        }
    }
}

extension TensorView {
    /// This 2-D tensor stored as `dtype`, in memory the result owns (rows must be whole blocks).
    public func converted(to dtype: DType) -> TensorView? {
        guard dtype != self.dtype else { return self }
        let cols = shape.last!
        guard let rowBytes = dtype.byteCount(values: cols), let srcRowBytes = self.dtype.byteCount(values: cols) else { return nil }
        let rows = count / cols
        let out = OwnedBuffer(byteCount: rows * rowBytes)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: cols)
        defer { scratch.deallocate() }
        for r in 0..<rows {
            Dequantize.row(self.dtype, data + r * srcRowBytes, count: cols, into: scratch)
            Quantize.row(scratch, count: cols, to: dtype, into: out.pointer + r * rowBytes)
        }
        return TensorView(dtype: dtype, shape: shape, data: UnsafeRawPointer(out.pointer), owner: out)
    }
}
