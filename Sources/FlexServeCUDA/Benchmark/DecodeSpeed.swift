import Foundation
import FlexServeModels

/// Batch-1 speed of a GPU model against the memory roofline: the device-to-device copy bandwidth,
/// decode steps per second, and the cost of one tree-verification step of k tokens relative to decoding.
public enum DecodeSpeed {
    /// Bytes per second a device-to-device copy moves, reading and writing counted (the bandwidth a
    /// weight-streaming GEMV can at best use).
    public static func copyBandwidth(device: CUDADevice, bytes: Int = 1 << 30, repeats: Int = 20) throws -> Double {
        try device.makeCurrent()
        let a = try device.allocate(bytes: bytes), b = try device.allocate(bytes: bytes)
        try device.zero(a.pointer, bytes: bytes)
        try device.copy(onDevice: b.pointer, from: a.pointer, bytes: bytes)  // warm-up
        let timer = try CUDAEventTimer(device: device)
        try timer.recordStart()
        for _ in 0..<repeats { try device.copy(onDevice: b.pointer, from: a.pointer, bytes: bytes) }
        try timer.recordEnd()
        let seconds = try timer.elapsedMilliseconds() / 1000
        return Double(2 * bytes * repeats) / seconds
    }

    public struct Decode: Codable, Sendable {
        public var promptTokens: Int
        public var steps: Int
        public var seconds: Double
        public var stepsPerSecond: Double { Double(steps) / seconds }
    }

    /// Prefills `promptTokens` arbitrary tokens, then times `steps` greedy single-token steps (host argmax included:
    /// what the engine does per step).
    public static func decode(_ model: CausalLM, promptTokens: Int, steps: Int, warmup: Int = 8) throws -> Decode {
        let vocab = model.config.vocabSize
        let prompt = (0..<promptTokens).map { ($0 * 7919 + 13) % vocab }
        let cache = model.makeCache(capacityTokens: promptTokens + warmup + steps + 1)
        try cache.reserve(sequence: 0, length: promptTokens + warmup + steps)
        var batch = Batch()
        batch.appendCausal(prompt, sequence: 0, start: 0, logits: .last)
        var logits = try model.forward(batch, cache: cache)
        var length = promptTokens
        func step() throws {
            let next = GreedyComparison.argmax(logits.rowArray(0))
            var b = Batch()
            b.appendCausal([next], sequence: 0, start: length, logits: .last)
            logits = try model.forward(b, cache: cache)
            length += 1
        }
        for _ in 0..<warmup { try step() }
        let start = Date()
        for _ in 0..<steps { try step() }
        return Decode(promptTokens: promptTokens, steps: steps, seconds: Date().timeIntervalSince(start))
    }

    public struct Verify: Codable, Sendable {
        public var treeTokens: Int
        public var milliseconds: Double
    }

    /// Mean time of one forward over a token tree of `size` nodes (a binary tree: node i's parent is (i-1)/2)
    /// after a committed prefix of `prefix` tokens, all nodes asking for logits, as the verifier asks.
    /// Size 1 is a decode step.
    public static func verify(_ model: CausalLM, prefix: Int, sizes: [Int], repeats: Int = 10) throws -> [Verify] {
        let vocab = model.config.vocabSize
        let largest = sizes.max() ?? 1
        let cache = model.makeCache(capacityTokens: prefix + largest + 1)
        try cache.reserve(sequence: 0, length: prefix + largest)
        var prefill = Batch()
        prefill.appendCausal((0..<prefix).map { ($0 * 31 + 5) % vocab }, sequence: 0, start: 0, logits: .none)
        _ = try model.forward(prefill, cache: cache)
        return try sizes.map { size in
            var batch = Batch()
            var depth = [Int](repeating: 0, count: size)
            for i in 0..<size {
                var ancestors: [Int] = []
                var node = i
                while true {
                    ancestors.append(prefix + node)
                    if node == 0 { break }
                    node = (node - 1) / 2
                }
                depth[i] = i == 0 ? 0 : depth[(i - 1) / 2] + 1
                batch.tokens.append(Batch.Token(id: (i * 101 + 7) % vocab, position: prefix + depth[i], sequence: 0,
                                                cacheIndex: prefix + i, visiblePrefix: prefix,
                                                visibleExtra: ancestors.reversed(), wantsLogits: true))
            }
            // Warm-up (scratch growth; with CUDA graphs, the shape's direct first step and its capture).
            for _ in 0..<2 { _ = try model.forward(batch, cache: cache) }
            let start = Date()
            for _ in 0..<repeats { _ = try model.forward(batch, cache: cache) }
            return Verify(treeTokens: size, milliseconds: Date().timeIntervalSince(start) * 1000 / Double(repeats))
        }
    }
}
