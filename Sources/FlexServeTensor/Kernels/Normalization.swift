import Foundation

public enum Normalization {
    /// RMSNorm (LLaMA): `y = x / sqrt(mean(x²) + eps) · weight`, row by row.
    public static func rms(_ x: UnsafePointer<Float>, rows: Int, dim: Int, weight: UnsafePointer<Float>,
                           eps: Float, out: UnsafeMutablePointer<Float>, pool: ThreadPool = .shared) {
        pool.parallelChunks(rows, minChunk: max(1, 16_384 / max(1, dim))) { range in
            for r in range {
                let row = x + r * dim
                let meanSquare = dot(row, row, dim) / Float(dim)
                let scale = 1 / (meanSquare + eps).squareRoot()
                let o = out + r * dim
                for i in 0..<dim { o[i] = row[i] * scale * weight[i] }
            }
        }
    }

    /// LayerNorm: `y = (x - mean) / sqrt(var + eps) · weight + bias`.
    public static func layer(_ x: UnsafePointer<Float>, rows: Int, dim: Int, weight: UnsafePointer<Float>?,
                             bias: UnsafePointer<Float>?, eps: Float, out: UnsafeMutablePointer<Float>) {
        for r in 0..<rows {
            let row = x + r * dim
            var mean: Float = 0
            for i in 0..<dim { mean += row[i] }
            mean /= Float(dim)
            var variance: Float = 0
            for i in 0..<dim { let d = row[i] - mean; variance += d * d }
            variance /= Float(dim)
            let scale = 1 / (variance + eps).squareRoot()
            let o = out + r * dim
            for i in 0..<dim {
                o[i] = (row[i] - mean) * scale * (weight?[i] ?? 1) + (bias?[i] ?? 0)
            }
        }
    }
}

public enum Activation {
    /// SwiGLU's gate: `gate[i] = silu(gate[i]) · up[i]`.
    public static func siluMultiply(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int,
                                    pool: ThreadPool = .shared) {
        pool.parallelChunks((count + 7) / 8, minChunk: 4096) { range in
            let g = UnsafeMutableRawPointer(gate), u = UnsafeRawPointer(up)
            for c in range {
                let i = c * 8
                if i + 8 <= count {
                    let x = g.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                    let silu = x / (1 + VectorMath.exp(-x))
                    g.storeBytes(of: silu * u.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self),
                                 toByteOffset: i * 4, as: SIMD8<Float>.self)
                } else {
                    for j in i..<count { gate[j] = gate[j] / (1 + VectorMath.exp(-gate[j])) * up[j] }
                }
            }
        }
    }

    public static func gelu(_ x: UnsafeMutablePointer<Float>, count: Int, approximate: Bool) {
        for i in 0..<count {
            let v = x[i]
            if approximate {
                let inner: Float = 0.7978845608028654 * (v + 0.044715 * v * v * v)
                x[i] = 0.5 * v * (1 + Foundation.tanh(inner))
            } else {
                x[i] = 0.5 * v * (1 + Foundation.erf(v * Float(0.7071067811865476)))
            }
        }
    }

    public static func relu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count where x[i] < 0 { x[i] = 0 }
    }
}
