import Foundation
import FlexServeModels
import FlexServeTensor

/// Perplexity of a text under a model with a sliding window, as transformers' perplexity guide
/// computes it: windows of `context` tokens advancing by `stride`; each window scores only the
/// tokens not scored by the previous one, with the overlap as context.
public enum Perplexity {
    public struct Result: Codable, Sendable {
        public var perplexity: Double
        public var tokens: Int
        public var meanNLL: Double
    }

    public static func evaluate(model: any CausalLM, tokens: [Int], context: Int = 512, stride: Int = 256,
                                kvCacheType: KVCacheType = .f32) throws -> Result {
        guard tokens.count >= 2 else { throw GenerationError.invalidSetting("perplexity needs at least 2 tokens") }
        guard context >= 2, stride >= 1, stride <= context else {
            throw GenerationError.invalidSetting("need 2 <= context and 1 <= stride <= context")
        }
        var nll = 0.0
        var scored = 0
        var previousEnd = 0
        var begin = 0
        while previousEnd < tokens.count {
            let end = min(begin + context, tokens.count)
            let window = Array(tokens[begin..<end])
            let cache = model.makeCache(capacityTokens: window.count, type: kvCacheType)
            try cache.reserve(sequence: 0, length: window.count)
            var batch = Batch()
            batch.appendCausal(window, sequence: 0, start: 0, logits: .all)
            let logits = try model.forward(batch, cache: cache)
            // Score targets at absolute positions max(previousEnd, begin + 1) ..< end.
            for target in max(previousEnd, begin + 1)..<end {
                nll += logits.withRow(target - 1 - begin) { row in Double(logSumExp(row) - row[tokens[target]]) }
                scored += 1
            }
            previousEnd = end
            if end == tokens.count { break }
            begin += stride
        }
        let mean = nll / Double(max(1, scored))
        return Result(perplexity: Foundation.exp(mean), tokens: scored, meanNLL: mean)
    }
}
