import Foundation
import FlexServeTensor

/// How fast the projection kernels compute, apart from memory and from the other threads: one thread, a 512 × 576
/// matrix (SmolLM2's width; 166–313 KB in the integer formats, so it stays in L2), for one token (decoding), a few
/// (a speculative tree) and many (prefill), each as GFLOP/s against the single-core FMA probe. On a shared host whose
/// bandwidth, thread placement and arithmetic speed move from minute to minute, this is the comparison that holds
/// still between two builds: run them one after the other, more than once. (A decode with fp32 activations measured
/// here 7–13% faster per format after a change that `bench throughput` could not tell from its noise.)
///
/// With more threads (and a model's shapes: `rows` × `cols`) it shows how the kernels share out: each pass first
/// times a cache-line handoff between the threads, and each configuration keeps its best pass for each placement
/// (on the Zen 5 host, two threads in two core complexes ran SmolLM2's 512-token projections at 53–68% of the FMA
/// peak where in one they ran at 74–80%, one thread alone at 71–82%).
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
        /// With two threads or more: whether the passes behind this row had them in one core complex or two.
        public var placement: String?
        /// The passes this row is the best of.
        public var passes: Int
    }

    public struct Report: Codable, Sendable {
        public var cpu: String
        /// The better of the FMA probes (on all the threads) at the start and the end, per thread.
        public var fmaGFLOPsPerCore: Double
        public var threads: Int
        public var matrixRows: Int, matrixColumns: Int
        public var rows: [Row]
    }

    /// Each configuration's best of `passes`; the passes go round every configuration in turn, so a slow minute of
    /// the host falls on all of them.
    public static func run(formats: [DType], activations: [ActivationFormat], tokens: [Int], passes: Int = 20,
                           threads: Int = 1, rows: Int = 512, cols: Int = 576) -> Report {
        let pool = ThreadPool(threads: threads)
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
        // Each configuration's best time per placement (nil: one thread).
        var best: [String?: [Double]] = [:], counts: [String?: Int] = [:]
        for _ in 0..<passes {
            let placement = ThreadPlacement.handoffNanoseconds(pool: pool).map { ThreadPlacement.name(handoffNanoseconds: $0) }
            var times = best[placement] ?? [Double](repeating: .infinity, count: configurations.count)
            defer { best[placement] = times; counts[placement, default: 0] += 1 }
            for (i, c) in configurations.enumerated() {
                // About a millisecond of work per timing, so the clock's cost and a stray interrupt stay small.
                let repeats = max(1, 512 / c.tokens)
                let start = DispatchTime.now().uptimeNanoseconds
                for _ in 0..<repeats { Linear.forward(x: x, tokens: c.tokens, weight: c.weight, out: out, pool: pool) }
                times[i] = min(times[i], Double(DispatchTime.now().uptimeNanoseconds - start) / 1000 / Double(repeats))
            }
        }
        // `fmaPeak` on the pool: all its threads at once.
        let peak = max(peakBefore, MachineProbe.fmaPeak(pool: pool))
        let report = best.sorted { ($0.key ?? "") < ($1.key ?? "") }.flatMap { placement, times in
            configurations.enumerated().map { i, c in
                let gflops = 2 * Double(rows * cols * c.tokens) / times[i] / 1000
                return Row(format: c.format.rawValue, activations: c.activations.rawValue, tokens: c.tokens, microseconds: times[i],
                           gflops: gflops, fractionOfFMAPeak: gflops / peak, placement: placement, passes: counts[placement] ?? 0)
            }
        }
        return Report(cpu: MachineProbe.cpuName(), fmaGFLOPsPerCore: peak / Double(threads), threads: threads, matrixRows: rows, matrixColumns: cols,
                      rows: report)
    }
}
