import Foundation
import FlexServeCUDA
import FlexServeModels

/// `gpu-check sampler`: the GPU sampler (`DeviceSampler`) against the CPU `Sampler`. For each setting, many draws
/// of one random logits row on the GPU, with the uniforms a seeded generator gives the CPU: (1) the empirical
/// distribution against the CPU's probabilities (chi-square; bins of expected count ≥ 5, the rest pooled), which
/// must not reject (p > 0.001); (2) for the same uniform, the GPU's token against the CPU's and against the same
/// walk with exact sums (Double): the CPU's running Float sums drift over thousands of terms (its cumulative
/// boundaries, and its top-p cut, move by ~1e-4 of the mass), the GPU's fixed-point sums are exact, so agreement
/// with the exact walk is the check (≥ 99.9%) and with the CPU's walk is reported; (3) no GPU token outside the
/// exact support; and greedy rows (ties planted) against `Sampler.argmax`.
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
        /// The same, against the CPU's walk done with exact (Double) sums: what the GPU's exact fixed-point sums compute.
        public var sameTokenAsExactFraction: Double
        /// Tokens the exact-sum support has (the CPU's Float top-p cut may keep a few fewer or more).
        public var exactSupport: Int
        /// GPU draws outside the CPU's support, and outside the exact support (must be 0).
        public var outsideSupport: Int
        public var outsideExactSupport: Int
        /// GPU time of one row sampled alone (upload of its parameters, kernel, copy of the id), median, microseconds.
        public var microsecondsPerRow: Double
        public var passed: Bool
    }

    public struct Report: Codable, Sendable {
        public var device: String
        public var cases: [Case]
        public var argmaxRows: Int
        public var argmaxIdentical: Int
        public var greedyMicrosecondsPerRow: Double
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
            // The same walk with exact sums: Float probabilities as the CPU computes them, summed in Double.
            let invT = 1 / temperature
            let maxLogit = row.max()!
            var order: [Int]
            if topK > 0, topK < V {
                order = row.withUnsafeBufferPointer { Sampler.topIndices($0, k: topK) }
            } else {
                order = Array(0..<V)
                order.sort { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }
            }
            let weights = order.map { Double(Foundation.exp((row[$0] - maxLogit) * invT)) }
            var exactCumulative: [Double] = []
            var sum = 0.0
            for w in weights { sum += w; exactCumulative.append(sum) }
            var keep = order.count
            if topP < 1 {
                let bound = Double(topP) * sum
                keep = 0
                while keep < order.count, (keep == 0 ? 0 : exactCumulative[keep - 1]) < bound { keep += 1 }
            }
            let exactTotal = exactCumulative[keep - 1]
            let exactIDs = Set(order[0..<keep])
            func exactPick(_ u: Float) -> Int {
                let x = Double(u) * exactTotal
                var lo = 0, hi = keep
                while lo < hi { let mid = (lo + hi) / 2; if x < exactCumulative[mid] { hi = mid } else { lo = mid + 1 } }
                return order[min(lo, keep - 1)]
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
            var same = 0, sameExact = 0, outsideExact = 0
            for (u, t) in zip(uniforms, tokens) {
                if cpuPick(u) == t { same += 1 }
                if exactPick(u) == t { sameExact += 1 }
                if !exactIDs.contains(t) { outsideExact += 1 }
            }
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
                         sameTokenFraction: Double(same) / Double(draws), sameTokenAsExactFraction: Double(sameExact) / Double(draws),
                         exactSupport: keep, outsideSupport: outside, outsideExactSupport: outsideExact,
                         microsecondsPerRow: times.sorted()[times.count / 2],
                         passed: p > 1e-3 && outsideExact == 0 && sameExact >= draws * 999 / 1000)
            log(String(format: "%@: support %d (exact %d), chi2 %.1f (df %d, p %.3f), same token as CPU %.5f / as exact walk %.5f, outside support %d (exact %d), %.0f us/row: %@",
                       name as NSString, c.support, keep, chi, df, p, c.sameTokenFraction, c.sameTokenAsExactFraction, outside, outsideExact,
                       c.microsecondsPerRow, (c.passed ? "ok" : "FAILED") as NSString))
            cases.append(c)
        }
        // Greedy: rows with planted ties at the maximum (the lower id must win, as Sampler.argmax).
        let V = 49_152, rows = 64
        var greedyMicroseconds = 0.0
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
        var greedyTimes: [Double] = []
        for _ in 0..<21 {
            let start = Date()
            _ = try sampler.sample(logits: logits.pointer, vocabSize: V, requests: [RowSampling(row: 0, greedy: true)], scratch: scratch.pointer)
            greedyTimes.append(Date().timeIntervalSince(start) * 1e6)
        }
        greedyMicroseconds = greedyTimes.sorted()[greedyTimes.count / 2]
        log(String(format: "greedy: %d/%d rows identical to Sampler.argmax (half with planted ties), %.0f us/row", identical, rows, greedyMicroseconds))
        return Report(device: device.name, cases: cases, argmaxRows: rows, argmaxIdentical: identical, greedyMicrosecondsPerRow: greedyMicroseconds,
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
