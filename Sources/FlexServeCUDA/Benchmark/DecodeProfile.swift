import Foundation
import FlexServeModels
import FlexServeTensor

/// Where a batch-1 decode step's time goes, measured with CUDA events on the device's stream:
/// (a) each weight product alone, for the model's real shapes, through every GEMV launch configuration and cuBLAS
///     (each call reads a different layer's matrix, so L2 does not serve repeats), as GB/s of weights;
/// (b) one decode step split by kernel category (an event before each part of the step, intervals summed over
///     layers), once with the step queued behind a spin kernel (the GPU runs it back to back: GPU time only) and
///     once as launched (GPU time plus the gaps where the GPU waited for the host);
/// (c) wall time per step (forward + host argmax, as the engine decodes) minus the GPU-only time: host overhead.
public enum DecodeProfile {
    public struct ShapeTiming: Codable, Sendable {
        public var shape: String
        public var n: Int, k: Int
        public var kernel: String
        public var calls: Int
        public var microsecondsPerCall: Double
        public var gigabytesPerSecond: Double
        /// Largest |this kernel − cuBLAS| over the outputs of one product with a random input, and the largest
        /// |cuBLAS output| (a GEMV variant that computes the wrong thing shows here); nil for cuBLAS itself.
        public var maxAbsDifferenceFromCUBLAS: Float?
        public var maxAbsOutput: Float?
    }

    public struct Category: Codable, Sendable, Equatable {
        public var name: String
        public var milliseconds: Double
        public var intervals: Int
    }

    public struct Execution: Codable, Sendable {
        /// "cublas" or the GEMV variant.
        public var kernel: String
        /// GPU-only step time (queued behind a spin) by category, and their sum (upload to logits on the host).
        public var queued: [Category]
        public var queuedMilliseconds: Double
        /// The same, as launched (GPU waits for the host included).
        public var eager: [Category]
        public var eagerMilliseconds: Double
        /// Host time to queue the step's kernels (from the embedding's launch to the logits copy's).
        public var hostEncodeMilliseconds: Double
        /// Wall time per decode step (forward + argmax), without events, graphs off and on.
        public var wallMilliseconds: Double
        public var wallGraphsMilliseconds: Double?
        /// wall − GPU-only, graphs off and on.
        public var hostOverheadMilliseconds: Double
        public var hostOverheadGraphsMilliseconds: Double?
    }

    public struct Report: Codable, Sendable {
        public var device: String
        public var dataType: String
        public var attention2: Bool
        /// The model's execution options as `CUDALlama.Options.summary` writes them (attention3, norm/rope kernels).
        public var execution: String?
        public var copyBytesPerSecond: Double
        public var weightBytes: Int
        public var rooflineMilliseconds: Double
        public var contextTokens: Int
        public var shapes: [ShapeTiming]
        public var executions: [Execution]
    }

    /// Sums the intervals between consecutive marks by the category of the interval's first mark, in order of first
    /// appearance. `times` are milliseconds from any fixed origin, one per mark; the last mark only closes the last
    /// interval. Categories in `excluded` are left out.
    public static func aggregate(marks: [String], times: [Double], excluded: Set<String> = []) -> [Category] {
        precondition(marks.count == times.count)
        var order: [String] = []
        var sums: [String: (Double, Int)] = [:]
        for i in 0..<max(0, marks.count - 1) where !excluded.contains(marks[i]) {
            if sums[marks[i]] == nil { order.append(marks[i]) }
            let (ms, count) = sums[marks[i]] ?? (0, 0)
            sums[marks[i]] = (ms + times[i + 1] - times[i], count + 1)
        }
        return order.map { Category(name: $0, milliseconds: sums[$0]!.0, intervals: sums[$0]!.1) }
    }

    static let spinSource = #"""
extern "C" __global__ void spin(unsigned long long ns) {
  unsigned long long t0, t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  do { asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); } while (t - t0 < ns);
}
"""#

    /// CUDA events, created on first use and reused.
    final class Events {
        let device: CUDADevice
        var events: [OpaquePointer?] = []
        var used = 0
        init(device: CUDADevice) { self.device = device }
        deinit { for e in events { _ = device.driver.cuEventDestroy(e) } }

        func reset() { used = 0 }
        func record() throws {
            let d = device.driver
            if used == events.count {
                var e: OpaquePointer?
                try d.check(d.cuEventCreate(&e, 0), "cuEventCreate")
                events.append(e)
            }
            try d.check(d.cuEventRecord(events[used], device.stream), "cuEventRecord")
            used += 1
        }
        /// Milliseconds of each recorded event after the first.
        func times() throws -> [Double] {
            let d = device.driver
            guard used > 0 else { return [] }
            try d.check(d.cuEventSynchronize(events[used - 1]), "cuEventSynchronize")
            return try (0..<used).map { i in
                var ms: Float = 0
                try d.check(d.cuEventElapsedTime(&ms, events[0], events[i]), "cuEventElapsedTime")
                return Double(ms)
            }
        }
    }

    /// Profiles `model` (batch 1, `context` tokens of prefix) for cuBLAS and each GEMV variant in `variants`.
    public static func run(_ model: CUDALlama, copyBytesPerSecond: Double, context: Int = 256, variants: [String]? = nil,
                           shapeRepeats: Int = 3, steps: Int = 32, log: (String) -> Void = { _ in }) throws -> Report {
        let device = model.device
        try device.makeCurrent()
        let spinModule = try device.compiler().module(named: "flexserve_profile_spin", source: spinSource)
        func spin(milliseconds: Double) throws {
            try spinModule.launch("spin", grid: (1, 1, 1), block: 1, [.int64(Int64(milliseconds * 1e6))])
        }
        let variants = variants ?? GEMVKernel.variantNames
        let c = model.config, type = model.dataType
        let H = c.hiddenSize, qDim = c.numHeads * c.headDim, kvDim = c.numKVHeads * c.headDim, I = c.intermediateSize
        let events = Events(device: device)

        // (a) Products alone, each call on the next layer's matrix.
        let shapes: [(name: String, n: Int, k: Int, matrices: [DevicePointer])] = [
            ("qkv", qDim + 2 * kvDim, H, model.layers.map { $0.address($0.qkv) }),
            ("o-proj", H, qDim, model.layers.map { $0.address($0.wo) }),
            ("gate/up", 2 * I, H, model.layers.map { $0.address($0.gateUp) }),
            ("down", H, I, model.layers.map { $0.address($0.down) }),
            ("lm-head", c.vocabSize, H, [model.globals.pointer + DevicePointer(model.lmHead.offset)]),
        ]
        let maxK = shapes.map(\.k).max()!, maxN = shapes.map(\.n).max()!
        let x = try device.allocate(bytes: maxK * type.bytes), y = try device.allocate(bytes: maxN * 4)
        // A random input (the timings do not depend on it; the comparison with cuBLAS does).
        var rng = SystemRandomNumberGenerator()
        let inputs = (0..<maxK).map { _ in Float.random(in: -1...1, using: &rng) }
        switch type {
        case .fp32: try inputs.withUnsafeBytes { try device.copy(toDevice: x.pointer, from: $0.baseAddress!, bytes: $0.count) }
        case .fp16: try inputs.map(floatToF16).withUnsafeBytes { try device.copy(toDevice: x.pointer, from: $0.baseAddress!, bytes: $0.count) }
        case .bf16: try inputs.map(floatToBF16).withUnsafeBytes { try device.copy(toDevice: x.pointer, from: $0.baseAddress!, bytes: $0.count) }
        }
        var references: [String: [Float]] = [:]
        var shapeTimings: [ShapeTiming] = []
        for kernel in ["cublas"] + variants {
            let gemv = kernel == "cublas" ? nil : try GEMVKernel(device: device, type: type, variant: kernel)
            for shape in shapes {
                func call(_ w: DevicePointer) throws {
                    if let gemv {
                        try gemv.linear(x: x.pointer, w: w, out: y.pointer, tokens: 1, n: shape.n, k: shape.k, accumulate: false)
                    } else {
                        try model.blas.linear(x: x.pointer, w: w, inputType: type.blasType, out: y.pointer, tokens: 1,
                                              n: shape.n, k: shape.k)
                    }
                }
                for w in shape.matrices.prefix(2).reversed() { try call(w) }  // warm-up (module load, cuBLAS heuristics)
                // The first matrix's product, last called above, against cuBLAS's.
                var out = [Float](repeating: 0, count: shape.n)
                try out.withUnsafeMutableBytes { try device.copy(toHost: $0.baseAddress!, from: y.pointer, bytes: $0.count) }
                try device.synchronize()
                var difference: Float?, largest: Float?
                if let reference = references[shape.name] {
                    difference = zip(out, reference).map { abs($0 - $1) }.max() ?? 0
                    largest = reference.map(abs).max() ?? 0
                } else if gemv == nil {
                    references[shape.name] = out
                }
                let calls = max(shapeRepeats * shape.matrices.count, 16)
                try spin(milliseconds: 5)
                events.reset()
                try events.record()
                for i in 0..<calls { try call(shape.matrices[i % shape.matrices.count]) }
                try events.record()
                let ms = try events.times().last!
                let us = ms * 1000 / Double(calls)
                let bytes = Double(shape.n * shape.k * type.bytes)
                shapeTimings.append(ShapeTiming(shape: shape.name, n: shape.n, k: shape.k, kernel: kernel, calls: calls,
                                                microsecondsPerCall: us, gigabytesPerSecond: bytes / (us * 1e-6) / 1e9,
                                                maxAbsDifferenceFromCUBLAS: difference, maxAbsOutput: largest))
                log(String(format: "%-8@ %-8@ %6d x %5d: %8.2f us  %7.0f GB/s%@", kernel as NSString, shape.name as NSString,
                           shape.n, shape.k, us, bytes / (us * 1e-6) / 1e9,
                           (difference.map { String(format: "  max |diff vs cuBLAS| %.3g (max |out| %.3g)", $0, largest ?? 0) } ?? "") as NSString))
            }
        }

        // (b), (c) Decode steps at a fixed position after `context` tokens (each step rewrites the same slot).
        let vocab = c.vocabSize
        let cache = model.makeCache(capacityTokens: context + 2)
        try cache.reserve(sequence: 0, length: context + 1)
        let savedGraphs = model.options.graphs
        let savedVariant: String? = model.options.gemv ? model.options.gemvVariant : nil
        defer { try? model.setExecution(gemvVariant: savedVariant, graphs: savedGraphs) }
        try model.setExecution(gemvVariant: nil, graphs: false)
        var prefill = Batch()
        prefill.appendCausal((0..<context).map { ($0 * 7919 + 13) % vocab }, sequence: 0, start: 0, logits: .last)
        var logits = try model.forward(prefill, cache: cache)
        func step() throws {
            let next = GreedyComparison.argmax(logits.rowArray(0))
            var b = Batch()
            b.appendCausal([next], sequence: 0, start: context, logits: .last)
            logits = try model.forward(b, cache: cache)
        }
        func wall(_ n: Int) throws -> Double {
            for _ in 0..<4 { try step() }
            let start = Date()
            for _ in 0..<n { try step() }
            return Date().timeIntervalSince(start) * 1000 / Double(n)
        }

        var executions: [Execution] = []
        for kernel in ["cublas"] + variants {
            try model.setExecution(gemvVariant: kernel == "cublas" ? nil : kernel, graphs: false)
            let wallEager = try wall(steps)
            // Marked steps: 3 queued, 3 eager; the median step by total of each kind is kept.
            func marked(queued: Bool) throws -> (categories: [Category], total: Double, hostEncode: Double) {
                var runs: [([Category], Double, Double)] = []
                for _ in 0..<3 {
                    var marks: [String] = []
                    var encodeStart: Date?, encodeEnd: Date?
                    events.reset()
                    model.profileMark = { name in
                        if name == "embed" {
                            encodeStart = Date()
                            if queued {
                                marks.append("spin")
                                try events.record()
                                try spin(milliseconds: 20)
                            }
                        }
                        if name == "logits-copy" { encodeEnd = Date() }
                        marks.append(name)
                        try events.record()
                    }
                    defer { model.profileMark = nil }
                    try step()
                    let times = try events.times()
                    let cats = aggregate(marks: marks, times: times, excluded: ["spin"])
                    let total = cats.reduce(0) { $0 + $1.milliseconds }
                    let host = (encodeEnd ?? Date()).timeIntervalSince(encodeStart ?? Date()) * 1000
                    runs.append((cats, total, host))
                }
                runs.sort { $0.1 < $1.1 }
                return runs[runs.count / 2]
            }
            let q = try marked(queued: true)
            let e = try marked(queued: false)
            var wallGraphs: Double?
            if device.driver.graphs != nil {
                try model.setExecution(gemvVariant: kernel == "cublas" ? nil : kernel, graphs: true)
                wallGraphs = try wall(steps)
                try model.setExecution(gemvVariant: kernel == "cublas" ? nil : kernel, graphs: false)
            }
            let ex = Execution(kernel: kernel, queued: q.categories, queuedMilliseconds: q.total, eager: e.categories,
                               eagerMilliseconds: e.total, hostEncodeMilliseconds: q.hostEncode, wallMilliseconds: wallEager,
                               wallGraphsMilliseconds: wallGraphs, hostOverheadMilliseconds: wallEager - q.total,
                               hostOverheadGraphsMilliseconds: wallGraphs.map { $0 - q.total })
            log(String(format: "%-8@ step: GPU-only %.3f ms, as launched %.3f ms, host encode %.3f ms, wall %.3f ms%@",
                       kernel as NSString, q.total, e.total, q.hostEncode, wallEager,
                       (wallGraphs.map { String(format: ", wall with graphs %.3f ms", $0) } ?? "") as NSString))
            executions.append(ex)
        }
        return Report(device: device.name, dataType: type.rawValue, attention2: model.options.attention2, execution: model.options.summary,
                      copyBytesPerSecond: copyBytesPerSecond, weightBytes: model.weightBytes,
                      rooflineMilliseconds: Double(model.weightBytes) / copyBytesPerSecond * 1000, contextTokens: context,
                      shapes: shapeTimings, executions: executions)
    }
}
