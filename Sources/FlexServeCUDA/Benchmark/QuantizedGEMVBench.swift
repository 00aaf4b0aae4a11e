import Foundation
import FlexServeTensor

/// `gpu-check qgemv`: the quantized GEMV alone on LLaMA-7B's matrix shapes (random int8/int4 groups made on the host,
/// several copies per shape rotated so that L2 holds none of them), per launch variant: microseconds per call, GB/s
/// of the bytes it must read (values + scale pairs), and the largest difference from dequantize + cuBLAS on the
/// same random input (a wrong variant shows there). Also the dequantize pass's write bandwidth.
public enum QuantizedGEMVBench {
    /// The launch variants measured (`FLEXSERVE_CUDA_QGEMV` picks one), the default first.
    public static var variants: [String] { QuantizedKernel.variants }

    public struct Timing: Codable, Sendable {
        public var format: String
        public var shape: String
        public var rows: Int
        public var cols: Int
        public var variant: String
        public var tokens: Int
        public var microsecondsPerCall: Double
        public var gigabytesPerSecond: Double
        public var maxAbsDifferenceFromCUBLAS: Float
        public var maxAbsOutput: Float
    }

    public struct Report: Codable, Sendable {
        public var device: String
        public var copyBytesPerSecond: Double
        public var timings: [Timing]
        /// Dequantize pass (gate/up matrix into fp16), GB/s of bytes read plus written.
        public var dequantizeGigabytesPerSecond: [String: Double]
    }

    public static func run(device: CUDADevice, type: CUDADataType = .fp16, tokens: [Int] = [1], calls: Int = 64,
                           log: (String) -> Void = { _ in }) throws -> Report {
        try device.makeCurrent()
        let copy = try DecodeSpeed.copyBandwidth(device: device)
        let shapes: [(String, Int, Int)] = [("qkv", 12288, 4096), ("o-proj", 4096, 4096), ("gate/up", 22016, 4096),
                                            ("down", 4096, 11008), ("lm-head", 32000, 4096)]
        let blas = try device.cublas()
        var rng = SystemRandomNumberGenerator()
        var timings: [Timing] = []
        var dequantRates: [String: Double] = [:]
        let maxTokens = tokens.max() ?? 1
        for (format, bits) in [(DeviceMatrix.Format.int8Group, 8), (.int4Group, 4)] {
            for (name, rows, cols) in shapes {
                // Layout as WeightBlock makes it: values, then (scale, minimum) pairs.
                let valueBytes = rows * cols * bits / 8
                let scalesOffset = WeightBlock.aligned(valueBytes)
                let bytes = scalesOffset + rows * (cols / 32) * 8
                let copies = max(2, (256 << 20) / bytes + 1)
                let stride = WeightBlock.aligned(bytes)
                let buffer = try device.allocate(bytes: stride * copies)
                let host = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 16)
                defer { host.deallocate() }
                var state = UInt64.random(in: 1...UInt64.max, using: &rng)
                let words = host.assumingMemoryBound(to: UInt64.self)
                for i in 0..<(valueBytes / 8) { state ^= state << 13; state ^= state >> 7; state ^= state << 17; words[i] = state }
                let pairs = (host + scalesOffset).assumingMemoryBound(to: Float.self)
                for g in 0..<(rows * cols / 32) {
                    pairs[2 * g] = Float.random(in: 0.001...0.01, using: &rng)
                    pairs[2 * g + 1] = Float.random(in: -0.5...0, using: &rng)
                }
                for c in 0..<copies { try device.copy(toDevice: buffer.pointer + DevicePointer(c * stride), from: host, bytes: bytes) }
                try device.synchronize()
                let m = DeviceMatrix(format: format, rows: rows, cols: cols, offset: 0, scalesOffset: scalesOffset, bytes: bytes)
                let x = try device.allocate(bytes: maxTokens * cols * type.bytes)
                let xs = (0..<(maxTokens * cols)).map { _ in Float.random(in: -1...1, using: &rng) }
                switch type {
                case .fp32: try xs.withUnsafeBytes { try device.copy(toDevice: x.pointer, from: $0.baseAddress!, bytes: $0.count) }
                case .fp16: try xs.map(floatToF16).withUnsafeBytes { try device.copy(toDevice: x.pointer, from: $0.baseAddress!, bytes: $0.count) }
                case .bf16: try xs.map(floatToBF16).withUnsafeBytes { try device.copy(toDevice: x.pointer, from: $0.baseAddress!, bytes: $0.count) }
                }
                let y = try device.allocate(bytes: maxTokens * rows * 4), reference = try device.allocate(bytes: maxTokens * rows * 4)
                let dense = try device.allocate(bytes: rows * cols * type.bytes)
                let any = try QuantizedKernel(device: device, type: type, maxTokens: maxTokens)
                let timer = try CUDAEventTimer(device: device)
                // Reference: dequantize (copy 0) + cuBLAS; and the dequantize pass's bandwidth.
                try any.dequantize(matrix: m, base: buffer.pointer, out: dense.pointer)
                try timer.recordStart()
                for c in 0..<copies { try any.dequantize(matrix: m, base: buffer.pointer + DevicePointer(c * stride), out: dense.pointer) }
                try timer.recordEnd()
                let dequantSeconds = try timer.elapsedMilliseconds() / 1e3 / Double(copies)
                if name == "gate/up" { dequantRates[format.rawValue] = Double(bytes + rows * cols * type.bytes) / dequantSeconds / 1e9 }
                try any.dequantize(matrix: m, base: buffer.pointer, out: dense.pointer)
                for variant in QuantizedKernel.variants {
                    let kernel = try QuantizedKernel(device: device, type: type, maxTokens: maxTokens, variant: variant)
                    for t in tokens {
                        try blas.linear(x: x.pointer, w: dense.pointer, inputType: type.blasType, out: reference.pointer, tokens: t,
                                        n: rows, k: cols)
                        try kernel.linear(matrix: m, base: buffer.pointer, x: x.pointer, out: y.pointer, tokens: t, accumulate: false)
                        var a = [Float](repeating: 0, count: t * rows), b = a
                        try a.withUnsafeMutableBytes { try device.copy(toHost: $0.baseAddress!, from: reference.pointer, bytes: $0.count) }
                        try b.withUnsafeMutableBytes { try device.copy(toHost: $0.baseAddress!, from: y.pointer, bytes: $0.count) }
                        let diff = zip(a, b).map { abs($0 - $1) }.max() ?? 0, top = a.map(abs).max() ?? 0
                        for c in 0..<4 {
                            try kernel.linear(matrix: m, base: buffer.pointer + DevicePointer(c % copies * stride), x: x.pointer,
                                              out: y.pointer, tokens: t, accumulate: false)
                        }
                        try timer.recordStart()
                        for c in 0..<calls {
                            try kernel.linear(matrix: m, base: buffer.pointer + DevicePointer(c % copies * stride), x: x.pointer,
                                              out: y.pointer, tokens: t, accumulate: false)
                        }
                        try timer.recordEnd()
                        let seconds = try timer.elapsedMilliseconds() / 1e3 / Double(calls)
                        let timing = Timing(format: format.rawValue, shape: name, rows: rows, cols: cols, variant: variant, tokens: t,
                                            microsecondsPerCall: seconds * 1e6, gigabytesPerSecond: Double(bytes) / seconds / 1e9,
                                            maxAbsDifferenceFromCUBLAS: diff, maxAbsOutput: top)
                        log(String(format: "%@ %@ %dx%d %@ t%d: %.1f us, %.0f GB/s, max |diff| %.2g of %.3g", format.rawValue,
                                   name, rows, cols, variant, t, timing.microsecondsPerCall, timing.gigabytesPerSecond, diff, top))
                        timings.append(timing)
                    }
                }
            }
        }
        return Report(device: device.name, copyBytesPerSecond: copy, timings: timings, dequantizeGigabytesPerSecond: dequantRates)
    }
}
