import Foundation
import FlexServeModels
import FlexServeTensor

/// What holds a decode step: the step against itself cut down (`DecodeStepParts.cuts`: the projections without their
/// arithmetic, no glue between them, no phase ends), each as a fraction of reads of the same bytes interleaved with
/// its steps, split by where the host put the threads. Each round runs every format and cut in turn (in reverse order
/// every other round) for one segment of `steps` steps after a 16-token prompt; the tokens follow a fixed sequence, as
/// a cut step's logits are meaningless. Each figure is the median over the segments of a placement.
public enum DecodeBoundBenchmark {
    public struct Row: Codable, Sendable {
        public var format: String
        public var parts: String
        /// `ThreadPlacement.name`.
        public var placement: String
        public var segments: Int
        /// The steps' weight bytes over their time.
        public var decodeGBs: Double
        /// Reads of a step's weight bytes after each step (`InterleavedReads`).
        public var readGBs: Double
        /// The median of each segment's decode GB/s over its read GB/s.
        public var fractionOfConcurrentReads: Double
    }

    public struct Report: Codable, Sendable {
        public var model: String
        public var cpu: String
        public var activations: String
        public var stepsPerSegment: Int
        public var rounds: Int
        public var rows: [Row]
    }

    public enum Failure: Error, CustomStringConvertible {
        case cannotCut(String, String)
        public var description: String {
            switch self {
            case let .cannotCut(path, format): "\(path) as \(format): this model and format do not decode as one region of phases whose projections can read without their arithmetic (a LLaMA-family model with every matrix in an integer block format does)"
            }
        }
    }

    public static func run(path: String, formats: [DType?], activations: ActivationFormat, rounds: Int, steps: Int) throws -> Report {
        precondition(rounds > 0 && steps > 0 && !formats.isEmpty)
        let cuts = DecodeStepParts.cuts, prompt = 16
        var models: [(name: String, model: LlamaModel, bytes: Int, cache: PagedKVCache)] = []
        for format in formats {
            let name = format?.rawValue ?? "stored"
            let loaded = try ModelLoader.load(path: path, weightFormat: format, activations: activations)
            guard let model = loaded.model as? LlamaModel, model.runDecodeSteps(cuts.last!) else { throw Failure.cannotCut(path, name) }
            models.append((name, model, try ThroughputBenchmark.streamed(model).bytes, model.makeCache(capacityTokens: 2 * (prompt + steps + 64))))
        }
        defer { for m in models { _ = m.model.runDecodeSteps(.whole) } }
        let probe = ReadProbe.shared

        struct Segment { var model: Int, cut: Int, placement: String, decodeGBs: Double, readGBs: Double }
        var segments: [Segment] = []
        let runs = models.indices.flatMap { m in cuts.indices.map { (m, $0) } }
        for round in 0...rounds {  // the first round warms up
            for (m, cut) in round % 2 == 0 ? runs : runs.reversed() {
                let (model, bytes, cache) = (models[m].model, models[m].bytes, models[m].cache)
                _ = model.runDecodeSteps(cuts[cut])
                func token(_ i: Int) -> Int { (i * 7919 + 13) % model.config.vocabSize }
                cache.release(sequence: 0)
                try cache.reserve(sequence: 0, length: prompt + steps + 1)
                var batch = Batch()
                batch.appendCausal((0..<prompt).map(token), sequence: 0, start: 0, logits: .last)
                _ = try model.forward(batch, cache: cache)
                let handoff = ThreadPlacement.handoffNanoseconds(pool: probe.pool)
                var stepSeconds = 0.0, reads = InterleavedReads(probe: probe, bytes: bytes)
                for i in 0..<steps {
                    var step = Batch()
                    step.appendCausal([token(prompt + i)], sequence: 0, start: prompt + i, logits: .last)
                    let t0 = Date()
                    _ = try model.forward(step, cache: cache)
                    stepSeconds += Date().timeIntervalSince(t0)
                    reads.read()
                }
                guard round > 0 else { continue }
                segments.append(Segment(model: m, cut: cut, placement: ThreadPlacement.name(handoffNanoseconds: handoff),
                                        decodeGBs: Double(bytes * steps) / stepSeconds / 1e9, readGBs: reads.gbs!))
            }
        }

        func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
        var rows: [Row] = []
        for m in models.indices {
            for cut in cuts.indices {
                let mine = segments.filter { $0.model == m && $0.cut == cut }
                for placement in Set(mine.map(\.placement)).sorted() {
                    let s = mine.filter { $0.placement == placement }
                    rows.append(Row(format: models[m].name, parts: cuts[cut].description, placement: placement, segments: s.count,
                                    decodeGBs: median(s.map(\.decodeGBs)), readGBs: median(s.map(\.readGBs)),
                                    fractionOfConcurrentReads: median(s.map { $0.decodeGBs / $0.readGBs })))
                }
            }
        }
        return Report(model: path, cpu: MachineProbe.cpuName(), activations: activations.rawValue, stepsPerSegment: steps,
                      rounds: rounds, rows: rows)
    }
}
