/// Counters of the engine, read by `/metrics` and the benchmark.
public struct EngineMetrics: Sendable {
    public var requestsFinished = 0
    public var requestsCancelled = 0
    public var generatedTokens = 0
    public var steps = 0
    public var batchTokens = 0
    public var queueDepth = 0
    public var running = 0
    public var freeKVBlocks = 0
    public var totalKVBlocks = 0
    public var speculation = SpeculationStats()
    public var timeToFirstToken: [Double] = []
    public var latency: [Double] = []

    mutating func record(_ r: GenerationResult) {
        if r.finishReason == .cancelled { requestsCancelled += 1 } else { requestsFinished += 1 }
        generatedTokens += r.outputTokens.count
        speculation.add(r.speculation)
        timeToFirstToken.append(r.timeToFirstTokenSeconds)
        latency.append(r.latencySeconds)
        if timeToFirstToken.count > 10_000 { timeToFirstToken.removeFirst(5_000); latency.removeFirst(5_000) }
    }
}
