import Foundation
import FlexServeModels
import FlexServeTokenizers

/// The engine's scheduler. A dedicated thread runs steps while there is work: each step admits
/// waiting requests that fit (requests slots and KV blocks), drafts trees for decoding requests
/// when SSMs are present, packs decode tokens, tree nodes and prompt chunks of every running
/// request into one LLM batch up to `maxTokensPerBatch`, runs one forward, then samples or
/// verifies, commits KV entries and streams the new tokens. Requests join and leave between steps.
final class RequestManager: @unchecked Sendable {
    let llm: any CausalLM
    let cache: PagedKVCache
    let drafter: Drafter?
    let tokenizer: Tokenizer
    let eos: Set<Int>
    let options: EngineOptions

    private let condition = NSCondition()
    private var waiting: [Request] = []
    private var running: [Request] = []
    private var nextGuid = 1_000_000
    private var reservedBlocks = 0
    private var stopped = false
    private(set) var metrics = EngineMetrics()

    init(llm: any CausalLM, ssms: [any CausalLM], tokenizer: Tokenizer, eos: Set<Int>, options: EngineOptions) {
        self.llm = llm
        self.tokenizer = tokenizer
        self.eos = eos
        self.options = options
        let capacity = options.kvCacheTokens
            ?? options.maxRequestsPerBatch * (options.maxSeqLength + options.tree.maxTreeNodes(ssms: ssms.count) + 1)
        func makeCache(_ model: any CausalLM) -> PagedKVCache {
            let cache = model.makeCache(capacityTokens: capacity, blockSize: options.kvBlockSize, type: options.kvCacheType)
            cache.cachesPrefixes = options.prefixCaching
            return cache
        }
        cache = makeCache(llm)
        drafter = ssms.isEmpty && options.tree.promptLookup == 0 ? nil : Drafter(ssms: ssms, caches: ssms.map(makeCache), shape: options.tree)
        let thread = Thread { [weak self] in self?.run() }
        thread.name = "flexserve-engine"
        thread.stackSize = 8 << 20
        thread.start()
    }

    var treeNodes: Int { drafter.map { options.tree.maxTreeNodes(ssms: $0.ssms.count) } ?? 0 }

    /// A request to queue: its prompt, settings and where its events go (on the engine thread).
    struct Submission {
        let text: String
        let promptIDs: [Int]
        let config: GenerationConfig
        let emit: (RequestEvent) -> Void
    }

    /// Queues a request; its events arrive through `emit` on the engine thread.
    func submit(text: String, promptIDs: [Int], config: GenerationConfig,
                emit: @escaping (RequestEvent) -> Void) throws -> Request {
        try submit([Submission(text: text, promptIDs: promptIDs, config: config, emit: emit)])[0]
    }

    /// Queues requests together, all or none: they reach the queue at once, so the engine admits them at one step boundary
    /// as far as its slots and KV blocks allow (FlexFlow's `generate` of a list registers every prompt before it runs),
    /// instead of starting with whichever arrived first.
    func submit(_ batch: [Submission]) throws -> [Request] {
        let limits = try batch.map(tokenLimit)
        condition.lock()
        defer { condition.unlock() }
        guard !stopped else { throw GenerationError.engineFailure("engine is shut down") }
        let requests = zip(batch, limits).map { s, limit in
            nextGuid += 1
            let request = Request(guid: nextGuid, inputText: s.text, promptIDs: s.promptIDs, config: s.config,
                                  maxNewTokens: limit, ssmCount: drafter?.ssms.count ?? 0, tokenizer: tokenizer, emit: s.emit)
            request.reservedBlocks = blocks(for: request)
            return request
        }
        if let large = requests.first(where: { $0.reservedBlocks > cache.blockCount }) {
            throw GenerationError.invalidSetting("request needs \(large.reservedBlocks) KV blocks, the cache has \(cache.blockCount): raise kvCacheTokens or lower max tokens")
        }
        waiting.append(contentsOf: requests)
        metrics.queueDepth = waiting.count
        condition.signal()
        return requests
    }

    /// The most tokens `s` may generate; throws where its prompt or settings are invalid.
    private func tokenLimit(_ s: Submission) throws -> Int {
        try s.config.validate()
        guard !s.promptIDs.isEmpty else { throw GenerationError.emptyPrompt }
        guard s.promptIDs.count < options.maxSeqLength else {
            throw GenerationError.promptTooLong(tokens: s.promptIDs.count, limit: options.maxSeqLength - 1)
        }
        if let bad = s.promptIDs.first(where: { $0 < 0 || $0 >= llm.config.vocabSize }) {
            throw GenerationError.invalidSetting("token id \(bad) is outside the vocabulary (0..<\(llm.config.vocabSize))")
        }
        var limit = options.maxSeqLength - s.promptIDs.count
        if let n = s.config.maxNewTokens { limit = min(limit, n) }
        if let n = s.config.maxLength { limit = min(limit, max(0, n - s.promptIDs.count)) }
        return limit
    }

    func shutdown() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    func snapshotMetrics() -> EngineMetrics {
        condition.lock(); defer { condition.unlock() }
        var m = metrics
        m.freeKVBlocks = cache.freeBlockCount
        m.totalKVBlocks = cache.blockCount
        m.running = running.count
        m.queueDepth = waiting.count
        return m
    }

    private func blocks(for r: Request) -> Int {
        let tokens = r.promptIDs.count + r.maxNewTokens + treeNodes + 1
        return (tokens + options.kvBlockSize - 1) / options.kvBlockSize
    }

    private func run() {
        while true {
            condition.lock()
            while !stopped && waiting.isEmpty && running.isEmpty { condition.wait() }
            if stopped && running.isEmpty && waiting.isEmpty { condition.unlock(); return }
            admit()
            condition.unlock()
            step()
        }
    }

    /// Moves waiting requests into the batch while slots and KV blocks last (first come, first served).
    private func admit() {
        while let r = waiting.first, running.count < options.maxRequestsPerBatch,
              reservedBlocks + r.reservedBlocks <= cache.blockCount {
            waiting.removeFirst()
            reservedBlocks += r.reservedBlocks
            // At least the prompt's last token is computed: its logits give the first new token.
            r.committed = cache.adoptCachedPrefix(sequence: r.guid, tokens: r.tokens, limit: r.tokens.count - 1)
            r.cachedPromptTokens = r.committed
            for (s, ssmCache) in (drafter?.caches ?? []).enumerated() {
                r.ssmCommitted[s] = ssmCache.adoptCachedPrefix(sequence: r.guid, tokens: r.tokens, limit: r.tokens.count - 1)
            }
            running.append(r)
        }
        metrics.queueDepth = waiting.count
    }

    private func finish(_ r: Request, _ reason: FinishReason) {
        r.finishReason = reason
        cache.release(sequence: r.guid)
        drafter?.caches.forEach { $0.release(sequence: r.guid) }
        let tail = r.text.flush()
        if !tail.isEmpty { r.emit(.piece(GenerationPiece(text: tail, tokens: [], finishReason: nil))) }
        r.emit(.piece(GenerationPiece(text: "", tokens: [], finishReason: reason)))
        let result = r.result()
        condition.lock()
        reservedBlocks -= r.reservedBlocks
        metrics.record(result)
        condition.unlock()
        r.emit(.finished(result))
    }

    private func step() {
        for r in running where r.isCancelled { finish(r, .cancelled) }
        removeFinished()
        guard !running.isEmpty else { return }
        do {
            try stepBatch()
        } catch {
            // A failed step leaves the caches in an unknown state for these requests: fail them, keep serving.
            for r in running {
                cache.release(sequence: r.guid)
                drafter?.caches.forEach { $0.release(sequence: r.guid) }
                r.finishReason = .cancelled
                condition.lock(); reservedBlocks -= r.reservedBlocks; condition.unlock()
                r.emit(.failed(GenerationError.engineFailure("\(error)")))
            }
        }
        removeFinished()
    }

    private func removeFinished() {
        condition.lock()
        running.removeAll { $0.finishReason != nil }
        condition.unlock()
    }

    private func stepBatch() throws {
        var budget = options.maxTokensPerBatch
        // Decoding requests first (each needs its last token plus a tree, unless the batch is too large to draft for),
        // then prompt chunks.
        let drafting = running.count(where: { !$0.isPrefilling }) < (options.tree.disableAtBatchSize ?? .max) ? drafter : nil
        var decoding: [Request] = []
        for r in running where !r.isPrefilling {
            let need = 1 + (drafting == nil ? 0 : treeNodes)
            if budget >= need || decoding.isEmpty {
                decoding.append(r)
                budget -= need
            }
        }
        let draftStart = Date()
        let trees = try drafting?.draft(decoding) ?? Array(repeating: TokenTree(), count: decoding.count)
        let draftSeconds = Date().timeIntervalSince(draftStart)

        var batch = Batch()
        var plan: [(request: Request, firstRow: Int, entries: Int, tree: TokenTree?)] = []
        var row = 0
        for (r, tree) in zip(decoding, trees) {
            let base = r.committed
            try cache.reserve(sequence: r.guid, length: base + 1 + tree.nodes.count)
            batch.tokens.append(Batch.Token(id: r.tokens[base], position: base, sequence: r.guid, cacheIndex: base,
                                            visiblePrefix: base + 1, wantsLogits: true))
            for (i, node) in tree.nodes.enumerated() {
                batch.tokens.append(Batch.Token(
                    id: node.token, position: base + node.depth, sequence: r.guid, cacheIndex: base + 1 + i,
                    visiblePrefix: base + 1, visibleExtra: tree.path(to: i).map { base + 1 + $0 }, wantsLogits: true))
            }
            plan.append((r, row, 1 + tree.nodes.count, tree))
            row += 1 + tree.nodes.count
        }
        for r in running where r.isPrefilling {
            guard budget > 0 || batch.count == 0 else { break }
            let end = min(r.tokens.count, r.committed + max(1, budget))
            let chunk = Array(r.tokens[r.committed..<end])
            try cache.reserve(sequence: r.guid, length: end)
            let finishesPrompt = end == r.tokens.count
            batch.appendCausal(chunk, sequence: r.guid, start: r.committed, logits: finishesPrompt ? .last : .none)
            plan.append((r, row, chunk.count, nil))
            if finishesPrompt { row += 1 }
            budget -= chunk.count
        }

        let verifyStart = Date()
        // Rows sampled as `Sampler.next` would: on a GPU they are sampled there (DeviceSampling).
        let sampledRows = plan.filter { p in
            p.tree.map(\.isEmpty) ?? (p.request.committed + p.entries == p.request.tokens.count)
        }.map { (row: $0.firstRow, request: $0.request) }
        let (logits, deviceTokens) = try DeviceSampling.forward(llm, batch, cache: cache, rows: sampledRows)
        let verifySeconds = Date().timeIntervalSince(verifyStart)
        condition.lock()
        metrics.steps += 1
        metrics.batchTokens += batch.count
        condition.unlock()

        withExtendedLifetime(logits) {
            commit(plan, logits: logits, deviceTokens: deviceTokens, draftSeconds: draftSeconds, verifySeconds: verifySeconds,
                   decodingCount: decoding.count)
        }
    }

    /// Samples or verifies each request's new tokens, keeps the accepted K/V, and streams the tokens.
    private func commit(_ plan: [(request: Request, firstRow: Int, entries: Int, tree: TokenTree?)], logits: Logits,
                        deviceTokens: [Int: Int] = [:], draftSeconds: Double, verifySeconds: Double, decodingCount: Int) {
        for p in plan {
            let r = p.request
            guard let tree = p.tree else {
                // A prompt chunk: the last one yields the first generated token.
                r.committed += p.entries
                cache.cacheFullBlocks(sequence: r.guid, tokens: r.tokens, committed: r.committed)
                if r.committed == r.tokens.count {
                    r.decodingSteps += 1
                    emit(r, [deviceTokens[p.firstRow] ?? Sampler.next(logits.row(p.firstRow), config: r.config, rng: &r.rng)])
                }
                continue
            }
            let rowOf: (Int) -> UnsafeBufferPointer<Float> = { node in
                logits.row(p.firstRow + (node == TokenTree.root ? 0 : 1 + node))
            }
            let outcome = tree.isEmpty
                ? TreeVerifier.Outcome(accepted: [], bonus: deviceTokens[p.firstRow] ?? Sampler.next(rowOf(TokenTree.root), config: r.config, rng: &r.rng))
                : r.config.doSample
                ? TreeVerifier.stochastic(tree: tree, config: r.config, rng: &r.rng, rule: options.stochasticRule, logits: rowOf)
                : TreeVerifier.greedy(tree: tree, logits: rowOf)
            // Keep the accepted nodes' K/V in order right after the root; drop the rest of the tree.
            let base = r.committed
            for (j, node) in outcome.accepted.enumerated() {
                cache.move(sequence: r.guid, from: base + 1 + node, to: base + 1 + j)
            }
            r.committed = base + 1 + outcome.accepted.count
            cache.truncate(sequence: r.guid, length: r.committed)
            cache.cacheFullBlocks(sequence: r.guid, tokens: r.tokens, committed: r.committed)
            r.decodingSteps += 1
            if !tree.isEmpty {
                r.speculation.record(accepted: outcome.accepted.count, drafted: tree.nodes.count)
                r.speculation.draftingSeconds += draftSeconds / Double(decodingCount)
                r.speculation.verifyingSeconds += verifySeconds / Double(decodingCount)
            }
            emit(r, outcome.accepted.map { tree.nodes[$0].token } + [outcome.bonus])
        }
    }

    /// Appends new tokens one by one, stopping at the first stop condition; streams the text.
    private func emit(_ r: Request, _ newTokens: [Int]) {
        if r.firstTokenAt == nil { r.firstTokenAt = Date() }
        var piece = ""
        var ids: [Int] = []
        var reason: FinishReason?
        for token in newTokens {
            if r.generatedCount >= r.maxNewTokens { reason = .length; break }
            r.tokens.append(token)
            ids.append(token)
            let isEOS = r.config.stopAtEOS && eos.contains(token)
            let (text, hitStop) = r.text.append(token, visible: !isEOS)
            piece += text
            if isEOS || hitStop { reason = .stop; break }
            if r.generatedCount >= r.maxNewTokens { reason = .length; break }
        }
        if !piece.isEmpty || !ids.isEmpty { r.emit(.piece(GenerationPiece(text: piece, tokens: ids, finishReason: nil))) }
        if r.isCancelled { reason = .cancelled }
        if let reason { finish(r, reason) }
    }
}
