import FlexServeModels

/// Greedy decoding of the same prompt on a reference model (the CPU) and a GPU model, compared step by
/// step: the tokens, and the logits while both have seen the same tokens.
public struct GreedyComparison: Codable, Sendable {
    public var referenceTokens: [Int]
    public var tokens: [Int]
    /// Leading generated tokens that agree.
    public var identicalPrefix: Int
    /// Largest |logit difference| over the steps both models ran on identical inputs.
    public var maxAbsLogitError: Float
    /// Largest |reference logit| over the same steps, to read the error against.
    public var maxAbsLogit: Float

    public var allIdentical: Bool { identicalPrefix == referenceTokens.count && tokens.count == referenceTokens.count }

    public static func run(reference: CausalLM, candidate: CausalLM, prompt: [Int], newTokens: Int) throws -> GreedyComparison {
        try run(reference: greedy(reference, prompt: prompt, newTokens: newTokens), candidate: candidate, prompt: prompt,
                newTokens: newTokens)
    }

    /// Against a reference decoded once (`greedy`), so several candidates can share it.
    public static func run(reference: (tokens: [Int], logits: [[Float]]), candidate: CausalLM, prompt: [Int],
                           newTokens: Int) throws -> GreedyComparison {
        let (refTokens, refLogits) = reference
        let (tokens, logits) = try greedy(candidate, prompt: prompt, newTokens: newTokens)
        var same = 0
        while same < min(tokens.count, refTokens.count), tokens[same] == refTokens[same] { same += 1 }
        // Step s's logits had identical inputs when the first s generated tokens agree.
        var maxError: Float = 0, maxLogit: Float = 0
        for s in 0..<min(same + 1, logits.count, refLogits.count) {
            for (a, b) in zip(refLogits[s], logits[s]) {
                maxError = max(maxError, abs(a - b))
                maxLogit = max(maxLogit, abs(a))
            }
        }
        return GreedyComparison(referenceTokens: refTokens, tokens: tokens, identicalPrefix: same,
                                maxAbsLogitError: maxError, maxAbsLogit: maxLogit)
    }

    /// `newTokens` greedy tokens after `prompt`, with the logits each was chosen from.
    public static func greedy(_ model: CausalLM, prompt: [Int], newTokens: Int) throws -> (tokens: [Int], logits: [[Float]]) {
        let cache = model.makeCache(capacityTokens: prompt.count + newTokens + 1)
        try cache.reserve(sequence: 0, length: prompt.count + newTokens)
        var batch = Batch()
        batch.appendCausal(prompt, sequence: 0, start: 0, logits: .last)
        var tokens: [Int] = [], rows: [[Float]] = []
        var logits = try model.forward(batch, cache: cache)
        while true {
            let row = logits.rowArray(0)
            rows.append(row)
            let next = argmax(row)
            tokens.append(next)
            if tokens.count == newTokens { break }
            var step = Batch()
            step.appendCausal([next], sequence: 0, start: prompt.count + tokens.count - 1, logits: .last)
            logits = try model.forward(step, cache: cache)
        }
        return (tokens, rows)
    }

    /// The first index of the largest value (ties go to the lower id, as the CPU sampler does).
    public static func argmax(_ row: [Float]) -> Int {
        var best = 0
        for i in row.indices where row[i] > row[best] { best = i }
        return best
    }
}
