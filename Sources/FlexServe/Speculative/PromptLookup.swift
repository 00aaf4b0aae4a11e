/// Drafting by copying (prompt-lookup decoding): when the context's last few tokens occurred earlier
/// in the context, what followed them there is a likely continuation. It costs no model forward and
/// pays off wherever text repeats its input (code edits, quotes, lists, summaries) and on a small
/// model's own repetitions. Its paths join the SSMs' tree; verification decides as for any node.
struct PromptLookup {
    /// Distinct continuations kept per step (by their first token, latest occurrence first).
    static let candidates = 2
    /// Suffix lengths tried, longest first: a one-token match is too often a coincidence.
    static let longestMatch = 4
    static let shortestMatch = 2

    /// Tokens copied per continuation.
    var length: Int

    func continuations(of tokens: [Int]) -> [[Int]] {
        let n = tokens.count
        guard length > 0, n > Self.shortestMatch else { return [] }
        for m in stride(from: min(Self.longestMatch, n - 1), through: Self.shortestMatch, by: -1) {
            var found: [[Int]] = []
            // An earlier occurrence of the suffix ends at `end` (exclusive); what follows it is the draft.
            var end = n - 1
            while end >= m, found.count < Self.candidates {
                if endsWithSuffix(tokens, at: end, length: m) {
                    let copy = Array(tokens[end..<min(n, end + length)])
                    if !found.contains(where: { $0.first == copy.first }) { found.append(copy) }
                }
                end -= 1
            }
            if !found.isEmpty { return found }
        }
        return []
    }

    private func endsWithSuffix(_ tokens: [Int], at end: Int, length m: Int) -> Bool {
        let n = tokens.count
        for k in 1...m where tokens[end - k] != tokens[n - k] { return false }
        return true
    }
}
