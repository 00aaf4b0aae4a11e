import Foundation
import FlexServeTensor

/// How fast the projection kernels compute, apart from memory and from the other threads: one thread, a 512 × 576
/// matrix (SmolLM2's width; 166–313 KB in the integer formats, so it stays in L2), for one token (decoding), a few
/// (a speculative tree) and many (prefill), each as GFLOP/s against the single-core FMA probe. On a shared host whose
/// bandwidth, thread placement and arithmetic speed move from minute to minute, this is the comparison that holds
/// still between two builds: run them one after the other, more than once. (A decode with fp32 activations measured
/// here 7–13% faster per format after a change that `bench throughput` could not tell from its noise.)
public enum KernelBenchmark {
    public struct Row: Codable, Sendable {
        public var format: String
        public var activations: String
        public var tokens: Int
        /// Best pass, per forward.
        public var microseconds: Double
        /// Two flops per weight and token.
        public var gflops: Double
        public var fractionOfFMAPeak: Double
    }

    public struct Report: Codable, Sendable {
        public var cpu: String
        /// The better of the single-core FMA probes at the start and the end.
        public var fmaGFLOPsPerCore: Double
        public var rows: [Row]
    }

    static let rows = 512, cols = 576

    /// Each configuration's best of `passes`; the passes go round every configuration in turn, so a slow minute of
    /// the host falls on all of them.
    public static func run(formats: [DType], activations: [ActivationFormat], tokens: [Int], passes: Int = 20) -> Report {
        let pool = ThreadPool(threads: 1)
        let peakBefore = MachineProbe.fmaPeak(pool: pool)
        let weights = (0..<(rows * cols)).map { Float(sin(Double($0) * 0.029)) }
        let maxTokens = tokens.max() ?? 1
        let x = (0..<(maxTokens * cols)).map { Float(cos(Double($0) * 0.31)) * 2 }
        let out = UnsafeMutablePointer<Float>.allocate(capacity: maxTokens * rows)
        defer { out.deallocate() }
        var configurations: [(format: DType, activations: ActivationFormat, tokens: Int, weight: TensorView)] = []
        for format in formats {
            for a in activations where a == .f32 || format.hasIntegerBlocks {
                let weight = TensorView.owned(weights, shape: [rows, cols]).converted(to: format)!.withInterleavedRows(for: a, pool: pool)
                for t in tokens { configurations.append((format, a, t, weight)) }
            }
        }
        var best = [Double](repeating: .infinity, count: configurations.count)
        for _ in 0..<passes {
            for (i, c) in configurations.enumerated() {
                // About a millisecond of work per timing, so the clock's cost and a stray interrupt stay small.
                let repeats = max(1, 512 / c.tokens)
                let start = DispatchTime.now().uptimeNanoseconds
                for _ in 0..<repeats { Linear.forward(x: x, tokens: c.tokens, weight: c.weight, out: out, pool: pool) }
                best[i] = min(best[i], Double(DispatchTime.now().uptimeNanoseconds - start) / 1000 / Double(repeats))
            }
        }
        let peak = max(peakBefore, MachineProbe.fmaPeak(pool: pool))
        let rows = configurations.enumerated().map { i, c in
            let gflops = 2 * Double(Self.rows * cols * c.tokens) / best[i] / 1000
            return Row(format: c.format.rawValue, activations: c.activations.rawValue, tokens: c.tokens, microseconds: best[i],
                       gflops: gflops, fractionOfFMAPeak: gflops / peak)
        }
        return Report(cpu: MachineProbe.cpuName(), fmaGFLOPsPerCore: peak, rows: rows)
    }
}
