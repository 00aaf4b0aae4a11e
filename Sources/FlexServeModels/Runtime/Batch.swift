/// The tokens one forward pass computes, from any number of sequences. Each token says where
/// its K/V go in its sequence's cache and which cache entries it attends to, so the same
/// forward serves prefill (a causal run), decoding (one token) and tree verification
/// (nodes that see the committed prefix plus their own ancestors).
public struct Batch: Sendable {
    public struct Token: Sendable {
        public var id: Int
        /// The position RoPE or learned positions see.
        public var position: Int
        /// The KV-cache sequence this token belongs to.
        public var sequence: Int
        /// Logical index in the sequence's cache where this token's K/V are written.
        public var cacheIndex: Int
        /// The token attends to logical entries `0..<visiblePrefix` ...
        public var visiblePrefix: Int
        /// ... and these (tree ancestors and itself); empty for ordinary causal tokens.
        public var visibleExtra: [Int]
        /// Whether the caller needs this token's logits.
        public var wantsLogits: Bool

        public init(id: Int, position: Int, sequence: Int, cacheIndex: Int, visiblePrefix: Int,
                    visibleExtra: [Int] = [], wantsLogits: Bool) {
            self.id = id
            self.position = position
            self.sequence = sequence
            self.cacheIndex = cacheIndex
            self.visiblePrefix = visiblePrefix
            self.visibleExtra = visibleExtra
            self.wantsLogits = wantsLogits
        }
    }

    public var tokens: [Token] = []

    public init(tokens: [Token] = []) { self.tokens = tokens }

    public var count: Int { tokens.count }
    public var logitRows: Int { tokens.reduce(0) { $0 + ($1.wantsLogits ? 1 : 0) } }

    /// Appends a causal run of `ids` for `sequence` starting at `start` (prefill or decode).
    public mutating func appendCausal(_ ids: [Int], sequence: Int, start: Int, logits: LogitSelection) {
        for (i, id) in ids.enumerated() {
            let index = start + i
            let wants: Bool
            switch logits {
            case .none: wants = false
            case .last: wants = i == ids.count - 1
            case .all: wants = true
            }
            tokens.append(Token(id: id, position: index, sequence: sequence, cacheIndex: index,
                                visiblePrefix: index + 1, wantsLogits: wants))
        }
    }

    public enum LogitSelection: Sendable { case none, last, all }
}
