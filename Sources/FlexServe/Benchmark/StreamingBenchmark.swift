import Foundation
import FlexServeTensor

/// How fast the q8 decode kernels stream weights as a function of how much one dispatch streams:
/// the same 65,536 × 576 weights (SmolLM2's width; 40 MB as Q8_0, 24 MB as Q4_1) as matrices of 256 to 65,536 rows, one
/// dispatch each, and as 256-row matrices fused four to a dispatch (as Q/K/V and gate/up are), with
/// a bandwidth pass in the same run. A decode step of a small model is ~120 projection dispatches
/// of 0.35–2 MB, so this says how much of the gap to the probe is the size of the model's matrices. With `tokens`
/// above one, the same for a few tokens per forward (a speculative step's verification), the weights read once for all.
/// On a pool of one thread, a single core's stream against a single core's reads: what each core has to reach when a
/// host puts the threads in different core complexes, each pulling its own link.
public enum StreamingBenchmark {
    public struct Row: Codable, Sendable {
        public var matrixRows: Int
        public var matricesPerDispatch: Int
        public var kilobytesPerDispatch: Int
        public var gigabytesPerSecond: Double
        public var fractionOfBandwidth: Double
    }

    public static func run(passes: Int = 20, tokens: Int = 1, format: DType = .q8_0, pool: ThreadPool = .shared) -> (bandwidthGBs: Double, rows: [Row]) {
        let cols = 576, totalRows = 65536
        let x = (0..<(tokens * cols)).map { Float(sin(Double($0))) }
        let out = UnsafeMutablePointer<Float>.allocate(capacity: (tokens + 1) * totalRows)
        defer { out.deallocate() }
        let layouts = [(256, 1), (256, 4), (1024, 1), (4096, 1), (65536, 1)]
        let matrices = layouts.map { rows, _ in
            (0..<(totalRows / rows)).map { m in
                TensorView.owned((0..<(rows * cols)).map { Float(sin(Double(m * 7919 + $0) * 0.37)) }, shape: [rows, cols])
                    .converted(to: format)!.withInterleavedRows(for: .q8, pool: pool)
            }
        }
        let bytes = Double(matrices[0].reduce(0) { $0 + $1.byteCount })
        let probe = ReadProbe.on(pool)
        var best = [Double](repeating: 0, count: layouts.count), bandwidth = 0.0
        // Interleaved passes, each layout's best (as the probe takes its best pass).
        for _ in 0..<passes {
            bandwidth = max(bandwidth, ReadProbe.Pattern.allCases.map(probe.pass).max()!)
            for (i, (_, fused)) in layouts.enumerated() {
                let start = Date()
                for group in stride(from: 0, to: matrices[i].count, by: fused) {
                    let projections = (group..<(group + fused)).map { m in
                        Linear.Projection(weight: matrices[i][m], out: out + (m * matrices[i][m].shape[0]) % totalRows)
                    }
                    Linear.forward(x: x, tokens: tokens, projections: projections, pool: pool)
                }
                best[i] = max(best[i], bytes / Date().timeIntervalSince(start) / 1e9)
            }
        }
        let rows = layouts.enumerated().map { i, layout in
            Row(matrixRows: layout.0, matricesPerDispatch: layout.1, kilobytesPerDispatch: Int(bytes) / matrices[i].count * layout.1 / 1000,
                gigabytesPerSecond: best[i], fractionOfBandwidth: best[i] / bandwidth)
        }
        return (bandwidth, rows)
    }
}
