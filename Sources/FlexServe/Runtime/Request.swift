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
    /// Prompt tokens whose K/V came from the prefix cache.
    var cachedPromptTokens = 0
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
            speculation: speculation, cachedPromptTokens: cachedPromptTokens)
    }
}

enum RequestEvent: Sendable {
    case piece(GenerationPiece)
    case finished(GenerationResult)
    case failed(Error)
}

/// Builds the output text as tokens arrive: emits only complete UTF-8, and holds back text that
/// could still turn into a stop string.
///
/// Works on UTF-8 bytes, not `Character`s: a piece that begins with a combining mark joins the
/// previous piece's last Character, so counting Characters would lose or repeat text in a stream.
final class TextAssembler {
    let stops: [[UInt8]]
    private var decoder: StreamingDecoder
    private var bytes: [UInt8] = []
    private var emittedCount = 0
    private var stopped = false

    init(tokenizer: Tokenizer, stops: [String]) {
        decoder = tokenizer.streamingDecoder()
        self.stops = stops.filter { !$0.isEmpty }.map { Array($0.utf8) }
    }

    var text: String { String(decoding: bytes, as: UTF8.self) }

    /// Adds a token. Returns the newly releasable text and whether a stop string was hit
    /// (the text is then cut before it).
    func append(_ id: Int, visible: Bool) -> (piece: String, hitStop: Bool) {
        guard visible, !stopped else { return ("", false) }
        // The decoder holds back a token that ends inside a character until the rest arrives.
        let added = decoder.append(id)
        if added.isEmpty { return ("", false) }
        // A stop string can only newly appear in a window reaching back one stop length.
        let searchFrom = max(0, bytes.count - (stops.map(\.count).max() ?? 0))
        bytes.append(contentsOf: added.utf8)
        if let cut = stops.compactMap({ firstOccurrence(of: $0, from: searchFrom) }).min() {
            bytes.removeSubrange(cut...)
            stopped = true
            return (release(upTo: bytes.count), true)
        }
        var safe = bytes.count
        for stop in stops {
            // Longest suffix of the text that is a proper prefix of the stop string.
            var n = min(stop.count - 1, bytes.count)
            while n > 0 {
                if bytes[(bytes.count - n)...].elementsEqual(stop[..<n]) { safe = min(safe, bytes.count - n); break }
                n -= 1
            }
        }
        return (release(upTo: safe), false)
    }

    /// Everything not yet emitted (at the end of a request).
    func flush() -> String {
        if !stopped { bytes.append(contentsOf: decoder.finish().utf8) }
        return release(upTo: bytes.count)
    }

    private func firstOccurrence(of needle: [UInt8], from start: Int) -> Int? {
        guard bytes.count >= needle.count else { return nil }
        var i = start
        while i + needle.count <= bytes.count {
            if bytes[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }

    /// Cuts always fall on character boundaries: the decoder hands out whole UTF-8 sequences and a
    /// stop string (valid UTF-8) can only match starting at a lead byte.
    private func release(upTo end: Int) -> String {
        guard end > emittedCount else { return "" }
        defer { emittedCount = end }
        return String(decoding: bytes[emittedCount..<end], as: UTF8.self)
    }
}
