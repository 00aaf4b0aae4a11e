// FlexServe tokenizer: HF tokenizer.json and GGUF vocabularies (byte-level BPE and SentencePiece).

import Foundation
import FlexServeModels

public struct TokenizerError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public final class Tokenizer: @unchecked Sendable {
    enum Model {
        case bpe(BPEModel)
        case spm(SPMModel, addSpacePrefix: Bool)   // llama.cpp SentencePiece (GGUF `llama`)
    }

    let model: Model
    let normalizers: [Normalizer]
    let preTokenizers: [PreTokenizer]
    let added: AddedTokenMatcher
    /// Ids the post-processor puts around the text when `addSpecialTokens` is true.
    let prefixIDs: [Int]
    let suffixIDs: [Int]
    /// Raw token text per id ("" where the id is unused).
    let idToToken: [String]
    /// Decoded bytes per id.
    let idToBytes: [[UInt8]]
    let specialFlags: [Bool]
    let tokenToIDTable: [[UInt8]: Int]
    /// Decoders that drop one leading space of the output (SentencePiece's dummy prefix).
    let stripLeadingSpace: Bool

    public let bosTokenID: Int?
    public let eosTokenIDs: Set<Int>
    /// The primary EOS id (tokenizer config's `eos_token`, GGUF's `eos_token_id`).
    public let eosTokenID: Int?
    public let padTokenID: Int?
    public let unknownTokenID: Int?
    public let addBOS: Bool
    public let addEOS: Bool
    public let vocabularySize: Int
    public let chatTemplate: String?
    /// "bpe-bytelevel", "bpe-sentencepiece", "spm" (what the tokenizer was built as).
    public let kind: String

    init(model: Model, normalizers: [Normalizer], preTokenizers: [PreTokenizer], added: [AddedToken],
         prefixIDs: [Int], suffixIDs: [Int], idToToken: [String], idToBytes: [[UInt8]], special: [Bool],
         stripLeadingSpace: Bool, bos: Int?, eos: Int?, eosIDs: Set<Int>, pad: Int?, unk: Int?,
         addBOS: Bool, addEOS: Bool, chatTemplate: String?, kind: String) {
        self.model = model
        self.normalizers = normalizers
        self.preTokenizers = preTokenizers
        self.added = AddedTokenMatcher(added)
        self.prefixIDs = prefixIDs
        self.suffixIDs = suffixIDs
        self.idToToken = idToToken
        self.idToBytes = idToBytes
        self.specialFlags = special
        var t: [[UInt8]: Int] = [:]
        t.reserveCapacity(idToToken.count)
        for (i, s) in idToToken.enumerated() where !s.isEmpty { if t[Array(s.utf8)] == nil { t[Array(s.utf8)] = i } }
        for a in added { t[Array(stringOf(a.content[...]).utf8)] = a.id }
        self.tokenToIDTable = t
        self.stripLeadingSpace = stripLeadingSpace
        self.bosTokenID = bos
        self.eosTokenID = eos
        var e = eosIDs
        if let eos { e.insert(eos) }
        self.eosTokenIDs = e
        self.padTokenID = pad
        self.unknownTokenID = unk
        self.addBOS = addBOS
        self.addEOS = addEOS
        self.vocabularySize = idToToken.count
        self.chatTemplate = chatTemplate
        self.kind = kind
    }

    // MARK: Public API

    /// Token id of a token's raw text (as stored in the vocabulary, e.g. "Ġthe", "▁the", "<|im_end|>").
    public func tokenID(_ token: String) -> Int? { tokenToIDTable[Array(token.utf8)] }

    /// Raw vocabulary text of an id.
    public func token(_ id: Int) -> String? { id >= 0 && id < idToToken.count ? idToToken[id] : nil }

    /// Whether `id` is a special (control) token: skipped by `decode(skipSpecialTokens: true)`.
    public func isSpecial(_ id: Int) -> Bool { id >= 0 && id < specialFlags.count && specialFlags[id] }

    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        let s: TokScalars = scalarsOf(text)
        var out: [Int] = []
        out.reserveCapacity(s.count / 3 + 4)
        if addSpecialTokens { out.append(contentsOf: prefixIDs) }
        var prevSpecial = true
        for seg in added.split(s) {
            if let id = seg.id {
                out.append(id)
                prevSpecial = true
                continue
            }
            encodeSegment(s[seg.range], atTextStart: seg.range.lowerBound == 0, afterSpecial: prevSpecial, into: &out)
            prevSpecial = false
        }
        if addSpecialTokens { out.append(contentsOf: suffixIDs) }
        return out
    }

    func encodeSegment(_ seg: ArraySlice<UInt32>, atTextStart: Bool, afterSpecial: Bool, into out: inout [Int]) {
        switch model {
        case .spm(let spm, let addSpacePrefix):
            var text: [UInt8] = []
            text.reserveCapacity(seg.count + 3)
            if addSpacePrefix && afterSpecial { text.append(contentsOf: [0xE2, 0x96, 0x81]) }
            for v in seg {
                if v == 0x20 { text.append(contentsOf: [0xE2, 0x96, 0x81]) } else { appendUTF8(v, &text) }
            }
            spm.tokenize(text, into: &out)
        case .bpe(let bpe):
            var s = Array(seg)
            for n in normalizers { s = n.apply(s) }
            if s.isEmpty { return }
            var pieces = [s]
            for p in preTokenizers { pieces = p.apply(pieces, firstPieceAtTextStart: atTextStart) }
            for p in pieces { bpe.tokenize(p, into: &out) }
        }
    }

    /// The UTF-8 bytes of a sequence of ids (before the leading-space strip).
    func bytes(of ids: [Int], skipSpecialTokens: Bool) -> [UInt8] {
        var out: [UInt8] = []
        for id in ids where id >= 0 && id < idToBytes.count {
            if skipSpecialTokens && specialFlags[id] { continue }
            out.append(contentsOf: idToBytes[id])
        }
        return out
    }

    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        var b = bytes(of: ids, skipSpecialTokens: skipSpecialTokens)
        if stripLeadingSpace, b.first == 0x20 { b.removeFirst() }
        return String(decoding: b, as: UTF8.self)
    }

    public func streamingDecoder(skipSpecialTokens: Bool = false) -> StreamingDecoder {
        StreamingDecoder(tokenizer: self, skipSpecialTokens: skipSpecialTokens)
    }
}

/// Decodes ids one at a time, returning text only once it is complete UTF-8.
public struct StreamingDecoder: Sendable {
    public let tokenizer: Tokenizer
    public let skipSpecialTokens: Bool
    private var pending: [UInt8] = []
    private var started = false

    public init(tokenizer: Tokenizer, skipSpecialTokens: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Adds one id; returns the newly completed text ("" when the id ends mid-character).
    public mutating func append(_ id: Int) -> String {
        guard id >= 0 && id < tokenizer.idToBytes.count else { return "" }
        if skipSpecialTokens && tokenizer.specialFlags[id] { return "" }
        pending.append(contentsOf: tokenizer.idToBytes[id])
        if !started && !pending.isEmpty {
            started = true
            if tokenizer.stripLeadingSpace && pending[0] == 0x20 { pending.removeFirst() }
        }
        // keep a trailing incomplete (but so far valid) UTF-8 sequence
        let keep = incompleteTailLength(pending)
        let cut = pending.count - keep
        if cut == 0 { return "" }
        let text = String(decoding: pending[0..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    public mutating func append(_ ids: [Int]) -> String {
        var s = ""
        for id in ids { s += append(id) }
        return s
    }

    /// Flushes what is left (an incomplete sequence becomes U+FFFD).
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return pending.isEmpty ? "" : String(decoding: pending, as: UTF8.self)
    }
}

/// Length of a trailing sequence that is a valid but incomplete UTF-8 character.
func incompleteTailLength(_ b: [UInt8]) -> Int {
    let n = b.count
    var i = n - 1
    var k = 0
    while i >= 0 && k < 3 {
        let x = b[i]
        if x & 0xC0 == 0x80 { i -= 1; k += 1; continue }   // continuation byte
        let need: Int
        if x >= 0xF0 && x <= 0xF4 { need = 4 } else if x >= 0xE0 && x <= 0xEF { need = 3 } else if x >= 0xC2 && x <= 0xDF { need = 2 } else { return 0 }
        let have = n - i
        if have >= need { return 0 }
        // validate second byte ranges for E0/ED/F0/F4
        if have >= 2 {
            let y = b[i + 1]
            if x == 0xE0 && y < 0xA0 { return 0 }
            if x == 0xED && y > 0x9F { return 0 }
            if x == 0xF0 && y < 0x90 { return 0 }
            if x == 0xF4 && y > 0x8F { return 0 }
        }
        return have
    }
    return 0
}

@inline(__always) func appendUTF8(_ v: UInt32, _ out: inout [UInt8]) {
    if v < 0x80 { out.append(UInt8(v)) } else if v < 0x800 {
        out.append(UInt8(0xC0 | (v >> 6))); out.append(UInt8(0x80 | (v & 0x3F)))
    } else if v < 0x10000 {
        out.append(UInt8(0xE0 | (v >> 12))); out.append(UInt8(0x80 | ((v >> 6) & 0x3F))); out.append(UInt8(0x80 | (v & 0x3F)))
    } else {
        out.append(UInt8(0xF0 | (v >> 18))); out.append(UInt8(0x80 | ((v >> 12) & 0x3F)))
        out.append(UInt8(0x80 | ((v >> 6) & 0x3F))); out.append(UInt8(0x80 | (v & 0x3F)))
    }
}
