import Foundation
import FlexServeModels
import FlexServeTensor

/// Where a decode step's time goes, phase by phase (a LLaMA step runs as one parallel region of phases: norm, Q/K/V,
/// attention, ..., the head), split by where the host put the threads. For each kind of phase, summed over the layers:
/// its share of the step (from the previous phase's end to its own), how long after the previous phase's end its first
/// task began (the handoff between threads), how long its busiest thread worked, and for the projections the weight
/// bytes over its time. Rounds of `steps` greedy tokens after a prompt (16 tokens, as llama-bench's tg; longer to see
/// attention over a long context), each round's placement from the handoff measured before it; each figure is the
/// median over the rounds of a placement.
public enum DecodePhaseBenchmark {
    public struct Row: Codable, Sendable {
        public var phase: String
        /// Per step, all layers: from the previous phase's end to this phase's end.
        public var milliseconds: Double
        public var shareOfStep: Double
        /// Per layer: from the previous phase's end to this phase's first task's start.
        public var startMicroseconds: Double
        /// Per layer: the busiest thread's first start to last end.
        public var busyMicroseconds: Double
        /// Weight bytes over `milliseconds` (projections and the head).
        public var gbs: Double?
    }

    public struct Placement: Codable, Sendable {
        /// `ThreadPlacement.name`.
        public var placement: String
        public var rounds: Int
        public var handoffNanoseconds: Double?
        /// The whole `forward` of one token.
        public var stepMilliseconds: Double
        /// `forward` outside the region (embedding lookup, cache addressing, RoPE tables), and the next token's argmax.
        public var outsideMilliseconds: Double
        /// Of it: from the step's start to the region's first task (the region's dispatch included), and from its last
        /// task's end to the token chosen (its join included).
        public var beforeRegionMilliseconds: Double
        public var afterRegionMilliseconds: Double
        public var rows: [Row]
    }

    public struct Report: Codable, Sendable {
        public var model: String
        public var cpu: String
        public var format: String
        public var activations: String
        public var stepsPerRound: Int
        public var promptTokens: Int
        public var kvCacheType: KVCacheType
        public var placements: [Placement]
    }

    public enum Failure: Error, CustomStringConvertible {
        case noPhases(String)
        case tooLong(Int, Int)
        public var description: String {
            switch self {
            case .tooLong(let tokens, let limit): "a prompt and its steps of \(tokens) tokens pass the model's \(limit) positions"

            case .noPhases(let path): "\(path): this model and format decode projection by projection, not as one region of phases (a LLaMA-family model with every matrix in a block format has phases)"
            }
        }
    }

    public static func run(path: String, format: DType?, activations: ActivationFormat, kvCacheType: KVCacheType = .f32,
                           rounds: Int = 20, steps: Int = 64, promptTokens prompt: Int = 16) throws -> Report {
        precondition(rounds > 0 && steps > 0 && prompt > 0)
        let loaded = try ModelLoader.load(path: path, weightFormat: format, activations: activations)
        guard let model = loaded.model as? LlamaModel, let names = model.decodePhases else { throw Failure.noPhases(path) }
        let config = model.config, layers = config.numLayers
        let kinds = names.perLayer + names.final
        let phases = layers * names.perLayer.count + names.final.count
        // Weight bytes of each kind of phase: Q/K/V, output, gate/up, down per layer, then the head.
        var bytes = [Double?](repeating: nil, count: kinds.count)
        if let perPhase = ThroughputBenchmark.phaseBytes(loaded.weights, config: config) {
            for (i, kind) in ["Q/K/V", "output", "gate/up", "down"].enumerated() {
                if let k = kinds.firstIndex(of: kind) { bytes[k] = Double(stride(from: i, to: 4 * layers, by: 4).reduce(0) { $0 + perPhase[$1] }) }
            }
            bytes[kinds.count - 1] = Double(perPhase.last!)
        }
        let pool = ThreadPool.shared
        let timeline = PhaseTimeline(phases: phases, threads: pool.threadCount)
        guard prompt + steps <= config.maxPositionEmbeddings else { throw Failure.tooLong(prompt + steps, config.maxPositionEmbeddings) }
        let cache = model.makeCache(capacityTokens: 2 * (prompt + steps + 64), type: kvCacheType)

        struct Round { var handoff: Double?; var step = 0.0, outside = 0.0, before = 0.0; var total, start, busy: [Double] }
        var measured: [Round] = []
        for round in 0...rounds {
            let sequence = round % 2
            cache.release(sequence: sequence)
            try cache.reserve(sequence: sequence, length: prompt + steps + 1)
            var batch = Batch()
            batch.appendCausal((0..<prompt).map { ($0 * 7919 + 13 + round) % config.vocabSize }, sequence: sequence, start: 0, logits: .last)
            var next = try model.forward(batch, cache: cache).withRow(0) { Sampler.argmax($0) }
            var r = Round(handoff: ThreadPlacement.handoffNanoseconds(pool: pool), total: .init(repeating: 0, count: kinds.count),
                          start: .init(repeating: 0, count: kinds.count), busy: .init(repeating: 0, count: kinds.count))
            model.recordDecodePhases(into: timeline)
            defer { model.recordDecodePhases(into: nil) }
            for i in 0..<steps {
                timeline.reset()
                var step = Batch()
                step.appendCausal([next], sequence: sequence, start: prompt + i, logits: .last)
                let t0 = PhaseTimeline.now()
                next = try model.forward(step, cache: cache).withRow(0) { Sampler.argmax($0) }
                let t1 = PhaseTimeline.now()
                var previous: UInt64?, regionStart = UInt64.max
                for p in 0..<phases {
                    let spans = (0..<pool.threadCount).compactMap { timeline.span(phase: p, thread: $0) }
                    guard let end = spans.map(\.end).max(), let first = spans.map(\.start).min() else { continue }
                    regionStart = min(regionStart, first)
                    let kind = p < layers * names.perLayer.count ? p % names.perLayer.count : names.perLayer.count + p - layers * names.perLayer.count
                    let from = previous ?? first
                    r.total[kind] += Double(end - from)
                    r.start[kind] += Double(first - from)
                    r.busy[kind] += Double(spans.map { $0.end - $0.start }.max()!)
                    previous = end
                }
                r.step += Double(t1 - t0)
                if let previous {
                    r.outside += Double(t1 - t0) - Double(previous - regionStart)
                    r.before += Double(regionStart - t0)
                }
            }
            if round > 0 { measured.append(r) }  // the first round warms up
        }

        func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
        let groups = Dictionary(grouping: measured) { ThreadPlacement.name(handoffNanoseconds: $0.handoff) }
        let perLayerKinds = Set(0..<names.perLayer.count)
        let placements = groups.keys.sorted().map { name -> Placement in
            let rs = groups[name]!, n = Double(steps)
            let stepMs = median(rs.map { $0.step / n / 1e6 })
            let rows = kinds.indices.compactMap { k -> Row? in
                let ms = median(rs.map { $0.total[k] / n / 1e6 })
                guard ms > 0 else { return nil }
                let occurrences = perLayerKinds.contains(k) ? Double(layers) : 1
                return Row(phase: kinds[k], milliseconds: ms, shareOfStep: ms / stepMs,
                           startMicroseconds: median(rs.map { $0.start[k] / n / occurrences / 1e3 }),
                           busyMicroseconds: median(rs.map { $0.busy[k] / n / occurrences / 1e3 }),
                           gbs: bytes[k].map { $0 / (ms * 1e6) })
            }
            return Placement(placement: name, rounds: rs.count, handoffNanoseconds: rs.compactMap(\.handoff).isEmpty ? nil : median(rs.compactMap(\.handoff)),
                             stepMilliseconds: stepMs, outsideMilliseconds: median(rs.map { $0.outside / n / 1e6 }),
                             beforeRegionMilliseconds: median(rs.map { $0.before / n / 1e6 }),
                             afterRegionMilliseconds: median(rs.map { ($0.outside - $0.before) / n / 1e6 }), rows: rows)
        }
        return Report(model: path, cpu: MachineProbe.cpuName(), format: format?.rawValue ?? "stored", activations: activations.rawValue,
                      stepsPerRound: steps, promptTokens: prompt, kvCacheType: kvCacheType, placements: placements)
    }
}
