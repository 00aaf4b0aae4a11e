import Foundation
import FlexServeTokenizers

/// One generation request as the engine tracks it between steps.
final class Request: @unchecked Sendable {
    let guid: Int
    let inputText: String
    let promptIDs: [Int]
    let config: GenerationConfig
    /// Prompt then generated tokens. Entries `0..<committed` are in the LLM's KV cache; the last
    /// token is not until the next step feeds it.
    var tokens: [Int]
    var committed = 0
    /// Per SSM: how many of `tokens` are in that SSM's cache.
    var ssmCommitted: [Int]
    let maxNewTokens: Int
    var rng: SeededRandom
    var decodingSteps = 0
    var speculation = SpeculationStats()
    var finishReason: FinishReason?
    /// Blocks promised to this request at admission (prompt + all new tokens + a draft tree).
    var reservedBlocks = 0
    let submitted = Date()
    var firstTokenAt: Date?
    let text: TextAssembler
    let emit: (RequestEvent) -> Void
    private let cancelFlag = NSLock()
    private var cancelledValue = false

    init(guid: Int, inputText: String, promptIDs: [Int], config: GenerationConfig, maxNewTokens: Int,
         ssmCount: Int, tokenizer: Tokenizer, emit: @escaping (RequestEvent) -> Void) {
        self.guid = guid
        self.inputText = inputText
        self.promptIDs = promptIDs
        self.config = config
        self.maxNewTokens = maxNewTokens
        tokens = promptIDs
        ssmCommitted = Array(repeating: 0, count: ssmCount)
        rng = SeededRandom(seed: config.seed ?? UInt64.random(in: 0...UInt64.max))
        text = TextAssembler(tokenizer: tokenizer, stops: config.stop)
        self.emit = emit
    }

    var generated: [Int] { Array(tokens[promptIDs.count...]) }
    var generatedCount: Int { tokens.count - promptIDs.count }
    var isPrefilling: Bool { committed < tokens.count - 1 }

    var isCancelled: Bool {
        cancelFlag.lock(); defer { cancelFlag.unlock() }
        return cancelledValue
    }

    func cancel() {
        cancelFlag.lock(); cancelledValue = true; cancelFlag.unlock()
    }

    func result() -> GenerationResult {
        let now = Date()
        return GenerationResult(
            guid: guid, inputText: inputText, promptTokens: promptIDs, outputText: text.text,
            outputTokens: generated, finishReason: finishReason ?? .cancelled, llmDecodingSteps: decodingSteps,
            latencySeconds: now.timeIntervalSince(submitted),
            timeToFirstTokenSeconds: (firstTokenAt ?? now).timeIntervalSince(submitted),
            speculation: speculation)
    }
}

enum RequestEvent: Sendable {
    case piece(GenerationPiece)
    case finished(GenerationResult)
    case failed(Error)
}

/// Builds the output text as tokens arrive: emits only complete UTF-8, and holds back text that
/// could still turn into a stop string.
final class TextAssembler {
    let stops: [String]
    private var decoder: StreamingDecoder
    private(set) var text = ""
    private var emittedCount = 0
    private var stopped = false

    init(tokenizer: Tokenizer, stops: [String]) {
        decoder = tokenizer.streamingDecoder()
        self.stops = stops.filter { !$0.isEmpty }
    }

    /// Adds a token. Returns the newly releasable text and whether a stop string was hit
    /// (the text is then cut before it).
    func append(_ id: Int, visible: Bool) -> (piece: String, hitStop: Bool) {
        guard visible, !stopped else { return ("", false) }
        // The decoder holds back a token that ends inside a character until the rest arrives.
        let added = decoder.append(id)
        if added.isEmpty { return ("", false) }
        text += added
        for stop in stops {
            if let range = text.range(of: stop) {
                text = String(text[..<range.lowerBound])
                stopped = true
                return (release(upTo: text.count), true)
            }
        }
        var safe = text.count
        for stop in stops {
            // Longest suffix of the text that is a proper prefix of the stop string.
            var n = min(stop.count - 1, text.count)
            while n > 0 {
                if stop.hasPrefix(text.suffix(n)) { safe = min(safe, text.count - n); break }
                n -= 1
            }
        }
        return (release(upTo: safe), false)
    }

    /// Everything not yet emitted (at the end of a request).
    func flush() -> String {
        if !stopped { text += decoder.finish() }
        return release(upTo: text.count)
    }

    private func release(upTo end: Int) -> String {
        guard end > emittedCount else { return "" }
        let start = text.index(text.startIndex, offsetBy: emittedCount)
        let stop = text.index(text.startIndex, offsetBy: end)
        emittedCount = end
        return String(text[start..<stop])
    }
}
