// Building a Tokenizer from HF tokenizer.json (+ tokenizer_config.json) and from GGUF metadata.

import Foundation
import FlexServeModels

extension Tokenizer {
    // MARK: HF tokenizer.json

    /// Loads an HF `tokenizer.json`; `tokenizer_config.json`, `chat_template.jinja` and
    /// `generation_config.json` beside it are read when present (BOS/EOS, add_bos_token, chat template).
    public convenience init(tokenizerJSON path: String) throws {
        try self.init(tokenizerJSON: path, preTokenizerJSON: nil)
    }

    /// As `init(tokenizerJSON:)`, with the file's `pre_tokenizer` replaced by `preTokenizerJSON`
    /// (a JSON object text, e.g. `{"type": "Digits", "individual_digits": true}`) when given.
    public convenience init(tokenizerJSON path: String, preTokenizerJSON: String?) throws {
        let url = URL(fileURLWithPath: path)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TokenizerError("cannot read tokenizer file \(path)")
        }
        let json = try JSONValue.parse(data, name: path)
        let dir = url.deletingLastPathComponent()
        func load(_ name: String) throws -> JSONValue? {
            let p = dir.appendingPathComponent(name).path
            guard let d = FileManager.default.contents(atPath: p) else { return nil }
            return try JSONValue.parse(d, name: p)
        }
        let config = try load("tokenizer_config.json")
        var template: String? = nil
        if let t = config?["chat_template"] {
            if let s = t.string { template = s } else if let list = t.array {
                // [{"name": "default", "template": ...}, ...]
                let named = list.compactMap { e -> (String, String)? in
                    guard let n = e["name"]?.string, let t = e["template"]?.string else { return nil }
                    return (n, t)
                }
                template = named.first { $0.0 == "default" }?.1 ?? named.first?.1
            }
        }
        if template == nil, let d = FileManager.default.contents(atPath: dir.appendingPathComponent("chat_template.jinja").path) {
            template = String(decoding: d, as: UTF8.self)
        }
        if template == nil, let t = try load("chat_template.json")?["chat_template"]?.string { template = t }
        var extraEOS: [Int] = []
        if let g = try load("generation_config.json")?["eos_token_id"] {
            if let i = g.int { extraEOS = [i] } else if let a = g.array { extraEOS = a.compactMap(\.int) }
        }
        let override = try preTokenizerJSON.map { try JSONValue.parse(Data($0.utf8), name: "pre_tokenizer override") }
        try self.init(json: json, config: config, chatTemplate: template, extraEOS: extraEOS, name: path,
                      preTokenizerOverride: override)
    }

    /// Loads from tokenizer.json text (and optionally tokenizer_config.json text).
    public convenience init(tokenizerJSONData data: Data, configData: Data? = nil) throws {
        let json = try JSONValue.parse(data, name: "tokenizer.json")
        let config = try configData.map { try JSONValue.parse($0, name: "tokenizer_config.json") }
        try self.init(json: json, config: config, chatTemplate: config?["chat_template"]?.string, extraEOS: [], name: "tokenizer.json")
    }

    /// `preTokenizerOverride`: a JSON pre_tokenizer object replacing the file's (tests use it).
    convenience init(json: JSONValue, config: JSONValue?, chatTemplate: String?, extraEOS: [Int], name: String,
                     preTokenizerOverride: JSONValue? = nil) throws {
        guard let model = json["model"] else { throw TokenizerError("\(name): no \"model\"") }
        let type = model["type"]?.string ?? (model["merges"] != nil ? "BPE" : "?")
        guard type == "BPE" else { throw TokenizerError("\(name): model type \(type) is not supported (BPE only)") }
        guard let vocabMembers = model["vocab"]?.members else { throw TokenizerError("\(name): model has no vocab") }
        var vocab: [[UInt8]: Int] = [:]
        vocab.reserveCapacity(vocabMembers.count)
        var maxID = -1
        for (k, v) in vocabMembers {
            guard let id = v.int else { throw TokenizerError("\(name): vocab entry \(k) has no integer id") }
            vocab[Array(k.utf8)] = id
            maxID = max(maxID, id)
        }
        var merges: [(Int, Int)] = []
        for m in model["merges"]?.array ?? [] {
            var a: String?, b: String?
            if let s = m.string {
                guard let sp = s.utf8.firstIndex(of: 0x20) else { continue }
                a = String(s[..<sp]); b = String(s[s.utf8.index(after: sp)...])
            } else if let pair = m.array, pair.count == 2 {
                a = pair[0].string; b = pair[1].string
            }
            guard let a, let b, let ia = vocab[Array(a.utf8)], let ib = vocab[Array(b.utf8)] else { continue }
            merges.append((ia, ib))
        }
        var addedTokens: [AddedToken] = []
        for t in json["added_tokens"]?.array ?? [] {
            guard let id = t["id"]?.int, let content = t["content"]?.string else { continue }
            addedTokens.append(AddedToken(content: scalarsOf(content), id: id, special: t["special"]?.bool ?? false,
                                          lstrip: t["lstrip"]?.bool ?? false, rstrip: t["rstrip"]?.bool ?? false,
                                          singleWord: t["single_word"]?.bool ?? false))
            maxID = max(maxID, id)
        }
        var idToToken = [String](repeating: "", count: maxID + 1)
        for (k, v) in vocabMembers { if let id = v.int { idToToken[id] = k } }
        for a in addedTokens { idToToken[a.id] = stringOf(a.content[...]) }

        func tokenRef(_ v: JSONValue?) -> String? { v?.string ?? v?["content"]?.string }
        let unkName = model["unk_token"]?.string ?? tokenRef(config?["unk_token"])
        let unkID = unkName.flatMap { vocab[Array($0.utf8)] }
        let bpe = BPEModel(vocab: vocab, merges: merges, byteFallback: model["byte_fallback"]?.bool ?? false,
                           unkID: model["unk_token"]?.string.flatMap { vocab[Array($0.utf8)] },
                           fuseUnk: model["fuse_unk"]?.bool ?? false, ignoreMerges: model["ignore_merges"]?.bool ?? false)

        let normalizers = try Tokenizer.parseNormalizer(json["normalizer"], name: name)
        let pre = try Tokenizer.parsePreTokenizer(preTokenizerOverride ?? json["pre_tokenizer"], name: name)

        // decoder
        var byteLevelDecode = false, byteFallbackDecode = false, metaspaceDecode = false, strip = false
        func scanDecoder(_ d: JSONValue?) {
            guard let d, let t = d["type"]?.string else { return }
            switch t {
            case "Sequence": for x in d["decoders"]?.array ?? [] { scanDecoder(x) }
            case "ByteLevel": byteLevelDecode = true
            case "ByteFallback": byteFallbackDecode = true
            case "Replace":
                if d["pattern"]?["String"]?.string == "\u{2581}" { metaspaceDecode = true }
            case "Metaspace":
                metaspaceDecode = true
                let scheme = d["prepend_scheme"]?.string ?? ((d["add_prefix_space"]?.bool ?? true) ? "always" : "never")
                if scheme != "never" { strip = true }
            case "Strip":
                if (d["start"]?.int ?? 0) > 0 && d["content"]?.string == " " { strip = true }
            default: break
            }
        }
        scanDecoder(json["decoder"])
        let addedIDs = Dictionary(addedTokens.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var idToBytes = [[UInt8]](repeating: [], count: idToToken.count)
        var special = [Bool](repeating: false, count: idToToken.count)
        for (id, tok) in idToToken.enumerated() {
            if let a = addedIDs[id] {
                idToBytes[id] = Array(stringOf(a.content[...]).utf8)
                special[id] = a.special
            } else if byteLevelDecode {
                idToBytes[id] = ByteLevelTable.decode(tok)
            } else if byteFallbackDecode, let b = Tokenizer.byteTokenValue(tok) {
                idToBytes[id] = [b]
            } else if metaspaceDecode {
                idToBytes[id] = Array(tok.replacingOccurrences(of: "\u{2581}", with: " ").utf8)
            } else {
                idToBytes[id] = Array(tok.utf8)
            }
        }

        // post-processor
        var prefix: [Int] = [], suffix: [Int] = []
        func scanPost(_ p: JSONValue?) {
            guard let p, let t = p["type"]?.string else { return }
            switch t {
            case "Sequence": for x in p["processors"]?.array ?? [] { scanPost(x) }
            case "TemplateProcessing":
                var seenA = false
                for item in p["single"]?.array ?? [] {
                    if item["Sequence"] != nil { seenA = true; continue }
                    guard let sid = item["SpecialToken"]?["id"]?.string else { continue }
                    let ids = p["special_tokens"]?[sid]?["ids"]?.array?.compactMap(\.int)
                        ?? vocab[Array(sid.utf8)].map { [$0] } ?? []
                    if seenA { suffix += ids } else { prefix += ids }
                }
            case "RobertaProcessing", "BertProcessing":
                if let c = p["cls"]?.array, c.count == 2, let id = c[1].int { prefix = [id] }
                if let s = p["sep"]?.array, s.count == 2, let id = s[1].int { suffix = [id] }
            default: break
            }
        }
        scanPost(json["post_processor"])

        var tokenIndex: [[UInt8]: Int] = vocab
        for a in addedTokens { tokenIndex[Array(stringOf(a.content[...]).utf8)] = a.id }
        let bos = tokenRef(config?["bos_token"]).flatMap { tokenIndex[Array($0.utf8)] }
        let eos = tokenRef(config?["eos_token"]).flatMap { tokenIndex[Array($0.utf8)] }
        let pad = tokenRef(config?["pad_token"]).flatMap { tokenIndex[Array($0.utf8)] }
        if let b = config?["add_bos_token"]?.bool, let bos {
            if b && !prefix.contains(bos) { prefix.insert(bos, at: 0) }
            if !b { prefix.removeAll { $0 == bos } }
        }
        if let e = config?["add_eos_token"]?.bool, let eos {
            if e && !suffix.contains(eos) { suffix.append(eos) }
            if !e { suffix.removeAll { $0 == eos } }
        }
        let kind = byteLevelDecode || pre.contains(where: { if case .byteLevel = $0 { return true }; return false })
            ? "bpe-bytelevel" : "bpe-sentencepiece"
        self.init(model: .bpe(bpe), normalizers: normalizers, preTokenizers: pre, added: addedTokens,
                  prefixIDs: prefix, suffixIDs: suffix, idToToken: idToToken, idToBytes: idToBytes, special: special,
                  stripLeadingSpace: strip, bos: bos, eos: eos, eosIDs: Set(extraEOS), pad: pad, unk: unkID,
                  addBOS: bos.map { prefix.contains($0) } ?? false, addEOS: eos.map { suffix.contains($0) } ?? false,
                  chatTemplate: chatTemplate, kind: kind)
    }

    static func byteTokenValue(_ tok: String) -> UInt8? {
        let u = Array(tok.utf8)
        guard u.count == 6, u[0] == 0x3C, u[1] == 0x30, u[2] == 0x78, u[5] == 0x3E else { return nil }
        return UInt8(String(decoding: u[3..<5], as: UTF8.self), radix: 16)
    }

    static func parseNormalizer(_ v: JSONValue?, name: String) throws -> [Normalizer] {
        guard let v, !v.isNull else { return [] }
        guard let t = v["type"]?.string else { throw TokenizerError("\(name): normalizer without type") }
        switch t {
        case "Sequence":
            return try (v["normalizers"]?.array ?? []).flatMap { try parseNormalizer($0, name: name) }
        case "Prepend": return [.prepend(scalarsOf(v["prepend"]?.string ?? ""))]
        case "Replace":
            let content = scalarsOf(v["content"]?.string ?? "")
            if let s = v["pattern"]?["String"]?.string { return [.replace(s, content)] }
            if let r = v["pattern"]?["Regex"]?.string { return [.replaceRegex(try PatternRegex(r), content)] }
            throw TokenizerError("\(name): Replace normalizer without pattern")
        case "NFC": return [.nfc]
        case "NFD": return [.nfd]
        case "NFKC": return [.nfkc]
        case "NFKD": return [.nfkd]
        case "Lowercase": return [.lowercase]
        case "Strip": return [.strip(left: v["strip_left"]?.bool ?? true, right: v["strip_right"]?.bool ?? true)]
        default: throw TokenizerError("\(name): normalizer \(t) is not supported")
        }
    }

    static func parseBehavior(_ v: JSONValue?, default d: SplitBehavior, name: String) throws -> SplitBehavior {
        guard let s = v?.string else { return d }
        guard let b = SplitBehavior(rawValue: s) else { throw TokenizerError("\(name): split behavior \(s) is not supported") }
        return b
    }

    static func parsePreTokenizer(_ v: JSONValue?, name: String) throws -> [PreTokenizer] {
        guard let v, !v.isNull else { return [] }
        guard let t = v["type"]?.string else { throw TokenizerError("\(name): pre_tokenizer without type") }
        switch t {
        case "Sequence":
            return try (v["pretokenizers"]?.array ?? []).flatMap { try parsePreTokenizer($0, name: name) }
        case "ByteLevel":
            let useRegex = v["use_regex"]?.bool ?? true
            return [.byteLevel(addPrefixSpace: v["add_prefix_space"]?.bool ?? true,
                               regex: useRegex ? try PatternRegex(PreTokenizer.gpt2Pattern) : nil)]
        case "Split":
            let behavior = try parseBehavior(v["behavior"], default: .isolated, name: name)
            let invert = v["invert"]?.bool ?? false
            if let s = v["pattern"]?["String"]?.string { return [.split(nil, literal: scalarsOf(s), behavior, invert: invert)] }
            if let r = v["pattern"]?["Regex"]?.string {
                do { return [.split(try PatternRegex(r), literal: nil, behavior, invert: invert)] } catch {
                    throw TokenizerError("\(name): split pattern \(r): \(error)")
                }
            }
            throw TokenizerError("\(name): Split pre-tokenizer without pattern")
        case "Digits": return [.digits(individual: v["individual_digits"]?.bool ?? false)]
        case "Punctuation": return [.punctuation(try parseBehavior(v["behavior"], default: .isolated, name: name))]
        case "Metaspace":
            let rep = v["replacement"]?.string?.unicodeScalars.first?.value ?? metaspaceScalar
            var scheme = PrependScheme.always
            if let s = v["prepend_scheme"]?.string {
                scheme = s == "first" ? .first : s == "never" ? .never : .always
            } else if v["add_prefix_space"]?.bool == false { scheme = .never }
            return [.metaspace(replacement: rep, prepend: scheme, split: v["split"]?.bool ?? true)]
        case "Whitespace": return [.whitespace]
        case "WhitespaceSplit": return [.whitespaceSplit]
        default: throw TokenizerError("\(name): pre_tokenizer \(t) is not supported")
        }
    }

    // MARK: GGUF

    /// llama.cpp's pre-tokenizer regexes per `tokenizer.ggml.pre` (applied in sequence, each
    /// isolating its matches), and whether merges are skipped for whole-word vocabulary hits.
    static func ggufPreTokenizer(_ pre: String) -> (regexes: [String], ignoreMerges: Bool)? {
        let gpt2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
        let contractions = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
        let llama3 = contractions + "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
        let qwen2 = contractions + "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
        let gpt4o = "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+" + contractions + "?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*" + contractions + "?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
        let tekken = "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
        let bloom = " ?[^(\\s|.,!?…。，、।۔،)]+"
        switch pre {
        case "default":
            return (["[\\p{P}\\$\\+<=>\\^~\\|]+", gpt2, "\\p{N}+", "[0-9][0-9][0-9]"], false)
        case "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano":
            return ([llama3], true)
        case "dbrx", "smaug-bpe", "chatglm-bpe", "chatglm4", "glm4", "glm5":
            return ([llama3], false)
        case "deepseek-llm":
            return (["[\r\n]",
                     "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
                     "\\s?[!-/:-~！-／：-～‘-‟　-。]+", "\\s+$", "[一-龥ࠀ-一가-퟿]+", "\\p{N}+"], false)
        case "deepseek-coder":
            return (["[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"], false)
        case "falcon":
            return (["[\\p{P}\\$\\+<=>\\^~\\|`]+", gpt2, "[0-9][0-9][0-9]"], false)
        case "starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b", "mellum2":
            return (["\\p{N}", gpt2], false)
        case "gpt-2", "mpt", "olmo", "jais", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de",
             "jina-v1-en", "jina-v2-code", "roberta-bpe", "a.x-4.0", "mellum", "modern-bert", "trillion", "granite-docling":
            return ([gpt2], false)
        case "qwen2", "deepseek-r1-qwen", "stablelm2", "hunyuan", "kormo", "f2llmv2", "solar-open", "grok-2":
            return ([qwen2], false)
        case "qwen35":
            return ([contractions + "|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"], false)
        case "poro-chat", "bloom", "gpt3-finnish": return ([bloom], false)
        case "viking": return ([bloom, "\\p{N}"], false)
        case "tekken": return ([tekken], false)
        case "gpt-4o", "llama4", "kanana2", "talkie": return ([gpt4o], false)
        case "seed-coder":
            return ([contractions + "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"], false)
        default: return nil
        }
    }

    /// transformers' GGUF converter (transformers 5.x `gguf_tokenizer_mapping.py`): a Split regex only
    /// for these pre types, plain GPT-2 ByteLevel otherwise (it drops e.g. "smollm"'s digit split).
    static func transformersGGUFPreTokenizer(_ pre: String) -> (regexes: [String], ignoreMerges: Bool) {
        switch pre {
        case "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano",
             "dbrx", "smaug-bpe", "tekken", "qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "qwen35", "gpt-4o",
             "llama4", "kanana2", "talkie":
            return (ggufPreTokenizer(pre)?.regexes ?? [PreTokenizer.gpt2Pattern], false)
        default:
            return ([PreTokenizer.gpt2Pattern], false)
        }
    }

    /// Builds the tokenizer stored in a GGUF file's `tokenizer.ggml.*` metadata, pre-tokenizing as
    /// llama.cpp does for `tokenizer.ggml.pre` (for SmolLM2, "smollm": digits one by one, which is also
    /// what SmolLM2's own tokenizer.json does).
    public convenience init(gguf: GGUFFile) throws {
        try self.init(gguf: gguf, preTokenizer: .llamaCpp)
    }

    /// How a GGUF byte-level vocabulary is pre-tokenized.
    public enum GGUFPreTokenization: Sendable {
        /// llama.cpp's regexes for `tokenizer.ggml.pre` (the model's real tokenizer).
        case llamaCpp
        /// What `transformers` builds when it loads the GGUF (`AutoTokenizer.from_pretrained(gguf_file:)`):
        /// only some pre types get their split regex; others (e.g. SmolLM2's "smollm") get plain GPT-2
        /// ByteLevel, so multi-digit numbers stay together. Use it to reproduce transformers' prompt ids.
        case transformers
    }

    public convenience init(gguf: GGUFFile, preTokenizer mode: GGUFPreTokenization) throws {
        let md = gguf.metadata
        let name = gguf.path
        guard let modelType = md["tokenizer.ggml.model"]?.string else {
            throw TokenizerError("\(name): no tokenizer.ggml.model")
        }
        guard let tokens = md["tokenizer.ggml.tokens"]?.strings, !tokens.isEmpty else {
            throw TokenizerError("\(name): no tokenizer.ggml.tokens")
        }
        let n = tokens.count
        var types = md["tokenizer.ggml.token_type"]?.ints ?? []
        if types.count != n { types = [Int](repeating: 1, count: n) }
        var vocab: [[UInt8]: Int] = [:]
        vocab.reserveCapacity(n)
        for (i, t) in tokens.enumerated() where vocab[Array(t.utf8)] == nil { vocab[Array(t.utf8)] = i }
        let bos = md["tokenizer.ggml.bos_token_id"]?.int
        let eos = md["tokenizer.ggml.eos_token_id"]?.int
        var eosIDs = Set<Int>()
        for k in ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] { if let v = md[k]?.int { eosIDs.insert(v) } }
        let unk = md["tokenizer.ggml.unknown_token_id"]?.int
        let pad = md["tokenizer.ggml.padding_token_id"]?.int
        let template = md["tokenizer.chat_template"]?.string
        // 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte
        var added: [AddedToken] = []
        var special = [Bool](repeating: false, count: n)
        for i in 0..<n where types[i] == 2 || types[i] == 3 || types[i] == 4 {
            added.append(AddedToken(content: scalarsOf(tokens[i]), id: i, special: types[i] != 4))
            special[i] = types[i] != 4
        }
        var idToBytes = [[UInt8]](repeating: [], count: n)
        switch modelType {
        case "gpt2":
            let pre = md["tokenizer.ggml.pre"]?.string ?? "default"
            let table = mode == .llamaCpp ? Tokenizer.ggufPreTokenizer(pre) : Tokenizer.transformersGGUFPreTokenizer(pre)
            guard let (regexes, ignoreMerges) = table else {
                throw TokenizerError("\(name): tokenizer.ggml.pre \"\(pre)\" is not supported")
            }
            var steps: [PreTokenizer] = []
            for r in regexes { steps.append(.split(try PatternRegex(r), literal: nil, .isolated, invert: false)) }
            steps.append(.byteLevel(addPrefixSpace: false, regex: nil))
            var merges: [(Int, Int)] = []
            let mergeStrings = md["tokenizer.ggml.merges"]?.strings ?? []
            merges.reserveCapacity(mergeStrings.count)
            for m in mergeStrings {
                let u = Array(m.utf8)
                guard let sp = u.firstIndex(of: 0x20), let a = vocab[Array(u[..<sp])], let b = vocab[Array(u[(sp + 1)...])] else { continue }
                merges.append((a, b))
            }
            for i in 0..<n {
                idToBytes[i] = (types[i] == 3 || types[i] == 4 || types[i] == 2) ? Array(tokens[i].utf8) : ByteLevelTable.decode(tokens[i])
            }
            let bpe = BPEModel(vocab: vocab, merges: merges, byteFallback: false, unkID: nil, fuseUnk: false, ignoreMerges: ignoreMerges)
            let addBOS = md["tokenizer.ggml.add_bos_token"]?.bool ?? false
            let addEOS = md["tokenizer.ggml.add_eos_token"]?.bool ?? false
            self.init(model: .bpe(bpe), normalizers: [], preTokenizers: steps, added: added,
                      prefixIDs: addBOS ? bos.map { [$0] } ?? [] : [], suffixIDs: addEOS ? eos.map { [$0] } ?? [] : [],
                      idToToken: tokens, idToBytes: idToBytes, special: special, stripLeadingSpace: false,
                      bos: bos, eos: eos, eosIDs: eosIDs, pad: pad, unk: unk, addBOS: addBOS && bos != nil,
                      addEOS: addEOS && eos != nil, chatTemplate: template, kind: "bpe-bytelevel")
        case "llama":
            var scores = (md["tokenizer.ggml.scores"]?.doubles ?? []).map { Float($0) }
            if scores.count != n { scores = [Float](repeating: 0, count: n) }
            // only normal (and user-defined) pieces take part in merges
            var mergeVocab: [[UInt8]: Int] = [:]
            for (k, i) in vocab where types[i] == 1 || types[i] == 4 || types[i] == 6 { mergeVocab[k] = i }
            let addSpacePrefix = md["tokenizer.ggml.add_space_prefix"]?.bool ?? true
            for i in 0..<n {
                if types[i] == 6, let b = Tokenizer.byteTokenValue(tokens[i]) {
                    idToBytes[i] = [b]
                } else if types[i] == 3 || types[i] == 2 {
                    idToBytes[i] = Array(tokens[i].utf8)
                } else {
                    idToBytes[i] = Array(tokens[i].replacingOccurrences(of: "\u{2581}", with: " ").utf8)
                }
            }
            let spm = SPMModel(vocab: mergeVocab, scores: scores, unkID: unk)
            let addBOS = md["tokenizer.ggml.add_bos_token"]?.bool ?? true
            let addEOS = md["tokenizer.ggml.add_eos_token"]?.bool ?? false
            self.init(model: .spm(spm, addSpacePrefix: addSpacePrefix), normalizers: [], preTokenizers: [], added: added,
                      prefixIDs: addBOS ? bos.map { [$0] } ?? [] : [], suffixIDs: addEOS ? eos.map { [$0] } ?? [] : [],
                      idToToken: tokens, idToBytes: idToBytes, special: special, stripLeadingSpace: addSpacePrefix,
                      bos: bos, eos: eos, eosIDs: eosIDs, pad: pad, unk: unk, addBOS: addBOS && bos != nil,
                      addEOS: addEOS && eos != nil, chatTemplate: template, kind: "spm")
        default:
            throw TokenizerError("\(name): tokenizer.ggml.model \"\(modelType)\" is not supported (gpt2, llama)")
        }
    }

    /// Opens a GGUF file and builds its tokenizer.
    public convenience init(ggufPath: String) throws {
        try self.init(gguf: try GGUFFile(path: ggufPath))
    }
}
