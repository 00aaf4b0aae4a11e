import Foundation
import FlexServeTensor

/// How fast attention computes, apart from memory and from the other threads: one thread, `tokens` query tokens of a
/// model's head shape (SmolLM2's: 9 query heads over 3 KV heads of 64), a causal run whose last token sees `keys`
/// cached keys (one token: a decode step; 16: a prefill's tile; 32: a pair of tiles), the rows read over and over so
/// they come from the caches (a context's 0.1–2 MB of fp32 rows stay in L2 or L3). Each configuration's best pass, as
/// GFLOP/s (two flops per query element and visible key for the scores, two for the values) and GB/s of key and value
/// rows. What `bench phases --prompt-tokens` times inside the decode step, here alone.
public enum AttentionKernelBenchmark {
    public struct Row: Codable, Sendable {
        public var kvCacheType: KVCacheType
        public var keys: Int
        /// Best pass, per forward.
        public var microseconds: Double
        public var gflops: Double
        public var fractionOfFMAPeak: Double
        public var rowGBs: Double
    }

    public struct Report: Codable, Sendable {
        public var cpu: String
        public var fmaGFLOPsPerCore: Double
        public var numHeads: Int, numKVHeads: Int, headDim: Int
        public var tokens: Int
        public var rows: [Row]
    }

    public static func run(keys: [Int], types: [KVCacheType], numHeads: Int = 9, numKVHeads: Int = 3, headDim: Int = 64,
                           tokens: Int = 1, passes: Int = 20) -> Report {
        precondition(numHeads % numKVHeads == 0 && !keys.isEmpty && keys.allSatisfy { $0 >= tokens })
        let pool = ThreadPool(threads: 1)
        let peak = MachineProbe.fmaPeak(pool: pool)
        let maxKeys = keys.max()!
        let q = (0..<(tokens * numHeads * headDim)).map { Float(sin(Double($0) * 0.37)) }
        let out = UnsafeMutablePointer<Float>.allocate(capacity: tokens * numHeads * headDim)
        defer { out.deallocate() }
        struct Configuration { let type: KVCacheType, keys: Int, store: KVStore, slotStart: [Int32], slots: [Int32], storage: (UnsafeMutableRawPointer, UnsafeMutableRawPointer) }
        // Each configuration its own cache, laid out as the paged cache lays out one layer (planar: a head's rows in slot order).
        let configurations = types.flatMap { type in
            keys.map { n -> Configuration in
                let bytes = numKVHeads * n * headDim * type.bytes
                let k = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64), v = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
                let store = KVStore(keys: k, values: v, type: type, layout: .planar(slots: n, headDim: headDim))
                var key = [Float](repeating: 0, count: headDim), value = key
                for s in 0..<n {
                    for h in 0..<numKVHeads {
                        for d in 0..<headDim {
                            key[d] = Float(cos(Double(s * 31 + h * 7 + d) * 0.11))
                            value[d] = Float(sin(Double(s * 17 + h * 5 + d) * 0.13))
                        }
                        store.write(slot: s, head: h, key: key, value: value, headDim: headDim)
                    }
                }
                // Token t of the run sees the slots before it and its own.
                let visible = (0..<tokens).map { n - tokens + 1 + $0 }
                let slotStart = visible.reduce(into: [Int32(0)]) { $0.append($0.last! + Int32($1)) }
                return Configuration(type: type, keys: n, store: store, slotStart: slotStart,
                                     slots: visible.flatMap { (0..<Int32($0)).map { $0 } }, storage: (k, v))
            }
        }
        defer { configurations.forEach { $0.storage.0.deallocate(); $0.storage.1.deallocate() } }
        var best = [Double](repeating: .infinity, count: configurations.count)
        let scale = 1 / Float(headDim).squareRoot()
        for _ in 0..<passes {
            for (i, c) in configurations.enumerated() {
                // About a millisecond of work per timing.
                let repeats = max(1, 4 * maxKeys / (c.keys * tokens))
                let start = DispatchTime.now().uptimeNanoseconds
                for _ in 0..<repeats {
                    Attention.forward(q: q, tokens: tokens, numHeads: numHeads, numKVHeads: numKVHeads, headDim: headDim, kv: c.store,
                                      slotStart: c.slotStart, slots: c.slots, scale: scale, out: out, pool: pool)
                }
                best[i] = min(best[i], Double(DispatchTime.now().uptimeNanoseconds - start) / 1000 / Double(repeats))
            }
        }
        let rows = configurations.enumerated().map { i, c in
            let gflops = 4 * Double(numHeads * headDim * c.slots.count) / best[i] / 1000
            return Row(kvCacheType: c.type, keys: c.keys, microseconds: best[i], gflops: gflops, fractionOfFMAPeak: gflops / peak,
                       rowGBs: 2 * Double(numKVHeads * headDim * c.keys * c.type.bytes) / best[i] / 1000)
        }
        return Report(cpu: MachineProbe.cpuName(), fmaGFLOPsPerCore: peak, numHeads: numHeads, numKVHeads: numKVHeads, headDim: headDim,
                      tokens: tokens, rows: rows)
    }
}
