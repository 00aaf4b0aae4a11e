import Foundation
import FlexServeCUDA
import FlexServeModels

/// `gpu-check sampler`: the GPU sampler (`DeviceSampler`) against the CPU `Sampler`. For each setting, many draws
/// of one random logits row on the GPU, with the uniforms a seeded generator gives the CPU: (1) the empirical
/// distribution against the CPU's exact probabilities (chi-square; bins of expected count ≥ 5, the rest pooled),
/// (2) how often the GPU's token equals the CPU's for the same uniform (a boundary rounding may differ, rarely),
/// (3) no GPU token outside the CPU's top-k/top-p support; and greedy rows (ties planted) against `Sampler.argmax`.
public enum GPUSamplerCheck {
    public struct Case: Codable, Sendable {
        public var name: String
        public var vocabSize: Int
        public var temperature: Float
        public var topK: Int
        public var topP: Float
        public var draws: Int
        /// Tokens the CPU distribution gives mass to.
        public var support: Int
        public var chiSquare: Double
        public var degreesOfFreedom: Int
        public var pValue: Double
        /// Fraction of draws where GPU and CPU picked the same token for the same uniform.
        public var sameTokenFraction: Double
        public var outsideSupport: Int
        /// GPU time of one row sampled alone (upload of its parameters, kernel, copy of the id), median, microseconds.
        public var microsecondsPerRow: Double
        public var passed: Bool
    }

    public struct Report: Codable, Sendable {
        public var device: String
        public var cases: [Case]
        public var argmaxRows: Int
        public var argmaxIdentical: Int
        public var passed: Bool
    }

    public static func run(draws: Int = 200_000, seed: UInt64 = 7, log: (String) -> Void = { _ in }) throws -> Report {
        let device = try CUDADevice.shared()
        try device.makeCurrent()
        let sampler = try DeviceSampler(device: device)
        let settings: [(String, Int, Float, Int, Float)] = [
            ("full softmax", 32_000, 1.0, 0, 1.0),
            ("T0.7 top-k 50", 32_000, 0.7, 50, 1.0),
            ("T0.9 top-p 0.8", 49_152, 0.9, 0, 0.8),
            ("T1.3 top-k 20 top-p 0.9", 49_152, 1.3, 20, 0.9),
        ]
        var rng = SeededRandom(seed: seed)
        var cases: [Case] = []
        for (name, V, temperature, topK, topP) in settings {
            let row = randomLogits(V, &rng)
            let logits = try device.allocate(bytes: V * 4)
            try row.withUnsafeBytes { try device.copy(toDevice: logits.pointer, from: $0.baseAddress!, bytes: $0.count) }
            var config = GenerationConfig()
            config.doSample = true
            config.temperature = temperature
            config.topK = topK
            config.topP = topP
            let dist = row.withUnsafeBufferPointer { Sampler.distribution($0, config: config) }
            // The CPU's pick for a uniform u, as TokenDistribution.sample walks: the first cumulative sum above u · total.
            var cumulative: [Float] = []
            var acc: Float = 0
            for p in dist.probabilities { acc += p; cumulative.append(acc) }
            let total = dist.probabilities.reduce(0, +)
            func cpuPick(_ u: Float) -> Int {
                let x = u * total
                var lo = 0, hi = cumulative.count
                while lo < hi { let mid = (lo + hi) / 2; if x < cumulative[mid] { hi = mid } else { lo = mid + 1 } }
                return lo < cumulative.count ? dist.ids[lo] : dist.ids[dist.probabilities.lastIndex { $0 > 0 } ?? 0]
            }
            var draw = SeededRandom(seed: seed &+ UInt64(V) &+ UInt64(topK))
            let uniforms = (0..<draws).map { _ in draw.nextUnit() }
            var tokens: [Int] = []
            let chunk = 65_536
            let scratch = try device.allocate(bytes: DeviceSampler.scratchBytes(count: chunk))
            for start in stride(from: 0, to: draws, by: chunk) {
                let requests = uniforms[start..<min(draws, start + chunk)].map {
                    RowSampling(row: 0, greedy: false, temperature: temperature, topK: topK, topP: topP, uniform: $0)
                }
                tokens += try sampler.sample(logits: logits.pointer, vocabSize: V, requests: requests, scratch: scratch.pointer)
            }
            var same = 0
            for (u, t) in zip(uniforms, tokens) where cpuPick(u) == t { same += 1 }
            // Chi-square of the GPU's counts against the CPU's probabilities.
            var index: [Int: Int] = [:]
            for (i, id) in dist.ids.enumerated() { index[id] = i }
            var counts = [Int](repeating: 0, count: dist.ids.count)
            var outside = 0
            for t in tokens { if let i = index[t] { counts[i] += 1 } else { outside += 1 } }
            var chi = 0.0, bins = 0, pooledExpected = 0.0, pooledObserved = 0.0
            for (i, p) in dist.probabilities.enumerated() {
                let expected = Double(p) / Double(total) * Double(draws)
                if expected >= 5 {
                    chi += (Double(counts[i]) - expected) * (Double(counts[i]) - expected) / expected
                    bins += 1
                } else {
                    pooledExpected += expected
                    pooledObserved += Double(counts[i])
                }
            }
            if pooledExpected >= 5 {
                chi += (pooledObserved - pooledExpected) * (pooledObserved - pooledExpected) / pooledExpected
                bins += 1
            }
            let df = max(1, bins - 1)
            let p = chiSquareUpperTail(chi, degreesOfFreedom: df)
            // One row alone, as a decode step samples it.
            var times: [Double] = []
            for _ in 0..<21 {
                let start = Date()
                _ = try sampler.sample(logits: logits.pointer, vocabSize: V, requests: [RowSampling(row: 0, greedy: false,
                    temperature: temperature, topK: topK, topP: topP, uniform: 0.5)], scratch: scratch.pointer)
                times.append(Date().timeIntervalSince(start) * 1e6)
            }
            let c = Case(name: name, vocabSize: V, temperature: temperature, topK: topK, topP: topP, draws: draws,
                         support: dist.ids.count, chiSquare: chi, degreesOfFreedom: df, pValue: p,
                         sameTokenFraction: Double(same) / Double(draws), outsideSupport: outside,
                         microsecondsPerRow: times.sorted()[times.count / 2],
                         passed: p > 1e-3 && outside == 0 && same >= draws * 999 / 1000)
            log(String(format: "%@: support %d, chi2 %.1f (df %d, p %.3f), same token as CPU %.5f, outside support %d, %.0f us/row: %@",
                       name as NSString, c.support, chi, df, p, c.sameTokenFraction, outside, c.microsecondsPerRow,
                       (c.passed ? "ok" : "FAILED") as NSString))
            cases.append(c)
        }
        // Greedy: rows with planted ties at the maximum (the lower id must win, as Sampler.argmax).
        let V = 49_152, rows = 64
        var host: [Float] = []
        var expected: [Int] = []
        for r in 0..<rows {
            var row = randomLogits(V, &rng)
            if r % 2 == 0 {
                let top = (row.max() ?? 0) + 1
                let a = Int(rng.next() % UInt64(V)), b = Int(rng.next() % UInt64(V))
                row[a] = top
                row[b] = top
            }
            expected.append(row.withUnsafeBufferPointer { Sampler.argmax($0) })
            host += row
        }
        let logits = try device.allocate(bytes: host.count * 4)
        try host.withUnsafeBytes { try device.copy(toDevice: logits.pointer, from: $0.baseAddress!, bytes: $0.count) }
        let scratch = try device.allocate(bytes: DeviceSampler.scratchBytes(count: rows))
        let greedy = try sampler.sample(logits: logits.pointer, vocabSize: V, requests: (0..<rows).map { RowSampling(row: $0, greedy: true) },
                                        scratch: scratch.pointer)
        let identical = zip(greedy, expected).filter { $0 == $1 }.count
        log("greedy: \(identical)/\(rows) rows identical to Sampler.argmax (half with planted ties)")
        return Report(device: device.name, cases: cases, argmaxRows: rows, argmaxIdentical: identical,
                      passed: cases.allSatisfy(\.passed) && identical == rows)
    }

    /// Gaussian logits (σ = 2), like a model's spread.
    static func randomLogits(_ n: Int, _ rng: inout SeededRandom) -> [Float] {
        (0..<n).map { _ in
            let u1 = max(Double(rng.nextUnit()), 1e-7), u2 = Double(rng.nextUnit())
            return Float(2 * (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2))
        }
    }

    /// P(χ² > x) for `k` degrees of freedom (Wilson–Hilferty normal approximation; good for k ≥ 3).
    static func chiSquareUpperTail(_ x: Double, degreesOfFreedom k: Int) -> Double {
        let d = Double(k)
        let z = (pow(x / d, 1.0 / 3) - (1 - 2 / (9 * d))) / (2 / (9 * d)).squareRoot()
        return 0.5 * erfc(z / 2.0.squareRoot())
    }
}
