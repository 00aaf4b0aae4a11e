import Foundation
import FlexServeTensor

/// Measures this machine's ceilings so benchmark results can be reported as fractions of them:
/// memory read bandwidth (all threads streaming a buffer far larger than the caches) and fp32
/// FMA throughput (independent SIMD fused multiply-adds in registers).
public struct MachineProbe: Codable, Sendable {
    public var threads: Int
    public var readBandwidthGBs: Double
    public var fmaGFLOPsPerCore: Double
    public var fmaGFLOPsAllCores: Double
    public var cpu: String

    public static func measure(pool: ThreadPool = .shared) -> MachineProbe {
        let threads = pool.threadCount
        return MachineProbe(threads: threads, readBandwidthGBs: readBandwidth(pool: pool),
                            fmaGFLOPsPerCore: fmaPeak(pool: ThreadPool(threads: 1)),
                            fmaGFLOPsAllCores: fmaPeak(pool: pool), cpu: cpuName())
    }

    static func cpuName() -> String {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }) else { return "unknown" }
        return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
    }

    /// Best of nine `ReadProbe` passes, each pattern in turn.
    public static func readBandwidth(pool: ThreadPool = .shared) -> Double {
        let probe = ReadProbe.on(pool), patterns = ReadProbe.Pattern.allCases
        return (0..<9).map { probe.pass(patterns[$0 % patterns.count]) }.max()!
    }

    /// GFLOP/s of independent fp32 FMAs (two flops each) across the pool's threads: the better of
    /// 8-lane FMAs in 10 chains and 16-lane FMAs in 12 chains (on AVX-512 CPUs the wider form can
    /// issue faster: about 5% more on Zen 4), so the ceiling is the machine's, not one code form's.
    public static func fmaPeak(pool: ThreadPool) -> Double {
        let iterations = 20_000_000
        var best = 0.0
        for _ in 0..<3 {
            for wide in [false, true] {
                let start = Date()
                let sinks = UnsafeMutablePointer<Float>.allocate(capacity: pool.threadCount)
                pool.parallelFor(pool.threadCount) { t in
                    sinks[t] = wide ? fma16(iterations: iterations) : fma8(iterations: iterations)
                }
                let seconds = Date().timeIntervalSince(start)
                sinks.deallocate()
                best = max(best, Double(pool.threadCount) * Double(iterations) * 16 / seconds / 1e9)
            }
        }
        return best
    }

    /// GFLOP/s of one pass of 16-lane FMAs on every thread of `pool`, each thread doing `iterations` × 16 flops
    /// (2·10⁹, about a quarter of a second on a 2-core AVX-512 host): the machine's average rate over a window about
    /// as long as a 512-token prefill, where `fmaPeak` takes the best of short passes.
    public static func fmaRate(pool: ThreadPool, iterations: Int = 2_000_000_000) -> Double {
        let sinks = UnsafeMutablePointer<Float>.allocate(capacity: pool.threadCount)
        defer { sinks.deallocate() }
        let start = Date()
        pool.parallelFor(pool.threadCount) { t in sinks[t] = fma16(iterations: iterations) }
        return Double(pool.threadCount) * Double(iterations) * 16 / Date().timeIntervalSince(start) / 1e9
    }

    /// `iterations` FMAs of 8 lanes (16 flops each) in 10 independent chains. Each chain is
    /// a = c + a·m, which converges (to c / (1 − m)): no overflow, no subnormals.
    @inline(never)
    static func fma8(iterations: Int) -> Float {
        var a = (SIMD8<Float>(repeating: 1), SIMD8<Float>(repeating: 2), SIMD8<Float>(repeating: 3), SIMD8<Float>(repeating: 4),
                 SIMD8<Float>(repeating: 5), SIMD8<Float>(repeating: 6), SIMD8<Float>(repeating: 7), SIMD8<Float>(repeating: 8),
                 SIMD8<Float>(repeating: 9), SIMD8<Float>(repeating: 10))
        let m = SIMD8<Float>(repeating: 0.999999), c = SIMD8<Float>(repeating: 1e-3)
        for _ in 0..<(iterations / 10) {
            a.0 = c.addingProduct(a.0, m); a.1 = c.addingProduct(a.1, m); a.2 = c.addingProduct(a.2, m)
            a.3 = c.addingProduct(a.3, m); a.4 = c.addingProduct(a.4, m); a.5 = c.addingProduct(a.5, m)
            a.6 = c.addingProduct(a.6, m); a.7 = c.addingProduct(a.7, m); a.8 = c.addingProduct(a.8, m)
            a.9 = c.addingProduct(a.9, m)
        }
        return (a.0 + a.1 + a.2 + a.3 + a.4 + a.5 + a.6 + a.7 + a.8 + a.9).sum()
    }

    /// The same work (`iterations` × 16 flops) as 16-lane FMAs in 12 chains.
    @inline(never)
    static func fma16(iterations: Int) -> Float {
        var a = (SIMD16<Float>(repeating: 1), SIMD16<Float>(repeating: 2), SIMD16<Float>(repeating: 3), SIMD16<Float>(repeating: 4),
                 SIMD16<Float>(repeating: 5), SIMD16<Float>(repeating: 6), SIMD16<Float>(repeating: 7), SIMD16<Float>(repeating: 8),
                 SIMD16<Float>(repeating: 9), SIMD16<Float>(repeating: 10), SIMD16<Float>(repeating: 11), SIMD16<Float>(repeating: 12))
        let m = SIMD16<Float>(repeating: 0.999999), c = SIMD16<Float>(repeating: 1e-3)
        for _ in 0..<(iterations / 24) {
            a.0 = c.addingProduct(a.0, m); a.1 = c.addingProduct(a.1, m); a.2 = c.addingProduct(a.2, m)
            a.3 = c.addingProduct(a.3, m); a.4 = c.addingProduct(a.4, m); a.5 = c.addingProduct(a.5, m)
            a.6 = c.addingProduct(a.6, m); a.7 = c.addingProduct(a.7, m); a.8 = c.addingProduct(a.8, m)
            a.9 = c.addingProduct(a.9, m); a.10 = c.addingProduct(a.10, m); a.11 = c.addingProduct(a.11, m)
        }
        return (a.0 + a.1 + a.2 + a.3 + a.4 + a.5 + a.6 + a.7 + a.8 + a.9 + a.10 + a.11).sum()
    }
}
