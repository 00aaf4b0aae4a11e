// Tokenization models: BPE over token ids (HF `tokenizers` semantics; GPT-2 byte-level and
// SentencePiece-converted vocabularies) and llama.cpp's SentencePiece-by-score BPE.

import Foundation

/// GPT-2's reversible byte <-> printable-scalar mapping.
enum ByteLevelTable {
    static let byteToScalar: [UInt32] = {
        var bs: [Int] = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
        var cs = bs
        var n = 0
        for b in 0..<256 where !bs.contains(b) {
            bs.append(b)
            cs.append(256 + n)
            n += 1
        }
        var table = [UInt32](repeating: 0, count: 256)
        for (b, c) in zip(bs, cs) { table[b] = UInt32(c) }
        return table
    }()

    /// Scalar value -> byte, or -1 (indexable up to 0x144).
    static let scalarToByte: [Int16] = {
        var t = [Int16](repeating: -1, count: 0x144)
        for (b, c) in byteToScalar.enumerated() { t[Int(c)] = Int16(b) }
        return t
    }()

    static func decode(_ token: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(token.utf8.count)
        for s in token.unicodeScalars {
            let v = Int(s.value)
            if v < scalarToByte.count, scalarToByte[v] >= 0 {
                out.append(UInt8(scalarToByte[v]))
            } else {
                out.append(contentsOf: Array(String(s).utf8))
            }
        }
        return out
    }
}

/// A simple lock (the word cache is shared between threads).
final class Lock: @unchecked Sendable {
    private var m = pthread_mutex_t()
    init() { pthread_mutex_init(&m, nil) }
    deinit { pthread_mutex_destroy(&m) }
    @inline(__always) func lock() { pthread_mutex_lock(&m) }
    @inline(__always) func unlock() { pthread_mutex_unlock(&m) }
}

/// Binary min-heap of UInt64 keys.
struct MinHeap {
    var a: [UInt64] = []
    var isEmpty: Bool { a.isEmpty }
    mutating func removeAll() { a.removeAll(keepingCapacity: true) }
    mutating func push(_ x: UInt64) {
        a.append(x)
        var i = a.count - 1
        while i > 0 {
            let p = (i - 1) >> 1
            if a[p] <= a[i] { break }
            a.swapAt(p, i)
            i = p
        }
    }
    mutating func pop() -> UInt64 {
        let top = a[0]
        let last = a.removeLast()
        if !a.isEmpty {
            a[0] = last
            var i = 0
            let n = a.count
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < n && a[l] < a[m] { m = l }
                if r < n && a[r] < a[m] { m = r }
                if m == i { break }
                a.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}

/// BPE over ids: initial symbols are single-scalar tokens (byte-level chars for GPT-2 vocabularies),
/// merged by merge rank, lowest first, leftmost first among equal ranks (HF `tokenizers`' word merge).
final class BPEModel: @unchecked Sendable {
    /// Token text (as UTF-8 bytes, so that canonically equivalent strings stay distinct) -> id.
    let vocab: [[UInt8]: Int]
    /// (left << 32 | right) -> (rank << 32 | merged id)
    let merges: [UInt64: UInt64]
    /// Single-scalar token ids for scalars below 0x800 (-1 = none).
    let smallScalarIDs: [Int32]
    let otherScalarIDs: [UInt32: Int]
    let byteFallbackIDs: [Int]?    // <0xNN> tokens
    let unkID: Int?
    let fuseUnk: Bool
    let ignoreMerges: Bool
    private var cache: [[UInt32]: [Int]] = [:]
    private let cacheLock = Lock()
    static let maxCachedWordLength = 256
    static let maxCacheEntries = 200_000

    init(vocab: [[UInt8]: Int], merges: [(Int, Int)], byteFallback: Bool, unkID: Int?, fuseUnk: Bool, ignoreMerges: Bool) {
        self.vocab = vocab
        var m: [UInt64: UInt64] = [:]
        m.reserveCapacity(merges.count)
        var small = [Int32](repeating: -1, count: 0x800)
        var other: [UInt32: Int] = [:]
        for (k, id) in vocab {
            if let s = String(decoding: k, as: UTF8.self).unicodeScalars.first,
               String(decoding: k, as: UTF8.self).unicodeScalars.count == 1 {
                if s.value < 0x800 { small[Int(s.value)] = Int32(id) } else { other[s.value] = id }
            }
        }
        self.smallScalarIDs = small
        self.otherScalarIDs = other
        // merges given as pairs of ids in rank order; merged token = concatenation of texts
        var idToText = [Int: [UInt8]]()
        idToText.reserveCapacity(vocab.count)
        for (k, v) in vocab { idToText[v] = k }
        for (rank, (a, b)) in merges.enumerated() {
            guard let ta = idToText[a], let tb = idToText[b], let mid = vocab[ta + tb] else { continue }
            let key = UInt64(a) << 32 | UInt64(b)
            if m[key] == nil { m[key] = UInt64(rank) << 32 | UInt64(mid) }
        }
        self.merges = m
        if byteFallback {
            var ids = [Int](repeating: -1, count: 256)
            for b in 0..<256 {
                let name = String(format: "<0x%02X>", b)
                if let id = vocab[Array(name.utf8)] { ids[b] = id }
            }
            self.byteFallbackIDs = ids
        } else {
            self.byteFallbackIDs = nil
        }
        self.unkID = unkID
        self.fuseUnk = fuseUnk
        self.ignoreMerges = ignoreMerges
    }

    @inline(__always)
    func scalarID(_ v: UInt32) -> Int? {
        if v < 0x800 {
            let id = smallScalarIDs[Int(v)]
            return id >= 0 ? Int(id) : nil
        }
        return otherScalarIDs[v]
    }

    /// Tokenizes one pre-token (its scalars) and appends the ids.
    func tokenize(_ word: [UInt32], into out: inout [Int]) {
        if word.isEmpty { return }
        let cacheable = word.count <= BPEModel.maxCachedWordLength
        if cacheable {
            cacheLock.lock()
            let hit = cache[word]
            cacheLock.unlock()
            if let hit { out.append(contentsOf: hit); return }
        }
        let ids = compute(word)
        if cacheable {
            cacheLock.lock()
            if cache.count >= BPEModel.maxCacheEntries { cache.removeAll(keepingCapacity: true) }
            cache[word] = ids
            cacheLock.unlock()
        }
        out.append(contentsOf: ids)
    }

    private func compute(_ word: [UInt32]) -> [Int] {
        if ignoreMerges {
            var s = String.UnicodeScalarView()
            for v in word { s.append(Unicode.Scalar(v)!) }
            if let id = vocab[Array(String(s).utf8)] { return [id] }
        }
        var syms: [Int] = []
        syms.reserveCapacity(word.count)
        var lastWasUnk = false
        for v in word {
            if let id = scalarID(v) {
                syms.append(id); lastWasUnk = false
            } else if let fb = byteFallbackIDs {
                var ok = true
                let scalarBytes = Array(String(Unicode.Scalar(v)!).utf8)
                for b in scalarBytes where fb[Int(b)] < 0 { ok = false }
                if ok {
                    for b in scalarBytes { syms.append(fb[Int(b)]) }
                    lastWasUnk = false
                } else if let unk = unkID {
                    if !(fuseUnk && lastWasUnk) { syms.append(unk) }
                    lastWasUnk = true
                }
            } else if let unk = unkID {
                if !(fuseUnk && lastWasUnk) { syms.append(unk) }
                lastWasUnk = true
            }
        }
        let n = syms.count
        if n < 2 { return syms }
        var next = [Int](0..<n).map { $0 + 1 }
        next[n - 1] = -1
        var prev = [Int](0..<n).map { $0 - 1 }
        var alive = [Bool](repeating: true, count: n)
        var heap = MinHeap()
        heap.a.reserveCapacity(n)
        for i in 0..<(n - 1) {
            if let m = merges[UInt64(syms[i]) << 32 | UInt64(syms[i + 1])] {
                heap.push((m >> 32) << 32 | UInt64(i))
            }
        }
        while !heap.isEmpty {
            let top = heap.pop()
            let rank = top >> 32
            let i = Int(top & 0xFFFF_FFFF)
            guard alive[i] else { continue }
            let j = next[i]
            guard j >= 0, let m = merges[UInt64(syms[i]) << 32 | UInt64(syms[j])], m >> 32 == rank else { continue }
            syms[i] = Int(m & 0xFFFF_FFFF)
            alive[j] = false
            let k = next[j]
            next[i] = k
            if k >= 0 { prev[k] = i }
            let p = prev[i]
            if p >= 0, let mp = merges[UInt64(syms[p]) << 32 | UInt64(syms[i])] {
                heap.push((mp >> 32) << 32 | UInt64(p))
            }
            if k >= 0, let mk = merges[UInt64(syms[i]) << 32 | UInt64(syms[k])] {
                heap.push((mk >> 32) << 32 | UInt64(i))
            }
        }
        var out: [Int] = []
        out.reserveCapacity(n)
        var i = 0
        while i >= 0 { out.append(syms[i]); i = next[i] }
        return out
    }
}

/// llama.cpp's SentencePiece tokenizer (GGUF `llama` vocabularies): UTF-8 characters merged pairwise,
/// highest token score first, only into pieces that exist; unknown pieces fall back to <0xNN> bytes.
final class SPMModel: @unchecked Sendable {
    let vocab: [[UInt8]: Int]
    let scores: [Float]
    let byteIDs: [Int]
    let unkID: Int?

    init(vocab: [[UInt8]: Int], scores: [Float], unkID: Int?) {
        self.vocab = vocab
        self.scores = scores
        var ids = [Int](repeating: -1, count: 256)
        for b in 0..<256 {
            if let id = vocab[Array(String(format: "<0x%02X>", b).utf8)] { ids[b] = id }
        }
        self.byteIDs = ids
        self.unkID = unkID
    }

    /// `text` is already whitespace-escaped (spaces as U+2581).
    func tokenize(_ text: [UInt8], into out: inout [Int]) {
        let n = text.count
        if n == 0 { return }
        // symbols: UTF-8 characters
        var start: [Int] = [], len: [Int] = []
        var i = 0
        while i < n {
            let b = text[i]
            var l = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1
            l = min(l, n - i)
            start.append(i); len.append(l)
            i += l
        }
        let m = start.count
        var prev = (0..<m).map { $0 - 1 }
        var next = (0..<m).map { $0 + 1 }
        next[m - 1] = -1
        // bigram queue: highest score first, then leftmost
        struct Bigram { var left: Int; var right: Int; var score: Float; var size: Int }
        var queue: [Bigram] = []
        func better(_ a: Bigram, _ b: Bigram) -> Bool {   // a before b
            a.score > b.score || (a.score == b.score && a.left < b.left)
        }
        func push(_ x: Bigram) {
            queue.append(x)
            var k = queue.count - 1
            while k > 0 {
                let p = (k - 1) >> 1
                if !better(queue[k], queue[p]) { break }
                queue.swapAt(k, p); k = p
            }
        }
        func pop() -> Bigram {
            let top = queue[0]
            let last = queue.removeLast()
            if !queue.isEmpty {
                queue[0] = last
                var k = 0
                while true {
                    let l = 2 * k + 1, r = l + 1
                    var best = k
                    if l < queue.count && better(queue[l], queue[best]) { best = l }
                    if r < queue.count && better(queue[r], queue[best]) { best = r }
                    if best == k { break }
                    queue.swapAt(k, best); k = best
                }
            }
            return top
        }
        func tryAdd(_ l: Int, _ r: Int) {
            guard l >= 0, r >= 0 else { return }
            let piece = Array(text[start[l]..<(start[r] + len[r])])
            guard let id = vocab[piece] else { return }
            push(Bigram(left: l, right: r, score: scores[id], size: piece.count))
        }
        for k in 1..<m { tryAdd(k - 1, k) }
        while !queue.isEmpty {
            let bg = pop()
            let l = bg.left, r = bg.right
            if len[l] == 0 || len[r] == 0 || len[l] + len[r] != bg.size { continue }
            len[l] += len[r]
            len[r] = 0
            next[l] = next[r]
            if next[r] >= 0 { prev[next[r]] = l }
            tryAdd(prev[l], l)
            tryAdd(l, next[l])
        }
        // Merged symbols are vocabulary pieces by construction; single characters that are not
        // become byte tokens (llama.cpp's resegment).
        func resegment(_ s: Int, _ l: Int) {
            let piece = Array(text[s..<(s + l)])
            if let id = vocab[piece] { out.append(id); return }
            for b in piece {
                if byteIDs[Int(b)] >= 0 { out.append(byteIDs[Int(b)]) } else if let u = unkID { out.append(u) }
            }
        }
        var k = 0
        while k >= 0 {
            resegment(start[k], len[k])
            k = next[k]
        }
    }
}
