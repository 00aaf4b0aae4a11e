import Foundation
import FlexServeModels
import FlexServeTensor

/// What a speculative step's verification costs on this machine: a forward of k tokens (a chain after a context, every
/// token's logits, as `TreeVerifier` asks for a tree) against one decode step. Speculation pays where the tokens a step
/// accepts exceed that ratio (plus the drafting): a k-token tree costing 2.5 decode steps needs 2.5 tokens per step.
/// Rounds go through every k in turn, so a slow minute of a shared host falls on all of them; each figure is the median.
public enum VerifyCostBenchmark {
    public struct Row: Codable, Sendable {
        public var tokens: Int
        /// Median over the rounds.
        public var milliseconds: Double
        /// `milliseconds` over the one-token forward's (a decode step).
        public var decodeSteps: Double
    }

    public struct Report: Codable, Sendable {
        public var model: String
        public var cpu: String
        public var format: String
        public var activations: String
        public var context: Int
        public var rounds: Int
        /// Median over the rounds of a cache line's handoff between two threads (AMD: under 100 ns within one core complex).
        public var handoffNanoseconds: Double?
        public var rows: [Row]
    }

    public static func run(path: String, format: DType?, activations: ActivationFormat, tokens: [Int], context: Int = 256,
                           rounds: Int = 20) throws -> Report {
        precondition(!tokens.isEmpty && tokens.allSatisfy { $0 > 0 } && context > 0 && rounds > 0)
        let model = try ModelLoader.load(path: path, weightFormat: format, activations: activations).model
        let config = model.config
        let counts = ([1] + tokens.filter { $0 != 1 })
        let longest = counts.max()!
        let cache = model.makeCache(capacityTokens: context + longest + 64)
        try cache.reserve(sequence: 0, length: context + longest)
        func ids(_ n: Int, from i: Int) -> [Int] { (0..<n).map { (($0 + i) * 7919 + 13) % config.vocabSize } }
        var prompt = Batch()
        prompt.appendCausal(ids(context, from: 0), sequence: 0, start: 0, logits: .last)
        _ = try model.forward(prompt, cache: cache)

        var times = [[Double]](repeating: [], count: counts.count), handoffs: [Double] = []
        for round in 0...rounds {
            for (i, k) in counts.enumerated() {
                try cache.reserve(sequence: 0, length: context + k)
                var chain = Batch()
                chain.appendCausal(ids(k, from: context + round), sequence: 0, start: context, logits: .all)
                let start = DispatchTime.now().uptimeNanoseconds
                _ = try model.forward(chain, cache: cache)
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
                cache.truncate(sequence: 0, length: context)
                if round > 0 { times[i].append(elapsed) }  // the first round warms up
            }
            if let h = ThreadPlacement.handoffNanoseconds() { handoffs.append(h) }
        }
        func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
        let step = median(times[0])
        let rows = counts.indices.map { i in Row(tokens: counts[i], milliseconds: median(times[i]), decodeSteps: median(times[i]) / step) }
        return Report(model: path, cpu: MachineProbe.cpuName(), format: format?.rawValue ?? "stored", activations: activations.rawValue,
                      context: context, rounds: rounds, handoffNanoseconds: handoffs.isEmpty ? nil : median(handoffs),
                      rows: rows.sorted { $0.tokens < $1.tokens })
    }
}
