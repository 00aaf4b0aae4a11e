import Foundation

/// Decides which drafted tokens the LLM accepts, given the LLM's logits at the root and at every node.
enum TreeVerifier {
    /// Accepted node indices (a root-to-leaf path prefix) and the LLM's own next token after them.
    struct Outcome {
        var accepted: [Int]
        var bonus: Int
    }

    /// Greedy: follow the child whose token is the LLM's argmax; the argmax where no child matches
    /// is the bonus token. The result is exactly greedy decoding's.
    static func greedy(tree: TokenTree, logits: (Int) -> UnsafeBufferPointer<Float>) -> Outcome {
        var accepted: [Int] = []
        var node = TokenTree.root
        while true {
            let best = Sampler.argmax(logits(node))
            guard let child = tree.child(of: node, token: best) else { return Outcome(accepted: accepted, bonus: best) }
            accepted.append(child)
            node = child
        }
    }

    /// SpecInfer's multi-step speculative sampling: at each node try the draws in order, accept
    /// draw x from SSM s with probability min(1, p(x)/q_s(x)); on rejection replace p by
    /// norm(max(0, p − q_s)). If all are rejected, sample from what is left of p. The emitted tokens
    /// are distributed exactly as sampling from the LLM (after temperature, top-k and top-p).
    enum StochasticRule {
        /// Multi-step speculative sampling: lossless.
        case specInfer
        /// The common mistake: after a rejection keep sampling from p instead of the residual. It
        /// over-produces drafted tokens; kept only so tests can show their check detects it.
        case naive
    }

    static func stochastic(tree: TokenTree, config: GenerationConfig, rng: inout SeededRandom, rule: StochasticRule = .specInfer,
                           logits: (Int) -> UnsafeBufferPointer<Float>) -> Outcome {
        var accepted: [Int] = []
        var node = TokenTree.root
        outer: while true {
            var p = Sampler.distribution(logits(node), config: config).dictionary
            for draw in tree.draws[node] ?? [] {
                guard let q = tree.draftDistributions[node]?[draw.ssm] else { continue }
                let qx = q.probability(of: draw.token)
                let px = p[draw.token] ?? 0
                if qx > 0, rng.nextUnit() < min(1, px / qx), let child = tree.child(of: node, token: draw.token) {
                    accepted.append(child)
                    node = child
                    continue outer
                }
                if rule == .specInfer { p = residual(p, minus: q) }
            }
            return Outcome(accepted: accepted, bonus: sample(p, &rng))
        }
    }

    /// norm(max(0, p − q)); if nothing is left (p == q), p itself.
    static func residual(_ p: [Int: Float], minus q: TokenDistribution) -> [Int: Float] {
        var r = p
        for (id, qv) in zip(q.ids, q.probabilities) {
            if let pv = r[id] { r[id] = max(0, pv - qv) }
        }
        let total = r.values.reduce(0, +)
        guard total > 0 else { return p }
        for (id, v) in r { r[id] = v / total }
        return r
    }

    static func sample(_ p: [Int: Float], _ rng: inout SeededRandom) -> Int {
        let ids = p.keys.sorted()
        let total = ids.reduce(Float(0)) { $0 + p[$1]! }
        let u = rng.nextUnit() * total
        var acc: Float = 0
        for id in ids {
            acc += p[id]!
            if u < acc { return id }
        }
        return ids.last { p[$0]! > 0 } ?? ids[0]
    }
}

extension TokenDistribution {
    var dictionary: [Int: Float] {
        var d: [Int: Float] = [:]
        d.reserveCapacity(ids.count)
        for (id, p) in zip(ids, probabilities) where p > 0 { d[id] = p }
        return d
    }
}
