import Foundation
import FlexServeCUDA
import FlexServeModels

/// GPU steps: the rows whose token `Sampler.next` would draw (a prompt's first token, incremental decoding) are
/// sampled on the GPU (`CUDALlama.forward(_:cache:sampling:)`), so their logits rows never cross to the host. The
/// uniform each draw needs comes from the request's own seeded generator, drawn here exactly when the CPU sampler
/// would draw it (sampling requests only), so a seed drives the same sequence of draws on both backends.
/// `FLEXSERVE_CUDA_SAMPLING=0` turns it off (every row then goes to the host as before).
enum DeviceSampling {
    static let enabled = ProcessInfo.processInfo.environment["FLEXSERVE_CUDA_SAMPLING"] != "0"

    /// Runs the step; returns its logits and the tokens sampled on the GPU by logits row (empty off the GPU).
    static func forward(_ llm: any CausalLM, _ batch: Batch, cache: PagedKVCache,
                        rows: [(row: Int, request: Request)]) throws -> (Logits, [Int: Int]) {
        guard enabled, let gpu = llm as? CUDALlama, !rows.isEmpty else { return (try llm.forward(batch, cache: cache), [:]) }
        var requests: [RowSampling] = []
        for (row, r) in rows {
            let c = r.config
            // A temperature the GPU kernel cannot take stays on the host path (and its draw with it).
            guard !c.doSample || c.temperature > 0 else { continue }
            requests.append(RowSampling(row: row, greedy: !c.doSample, temperature: c.temperature, topK: c.topK, topP: c.topP,
                                        uniform: c.doSample ? r.rng.nextUnit() : 0))
        }
        let (logits, tokens) = try gpu.forward(batch, cache: cache, sampling: requests)
        return (logits, Dictionary(uniqueKeysWithValues: zip(requests.map(\.row), tokens)))
    }
}
