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

    /// LayerNorm: `y = (x - mean) / sqrt(var + eps) · weight + bias`, row by row; `out` may be `x`.
    public static func layer(_ x: UnsafePointer<Float>, rows: Int, dim: Int, weight: UnsafePointer<Float>?,
                             bias: UnsafePointer<Float>?, eps: Float, out: UnsafeMutablePointer<Float>,
                             pool: ThreadPool = .shared) {
        pool.parallelChunks(rows, minChunk: max(1, 16_384 / max(1, dim))) { range in
            for r in range {
                let row = x + r * dim, raw = UnsafeRawPointer(row)
                var sum = SIMD8<Float>(), i = 0
                while i + 8 <= dim { sum += raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self); i += 8 }
                var total = sum.sum()
                for j in i..<dim { total += row[j] }
                let mean = total / Float(dim)
                var squares = SIMD8<Float>()
                i = 0
                while i + 8 <= dim {
                    let d = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) - mean
                    squares.addProduct(d, d)
                    i += 8
                }
                var variance = squares.sum()
                for j in i..<dim { let d = row[j] - mean; variance += d * d }
                variance /= Float(dim)
                let scale = 1 / (variance + eps).squareRoot()
                let o = UnsafeMutableRawPointer(out + r * dim)
                @inline(__always) func load(_ p: UnsafePointer<Float>, _ j: Int) -> SIMD8<Float> {
                    UnsafeRawPointer(p).loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self)
                }
                i = 0
                while i + 8 <= dim {
                    var y = (load(row, i) - mean) * scale
                    if let weight { y *= load(weight, i) }
                    if let bias { y += load(bias, i) }
                    o.storeBytes(of: y, toByteOffset: i * 4, as: SIMD8<Float>.self)
                    i += 8
                }
                for j in i..<dim {
                    out[r * dim + j] = (row[j] - mean) * scale * (weight?[j] ?? 1) + (bias?[j] ?? 0)
                }
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

    /// GELU, `x·Φ(x)` with erf, or with `approximate` its tanh form `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`,
    /// computed as `x / (1 + e^(−2u))`.
    public static func gelu(_ x: UnsafeMutablePointer<Float>, count: Int, approximate: Bool, pool: ThreadPool = .shared) {
        @inline(__always) func gelu8(_ v: SIMD8<Float>) -> SIMD8<Float> {
            if approximate {
                let inner = 0.797_884_560_802_865_4 * v.addingProduct(0.044_715 * v * v, v)
                return v / (1 + VectorMath.exp(-2 * inner))
            }
            return 0.5 * v * (1 + VectorMath.erf(v * 0.707_106_781_186_547_6))
        }
        pool.parallelChunks((count + 7) / 8, minChunk: 2048) { range in
            let raw = UnsafeMutableRawPointer(x)
            for c in range {
                let i = c * 8
                if i + 8 <= count {
                    raw.storeBytes(of: gelu8(raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)),
                                   toByteOffset: i * 4, as: SIMD8<Float>.self)
                } else {
                    for j in i..<count { x[j] = gelu8(SIMD8(repeating: x[j]))[0] }
                }
            }
        }
    }

    public static func relu(_ x: UnsafeMutablePointer<Float>, count: Int, pool: ThreadPool = .shared) {
        pool.parallelChunks(count, minChunk: 16_384) { range in
            for i in range where x[i] < 0 { x[i] = 0 }
        }
    }
}
