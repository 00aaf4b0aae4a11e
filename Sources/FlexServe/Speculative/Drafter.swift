import Foundation
import FlexServeModels

/// Runs the SSMs to draft one token tree per request. Each SSM first catches up on the tokens it
/// has not seen (the accepted ones of the last step, or the whole prompt), then expands the tree
/// depth by depth with one batched forward per depth, the tree mask letting each node see only
/// its ancestors. Greedy requests take each node's top-k children (beam search); sampling requests
/// draw children from the SSM's distribution, which stochastic verification needs. Greedy requests'
/// trees also get the prompt-lookup paths when the shape asks for them.
final class Drafter {
    let ssms: [any CausalLM]
    let caches: [PagedKVCache]
    let shape: TreeShape

    init(ssms: [any CausalLM], caches: [PagedKVCache], shape: TreeShape) {
        self.ssms = ssms
        self.caches = caches
        self.shape = shape
    }

    func draft(_ requests: [Request]) throws -> [TokenTree] {
        var merged = [TokenTree](repeating: TokenTree(), count: requests.count)
        if shape.depth > 0 {
            for s in ssms.indices {
                let trees = try draft(requests, ssm: s)
                for i in requests.indices {
                    if s == 0 { merged[i] = trees[i] } else { merged[i].merge(trees[i]) }
                }
            }
        }
        let lookup = PromptLookup(length: shape.promptLookup)
        // Sampling requests need every draft drawn from a distribution (stochastic verification).
        for (i, r) in requests.enumerated() where !r.config.doSample {
            for path in lookup.continuations(of: r.tokens) { merged[i].addPath(path) }
        }
        return merged
    }

    private func draft(_ requests: [Request], ssm s: Int) throws -> [TokenTree] {
        let model = ssms[s], cache = caches[s]
        var batch = Batch()
        for r in requests {
            try cache.reserve(sequence: r.guid, length: r.tokens.count + shape.maxNodes)
            let start = r.ssmCommitted[s]
            // An SSM with a trimmed vocabulary cannot embed the LLM's rarer tokens: it reads the id its
            // config names instead (token 0 if it names none).
            let vocab = model.config.vocabSize, oov = model.config.draftOOVTokenID ?? 0
            let ids = r.tokens[start...].map { $0 < vocab ? $0 : oov }
            batch.appendCausal(ids, sequence: r.guid, start: start, logits: .last)
        }
        var logits = try model.forward(batch, cache: cache)
        for r in requests {
            r.ssmCommitted[s] = r.tokens.count
            cache.cacheFullBlocks(sequence: r.guid, tokens: r.tokens, committed: r.tokens.count)
        }

        var trees = [TokenTree](repeating: TokenTree(), count: requests.count)
        // Per request: the nodes to expand at this depth, each with its logits row and cumulative log-probability.
        var frontier: [[(node: Int, row: Int, score: Float)]] = requests.indices.map { i in [(node: TokenTree.root, row: i, score: Float(0))] }
        for d in 0..<shape.depth {
            let k = shape.expansion[min(d, shape.expansion.count - 1)]
            var next: [[(node: Int, score: Float)]] = Array(repeating: [], count: requests.count)
            for (i, r) in requests.enumerated() {
                for f in frontier[i] {
                    let row = logits.row(f.row)
                    defer { withExtendedLifetime(logits) {} }
                    if r.config.doSample {
                        let q = Sampler.distribution(row, config: r.config)
                        trees[i].draftDistributions[f.node, default: [:]][s] = q
                        for _ in 0..<k {
                            let token = q.sample(&r.rng)
                            trees[i].draws[f.node, default: []].append(TokenTree.Draw(token: token, ssm: s))
                            let child = trees[i].addChild(of: f.node, token: token)
                            if !next[i].contains(where: { $0.node == child }) {
                                next[i].append((child, f.score + Foundation.log(q.probability(of: token))))
                            }
                        }
                    } else {
                        let logNorm = logSumExp(row)
                        for token in Sampler.topIndices(row, k: min(k, row.count)) {
                            let child = trees[i].addChild(of: f.node, token: token)
                            next[i].append((child, f.score + row[token] - logNorm))
                        }
                    }
                }
                next[i].sort { $0.score > $1.score }
                if next[i].count > shape.maxWidth { next[i].removeSubrange(shape.maxWidth...) }
            }
            if d == shape.depth - 1 { break }
            batch = Batch()
            frontier = Array(repeating: [], count: requests.count)
            for (i, r) in requests.enumerated() {
                let base = r.tokens.count
                for n in next[i] {
                    let node = trees[i].nodes[n.node]
                    frontier[i].append((n.node, batch.count, n.score))
                    batch.tokens.append(Batch.Token(
                        id: node.token, position: base - 1 + node.depth, sequence: r.guid, cacheIndex: base + n.node,
                        visiblePrefix: base, visibleExtra: trees[i].path(to: n.node).map { base + $0 }, wantsLogits: true))
                }
            }
            if batch.count == 0 { break }
            logits = try model.forward(batch, cache: cache)
        }
        for r in requests { cache.truncate(sequence: r.guid, length: r.tokens.count) }
        return trees
    }
}

func logSumExp(_ row: UnsafeBufferPointer<Float>) -> Float {
    var m = -Float.infinity
    for v in row where v > m { m = v }
    var sum: Float = 0
    for v in row { sum += Foundation.exp(v - m) }
    return m + Foundation.log(sum)
}
